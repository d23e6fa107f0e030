/* api.c - the malloc family's public semantics, one subcommand per area.
 *
 *   api <command> [args]
 *
 * Every command checks one group of rules from the glibc contract that the
 * allocator promises and prints key=value facts the test may check too.
 * Exit 0 when every rule held, 1 on the first broken one, 2 on bad usage.
 */
#define _GNU_SOURCE
#include "common.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define ALIGN 16

/* Sizes passed through a volatile so the compiler cannot reason about
 * (or warn on) deliberately absurd requests. */
static volatile size_t huge_sizes[] = {
  (size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 15, (size_t)PTRDIFF_MAX + 4096,
};
#define N_HUGE (sizeof huge_sizes / sizeof huge_sizes[0])

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static int cmd_align(void) {
  for (size_t n = 0; n <= 4096; n++) {
    void *p = malloc(n), *q = calloc(1, n), *r = realloc(NULL, n + 1);
    CHECK(p && q && r, "allocation of %zu failed", n);
    CHECK(aligned(p, ALIGN), "malloc(%zu) = %p", n, p);
    CHECK(aligned(q, ALIGN), "calloc(1, %zu) = %p", n, q);
    CHECK(aligned(r, ALIGN), "realloc(NULL, %zu) = %p", n + 1, r);
    r = realloc(r, n * 3 + 1);
    CHECK(r && aligned(r, ALIGN), "realloc(.., %zu) = %p", n * 3 + 1, r);
    free(p);
    free(q);
    free(r);
  }
  for (size_t n = 8192; n <= (size_t)64 << 20; n *= 2) {
    void *p = malloc(n - 7);
    CHECK(p && aligned(p, ALIGN), "malloc(%zu) = %p", n - 7, p);
    free(p);
  }
  printf("alignment=%d\n", ALIGN);
  return 0;
}

static int cmd_malloc0(void) {
  void *a = malloc(0), *b = malloc(0), *c = malloc(0);
  CHECK(a && b && c, "malloc(0) returned NULL");
  CHECK(a != b && b != c && a != c, "malloc(0) not unique: %p %p %p", a, b, c);
  CHECK(aligned(a, ALIGN) && aligned(b, ALIGN), "malloc(0) misaligned");
  free(a);
  free(b);
  free(c);
  printf("distinct=3\n");
  return 0;
}

static int cmd_realloc_null(void) {
  for (size_t n = 1; n < 100000; n = n * 3 + 1) {
    unsigned char *p = realloc(NULL, n);
    CHECK(p != NULL, "realloc(NULL, %zu) returned NULL", n);
    CHECK(malloc_usable_size(p) >= n, "usable %zu < %zu", malloc_usable_size(p), n);
    it_fill(p, n, (uint32_t)n);
    CHECK(it_verify(p, n, (uint32_t)n) == n, "block of %zu not writable", n);
    free(p);
  }
  printf("ok=1\n");
  return 0;
}

/* realloc(p, 0) frees p and returns NULL; the block must be reusable. */
static int cmd_realloc_zero(void) {
  size_t n = 64 << 10;
  void *p = malloc(n);
  CHECK(p != NULL, "malloc(%zu)", n);
  it_fill(p, n, 7);
  errno = 0;
  void *r = realloc(p, 0);
  CHECK(r == NULL, "realloc(p, 0) returned %p, expected NULL", r);
  void *q = malloc(n);
  CHECK(q != NULL, "malloc after realloc(p, 0)");
  printf("reused=%d\n", q == p);
  CHECK(q == p, "block %p was not freed by realloc(p, 0): malloc gave %p", p, q);
  free(q);
  return 0;
}

static int cmd_realloc_move(void) {
  for (size_t n = 1; n < 300000; n = n * 2 + 3) {
    unsigned char *p = malloc(n);
    CHECK(p != NULL, "malloc(%zu)", n);
    it_fill(p, n, (uint32_t)n);
    void *blocker = malloc(16); /* keep p from growing in place */
    unsigned char *r = realloc(p, n * 5 + 100);
    CHECK(r != NULL, "realloc to %zu", n * 5 + 100);
    size_t bad = it_verify(r, n, (uint32_t)n);
    CHECK(bad == n, "byte %zu of %zu lost by growing realloc", bad, n);
    it_fill(r, n * 5 + 100, 3);
    r = realloc(r, n / 2 + 1);
    CHECK(r != NULL && it_verify(r, n / 2 + 1, 3) == n / 2 + 1, "shrinking lost data");
    free(r);
    free(blocker);
  }
  printf("ok=1\n");
  return 0;
}

/* a, b, c consecutive blocks; b freed: a grows over b without moving. */
static int cmd_realloc_grow(void) {
  size_t s = 64 << 10;
  char *a = malloc(s), *b = malloc(s), *c = malloc(s);
  CHECK(a && b && c, "malloc(%zu)", s);
  size_t gap = (size_t)(b - a);
  CHECK(b > a && gap >= s && gap <= s + 64,
        "precondition: b=%p does not follow a=%p (gap %zu)", (void *)b, (void *)a, gap);
  it_fill(a, s, 1);
  it_fill(c, s, 3);
  free(b);
  char *r = realloc(a, s + s / 2);
  printf("moved=%d\n", r != a);
  CHECK(r == a, "realloc(%p, %zu) into the free neighbour moved to %p", (void *)a,
        s + s / 2, (void *)r);
  CHECK(it_verify(r, s, 1) == s, "contents lost on growth");
  it_fill(r + s, s / 2, 2);
  CHECK(it_verify(c, s, 3) == s, "the following used block was overwritten");
  free(r);
  free(c);
  /* everything after x is free now: it grows into the untouched tail */
  size_t t = 16 << 10;
  char *x = malloc(t);
  CHECK(x != NULL, "malloc(%zu)", t);
  it_fill(x, t, 4);
  char *y = realloc(x, 6 * t);
  printf("tail-moved=%d\n", y != x);
  CHECK(y == x, "realloc(%p, %zu) into the free tail moved to %p", (void *)x, 6 * t, (void *)y);
  CHECK(it_verify(y, t, 4) == t, "contents lost on growth into the tail");
  free(y);
  return 0;
}

static int cmd_realloc_shrink(void) {
  size_t s = 64 << 10;
  char *a = malloc(s), *guard = malloc(64);
  CHECK(a && guard, "malloc");
  it_fill(a, s, 9);
  for (size_t n = s / 2; n >= 16; n /= 4) {
    char *r = realloc(a, n);
    printf("shrink %zu moved=%d\n", n, r != a);
    CHECK(r == a, "realloc(%p, %zu) shrinking moved to %p", (void *)a, n, (void *)r);
    CHECK(it_verify(r, n, 9) == n, "contents lost on shrink to %zu", n);
  }
  free(a);
  free(guard);
  return 0;
}

/* A failed realloc returns NULL with ENOMEM and leaves the block alone. */
static int cmd_realloc_fail(int argc, char **argv) {
  size_t want = argc > 2 ? it_size_arg(argv[2]) : SIZE_MAX;
  if (!want) {
    fprintf(stderr, "api: realloc-fail: bad size '%s'\n", argv[2]);
    return 2;
  }
  size_t n = 4000;
  char *p = malloc(n);
  CHECK(p != NULL, "malloc(%zu)", n);
  it_fill(p, n, 5);
  errno = 0;
  char *r = realloc(p, want);
  CHECK(r == NULL, "realloc(p, %zu) succeeded", want);
  CHECK(errno == ENOMEM, "errno %d after failed realloc, expected ENOMEM", errno);
  CHECK(it_verify(p, n, 5) == n, "old block damaged by failed realloc");
  CHECK(malloc_usable_size(p) >= n, "old block lost its size");
  r = realloc(p, 2 * n);
  CHECK(r && it_verify(r, n, 5) == n, "old block unusable after failed realloc");
  free(r);
  printf("intact=1\n");
  return 0;
}

static void expect_enomem(void *p, const char *call, size_t n) {
  CHECK(p == NULL, "%s(%zu) returned %p", call, n, p);
  CHECK(errno == ENOMEM, "%s(%zu): errno %d, expected ENOMEM", call, n, errno);
}

static int cmd_huge(void) {
  for (size_t i = 0; i < N_HUGE; i++) {
    size_t n = huge_sizes[i];
    void *p;
    errno = 0; expect_enomem(malloc(n), "malloc", n);
    errno = 0; expect_enomem(calloc(1, n), "calloc(1, n)", n);
    errno = 0; expect_enomem(realloc(NULL, n), "realloc(NULL, n)", n);
    errno = 0; expect_enomem(aligned_alloc(64, n), "aligned_alloc(64, n)", n);
    errno = 0; expect_enomem(memalign(64, n), "memalign(64, n)", n);
    errno = 0; expect_enomem(valloc(n), "valloc", n);
    errno = 0; expect_enomem(pvalloc(n), "pvalloc", n);
    int rc = posix_memalign(&p, 64, n);
    CHECK(rc == ENOMEM, "posix_memalign(64, %zu) returned %d, expected ENOMEM", n, rc);
  }
  volatile size_t half = SIZE_MAX / 2 + 1, big = SIZE_MAX / 8;
  errno = 0; expect_enomem(calloc(half, 2), "calloc overflow (SIZE_MAX/2+1) x", 2);
  errno = 0; expect_enomem(calloc(big, 16), "calloc overflow (SIZE_MAX/8) x", 16);
  volatile size_t quarter = SIZE_MAX / 4;
  errno = 0; expect_enomem(calloc(5, quarter), "calloc overflow 5 x", quarter);
  volatile size_t a = (size_t)1 << 32, b = ((size_t)1 << 31) + 1;
  errno = 0; expect_enomem(calloc(a, b), "calloc 2^32 x", b);
  printf("enomem=1\n");
  return 0;
}

/* Sizes below PTRDIFF_MAX that no arena can hold still fail cleanly. */
static int cmd_beyond_arena(void) {
  static volatile size_t sizes[] = {
    (size_t)1 << 36, ((size_t)1 << 36) + 16, ((size_t)1 << 36) - 16, (size_t)1 << 40,
    (size_t)1 << 44, (size_t)1 << 60, 3 * (SIZE_MAX / 8),
  };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p;
    errno = 0; expect_enomem(malloc(n), "malloc", n);
    errno = 0; expect_enomem(calloc(1, n), "calloc(1, n)", n);
    errno = 0; expect_enomem(realloc(NULL, n), "realloc(NULL, n)", n);
    errno = 0; expect_enomem(aligned_alloc(4096, n), "aligned_alloc(4096, n)", n);
    int rc = posix_memalign(&p, 64, n);
    CHECK(rc == ENOMEM, "posix_memalign(64, %zu) returned %d, expected ENOMEM", n, rc);
    void *q = malloc(100);
    CHECK(q != NULL, "malloc(100) after a failed %zu", n);
    errno = 0; expect_enomem(realloc(q, n), "realloc(q, n)", n);
    free(q);
  }
  printf("enomem=1\n");
  return 0;
}

