/* test_early.c - calls that arrive before the library's constructor.
 *
 * The early helper links a library whose constructor uses every family
 * member; the dynamic linker's own trace (LD_DEBUG=files) proves that
 * constructor ran before libsimalloc's.
 */
#define _GNU_SOURCE
#include "run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* Position of the "calling init:" line naming an object, or NULL. */
static const char *init_of(const char *trace, const char *object) {
  for (const char *p = strstr(trace, "calling init: "); p; p = strstr(p + 1, "calling init: ")) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    if (memmem(p, len, object, strlen(object)))
      return p;
  }
  return NULL;
}

Test(early, allocation_before_the_library_constructor) {
  const char *argv[] = {"early", NULL};
  const char *env[] = {"LD_DEBUG=files", NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  it_assert_ok(&r, "early");
  cr_assert_eq(it_value(r.out, "lib"), 0, "%s", r.err);
  cr_assert_eq(it_value(r.out, "exe"), 0, "%s", r.err);
  const char *ours = init_of(r.err, "libsimalloc");
  const char *theirs = init_of(r.err, "libearly_ctor");
  cr_assert_not_null(theirs, "no init of the early library in the trace:\n%s", r.err);
  if (ours)
    cr_assert_lt(theirs, ours, "libsimalloc was initialised first:\n%s", r.err);
  it_result_free(&r);
}

/* Each entry point in turn is the very first call into the allocator. */
Test(early, every_entry_point_can_come_first) {
  static const char *const names[] = {
    "malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign",
    "valloc", "pvalloc", "malloc_usable_size", "free", "free_sized", "malloc_trim",
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char var[64];
    snprintf(var, sizeof var, "EARLY_FIRST=%s", names[i]);
    const char *env[] = {var, NULL};
    const char *argv[] = {"early", NULL};
    it_result r = it_helper(argv, env, IT_PRELOAD);
    cr_expect(r.exited && r.code == 0, "%s first: %s\n%s", names[i], it_describe(&r), r.err);
    if (r.exited)
      cr_expect_eq(it_value(r.out, "lib"), 0, "%s first: %s", names[i], r.err);
    it_result_free(&r);
  }
}

Test(early, unknown_first_call_is_reported) {
  const char *argv[] = {"early", NULL};
  const char *env[] = {"EARLY_FIRST=no_such_function", NULL};
  it_result r = it_helper(argv, env, IT_PRELOAD);
  cr_assert(r.exited && r.code == 1, "early %s", it_describe(&r));
  cr_assert_eq((long long)it_value(r.out, "lib"), -1);
  it_result_free(&r);
}

Test(early, constructors_without_preload) {
  const char *argv[] = {"early", NULL};
  it_result r = it_helper(argv, NULL, IT_PLAIN);
  it_assert_ok(&r, "early (plain)");
  it_result_free(&r);
}
