/* spawn.c - running test programs with a preload, a limit and a deadline
 * (see spawn.h).
 *
 * Output goes to anonymous files rather than pipes, so a chatty child never
 * blocks on a full pipe while we wait for it.  The child leads its own
 * process group; at the deadline the whole group is killed, which also
 * takes down anything it started (a multiprocessing pool, git gc).
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *sp_lib(void) {
  const char *lib = getenv("SIMALLOC_LIB");
  if (!lib || !*lib)
    cr_assert_fail("SIMALLOC_LIB is not set; run the tests through meson");
  if (access(lib, R_OK) != 0)
    cr_assert_fail("SIMALLOC_LIB=%s is not readable", lib);
  return lib;
}

char *sp_path(const char *var, const char *name) {
  const char *dir = getenv(var);
  char *path = NULL;
  if (!dir || !*dir)
    cr_assert_fail("%s is not set; run the tests through meson", var);
  cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
  return path;
}

int sp_in_path(const char *name) {
  const char *path = getenv("PATH");
  char buf[4096];
  for (const char *p = path; p && *p;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, name);
    if (access(buf, X_OK) == 0)
      return 1;
    p = end ? end + 1 : NULL;
  }
  return 0;
}

static size_t name_len(const char *kv) {
  const char *eq = strchr(kv, '=');
  return eq ? (size_t)(eq - kv) : strlen(kv);
}

static int overridden(const char *kv, const char *const env[]) {
  for (size_t i = 0; env && env[i]; i++)
    if (name_len(env[i]) == name_len(kv) && strncmp(env[i], kv, name_len(kv)) == 0)
      return 1;
  return 0;
}

/* Our environment without LD_PRELOAD, then the overrides, then the preload. */
static char **child_env(const sp_opts *o, char **preload) {
  size_t n = 0, k = 0, extra = 0;
  while (environ[n])
    n++;
  while (o->env && o->env[extra])
    extra++;
  char **out = calloc(n + extra + 2, sizeof *out);
  cr_assert_not_null(out);
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 && !overridden(environ[i], o->env))
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

/* Runs in the child between fork and exec: only async-signal-safe calls. */
static void exec_child(const char *const argv[], const sp_opts *o, char **env, int out,
                       int err) {
  int in = open("/dev/null", O_RDONLY);
  if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
    _exit(126);
  setpgid(0, 0);
  if (o->dir && chdir(o->dir) != 0)
    _exit(126);
  if (o->rlimit_as) {
    struct rlimit rl = {o->rlimit_as, o->rlimit_as};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
      _exit(126);
  }
  execvpe(argv[0], (char *const *)argv, env);
  _exit(127);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for pid until the deadline; kills its group if it is not done. */
static int wait_until(pid_t pid, unsigned timeout_s, int *timed_out) {
  double deadline = now_s() + timeout_s;
  struct timespec tick = {0, 5 * 1000 * 1000};
  int status = 0;
  *timed_out = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      return status;
    cr_assert(w == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
    if (now_s() > deadline) {
      *timed_out = 1;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    nanosleep(&tick, NULL);
  }
}

sp_result sp_run(const char *const argv[], const sp_opts *o) {
  static const sp_opts none = {0};
  if (!o)
    o = &none;
  char *preload;
  char **env = child_env(o, &preload);
  int out = memfd_create("stdout", MFD_CLOEXEC);
  int err = memfd_create("stderr", MFD_CLOEXEC);
  cr_assert(out >= 0 && err >= 0, "memfd_create: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0)
    exec_child(argv, o, env, out, err);
  setpgid(pid, pid); /* either side may win the race; both set the same */
  sp_result r = {0};
  int status = wait_until(pid, o->timeout_s ? o->timeout_s : 120, &r.timed_out);
  r.exited = WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  r.signaled = WIFSIGNALED(status);
  r.sig = r.signaled ? WTERMSIG(status) : 0;
  r.out = slurp(out, &r.out_len);
  r.err = slurp(err, &r.err_len);
  free(preload);
  free(env);
  cr_assert(!(r.exited && r.code == 127), "could not execute %s", argv[0]);
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
    snprintf(buf, sizeof buf, "exited %d", r->code);
  else if (r->signaled)
    snprintf(buf, sizeof buf, "killed by signal %d (%s)", r->sig, strsignal(r->sig));
  else
    snprintf(buf, sizeof buf, "ended in an unknown way");
  return buf;
}
