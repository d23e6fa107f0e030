/* simalloc-shell - an interactive allocator on the real heap core.
 *
 * The shell runs one private heap over its own buffer (1024 bytes unless
 * --arena says otherwise) and reads commands: alloc, free, realloc, status,
 * visualize, blocks, help, exit.  Each allocation gets a handle ptr[i].
 * status and visualize build a snapshot image of the heap with the same
 * code the library publishes with, and draw it with the same renderer as
 * simalloc-dump.
 *
 * On a terminal it prompts; from a pipe it reads silently so that it can be
 * scripted.  A bad command prints one line on stderr and the shell goes on;
 * a scripted run exits with status 1 if any command failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap.h"
#include "render.h"
#include "snapread.h"
#include "snapshot.h"

#ifndef SIMALLOC_VERSION
#define SIMALLOC_VERSION "unknown"
#endif

#define DEFAULT_ARENA 1024
#define MAX_ARENA ((uint64_t)1 << 30)
#define MAP_CELLS 1024
#define MAX_LISTED_BLOCKS ((uint64_t)1 << 20)

typedef struct handle {
  void *p;            /* NULL once freed */
  size_t size;        /* requested size */
} handle;

typedef struct shell {
  sa_heap heap;
  void *mem;
  size_t arena;
  handle *h;
  size_t nh, caph;
  int interactive;
  long line;
  int failed;
  render_opts r;
} shell;

static void usage(FILE *f) {
  fputs("usage: simalloc-shell [--arena SIZE] [--width N] [--ascii]\n"
        "An interactive heap on the libsimalloc core; type 'help' for the commands.\n"
        "  --arena SIZE   bytes of the private heap (default 1024; K, M, G accepted)\n"
        "  --width N      width of the heap bar (default: the terminal)\n"
        "  --ascii        draw the bar with '#' and '.'\n"
        "Exit status: 0 if every command succeeded, 1 if one failed or on a\n"
        "usage error, 7 if the heap cannot be set up.\n",
        f);
}

static void help(void) {
  puts("commands:\n"
       "  alloc <size>          allocate; prints the handle ptr[i] and its offset\n"
       "  free <i>              free ptr[i]\n"
       "  realloc <i> <size>    resize ptr[i], moving it if needed\n"
       "  status                sizes, counts, largest free block, fragmentation\n"
       "  visualize             the heap bar: used and free bytes\n"
       "  blocks                every block: offset, size, state\n"
       "  help                  this list\n"
       "  exit, quit            leave (so does end of input)\n"
       "sizes accept decimal, 0x hex and K/M/G suffixes; a handle is i or ptr[i]");
}

