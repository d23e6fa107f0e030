/* test_dump.c - simalloc-dump against live processes.
 *
 * A helper program runs with libsimalloc preloaded (in its environment
 * only), builds a heap on command and waits; the dump must report what it
 * did, exactly.  Fake segments published for a plain child process drive
 * every error exit status.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "image.h"
#include "json_check.h"
#include "spawn.h"
#include "snapread.h"

/* ---- helpers ------------------------------------------------------------ */

static sp_result dump(const char *a1, const char *a2, const char *a3, const char *a4) {
  const char *argv[] = {sp_env("SIMALLOC_DUMP"), a1, a2, a3, a4, NULL};
  return sp_run(argv, NULL);
}

static void start_helper(sp_child *c) {
  const char *argv[] = {sp_env("SIMALLOC_SNAP_HELPER"), NULL};
  sp_start_ready(c, argv, &(sp_opts){.preload = SP_PRELOAD});
}

/* Sends a command and returns the helper's answer line. */
static char *ask(sp_child *c, const char *cmd) {
  sp_send(c, cmd);
  char *line = sp_line(c);
  cr_assert_not_null(line, "no answer to %s", cmd);
  cr_assert(strncmp(line, "ok", 2) == 0, "answer to %s: %s", cmd, line);
  return line;
}

typedef struct figures {
  uint64_t used, free, blocks_used, blocks_free, base, publish_count, block_total,
      blocks_cached;
  char *json;
} figures;

static uint64_t must_u64(const char *js, const char *key) {
  uint64_t v;
  cr_assert_eq(json_u64(js, key, &v), 0, "no %s in:\n%.400s", key, js);
  return v;
}

static figures dump_json(pid_t pid) {
  char p[32];
  snprintf(p, sizeof p, "%d", (int)pid);
  sp_result r = dump("--json", p, NULL, NULL);
  cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
  cr_assert_str_empty(r.err, "stderr: %s", r.err);
  cr_assert(json_valid(r.out, strlen(r.out)), "invalid JSON:\n%.2000s", r.out);
  figures f = {must_u64(r.out, "used_bytes"), must_u64(r.out, "free_bytes"),
               must_u64(r.out, "blocks_used"), must_u64(r.out, "blocks_free"),
               must_u64(r.out, "base"), must_u64(r.out, "publish_count"),
               must_u64(r.out, "block_total"), must_u64(r.out, "blocks_cached"), r.out};
  free(r.err);
  return f;
}

/* The list entry for the block holding offset off: its size, or 0. */
static uint64_t block_size_at(const char *js, uint64_t off, const char **state) {
  const char *p = strstr(js, "\"blocks\": [");
  cr_assert_not_null(p);
  while ((p = strstr(p, "{\"offset\": ")) != NULL) {
    unsigned long long o, s;
    char st[16];
    if (sscanf(p, "{\"offset\": %llu, \"size\": %llu, \"state\": \"%15[a-z]\"", &o, &s, st) != 3)
      break;
    if (off >= o && off < o + s) {
      *state = strstr(st, "used") ? "used" : "other";
      return s;
    }
    p++;
  }
  return 0;
}

/* ---- a live process ------------------------------------------------------ */

Test(dump, reports_a_known_heap_exactly) {
  sp_child c;
  start_helper(&c);
  free(ask(&c, "alloc 10 64\n"));          /* warm up: the heap exists */
  figures before = dump_json(c.pid);

  char *answer = ask(&c, "alloc 100 200\n");
  unsigned long long usable, addr;
  cr_assert_eq(sscanf(answer, "ok usable=%llu addr=%llu", &usable, &addr), 2, "%s", answer);
  free(answer);
  figures after = dump_json(c.pid);

  const char *state = NULL;
  uint64_t size = block_size_at(after.json, addr - after.base, &state);
  cr_assert_gt(size, usable, "the block holding the last pointer is listed");
  cr_assert_str_eq(state, "used");
  cr_assert_eq(after.blocks_used - before.blocks_used, 100);
  cr_assert_eq(after.used - before.used, 100 * size);
  cr_assert_gt(after.publish_count, before.publish_count, "each dump asks for a fresh snapshot");

  /* the list agrees with the counts */
  cr_assert_eq(count_substr(after.json, "\"state\": \"used\""), after.blocks_used);
  cr_assert_eq(count_substr(after.json, "\"state\": \"free\""), after.blocks_free);
  cr_assert_eq(count_substr(after.json, "\"state\": \"cached\""), after.blocks_cached);
  cr_assert_eq(after.block_total, after.blocks_used + after.blocks_free + after.blocks_cached);

  free(ask(&c, "free 100\n"));
  figures back = dump_json(c.pid);
  cr_assert_eq(back.used, before.used);
  cr_assert_eq(back.blocks_used, before.blocks_used);

  free(before.json);
  free(after.json);
  free(back.json);
  sp_send(&c, "exit\n");
  cr_assert_eq(sp_wait(&c), 0);
}

