/* proc.h - running the tools and helper programs from the tests.
 *
 * The test runner never runs under LD_PRELOAD: a helper that should run on
 * libsimalloc gets it in its own environment only.
 */
#ifndef TEST_PROC_H
#define TEST_PROC_H

#include <stdio.h>
#include <sys/types.h>

typedef struct proc_result {
  int code;          /* exit status, or 128 + signal */
  char *out, *err;   /* what it wrote, NUL-terminated */
} proc_result;

/* Runs argv[0] (a path) to completion with input on stdin (a regular file,
 * never a terminal; "" when input is NULL) and the variables of env
 * (NAME=VALUE, NULL-terminated, may be NULL) added to ours. */
proc_result proc_run(const char *const argv[], const char *const env[], const char *input);
void proc_result_free(proc_result *r);

/* A child with pipes on stdin and stdout. */
typedef struct proc_child {
  pid_t pid;
  int to;            /* its stdin */
  FILE *from;        /* its stdout */
} proc_child;

/* Starts argv[0] with LD_PRELOAD=preload (if not NULL) in its environment. */
void proc_start(proc_child *c, const char *const argv[], const char *preload);
/* The next line from the child without its newline (malloc'd), or NULL. */
char *proc_line(proc_child *c);
void proc_send(proc_child *c, const char *text);
/* Closes the pipes and waits; returns the exit status or 128 + signal. */
int proc_wait(proc_child *c);

/* The environment variable name, or a failed test if it is unset. */
const char *proc_env(const char *name);

#endif
