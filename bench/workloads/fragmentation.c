/* fragmentation - small blocks replaced by ever larger ones.
 *
 * Fill a table with small blocks, free a random half of them, refill the
 * holes with larger blocks, and repeat with sizes growing each round.  The
 * freed small blocks are too small for the new requests unless the
 * allocator coalesces them, so the figure that matters is peak RSS, not
 * time.  Stresses coalescing, fit policy and returning memory.
 */
#include "common.h"

#define NAME "fragmentation"
#define SLOTS 100000
#define ROUNDS 8
#define BASE_PASSES 6

struct slot {
  void *p;
  size_t size;
};

/* Sizes for round r: [16, 32] scaled by 1.5^r. */
static size_t frag_size(uint64_t *rng, int round)
{
  size_t lo = 16;
  for (int r = 0; r < round; r++)
    lo = lo * 3 / 2;
  return rng_range(rng, lo, 2 * lo);
}

static void frag_fill(struct slot *s, uint64_t *rng, int round, uint64_t tag)
{
  s->size = frag_size(rng, round);
  s->p = malloc(s->size);
  if (!s->p)
    bench_nomem(NAME, s->size);
  bench_stamp(s->p, s->size, tag);
}

static uint64_t frag_pass(struct slot *slots, uint64_t *rng, uint64_t sum)
{
  uint64_t tag = 0;
  for (int i = 0; i < SLOTS; i++)
    frag_fill(&slots[i], rng, 0, tag++);
  for (int round = 1; round < ROUNDS; round++) {
    for (int i = 0; i < SLOTS; i++) {
      if (rng_below(rng, 2)) {
        sum = bench_mix(sum, bench_peek(slots[i].p, slots[i].size));
        free(slots[i].p);
        slots[i].p = NULL;
      }
    }
    for (int i = 0; i < SLOTS; i++)
      if (!slots[i].p)
        frag_fill(&slots[i], rng, round, tag++);
  }
  for (int i = 0; i < SLOTS; i++) {
    sum = bench_mix(sum, bench_peek(slots[i].p, slots[i].size));
    free(slots[i].p);
  }
  return sum;
}

int main(int argc, char **argv)
{
  struct bench_args a;
  bench_parse(argc, argv, NAME, 0, &a);

  static struct slot slots[SLOTS];
  uint64_t rng = rng_seed(0), sum = 0;
  uint64_t passes = bench_scaled(&a, BASE_PASSES);

  for (uint64_t p = 0; p < passes; p++)
    sum = frag_pass(slots, &rng, sum);
  bench_report(NAME, sum);
  return 0;
}