static void try_posix_memalign(size_t align, size_t n, int want) {
  void *p = (void *)0x1;
  int rc = posix_memalign(&p, align, n);
  CHECK(rc == want, "posix_memalign(%zu, %zu) = %d, expected %d", align, n, rc, want);
  if (rc)
    return;
  CHECK(p && aligned(p, align), "posix_memalign(%zu) gave %p", align, p);
  CHECK(malloc_usable_size(p) >= n, "posix_memalign usable size short");
  memset(p, 0x5a, n);
  free(p);
}

static int cmd_posix_memalign(void) {
  size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, 4097, 3 * sizeof(void *)};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    try_posix_memalign(bad[i], 64, EINVAL);
  for (size_t a = sizeof(void *); a <= (size_t)1 << 20; a *= 2) {
    try_posix_memalign(a, 1, 0);
    try_posix_memalign(a, a + 3, 0);
    try_posix_memalign(a, 3 * a, 0);
  }
  try_posix_memalign(64, 0, 0);
  printf("ok=1\n");
  return 0;
}

typedef void *(*align_fn)(size_t, size_t);

static void *call_aligned_alloc(size_t a, size_t n) { return aligned_alloc(a, n); }
static void *call_memalign(size_t a, size_t n) { return memalign(a, n); }

static void check_aligned_fn(align_fn fn, const char *name) {
  size_t bad[] = {3, 5, 6, 12, 24, 48, 100, 4095, 4097, 3 * 4096};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    void *p = fn(bad[i], 64);
    CHECK(p == NULL, "%s(%zu, 64) accepted a non-power-of-two", name, bad[i]);
    CHECK(errno == EINVAL, "%s(%zu, 64): errno %d, expected EINVAL", name, bad[i], errno);
  }
  for (size_t a = 1; a <= (size_t)1 << 20; a *= 2) {
    for (size_t n = 1; n < 5 * a + 100; n = n * 7 + 3) {
      char *p = fn(a, n);
      CHECK(p && aligned(p, a), "%s(%zu, %zu) = %p", name, a, n, (void *)p);
      CHECK(malloc_usable_size(p) >= n, "%s usable size short", name);
      it_fill(p, n, (uint32_t)a);
      free(p);
    }
  }
}

