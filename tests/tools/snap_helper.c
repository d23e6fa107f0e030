/* snap_helper.c - a program for the dump tests to look at.
 *
 * Started with libsimalloc preloaded, it prints "ready" and obeys commands
 * on stdin, one per line:
 *   alloc N SIZE   allocate N blocks of SIZE bytes; prints
 *                  "ok usable=U addr=A" for the last one
 *   free N         free the N newest blocks; prints "ok"
 *   fork-exit      fork a child that allocates and leaves with _exit at
 *                  once; prints "ok pid=P" once it is gone
 *   fork-live S    fork a child that allocates for S seconds, then exits;
 *                  prints "ok pid=P" at once
 *   wait           wait for the fork-live child; prints "ok"
 *   exit           leave
 * It reads and writes with read(2) and write(2) only, so that nothing but
 * its own commands allocates once it is running.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PTRS (1 << 21)

static void *ptrs[MAX_PTRS];
static size_t nptrs;

static void say(const char *s) {
  size_t len = strlen(s);
  if (write(1, s, len) != (ssize_t)len)
    _exit(3);
}

/* Reads one line into buf; returns 0 at end of input. */
static int read_line(char *buf, size_t cap) {
  size_t n = 0;
  char c;
  while (read(0, &c, 1) == 1) {
    if (c == '\n') {
      buf[n] = '\0';
      return 1;
    }
    if (n + 1 < cap)
      buf[n++] = c;
  }
  return 0;
}

static void do_alloc(unsigned long n, unsigned long size) {
  char out[128];
  void *last = NULL;
  for (unsigned long i = 0; i < n && nptrs < MAX_PTRS; i++) {
    last = malloc(size);
    if (last == NULL)
      _exit(4);
    ptrs[nptrs++] = last;
  }
  snprintf(out, sizeof out, "ok usable=%zu addr=%lu\n",
           last ? malloc_usable_size(last) : 0, (unsigned long)(uintptr_t)last);
  say(out);
}

/* Allocates and frees blocks too large for the thread cache, so that
 * every call takes the allocator's slow path, for the given seconds. */
static void churn_for(unsigned long seconds) {
  time_t end = time(NULL) + (time_t)seconds;
  while (time(NULL) < end) {
    for (int i = 0; i < 1000; i++)
      free(malloc(4096 + (size_t)i));
    usleep(10000);
  }
}

static pid_t fork_child(unsigned long seconds, int quick) {
  pid_t pid = fork();
  if (pid < 0)
    _exit(5);
  if (pid == 0) {
    if (quick) {
      free(malloc(100));
      _exit(0);
    }
    churn_for(seconds);
    exit(0);
  }
  return pid;
}

int main(void) {
  char line[128];
  unsigned long a, b;
  say("ready\n");
  while (read_line(line, sizeof line)) {
    if (sscanf(line, "alloc %lu %lu", &a, &b) == 2) {
      do_alloc(a, b);
    } else if (sscanf(line, "free %lu", &a) == 1) {
      while (a-- > 0 && nptrs > 0)
        free(ptrs[--nptrs]);
      say("ok\n");
    } else if (strcmp(line, "fork-exit") == 0) {
      pid_t pid = fork_child(0, 1);
      waitpid(pid, NULL, 0);
      char out[64];
      snprintf(out, sizeof out, "ok pid=%d\n", (int)pid);
      say(out);
    } else if (sscanf(line, "fork-live %lu", &a) == 1) {
      char out[64];
      snprintf(out, sizeof out, "ok pid=%d\n", (int)fork_child(a, 0));
      say(out);
    } else if (strcmp(line, "wait") == 0) {
      while (wait(NULL) > 0)
        ;
      say("ok\n");
    } else if (strcmp(line, "exit") == 0) {
      break;
    } else {
      say("what?\n");
    }
  }
  return 0;
}
