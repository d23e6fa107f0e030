/* test_threads.c - concurrency: churn across threads, fork under load. */
#include "run.h"

#include <criterion/criterion.h>

Test(threads, churn_with_verified_patterns) {
  const char *argv[] = {"churn", "8", "100000", "512", NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  it_assert_ok(&r, "churn");
  cr_assert_eq(it_value(r.out, "ops"), 800000);
  it_result_free(&r);
}

Test(threads, churn_single_thread) {
  const char *argv[] = {"churn", "1", "200000", "2048", NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  it_assert_ok(&r, "churn");
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
