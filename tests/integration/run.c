/* run.c - the integration tests' layer over the spawning library (see
 * run.h): helpers by name, temporary files and the common assertions.
 */
#define _GNU_SOURCE
#include "run.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *it_temp_name(void) {
  const char *dir = getenv("TMPDIR");
  char *name = NULL;
  cr_assert(asprintf(&name, "%s/simalloc-it-XXXXXX", dir && *dir ? dir : "/tmp") > 0);
  return name;
}

/* A helper's deadline: the threads helpers run for minutes on a loaded
 * machine, so this is as long as the longest integration test may run. */
enum { IT_DEADLINE_S = 600 };

it_result it_run(const char *const argv[], const char *const env[], int mode) {
  sp_opts o = {.preload = mode, .env = env, .timeout_s = IT_DEADLINE_S};
  return sp_run(argv, &o);
}

it_result it_helper(const char *const argv[], const char *const env[], int mode) {
  size_t n = 0;
  while (argv[n])
    n++;
  const char **args = calloc(n + 1, sizeof *args);
  cr_assert_not_null(args);
  char *path = sp_path("SIMALLOC_HELPERS", argv[0]);
  args[0] = path;
  for (size_t i = 1; i < n; i++)
    args[i] = argv[i];
  it_result r = it_run(args, env, mode);
  free(path);
  free(args);
  return r;
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
