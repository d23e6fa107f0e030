/* Unit tests of option parsing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The README's options table mirrors the table in options.c, both ways,
 * defaults included: each default the README gives, read as the
 * environment would be, is the library's.  (SIMALLOC_HEAPS says "CPUs":
 * its default, 0, is worked out at start-up.) */
Test(options, readme_lists_exactly_the_options_and_their_defaults) {
  const char *root = getenv("SIMALLOC_SOURCE_ROOT");
  cr_assert_not_null(root, "SIMALLOC_SOURCE_ROOT is not set");
  char path[4096];
  snprintf(path, sizeof path, "%s/README.md", root);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "cannot open %s", path);
  size_t defaults[SA_OPT_COUNT];
  for (int i = 0; i < SA_OPT_COUNT; i++) defaults[i] = sa_option(i);  /* nothing loaded yet */
  char line[1024], given[SA_OPT_COUNT][64] = {{0}};
  int seen[SA_OPT_COUNT] = {0}, rows = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "| `SIMALLOC_", 12) != 0) continue;
    rows++;
    char *end = strchr(line + 12, '`');
    cr_assert_not_null(end);
    *end = 0;
    int found = -1;
    for (int i = 0; i < SA_OPT_COUNT; i++)
      if (!strcmp(line + 12, sa_option_name(i))) seen[i] = 1, found = i;
    cr_assert(found >= 0, "README documents SIMALLOC_%s, which the library does not have",
              line + 12);
    /* The next cell: | `32G` | or | CPUs | */
    char *cell = strchr(end + 1, '|');
    cr_assert_not_null(cell);
    cell += strspn(cell + 1, " `") + 1;
    size_t len = strcspn(cell, " `|");
    cr_assert(len > 0 && len < sizeof given[0], "SIMALLOC_%s: no default in the README",
              line + 12);
    memcpy(given[found], cell, len);
  }
  fclose(f);
  for (int i = 0; i < SA_OPT_COUNT; i++)
    cr_assert(seen[i], "SIMALLOC_%s is missing from the README's table", sa_option_name(i));
  cr_assert_eq(rows, SA_OPT_COUNT, "an option is listed twice");

  for (int i = 0; i < SA_OPT_COUNT; i++) {
    char name[64];
    snprintf(name, sizeof name, "SIMALLOC_%s", sa_option_name(i));
    if (!strcmp(given[i], "CPUs")) {
      cr_assert_eq(defaults[i], 0, "%s: the README says CPUs, the library %zu", name, defaults[i]);
      unsetenv(name);
    } else {
      setenv(name, given[i], 1);
    }
  }
  sa_options_load();
  for (int i = 0; i < SA_OPT_COUNT; i++)
    cr_assert_eq(sa_option(i), defaults[i], "SIMALLOC_%s: the README's default `%s` is %zu, "
                 "the library's %zu", sa_option_name(i), given[i], sa_option(i), defaults[i]);
}
