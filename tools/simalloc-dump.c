/* simalloc-dump - shows the heap of a process running under libsimalloc.
 *
 * It reads the snapshot the process publishes (snapread.c) and renders it
 * (render.c): a status report and a heap bar, the block list, JSON, a live
 * view that redraws in place, or the list of publishing processes.  Every
 * failure is one line on stderr and an exit status of its own (see usage()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "render.h"
#include "snapread.h"
#include "symbolize.h"

#ifndef SIMALLOC_VERSION
#define SIMALLOC_VERSION "unknown"
#endif

#define EXIT_USAGE 1
#define MAX_LIST 4096
#define SPARK_MAX 512
#define SITES_DEFAULT 10

typedef struct dump_opts {
  pid_t pid;
  int json, list, watch;
  int sites_given;       /* --sites N named how many */
  double interval;       /* seconds between frames of --watch */
  render_opts r;
} dump_opts;

static void usage(FILE *f) {
  fputs(
      "usage: simalloc-dump [OPTIONS] PID\n"
      "       simalloc-dump --list [--json]\n"
      "Shows the heap of a process running under libsimalloc.\n"
      "\n"
      "  --json             the snapshot as JSON\n"
      "  --blocks           list every block (offset, size, state, site)\n"
      "  --sites [N]        the N sites holding the most live bytes (default 10)\n"
      "  --site ID          the figures and whole stack of one site\n"
      "  --limit N          list at most N blocks\n"
      "  --width N          draw the heap bar N columns wide (default: the terminal)\n"
      "  --ascii            draw with '#' (used) '.' (free) '+' (cached)\n"
      "  --range START:END  zoom into arena offsets [START, END); 0x.., K, M, G accepted\n"
      "  --watch [SECONDS]  redraw every SECONDS (default 1) until q or Ctrl-C\n"
      "  --list             the processes of this user that publish a heap\n"
      "  --help, --version\n"
      "\n"
      "Exit status:\n"
      "  0  success\n"
      "  1  usage error\n"
      "  2  no such process\n"
      "  3  the process does not run under libsimalloc\n"
      "  4  permission denied (the segment belongs to someone else or is not private)\n"
      "  5  incompatible snapshot version\n"
      "  6  corrupt snapshot\n"
      "  7  system error (out of memory, output failed)\n"
      "\n"
      "Colour is used on a terminal unless NO_COLOR is set; ASCII is chosen when\n"
      "the locale is not UTF-8.\n",
      f);
}

__attribute__((format(printf, 1, 2)))
static int bad_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("simalloc-dump: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (try --help)\n", stderr);
  va_end(ap);
  return EXIT_USAGE;
}

static int parse_pid(const char *s, pid_t *pid) {
  char *end;
  long v;
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || *end || v <= 0 || v > 0x3fffffff)
    return -1;
  *pid = (pid_t)v;
  return 0;
}

static int parse_range(const char *s, render_opts *r) {
  char buf[128];
  const char *colon = strchr(s, ':');
  if (colon == NULL || (size_t)(colon - s) >= sizeof buf)
    return -1;
  memcpy(buf, s, (size_t)(colon - s));
  buf[colon - s] = '\0';
  if (parse_size(buf, &r->range_start) || parse_size(colon + 1, &r->range_end))
    return -1;
  if (r->range_end <= r->range_start)
    return -1;
  r->has_range = 1;
  return 0;
}

static int is_number(const char *s) {
  char *end;
  if (*s < '0' || *s > '9')
    return 0;
  strtod(s, &end);
  return *end == '\0';
}

static int takes_value(const char *a) {
  return !strcmp(a, "--limit") || !strcmp(a, "--width") || !strcmp(a, "--range") ||
         !strcmp(a, "--site");
}

/* An argument that is neither an option nor an option's value follows
 * argv[i]. */
static int positional_after(int argc, char **argv, int i) {
  for (int j = i + 1; j < argc; j++) {
    if (argv[j][0] != '-')
      return 1;
    if (takes_value(argv[j]))
      j++;
  }
  return 0;
}

static int all_digits(const char *s) {
  if (*s == '\0')
    return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return 0;
  return 1;
}

