/* json_check.c - see json_check.h.  A recursive-descent recogniser of the
 * JSON grammar (RFC 8259): it accepts or rejects, building nothing. */
#include "json_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cur {
  const char *p, *end;
  int depth;
} cur;

static int value(cur *c);

static void ws(cur *c) {
  while (c->p < c->end && strchr(" \t\r\n", *c->p) && *c->p)
    c->p++;
}

static int lit(cur *c, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
    return 0;
  c->p += n;
  return 1;
}

static int digits(cur *c) {
  const char *s = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
    c->p++;
  return c->p > s;
}

static int number(cur *c) {
  if (c->p < c->end && *c->p == '-')
    c->p++;
  if (c->p < c->end && *c->p == '0')
    c->p++;
  else if (!digits(c))
    return 0;
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    if (!digits(c))
      return 0;
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
      c->p++;
    if (!digits(c))
      return 0;
  }
  return 1;
}

static int string(cur *c) {
  if (c->p >= c->end || *c->p != '"')
    return 0;
  c->p++;
  while (c->p < c->end) {
    unsigned char ch = (unsigned char)*c->p++;
    if (ch == '"')
      return 1;
    if (ch < 0x20)
      return 0;
    if (ch == '\\') {
      if (c->p >= c->end)
        return 0;
      char e = *c->p++;
      if (e == 'u') {
        for (int i = 0; i < 4; i++, c->p++)
          if (c->p >= c->end || !strchr("0123456789abcdefABCDEF", *c->p) || !*c->p)
            return 0;
      } else if (!strchr("\"\\/bfnrt", e) || !e) {
        return 0;
      }
    }
  }
  return 0;
}

static int members(cur *c, char close, int keyed) {
  c->p++;
  ws(c);
  if (c->p < c->end && *c->p == close) {
    c->p++;
    return 1;
  }
  for (;;) {
    ws(c);
    if (keyed) {
      if (!string(c))
        return 0;
      ws(c);
      if (!lit(c, ":"))
        return 0;
    }
    if (!value(c))
      return 0;
    ws(c);
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      continue;
    }
    if (c->p < c->end && *c->p == close) {
      c->p++;
      return 1;
    }
    return 0;
  }
}

static int value(cur *c) {
  int ok;
  ws(c);
  if (c->p >= c->end || ++c->depth > 64)
    return 0;
  switch (*c->p) {
  case '{': ok = members(c, '}', 1); break;
  case '[': ok = members(c, ']', 0); break;
  case '"': ok = string(c); break;
  case 't': ok = lit(c, "true"); break;
  case 'f': ok = lit(c, "false"); break;
  case 'n': ok = lit(c, "null"); break;
  default: ok = number(c);
  }
  c->depth--;
  return ok;
}

int json_valid(const char *s, size_t len) {
  cur c = {s, s + len, 0};
  if (!value(&c))
    return 0;
  ws(&c);
  return c.p == c.end;
}

int json_u64(const char *doc, const char *key, uint64_t *out) {
  char pat[128];
  char *end;
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  const char *at = strstr(doc, pat);
  if (at == NULL)
    return -1;
  at += strlen(pat);
  if (*at < '0' || *at > '9')
    return -1;
  *out = strtoull(at, &end, 10);
  return 0;
}

size_t count_substr(const char *doc, const char *needle) {
  size_t n = 0, len = strlen(needle);
  for (const char *p = strstr(doc, needle); p; p = strstr(p + len, needle))
    n++;
  return n;
}
