/* spawn.h - run a program under libsimalloc (or plainly) from a test.
 *
 * The test process itself never runs under the library: LD_PRELOAD goes
 * into the child's environment only.  The child may get an address-space
 * limit (set between fork and exec, so it holds from the first
 * instruction of the dynamic linker) and every child gets a deadline: one
 * that does not finish in time is killed, and the result says so, so a
 * deadlock becomes a test failure instead of a hung suite.
 */
#ifndef SA_SPAWN_H
#define SA_SPAWN_H

#include <stddef.h>

enum { SP_PLAIN = 0, SP_PRELOAD = 1 };

typedef struct sp_opts {
  int preload;             /* SP_PRELOAD: LD_PRELOAD=$SIMALLOC_LIB */
  const char *const *env;  /* NAME=VALUE overrides, NULL-terminated, or NULL */
  size_t rlimit_as;        /* RLIMIT_AS for the child; 0 keeps ours */
  unsigned timeout_s;      /* 0 means 120 seconds */
  const char *dir;         /* working directory, or NULL */
} sp_opts;

typedef struct sp_result {
  int exited, code;        /* normal exit and its status */
  int signaled, sig;       /* killed by a signal */
  int timed_out;           /* we killed it at the deadline */
  char *out, *err;         /* stdout, stderr; NUL-terminated */
  size_t out_len, err_len;
} sp_result;

/* Runs argv (argv[0] is a path or a name looked up in PATH) with stdin
 * from /dev/null.  Fails the current Criterion test if it cannot start. */
sp_result sp_run(const char *const argv[], const sp_opts *o);
void sp_free(sp_result *r);

/* "exited 3", "killed by signal 11", "timed out after 60 s" (static). */
const char *sp_describe(const sp_result *r);

/* Path of libsimalloc.so from SIMALLOC_LIB; fails the test when unset. */
const char *sp_lib(void);
/* $var/name, for directories that meson passes in the environment; the
 * caller frees it.  Fails the test when var is unset. */
char *sp_path(const char *var, const char *name);
/* 1 if name is an executable in PATH. */
int sp_in_path(const char *name);

#endif
