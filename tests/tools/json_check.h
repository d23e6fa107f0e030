/* json_check.h - a strict JSON syntax check and a key lookup, for tests. */
#ifndef TEST_JSON_CHECK_H
#define TEST_JSON_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* 1 if s[0..len) is exactly one valid JSON value (with surrounding space). */
int json_valid(const char *s, size_t len);

/* The unsigned number after the first "key": in doc; 0 on success, -1 if
 * the key is missing or not followed by a number. */
int json_u64(const char *doc, const char *key, uint64_t *out);

/* Occurrences of needle in doc. */
size_t count_substr(const char *doc, const char *needle);

#endif
