/* misuse.c - hands the allocator pointers it never gave out.
 *
 *   misuse free-stack | free-interior | free-mmap | double-free
 *          realloc-stack | realloc-interior | realloc-mmap
 *          overflow[-malloc|-thread|-exit] | write-after-free[-malloc] | warn
 *
 * Prints "ptr=0x..." (the bad pointer) on stdout before the bad call, so
 * the test can check that the allocator's message names it.  The
 * allocator is expected to report the call and abort; if the call returns,
 * the helper says so and exits 1.
 */
#define _GNU_SOURCE
#include "common.h"

#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

/* Hides where a pointer came from, so the compiler does not warn about
 * (or fold away) the deliberate misuse. */
static void *launder(void *p) {
  void *volatile v = p;
  return v;
}

static void announce(const void *p) {
  printf("ptr=%p\n", p);
  fflush(stdout);
}

static void *bad_pointer(const char *kind, char *stack) {
  if (strcmp(kind, "stack") == 0)
    return stack + 32;
  if (strcmp(kind, "misaligned") == 0) {
    char *p = malloc(256);
    CHECK(p != NULL, "malloc(256)");
    return p + 1;
  }
  if (strcmp(kind, "interior") == 0) {
    char *p = malloc(256);
    CHECK(p != NULL, "malloc(256)");
    memset(p, 0, 256);
    return p + 64;
  }
  if (strcmp(kind, "mmap") == 0) {
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    return m + 4096;
  }
  return NULL;
}

/* Frees two blocks into this thread's cache, then writes a stack address
 * over the first word of the last one, its link in the cache.  (A third
 * free: the block freed last is held back out of the lists, tcache.h.) */
static void damage_a_link(char *stack) {
  char *a = malloc(64), *b = malloc(64), *c = malloc(64);
  CHECK(a && b && c, "malloc(64)");
  free(a);
  free(b);
  free(c);
  void *bogus = stack + 32;
  announce(bogus);
  memcpy(launder(b), &bogus, sizeof bogus);
}

/* The thread's exit empties the cache along the damaged link. */
static void *write_after_free(void *stack) {
  damage_a_link(stack);
  return NULL;
}

/* Two mallocs of the size: the first takes the damaged block off the
 * list, the second would hand out the stack address. */
static void write_after_free_malloc(char *stack) {
  damage_a_link(stack);
  char *x = malloc(64), *y = malloc(64);
  fprintf(stderr, "misuse: malloc returned %p and %p after a write after free\n", (void *)x,
          (void *)y);
}

/* One byte written past a's usable end lands in the next block's head.
 * free(a) holds a back (tcache.h) and the damage is reported, naming a,
 * at what comes next, which `then` picks: "" the thread's next free,
 * "-malloc" a malloc that finds its list empty, "-thread" the thread's
 * exit (this runs in a thread of its own), "-exit" the process's. */
static void *overflow(void *then) {
  char *a = malloc(40), *b = malloc(40), *c = malloc(40);
  CHECK(a && b && c, "malloc(40)");
  size_t n = malloc_usable_size(a);
  memset(a, 'x', n + 1);
  announce(a);
  free(launder(a));
  fprintf(stderr, "misuse: free(%p) returned\n", (void *)a);
  if (strcmp(then, "") == 0) {
    free(c);
    fprintf(stderr, "misuse: the free after an overflow returned\n");
    exit(1);
  }
  if (strcmp(then, "-malloc") == 0) {
    void *p = malloc(3000);
    fprintf(stderr, "misuse: the malloc after an overflow returned %p\n", p);
    exit(1);
  }
  return NULL;
}

int main(int argc, char **argv) {
  char stack[256];
  memset(stack, 0, sizeof stack);
  if (argc != 2) {
    fprintf(stderr, "usage: misuse free-KIND|realloc-KIND|double-free\n");
    return 2;
  }
  const char *what = argv[1];
  if (strncmp(what, "overflow", 8) == 0) {
    const char *then = what + 8;
    if (strcmp(then, "-thread") == 0) {
      pthread_t t;
      CHECK(pthread_create(&t, NULL, overflow, (void *)then) == 0, "pthread_create");
      pthread_join(t, NULL);
      fprintf(stderr, "misuse: a thread exited after an overflow\n");
      exit(1);
    }
    if (*then && strcmp(then, "-malloc") != 0 && strcmp(then, "-exit") != 0)
      goto usage;
    overflow((void *)then);
    return 1;  /* "-exit": the process's exit reports it */
  }
  if (strcmp(what, "write-after-free-malloc") == 0) {
    write_after_free_malloc(stack);
    return 1;
  }
  if (strcmp(what, "write-after-free") == 0) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, write_after_free, stack) == 0, "pthread_create");
    pthread_join(t, NULL);
    fprintf(stderr, "misuse: a thread exited with a damaged cache\n");
    return 1;
  }
  if (strcmp(what, "warn") == 0) {
    /* SIMALLOC_ON_ERROR=warn: every bad call is reported and has no effect. */
    char *p = malloc(64), *q = malloc(64);
    CHECK(p && q, "malloc(64)");
    strcpy(q, "intact");
    free(p);
    free(launder(p));                       /* double free */
    free(launder(stack + 32));              /* not ours */
    void *r = realloc(launder(q + 16), 10); /* interior */
    CHECK(r == NULL, "realloc of an interior pointer gave %p", r);
    CHECK(malloc_usable_size(launder(stack)) == 0, "usable size of a stack address");
    CHECK(strcmp(q, "intact") == 0, "a bad call changed a live block");
    for (int i = 0; i < 1000; i++) {        /* the heap still works */
      void *t = malloc((size_t)i * 7 + 1);
      CHECK(t != NULL, "malloc after the errors");
      free(t);
    }
    free(q);
    printf("survived=1\n");
    return 0;
  }
  if (strcmp(what, "use-after-free") == 0) {
    /* Run with SIMALLOC_CHECK=1: a write into a freed block's tree node. */
    char *p = malloc(5000), *guard = malloc(16);
    CHECK(p && guard, "malloc");
    free(p);
    memset(launder(p), 0x55, 32);
    void *t = malloc(10);
    fprintf(stderr, "misuse: malloc after the corruption returned %p\n", t);
    return 1;
  }
  if (strcmp(what, "double-free") == 0) {
    void *a = malloc(64), *p = malloc(64), *b = malloc(64);
    CHECK(a && p && b, "malloc(64)");
    free(p);
    announce(p);
    free(launder(p));
    fprintf(stderr, "misuse: second free(%p) returned\n", p);
    return 1;
  }
  if (strncmp(what, "free-", 5) == 0) {
    void *p = bad_pointer(what + 5, stack);
    if (!p)
      goto usage;
    announce(p);
    free(launder(p));
    fprintf(stderr, "misuse: free(%p) returned\n", p);
    return 1;
  }
  if (strncmp(what, "realloc-", 8) == 0) {
    void *p = bad_pointer(what + 8, stack);
    if (!p)
      goto usage;
    announce(p);
    void *r = realloc(launder(p), 100);
    fprintf(stderr, "misuse: realloc(%p, 100) returned %p\n", p, r);
    return 1;
  }
usage:
  fprintf(stderr, "misuse: unknown case '%s'\n", what);
  return 2;
}
