/* test_stress.c - the stress program under the library.
 *
 * The program's checksum depends only on its options, never on the
 * allocator or the interleaving of its threads, so the preloaded run must
 * print exactly the line that a plain run prints.
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static void assert_ok(const sp_result *r, const char *what) {
  cr_assert(r->exited && r->code == 0, "%s %s; stderr:\n%.4000s", what, sp_describe(r), r->err);
  cr_assert_not_null(strstr(r->out, " ok\n"), "%s printed no result line:\n%s", what, r->out);
}

static void stress_matches_plain_run(const char *const argv[]) {
  sp_opts plain = {.preload = SP_PLAIN, .timeout_s = 240};
  sp_opts shim = {.preload = SP_PRELOAD, .timeout_s = 240};
  sp_result a = sp_run(argv, &plain);
  sp_result b = sp_run(argv, &shim);
  assert_ok(&a, "stress (plain)");
  assert_ok(&b, "stress (preloaded)");
  cr_assert_str_eq(b.out, a.out, "the preloaded run read back other contents");
  sp_free(&a);
  sp_free(&b);
}

Test(stress, threads_swap_verified_blocks, .timeout = 600) {
  char *prog = sp_path("SIMALLOC_STRESS_DIR", "stress");
  const char *argv[] = {prog, "-t", "6", "-r", "4", "-n", "2500", NULL};
  stress_matches_plain_run(argv);
  free(prog);
}

Test(stress, few_slots_many_swaps, .timeout = 600) {
  char *prog = sp_path("SIMALLOC_STRESS_DIR", "stress");
  const char *argv[] = {prog, "-t", "8", "-r", "3", "-n", "3000", "-s", "16", NULL};
  stress_matches_plain_run(argv);
  free(prog);
}

Test(stress, bad_option_is_usage_error) {
  char *prog = sp_path("SIMALLOC_STRESS_DIR", "stress");
  const char *argv[] = {prog, "-t", "zero", NULL};
  sp_opts shim = {.preload = SP_PRELOAD, .timeout_s = 30};
  sp_result r = sp_run(argv, &shim);
  cr_assert(r.exited && r.code == 64, "stress -t zero %s", sp_describe(&r));
  cr_assert_not_null(strstr(r.err, "'zero'"), "the bad value is not quoted:\n%s", r.err);
  sp_free(&r);
  free(prog);
}
