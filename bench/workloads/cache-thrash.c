/* cache-thrash - threads allocating, writing and freeing small objects.
 *
 * Modelled on Hoard's cache-thrash test.  Each thread repeatedly allocates
 * an 8-byte object, writes every byte of it many times and frees it.  An
 * allocator that hands neighbouring objects to different threads makes
 * them share a cache line, and the writes then bounce that line between
 * cores (active false sharing).  Stresses the placement of concurrent
 * small allocations; 1 thread is the baseline.
 *
 * The total amount of work does not depend on the thread count.
 */
#include "common.h"

#define NAME "cache-thrash"
#define OBJ_SIZE 8
#define WRITES 400
#define BASE_OBJECTS 2.5e5

struct worker {
  int id;
  uint64_t objects;
  uint64_t sum;
};

/* Write every byte of the object WRITES times; volatile keeps each store. */
static void thrash_write(volatile unsigned char *p, uint64_t seed)
{
  for (int j = 0; j < OBJ_SIZE; j++)
    p[j] = (unsigned char)seed;
  for (int k = 0; k < WRITES; k++)
    for (int j = 0; j < OBJ_SIZE; j++)
      p[j] = (unsigned char)(p[j] * 7 + (unsigned)k + (unsigned)j);
}

static void *thrash_worker(void *arg)
{
  struct worker *w = arg;
  uint64_t sum = 0, objects = w->objects;
  for (uint64_t i = 0; i < objects; i++) {
    volatile unsigned char *p = malloc(OBJ_SIZE);
    if (!p)
      bench_nomem(NAME, OBJ_SIZE);
    thrash_write(p, i);
    for (int j = 0; j < OBJ_SIZE; j++)
      sum += p[j];
    free((void *)p);
  }
  w->sum += sum;  /* once: the workers' records share cache lines */
  return NULL;
}

int main(int argc, char **argv)
{
  struct bench_args a;
  bench_parse(argc, argv, NAME, 1, &a);

  int n = a.threads;
  struct worker w[BENCH_MAX_THREADS];
  for (int i = 0; i < n; i++)
    w[i] = (struct worker){ .id = i,
      .objects = bench_scaled(&a, BASE_OBJECTS) / (uint64_t)n };
  bench_spawn(NAME, n, thrash_worker, w, sizeof w[0]);

  uint64_t sum = 0;
  for (int i = 0; i < n; i++)
    sum += w[i].sum;
  bench_report(NAME, sum);
  return 0;
}
