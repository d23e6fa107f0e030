/* run.h - start a program with or without libsimalloc preloaded and
 * collect what it did.
 *
 * A thin layer over the tests' spawning library (spawn.h) with the
 * integration tests' own assertions.  The test runner itself never runs
 * under LD_PRELOAD: each helper program gets LD_PRELOAD=<libsimalloc> in
 * its own environment only.  The library path comes from SIMALLOC_LIB and
 * the helper directory from SIMALLOC_HELPERS, both set by meson for every
 * integration test.
 */
#ifndef SA_IT_RUN_H
#define SA_IT_RUN_H

#include "spawn.h"

/* How a child ended and what it wrote (see spawn.h). */
typedef sp_result it_result;

/* Preload modes for it_run. */
enum { IT_PLAIN = SP_PLAIN, IT_PRELOAD = SP_PRELOAD };

/* Runs argv[0] (a path, or a name looked up in PATH) with the runner's
 * environment minus any LD_PRELOAD, plus LD_PRELOAD=<libsimalloc> when
 * mode is IT_PRELOAD, plus the NAME=VALUE strings of env (NULL-terminated,
 * may be NULL; they replace variables of the same name).  stdin is
 * /dev/null.  Fails the current test if the child cannot be started; kills
 * it (and says so) if it is still running after ten minutes. */
it_result it_run(const char *const argv[], const char *const env[], int mode);

/* Same, for a helper program in SIMALLOC_HELPERS named by argv[0]. */
it_result it_helper(const char *const argv[], const char *const env[], int mode);

static inline void it_result_free(it_result *r) { sp_free(r); }

/* Path of a file under the integration test source directory
 * (SIMALLOC_TEST_DATA); the string is owned by the caller. */
static inline char *it_data(const char *name) { return sp_path("SIMALLOC_TEST_DATA", name); }

/* A mkstemp template under $TMPDIR (or /tmp); owned by the caller. */
char *it_temp_name(void);

/* One line describing how the child ended, for assertion messages. */
static inline const char *it_describe(const it_result *r) { return sp_describe(r); }

/* Asserts the child exited with status 0, quoting its stderr otherwise. */
void it_assert_ok(const it_result *r, const char *what);

/* Asserts a SIGABRT death with `needle` in stderr. */
void it_assert_abort(const it_result *r, const char *needle);

/* Returns the value printed after `key=` in text (hex with 0x, else
 * decimal); fails the test when the key is missing. */
unsigned long long it_value(const char *text, const char *key);

#endif