/* --sites [N]: N only if a PID still follows it. */
static int parse_sites(int argc, char **argv, int *i, dump_opts *o) {
  const char *a = argv[*i], *n = NULL;
  uint64_t v;
  if (!strncmp(a, "--sites=", 8))
    n = a + 8;
  else if (*i + 1 < argc && all_digits(argv[*i + 1]) && positional_after(argc, argv, *i + 1))
    n = argv[++*i];
  o->r.sites = SITES_DEFAULT;
  if (n == NULL)
    return -1;
  if (!all_digits(n) || parse_size(n, &v) || v == 0 || v > 1000000)
    return bad_usage("bad number of sites '%s'", n);
  o->r.sites = (uint32_t)v;
  o->sites_given = 1;
  return -1;
}

/* Parses argv; returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, dump_opts *o) {
  const char *pos[3];
  int npos = 0;
  uint64_t n;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--version")) {
      printf("simalloc-dump %s\n", SIMALLOC_VERSION);
      return 0;
    } else if (!strcmp(a, "--json")) {
      o->json = 1;
    } else if (!strcmp(a, "--blocks")) {
      o->r.blocks = 1;
    } else if (!strcmp(a, "--ascii")) {
      o->r.ascii = 1;
    } else if (!strcmp(a, "--list")) {
      o->list = 1;
    } else if (!strcmp(a, "--watch")) {
      o->watch = 1;
    } else if (!strcmp(a, "--sites") || !strncmp(a, "--sites=", 8)) {
      int st = parse_sites(argc, argv, &i, o);
      if (st >= 0)
        return st;
    } else if (!strcmp(a, "--site")) {
      if (next == NULL)
        return bad_usage("--site needs a site id");
      if (!all_digits(next) || parse_size(next, &n) || n > UINT32_MAX)
        return bad_usage("bad site id '%s'", next);
      i++;
      o->r.has_site = 1;
      o->r.site_id = (uint32_t)n;
    } else if (!strcmp(a, "--limit") || !strcmp(a, "--width") || !strcmp(a, "--range")) {
      if (next == NULL)
        return bad_usage("%s needs a value", a);
      i++;
      if (!strcmp(a, "--range")) {
        if (parse_range(next, &o->r))
          return bad_usage("bad range '%s': want START:END with START < END", next);
      } else if (parse_size(next, &n) || n == 0 || n > 100000) {
        return bad_usage("bad number '%s'", next);
      } else if (!strcmp(a, "--limit")) {
        o->r.limit = n;
      } else {
        o->r.width = (int)n;
      }
    } else if (a[0] == '-') {
      return bad_usage("unknown option '%s'", a);
    } else if (npos < 3) {
      pos[npos++] = a;
    } else {
      return bad_usage("unexpected argument '%s'", a);
    }
  }
  /* "--watch 2 PID": a second positional is the interval. */
  if (o->watch && npos == 2) {
    if (!is_number(pos[0]) || (o->interval = strtod(pos[0], NULL)) < 0.05 ||
        o->interval > 3600)
      return bad_usage("bad interval '%s': want 0.05 to 3600 seconds", pos[0]);
    pos[0] = pos[1];
    npos = 1;
  }
  if (o->list)
    return npos == 0 ? -1 : bad_usage("--list takes no PID ('%s')", pos[0]);
  if (npos != 1)
    return bad_usage("%s", npos == 0 ? "which process? give a PID" : "too many arguments");
  if (parse_pid(pos[0], &o->pid))
    return bad_usage("bad PID '%s'", pos[0]);
  return -1;
}

static int report_error(const snap_error *err) {
  fprintf(stderr, "simalloc-dump: %s\n", err->msg);
  return err->status;
}

static int finish_output(void) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "simalloc-dump: writing the output failed\n");
    return SNAP_ESYS;
  }
  return 0;
}

/* Symbols are needed when sites are shown: listed, one alone, or as the
 * pins of the holes. */
static int wants_symbols(const snap_view *v, const render_opts *r) {
  return v->h->site_count > 0 && (r->sites || r->has_site || r->status);
}

