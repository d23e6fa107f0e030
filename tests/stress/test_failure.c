/* test_failure.c - exhaustion and fork corner cases under the library.
 *
 * Each test runs the exhaust helper preloaded.  A deadlock shows up as a
 * child killed at the deadline (the parent) or by its own alarm (a forked
 * child), and fails the test with that said plainly.
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sp_result exhaust(const char *mode, const char *n, const sp_opts *o) {
  char *prog = sp_path("SIMALLOC_STRESS_DIR", "exhaust");
  const char *argv[] = {prog, mode, n, NULL};
  sp_result r = sp_run(argv, o);
  free(prog);
  cr_assert(!r.timed_out, "exhaust %s %s did not finish: deadlock; stderr:\n%.2000s", mode, n,
            r.err);
  cr_assert(r.exited && r.code == 0, "exhaust %s %s %s; stdout:\n%s\nstderr:\n%.4000s", mode, n,
            sp_describe(&r), r.out, r.err);
  return r;
}

/* The value after "key=" on the result line. */
static unsigned long long value(const sp_result *r, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, " %s=", key);
  const char *p = strstr(r->out, pat);
  cr_assert_not_null(p, "no %s= in the output:\n%s", key, r->out);
  return strtoull(p + strlen(pat), NULL, 10);
}

static void arena_recovers(const sp_result *r, unsigned long long limit) {
  unsigned long long blocks = value(r, "blocks"), bytes = value(r, "bytes");
  cr_assert_gt(blocks, 0, "nothing could be allocated:\n%s", r->out);
  cr_assert_geq(value(r, "again"), blocks, "after freeing, not as much could be allocated:\n%s",
               r->out);
  cr_assert_leq(bytes, limit, "allocated %llu bytes under a limit of %llu", bytes, limit);
}

Test(failure, small_rlimit_as_still_starts_and_fails_with_enomem, .timeout = 120) {
  const unsigned long long limit = 96ull << 20;
  sp_opts o = {.preload = SP_PRELOAD, .rlimit_as = limit, .timeout_s = 30};
  sp_result r = exhaust("arena", "65536", &o);
  arena_recovers(&r, limit);
  sp_free(&r);
}

Test(failure, tiny_rlimit_as_with_small_blocks, .timeout = 120) {
  const unsigned long long limit = 24ull << 20;
  sp_opts o = {.preload = SP_PRELOAD, .rlimit_as = limit, .timeout_s = 30};
  sp_result r = exhaust("arena", "1000", &o);
  arena_recovers(&r, limit);
  sp_free(&r);
}

Test(failure, two_megabyte_arena_fails_with_enomem_and_recovers, .timeout = 120) {
  const char *env[] = {"SIMALLOC_ARENA_SIZE=2M", NULL};
  sp_opts o = {.preload = SP_PRELOAD, .env = env, .timeout_s = 30};
  sp_result r = exhaust("arena", "4096", &o);
  arena_recovers(&r, 2ull << 20);
  cr_assert_geq(value(&r, "bytes"), 1ull << 20, "only %llu bytes from a 2M arena",
                value(&r, "bytes"));
  sp_free(&r);
}

Test(failure, fork_from_signal_handler_inside_malloc, .timeout = 120) {
  sp_opts o = {.preload = SP_PRELOAD, .timeout_s = 30};
  sp_result r = exhaust("sigfork", "200", &o);
  cr_assert_eq(value(&r, "ok"), 200, "%s", r.out);
  sp_free(&r);
}

Test(failure, fork_during_getline_fflush_and_malloc, .timeout = 120) {
  sp_opts o = {.preload = SP_PRELOAD, .timeout_s = 30};
  sp_result r = exhaust("forkio", "150", &o);
  cr_assert_eq(value(&r, "ok"), 150, "%s", r.out);
  sp_free(&r);
}

Test(failure, threads_exit_while_others_free_their_blocks, .timeout = 120) {
  sp_opts o = {.preload = SP_PRELOAD, .timeout_s = 30};
  sp_result r = exhaust("threadexit", "30", &o);
  cr_assert_eq(value(&r, "freed"), 30ull * 8 * 256, "%s", r.out);
  sp_free(&r);
}

Test(failure, helper_rejects_bad_usage) {
  sp_opts o = {.preload = SP_PRELOAD, .timeout_s = 30};
  char *prog = sp_path("SIMALLOC_STRESS_DIR", "exhaust");
  const char *argv[] = {prog, "nosuchmode", "1", NULL};
  sp_result r = sp_run(argv, &o);
  cr_assert(r.exited && r.code == 64, "exhaust nosuchmode %s", sp_describe(&r));
  cr_assert_not_null(strstr(r.err, "'nosuchmode'"), "%s", r.err);
  sp_free(&r);
  free(prog);
}
