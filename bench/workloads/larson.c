/* larson - threads replacing blocks, then trading their tables.
 *
 * Modelled on the Larson server benchmark.  There is one table of slots
 * per thread, each slot holding a block of 16-1000 bytes.  In every round
 * each thread replaces random slots of the table it holds; then all threads
 * meet at a barrier and each takes over the table of its neighbour, so from
 * the second round on most frees are of blocks another thread allocated.
 * Stresses cross-thread free and contention on shared allocator state.
 *
 * The total number of operations does not depend on the thread count.
 */
#include "common.h"

#define NAME "larson"
#define SLOTS 4000
#define ROUNDS 50
#define BASE_OPS 1.5e7

struct slot {
  void *p;
  size_t size;
};

struct worker {
  int id;
  int nthreads;
  uint64_t ops_per_round;
  uint64_t sum;
};

static struct slot (*tables)[SLOTS];
static pthread_barrier_t barrier;

static void larson_fill(struct slot *s, uint64_t *rng, uint64_t tag)
{
  s->size = rng_range(rng, 16, 1000);
  s->p = malloc(s->size);
  if (!s->p)
    bench_nomem(NAME, s->size);
  bench_stamp(s->p, s->size, tag);
}

static void *larson_worker(void *arg)
{
  struct worker *w = arg;
  uint64_t rng = rng_seed((uint64_t)w->id + 1), tag = (uint64_t)w->id << 40, sum = 0;
  struct slot *mine = tables[w->id];

  for (int i = 0; i < SLOTS; i++)
    larson_fill(&mine[i], &rng, tag++);
  for (int round = 0; round < ROUNDS; round++) {
    pthread_barrier_wait(&barrier);
    struct slot *t = tables[(w->id + round) % w->nthreads];
    for (uint64_t i = 0; i < w->ops_per_round; i++) {
      struct slot *s = &t[rng_below(&rng, SLOTS)];
      sum = bench_mix(sum, bench_peek(s->p, s->size));
      free(s->p);
      larson_fill(s, &rng, tag++);
    }
  }
  w->sum = sum;  /* once: the workers' records share cache lines */
  return NULL;
}

int main(int argc, char **argv)
{
  struct bench_args a;
  bench_parse(argc, argv, NAME, 1, &a);

  int n = a.threads;
  struct worker w[BENCH_MAX_THREADS];
  tables = calloc((size_t)n, sizeof *tables);
  if (!tables)
    bench_nomem(NAME, (size_t)n * sizeof *tables);
  pthread_barrier_init(&barrier, NULL, (unsigned)n);
  for (int i = 0; i < n; i++)
    w[i] = (struct worker){ .id = i, .nthreads = n,
      .ops_per_round = bench_scaled(&a, BASE_OPS) / ROUNDS / (uint64_t)n };
  bench_spawn(NAME, n, larson_worker, w, sizeof w[0]);

  uint64_t sum = 0;
  for (int i = 0; i < n; i++) {
    sum += w[i].sum;
    for (int j = 0; j < SLOTS; j++) {
      sum = bench_mix(sum, bench_peek(tables[i][j].p, tables[i][j].size));
      free(tables[i][j].p);
    }
  }
  free(tables);
  pthread_barrier_destroy(&barrier);
  bench_report(NAME, sum);
  return 0;
}
