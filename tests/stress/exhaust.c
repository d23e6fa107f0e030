/* exhaust.c - failure, exhaustion and fork corner cases, run under the
 * library by test_failure.c.
 *
 *   exhaust arena BLOCK      allocate BLOCK-byte blocks until malloc fails;
 *                            the failure must be NULL with ENOMEM; free
 *                            everything and allocate as much again
 *   exhaust sigfork FORKS    fork from a SIGALRM handler (1 ms timer) while
 *                            the main thread is busy in malloc and free
 *   exhaust forkio FORKS     fork while other threads read lines with
 *                            getline, call fflush(NULL) and allocate
 *   exhaust threadexit ROUNDS  threads allocate blocks and exit; the next
 *                            round's threads check and free them
 *
 * Every mode prints one line of key=value results.  Exit status: 0 good,
 * 1 a check failed (said on stderr), 64 bad usage.  Forked children arm
 * alarm() first thing, so a child that deadlocks dies of SIGALRM and is
 * counted as hung instead of hanging the test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_WATCHDOG_S 10

static void fail(const char *msg) {
  fprintf(stderr, "exhaust: %s\n", msg);
  exit(1);
}

static unsigned long arg_number(const char *s) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0);
  if (errno || *end || end == s || v == 0) {
    fprintf(stderr, "exhaust: '%s' is not a positive number\n", s);
    exit(64);
  }
  return v;
}

/* ---- arena ---------------------------------------------------------------- */

static size_t fill_until_enomem(void **blocks, size_t max, size_t size) {
  size_t n = 0;
  while (n < max) {
    errno = 0;
    void *p = malloc(size);
    if (!p) {
      if (errno != ENOMEM)
        fail("malloc failed without ENOMEM");
      return n;
    }
    memset(p, (int)(n & 0xff), size);
    blocks[n++] = p;
  }
  fail("the arena never ran out");
  return n;
}

static void free_checked(void **blocks, size_t n, size_t size) {
  for (size_t i = 0; i < n; i++) {
    const unsigned char *p = blocks[i];
    if (p[0] != (i & 0xff) || p[size - 1] != (i & 0xff))
      fail("a block lost its contents");
    free(blocks[i]);
  }
}

/* The table lives outside the heap, so it does not depend on the arena. */
#define MAX_BLOCKS (1 << 16)
static void *blocks[MAX_BLOCKS];

static int mode_arena(size_t size) {
  enum { MAX = MAX_BLOCKS };
  size_t first = fill_until_enomem(blocks, MAX, size);
  /* Out of memory, the process goes on: a failing call of every kind. */
  errno = 0;
  if (calloc(1, size) || errno != ENOMEM)
    fail("calloc in a full arena did not fail with ENOMEM");
  errno = 0;
  if (realloc(blocks[0], size * 4) || errno != ENOMEM)
    fail("realloc in a full arena did not fail with ENOMEM");
  free_checked(blocks, first, size);
  size_t again = fill_until_enomem(blocks, MAX, size);
  free_checked(blocks, again, size);
  printf("arena: size=%zu blocks=%zu again=%zu bytes=%zu\n", size, first, again, first * size);
  return 0;
}

/* ---- children ------------------------------------------------------------ */

/* Arms the watchdog of a forked child: a deadlock becomes SIGALRM. */
static void child_watchdog(void) {
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigaction(SIGALRM, &dfl, NULL);
  alarm(CHILD_WATCHDOG_S);
}

/* What a forked child does with the heap before it leaves. */
static void child_body(void) {
  for (int i = 0; i < 64; i++) {
    unsigned char *p = malloc(16 + (size_t)i * 24);
    if (!p)
      _exit(3);
    p[0] = (unsigned char)i;
    unsigned char *q = realloc(p, 4000);
    if (!q || q[0] != (unsigned char)i)
      _exit(4);
    free(q);
  }
  _exit(0);
}

typedef struct tally {
  int ok, hung, failed;
} tally;

