/* forks.c - fork repeatedly while other threads allocate.
 *
 *   forks [FORKS [THREADS]]
 *
 * THREADS workers (default 4) malloc, realloc and free in a loop while the
 * main thread forks FORKS times (default 300).  Each child verifies a block
 * it inherited, allocates and frees on its own (sometimes from a new
 * thread) and exits.  A deadlock in the parent or a child ends in SIGALRM
 * instead of a hang.  Exit 0 when every child exited 0.
 */
#define _GNU_SOURCE
#include "common.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;

static void *worker(void *arg) {
  uint32_t seed = (uint32_t)(uintptr_t)arg;
  void *keep[32] = {0};
  for (unsigned i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
    unsigned k = i % 32;
    size_t n = (i * 131 + seed) % 5000 + 1;
    if (keep[k] && (i & 1))
      keep[k] = realloc(keep[k], n);
    else {
      free(keep[k]);
      keep[k] = malloc(n);
    }
    CHECK(keep[k] != NULL, "worker allocation of %zu", n);
    memset(keep[k], (int)i, n);
  }
  for (unsigned k = 0; k < 32; k++)
    free(keep[k]);
  return NULL;
}

static void child_fail(const char *msg) {
  (void)!write(2, msg, strlen(msg));
  _exit(1);
}

static void *child_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++) {
    void *p = malloc((size_t)i * 10 + 1);
    if (!p)
      return (void *)1;
    free(p);
  }
  return NULL;
}

static void child(const unsigned char *inherited, size_t n, int index) {
  alarm(20);
  if (it_verify(inherited, n, 77) != n)
    child_fail("forks: child sees a damaged inherited block\n");
  void *blocks[64];
  for (int i = 0; i < 64; i++) {
    blocks[i] = malloc((size_t)(i * 97 % 3000) + 1);
    if (!blocks[i])
      child_fail("forks: malloc failed in child\n");
    it_fill(blocks[i], (size_t)(i * 97 % 3000) + 1, (uint32_t)i);
  }
  char *r = realloc(blocks[0], 100000);
  if (!r || it_verify(r, 1, 0) != 1)
    child_fail("forks: realloc failed in child\n");
  blocks[0] = r;
  for (int i = 0; i < 64; i++)
    free(blocks[i]);
  free((void *)inherited); /* the child's copy is its own to free */
  if (index % 10 == 0) {
    pthread_t t;
    void *ret;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, &ret) || ret)
      child_fail("forks: thread in child failed\n");
  }
  _exit(0);
}

int main(int argc, char **argv) {
  long forks = argc > 1 ? strtol(argv[1], NULL, 10) : 300;
  long nthreads = argc > 2 ? strtol(argv[2], NULL, 10) : 4;
  if (forks < 1 || nthreads < 0 || nthreads > 64) {
    fprintf(stderr, "usage: forks [FORKS [THREADS(0-64)]]\n");
    return 2;
  }
  alarm(240); /* the parent deadlocking turns into SIGALRM */
  size_t n = 10000;
  unsigned char *inherited = malloc(n);
  CHECK(inherited != NULL, "malloc");
  it_fill(inherited, n, 77);
  pthread_t t[64];
  for (long i = 0; i < nthreads; i++)
    CHECK(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) == 0, "thread %ld", i);
  long failed = 0;
  for (long i = 0; i < forks; i++) {
    pid_t pid = fork();
    CHECK(pid >= 0, "fork number %ld failed", i);
    if (pid == 0)
      child(inherited, n, (int)i);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      failed++;
      if (WIFSIGNALED(status))
        fprintf(stderr, "forks: child %ld killed by signal %d%s\n", i, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (deadlock)" : "");
    }
  }
  atomic_store(&stop, 1);
  for (long i = 0; i < nthreads; i++)
    pthread_join(t[i], NULL);
  CHECK(it_verify(inherited, n, 77) == n, "parent block damaged");
  free(inherited);
  printf("forks=%ld failed=%ld\n", forks, failed);
  return failed ? 1 : 0;
}
