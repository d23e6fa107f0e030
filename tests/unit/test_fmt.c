/* Unit tests of the allocation-free formatter (fmt.h). */
#include <criterion/criterion.h>
#include <string.h>

#include "fmt.h"

/* What f holds, as a string: every buffer here has a byte past its cap. */
static const char *text(sa_fmt *f) {
  f->buf[f->len] = 0;
  return f->buf;
}

Test(fmt, numbers_in_decimal_hex_and_sizes) {
  char buf[128];
  sa_fmt f = {buf, 0, sizeof buf - 1};
  sa_fmt_u64(&f, 0);
  sa_fmt_str(&f, " ");
  sa_fmt_u64(&f, UINT64_MAX);
  sa_fmt_str(&f, " ");
  sa_fmt_hex(&f, 0x7f2a40000130);
  sa_fmt_str(&f, " ");
  sa_fmt_size(&f, 1536);
  sa_fmt_str(&f, " ");
  sa_fmt_size(&f, 100);
  cr_assert_str_eq(text(&f), "0 18446744073709551615 0x7f2a40000130 1.5 KiB 100 B");
}

Test(fmt, right_aligned_numbers_fill_their_width) {
  char buf[128];
  sa_fmt f = {buf, 0, sizeof buf - 1};
  sa_fmt_str(&f, "[");
  sa_fmt_u64_right(&f, 1048576, 10);
  sa_fmt_str(&f, "][");
  sa_fmt_u64_right(&f, 0, 3);
  sa_fmt_str(&f, "][");
  sa_fmt_u64_right(&f, 123456, 4);  /* wider than asked: all digits, no spaces */
  sa_fmt_str(&f, "]");
  cr_assert_str_eq(text(&f), "[   1048576][  0][123456]");
}

Test(fmt, output_that_does_not_fit_is_cut) {
  char buf[8];
  sa_fmt f = {buf, 0, sizeof buf - 1};  /* room for the terminator */
  sa_fmt_str(&f, "abc");
  sa_fmt_u64_right(&f, 42, 6);
  sa_fmt_str(&f, "never");
  cr_assert_eq(f.len, 7);
  cr_assert_str_eq(text(&f), "abc    ");
}
