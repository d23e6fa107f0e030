/* churn - one thread replacing random blocks in a table of slots.
 *
 * The table holds 16K slots.  Each operation picks a slot at random, checks
 * and frees the block in it and puts a new block of a fresh random size
 * there.  Sizes are mostly 8-64 bytes with a tail up to 4 KiB, the shape of
 * a typical small-object heap.  Stresses the single-thread malloc/free fast
 * path and the reuse of recently freed blocks of mixed sizes.
 */
#include "common.h"

#define NAME "churn"
#define SLOTS 16384
#define BASE_OPS 1e7

struct slot {
  void *p;
  size_t size;
};

static size_t churn_size(uint64_t *rng)
{
  uint64_t dice = rng_below(rng, 100);
  if (dice < 90)
    return rng_range(rng, 8, 64);
  if (dice < 98)
    return rng_range(rng, 65, 512);
  return rng_range(rng, 513, 4096);
}

static void churn_fill(struct slot *s, uint64_t *rng, uint64_t tag)
{
  s->size = churn_size(rng);
  s->p = malloc(s->size);
  if (!s->p)
    bench_nomem(NAME, s->size);
  bench_stamp(s->p, s->size, tag);
}

int main(int argc, char **argv)
{
  struct bench_args a;
  bench_parse(argc, argv, NAME, 0, &a);

  static struct slot slots[SLOTS];
  uint64_t rng = rng_seed(0), sum = 0;
  uint64_t ops = bench_scaled(&a, BASE_OPS);

  for (uint64_t i = 0; i < SLOTS; i++)
    churn_fill(&slots[i], &rng, i);
  for (uint64_t i = 0; i < ops; i++) {
    struct slot *s = &slots[rng_below(&rng, SLOTS)];
    sum = bench_mix(sum, bench_peek(s->p, s->size));
    free(s->p);
    churn_fill(s, &rng, i);
  }
  for (uint64_t i = 0; i < SLOTS; i++) {
    sum = bench_mix(sum, bench_peek(slots[i].p, slots[i].size));
    free(slots[i].p);
  }
  bench_report(NAME, sum);
  return 0;
}
