/* common.h - small shared pieces of the integration helper programs.
 *
 * Helpers are plain programs: they call the standard malloc API and are
 * never linked against libsimalloc; the tests run them with LD_PRELOAD.
 * A helper reports a broken expectation with one "FAIL: ..." line on
 * stderr and exit status 1; status 2 means it was called wrongly.
 */
#ifndef SA_IT_COMMON_H
#define SA_IT_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond))                                                           \
      it_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                     \
  } while (0)

__attribute__((noreturn, format(printf, 4, 5), unused))
static void it_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "FAIL: %s:%d: (%s) ", file, line, cond);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

/* The byte a verification pattern expects at offset i of a block. */
static inline unsigned char it_pattern(uint32_t seed, size_t i) {
  uint32_t x = seed ^ (uint32_t)(i * 2654435761u);
  x ^= x >> 15;
  return (unsigned char)(x ^ (x >> 8));
}

__attribute__((unused))
static void it_fill(void *p, size_t n, uint32_t seed) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    b[i] = it_pattern(seed, i);
}

/* Returns the first offset that differs from the pattern, or n. */
__attribute__((unused))
static size_t it_verify(const void *p, size_t n, uint32_t seed) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != it_pattern(seed, i))
      return i;
  return n;
}

/* Parses a byte count with an optional K, M or G suffix; 0 on bad input. */
__attribute__((unused))
static size_t it_size_arg(const char *s) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  int shift = 0;
  if (end == s)
    return 0;
  switch (*end) {
  case 'K': case 'k': shift = 10; end++; break;
  case 'M': case 'm': shift = 20; end++; break;
  case 'G': case 'g': shift = 30; end++; break;
  default: break;
  }
  return *end ? 0 : (size_t)(v << shift);
}

#endif
