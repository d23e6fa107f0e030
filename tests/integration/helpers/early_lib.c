/* early_lib.c - a library whose constructor allocates.
 *
 * The early helper links this library; the dynamic linker runs its
 * constructor before that of any preloaded library the helper does not
 * depend on, so these calls reach libsimalloc before its own constructor
 * has run.  EARLY_FIRST=<name> picks which entry point is called first
 * (default malloc), so each one can be the call that has to initialise
 * the allocator; then every entry point is called once.
 * early_lib_failures() reports how many gave a wrong answer, -1 if the
 * constructor never ran or EARLY_FIRST named nothing known.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
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

static int try_malloc(void) {
  char *p = malloc(100);
  if (p)
    memset(p, 1, 100);
  free(p);
  return p != NULL;
}

static int try_calloc(void) {
  char *p = calloc(10, 10);
  int ok = p && p[0] == 0 && p[99] == 0;
  free(p);
  return ok;
}

static int try_realloc(void) {
  char *p = realloc(NULL, 10);
  if (!p)
    return 0;
  p[9] = 7;
  char *r = realloc(p, 5000);
  int ok = r && r[9] == 7;
  free(ok ? r : p);
  return ok;
}

static int try_posix_memalign(void) {
  void *p = NULL;
  int ok = posix_memalign(&p, 256, 100) == 0 && aligned(p, 256);
  free(p);
  return ok;
}

static int try_aligned_alloc(void) {
  void *p = aligned_alloc(128, 300);
  free(p);
  return aligned(p, 128);
}

static int try_memalign(void) {
  void *p = memalign(64, 10);
  free(p);
  return aligned(p, 64);
}

static int try_valloc(void) {
  void *p = valloc(10);
  free(p);
  return aligned(p, (size_t)sysconf(_SC_PAGESIZE));
}

static int try_pvalloc(void) {
  void *p = pvalloc(10);
  free(p);
  return aligned(p, (size_t)sysconf(_SC_PAGESIZE));
}

static int try_usable_size(void) {
  if (malloc_usable_size(NULL) != 0)
    return 0;
  void *p = malloc(300);
  int ok = p && malloc_usable_size(p) >= 300;
  free(p);
  return ok;
}

static int try_free(void) {
  errno = EXDEV;
  free(NULL);
  return errno == EXDEV;
}

/* C23 entry points: glibc before 2.39 has no declaration, look them up. */
static int try_free_sized(void) {
  void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
  void (*fas)(void *, size_t, size_t) =
      (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
  if (!fs || !fas)
    return 1; /* the allocator in use does not have them */
  fs(NULL, 0);
  fas(NULL, 64, 0);
  void *p = malloc(40), *q = aligned_alloc(64, 64);
  fs(p, 40);
  fas(q, 64, 64);
  return p && q;
}

/* glibc's extensions: the heaps they describe and trim start first. */
static int try_trim(void) {
  int first = malloc_trim(0);
  void *p = malloc(100000);
  int ok = (first == 0 || first == 1) && p && mallinfo2().uordblks >= 100000;
  free(p);
  return ok;
}

static const struct {
  const char *name;
  int (*fn)(void);
} calls[] = {
  {"malloc", try_malloc},
  {"calloc", try_calloc},
  {"realloc", try_realloc},
  {"posix_memalign", try_posix_memalign},
  {"aligned_alloc", try_aligned_alloc},
  {"memalign", try_memalign},
  {"valloc", try_valloc},
  {"pvalloc", try_pvalloc},
  {"malloc_usable_size", try_usable_size},
  {"free", try_free},
  {"free_sized", try_free_sized},
  {"malloc_trim", try_trim},
};
#define N_CALLS (sizeof calls / sizeof calls[0])

__attribute__((constructor)) static void early_allocations(void) {
  const char *first = getenv("EARLY_FIRST");
  size_t i;
  first = first ? first : "malloc";
  for (i = 0; i < N_CALLS && strcmp(calls[i].name, first) != 0; i++)
    ;
  if (i == N_CALLS)
    return; /* unknown name: failures stays -1 */
  failures = 0;
  expect(calls[i].fn(), calls[i].name);
  for (i = 0; i < N_CALLS; i++)
    expect(calls[i].fn(), calls[i].name);
}

int early_lib_failures(void) { return failures; }
const char *early_lib_first_failure(void) { return first_failure; }
