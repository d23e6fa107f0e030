/* proc.c - see proc.h. */
#define _GNU_SOURCE
#include "proc.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *proc_env(const char *name) {
  const char *v = getenv(name);
  cr_assert_not_null(v, "%s is not set (run the tests through meson)", name);
  return v;
}

static int status_of(int st) {
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* environ minus LD_PRELOAD, plus extra. */
static char **child_env(const char *const extra[], const char *preload) {
  size_t n = 0, k = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + 34, sizeof *env);
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
      env[k++] = environ[i];
  for (size_t i = 0; extra && extra[i] && i < 32; i++)
    env[k++] = (char *)extra[i];
  if (preload) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "LD_PRELOAD=%s", preload);
    env[k++] = buf;
  }
  return env;
}

static char *slurp(int fd) {
  off_t len = lseek(fd, 0, SEEK_END);
  char *s = malloc((size_t)len + 1);
  cr_assert_eq(pread(fd, s, (size_t)len, 0), (ssize_t)len);
  s[len] = '\0';
  close(fd);
  return s;
}

proc_result proc_run(const char *const argv[], const char *const env[], const char *input) {
  int in = memfd_create("stdin", 0), out = memfd_create("stdout", 0),
      err = memfd_create("stderr", 0);
  size_t len = input ? strlen(input) : 0;
  cr_assert(in >= 0 && out >= 0 && err >= 0);
  cr_assert_eq(write(in, input ? input : "", len), (ssize_t)len);
  lseek(in, 0, SEEK_SET);
  char **envp = child_env(env, NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(argv[0], (char *const *)argv, envp);
    _exit(127);
  }
  free(envp);
  close(in);
  int st;
  waitpid(pid, &st, 0);
  proc_result r = {status_of(st), slurp(out), slurp(err)};
  return r;
}

void proc_result_free(proc_result *r) {
  free(r->out);
  free(r->err);
}

void proc_start(proc_child *c, const char *const argv[], const char *preload) {
  int to[2], from[2];
  cr_assert_eq(pipe2(to, O_CLOEXEC), 0);
  cr_assert_eq(pipe2(from, O_CLOEXEC), 0);
  char **envp = child_env(NULL, preload);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(to[0], 0);
    dup2(from[1], 1);
    execve(argv[0], (char *const *)argv, envp);
    _exit(127);
  }
  free(envp);
  close(to[0]);
  close(from[1]);
  c->pid = pid;
  c->to = to[1];
  c->from = fdopen(from[0], "r");
}

char *proc_line(proc_child *c) {
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

void proc_send(proc_child *c, const char *text) {
  size_t len = strlen(text);
  cr_assert_eq(write(c->to, text, len), (ssize_t)len);
}

int proc_wait(proc_child *c) {
  int st;
  close(c->to);
  fclose(c->from);
  waitpid(c->pid, &st, 0);
  return status_of(st);
}
