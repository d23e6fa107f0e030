/* sites_helper - allocates from two functions of known sizes, says "ready",
 * and keeps the blocks until its stdin closes; then exits without freeing
 * them (for SIMALLOC_LEAKS).  Run under libsimalloc by the sites tests. */
#include <stdio.h>
#include <stdlib.h>

/* Sizes whose blocks have room for a site trailer (8 bytes) to spare, so
 * that recording does not change them. */
#define BIG_COUNT 20
#define BIG_SIZE 4080      /* a 4096-byte block */
#define SMALL_COUNT 30
#define SMALL_SIZE 992     /* a 1008-byte block */

static void *keep[BIG_COUNT + SMALL_COUNT];

/* Exported, so that their names are in the symbol table as they are. */
void hold_big(void **out);
void hold_small(void **out);

__attribute__((noinline)) void hold_big(void **out) {
  for (int i = 0; i < BIG_COUNT; i++)
    out[i] = malloc(BIG_SIZE);
}

__attribute__((noinline)) void hold_small(void **out) {
  for (int i = 0; i < SMALL_COUNT; i++)
    out[i] = malloc(SMALL_SIZE);
}

int main(void) {
  hold_small(keep + BIG_COUNT);
  hold_big(keep);
  /* Churn that is freed again: its sites hold nothing at the end. */
  for (int i = 0; i < 1000; i++)
    free(malloc((size_t)(i % 300) + 1));
  printf("ready\n");
  fflush(stdout);
  while (getchar() != EOF) {
  }
  return keep[0] && keep[BIG_COUNT] ? 0 : 1;
}
