/* test_threads.c - concurrency: churn across threads, fork under load. */
#include "run.h"

#include <criterion/criterion.h>

Test(threads, churn_with_verified_patterns) {
  const char *argv[] = {"churn", "8", "100000", "512", NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  it_assert_ok(&r, "churn");
  cr_assert_eq(it_value(r.out, "ops"), 800000);
  cr_assert_eq(it_value(r.out, "enomem"), 0);
  it_result_free(&r);
}

Test(threads, churn_single_thread) {
  const char *argv[] = {"churn", "1", "200000", "2048", NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  it_assert_ok(&r, "churn");
  it_result_free(&r);
}

/* A small arena runs dry under concurrent load: calls fail with ENOMEM,
 * never crash, and succeed again once other threads free. */
Test(threads, churn_in_a_small_arena) {
  const char *argv[] = {"churn", "4", "50000", "512", "enomem-ok", NULL};
  const char *env[] = {"SIMALLOC_ARENA_SIZE=2M", NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_ok(&r, "churn in 2M");
  cr_assert_gt(it_value(r.out, "enomem"), 0, "the 2M arena never ran out: %s", r.out);
  cr_assert_eq(it_value(r.out, "ops"), 200000);
  it_result_free(&r);
}

Test(threads, forks_while_four_threads_allocate) {
  const char *argv[] = {"forks", "400", "4", NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  it_assert_ok(&r, "forks");
  cr_assert_eq(it_value(r.out, "forks"), 400);
  cr_assert_eq(it_value(r.out, "failed"), 0);
  it_result_free(&r);
}
