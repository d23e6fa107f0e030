/* run.c - spawning helper programs for the integration tests (see run.h).
 *
 * stdout and stderr go to anonymous temporary files rather than pipes, so
 * a chatty child can never block on a full pipe while we wait for it.
 */
#define _GNU_SOURCE
#include "run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *it_lib(void) {
  const char *lib = getenv("SIMALLOC_LIB");
  if (!lib || !*lib)
    cr_assert_fail("SIMALLOC_LIB is not set; run the tests through meson");
  if (access(lib, R_OK) != 0)
    cr_assert_fail("SIMALLOC_LIB=%s is not readable", lib);
  return lib;
}

char *it_data(const char *name) {
  const char *dir = getenv("SIMALLOC_TEST_DATA");
  char *path = NULL;
  if (!dir || !*dir)
    cr_assert_fail("SIMALLOC_TEST_DATA is not set; run the tests through meson");
  cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
  return path;
}

static size_t name_len(const char *kv) {
  const char *eq = strchr(kv, '=');
  return eq ? (size_t)(eq - kv) : strlen(kv);
}

static int overridden(const char *kv, const char *const env[]) {
  size_t n = name_len(kv);
  for (size_t i = 0; env && env[i]; i++)
    if (name_len(env[i]) == n && strncmp(env[i], kv, n) == 0)
      return 1;
  return 0;
}

/* The child's environment: ours without LD_PRELOAD, then the overrides. */
static char **child_env(const char *const env[], int mode, char **preload) {
  size_t n = 0, k = 0, extra = 0;
  while (environ[n])
    n++;
  while (env && env[extra])
    extra++;
  char **out = calloc(n + extra + 2, sizeof *out);
  cr_assert_not_null(out);
  for (size_t i = 0; i < n; i++) {
    if (strncmp(environ[i], "LD_PRELOAD=", 11) == 0 || overridden(environ[i], env))
      continue;
    out[k++] = environ[i];
  }
  for (size_t i = 0; i < extra; i++)
    out[k++] = (char *)env[i];
  *preload = NULL;
  if (mode == IT_PRELOAD) {
    cr_assert(asprintf(preload, "LD_PRELOAD=%s", it_lib()) > 0);
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

char *it_temp_name(void) {
  const char *dir = getenv("TMPDIR");
  char *name = NULL;
  cr_assert(asprintf(&name, "%s/simalloc-it-XXXXXX", dir && *dir ? dir : "/tmp") > 0);
  return name;
}

static int temp_fd(void) {
  char *name = it_temp_name();
  int fd = mkstemp(name);
  cr_assert_geq(fd, 0, "mkstemp %s: %s", name, strerror(errno));
  unlink(name);
  free(name);
  return fd;
}

it_result it_run(const char *const argv[], const char *const env[], int mode) {
  it_result r = {0};
  char *preload;
  char **envp = child_env(env, mode, &preload);
  int out = temp_fd(), err = temp_fd();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  posix_spawn_file_actions_adddup2(&fa, err, 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  free(envp);
  free(preload);
  cr_assert_eq(rc, 0, "cannot start %s: %s", argv[0], strerror(rc));
  int status;
  while (waitpid(pid, &status, 0) < 0)
    cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
  r.exited = WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  r.signaled = WIFSIGNALED(status);
  r.sig = r.signaled ? WTERMSIG(status) : 0;
  r.out = slurp(out, &r.out_len);
  r.err = slurp(err, &r.err_len);
  return r;
}

it_result it_helper(const char *const argv[], const char *const env[], int mode) {
  const char *dir = getenv("SIMALLOC_HELPERS");
  if (!dir || !*dir)
    cr_assert_fail("SIMALLOC_HELPERS is not set; run the tests through meson");
  size_t n = 0;
  while (argv[n])
    n++;
  const char **args = calloc(n + 1, sizeof *args);
  char *path = NULL;
  cr_assert_not_null(args);
  cr_assert(asprintf(&path, "%s/%s", dir, argv[0]) > 0);
  args[0] = path;
  for (size_t i = 1; i < n; i++)
    args[i] = argv[i];
  it_result r = it_run(args, env, mode);
  free(path);
  free(args);
  return r;
}

void it_result_free(it_result *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

const char *it_describe(const it_result *r) {
  static char buf[64];
  if (r->exited)
    snprintf(buf, sizeof buf, "exited with status %d", r->code);
  else if (r->signaled)
    snprintf(buf, sizeof buf, "killed by signal %d (%s)", r->sig, strsignal(r->sig));
  else
    snprintf(buf, sizeof buf, "ended in an unknown way");
  return buf;
}

void it_assert_ok(const it_result *r, const char *what) {
  cr_assert(r->exited && r->code == 0, "%s: %s; stdout:\n%s\nstderr:\n%s", what,
            it_describe(r), r->out, r->err);
}

void it_assert_abort(const it_result *r, const char *needle) {
  cr_assert(r->signaled && r->sig == SIGABRT,
            "expected SIGABRT, child %s; stderr:\n%s", it_describe(r), r->err);
  cr_assert_not_null(strstr(r->err, needle), "stderr lacks \"%s\":\n%s", needle, r->err);
}

unsigned long long it_value(const char *text, const char *key) {
  size_t n = strlen(key);
  for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
    if ((p == text || p[-1] == ' ' || p[-1] == '\n') && p[n] == '=')
      return strtoull(p + n + 1, NULL, 0);
  }
  cr_assert_fail("no \"%s=\" in output:\n%s", key, text);
  return 0;
}
