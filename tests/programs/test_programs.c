/* test_programs.c - real programs from Debian give the same results under
 * libsimalloc.
 *
 * Each program runs twice on the same input, plainly and with the library
 * preloaded (and SIMALLOC_STATS=1); the exit status and stdout must match
 * byte for byte.  Where the program itself ends through exit(), the
 * preloaded run's stderr must also carry the library's summary, proving
 * that our allocator served it.  Work files live in a fresh temporary
 * directory per run.  A program that is not installed skips its test.
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How much of the run must show the library's exit summary. */
enum proof {
  PROOF_SUMMARY,  /* the program itself prints it at exit */
  PROOF_NONE,     /* programs that close stderr early or leave through _exit */
};

static char *temp_dir(void) {
  char *dir = strdup("/tmp/simalloc-programs-XXXXXX");
  cr_assert_not_null(dir);
  cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
  return dir;
}

static void remove_dir(const char *dir) {
  const char *argv[] = {"rm", "-rf", dir, NULL};
  sp_result r = sp_run(argv, NULL);
  sp_free(&r);
}

/* The data file name under SIMALLOC_PROGRAMS_DATA (the source directory). */
static char *data(const char *name) {
  return sp_path("SIMALLOC_PROGRAMS_DATA", name);
}

static void need(const char *prog, const char *package) {
  if (!sp_in_path(prog))
    cr_skip_test("%s is not installed (Debian package %s)", prog, package);
}

/* Runs argv plainly and preloaded; argv may contain "@DIR@", replaced by a
 * fresh temporary directory for each run. */
static void same_output(const char *const argv[], enum proof proof, unsigned timeout_s) {
  static const char *plain_env[] = {"LC_ALL=C", "TZ=UTC", NULL};
  static const char *shim_env[] = {"LC_ALL=C", "TZ=UTC", "SIMALLOC_STATS=1", NULL};
  sp_result res[2];
  for (int k = 0; k < 2; k++) {
    char *dir = temp_dir();
    const char *args[32];
    size_t n = 0;
    for (; argv[n] && n < 31; n++)
      args[n] = strcmp(argv[n], "@DIR@") == 0 ? dir : argv[n];
    args[n] = NULL;
    sp_opts o = {.preload = k ? SP_PRELOAD : SP_PLAIN, .env = k ? shim_env : plain_env,
                 .timeout_s = timeout_s, .dir = dir};
    res[k] = sp_run(args, &o);
    remove_dir(dir);
    free(dir);
  }
  sp_result *plain = &res[0], *shim = &res[1];
  cr_assert(plain->exited, "%s (plain) %s; stderr:\n%.2000s", argv[0], sp_describe(plain),
            plain->err);
  cr_assert(shim->exited && shim->code == plain->code,
            "%s: plain run exited %d, preloaded run %s; stderr:\n%.4000s", argv[0], plain->code,
            sp_describe(shim), shim->err);
  cr_assert_gt(plain->out_len, 0, "%s printed nothing; stderr:\n%.2000s", argv[0], plain->err);
  if (plain->out_len != shim->out_len || memcmp(plain->out, shim->out, plain->out_len) != 0) {
    size_t i = 0;
    while (i < plain->out_len && i < shim->out_len && plain->out[i] == shim->out[i])
      i++;
    cr_assert_fail("%s: stdout differs (%zu vs %zu bytes) from byte %zu:\nplain:  %.200s\n"
                   "shimmed: %.200s",
                   argv[0], plain->out_len, shim->out_len, i, plain->out + i, shim->out + i);
  }
  if (proof == PROOF_SUMMARY)
    cr_assert_not_null(strstr(shim->err, "simalloc: peak used"),
                       "%s: no simalloc summary on stderr, so the library did not serve it:\n"
                       "%.2000s",
                       argv[0], shim->err);
  sp_free(plain);
  sp_free(shim);
}

/* A pseudo-random stream for the generated inputs (64-bit LCG). */
static unsigned long long next_rand(unsigned long long *x) {
  return *x = *x * 6364136223846793005ull + 1442695040888963407ull;
}

/* Creates file name in dir, written by fill; returns the path. */
static char *make_file(const char *dir, const char *name, void (*fill)(FILE *)) {
  char *path = NULL;
  cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "cannot create %s", path);
  fill(f);
  cr_assert_eq(fclose(f), 0, "cannot write %s", path);
  return path;
}

/* ---- the programs ---------------------------------------------------------- */

Test(programs, python3_stdlib_threads_and_pool, .timeout = 300) {
  need("python3", "python3");
  /* Debian's interpreter when there is one, not a version-manager shim */
  const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  char *script = data("workload.py");
  const char *argv[] = {py, script, NULL};
  same_output(argv, PROOF_SUMMARY, 240);
  free(script);
}