Test(dump, list_shows_the_process_and_its_segment_goes_away) {
  sp_child c;
  char pid[32], seg[128];
  start_helper(&c);
  snprintf(pid, sizeof pid, "%d", (int)c.pid);

  sp_result r = dump("--list", NULL, NULL, NULL);
  cr_assert_eq(r.code, 0, "%s", r.err);
  char needle[64];
  snprintf(needle, sizeof needle, " %s ", pid);
  cr_assert_not_null(strstr(r.out, needle), "pid %s not in:\n%s", pid, r.out);
  cr_assert_not_null(strstr(r.out, "snap_helper"), "%s", r.out);
  sp_free(&r);

  r = dump("--list", "--json", NULL, NULL);
  cr_assert_eq(r.code, 0);
  cr_assert(json_valid(r.out, strlen(r.out)), "%s", r.out);
  snprintf(needle, sizeof needle, "{\"pid\": %s, ", pid);
  const char *row = strstr(r.out, needle);
  cr_assert_not_null(row, "%s", r.out);
  const char *used = strstr(row, "\"used_bytes\": ");
  cr_assert_not_null(used, "%s", r.out);
  cr_assert_gt(strtoull(used + 14, NULL, 10), 0, "the list shows a fresh snapshot:\n%s", r.out);
  sp_free(&r);

  sp_send(&c, "exit\n");
  cr_assert_eq(sp_wait(&c), 0);
  snprintf(seg, sizeof seg, "/dev/shm/simalloc-%u-%s", (unsigned)getuid(), pid);
  cr_assert_neq(access(seg, F_OK), 0, "%s is left behind", seg);
  r = dump(pid, NULL, NULL, NULL);
  cr_assert_eq(r.code, 2, "a finished process: %d %s", r.code, r.err);
  sp_free(&r);
}

static int segment_exists(int pid) {
  char seg[128];
  snprintf(seg, sizeof seg, "/dev/shm/simalloc-%u-%d", (unsigned)getuid(), pid);
  return access(seg, F_OK) == 0;
}

Test(dump, a_forked_child_publishes_once_it_lives_on, .timeout = 30) {
  sp_child c;
  start_helper(&c);
  char *line = ask(&c, "fork-exit\n");
  int quick = atoi(strstr(line, "pid=") + 4);
  free(line);
  cr_assert(!segment_exists(quick), "a child that left at once left segment %d behind", quick);

  line = ask(&c, "fork-live 4\n");
  int live = atoi(strstr(line, "pid=") + 4);
  free(line);
  char pid[32];
  snprintf(pid, sizeof pid, "%d", live);
  int code = -1;
  for (int tries = 0; tries < 50 && code != 0; tries++) {
    usleep(100 * 1000);
    sp_result r = dump(pid, NULL, NULL, NULL);
    code = r.code;
    sp_free(&r);
  }
  cr_assert_eq(code, 0, "the child that lives on never published");
  free(ask(&c, "wait\n"));
  cr_assert(!segment_exists(live), "the child's segment outlived it");
  sp_send(&c, "exit\n");
  cr_assert_eq(sp_wait(&c), 0);
}

Test(dump, text_report_bar_and_blocks) {
  sp_child c;
  char pid[32];
  start_helper(&c);
  snprintf(pid, sizeof pid, "%d", (int)c.pid);
  free(ask(&c, "alloc 50 1000\n"));

  sp_result r = dump("--ascii", "--width", "50", pid);
  cr_assert_eq(r.code, 0, "%s", r.err);
  const char *bar = strstr(r.out, "drawn from");
  cr_assert_not_null(bar, "%s", r.out);
  bar = strchr(bar, '\n') + 1;
  size_t len = strcspn(bar, "\n");
  cr_assert_eq(len, 50, "bar of 50 columns: %.*s", (int)len, bar);
  cr_assert_eq(strspn(bar, "#.+ "), 50);
  cr_assert_not_null(strstr(r.out, "# used  . free"));
  cr_assert_not_null(strstr(r.out, "fragmentation"));
  cr_assert_not_null(strstr(r.out, "largest free holes"));
  cr_assert_null(strchr(r.out, '\033'), "no colour into a pipe");
  sp_free(&r);

  const char *argv[] = {sp_env("SIMALLOC_DUMP"), "--blocks", "--limit", "3", pid, NULL};
  const char *c_locale[] = {"LC_ALL=C", NULL};
  r = sp_run(argv, &(sp_opts){.env = c_locale});
  cr_assert_eq(r.code, 0, "%s", r.err);
  cr_assert_not_null(strstr(r.out, "blocks listed          3"), "%s", r.out);
  cr_assert_null(strstr(r.out, "\xf0\x9f"), "no emoji in the C locale");
  sp_free(&r);

  r = dump("--json", "--range", "0:4K", pid);
  cr_assert_eq(r.code, 0, "%s", r.err);
  cr_assert_not_null(strstr(r.out, "\"start\": 0,\n    \"end\": 4096"), "%s", r.out);
  sp_free(&r);

  sp_send(&c, "exit\n");
  cr_assert_eq(sp_wait(&c), 0);
}