static int cmd_aligned(void) {
  check_aligned_fn(call_aligned_alloc, "aligned_alloc");
  check_aligned_fn(call_memalign, "memalign");
  printf("ok=1\n");
  return 0;
}

static int cmd_page(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (size_t n = 1; n < 5 * page; n = n * 3 + 1) {
    char *v = valloc(n), *pv = pvalloc(n);
    CHECK(v && aligned(v, page), "valloc(%zu) = %p", n, (void *)v);
    CHECK(pv && aligned(pv, page), "pvalloc(%zu) = %p", n, (void *)pv);
    size_t rounded = (n + page - 1) & ~(page - 1);
    CHECK(malloc_usable_size(v) >= n, "valloc usable short");
    CHECK(malloc_usable_size(pv) >= rounded, "pvalloc(%zu) usable %zu < %zu", n,
          malloc_usable_size(pv), rounded);
    memset(v, 1, n);
    memset(pv, 2, rounded);
    free(v);
    free(pv);
  }
  printf("page=%zu\n", page);
  return 0;
}

static int cmd_free_null(void) {
  errno = ERANGE;
  free(NULL);
  CHECK(errno == ERANGE, "free(NULL) changed errno to %d", errno);
  CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) != 0");
  printf("ok=1\n");
  return 0;
}

/* free never changes errno, whatever it has to do internally. */
static int cmd_free_errno(void) {
  size_t sizes[] = {1, 100, 4096, 100000, (size_t)8 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *a = malloc(sizes[i]), *b = malloc(sizes[i]), *c = malloc(sizes[i]);
    CHECK(a && b && c, "malloc(%zu)", sizes[i]);
    memset(b, 1, sizes[i]);
    errno = EILSEQ;
    free(a);
    free(c);
    free(b); /* merges with both neighbours */
    CHECK(errno == EILSEQ, "free of %zu bytes changed errno to %d", sizes[i], errno);
  }
  printf("ok=1\n");
  return 0;
}

/* Fill whole usable areas of many live blocks, then verify none bled. */
static int cmd_usable(void) {
  enum { N = 600 };
  static unsigned char *blocks[N];
  static size_t usable[N];
  for (size_t i = 0; i < N; i++) {
    size_t n = (i * 37) % 3000;
    blocks[i] = i % 3 == 0 ? calloc(1, n) : i % 3 == 1 ? malloc(n) : aligned_alloc(64, n + 1);
    CHECK(blocks[i] != NULL, "allocation %zu", i);
    usable[i] = malloc_usable_size(blocks[i]);
    CHECK(usable[i] >= n, "malloc_usable_size %zu < requested %zu", usable[i], n);
    it_fill(blocks[i], usable[i], (uint32_t)i);
  }
  for (size_t i = 0; i < N; i++) {
    size_t bad = it_verify(blocks[i], usable[i], (uint32_t)i);
    CHECK(bad == usable[i], "block %zu byte %zu of %zu overwritten", i, bad, usable[i]);
    free(blocks[i]);
  }
  printf("blocks=%d\n", N);
  return 0;
}

