/* heap_threads.c - one private heap shared by many threads.
 *
 * The unit-level counterpart of the stress program: it links the core
 * directly (no preload), so it also runs in the AddressSanitizer and
 * ThreadSanitizer builds.  Threads allocate, resize and free through one
 * sa_heap, trade blocks through atomic slots, and one of them keeps
 * checking the heap's invariants while the others work.  Every block holds
 * a pattern of its owner's choosing, checked before it is resized or freed.
 *
 * A plain program rather than a Criterion test: Criterion's sandbox does
 * not start under ThreadSanitizer, and this is the test that build is for.
 * Exit status 0 when everything held, 1 otherwise (said on stderr).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "heap.h"

#define HEAP_BYTES (16u << 20)
#define SLOTS 512
#define OPS 20000

typedef struct tblock {
  unsigned char *p;
  size_t size;
  uint32_t tag;
} tblock;

static sa_heap heap;
static _Atomic(tblock *) slots[SLOTS];
static atomic_int stop_checking;
static atomic_ulong failures;

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("heap_threads: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static uint64_t next(uint64_t *s) {
  uint64_t x = (*s += UINT64_C(0x9e3779b97f4a7c15));
  x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
  return x ^ (x >> 31);
}

static unsigned char pat(uint32_t tag, size_t i) {
  return (unsigned char)(tag * 131u + i * 7u + (i >> 8));
}

static void fill(const tblock *b) {
  for (size_t i = 0; i < b->size; i++)
    b->p[i] = pat(b->tag, i);
}

static int intact(const tblock *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b->p[i] != pat(b->tag, i))
      return 0;
  return 1;
}

/* Small sizes mostly, now and then one of up to 64 KiB. */
static size_t pick(uint64_t *rng) {
  uint64_t r = next(rng);
  return r % 64 == 0 ? 1 + next(rng) % 65536 : 1 + next(rng) % 600;
}

static tblock *make(uint64_t *rng, uint32_t tag) {
  tblock *b = sa_heap_alloc(&heap, sizeof *b);
  if (!b)
    return NULL;
  b->size = pick(rng);
  b->tag = tag;
  switch (next(rng) % 4) {
  case 0: b->p = sa_heap_calloc(&heap, b->size); break;
  case 1: b->p = sa_heap_alloc_aligned(&heap, (size_t)32 << (next(rng) % 8), b->size); break;
  default: b->p = sa_heap_alloc(&heap, b->size); break;
  }
  if (!b->p) { /* the heap may be full: that is allowed, not a failure */
    sa_heap_free(&heap, b, "free");
    return NULL;
  }
  fill(b);
  return b;
}

static void retire(tblock *b, uint64_t *rng) {
  if (!intact(b, b->size))
    atomic_fetch_add(&failures, 1);
  if (next(rng) % 4 == 0) {
    size_t n = pick(rng);
    unsigned char *q = sa_heap_realloc(&heap, b->p, n);
    if (q) {
      b->p = q;
      if (!intact(b, n < b->size ? n : b->size))
        atomic_fetch_add(&failures, 1);
      b->size = n;
    }
  }
  if (sa_heap_usable(&heap, b->p, "malloc_usable_size") < b->size)
    atomic_fetch_add(&failures, 1);
  sa_heap_free(&heap, b->p, "free");
  sa_heap_free(&heap, b, "free");
}

static void *worker(void *arg) {
  uint64_t rng = (uintptr_t)arg * 7919u;
  for (uint32_t op = 0; op < OPS; op++) {
    tblock *b = make(&rng, op ^ ((uint32_t)(uintptr_t)arg << 20));
    tblock *old = atomic_exchange(&slots[next(&rng) % SLOTS], b);
    if (old)
      retire(old, &rng);
  }
  return NULL;
}

static void *checker(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_checking)) {
    sa_heap_report r = sa_heap_check(&heap);
    if (!r.ok) {
      fprintf(stderr, "heap_threads: heap check: %s at %#lx\n", r.what, (unsigned long)r.where);
      atomic_fetch_add(&failures, 1);
      break;
    }
  }
  return NULL;
}

static int count_block(const sa_block_info *b, void *ctx) {
  size_t *n = ctx;
  n[b->used]++;
  return 0;
}

int main(void) {
  void *mem = mmap(NULL, HEAP_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED)
    fail("mmap of %u bytes failed", HEAP_BYTES);
  if (sa_heap_init(&heap, mem, HEAP_BYTES, 0) != 0)
    fail("sa_heap_init refused the buffer");

  enum { WORKERS = 6 };
  pthread_t t[WORKERS], c;
  if (pthread_create(&c, NULL, checker, NULL) != 0)
    fail("pthread_create failed");
  for (uintptr_t i = 0; i < WORKERS; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)(i + 1)) != 0)
      fail("pthread_create failed");
  for (int i = 0; i < WORKERS; i++)
    pthread_join(t[i], NULL);
  atomic_store(&stop_checking, 1);
  pthread_join(c, NULL);

  uint64_t rng = 1;
  for (int s = 0; s < SLOTS; s++) {
    tblock *b = atomic_exchange(&slots[s], NULL);
    if (b)
      retire(b, &rng);
  }
  if (atomic_load(&failures))
    fail("%lu blocks lost their contents or checks failed", atomic_load(&failures));
  sa_heap_report r = sa_heap_check(&heap);
  if (!r.ok)
    fail("heap check after the run: %s at %#lx", r.what, (unsigned long)r.where);
  size_t n[2] = {0, 0};
  sa_heap_walk(&heap, count_block, n);
  if (n[1] != 0)
    fail("%zu blocks still in use after everything was freed", n[1]);
  if (n[0] != 1)
    fail("%zu free blocks: the heap did not coalesce back into one", n[0]);
  if (heap.st.used_bytes != 0)
    fail("%zu bytes still counted as used", heap.st.used_bytes);
  munmap(mem, HEAP_BYTES);
  printf("heap_threads: %d threads x %d operations, heap intact\n", WORKERS, OPS);
  return 0;
}
