/* realloc - buffers growing by 1.5x and shrinking back.
 *
 * Many buffers, each either growing (size * 3/2) or shrinking (size * 2/3)
 * between 16 bytes and 256 KiB, turning round at either end.  Each step
 * reallocs one random buffer and writes its new tail; the buffer's first
 * bytes must survive every move.  Stresses realloc: growing in place into
 * free neighbours, moving when that fails, and shrinking in place.
 */
#include "common.h"

#define NAME "realloc"
#define BUFS 512
#define MIN_SIZE 16
#define MAX_SIZE (256 * 1024)
#define BASE_OPS 3e5

struct buf {
  void *p;
  size_t size;
  uint64_t tag;   /* written at the start when created, checked on every step */
  int growing;
};

static void buf_resize(struct buf *b, size_t size)
{
  void *p = realloc(b->p, size);
  if (!p)
    bench_nomem(NAME, size);
  b->p = p;
  b->size = size;
  memset((char *)p + size - 8, 0x5a, 8);
}

static void buf_step(struct buf *b)
{
  size_t next = b->growing ? b->size * 3 / 2 : b->size * 2 / 3;
  if (next > MAX_SIZE || next < MIN_SIZE) {
    b->growing = !b->growing;
    next = b->growing ? b->size * 3 / 2 : b->size * 2 / 3;
  }
  buf_resize(b, next);
}

int main(int argc, char **argv)
{
  struct bench_args a;
  bench_parse(argc, argv, NAME, 0, &a);

  static struct buf bufs[BUFS];
  uint64_t rng = rng_seed(0), sum = 0;
  uint64_t ops = bench_scaled(&a, BASE_OPS);

  for (int i = 0; i < BUFS; i++) {
    struct buf *b = &bufs[i];
    b->tag = rng_next(&rng);
    b->growing = 1;
    b->p = NULL;
    buf_resize(b, MIN_SIZE);
    memcpy(b->p, &b->tag, 8);
    for (uint64_t k = rng_below(&rng, 12); k > 0; k--)
      buf_step(b);
  }
  for (uint64_t i = 0; i < ops; i++) {
    struct buf *b = &bufs[rng_below(&rng, BUFS)];
    buf_step(b);
    sum = bench_mix(sum, bench_peek(b->p, b->size) ^ b->size);
  }
  for (int i = 0; i < BUFS; i++) {
    if (bench_peek(bufs[i].p, bufs[i].size) != bufs[i].tag) {
      fprintf(stderr, "%s: buffer %d lost its contents in realloc\n", NAME, i);
      return 1;
    }
    free(bufs[i].p);
  }
  bench_report(NAME, sum);
  return 0;
}