Test(dump, watch_redraws_and_quits_on_sigterm) {
  sp_child c, w;
  char pid[32];
  start_helper(&c);
  snprintf(pid, sizeof pid, "%d", (int)c.pid);
  const char *argv[] = {sp_env("SIMALLOC_DUMP"), "--watch", "0.1", "--ascii", pid, NULL};
  sp_start(&w, argv, NULL);
  int frames = 0, deltas = 0, sparks = 0;
  char *line;
  while ((line = sp_line(&w)) != NULL) {
    frames += strncmp(line, "pid ", 4) == 0;
    deltas += strncmp(line, "since last frame: used ", 23) == 0;
    sparks += strncmp(line, "used bytes  ", 12) == 0;
    free(line);
    if (frames == 3 && sparks == 3)
      kill(w.pid, SIGTERM);
  }
  cr_assert_eq(sp_wait(&w), 0, "SIGTERM quits cleanly");
  cr_assert_geq(frames, 3);
  cr_assert_geq(deltas, frames - 1, "every frame after the first shows the change");
  sp_send(&c, "exit\n");
  cr_assert_eq(sp_wait(&c), 0);
}

Test(dump, million_blocks, .timeout = 60) {
  sp_child c;
  start_helper(&c);
  free(ask(&c, "alloc 1000000 16\n"));
  figures f = dump_json(c.pid);
  cr_assert_geq(f.blocks_used, 1000000);
  uint64_t listed = must_u64(f.json, "blocks_listed");
  if (strstr(f.json, "\"truncated\": true"))
    cr_assert_lt(listed, f.block_total);
  else
    cr_assert_eq(listed, f.block_total);
  free(f.json);
  sp_send(&c, "exit\n");
  cr_assert_eq(sp_wait(&c), 0);
}

/* ---- errors -------------------------------------------------------------- */

static void expect_exit(sp_result *r, int code, const char *needle) {
  cr_assert_eq(r->code, code, "exit %d, stderr: %s", r->code, r->err);
  cr_assert_str_empty(r->out, "stdout: %s", r->out);
  char *nl = strchr(r->err, '\n');
  cr_assert(nl && nl[1] == '\0', "one line on stderr: '%s'", r->err);
  cr_assert_not_null(strstr(r->err, needle), "'%s' not in '%s'", needle, r->err);
  sp_free(r);
}

Test(dump, usage_errors) {
  sp_result r = dump("--bogus", "1", NULL, NULL);
  expect_exit(&r, 1, "unknown option");
  r = dump("abc", NULL, NULL, NULL);
  expect_exit(&r, 1, "bad PID");
  r = dump(NULL, NULL, NULL, NULL);
  expect_exit(&r, 1, "give a PID");
  r = dump("--width", "0", "1", NULL);
  expect_exit(&r, 1, "bad number");
  r = dump("--range", "5:1", "1", NULL);
  expect_exit(&r, 1, "bad range");
  r = dump("--range", "zz", "1", NULL);
  expect_exit(&r, 1, "bad range");
  r = dump("--limit", NULL, NULL, NULL);
  expect_exit(&r, 1, "needs a value");
  r = dump("1", "2", NULL, NULL);
  expect_exit(&r, 1, "too many");
  r = dump("--list", "5", NULL, NULL);
  expect_exit(&r, 1, "--list takes no PID");
  r = dump("--watch", "0", "1", NULL);
  expect_exit(&r, 1, "bad interval");
}

Test(dump, help_documents_exit_statuses) {
  sp_result r = dump("--help", NULL, NULL, NULL);
  cr_assert_eq(r.code, 0);
  for (int i = 0; i <= 7; i++) {
    char s[8];
    snprintf(s, sizeof s, "  %d  ", i);
    cr_assert_not_null(strstr(r.out, s), "status %d not documented", i);
  }
  sp_free(&r);
}

Test(dump, no_such_process_and_not_simalloc) {
  pid_t child = fork();
  if (child == 0)
    _exit(0);
  waitpid(child, NULL, 0);
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)child);
  sp_result r = dump(pid, NULL, NULL, NULL);
  expect_exit(&r, 2, "no such process");

  snprintf(pid, sizeof pid, "%d", (int)getpid());   /* we do not run on it */
  r = dump(pid, NULL, NULL, NULL);
  expect_exit(&r, 3, "does not run under libsimalloc");
}