static int zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return 0;
  return 1;
}

/* calloc zeroes even memory that was dirty a moment ago. */
static int cmd_calloc(void) {
  size_t sizes[] = {1, 15, 16, 17, 100, 4096, 65536, 300000, (size_t)4 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *guard, *p = malloc(n);
    CHECK(p != NULL, "malloc(%zu)", n);
    memset(p, 0xa5, malloc_usable_size(p));
    free(p);
    for (size_t k = 1; k <= 4; k *= 2) {
      unsigned char *q = calloc(k, n / k + 1);
      CHECK(q != NULL, "calloc(%zu, %zu)", k, n / k + 1);
      CHECK(zero(q, k * (n / k + 1)), "calloc(%zu, %zu) not zeroed", k, n / k + 1);
      memset(q, 0x5a, k * (n / k + 1));
      guard = malloc(8);
      free(q);
      free(guard);
    }
  }
  printf("ok=1\n");
  return 0;
}

/* free_sized and free_aligned_sized are C23; glibc before 2.39 has no
 * declaration, so look them up at run time. */
static int cmd_reallocarray(void) {
  void *(*ra)(void *, size_t, size_t) =
      (void *(*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "reallocarray");
  CHECK(ra != NULL, "reallocarray not found");
  char *p = ra(NULL, 10, 10);
  CHECK(p != NULL, "reallocarray(NULL, 10, 10)");
  memset(p, 7, 100);
  volatile size_t big = SIZE_MAX / 2 + 1;
  errno = 0;
  void *q = ra(p, big, 2);
  CHECK(q == NULL && errno == ENOMEM, "reallocarray overflow gave %p errno %d", q, errno);
  CHECK(p[0] == 7 && p[99] == 7, "block damaged by a failed reallocarray");
  p = ra(p, 1000, 4);
  CHECK(p != NULL && p[99] == 7, "reallocarray growth lost data");
  free(p);
  printf("ok=1\n");
  return 0;
}

static int cmd_sized(void) {
  void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
  void (*fas)(void *, size_t, size_t) =
      (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
  CHECK(fs && fas, "free_sized=%p free_aligned_sized=%p not found", (void *)fs, (void *)fas);
  errno = EDOM;
  fs(NULL, 0);
  fas(NULL, 64, 0);
  for (size_t n = 1; n < 200000; n = n * 5 + 1) {
    void *p = malloc(n), *q = aligned_alloc(256, n);
    CHECK(p && q, "allocation of %zu", n);
    memset(p, 1, n);
    memset(q, 2, n);
    fs(p, n);
    fas(q, 256, n);
  }
  CHECK(errno == EDOM, "sized frees changed errno to %d", errno);
  /* the memory went back: a large block fits again and again */
  for (int i = 0; i < 64; i++) {
    void *p = malloc((size_t)16 << 20);
    CHECK(p != NULL, "16M block %d after sized frees", i);
    fs(p, (size_t)16 << 20);
  }
  printf("ok=1\n");
  return 0;
}

/* Allocate blocks of one size until the arena refuses, then free them all
 * and show that the space comes back. */
static int cmd_exhaust(int argc, char **argv) {
  size_t bs = argc > 2 ? it_size_arg(argv[2]) : 65536;
  size_t cap = argc > 3 ? it_size_arg(argv[3]) : (size_t)1 << 20;
  if (!bs || !cap) {
    fprintf(stderr, "api: exhaust: bad block size or cap\n");
    return 2;
  }
  /* the block list lives outside the heap under test */
  void **v = mmap(NULL, cap * sizeof *v, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(v != MAP_FAILED, "mmap of the block list");
  size_t n = 0;
  errno = 0;
  while (n < cap && (v[n] = malloc(bs)) != NULL) {
    *(size_t *)v[n] = n;
    n++;
  }
  int err = errno;
  CHECK(n < cap, "no failure after %zu blocks of %zu bytes", n, bs);
  CHECK(err == ENOMEM, "malloc failed with errno %d, expected ENOMEM", err);
  errno = 0; expect_enomem(calloc(1, bs), "calloc when full", bs);
  errno = 0; expect_enomem(aligned_alloc(4096, bs), "aligned_alloc when full", bs);
  if (n) {
    errno = 0;
    void *r = realloc(v[0], bs * 4);
    CHECK(r == NULL && errno == ENOMEM, "realloc when full gave %p errno %d", r, errno);
    CHECK(*(size_t *)v[0] == 0, "block damaged by failed realloc");
  }
  for (size_t i = 0; i < n; i++) {
    CHECK(*(size_t *)v[i] == i, "block %zu damaged", i);
    free(v[i]);
  }
  /* A quarter: one heap holds at most a slice of the arena (process.h). */
  void *big = malloc(n * bs / 4);
  CHECK(big != NULL, "no %zu byte block after freeing everything", n * bs / 4);
  free(big);
  size_t again = 0;
  while (again < n && (v[again] = malloc(bs)) != NULL)
    again++;
  for (size_t i = 0; i < again; i++)
    free(v[i]);
  printf("blocks=%zu bytes=%zu again=%zu\n", n, n * bs, again);
  CHECK(again == n, "only %zu of %zu blocks fit again after freeing", again, n);
  return 0;
}

/* A known number of calls, for the SIMALLOC_STATS summary to count. */
static int cmd_stats(void) {
  for (int i = 0; i < 1000; i++)
    free(malloc((size_t)i + 1));
  for (int i = 0; i < 500; i++)
    free(calloc(2, (size_t)i + 1));
  void *p = NULL;
  for (int i = 0; i < 300; i++)
    p = realloc(p, (size_t)i * 8 + 8);
  free(p);
  printf("malloc=1000 calloc=500 realloc=300 free=1501\n");
  return 0;
}

/* Resident KiB of this process. */
static long rss_kib(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  CHECK(f && fscanf(f, "%ld %ld", &pages, &resident) == 2, "cannot read /proc/self/statm");
  fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* malloc_trim gives back the pages of the holes that no policy would:
 * 1000 free blocks of 16 KiB between live ones, each too small to give
 * its pages back on its own.  A second call at once has nothing left to
 * give.  The live blocks keep their contents, and the holes read as zero
 * when calloc hands them out again. */
enum { TRIM_BLOCKS = 2000, TRIM_SIZE = 16384 };  /* 32 MiB */

/* Block i of the trim commands holds the byte i & 0xff. */
static void trim_fill(unsigned char *p[TRIM_BLOCKS]) {
  for (int i = 0; i < TRIM_BLOCKS; i++) {
    p[i] = malloc(TRIM_SIZE);
    CHECK(p[i], "malloc(%d)", TRIM_SIZE);
    memset(p[i], i & 0xff, TRIM_SIZE);
  }
}

static int cmd_trim(void) {
  enum { N = TRIM_BLOCKS, SZ = TRIM_SIZE };
  static unsigned char *p[N];
  trim_fill(p);
  for (int i = 0; i < N; i += 2) free(p[i]);
  long before = rss_kib();
  int first = malloc_trim(0), again = malloc_trim(0);
  long after = rss_kib();
  CHECK(first == 1, "malloc_trim(0) returned %d with 16 MiB of holes", first);
  CHECK(again == 0, "a second malloc_trim(0) at once returned %d", again);
  for (int i = 1; i < N; i += 2)
    for (int j = 0; j < SZ; j++) CHECK(p[i][j] == (i & 0xff), "block %d changed at %d", i, j);
  for (int i = 0; i < N; i += 2) {
    p[i] = calloc(1, SZ);
    CHECK(p[i], "calloc(1, %d)", SZ);
    for (int j = 0; j < SZ; j++) CHECK(p[i][j] == 0, "calloc'd block %d not zero at %d", i, j);
  }
  printf("released=%d again=%d before_kib=%ld after_kib=%ld\n", first, again, before, after);
  return 0;
}

/* malloc_trim(pad) keeps pad bytes at the top of the heap: run with a
 * SIMALLOC_RETAIN larger than the 32 MiB freed, so that nothing goes back
 * before malloc_trim is called. */
static int cmd_trim_pad(void) {
  static unsigned char *p[TRIM_BLOCKS];
  trim_fill(p);
  for (int i = TRIM_BLOCKS - 1; i >= 0; i--) free(p[i]);
  long freed = rss_kib();
  int kept = malloc_trim((size_t)8 << 20);
  long padded = rss_kib();
  int rest = malloc_trim(0);
  long trimmed = rss_kib();
  printf("pad_trim=%d rest_trim=%d freed_kib=%ld padded_kib=%ld trimmed_kib=%ld\n", kept, rest,
         freed, padded, trimmed);
  return 0;
}

/* mallinfo2 and mallinfo describe this allocator's heaps: what a program
 * allocates shows in uordblks, and goes once it is freed and the thread's
 * cache given back (malloc_trim). */
static int cmd_mallinfo(void) {
  enum { N = 1000, SZ = 1000 };
  static void *p[N];
  struct mallinfo2 m0 = mallinfo2();
  for (int i = 0; i < N; i++) {
    p[i] = malloc(SZ);
    CHECK(p[i], "malloc(%d)", SZ);
  }
  struct mallinfo2 m1 = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  /* glibc's; still called */
  struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
  size_t grew = m1.uordblks - m0.uordblks;
  CHECK(m1.uordblks >= m0.uordblks && grew >= (size_t)N * SZ && grew <= (size_t)N * (SZ + 64),
        "uordblks grew by %zu for %d blocks of %d bytes", grew, N, SZ);
  CHECK(m1.arena == m1.uordblks + m1.fordblks, "arena %zu, uordblks %zu, fordblks %zu", m1.arena,
        m1.uordblks, m1.fordblks);
  CHECK(m1.keepcost <= m1.fordblks && m1.ordblks >= 1, "keepcost %zu, ordblks %zu", m1.keepcost,
        m1.ordblks);
  CHECK((size_t)old.uordblks == m1.uordblks && (size_t)old.arena == m1.arena,
        "mallinfo %d/%d, mallinfo2 %zu/%zu", old.uordblks, old.arena, m1.uordblks, m1.arena);
  for (int i = 0; i < N; i++) free(p[i]);
  malloc_trim(0);
  struct mallinfo2 m2 = mallinfo2();
  CHECK(m2.uordblks <= m0.uordblks + 4096, "uordblks %zu after freeing all, %zu before",
        m2.uordblks, m0.uordblks);
  printf("grew=%zu arena=%zu uordblks=%zu\n", grew, m1.arena, m1.uordblks);
  return 0;
}

/* malloc_stats reports, on stderr, the megabyte this command holds. */
static int cmd_malloc_stats(void) {
  void *p = malloc((size_t)1 << 20);
  CHECK(p, "malloc(1 MiB)");
  memset(p, 1, (size_t)1 << 20);
  fflush(stderr);
  malloc_stats();
  free(p);
  return 0;
}

/* malloc_info writes glibc's XML for the heaps to the stream it is given,
 * and refuses options other than 0. */
static int cmd_malloc_info(void) {
  void *p = malloc((size_t)1 << 20);
  CHECK(p, "malloc(1 MiB)");
  memset(p, 1, (size_t)1 << 20);
  CHECK(malloc_info(0, stdout) == 0, "malloc_info(0, stdout) failed");
  errno = 0;
  CHECK(malloc_info(1, stdout) == -1 && errno == EINVAL, "malloc_info(1, ..) was taken");
  free(p);
  return 0;
}

/* Bursts: 100 rounds of 100 blocks of 200 bytes allocated, then all
 * freed.  A thread cache whose list for the class is shorter than a burst
 * goes to the heap on every round; one that grows to a burst does not. */
static int cmd_bursts(void) {
  enum { ROUNDS = 100, BURST = 100 };
  static void *p[BURST];
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < BURST; i++) {
      p[i] = malloc(200);
      CHECK(p[i], "malloc(200) failed");
      memset(p[i], r, 200);
    }
    for (int i = 0; i < BURST; i++) free(p[i]);
  }
  printf("rounds=%d burst=%d\n", ROUNDS, BURST);
  return 0;
}

/* A block freed into the thread cache serves a request of a size whose
 * list is empty when it is at most a quarter larger than the request's
 * block, and not when it is larger than that. */
static int cmd_borrow(void) {
  void *p = malloc(1000);  /* a block of 1008 bytes */
  CHECK(p, "malloc(1000)");
  memset(p, 1, 1000);
  free(p);
  void *near = malloc(900);  /* needs 912: 1008 is less than a quarter more */
  CHECK(near, "malloc(900)");
  memset(near, 2, 900);
  size_t usable = malloc_usable_size(near);
  free(near);
  void *far = malloc(600);   /* needs 608: 1008 is far more */
  CHECK(far, "malloc(600)");
  memset(far, 3, 600);
  printf("borrowed=%d usable=%zu far=%d\n", near == p, usable, far == p);
  free(far);
  return 0;
}

/* A cached block of a size the thread stops asking for goes back to the
 * heap: after many refills of another size, the hole of the freed
 * 1008-byte block holds 48-byte blocks, and malloc(1000) gets another
 * block.  If the block stayed cached, malloc(1000) gets it back. */
static int cmd_idle_list(void) {
  enum { SMALL = 40000 };
  static void *small[SMALL];
  void *p = malloc(1000);
  CHECK(p, "malloc(1000)");
  memset(p, 1, 1000);
  free(p);
  int inside = 0;
  for (int i = 0; i < SMALL; i++) {
    small[i] = malloc(40);
    CHECK(small[i], "malloc(40)");
    inside += (char *)small[i] >= (char *)p && (char *)small[i] < (char *)p + 1000;
  }
  void *q = malloc(1000);
  CHECK(q, "malloc(1000)");
  printf("same=%d inside=%d\n", q == p, inside);
  free(q);
  for (int i = 0; i < SMALL; i++) free(small[i]);
  return 0;
}

/* Frees the n blocks at p in a second thread, which then ends; 0 on
 * success. */
struct to_free {
  void **p;
  int n;
};

static void *free_them(void *arg) {
  struct to_free *f = arg;
  for (int i = 0; i < f->n; i++) free(f->p[i]);
  return f;
}

static int free_in_a_thread(void **p, int n) {
  struct to_free f = {p, n};
  pthread_t t;
  void *done = NULL;
  if (pthread_create(&t, NULL, free_them, &f) != 0 || pthread_join(t, &done) != 0) return -1;
  return done == &f ? 0 : -1;
}

/* Blocks that another thread freed into this thread's heap come before a
 * borrowed block: eight blocks of 912 bytes freed by a thread of another
 * heap, which leaves them to this heap when it exits, are all handed out
 * again before the cached block of 1008 bytes is (run with two heaps). */
static int cmd_remote_first(void) {
  void *p[8], *q;
  for (int i = 0; i < 8; i++) {
    p[i] = malloc(900);
    CHECK(p[i], "malloc(900)");
    memset(p[i], i, 900);
  }
  q = malloc(1000);  /* after: the 900s must not borrow its class's blocks */
  CHECK(q, "malloc(1000)");
  free(q);
  CHECK(free_in_a_thread(p, 8) == 0, "the second thread");
  int seen = 0, q_before = 0;
  void *r[24];
  for (int i = 0; i < 24; i++) {
    r[i] = malloc(900);
    CHECK(r[i], "malloc(900)");
    for (int k = 0; k < 8; k++) seen += r[i] == p[k];
    if (r[i] == q && seen < 8) q_before = 1;
  }
  for (int i = 0; i < 24; i++) free(r[i]);
  printf("remote=%d borrowed_before=%d\n", seen, q_before);
  return 0;
}

/* A thread does not hand out again the blocks of another heap that it
 * frees: they go home (run with two heaps).  The second thread frees
 * eight blocks of the main thread's heap and asks for eight of the same
 * size; once it has ended, the main thread gets its eight back. */
static int foreign_reused;

static void *free_and_take(void *arg) {
  void **p = arg;
  for (int i = 0; i < 8; i++) free(p[i]);
  for (int i = 0; i < 8; i++) {
    p[8 + i] = malloc(900);
    if (!p[8 + i]) return NULL;
    for (int k = 0; k < 8; k++) foreign_reused += p[8 + i] == p[k];
  }
  for (int i = 0; i < 8; i++) free(p[8 + i]);
  return p;
}

static int cmd_foreign_home(void) {
  static void *p[16];
  for (int i = 0; i < 8; i++) {
    p[i] = malloc(900);
    CHECK(p[i], "malloc(900)");
    memset(p[i], i, 900);
  }
  pthread_t t;
  void *done = NULL;
  CHECK(pthread_create(&t, NULL, free_and_take, p) == 0, "pthread_create");
  CHECK(pthread_join(t, &done) == 0 && done == p, "the thread's mallocs");
  int home = 0;
  void *r[24];  /* blocks the main thread has cached may come first */
  for (int i = 0; i < 24; i++) {
    r[i] = malloc(900);
    CHECK(r[i], "malloc(900)");
    for (int k = 0; k < 8; k++) home += r[i] == p[k];
  }
  for (int i = 0; i < 24; i++) free(r[i]);
  printf("reused=%d home=%d\n", foreign_reused, home);
  return 0;
}

/* Another heap's blocks go home in batches (run with two heaps and
 * SIMALLOC_STATS, whose count of remote frees is the number of batches).
 * The second thread frees 64 blocks of the main thread's heap in two
 * sizes taken in turn, 64 and 192 bytes, then 64 blocks of 1008 bytes,
 * and ends; the test reads the count from the report at exit. */
static int cmd_away_batches(void) {
  static void *p[128];
  for (int i = 0; i < 128; i++) {
    size_t n = i < 64 ? (i % 2 ? 184 : 56) : 1000;
    p[i] = malloc(n);
    CHECK(p[i], "malloc");
    memset(p[i], i, n);
  }
  CHECK(free_in_a_thread(p, 128) == 0, "the second thread");
  printf("freed=128\n");
  return 0;
}

/* A thread whose heap would have to grow takes blocks from another heap
 * that holds free memory it touched already (run with two heaps: the main
 * thread has one, the second thread the other).  The second thread asks
 * for blocks while the main thread holds 4000 of its heap's, and again
 * once it has freed them; prints how many of each round came from where
 * the main thread's blocks were. */
enum { IDLE_MAIN = 4000, IDLE_ROUND = 200, IDLE_SIZE = 200 };
static pthread_barrier_t idle_barrier;
static uintptr_t idle_lo, idle_hi;

static int in_main_range(void *const *p, int n) {
  int in = 0;
  for (int i = 0; i < n; i++) in += (uintptr_t)p[i] >= idle_lo && (uintptr_t)p[i] <= idle_hi;
  return in;
}

static void *idle_taker(void *arg) {
  int *in = arg;
  static void *p[2 * IDLE_ROUND];
  for (int round = 0; round < 2; round++) {
    if (round) pthread_barrier_wait(&idle_barrier);  /* the main thread frees its blocks */
    for (int i = 0; i < IDLE_ROUND; i++) {
      void *q = p[round * IDLE_ROUND + i] = malloc(IDLE_SIZE);
      if (!q) return NULL;
      memset(q, round, IDLE_SIZE);
    }
    in[round] = in_main_range(p + round * IDLE_ROUND, IDLE_ROUND);
    if (!round) pthread_barrier_wait(&idle_barrier);
  }
  for (int i = 0; i < 2 * IDLE_ROUND; i++) free(p[i]);
  return in;
}

static int cmd_idle_heap(void) {
  static void *p[IDLE_MAIN];
  idle_lo = UINTPTR_MAX;
  for (int i = 0; i < IDLE_MAIN; i++) {
    p[i] = malloc(IDLE_SIZE);
    CHECK(p[i], "malloc(%d)", IDLE_SIZE);
    memset(p[i], 1, IDLE_SIZE);
    if ((uintptr_t)p[i] < idle_lo) idle_lo = (uintptr_t)p[i];
    if ((uintptr_t)p[i] > idle_hi) idle_hi = (uintptr_t)p[i];
  }
  CHECK(pthread_barrier_init(&idle_barrier, NULL, 2) == 0, "pthread_barrier_init");
  int in[2] = {-1, -1};
  void *ok;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, idle_taker, in) == 0, "pthread_create");
  pthread_barrier_wait(&idle_barrier);  /* the first round is done */
  for (int i = 0; i < IDLE_MAIN; i++) free(p[i]);
  pthread_barrier_wait(&idle_barrier);
  CHECK(pthread_join(t, &ok) == 0 && ok, "the second thread's malloc failed");
  printf("held=%d freed=%d of=%d\n", in[0], in[1], IDLE_ROUND);
  return 0;
}

