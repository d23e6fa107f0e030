/* spawn.h - starting programs from the tests, with or without libsimalloc.
 *
 * The one place that builds a child's environment, finds the library and
 * the programs meson built, and starts, feeds and waits for a child.
 *
 * The test runner itself never runs under the library: LD_PRELOAD goes
 * into the child's environment only.  Every child leads its own process
 * group and has a deadline; at the deadline the whole group is killed and
 * the result says so, so a deadlock becomes a test failure instead of a
 * hung suite.  A child that cannot be started at all fails the current
 * Criterion test with the reason.
 */
#ifndef SA_TEST_SPAWN_H
#define SA_TEST_SPAWN_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

enum { SP_PLAIN = 0, SP_PRELOAD = 1 };

typedef struct sp_opts {
  int preload;             /* SP_PRELOAD: LD_PRELOAD=$SIMALLOC_LIB */
  const char *const *env;  /* NAME=VALUE, replacing ours; NULL-terminated, or NULL */
  const char *input;       /* stdin as a regular file; NULL: /dev/null */
  size_t rlimit_as;        /* RLIMIT_AS for the child; 0 keeps ours */
  unsigned timeout_s;      /* the deadline; 0 means 120 seconds */
  const char *dir;         /* working directory, or NULL */
} sp_opts;

typedef struct sp_result {
  int exited;              /* 1 if it called exit */
  int code;                /* its exit status, or 128 + the signal number */
  int signaled, sig;       /* killed by a signal, and which */
  int timed_out;           /* killed at the deadline */
  char *out, *err;         /* stdout, stderr; NUL-terminated */
  size_t out_len, err_len;
} sp_result;

/* Runs argv (argv[0] is a path, or a name looked up in PATH) to the end.
 * o may be NULL: plain, stdin from /dev/null, the default deadline. */
sp_result sp_run(const char *const argv[], const sp_opts *o);
void sp_free(sp_result *r);

/* "exited with status 3", "killed by signal 11 (...)", ... (static). */
const char *sp_describe(const sp_result *r);

/* A child with pipes on its stdin and stdout; its stderr is ours. */
typedef struct sp_child {
  pid_t pid;
  int to;                  /* its stdin */
  FILE *from;              /* its stdout */
  double deadline;         /* CLOCK_MONOTONIC seconds */
} sp_child;

/* Starts argv like sp_run (o->input is not used) and returns at once. */
void sp_start(sp_child *c, const char *const argv[], const sp_opts *o);
/* The next line from the child without its newline (malloc'd), or NULL. */
char *sp_line(sp_child *c);
/* Starts argv like sp_start and waits for it to print the line "ready". */
void sp_start_ready(sp_child *c, const char *const argv[], const sp_opts *o);
void sp_send(sp_child *c, const char *text);
/* Closes the pipes and waits for the deadline at the latest; returns the
 * exit status or 128 + signal.  A child killed at the deadline fails the
 * test. */
int sp_wait(sp_child *c);

/* The value of a variable meson sets; fails the test when it is unset. */
const char *sp_env(const char *name);
/* Path of libsimalloc.so from SIMALLOC_LIB; fails the test when unusable. */
const char *sp_lib(void);
/* $var/name, for directories meson passes in the environment; the caller
 * frees it. */
char *sp_path(const char *var, const char *name);
/* 1 if name is an executable in PATH. */
int sp_in_path(const char *name);

#endif