/* Publishes a (possibly damaged) image as the segment of this process. */
static void publish_self(test_image *img, mode_t mode, size_t len) {
  char name[64];
  snap_segment_name(name, sizeof name, getpid());
  shm_unlink(name);
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, mode);
  cr_assert_geq(fd, 0);
  fchmod(fd, mode);
  cr_assert_eq(ftruncate(fd, (off_t)len), 0);
  cr_assert_eq(pwrite(fd, img->buf, len < img->len ? len : img->len, 0),
               (ssize_t)(len < img->len ? len : img->len));
  close(fd);
}

static void unpublish_self(void) {
  char name[64];
  snap_segment_name(name, sizeof name, getpid());
  shm_unlink(name);
}

Test(dump, fake_segments_give_each_error, .fini = unpublish_self) {
  static const test_block b[] = {{64, SIMALLOC_SNAP_USED}, {64, SIMALLOC_SNAP_FREE}};
  char pid[32];
  test_image img;
  sp_result r;
  snprintf(pid, sizeof pid, "%d", (int)getpid());

  cr_assert_eq(image_build(&img, b, 2, 64, 0), 0);
  img.h->pid = getpid();
  publish_self(&img, 0600, img.len);
  r = dump("--json", pid, NULL, NULL);
  cr_assert_eq(r.code, 0, "the undamaged image reads: %s", r.err);
  cr_assert_not_null(strstr(r.err, "may be stale"), "nobody answers the request: %s", r.err);
  sp_free(&r);

  publish_self(&img, 0644, img.len);
  r = dump(pid, NULL, NULL, NULL);
  expect_exit(&r, 4, "permission denied");

  img.h->version = 99;
  publish_self(&img, 0600, img.len);
  r = dump(pid, NULL, NULL, NULL);
  expect_exit(&r, 5, "incompatible snapshot version 99");
  img.h->version = SIMALLOC_SNAP_VERSION;

  img.h->magic = 0;
  publish_self(&img, 0600, img.len);
  r = dump(pid, NULL, NULL, NULL);
  expect_exit(&r, 6, "corrupt snapshot: bad magic");
  img.h->magic = SIMALLOC_SNAP_MAGIC;

  publish_self(&img, 0600, img.len - 8);
  r = dump(pid, NULL, NULL, NULL);
  expect_exit(&r, 6, "corrupt snapshot");

  img.h->block_count = UINT64_MAX;
  publish_self(&img, 0600, img.len);
  r = dump(pid, NULL, NULL, NULL);
  expect_exit(&r, 6, "corrupt snapshot");
  image_free(&img);
}

/* ---- --watch on a terminal ------------------------------------------------ */

/* Reads from the terminal until needle shows up (or nothing comes for a
 * while); returns everything read. */
static char *read_until(int fd, const char *needle, char *acc, size_t *len, size_t cap) {
  for (int idle = 0; idle < 50 && !strstr(acc, needle);) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) {
      idle++;
      continue;
    }
    ssize_t n = read(fd, acc + *len, cap - 1 - *len);
    if (n <= 0)
      break;
    *len += (size_t)n;
    acc[*len] = '\0';
  }
  return acc;
}

Test(dump, watch_on_a_terminal_quits_on_q_and_restores_it) {
  sp_child c;
  char pid[32];
  static char acc[1 << 20];
  size_t len = 0;
  start_helper(&c);
  snprintf(pid, sizeof pid, "%d", (int)c.pid);

  int master;
  pid_t w = forkpty(&master, NULL, NULL, NULL);
  cr_assert_geq(w, 0);
  if (w == 0) {
    execl(sp_env("SIMALLOC_DUMP"), "simalloc-dump", "--watch", "0.1", "--ascii", pid,
          (char *)NULL);
    _exit(127);
  }
  acc[0] = '\0';
  read_until(master, "since last frame", acc, &len, sizeof acc);
  cr_assert_not_null(strstr(acc, "\033[?1049h\033[?25l"), "alternate screen entered");
  cr_assert_not_null(strstr(acc, "\033[H\033[2J"), "frames redraw in place");
  struct termios t;
  cr_assert_eq(tcgetattr(master, &t), 0);
  cr_assert_eq(t.c_lflag & ICANON, 0, "keys are read one at a time");

  cr_assert_eq(write(master, "q", 1), 1);
  read_until(master, "\033[?1049l", acc, &len, sizeof acc);
  int st;
  cr_assert_eq(waitpid(w, &st, 0), w);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
  cr_assert_not_null(strstr(acc, "\033[?25h\033[?1049l"), "cursor and screen restored");
  cr_assert_eq(tcgetattr(master, &t), 0);
  cr_assert_neq(t.c_lflag & ICANON, 0, "line mode restored");
  close(master);
  sp_send(&c, "exit\n");
  cr_assert_eq(sp_wait(&c), 0);
}