/* Reaps one child; the child's own alarm bounds the wait. */
static void reap(pid_t pid, tally *t) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      fail("waitpid failed");
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
    t->ok++;
  else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
    t->hung++;
  else
    t->failed++;
}

static int report(const char *mode, int forks, const tally *t) {
  printf("%s: forks=%d ok=%d hung=%d failed=%d\n", mode, forks, t->ok, t->hung, t->failed);
  if (t->ok != forks) {
    fprintf(stderr, "exhaust: %s: %d children hung in the allocator, %d failed\n", mode, t->hung,
            t->failed);
    return 1;
  }
  return 0;
}

/* ---- sigfork ------------------------------------------------------------- */

#define MAX_FORKS 4096
static pid_t kids[MAX_FORKS];
static volatile sig_atomic_t nkids, want_kids, fork_errors, in_child;

/* The child only notes where it is: returning from the handler lets it
 * finish the malloc or free that the signal interrupted, and only then
 * does it use the heap (the main loop sees in_child). */
static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  if (nkids < want_kids && !in_child) {
    pid_t pid = fork();
    if (pid == 0) {
      child_watchdog();
      in_child = 1;
    } else if (pid > 0)
      kids[nkids++] = pid;
    else
      fork_errors++;
  }
  errno = saved;
}

static int mode_sigfork(int forks) {
  if (forks > MAX_FORKS)
    forks = MAX_FORKS;
  want_kids = forks;
  struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 1000}, {0, 1000}};
  setitimer(ITIMER_REAL, &it, NULL);
  void *keep[64] = {0};
  unsigned long iter = 0;
  while (nkids < want_kids && fork_errors < 100) {
    size_t i = iter % 64, size = 1 + (iter * 7919) % 3000;
    free(keep[i]);
    keep[i] = (iter & 3) == 0 ? calloc(1, size) : malloc(size);
    if (!keep[i])
      fail("malloc failed in the parent");
    memset(keep[i], 0x5a, size);
    iter++;
    if (in_child)
      child_body();
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  for (int i = 0; i < 64; i++)
    free(keep[i]);
  tally t = {0};
  for (int i = 0; i < nkids; i++)
    reap(kids[i], &t);
  t.failed += fork_errors;
  return report("sigfork", forks, &t);
}

/* ---- forkio -------------------------------------------------------------- */

static atomic_int busy_stop;

/* Writes numbered lines into the pipe until told to stop.  Plain write(2),
 * not stdio: a writer that held a FILE lock while blocked on a full pipe
 * could deadlock with fflush(NULL) in glibc alone, whatever the allocator. */
static void *feeder(void *arg) {
  int fd = *(int *)arg;
  char line[400];
  for (unsigned long i = 0; !atomic_load(&busy_stop); i++) {
    int n = snprintf(line, sizeof line, "line %lu %.*s\n", i, (int)(i % 300),
                     "....................................................................."
                     "....................................................................."
                     "....................................................................."
                     "....................................................................."
                     "................................................................");
    if (write(fd, line, (size_t)n) != n)
      break;
  }
  close(fd);
  return NULL;
}

static void *line_reader(void *arg) {
  FILE *r = fdopen(*(int *)arg, "r");
  char *line = NULL;
  size_t cap = 0;
  while (r && getline(&line, &cap, r) > 0) {
    free(line); /* a fresh buffer every time: more allocation */
    line = NULL;
    cap = 0;
  }
  free(line);
  if (r)
    fclose(r);
  return NULL;
}

static void *flusher(void *arg) {
  (void)arg;
  FILE *f = tmpfile();
  while (f && !atomic_load(&busy_stop)) {
    fprintf(f, "%d\n", rand());
    fflush(NULL);
  }
  if (f)
    fclose(f);
  return NULL;
}

static void *allocator(void *arg) {
  (void)arg;
  void *keep[128] = {0};
  for (unsigned long i = 0; !atomic_load(&busy_stop); i++) {
    free(keep[i % 128]);
    keep[i % 128] = malloc(1 + (i * 131) % 5000);
  }
  for (int i = 0; i < 128; i++)
    free(keep[i]);
  return NULL;
}

