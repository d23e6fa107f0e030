/* snap_helper.c - a program for the dump tests to look at.
 *
 * Started with libsimalloc preloaded, it prints "ready" and obeys commands
 * on stdin, one per line:
 *   alloc N SIZE   allocate N blocks of SIZE bytes; prints
 *                  "ok usable=U addr=A" for the last one
 *   free N         free the N newest blocks; prints "ok"
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
    } else if (strcmp(line, "exit") == 0) {
      break;
    } else {
      say("what?\n");
    }
  }
  return 0;
}
