/* test_measure.c - the launcher bench/run measures every program through
 * (bench/measure.c): its report, the exit statuses it passes on, and the
 * signals it lets through while it traces the program for its peak RSS. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spawn.h"

typedef struct measured {
  int status;
  double wall;
  long maxrss;
  char peak[16];
} measured;

/* Runs measure REPORT [-p lib] -- cmd...; *rep gets the report's fields
 * (status -999 if there was no report). */
static sp_result run(const char *lib, const char *const cmd[], measured *rep) {
  char path[] = "/tmp/simalloc-measure-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0, "mkstemp");
  close(fd);
  unlink(path);
  const char *argv[32] = {sp_env("SIMALLOC_MEASURE"), path};
  int n = 2;
  if (lib) {
    argv[n++] = "-p";
    argv[n++] = lib;
  }
  argv[n++] = "--";
  for (int i = 0; cmd[i]; i++) argv[n++] = cmd[i];
  argv[n] = NULL;
  sp_result r = sp_run(argv, NULL);
  *rep = (measured){.status = -999};
  FILE *f = fopen(path, "r");
  if (f) {
    if (fscanf(f, "status=%d wall=%lf maxrss=%ld peak=%15s", &rep->status, &rep->wall,
               &rep->maxrss, rep->peak) != 4)
      cr_assert_fail("unreadable report");
    fclose(f);
    unlink(path);
  }
  return r;
}

Test(measure, reports_at_least_the_memory_the_program_touched) {
  /* dd writes into one buffer of 32 MiB. */
  const char *cmd[] = {"dd", "if=/dev/zero", "of=/dev/null", "bs=32M", "count=2", NULL};
  measured rep;
  sp_result r = run(NULL, cmd, &rep);
  cr_assert_eq(r.code, 0, "measure: %s: %s", sp_describe(&r), r.err);
  cr_assert_eq(rep.status, 0);
  cr_assert_geq(rep.maxrss, 32 << 10, "peak %ld KiB for a 32 MiB buffer", rep.maxrss);
  cr_assert_lt(rep.maxrss, 256 << 10, "peak %ld KiB for a 32 MiB buffer", rep.maxrss);
  cr_assert_gt(rep.wall, 0);
  if (strcmp(rep.peak, "rusage") == 0)
    cr_skip_test("tracing is not allowed here: the peak is ru_maxrss");
  cr_assert_str_eq(rep.peak, "vmhwm");
  sp_free(&r);
}

Test(measure, lets_signals_through_to_the_program) {
  /* Were USR1 held back, the sleep would end and the shell exit 0. */
  const char *cmd[] = {"sh", "-c", "trap 'exit 7' USR1; kill -USR1 $$; sleep 30; exit 0", NULL};
  measured rep;
  sp_result r = run(NULL, cmd, &rep);
  cr_assert_eq(r.code, 7, "measure: %s", sp_describe(&r));
  cr_assert_eq(rep.status, 7);
  sp_free(&r);
}

Test(measure, a_killed_program_is_reported_with_its_signal) {
  const char *cmd[] = {"sh", "-c", "kill -TERM $$", NULL};
  measured rep;
  sp_result r = run(NULL, cmd, &rep);
  cr_assert_eq(r.code, 128 + 15, "measure: %s", sp_describe(&r));
  cr_assert_eq(rep.status, -15);
  sp_free(&r);
}

Test(measure, the_library_is_preloaded_into_the_program_only) {
  const char *cmd[] = {"sh", "-c", "case \"$LD_PRELOAD\" in *libsimalloc*) exit 5;; esac; exit 0",
                       NULL};
  measured rep;
  sp_result r = run(sp_lib(), cmd, &rep);
  cr_assert_eq(r.code, 5, "LD_PRELOAD not set in the program: %s", sp_describe(&r));
  cr_assert_eq(rep.status, 5);
  sp_free(&r);
}

Test(measure, a_program_that_cannot_start_is_status_125) {
  const char *cmd[] = {"/nonexistent/program", NULL};
  measured rep;
  sp_result r = run(NULL, cmd, &rep);
  cr_assert_eq(r.code, 125, "measure: %s", sp_describe(&r));
  cr_assert(strstr(r.err, "cannot run '/nonexistent/program'"), "stderr: %s", r.err);
  sp_free(&r);
}

Test(measure, bad_usage_is_status_2) {
  const char *argv[] = {sp_env("SIMALLOC_MEASURE"), "/tmp/simalloc-measure-unused", "true", NULL};
  sp_result r = sp_run(argv, NULL);
  cr_assert_eq(r.code, 2, "measure: %s", sp_describe(&r));
  cr_assert(strstr(r.err, "usage: measure"), "stderr: %s", r.err);
  sp_free(&r);
}
