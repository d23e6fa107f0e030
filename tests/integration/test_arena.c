/* test_arena.c - running out of arena is an ordinary ENOMEM.
 *
 * With SIMALLOC_ARENA_SIZE set small, the api helper allocates until a
 * call fails, checks errno and that the other calls fail the same way,
 * frees everything and allocates the same amount again.
 */
#include "run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static unsigned long long exhaust(const char *arena, const char *block) {
  char var[64];
  snprintf(var, sizeof var, "SIMALLOC_ARENA_SIZE=%s", arena);
  const char *env[] = {var, NULL};
  const char *argv[] = {"api", "exhaust", block, NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_ok(&r, "exhaust");
  unsigned long long bytes = it_value(r.out, "bytes");
  cr_assert_eq(it_value(r.out, "again"), it_value(r.out, "blocks"));
  it_result_free(&r);
  return bytes;
}

Test(arena, exhaustion_gives_enomem_and_recovers) {
  unsigned long long bytes = exhaust("4M", "64K");
  cr_assert_leq(bytes, 4ull << 20, "allocated %llu bytes from a 4M arena", bytes);
  cr_assert_geq(bytes, 2ull << 20, "only %llu bytes from a 4M arena", bytes);
}

Test(arena, size_suffixes_agree) {
  unsigned long long m = exhaust("4M", "16K");
  unsigned long long k = exhaust("4096K", "16K");
  unsigned long long b = exhaust("4194304", "16K");
  cr_assert(m == k && k == b, "4M gave %llu, 4096K %llu, 4194304 %llu bytes", m, k, b);
}

Test(arena, gigabyte_suffix) {
  unsigned long long bytes = exhaust("1G", "4M");
  cr_assert_leq(bytes, 1ull << 30, "allocated %llu bytes from a 1G arena", bytes);
  cr_assert_geq(bytes, 1ull << 29, "only %llu bytes from a 1G arena", bytes);
}

Test(arena, small_blocks_fill_the_arena) {
  unsigned long long bytes = exhaust("8M", "100");
  cr_assert_leq(bytes, 8ull << 20);
  cr_assert_geq(bytes, 2ull << 20, "only %llu bytes of 100-byte blocks in 8M", bytes);
}

Test(arena, malformed_size_is_quoted_and_ignored) {
  const char *env[] = {"SIMALLOC_ARENA_SIZE=12Q", NULL};
  const char *argv[] = {"api", "malloc0", NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_ok(&r, "api malloc0 with a malformed arena size");
  cr_assert_not_null(strstr(r.err, "12Q"), "the bad value is not quoted:\n%s", r.err);
  cr_assert_not_null(strstr(r.err, "simalloc"), "the complaint does not name us:\n%s", r.err);
  it_result_free(&r);
}