static int dump_once(const dump_opts *o) {
  snap_open_opts so = {.fresh = 1, .wait_ms = 0};
  snap_error err;
  snap_view v;
  emitter e;

  if (snap_open(&v, o->pid, &so, &err) != SNAP_OK)
    return report_error(&err);
  if (v.stale)
    fprintf(stderr, "simalloc-dump: process %d did not answer; the snapshot may be stale\n",
            (int)o->pid);
  render_opts r = o->r;
  symbolizer *sym = wants_symbols(&v, &r) ? sym_open(o->pid, &v) : NULL;
  if (sym != NULL) {
    r.resolve = sym_resolve;
    r.resolve_ctx = sym;
  }
  emit_init(&e, stdout, o->json ? EMIT_JSON : EMIT_TEXT, render_colour_ok(1));
  render_report(&v, &e, &r);
  sym_close(sym);
  snap_view_free(&v);
  return finish_output();
}

/* ---- --list ------------------------------------------------------------- */

static int dump_list(const dump_opts *o) {
  snap_entry *ents = calloc(MAX_LIST, sizeof *ents);
  int n = ents ? snap_list(ents, MAX_LIST) : -1;
  emitter e;

  if (n < 0) {
    free(ents);
    fprintf(stderr, "simalloc-dump: cannot list /dev/shm: %s\n", strerror(errno));
    return SNAP_ESYS;
  }
  emit_init(&e, stdout, o->json ? EMIT_JSON : EMIT_TEXT, render_colour_ok(1));
  emit_begin(&e);
  emit_list(&e, "processes", "processes under libsimalloc",
            "           pid            used            free   fragmentation  executable");
  /* Each process publishes when asked: ask, but do not wait long for one
   * that does not answer (it is then listed as it last published). */
  snap_open_opts so = {1, 200};
  for (int i = 0; i < n; i++) {
    snap_view v;
    snap_error err;
    if (snap_open(&v, ents[i].pid, &so, &err) != SNAP_OK)
      continue;   /* exited meanwhile, or not readable: not listed */
    emit_row(&e);
    emit_i64(&e, "pid", NULL, v.h->pid);
    emit_u64(&e, "used_bytes", NULL, v.h->used_bytes, EF_BYTES);
    emit_u64(&e, "free_bytes", NULL, v.h->free_bytes, EF_BYTES);
    emit_double(&e, "fragmentation", NULL, (double)v.h->fragmentation_ppm / 1e6,
                EF_PERCENT);
    emit_str(&e, "exe", NULL, v.h->exe, EF_PLAIN);
    emit_row_end(&e);
    snap_view_free(&v);
  }
  emit_list_end(&e);
  emit_end(&e);
  free(ents);
  return finish_output();
}

/* ---- --watch ------------------------------------------------------------ */

static volatile sig_atomic_t quit_signal;
static struct termios saved_tio;
static int tio_saved, screen_entered;

static void on_quit(int sig) {
  quit_signal = sig;
}

static void screen_restore(void) {
  if (tio_saved)
    tcsetattr(0, TCSANOW, &saved_tio);
  if (screen_entered)
    fputs("\033[?25h\033[?1049l", stdout);
  fflush(stdout);
  tio_saved = screen_entered = 0;
}

static void screen_enter(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_quit;       /* no SA_RESTART: poll() returns at once */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  if (isatty(0) && tcgetattr(0, &saved_tio) == 0) {
    struct termios raw = saved_tio;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);   /* keep ISIG: Ctrl-C works */
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tio_saved = tcsetattr(0, TCSANOW, &raw) == 0;
  }
  if (isatty(1)) {
    fputs("\033[?1049h\033[?25l", stdout);
    screen_entered = 1;
  }
}

/* Waits up to ms for 'q'; returns 1 to quit. */
static int wait_for_key(int ms) {
  struct pollfd p = {.fd = 0, .events = POLLIN};
  int use_stdin = tio_saved;
  if (poll(&p, use_stdin ? 1 : 0, ms) > 0 && (p.revents & POLLIN)) {
    char c;
    if (read(0, &c, 1) == 1 && (c == 'q' || c == 'Q'))
      return 1;
  }
  return quit_signal != 0;
}

