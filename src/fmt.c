/* fmt.c - allocation-free message formatting and fatal errors. */
#include "fmt.h"

#include <stdlib.h>

#include "os.h"

void sa_fmt_str(sa_fmt *f, const char *s) {
  while (*s && f->len < f->cap) f->buf[f->len++] = *s++;
}

static void put_digits(sa_fmt *f, uint64_t v, unsigned base) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  while (n > 0 && f->len < f->cap) f->buf[f->len++] = tmp[--n];
}

void sa_fmt_u64(sa_fmt *f, uint64_t v) { put_digits(f, v, 10); }

void sa_fmt_u64_right(sa_fmt *f, uint64_t v, int width) {
  int digits = 1;
  for (uint64_t x = v; x >= 10; x /= 10) digits++;
  for (; digits < width && f->len < f->cap; digits++) f->buf[f->len++] = ' ';
  put_digits(f, v, 10);
}

void sa_fmt_hex(sa_fmt *f, uint64_t v) {
  sa_fmt_str(f, "0x");
  put_digits(f, v, 16);
}

void sa_fmt_size(sa_fmt *f, uint64_t bytes) {
  static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  uint64_t whole = bytes, tenth = 0;
  while (whole >= 1024 && u < 4) {
    tenth = (whole % 1024) * 10 / 1024;
    whole /= 1024;
    u++;
  }
  put_digits(f, whole, 10);
  if (u > 0) {
    sa_fmt_str(f, ".");
    put_digits(f, tenth, 10);
  }
  sa_fmt_str(f, " ");
  sa_fmt_str(f, unit[u]);
}

int sa_warn_only;

static size_t bad_ptr_message(char *buf, size_t cap, const char *call, const char *what,
                              const void *p) {
  sa_fmt f = {buf, 0, cap};
  sa_fmt_str(&f, "simalloc: ");
  sa_fmt_str(&f, call);
  sa_fmt_str(&f, "(): ");
  sa_fmt_str(&f, what);
  sa_fmt_str(&f, " ");
  sa_fmt_hex(&f, (uintptr_t)p);
  sa_fmt_str(&f, "\n");
  return f.len;
}

/* publish.c's, when the program links it (a weak reference keeps the unit
 * tests that use only the formatting from pulling in the whole process). */
__attribute__((weak)) void sa_snapshot_stop(void);

_Noreturn void sa_abort(void) {
  if (sa_snapshot_stop) sa_snapshot_stop();
  abort();
}

static _Noreturn void die(const char *msg, size_t n) {
  sa_os_write(2, msg, n);
  sa_abort();
}

void sa_bad_ptr(const char *call, const char *what, const void *p) {
  char buf[200];
  size_t n = bad_ptr_message(buf, sizeof buf, call, what, p);
  if (!sa_warn_only) die(buf, n);
  sa_os_write(2, buf, n);
}

_Noreturn void sa_fatal_ptr(const char *call, const char *what, const void *p) {
  char buf[200];
  die(buf, bad_ptr_message(buf, sizeof buf, call, what, p));
}

_Noreturn void sa_fatal(const char *msg) {
  char buf[200];
  sa_fmt f = SA_FMT_INIT(buf);
  sa_fmt_str(&f, "simalloc: ");
  sa_fmt_str(&f, msg);
  sa_fmt_str(&f, "\n");
  die(f.buf, f.len);
}
