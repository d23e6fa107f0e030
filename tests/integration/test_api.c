/* test_api.c - the malloc family's semantics under libsimalloc.
 *
 * Each test runs one subcommand of the api helper with the library
 * preloaded; the helper checks the rules and prints what it saw.
 */
#include "run.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* For the commands that need a thread in each of two heaps. */
static const char *const two_heaps[] = {"SIMALLOC_HEAPS=2", NULL};

static it_result api(const char *cmd, const char *arg, const char *const env[]) {
  const char *argv[] = {"api", cmd, arg, NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_ok(&r, cmd);
  return r;
}

#define API_TEST(name, cmd, key, want)                                \
  Test(api, name) {                                                    \
    it_result r = api(cmd, NULL, NULL);                                \
    cr_assert_eq(it_value(r.out, key), want, "%s: %s", cmd, r.out);    \
    it_result_free(&r);                                                \
  }

API_TEST(sixteen_byte_alignment, "align", "alignment", 16)
API_TEST(malloc_zero_is_unique, "malloc0", "distinct", 3)
API_TEST(realloc_null_is_malloc, "realloc-null", "ok", 1)
API_TEST(realloc_zero_frees, "realloc-zero", "reused", 1)
API_TEST(realloc_keeps_contents_when_moving, "realloc-move", "ok", 1)
Test(api, realloc_grows_in_place) {
  it_result r = api("realloc-grow", NULL, NULL);
  cr_assert_eq(it_value(r.out, "moved"), 0, "grew into a freed neighbour: %s", r.out);
  cr_assert_eq(it_value(r.out, "tail-moved"), 0, "grew into the free tail: %s", r.out);
  it_result_free(&r);
}
API_TEST(huge_requests_fail_with_enomem, "huge", "enomem", 1)
API_TEST(requests_beyond_any_arena_fail_with_enomem, "beyond-arena", "enomem", 1)
API_TEST(posix_memalign_alignments, "posix-memalign", "ok", 1)
API_TEST(aligned_alloc_and_memalign, "aligned", "ok", 1)
API_TEST(free_null_is_a_noop, "free-null", "ok", 1)
API_TEST(free_preserves_errno, "free-errno", "ok", 1)
API_TEST(usable_size_is_writable, "usable", "blocks", 600)
API_TEST(calloc_zeroes_reused_memory, "calloc", "ok", 1)
API_TEST(free_sized_and_free_aligned_sized, "sized", "ok", 1)
API_TEST(reallocarray_overflow_and_growth, "reallocarray", "ok", 1)

Test(api, realloc_shrinks_in_place) {
  it_result r = api("realloc-shrink", NULL, NULL);
  cr_assert_null(strstr(r.out, "moved=1"), "a shrinking realloc moved:\n%s", r.out);
  cr_assert_not_null(strstr(r.out, "shrink 32 moved=0"), "shrink to 32 missing:\n%s", r.out);
  it_result_free(&r);
}

Test(api, valloc_and_pvalloc_are_page_aligned) {
  it_result r = api("page", NULL, NULL);
  cr_assert_gt(it_value(r.out, "page"), 0);
  it_result_free(&r);
}

Test(api, failed_realloc_beyond_ptrdiff_max_keeps_block) {
  it_result r = api("realloc-fail", "9223372036854775808", NULL);
  cr_assert_eq(it_value(r.out, "intact"), 1);
  it_result_free(&r);
}

Test(api, failed_realloc_beyond_arena_keeps_block) {
  const char *env[] = {"SIMALLOC_ARENA_SIZE=4M", NULL};
  it_result r = api("realloc-fail", "8M", env);
  cr_assert_eq(it_value(r.out, "intact"), 1);
  it_result_free(&r);
}

/* An empty cache list takes a block from the next lists up, at most a
 * quarter larger; with the caches off, the heap's first fit serves both
 * requests from the freed block's hole. */
Test(api, an_empty_cache_list_borrows_a_slightly_larger_block) {
  it_result r = api("borrow", NULL, NULL);
  cr_expect_eq(it_value(r.out, "borrowed"), 1, "900 bytes not served by the cached 1008: %s", r.out);
  cr_expect_eq(it_value(r.out, "usable"), 1000, "the borrowed block's usable size: %s", r.out);
  cr_expect_eq(it_value(r.out, "far"), 0, "600 bytes served by the cached 1008: %s", r.out);
  it_result_free(&r);
  const char *off[] = {"SIMALLOC_CACHE_SIZE=0", NULL};
  r = api("borrow", NULL, off);
  cr_expect_eq(it_value(r.out, "borrowed"), 1, "caches off: %s", r.out);
  cr_expect_eq(it_value(r.out, "far"), 1, "caches off: %s", r.out);
  it_result_free(&r);
}

/* Blocks another thread freed into this thread's heap are used before a
 * block is borrowed from a larger size (two heaps: the freeing thread has
 * its own). */
Test(api, blocks_freed_by_other_threads_come_before_borrowing) {
  it_result r = api("remote-first", NULL, two_heaps);
  cr_expect_eq(it_value(r.out, "remote"), 8, "blocks freed by the other thread: %s", r.out);
  cr_expect_eq(it_value(r.out, "borrowed_before"), 0, "borrowed while they waited: %s", r.out);
  it_result_free(&r);
}

/* A thread keeps none of another heap's blocks that it frees for itself:
 * they go back to their heap, whose thread gets them again. */
Test(api, blocks_of_another_heap_go_home_not_to_the_freeing_thread) {
  it_result r = api("foreign-home", NULL, two_heaps);
  cr_expect_eq(it_value(r.out, "reused"), 0, "the freeing thread reused them: %s", r.out);
  cr_expect_eq(it_value(r.out, "home"), 8, "their heap's thread got them back: %s", r.out);
  it_result_free(&r);
}

/* They go in batches, one per class, and a thread holds no more than
 * 16 KiB of them: 32 blocks of each of the two small sizes go in two
 * batches, and 64 blocks of 1008 bytes in at least four. */
Test(api, blocks_of_another_heap_go_home_in_batches_of_a_class) {
  const char *env[] = {"SIMALLOC_HEAPS=2", "SIMALLOC_STATS=1", NULL};
  it_result r = api("away-batches", NULL, env);
  const char *at = strstr(r.err, "remote frees ");
  cr_assert_not_null(at, "no remote frees in the report: %s", r.err);
  unsigned long long pushes = strtoull(at + strlen("remote frees "), NULL, 10);
  cr_expect_geq(pushes, 2 + 4, "a thread held more than 16 KiB: %s", at);
  cr_expect_leq(pushes, 2 + 5, "the two small sizes went one batch at a time: %s", at);
  it_result_free(&r);
}

/* A cache list the thread has stopped using goes back to the heap, whose
 * first fit then reuses the hole. */
Test(api, a_list_the_thread_no_longer_uses_goes_back_to_the_heap) {
  it_result r = api("idle-list", NULL, NULL);
  cr_expect_eq(it_value(r.out, "same"), 0, "the 1008-byte block stayed cached: %s", r.out);
  cr_expect_gt(it_value(r.out, "inside"), 0, "its hole was not reused: %s", r.out);
  it_result_free(&r);
}

/* glibc's extensions report on and trim this allocator's heaps, not
 * glibc's unused one. */
Test(api, malloc_trim_gives_back_the_pages_of_holes) {
  it_result r = api("trim", NULL, NULL);
  unsigned long long before = it_value(r.out, "before_kib"), after = it_value(r.out, "after_kib");
  /* 1000 holes of 16 KiB hold at least 12 KiB of whole pages each. */
  cr_assert_geq(before, after + 11000, "resident %llu KiB before, %llu after:\n%s", before, after,
                r.out);
  it_result_free(&r);
}

Test(api, malloc_trim_keeps_pad_bytes_at_the_top) {
  const char *env[] = {"SIMALLOC_RETAIN=64M", NULL};
  it_result r = api("trim-pad", NULL, env);
  unsigned long long freed = it_value(r.out, "freed_kib"), padded = it_value(r.out, "padded_kib"),
                     trimmed = it_value(r.out, "trimmed_kib");
  cr_assert_eq(it_value(r.out, "pad_trim"), 1, "%s", r.out);
  cr_assert_eq(it_value(r.out, "rest_trim"), 1, "%s", r.out);
  /* 32 MiB freed: trimming down to an 8 MiB pad gives back about 24, the
   * rest about 8 more. */
  cr_assert_geq(freed, padded + 20 * 1024, "%s", r.out);
  cr_assert_geq(padded, trimmed + 7 * 1024, "%s", r.out);
  cr_assert_leq(padded, trimmed + 9 * 1024, "%s", r.out);
  it_result_free(&r);
}

/* The helper checks the fields against each other and against what it
 * allocated and freed. */
Test(api, mallinfo_describes_the_heaps) {
  it_result r = api("mallinfo", NULL, NULL);
  cr_assert_geq(it_value(r.out, "grew"), 1000000, "%s", r.out);
  cr_assert_geq(it_value(r.out, "arena"), it_value(r.out, "uordblks"), "%s", r.out);
  it_result_free(&r);
}

Test(api, malloc_stats_reports_the_heaps_on_stderr) {
  it_result r = api("malloc-stats", NULL, NULL);
  const char *total = strstr(r.err, "Total (incl. mmap):");
  cr_assert_not_null(strstr(r.err, "Arena 0:"), "%s", r.err);
  cr_assert_not_null(total, "%s", r.err);
  const char *in_use = strstr(total, "in use bytes     =");
  cr_assert_not_null(in_use, "%s", r.err);
  cr_assert_geq(strtoull(in_use + strlen("in use bytes     ="), NULL, 10), 1ull << 20, "%s", r.err);
  it_result_free(&r);
}

Test(api, malloc_info_writes_the_heaps_as_xml) {
  it_result r = api("malloc-info", NULL, NULL);
  cr_assert(strncmp(r.out, "<malloc version=\"1\">\n<heap nr=\"0\">", 34) == 0, "%s", r.out);
  const char *end = strstr(r.out, "</malloc>\n");
  cr_assert_not_null(end, "%s", r.out);
  cr_assert_eq(end[strlen("</malloc>\n")], 0, "more after the document:\n%s", r.out);
  /* The last <system type="current"> is the total. */
  const char *cur = NULL, *key = "<system type=\"current\" size=\"";
  for (const char *q = r.out; (q = strstr(q, key)) != NULL; q++) cur = q;
  cr_assert_not_null(cur, "%s", r.out);
  cr_assert_geq(strtoull(cur + strlen(key), NULL, 10), 1ull << 20, "%s", r.out);
  it_result_free(&r);
}

Test(api, helper_rejects_unknown_command) {
  const char *argv[] = {"api", "no-such-command", NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  cr_assert(r.exited && r.code == 2, "helper %s", it_describe(&r));
  cr_assert_not_null(strstr(r.err, "unknown command"));
  it_result_free(&r);
}

/* A thread whose heap would have to grow takes its blocks from another
 * heap's free memory instead, once there is enough of it (two heaps). */
Test(api, a_heap_that_would_grow_takes_another_heaps_idle_memory) {
  it_result r = api("idle-heap", NULL, two_heaps);
  unsigned long long of = it_value(r.out, "of");
  cr_expect_eq(it_value(r.out, "held"), 0, "taken while the other heap was full: %s", r.out);
  cr_expect_geq(it_value(r.out, "freed"), of * 3 / 4, "not taken from the idle heap: %s", r.out);
  it_result_free(&r);
}
