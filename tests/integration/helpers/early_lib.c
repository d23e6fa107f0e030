/* early_lib.c - a library whose constructor allocates.
 *
 * The early helper links this library; the dynamic linker runs its
 * constructor before that of any preloaded library the helper does not
 * depend on, so these calls reach libsimalloc before its own constructor
 * has run.  Every family member is called once; early_lib_failures()
 * reports how many gave a wrong answer.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int early_lib_failures(void);
const char *early_lib_first_failure(void);

static int failures = -1;
static const char *first_failure = "";

static void expect(int ok, const char *what) {
  if (!ok && failures++ == 0)
    first_failure = what;
}

static int aligned(const void *p, size_t a) { return p && ((uintptr_t)p & (a - 1)) == 0; }

__attribute__((constructor)) static void early_allocations(void) {
  failures = 0;
  char *m = malloc(100);
  expect(m != NULL, "malloc");
  if (m)
    memset(m, 1, 100);
  char *c = calloc(10, 10);
  expect(c && c[0] == 0 && c[99] == 0, "calloc");
  char *r = realloc(m, 5000);
  expect(r && r[0] == 1 && r[99] == 1, "realloc");
  void *pm = NULL;
  expect(posix_memalign(&pm, 256, 100) == 0 && aligned(pm, 256), "posix_memalign");
  void *aa = aligned_alloc(128, 300);
  expect(aligned(aa, 128), "aligned_alloc");
  void *ma = memalign(64, 10);
  expect(aligned(ma, 64), "memalign");
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  void *va = valloc(10), *pv = pvalloc(10);
  expect(aligned(va, page) && aligned(pv, page), "valloc/pvalloc");
  expect(r && malloc_usable_size(r) >= 5000, "malloc_usable_size");
  free(r);
  free(c);
  free(pm);
  free(aa);
  free(ma);
  free(va);
  free(pv);
  free(NULL);
}

int early_lib_failures(void) { return failures; }
const char *early_lib_first_failure(void) { return first_failure; }