Test(programs, git_commits_log_gc_fsck, .timeout = 300) {
  need("git", "git");
  char *script = data("git.sh");
  const char *argv[] = {"sh", script, "@DIR@", NULL};
  same_output(argv, PROOF_SUMMARY, 240);
  free(script);
}

/* SQL that builds two tables of 10k and 1k rows, indexes them and runs
 * aggregate and join queries. */
static void sqlite_script(FILE *f) {
  fputs("CREATE TABLE item(id INTEGER PRIMARY KEY, cat INTEGER, name TEXT, price REAL);\n"
        "CREATE TABLE cat(id INTEGER PRIMARY KEY, label TEXT);\nBEGIN;\n",
        f);
  unsigned long long x = 42;
  for (int i = 1; i <= 10000; i++) {
    next_rand(&x);
    fprintf(f, "INSERT INTO item VALUES(%d, %llu, 'item-%llx-%d', %llu.%02llu);\n", i,
            (x >> 33) % 1000, x >> 40, i, (x >> 20) % 1000, (x >> 10) % 100);
  }
  for (int i = 0; i < 1000; i++)
    fprintf(f, "INSERT INTO cat VALUES(%d, 'category %03d');\n", i, (i * 37) % 1000);
  fputs("COMMIT;\nCREATE INDEX item_cat ON item(cat);\n"
        "SELECT count(*), sum(price), min(name), max(name) FROM item;\n"
        "SELECT cat, count(*), round(avg(price), 3) FROM item GROUP BY cat "
        "ORDER BY count(*) DESC, cat LIMIT 15;\n"
        "SELECT c.label, count(i.id), round(sum(i.price), 2) FROM cat c JOIN item i ON "
        "i.cat = c.id GROUP BY c.label HAVING count(i.id) > 12 ORDER BY c.label;\n"
        "SELECT group_concat(name, '|') FROM (SELECT name FROM item WHERE id % 97 = 0 "
        "ORDER BY name);\n"
        "UPDATE item SET price = price * 2 WHERE cat < 500;\nDELETE FROM item WHERE id % 3 = 0;\n"
        "VACUUM;\nSELECT count(*), round(sum(price), 2) FROM item;\n"
        "PRAGMA integrity_check;\n",
        f);
}

Test(programs, sqlite3_inserts_and_aggregates, .timeout = 300) {
  need("sqlite3", "sqlite3");
  char *dir = temp_dir();
  char *file = make_file(dir, "load.sql", sqlite_script);
  char *read_cmd = NULL;
  cr_assert(asprintf(&read_cmd, ".read %s", file) > 0);
  const char *argv[] = {"sqlite3", ":memory:", read_cmd, NULL};
  same_output(argv, PROOF_SUMMARY, 240);
  remove_dir(dir);
  free(read_cmd);
  free(file);
  free(dir);
}

Test(programs, perl_hashes_and_regexes, .timeout = 300) {
  need("perl", "perl");
  char *script = data("words.pl");
  const char *argv[] = {"perl", script, NULL};
  same_output(argv, PROOF_SUMMARY, 240);
  free(script);
}

/* 100k lines of numbers and words, with many duplicates. */
static void sort_input(FILE *f) {
  unsigned long long x = 7;
  for (int i = 0; i < 100000; i++) {
    next_rand(&x);
    fprintf(f, "%llu word%llu %d\n", (x >> 40) % 50000, (x >> 20) % 300, i % 17);
  }
}

Test(programs, sort_numeric_and_unique, .timeout = 300) {
  need("sort", "coreutils");
  char *dir = temp_dir();
  char *file = make_file(dir, "lines.txt", sort_input);
  /* coreutils close stdout and stderr through an atexit handler, so the
   * summary cannot appear; equal output is the check here */
  const char *numeric[] = {"sort", "-n", "-s", file, NULL};
  const char *unique[] = {"sort", "-u", file, NULL};
  const char *parallel[] = {"sort", "-k2,2", "-k1,1n", "-s", "--parallel=4", "-S", "256K",
                            "-T", "@DIR@", file, NULL};
  same_output(numeric, PROOF_NONE, 120);
  same_output(unique, PROOF_NONE, 120);
  same_output(parallel, PROOF_NONE, 120);
  remove_dir(dir);
  free(file);
  free(dir);
}

Test(programs, xz_compress_and_decompress, .timeout = 300) {
  need("xz", "xz-utils");
  char *script = data("xz.sh");
  const char *argv[] = {"sh", script, "@DIR@", NULL};
  same_output(argv, PROOF_SUMMARY, 240);
  free(script);
}
