/* spawn.c - starting programs from the tests (see spawn.h).
 *
 * A child that runs to the end writes into memory files rather than pipes,
 * so a chatty child never blocks on a full pipe while we wait for it.
 * Between fork and exec the child makes only async-signal-safe calls; when
 * its setup or exec fails it writes errno into a close-on-exec pipe, so
 * "could not start" is told apart from a program that ran and failed.
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const sp_opts no_opts;

/* ---- finding the library and the programs ------------------------------ */

const char *sp_env(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v)
    cr_assert_fail("%s is not set; run the tests through meson", name);
  return v;
}

const char *sp_lib(void) {
  const char *lib = sp_env("SIMALLOC_LIB");
  if (access(lib, R_OK) != 0)
    cr_assert_fail("SIMALLOC_LIB=%s is not readable", lib);
  return lib;
}

char *sp_path(const char *var, const char *name) {
  char *path = NULL;
  cr_assert(asprintf(&path, "%s/%s", sp_env(var), name) > 0);
  return path;
}

int sp_in_path(const char *name) {
  char buf[4096];
  for (const char *p = getenv("PATH"); p && *p;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, name);
    if (access(buf, X_OK) == 0)
      return 1;
    p = end ? end + 1 : NULL;
  }
  return 0;
}

/* ---- the child's environment ------------------------------------------- */

static size_t name_len(const char *kv) {
  const char *eq = strchr(kv, '=');
  return eq ? (size_t)(eq - kv) : strlen(kv);
}

static int same_name(const char *a, const char *b) {
  return name_len(a) == name_len(b) && strncmp(a, b, name_len(a)) == 0;
}

static int dropped(const char *kv, const char *const env[]) {
  if (same_name(kv, "LD_PRELOAD"))
    return 1;
  for (size_t i = 0; env && env[i]; i++)
    if (same_name(kv, env[i]))
      return 1;
  return 0;
}

/* Ours without LD_PRELOAD and the overridden names, then the overrides,
 * then the preload.  The array and *preload belong to the caller. */
static char **child_env(const sp_opts *o, char **preload) {
  size_t n = 0, k = 0, extra = 0;
  while (environ[n])
    n++;
  while (o->env && o->env[extra])
    extra++;
  char **out = calloc(n + extra + 2, sizeof *out);
  cr_assert_not_null(out);
  for (size_t i = 0; i < n; i++)
    if (!dropped(environ[i], o->env))
      out[k++] = environ[i];
  for (size_t i = 0; i < extra; i++)
    out[k++] = (char *)o->env[i];
  *preload = NULL;
  if (o->preload == SP_PRELOAD) {
    cr_assert(asprintf(preload, "LD_PRELOAD=%s", sp_lib()) > 0);
    out[k++] = *preload;
  }
  return out;
}

/* ---- starting and waiting ---------------------------------------------- */

static _Noreturn void child_failed(int report) {
  int e = errno;
  ssize_t unused = write(report, &e, sizeof e);
  (void)unused;
  _exit(127);
}

/* Runs in the child between fork and exec.  fds are its stdin, stdout and
 * stderr; -1 keeps ours. */
static _Noreturn void exec_child(const char *const argv[], const sp_opts *o, char **env,
                                 const int fds[3], int report) {
  setpgid(0, 0);
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0 && dup2(fds[i], i) < 0)
      child_failed(report);
  if (o->dir && chdir(o->dir) != 0)
    child_failed(report);
  struct rlimit rl = {o->rlimit_as, o->rlimit_as};
  if (o->rlimit_as && setrlimit(RLIMIT_AS, &rl) != 0)
    child_failed(report);
  execvpe(argv[0], (char *const *)argv, env);
  child_failed(report);
}

static int reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

/* The child's errno if it could not start, else 0 (the pipe closed at exec). */
static int start_error(int fd) {
  int e = 0;
  ssize_t n;
  while ((n = read(fd, &e, sizeof e)) < 0 && errno == EINTR) {
  }
  close(fd);
  return n == (ssize_t)sizeof e ? e : 0;
}

/* Forks and execs argv on the streams fds; fails the test with the reason
 * when the program cannot be started. */