__attribute__((format(printf, 2, 3)))
static void fail(shell *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fflush(stdout);
  if (s->interactive)
    fputs("error: ", stderr);
  else
    fprintf(stderr, "simalloc-shell: line %ld: ", s->line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  s->failed = 1;
}

/* ---- the heap ----------------------------------------------------------- */

typedef struct find_ctx {
  uintptr_t p;
  sa_block_info found;
} find_ctx;

static int find_block(const sa_block_info *b, void *arg) {
  find_ctx *c = arg;
  if (c->p >= b->addr && c->p < b->addr + b->size) {
    c->found = *b;
    return 1;
  }
  return 0;
}

/* The block holding payload p: its offset from the heap start and size. */
static sa_block_info block_of(shell *s, const void *p) {
  find_ctx c = {(uintptr_t)p, {0, 0, 0}};
  sa_heap_walk(&s->heap, find_block, &c);
  return c.found;
}

static void print_handle(shell *s, size_t i, const char *note) {
  sa_block_info b = block_of(s, s->h[i].p);
  printf("ptr[%zu] = offset %zu (size %zu, block %zu)%s\n", i,
         (size_t)(b.addr - (uintptr_t)s->mem), s->h[i].size, b.size, note);
}

/* Builds a snapshot image of the heap and renders it. */
static void render(shell *s, int status, int bar, int blocks) {
  sa_snap_caps caps = {MAP_CELLS, 0, s->arena / 32 + 2};
  if (caps.blocks > MAX_LISTED_BLOCKS)
    caps.blocks = MAX_LISTED_BLOCKS;
  size_t size = sa_snap_size(&caps);
  simalloc_snap_header *seg = calloc(1, size);
  sa_heap *heaps[1] = {&s->heap};
  snap_view v;
  snap_error err;
  emitter e;

  if (seg == NULL) {
    fail(s, "out of memory drawing the heap");
    return;
  }
  sa_snap_layout(seg, &caps);
  sa_snap_fill(seg, heaps, 1, (uintptr_t)s->mem, s->arena);
  if (snap_view_from_bytes(&v, seg, size, &err) != SNAP_OK) {
    free(seg);
    fail(s, "%s", err.msg);
    return;
  }
  free(seg);
  render_opts o = s->r;
  o.status = status;
  o.bar = bar;
  o.blocks = blocks;
  emit_init(&e, stdout, EMIT_TEXT, render_colour_ok(1));
  render_report(&v, &e, &o);
  snap_view_free(&v);
}

/* ---- commands ------------------------------------------------------------ */

static int parse_count(shell *s, const char *what, const char *arg, size_t *out) {
  uint64_t v;
  if (arg == NULL) {
    fail(s, "%s needs a size", what);
    return -1;
  }
  if (parse_size(arg, &v) != 0) {
    fail(s, "'%s' is not a size", arg);
    return -1;
  }
  if (v == 0) {
    fail(s, "a size must be positive");
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

static int parse_handle(shell *s, const char *what, const char *arg, size_t *out) {
  char *end;
  const char *p = arg;
  unsigned long long i;
  if (arg == NULL) {
    fail(s, "%s needs a handle", what);
    return -1;
  }
  if (strncmp(p, "ptr[", 4) == 0)
    p += 4;
  errno = 0;
  i = *p >= '0' && *p <= '9' ? strtoull(p, &end, 10) : (end = (char *)p, 0);
  if (end == p || errno || (p != arg ? strcmp(end, "]") : *end) != 0) {
    fail(s, "'%s' is not a handle", arg);
    return -1;
  }
  if (i >= s->nh) {
    fail(s, "no handle ptr[%llu] (%zu handed out)", i, s->nh);
    return -1;
  }
  if (s->h[i].p == NULL) {
    fail(s, "ptr[%llu] is already freed", i);
    return -1;
  }
  *out = (size_t)i;
  return 0;
}

static void cmd_alloc(shell *s, const char *arg) {
  size_t n;
  if (parse_count(s, "alloc", arg, &n))
    return;
  if (s->nh == s->caph) {
    size_t cap = s->caph ? 2 * s->caph : 16;
    handle *h = realloc(s->h, cap * sizeof *h);
    if (h == NULL) {
      fail(s, "out of memory for handles");
      return;
    }
    s->h = h;
    s->caph = cap;
  }
  void *p = sa_heap_alloc(&s->heap, n);
  if (p == NULL) {
    fail(s, "out of memory: no free block holds %zu bytes", n);
    return;
  }
  s->h[s->nh] = (handle){p, n};
  print_handle(s, s->nh++, "");
}

static void cmd_free(shell *s, const char *arg) {
  size_t i;
  if (parse_handle(s, "free", arg, &i))
    return;
  sa_heap_free(&s->heap, s->h[i].p, "free");
  s->h[i].p = NULL;
  printf("freed ptr[%zu]\n", i);
}

static void cmd_realloc(shell *s, const char *arg, const char *arg2) {
  size_t i, n;
  if (parse_handle(s, "realloc", arg, &i) || parse_count(s, "realloc", arg2, &n))
    return;
  size_t before = (size_t)(block_of(s, s->h[i].p).addr - (uintptr_t)s->mem);
  void *p = sa_heap_realloc(&s->heap, s->h[i].p, n);
  if (p == NULL) {
    fail(s, "out of memory: ptr[%zu] cannot grow to %zu bytes (left as it was)", i, n);
    return;
  }
  char note[64] = "";
  if (p != s->h[i].p)
    snprintf(note, sizeof note, ", moved from offset %zu", before);
  s->h[i] = (handle){p, n};
  print_handle(s, i, note);
}

/* Runs one line; returns 1 when the shell should stop. */
static int run_line(shell *s, char *line) {
  char *save = NULL;
  char *cmd = strtok_r(line, " \t\r\n", &save);
  char *a1 = cmd ? strtok_r(NULL, " \t\r\n", &save) : NULL;
  char *a2 = a1 ? strtok_r(NULL, " \t\r\n", &save) : NULL;
  char *extra = a2 ? strtok_r(NULL, " \t\r\n", &save) : NULL;
  int want = 0;

  if (cmd == NULL || cmd[0] == '#')
    return 0;
  if (!strcmp(cmd, "alloc") || !strcmp(cmd, "free"))
    want = 1;
  else if (!strcmp(cmd, "realloc"))
    want = 2;
  if ((want < 2 && a2) || (want < 1 && a1) || extra) {
    fail(s, "too many arguments to %s", cmd);
    return 0;
  }
  if (!strcmp(cmd, "alloc"))
    cmd_alloc(s, a1);
  else if (!strcmp(cmd, "free"))
    cmd_free(s, a1);
  else if (!strcmp(cmd, "realloc"))
    cmd_realloc(s, a1, a2);
  else if (!strcmp(cmd, "status"))
    render(s, 1, 0, 0);
  else if (!strcmp(cmd, "visualize"))
    render(s, 0, 1, 0);
  else if (!strcmp(cmd, "blocks"))
    render(s, 0, 0, 1);
  else if (!strcmp(cmd, "help"))
    help();
  else if (!strcmp(cmd, "exit") || !strcmp(cmd, "quit"))
    return 1;
  else
    fail(s, "unknown command '%s' (try help)", cmd);
  return 0;
}

static void repl(shell *s) {
  char *line = NULL;
  size_t cap = 0;

  for (;;) {
    if (s->interactive) {
      fputs("simalloc> ", stdout);
      fflush(stdout);
    }
    if (getline(&line, &cap, stdin) < 0)
      break;
    s->line++;
    if (run_line(s, line))
      break;
    fflush(stdout);
  }
  if (s->interactive && feof(stdin))
    putchar('\n');
  free(line);
}

/* ---- start-up ------------------------------------------------------------ */

static int parse_args(int argc, char **argv, shell *s) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t v;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--version")) {
      printf("simalloc-shell %s\n", SIMALLOC_VERSION);
      return 0;
    } else if (!strcmp(a, "--ascii")) {
      s->r.ascii = 1;
    } else if (!strcmp(a, "--arena") || !strcmp(a, "--width")) {
      int arena = !strcmp(a, "--arena");
      uint64_t lo = arena ? SA_HEAP_MIN_SIZE : 8, hi = arena ? MAX_ARENA : 10000;
      if (next == NULL || parse_size(next, &v) || v < lo || v > hi) {
        fprintf(stderr, "simalloc-shell: %s wants a number from %llu to %llu, not '%s'\n",
                a, (unsigned long long)lo, (unsigned long long)hi, next ? next : "");
        return 1;
      }
      i++;
      if (arena)
        s->arena = (size_t)v & ~(size_t)15;
      else
        s->r.width = (int)v;
    } else {
      fprintf(stderr, "simalloc-shell: unknown argument '%s' (try --help)\n", a);
      return 1;
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  static shell s;
  int st;

  setlocale(LC_ALL, "");
  s.arena = DEFAULT_ARENA;
  st = parse_args(argc, argv, &s);
  if (st >= 0)
    return st;
  if (!render_locale_utf8())
    s.r.ascii = 1;
  if (s.r.width == 0)
    s.r.width = render_term_width(1);
  /* The bar spans the whole private heap, not only the part touched. */
  s.r.has_range = 1;
  s.r.range_start = 0;
  s.r.range_end = s.arena;
  if (posix_memalign(&s.mem, 64, s.arena) != 0 ||
      sa_heap_init(&s.heap, s.mem, s.arena, 0) != 0) {
    fprintf(stderr, "simalloc-shell: cannot set up a heap of %zu bytes\n", s.arena);
    return SNAP_ESYS;
  }
  s.interactive = isatty(0);
  if (s.interactive)
    printf("simalloc-shell: a %zu-byte heap; type 'help' for the commands\n", s.arena);
  repl(&s);
  free(s.h);
  free(s.mem);
  if (fflush(stdout) != 0)
    return 1;
  return s.failed ? 1 : 0;
}
