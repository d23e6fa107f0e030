/* early.c - allocation before main, from two places.
 *
 * early_lib's constructor (see early_lib.c) runs before the preloaded
 * allocator's constructor; this program's own highest-priority
 * constructor runs before main.  Prints "lib=N exe=N" (failure counts,
 * -1 when a constructor never ran) and exits 0 when both are 0.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int early_lib_failures(void);
const char *early_lib_first_failure(void);

static int exe_failures = -1;
static char *kept;

__attribute__((constructor(101))) static void exe_early(void) {
  exe_failures = 0;
  kept = malloc(64);
  if (!kept)
    exe_failures++;
  else
    strcpy(kept, "allocated before main");
  char *p = realloc(NULL, 32);
  if (!p)
    exe_failures++;
  free(p);
}

int main(void) {
  int lib = early_lib_failures();
  printf("lib=%d exe=%d\n", lib, exe_failures);
  if (lib)
    fprintf(stderr, "early: library constructor: %s failed\n", early_lib_first_failure());
  if (!kept || strcmp(kept, "allocated before main") != 0) {
    fprintf(stderr, "early: block from the constructor lost\n");
    return 1;
  }
  free(kept);
  return lib == 0 && exe_failures == 0 ? 0 : 1;
}