/* One block of each size from 16 to 4 KiB in steps of 16, all kept: the
 * bytes asked for and the arena's touched bytes then (simalloc_get_stats)
 * show what the first use of each size costs. */
static int cmd_one_each(void) {
  struct stats {  /* struct simalloc_stats */
    size_t arena_size, arena_touched, used_bytes, peak_used_bytes, free_bytes, largest_free,
        used_blocks, free_blocks;
  } st;
  int (*get)(struct stats *) = (int (*)(struct stats *))dlsym(RTLD_DEFAULT, "simalloc_get_stats");
  CHECK(get, "simalloc_get_stats is not there");
  enum { SIZES = 4096 / 16 };
  static void *p[SIZES];
  size_t asked = 0;
  for (int i = 0; i < SIZES; i++) {
    size_t n = (size_t)(i + 1) * 16;
    asked += n;
    p[i] = malloc(n);
    CHECK(p[i], "malloc(%zu) failed", n);
    memset(p[i], 1, n);
  }
  CHECK(get(&st) == 0, "simalloc_get_stats failed");
  printf("asked=%zu touched=%zu\n", asked, st.arena_touched);
  for (int i = 0; i < SIZES; i++) free(p[i]);
  return 0;
}

/* Large blocks (SIMALLOC_LARGE_THRESHOLD, 32K by default): a few of them,
 * 256 KiB in all, and the first a process asks for... */
