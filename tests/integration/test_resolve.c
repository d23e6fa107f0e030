/* test_resolve.c - every malloc-family symbol binds to libsimalloc. */
#define _GNU_SOURCE
#include "run.h"

#include <criterion/criterion.h>
#include <string.h>

static const char *const names[] = {
  "malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc",
  "memalign", "valloc", "pvalloc", "malloc_usable_size", "free_sized",
  "free_aligned_sized", "malloc_trim", "mallinfo2", "mallinfo", "malloc_stats", "malloc_info",
};

static const char *line_for(const char *out, const char *name) {
  size_t n = strlen(name);
  for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, name, n) == 0 && p[n] == ' ')
      return p + n + 1;
  return NULL;
}

Test(resolve, every_entry_point_comes_from_libsimalloc) {
  const char *argv[] = {"resolve", NULL};
  it_result r = it_helper(argv, NULL, IT_PRELOAD);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *obj = line_for(r.out, names[i]);
    cr_assert_not_null(obj, "%s missing from:\n%s", names[i], r.out);
    const char *eol = strchr(obj, '\n');
    int len = eol ? (int)(eol - obj) : (int)strlen(obj);
    cr_expect(memmem(obj, (size_t)len, "libsimalloc", 11) != NULL, "%s resolves to %.*s",
              names[i], len, obj);
  }
  it_assert_ok(&r, "resolve");
  it_result_free(&r);
}

/* Control: without the preload the same helper must notice libc. */
Test(resolve, plain_run_resolves_elsewhere) {
  const char *argv[] = {"resolve", NULL};
  it_result r = it_helper(argv, NULL, IT_PLAIN);
  cr_assert(r.exited && r.code == 1, "plain run %s:\n%s", it_describe(&r), r.out);
  cr_assert_null(strstr(r.out, "libsimalloc"), "libsimalloc without preload:\n%s", r.out);
  it_result_free(&r);
}