static int mode_forkio(int forks) {
  int fds[2];
  if (pipe(fds) != 0)
    fail("pipe failed");
  pthread_t t[5];
  pthread_create(&t[0], NULL, feeder, &fds[1]);
  pthread_create(&t[1], NULL, line_reader, &fds[0]);
  pthread_create(&t[2], NULL, flusher, NULL);
  pthread_create(&t[3], NULL, allocator, NULL);
  pthread_create(&t[4], NULL, allocator, NULL);
  tally tl = {0};
  for (int i = 0; i < forks; i++) {
    pid_t pid = fork();
    if (pid < 0)
      fail("fork failed");
    if (pid == 0) {
      /* stdio and the heap must both work in the child */
      child_watchdog();
      char *s = NULL;
      if (asprintf(&s, "child %d", i) < 0)
        _exit(3);
      FILE *m = fopen("/dev/null", "w");
      if (!m || fprintf(m, "%s\n", s) < 0 || fflush(NULL) != 0)
        _exit(5);
      fclose(m);
      free(s);
      child_body();
    }
    reap(pid, &tl);
  }
  atomic_store(&busy_stop, 1);
  for (int i = 0; i < 5; i++)
    pthread_join(t[i], NULL);
  return report("forkio", forks, &tl);
}

/* ---- threadexit ------------------------------------------------------------ */

#define PER_THREAD 256
#define THREADS 8

typedef struct batch {
  unsigned char *p[PER_THREAD];
  size_t size[PER_THREAD];
  unsigned tag;
} batch;

static batch batches[THREADS];

static void *producer(void *arg) {
  batch *b = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    b->size[i] = 1 + (size_t)((b->tag * 31u + (unsigned)i * 97u) % 9000);
    b->p[i] = malloc(b->size[i]);
    if (!b->p[i])
      fail("malloc failed in a producer");
    memset(b->p[i], (int)(b->tag + (unsigned)i) & 0xff, b->size[i]);
  }
  return NULL;
}

/* Frees the blocks a thread of the previous round left behind. */
static void *consumer(void *arg) {
  batch *b = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    unsigned char want = (unsigned char)((b->tag + (unsigned)i) & 0xff);
    for (size_t k = 0; k < b->size[i]; k += 61)
      if (b->p[i][k] != want)
        fail("a block of an exited thread lost its contents");
    free(b->p[i]);
  }
  return NULL;
}

static int mode_threadexit(int rounds) {
  pthread_t t[THREADS];
  unsigned long freed = 0;
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < THREADS; i++) {
      batches[i].tag = (unsigned)(r * THREADS + i);
      pthread_create(&t[i], NULL, producer, &batches[i]);
    }
    for (int i = 0; i < THREADS; i++)
      pthread_join(t[i], NULL);
    /* every producer has exited; other threads free what they made */
    for (int i = 0; i < THREADS; i++)
      pthread_create(&t[i], NULL, consumer, &batches[(i + 1) % THREADS]);
    for (int i = 0; i < THREADS; i++)
      pthread_join(t[i], NULL);
    freed += THREADS * PER_THREAD;
  }
  printf("threadexit: rounds=%d freed=%lu\n", rounds, freed);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: exhaust arena|sigfork|forkio|threadexit N\n");
    return 64;
  }
  unsigned long n = arg_number(argv[2]);
  if (strcmp(argv[1], "arena") == 0)
    return mode_arena(n);
  if (n > 100000) {
    fprintf(stderr, "exhaust: at most 100000 forks or rounds\n");
    return 64;
  }
  if (strcmp(argv[1], "sigfork") == 0)
    return mode_sigfork((int)n);
  if (strcmp(argv[1], "forkio") == 0)
    return mode_forkio((int)n);
  if (strcmp(argv[1], "threadexit") == 0)
    return mode_threadexit((int)n);
  fprintf(stderr, "exhaust: unknown mode '%s'\n", argv[1]);
  return 64;
}
