/* test_misuse.c - pointers the allocator never handed out, and damage.
 *
 * free and realloc of a stack address, an interior pointer, a pointer
 * into foreign mmap'd memory, a double free, and a write past the end of a
 * block (reported at the thread's next free, or when something needs the
 * block sooner): the child must die by SIGABRT after one message that
 * names the call and the pointer.  With SIMALLOC_ON_ERROR=warn the same
 * calls are reported and have no effect; with SIMALLOC_CHECK=1 a write
 * into a freed block is caught by the heap check at the next call.
 */
#include "run.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static void expect_report(const char *kind, const char *message) {
  const char *argv[] = {"misuse", kind, NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  it_assert_abort(&r, message);
  unsigned long long bad = it_value(r.out, "ptr");
  const char *at = strstr(r.err, message) + strlen(message);
  unsigned long long named = strtoull(at, NULL, 16);
  cr_assert_eq(named, bad, "message names %#llx, the bad pointer was %#llx:\n%s", named, bad,
               r.err);
  it_result_free(&r);
}

Test(misuse, free_of_stack_address) {
  expect_report("free-stack", "simalloc: free(): invalid pointer 0x");
}

Test(misuse, free_of_interior_pointer) {
  expect_report("free-interior", "simalloc: free(): invalid pointer 0x");
}

Test(misuse, free_of_foreign_mmap) {
  expect_report("free-mmap", "simalloc: free(): invalid pointer 0x");
}

Test(misuse, realloc_of_stack_address) {
  expect_report("realloc-stack", "simalloc: realloc(): invalid pointer 0x");
}

Test(misuse, realloc_of_interior_pointer) {
  expect_report("realloc-interior", "simalloc: realloc(): invalid pointer 0x");
}

Test(misuse, realloc_of_foreign_mmap) {
  expect_report("realloc-mmap", "simalloc: realloc(): invalid pointer 0x");
}

Test(misuse, free_of_misaligned_pointer) {
  expect_report("free-misaligned", "simalloc: free(): invalid pointer 0x");
}

Test(misuse, realloc_of_misaligned_pointer) {
  expect_report("realloc-misaligned", "simalloc: realloc(): invalid pointer 0x");
}

Test(misuse, double_free) {
  expect_report("double-free", "simalloc: free(): double free 0x");
}

/* A freed block is held back until the thread's next free, which reports
 * the damage, or until something needs it sooner (tcache.h). */
#define OVERFLOW "simalloc: free(): heap overflow: the header after this block is damaged 0x"

/* The helper says when the call that should have reported it returned. */
static void expect_overflow(const char *kind) {
  const char *argv[] = {"misuse", kind, NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  it_assert_abort(&r, OVERFLOW);
  cr_assert_null(strstr(r.err, "after an overflow"), "reported too late:\n%s", r.err);
  it_result_free(&r);
  expect_report(kind, OVERFLOW);  /* names the block */
}

Test(misuse, write_past_the_end_is_reported_at_the_next_free) {
  expect_overflow("overflow");
}

Test(misuse, write_past_the_end_is_reported_by_a_malloc_with_an_empty_list) {
  expect_overflow("overflow-malloc");
}

Test(misuse, write_past_the_end_is_reported_at_the_threads_exit) {
  expect_overflow("overflow-thread");
}

Test(misuse, write_past_the_end_is_reported_at_the_processs_exit) {
  expect_overflow("overflow-exit");
}

/* With the caches off nothing is held back: the free itself reports it. */
Test(misuse, write_past_the_end_without_caches_is_reported_at_its_free) {
  const char *argv[] = {"misuse", "overflow", NULL};
  const char *env[] = {"SIMALLOC_CACHE_SIZE=0", NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_abort(&r, OVERFLOW);
  cr_assert_null(strstr(r.err, "returned"), "the free returned:\n%s", r.err);
  it_result_free(&r);
}

Test(misuse, a_write_to_a_cached_block_is_reported_when_the_cache_is_emptied) {
  expect_report("write-after-free",
                "simalloc: free(): use after free: a cached block's link was overwritten with 0x");
}

/* A malloc never hands out what an overwritten link points to. */
Test(misuse, a_write_to_a_cached_block_is_reported_by_the_malloc_it_would_mislead) {
  expect_report("write-after-free-malloc",
                "simalloc: malloc(): use after free: a cached block's link was overwritten with 0x");
}

Test(misuse, warn_mode_reports_every_error_and_goes_on) {
  const char *argv[] = {"misuse", "warn", NULL};
  const char *env[] = {"SIMALLOC_ON_ERROR=warn", NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_ok(&r, "misuse warn");
  cr_assert_eq(it_value(r.out, "survived"), 1);
  cr_assert_not_null(strstr(r.err, "simalloc: free(): double free 0x"), "%s", r.err);
  cr_assert_not_null(strstr(r.err, "simalloc: free(): invalid pointer 0x"), "%s", r.err);
  cr_assert_not_null(strstr(r.err, "simalloc: realloc(): invalid pointer 0x"), "%s", r.err);
  cr_assert_not_null(strstr(r.err, "simalloc: malloc_usable_size(): invalid pointer 0x"), "%s", r.err);
  it_result_free(&r);
}

Test(misuse, heap_check_catches_a_write_into_a_freed_block) {
  const char *argv[] = {"misuse", "use-after-free", NULL};
  const char *env[] = {"SIMALLOC_CHECK=1", NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_abort(&r, "simalloc: heap check failed: ");
  it_result_free(&r);
}
