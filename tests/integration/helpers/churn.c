/* churn.c - many threads allocating, resizing, swapping and freeing.
 *
 *   churn [THREADS [OPS_PER_THREAD [SLOTS [enomem-ok]]]]
 *
 * Every live block carries a pattern derived from its own seed; the
 * pattern is verified before each free and realloc, and after each
 * realloc for the preserved prefix.  Blocks also wander between threads
 * through a shared exchange, so frees from a thread other than the
 * allocating one are exercised.  Exit 0 when no byte was ever wrong.
 *
 * With "enomem-ok" (for a deliberately small arena) a failed allocation
 * is allowed if it sets errno to ENOMEM; a failed realloc must leave its
 * block intact.  The number of such failures is printed as enomem=N.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

typedef struct block {
  unsigned char *p;
  size_t n;
  uint32_t seed;
} block;

#define EXCHANGE 64
static block exchange[EXCHANGE];
static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;

static long ops_per_thread = 100000;
static size_t slots_per_thread = 512;
static int enomem_ok;
static atomic_long enomem_count;

/* A NULL from the allocator: fatal, or counted when ENOMEM is allowed. */
static void out_of_memory(const char *call, size_t n, int err) {
  CHECK(enomem_ok, "%s of %zu bytes failed (errno %d)", call, n, err);
  CHECK(err == ENOMEM, "%s of %zu bytes failed with errno %d, not ENOMEM", call, n, err);
  atomic_fetch_add_explicit(&enomem_count, 1, memory_order_relaxed);
}

static uint32_t next_rand(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static size_t pick_size(uint32_t *rng) {
  uint32_t r = next_rand(rng);
  switch (r % 64) {
  case 0: return next_rand(rng) % (256 << 10) + 1;
  case 1: case 2: case 3: case 4: case 5: case 6: return next_rand(rng) % 8192 + 1;
  default: return next_rand(rng) % 256 + 1;
  }
}

static void check_block(const block *b, const char *when) {
  size_t bad = it_verify(b->p, b->n, b->seed);
  CHECK(bad == b->n, "%s: block %p (%zu bytes, seed %u) wrong at byte %zu", when,
        (void *)b->p, b->n, b->seed, bad);
}

static int all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return 0;
  return 1;
}

static void *allocate(size_t n, uint32_t *rng) {
  void *p = NULL;
  size_t align = (size_t)16 << (next_rand(rng) % 8);
  errno = 0;
  switch (next_rand(rng) % 6) {
  case 0: p = calloc(1, n); CHECK(!p || all_zero(p, n), "calloc(1, %zu) not zeroed", n); break;
  case 1: p = aligned_alloc(align, n); break;
  case 2: errno = posix_memalign(&p, align, n); break;
  case 3: p = realloc(NULL, n); break;
  default: p = malloc(n); align = 16; break;
  }
  if (!p) {
    out_of_memory("allocation", n, errno);
    return NULL;
  }
  CHECK(((uintptr_t)p & 15) == 0, "block %p not 16-byte aligned", p);
  CHECK(malloc_usable_size(p) >= n, "usable size %zu < %zu", malloc_usable_size(p), n);
  return p;
}

static void fresh(block *b, uint32_t *rng) {
  b->n = pick_size(rng);
  b->seed = next_rand(rng);
  b->p = allocate(b->n, rng);
  if (b->p)
    it_fill(b->p, b->n, b->seed);
}

static void resize(block *b, uint32_t *rng) {
  size_t n = pick_size(rng), keep = n < b->n ? n : b->n;
  check_block(b, "before realloc");
  errno = 0;
  unsigned char *p = realloc(b->p, n);
  if (!p) {
    out_of_memory("realloc", n, errno);
    check_block(b, "after a failed realloc");
    return;
  }
  b->p = p;
  b->n = keep;
  check_block(b, "after realloc");
  b->n = n;
  b->seed = next_rand(rng);
  it_fill(b->p, n, b->seed);
}

static void swap_with_exchange(block *b, uint32_t *rng) {
  size_t i = next_rand(rng) % EXCHANGE;
  pthread_mutex_lock(&exchange_lock);
  block theirs = exchange[i];
  exchange[i] = *b;
  pthread_mutex_unlock(&exchange_lock);
  *b = theirs;
  if (b->p)
    check_block(b, "received from another thread");
}

static void *worker(void *arg) {
  uint32_t rng = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
  /* The slot table lives outside the heap under test: in a tiny arena the
   * other threads may hold all of it by the time this one starts. */
  block *slots = mmap(NULL, slots_per_thread * sizeof *slots, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(slots != MAP_FAILED, "slot table");
  for (long op = 0; op < ops_per_thread; op++) {
    block *b = &slots[next_rand(&rng) % slots_per_thread];
    uint32_t what = next_rand(&rng) % 8;
    if (!b->p)
      fresh(b, &rng);
    else if (what < 4) {
      check_block(b, "before free");
      free(b->p);
      b->p = NULL;
    } else if (what < 7)
      resize(b, &rng);
    else
      swap_with_exchange(b, &rng);
  }
  for (size_t i = 0; i < slots_per_thread; i++) {
    if (slots[i].p) {
      check_block(&slots[i], "at thread exit");
      free(slots[i].p);
    }
  }
  munmap(slots, slots_per_thread * sizeof *slots);
  return NULL;
}

int main(int argc, char **argv) {
  long nthreads = argc > 1 ? strtol(argv[1], NULL, 10) : 8;
  if (argc > 2)
    ops_per_thread = strtol(argv[2], NULL, 10);
  if (argc > 3)
    slots_per_thread = (size_t)strtol(argv[3], NULL, 10);
  if (argc > 4)
    enomem_ok = strcmp(argv[4], "enomem-ok") == 0 ? 1 : -1;
  if (nthreads < 1 || nthreads > 256 || ops_per_thread < 1 || slots_per_thread < 1 ||
      enomem_ok < 0 || argc > 5) {
    fprintf(stderr, "usage: churn [THREADS(1-256) [OPS [SLOTS [enomem-ok]]]]\n");
    return 2;
  }
  pthread_t *t = calloc((size_t)nthreads, sizeof *t);
  CHECK(t != NULL, "thread table");
  for (long i = 0; i < nthreads; i++)
    CHECK(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) == 0, "thread %ld", i);
  for (long i = 0; i < nthreads; i++)
    pthread_join(t[i], NULL);
  for (size_t i = 0; i < EXCHANGE; i++) {
    if (exchange[i].p) {
      check_block(&exchange[i], "left in the exchange");
      free(exchange[i].p);
    }
  }
  free(t);
  printf("threads=%ld ops=%ld enomem=%ld\n", nthreads, nthreads * ops_per_thread,
         atomic_load(&enomem_count));
  return 0;
}