static int cmd_large_few(void) {
  void *p[4];
  for (int i = 0; i < 4; i++) {
    p[i] = malloc(64 << 10);
    CHECK(p[i], "malloc(64K)");
    memset(p[i], i, 64 << 10);
  }
  for (int i = 0; i < 4; i++) free(p[i]);
  printf("large=4\n");
  return 0;
}

/* ... and many, 16 MiB asked for; then a buffer that grows from 1000 bytes
 * to 1 MiB and shrinks back, into the large blocks' size and out of it,
 * keeps its bytes at every step. */
static int cmd_large_many(void) {
  for (int i = 0; i < 256; i++) {
    void *q = malloc(64 << 10);
    CHECK(q, "malloc(64K)");
    memset(q, 1, 64 << 10);
    free(q);
  }
  size_t n = 1000;
  unsigned char *p = malloc(n);
  CHECK(p, "malloc(1000)");
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7);
  int steps = 0;
  for (int grow = 1; grow >= 0; grow--) {
    for (;;) {
      size_t m = grow ? n * 2 : n / 2;
      if (grow ? m > (1 << 20) : m < 1000) break;
      p = realloc(p, m);
      CHECK(p, "realloc(%zu)", m);
      size_t keep = m < n ? m : n;
      for (size_t i = 0; i < keep; i++)
        CHECK(p[i] == (unsigned char)(i * 7), "byte %zu lost in realloc to %zu", i, m);
      for (size_t i = keep; i < m; i++) p[i] = (unsigned char)(i * 7);
      n = m;
      steps++;
    }
  }
  free(p);
  printf("large=256 steps=%d\n", steps);
  return 0;
}

