/* cache-scratch - threads reusing a freed neighbour, then churning.
 *
 * Modelled on Hoard's cache-scratch test.  The main thread allocates one
 * 8-byte object per thread, back to back, so they likely share a cache
 * line, and hands object i to thread i.  Each thread frees its object and
 * then repeatedly allocates an 8-byte object, writes it many times and
 * frees it.  An allocator that gives the freed neighbour back to the
 * thread that freed it keeps the threads writing into one cache line
 * (passive false sharing).  Stresses where memory freed by a thread, but
 * allocated by another, is reused.
 *
 * The total amount of work does not depend on the thread count.
 */
#include "common.h"

#define NAME "cache-scratch"
#define OBJ_SIZE 8
#define WRITES 400
#define BASE_OBJECTS 2.5e5

struct worker {
  int id;
  volatile unsigned char *first;   /* allocated by main, freed here */
  uint64_t objects;
  uint64_t sum;
};

/* Write every byte of the object WRITES times; volatile keeps each store. */
static void scratch_write(volatile unsigned char *p, uint64_t seed)
{
  for (int j = 0; j < OBJ_SIZE; j++)
    p[j] = (unsigned char)seed;
  for (int k = 0; k < WRITES; k++)
    for (int j = 0; j < OBJ_SIZE; j++)
      p[j] = (unsigned char)(p[j] * 7 + (unsigned)k + (unsigned)j);
}

static void *scratch_worker(void *arg)
{
  struct worker *w = arg;
  w->sum += w->first[0];
  free((void *)w->first);
  uint64_t sum = 0, objects = w->objects;
  for (uint64_t i = 0; i < objects; i++) {
    volatile unsigned char *p = malloc(OBJ_SIZE);
    if (!p)
      bench_nomem(NAME, OBJ_SIZE);
    scratch_write(p, i);
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
  for (int i = 0; i < n; i++) {
    volatile unsigned char *p = malloc(OBJ_SIZE);
    if (!p)
      bench_nomem(NAME, OBJ_SIZE);
    scratch_write(p, (uint64_t)i);
    w[i] = (struct worker){ .id = i, .first = p,
      .objects = bench_scaled(&a, BASE_OBJECTS) / (uint64_t)n };
  }
  bench_spawn(NAME, n, scratch_worker, w, sizeof w[0]);

  uint64_t sum = 0;
  for (int i = 0; i < n; i++)
    sum += w[i].sum;
  bench_report(NAME, sum);
  return 0;
}
