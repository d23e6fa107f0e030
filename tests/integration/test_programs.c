/* test_programs.c - real programs behave the same on libsimalloc.
 *
 * Each program runs plainly and then with the library preloaded (and
 * SIMALLOC_STATS=1); exit status and stdout must match byte for byte, and
 * the preloaded run's stderr must carry the library's summary, which
 * proves our allocator served it.
 */
#define _GNU_SOURCE
#include "run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How the preloaded run proves that libsimalloc served it. */
enum proof {
  SUMMARY,  /* SIMALLOC_STATS=1 summary on stderr at exit */
  BINDING,  /* the dynamic linker binds the program's malloc to us; for
               programs that close stderr before exiting (coreutils) or
               leave through _exit (dash), where no summary can appear */
};

/* Does the LD_DEBUG=bindings trace bind `malloc' of argv0 to libsimalloc? */
static int bound_to_us(const char *trace, const char *argv0) {
  char from[256];
  snprintf(from, sizeof from, "binding file %s [", argv0);
  for (const char *p = strstr(trace, from); p; p = strstr(p + 1, from)) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    if (memmem(p, len, "libsimalloc", 11) && memmem(p, len, "`malloc'", 8))
      return 1;
  }
  return 0;
}

static void same_output(const char *const argv[], enum proof proof) {
  const char *plain_env[] = {"LC_ALL=C", NULL};
  const char *summary_env[] = {"LC_ALL=C", "SIMALLOC_STATS=1", NULL};
  const char *binding_env[] = {"LC_ALL=C", "LD_DEBUG=bindings", NULL};
  it_result plain = it_run(argv, plain_env, IT_PLAIN);
  it_result shim = it_run(argv, proof == SUMMARY ? summary_env : binding_env, IT_PRELOAD);
  cr_assert(plain.exited, "%s (plain) %s", argv[0], it_describe(&plain));
  cr_assert(shim.exited && shim.code == plain.code,
            "%s: plain run exited %d, preloaded run %s; stderr:\n%.4000s", argv[0], plain.code,
            it_describe(&shim), shim.err);
  cr_assert_gt(plain.out_len, 0, "%s printed nothing; stderr:\n%s", argv[0], plain.err);
  cr_assert(plain.out_len == shim.out_len && memcmp(plain.out, shim.out, plain.out_len) == 0,
            "%s: stdout differs (%zu vs %zu bytes)", argv[0], plain.out_len, shim.out_len);
  if (proof == SUMMARY)
    cr_assert_not_null(strstr(shim.err, "simalloc:"),
                       "%s: no simalloc summary on stderr:\n%s", argv[0], shim.err);
  else
    cr_assert(bound_to_us(shim.err, argv[0]), "%s: malloc not bound to libsimalloc", argv[0]);
  it_result_free(&plain);
  it_result_free(&shim);
}

/* Writes `lines` pseudo-random lines to a fresh temporary file. */
static char *lines_file(unsigned lines) {
  char *name = it_temp_name();
  int fd = mkstemp(name);
  cr_assert_geq(fd, 0);
  FILE *f = fdopen(fd, "w");
  cr_assert_not_null(f);
  unsigned long long x = 12345;
  for (unsigned i = 0; i < lines; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    fprintf(f, "%08llx key%u %llu\n", x >> 32, (unsigned)(x >> 20) % 997, x % 100000);
  }
  cr_assert_eq(fclose(f), 0);
  return name;
}

Test(programs, python_json_threads_fork) {
  if (!sp_in_path("python3"))
    cr_skip_test("python3 is not installed (not in PATH)");
  char *script = it_data("programs/workload.py");
  const char *argv[] = {"python3", script, NULL};
  same_output(argv, SUMMARY);
  free(script);
}

Test(programs, sort_hundred_thousand_lines) {
  char *file = lines_file(100000);
  const char *plain[] = {"sort", file, NULL};
  const char *keyed[] = {"sort", "-k2,2", "-k3,3n", "-s", file, NULL};
  same_output(plain, BINDING);
  same_output(keyed, BINDING);
  unlink(file);
  free(file);
}

Test(programs, shell_pipeline) {
  const char *argv[] = {
    "sh", "-c",
    "seq 1 40000 | sed 's/3/three/g' | sort | uniq -c | sort -k1,1nr -k2 | tail -n 40; "
    "x=$(seq 1 500 | tr '\\n' + ); echo \"${#x}\"; for i in 1 2 3; do echo $i; done | wc -l",
    NULL};
  same_output(argv, SUMMARY); /* some stage of the pipeline exits normally */
  same_output(argv, BINDING);
}

Test(programs, failing_command_keeps_its_status) {
  const char *argv[] = {"sh", "-c", "echo before; exit 3", NULL};
  same_output(argv, BINDING);
}
