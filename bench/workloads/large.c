/* large - large blocks, every page touched.
 *
 * A few slots hold blocks of 32 KiB to 4 MiB (log-uniform sizes); each
 * operation frees a random slot and allocates a new block there, writing
 * one byte in every page of it.  Stresses the large-block path: mapping
 * and unmapping, page faults, and how soon freed pages are reused or
 * returned to the system.
 */
#include "common.h"

#define NAME "large"
#define SLOTS 16
#define PAGE 4096
#define MIN_SHIFT 15   /* 32 KiB */
#define MAX_SHIFT 22   /* 4 MiB */
#define BASE_OPS 9e3

struct slot {
  unsigned char *p;
  size_t size;
};

/* Log-uniform in [2^MIN_SHIFT, 2^MAX_SHIFT]: a random power of two times a
 * random factor in [1, 2). */
static size_t large_size(uint64_t *rng)
{
  size_t base = (size_t)1 << rng_range(rng, MIN_SHIFT, MAX_SHIFT - 1);
  return base + (size_t)rng_below(rng, base + 1);
}

static void large_fill(struct slot *s, uint64_t *rng, uint64_t tag)
{
  s->size = large_size(rng);
  s->p = malloc(s->size);
  if (!s->p)
    bench_nomem(NAME, s->size);
  for (size_t off = 0; off < s->size; off += PAGE)
    s->p[off] = (unsigned char)(tag + off / PAGE);
  bench_stamp(s->p, s->size, tag);
}

/* Read back one byte per page (skipping the stamped first page). */
static uint64_t large_read(const struct slot *s)
{
  uint64_t sum = bench_peek(s->p, s->size);
  for (size_t off = PAGE; off < s->size; off += PAGE)
    sum += s->p[off];
  return sum;
}

int main(int argc, char **argv)
{
  struct bench_args a;
  bench_parse(argc, argv, NAME, 0, &a);

  struct slot slots[SLOTS];
  uint64_t rng = rng_seed(0), sum = 0;
  uint64_t ops = bench_scaled(&a, BASE_OPS);

  for (uint64_t i = 0; i < SLOTS; i++)
    large_fill(&slots[i], &rng, i);
  for (uint64_t i = 0; i < ops; i++) {
    struct slot *s = &slots[rng_below(&rng, SLOTS)];
    sum = bench_mix(sum, large_read(s));
    free(s->p);
    large_fill(s, &rng, i);
  }
  for (int i = 0; i < SLOTS; i++) {
    sum = bench_mix(sum, large_read(&slots[i]));
    free(slots[i].p);
  }
  bench_report(NAME, sum);
  return 0;
}
