/* Unit tests of option parsing. */
#include <criterion/criterion.h>

#include "options.h"

Test(options, sizes_with_suffixes) {
  size_t v;
  cr_assert_eq(sa_parse_size("0", &v), 0);
  cr_assert_eq(v, 0);
  cr_assert_eq(sa_parse_size("4096", &v), 0);
  cr_assert_eq(v, 4096);
  cr_assert_eq(sa_parse_size("64K", &v), 0);
  cr_assert_eq(v, 64 << 10);
  cr_assert_eq(sa_parse_size("3m", &v), 0);
  cr_assert_eq(v, 3 << 20);
  cr_assert_eq(sa_parse_size("2G", &v), 0);
  cr_assert_eq(v, (size_t)2 << 30);
  cr_assert_eq(sa_parse_size("8MiB", &v), 0);
  cr_assert_eq(v, 8 << 20);
}

Test(options, bad_sizes_are_refused) {
  size_t v = 77;
  const char *bad[] = {"", "K", "12Q", "-5", "1.5G", "12 K", "99999999999999999999",
                       "99999999999999G"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    cr_assert_eq(sa_parse_size(bad[i], &v), -1, "'%s' accepted", bad[i]);
  cr_assert_eq(v, 77, "a refused value leaves the output alone");
}

Test(options, defaults_before_the_environment_is_read) {
  cr_assert_eq(sa_option(SA_OPT_STATS), 0);
  cr_assert_eq(sa_option(SA_OPT_SNAPSHOT), 1);
  cr_assert_geq(sa_option(SA_OPT_ARENA_SIZE), (size_t)1 << 30);
}

Test(options, environment_overrides_defaults) {
  setenv("SIMALLOC_STATS", "1", 1);
  setenv("SIMALLOC_ARENA_SIZE", "256M", 1);
  setenv("SIMALLOC_SNAPSHOT", "banana", 1);  /* refused: keeps its default */
  sa_options_load();
  cr_assert_eq(sa_option(SA_OPT_STATS), 1);
  cr_assert_eq(sa_option(SA_OPT_ARENA_SIZE), 256 << 20);
  cr_assert_eq(sa_option(SA_OPT_SNAPSHOT), 1);
}