struct command {
  const char *name;
  int (*fn)(void);
};

static const struct command commands[] = {
  {"align", cmd_align},
  {"malloc0", cmd_malloc0},
  {"realloc-null", cmd_realloc_null},
  {"realloc-zero", cmd_realloc_zero},
  {"realloc-move", cmd_realloc_move},
  {"realloc-grow", cmd_realloc_grow},
  {"realloc-shrink", cmd_realloc_shrink},
  {"huge", cmd_huge},
  {"beyond-arena", cmd_beyond_arena},
  {"posix-memalign", cmd_posix_memalign},
  {"aligned", cmd_aligned},
  {"page", cmd_page},
  {"free-null", cmd_free_null},
  {"free-errno", cmd_free_errno},
  {"usable", cmd_usable},
  {"calloc", cmd_calloc},
  {"sized", cmd_sized},
  {"reallocarray", cmd_reallocarray},
  {"stats", cmd_stats},
  {"trim", cmd_trim},
  {"trim-pad", cmd_trim_pad},
  {"mallinfo", cmd_mallinfo},
  {"malloc-stats", cmd_malloc_stats},
  {"malloc-info", cmd_malloc_info},
  {"bursts", cmd_bursts},
  {"borrow", cmd_borrow},
  {"remote-first", cmd_remote_first},
  {"foreign-home", cmd_foreign_home},
  {"away-batches", cmd_away_batches},
  {"idle-list", cmd_idle_list},
  {"idle-heap", cmd_idle_heap},
  {"one-each", cmd_one_each},
  {"large-few", cmd_large_few},
  {"large-many", cmd_large_many},
};

int main(int argc, char **argv) {
  /* stdout gets a static buffer, so printing never puts a block in the
   * middle of a layout a command is building */
  static char outbuf[BUFSIZ];
  setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
  if (argc < 2) {
    fprintf(stderr, "usage: api COMMAND [ARGS]\n");
    return 2;
  }
  if (strcmp(argv[1], "realloc-fail") == 0)
    return cmd_realloc_fail(argc, argv);
  if (strcmp(argv[1], "exhaust") == 0)
    return cmd_exhaust(argc, argv);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].fn();
  fprintf(stderr, "api: unknown command '%s'\n", argv[1]);
  return 2;
}