static pid_t start(const char *const argv[], const sp_opts *o, const int fds[3]) {
  char *preload;
  char **env = child_env(o, &preload);
  int report[2];
  cr_assert_eq(pipe2(report, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0)
    exec_child(argv, o, env, fds, report[1]);
  setpgid(pid, pid); /* either side may win the race; both set the same */
  close(report[1]);
  free(preload);
  free(env);
  int e = start_error(report[0]);
  if (e) {
    reap(pid);
    cr_assert_fail("cannot start %s: %s", argv[0], strerror(e));
  }
  return pid;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double deadline_of(const sp_opts *o) {
  return now_s() + (o->timeout_s ? o->timeout_s : 120);
}

/* Waits for pid until the deadline, then kills its group; the wait status. */
static int wait_until(pid_t pid, double deadline, int *timed_out) {
  struct timespec tick = {0, 5 * 1000 * 1000};
  int status = 0;
  *timed_out = 0;
  while (now_s() <= deadline) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      return status;
    cr_assert(w == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
    nanosleep(&tick, NULL);
  }
  *timed_out = 1;
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  return reap(pid);
}

static int code_of(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- running to the end ------------------------------------------------ */

static int memory_file(const char *name) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  cr_assert_geq(fd, 0, "memfd_create: %s", strerror(errno));
  return fd;
}

/* The child's stdin: a memory file holding input, or /dev/null. */
static int input_fd(const char *input) {
  if (!input) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "/dev/null: %s", strerror(errno));
    return fd;
  }
  int fd = memory_file("stdin");
  size_t len = strlen(input);
  cr_assert_eq(write(fd, input, len), (ssize_t)len, "stdin: %s", strerror(errno));
  lseek(fd, 0, SEEK_SET);
  return fd;
}

/* The whole content of fd, NUL-terminated; closes fd. */
static char *slurp(int fd, size_t *len) {
  struct stat st;
  cr_assert_eq(fstat(fd, &st), 0);
  char *buf = malloc((size_t)st.st_size + 1);
  cr_assert_not_null(buf);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  buf[got] = '\0';
  *len = got;
  close(fd);
  return buf;
}

sp_result sp_run(const char *const argv[], const sp_opts *o) {
  o = o ? o : &no_opts;
  int fds[3] = {input_fd(o->input), memory_file("stdout"), memory_file("stderr")};
  pid_t pid = start(argv, o, fds);
  close(fds[0]);
  sp_result r = {0};
  int status = wait_until(pid, deadline_of(o), &r.timed_out);
  r.exited = WIFEXITED(status);
  r.signaled = WIFSIGNALED(status);
  r.sig = r.signaled ? WTERMSIG(status) : 0;
  r.code = code_of(status);
  r.out = slurp(fds[1], &r.out_len);
  r.err = slurp(fds[2], &r.err_len);
  return r;
}

void sp_free(sp_result *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

const char *sp_describe(const sp_result *r) {
  static char buf[64];
  if (r->timed_out)
    snprintf(buf, sizeof buf, "timed out (killed at the deadline)");
  else if (r->exited)
    snprintf(buf, sizeof buf, "exited with status %d", r->code);
  else if (r->signaled)
    snprintf(buf, sizeof buf, "killed by signal %d (%s)", r->sig, strsignal(r->sig));
  else
    snprintf(buf, sizeof buf, "ended in an unknown way");
  return buf;
}

/* ---- talking to a child ------------------------------------------------ */

void sp_start(sp_child *c, const char *const argv[], const sp_opts *o) {
  int to[2], from[2];
  o = o ? o : &no_opts;
  cr_assert_eq(pipe2(to, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
  cr_assert_eq(pipe2(from, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
  int fds[3] = {to[0], from[1], -1};
  c->pid = start(argv, o, fds);
  c->deadline = deadline_of(o);
  close(to[0]);
  close(from[1]);
  c->to = to[1];
  c->from = fdopen(from[0], "r");
  cr_assert_not_null(c->from, "fdopen: %s", strerror(errno));
}

char *sp_line(sp_child *c) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline(&line, &cap, c->from);
  if (n < 0) {
    free(line);
    return NULL;
  }
  if (n > 0 && line[n - 1] == '\n')
    line[n - 1] = '\0';
  return line;
}

void sp_start_ready(sp_child *c, const char *const argv[], const sp_opts *o) {
  sp_start(c, argv, o);
  char *line = sp_line(c);
  cr_assert_not_null(line, "%s did not start", argv[0]);
  cr_assert_str_eq(line, "ready");
  free(line);
}

void sp_send(sp_child *c, const char *text) {
  size_t len = strlen(text);
  cr_assert_eq(write(c->to, text, len), (ssize_t)len, "write to %d: %s", (int)c->pid,
               strerror(errno));
}

int sp_wait(sp_child *c) {
  int timed_out;
  close(c->to);
  fclose(c->from);
  int status = wait_until(c->pid, c->deadline, &timed_out);
  cr_assert(!timed_out, "child %d was killed at its deadline", (int)c->pid);
  return code_of(status);
}
