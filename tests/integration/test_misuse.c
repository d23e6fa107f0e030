/* test_misuse.c - pointers the allocator never handed out.
 *
 * free and realloc of a stack address, an interior pointer, a pointer
 * into foreign mmap'd memory, and a double free: the child must die by
 * SIGABRT after one message that names the call and the pointer.
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

Test(misuse, double_free) {
  expect_report("double-free", "simalloc: free(): double free 0x");
}
