/* test_stats.c - SIMALLOC_STATS=1 prints a summary at exit. */
#define _GNU_SOURCE
#include "run.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* The number after the first standalone word `name` in text, or -1. */
static long long count_of(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
    if ((p > text && isalnum((unsigned char)p[-1])) || isalnum((unsigned char)p[n]) ||
        p[n] == '_')
      continue;
    const char *q = p + n;
    while (*q == ' ' || *q == '=' || *q == ':')
      q++;
    if (isdigit((unsigned char)*q))
      return strtoll(q, NULL, 10);
  }
  return -1;
}

Test(stats, summary_at_exit) {
  const char *argv[] = {"api", "stats", NULL};
  const char *env[] = {"SIMALLOC_STATS=1", NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_ok(&r, "api stats");
  cr_assert_eq(strncmp(r.err, "simalloc:", 9), 0, "first stderr line:\n%s", r.err);
  const char *words[] = {"peak", "largest free", "touched", "blocks"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    cr_expect_not_null(strstr(r.err, words[i]), "no \"%s\" in:\n%s", words[i], r.err);
  /* the per-function counts follow the word "calls" when it is there */
  const char *calls = strstr(r.err, "calls");
  calls = calls ? calls : r.err;
  cr_expect_geq(count_of(calls, "malloc"), 1000, "malloc count in:\n%s", r.err);
  cr_expect_geq(count_of(calls, "calloc"), 500, "calloc count in:\n%s", r.err);
  cr_expect_geq(count_of(calls, "realloc"), 299, "realloc count in:\n%s", r.err);
  cr_expect_geq(count_of(calls, "free"), 1500, "free count in:\n%s", r.err);
  it_result_free(&r);
}

Test(stats, silent_by_default) {
  const char *argv[] = {"api", "stats", NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  it_assert_ok(&r, "api stats");
  cr_assert_null(strstr(r.err, "simalloc:"), "unexpected output:\n%s", r.err);
  it_result_free(&r);
}

/* The cache flushes of the "bursts" helper (100 rounds of 100 blocks). */
static long long burst_flushes(const char *cache_size) {
  const char *argv[] = {"api", "bursts", NULL};
  const char *env[] = {"SIMALLOC_STATS=1", cache_size, NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_ok(&r, "api bursts");
  const char *calls = strstr(r.err, "calls");
  long long n = count_of(calls ? calls : r.err, "flushes");
  cr_assert_geq(n, 0, "no flush count in:\n%s", r.err);
  it_result_free(&r);
  return n;
}

Test(stats, a_busy_cache_list_grows_to_its_bursts) {
  /* 16K: the 208-byte class starts at 78 blocks and may grow to 157 */
  long long grown = burst_flushes("SIMALLOC_CACHE_SIZE=16K");
  /* 4K: it starts at 19 and may grow to 39, still short of a burst */
  long long capped = burst_flushes("SIMALLOC_CACHE_SIZE=4K");
  cr_expect_leq(grown, 5, "a list that can hold a burst still flushed %lld times", grown);
  cr_expect_geq(capped, 100, "a list shorter than a burst flushed only %lld times", capped);
}

/* N from "in N heap(s)" in the summary line, or -1. */
static long heaps_in(const char *text) {
  for (const char *p = strstr(text, " heap"); p; p = strstr(p + 1, " heap")) {
    const char *q = p;
    while (q > text && isdigit((unsigned char)q[-1])) q--;
    if (q < p && q - 4 >= text && strncmp(q - 4, " in ", 4) == 0) return strtol(q, NULL, 10);
  }
  return -1;
}

/* A heap is set up when a thread first gets it: one thread, one heap.
 * (Without the large blocks' heap, which the helper's large blocks would
 * open: see the next test.) */
Test(stats, heaps_are_set_up_as_threads_come) {
  const char *env[] = {"SIMALLOC_STATS=1", "SIMALLOC_HEAPS=4", "SIMALLOC_LARGE_THRESHOLD=0", NULL};
  const char *one[] = {"api", "stats", NULL};
  it_result r = it_helper(one, env, IT_PRELOAD);
  it_assert_ok(&r, "api stats");
  cr_expect_eq(heaps_in(r.err), 1, "one thread:\n%s", r.err);
  it_result_free(&r);
  const char *three[] = {"churn", "2", "2000", "64", NULL};  /* main and two workers */
  r = it_helper(three, env, IT_PRELOAD);
  it_assert_ok(&r, "churn");
  cr_expect_eq(heaps_in(r.err), 3, "three threads:\n%s", r.err);
  it_result_free(&r);
}

/* Large blocks get a heap of their own once the process has asked for
 * 4 MiB of them; a few stay in the thread's heap; a threshold of 0 keeps
 * them all there.  A buffer that realloc moves in and out of that heap
 * keeps its bytes (the helper checks them). */
Test(stats, large_blocks_get_a_heap_of_their_own_in_quantity) {
  const char *env[] = {"SIMALLOC_STATS=1", "SIMALLOC_HEAPS=1", NULL};
  const char *few[] = {"api", "large-few", NULL};
  it_result r = it_helper(few, env, IT_PRELOAD);
  it_assert_ok(&r, "api large-few");
  cr_expect_eq(heaps_in(r.err), 1, "a few large blocks:\n%s", r.err);
  it_result_free(&r);
  const char *many[] = {"api", "large-many", NULL};
  r = it_helper(many, env, IT_PRELOAD);
  it_assert_ok(&r, "api large-many");
  cr_expect_eq(it_value(r.out, "steps"), 20, "%s", r.out);
  cr_expect_eq(heaps_in(r.err), 2, "16 MiB of large blocks:\n%s", r.err);
  it_result_free(&r);
  const char *off[] = {"SIMALLOC_STATS=1", "SIMALLOC_HEAPS=1", "SIMALLOC_LARGE_THRESHOLD=0", NULL};
  r = it_helper(many, off, IT_PRELOAD);
  it_assert_ok(&r, "api large-many, threshold 0");
  cr_expect_eq(heaps_in(r.err), 1, "threshold 0:\n%s", r.err);
  it_result_free(&r);
}

/* A size class used once takes a block or two from the heap, not a
 * batch for the thread cache: one block of each of 256 sizes touches
 * little more of the arena than the blocks themselves. */
Test(stats, first_use_of_a_size_costs_little) {
  const char *argv[] = {"api", "one-each", NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  it_assert_ok(&r, "api one-each");
  long long asked = count_of(r.out, "asked"), touched = count_of(r.out, "touched");
  cr_assert_gt(asked, 0, "output:\n%s", r.out);
  cr_expect_leq(touched, 3 * asked, "%lld bytes touched for %lld asked for", touched, asked);
  it_result_free(&r);
}