/* Used bytes over time: the history ring, then the frames seen since. */
static int spark_series(const snap_view *v, const uint64_t *frames, int nframes,
                        uint64_t *out) {
  const simalloc_snap_header *h = v->h;
  int n = 0;
  for (uint32_t i = 0; i < h->history_len && n < SPARK_MAX; i++)
    out[n++] = v->history[(h->history_head + i) % h->history_cap].used_bytes;
  int first = nframes - (SPARK_MAX - n);
  for (int i = first > 0 ? first : 0; i < nframes; i++)
    out[n++] = frames[i];
  return n;
}

static void delta_line(char *buf, size_t sz, const char *what, uint64_t now, uint64_t before) {
  char human[32];
  uint64_t d = now >= before ? now - before : before - now;
  fmt_size_human(human, sizeof human, d);
  snprintf(buf, sz, "%s %c%s", what, now >= before ? '+' : '-', human);
}

static void watch_frame(const dump_opts *o, const snap_view *v, const snap_view *prev,
                        symbolizer *sym, uint64_t *frames, int *nframes) {
  uint64_t series[2 * SPARK_MAX];
  char spark[SPARK_MAX * 4], du[64], df[64];
  emitter e;

  if (*nframes == SPARK_MAX) {
    memmove(frames, frames + 1, sizeof *frames * (SPARK_MAX - 1));
    (*nframes)--;
  }
  frames[(*nframes)++] = v->h->used_bytes;
  if (screen_entered)
    fputs("\033[H\033[2J", stdout);
  render_opts r = o->r;
  r.prev = prev->h ? prev : NULL;   /* marks the sites that grew */
  if (v->h->site_count > 0 && !r.sites)
    r.sites = SITES_DEFAULT;
  if (sym != NULL) {
    r.resolve = sym_resolve;
    r.resolve_ctx = sym;
  }
  emit_init(&e, stdout, o->json ? EMIT_JSON : EMIT_TEXT, render_colour_ok(1));
  render_report(v, &e, &r);
  if (o->json)
    return;
  if (prev->h) {
    delta_line(du, sizeof du, "used", v->h->used_bytes, prev->h->used_bytes);
    delta_line(df, sizeof df, "free", v->h->free_bytes, prev->h->free_bytes);
    printf("since last frame: %s, %s, blocks %+lld\n", du, df,
           (long long)(v->h->used_blocks + v->h->free_blocks) -
               (long long)(prev->h->used_blocks + prev->h->free_blocks));
  }
  int n = spark_series(v, frames, *nframes, series);
  sparkline(series, n, o->r.width > 20 ? o->r.width - 12 : 8, o->r.ascii, spark, sizeof spark);
  printf("used bytes  %s\n", spark);
  printf("%s", screen_entered ? "q or Ctrl-C quits" : "\n");
  fflush(stdout);
}

static int dump_watch(const dump_opts *o) {
  static uint64_t frames[SPARK_MAX];
  snap_open_opts so = {.fresh = 1, .wait_ms = 0};
  snap_view v, prev = {0};
  snap_error err;
  symbolizer *sym = NULL;
  int nframes = 0, status = 0;

  screen_enter();
  atexit(screen_restore);
  while (!quit_signal) {
    if (snap_open(&v, o->pid, &so, &err) != SNAP_OK) {
      status = err.status;
      break;
    }
    if (sym == NULL && v.h->site_count > 0)
      sym = sym_open(o->pid, &v);
    watch_frame(o, &v, &prev, sym, frames, &nframes);
    snap_view_free(&prev);
    prev = v;
    if (wait_for_key((int)(o->interval * 1000)))
      break;
  }
  snap_view_free(&prev);
  sym_close(sym);
  screen_restore();
  if (status)
    return report_error(&err);
  return finish_output();
}

int main(int argc, char **argv) {
  dump_opts o = {.interval = 1.0};
  int st;

  setlocale(LC_ALL, "");
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  o.r.identity = o.r.status = o.r.bar = 1;
  st = parse_args(argc, argv, &o);
  if (st >= 0)
    return st;
  if (!render_locale_utf8())
    o.r.ascii = 1;
  if (o.r.width == 0)
    o.r.width = render_term_width(1);
  if (o.json) {
    o.r.blocks = 1;
    if (!o.sites_given)
      o.r.sites = UINT32_MAX;
  }
  if (o.list)
    return dump_list(&o);
  if (o.watch)
    return dump_watch(&o);
  return dump_once(&o);
}
