/* sites_helper - allocates from two functions of known sizes, and grows
 * blocks of a third with realloc in a fourth, which moves them; says
 * "ready", and keeps the blocks until its stdin closes; then exits without
 * freeing them (for SIMALLOC_LEAKS).  Run under libsimalloc by the sites
 * tests. */
#include <stdio.h>
#include <stdlib.h>

/* Sizes whose blocks have room for a site trailer (8 bytes) to spare, so
 * that recording does not change them. */
#define BIG_COUNT 20
#define BIG_SIZE 4080      /* a 4096-byte block */
#define SMALL_COUNT 30
#define SMALL_SIZE 992     /* a 1008-byte block */

/* Blocks of 8 KiB grown to 16 KiB: the next block is in use, so they move. */
#define MOVED_COUNT 3
#define MOVED_FROM 8176    /* an 8192-byte block */
#define MOVED_TO 16368     /* a 16384-byte block */

static void *keep[BIG_COUNT + SMALL_COUNT];
static void *moved[MOVED_COUNT + 1];

/* Exported, so that their names are in the symbol table as they are. */
void hold_big(void **out);
void hold_small(void **out);
void start_moved(void **out);
void grow_moved(void **out);

__attribute__((noinline)) void hold_big(void **out) {
  for (int i = 0; i < BIG_COUNT; i++)
    out[i] = malloc(BIG_SIZE);
}

__attribute__((noinline)) void hold_small(void **out) {
  for (int i = 0; i < SMALL_COUNT; i++)
    out[i] = malloc(SMALL_SIZE);
}

/* One more than it grows: the last keeps the others from growing in place. */
__attribute__((noinline)) void start_moved(void **out) {
  for (int i = 0; i <= MOVED_COUNT; i++)
    out[i] = malloc(MOVED_FROM);
}

__attribute__((noinline)) void grow_moved(void **out) {
  for (int i = 0; i < MOVED_COUNT; i++)
    out[i] = realloc(out[i], MOVED_TO);
}

int main(void) {
  hold_small(keep + BIG_COUNT);
  hold_big(keep);
  start_moved(moved);
  grow_moved(moved);
  /* Churn that is freed again: its sites hold nothing at the end. */
  for (int i = 0; i < 1000; i++)
    free(malloc((size_t)(i % 300) + 1));
  printf("ready\n");
  fflush(stdout);
  while (getchar() != EOF) {
  }
  return keep[0] && keep[BIG_COUNT] && moved[0] ? 0 : 1;
}
