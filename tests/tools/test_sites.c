/* test_sites.c - allocation sites end to end: a helper allocates from two
 * functions of known sizes under libsimalloc with SIMALLOC_SITES=all; the
 * dump must name both functions, with their exact live bytes, the larger
 * first; SIMALLOC_LEAKS must report the same at exit.  Blocks that realloc
 * moved belong to the realloc's site, and their first site holds them no
 * more. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_check.h"
#include "spawn.h"

/* What sites_helper.c allocates and keeps (block bytes, headers included). */
#define BIG_BYTES (20 * 4096)
#define BIG_BLOCKS 20
#define SMALL_BYTES (30 * 1008)
#define SMALL_BLOCKS 30
#define MOVED_BLOCKS 3     /* 8192-byte blocks grown to 16384 bytes */
#define MOVED_BYTES (MOVED_BLOCKS * 16384)

/* Starts the helper under SIMALLOC_SITES=all; its pid as text in pid. */
static void start_helper(sp_child *c, char pid[32]) {
  const char *argv[] = {sp_env("SIMALLOC_SITES_HELPER"), NULL};
  setenv("SIMALLOC_SITES", "all", 1);  /* reaches the helper, not the runner's allocator */
  sp_start_ready(c, argv, &(sp_opts){.preload = SP_PRELOAD});
  snprintf(pid, 32, "%d", (int)c->pid);
}

/* Tells the helper to leave; it must exit with 0. */
static void stop_helper(sp_child *c) {
  sp_send(c, "bye\n");
  cr_assert_eq(sp_wait(c), 0);
}

static sp_result dump(const char *a1, const char *a2, const char *a3) {
  const char *argv[] = {sp_env("SIMALLOC_DUMP"), a1, a2, a3, NULL};
  sp_result r = sp_run(argv, NULL);
  cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
  return r;
}

typedef struct site_row {
  unsigned id;
  unsigned long long live_bytes, live_blocks;
  const char *at;     /* where the row starts in the document */
} site_row;

/* The row of the sites list whose "where" names function fn. */
static site_row find_site(const char *js, const char *fn) {
  char needle[128];
  site_row r = {0};
  const char *list = strstr(js, "\"sites\": [");
  cr_assert_not_null(list, "no sites list in:\n%.600s", js);
  snprintf(needle, sizeof needle, "\"where\": \"%s (", fn);
  const char *w = strstr(list, needle);
  cr_assert_not_null(w, "no site in %s in:\n%.3000s", fn, list);
  for (const char *p = list; (p = strstr(p, "{\"id\": ")) != NULL && p < w; p++)
    r.at = p;
  cr_assert_not_null(r.at);
  cr_assert_eq(sscanf(r.at, "{\"id\": %u, \"live_bytes\": %llu, \"live_blocks\": %llu", &r.id,
                      &r.live_bytes, &r.live_blocks), 3, "row: %.200s", r.at);
  return r;
}

Test(sites, both_functions_by_name_with_exact_live_bytes) {
  sp_child c;
  char pid[32];
  start_helper(&c, pid);

  sp_result r = dump("--json", pid, NULL);
  cr_assert(json_valid(r.out, strlen(r.out)), "invalid JSON:\n%.2000s", r.out);
  site_row big = find_site(r.out, "hold_big"), small = find_site(r.out, "hold_small");
  cr_assert_eq(big.live_bytes, BIG_BYTES);
  cr_assert_eq(big.live_blocks, BIG_BLOCKS);
  cr_assert_eq(small.live_bytes, SMALL_BYTES);
  cr_assert_eq(small.live_blocks, SMALL_BLOCKS);
  cr_assert_lt(big.at, small.at, "the larger site comes first");
  cr_assert_neq(big.id, small.id);
  cr_assert(strstr(r.out, "\"sites_mode\": \"all\""));
  sp_free(&r);

  /* The text report says the same, in the same order. */
  r = dump("--sites", "5", pid);
  const char *tb = strstr(r.out, "hold_big ("), *ts = strstr(r.out, "hold_small (");
  cr_assert(tb && ts && tb < ts, "text:\n%s", r.out);
  char figures[64];
  snprintf(figures, sizeof figures, " %d ", BIG_BYTES);
  cr_assert(strstr(r.out, figures), "no %s in:\n%s", figures, r.out);
  sp_free(&r);

  /* --site ID: the whole stack, down to main. */
  char id[16];
  snprintf(id, sizeof id, "%u", big.id);
  r = dump("--site", id, pid);
  const char *f1 = strstr(r.out, "hold_big ("), *f2 = strstr(r.out, "main (");
  cr_assert(f1 && f2 && f1 < f2, "stack:\n%s", r.out);
  sp_free(&r);

  stop_helper(&c);
}

Test(sites, a_block_realloc_moves_belongs_to_the_realloc) {
  sp_child c;
  char pid[32];
  start_helper(&c, pid);
  sp_result r = dump("--json", pid, NULL);
  site_row grown = find_site(r.out, "grow_moved"), start = find_site(r.out, "start_moved");
  cr_assert_eq(grown.live_bytes, MOVED_BYTES);
  cr_assert_eq(grown.live_blocks, MOVED_BLOCKS);
  cr_assert_eq(start.live_bytes, 8192, "only the block that was not moved");
  cr_assert_eq(start.live_blocks, 1);
  sp_free(&r);
  stop_helper(&c);
}

Test(sites, blocks_name_their_site) {
  sp_child c;
  char pid[32];
  start_helper(&c, pid);
  sp_result r = dump("--json", pid, NULL);
  site_row big = find_site(r.out, "hold_big");
  char needle[64];
  snprintf(needle, sizeof needle, "\"size\": 4096, \"state\": \"used\", \"site\": %u}", big.id);
  cr_assert_eq(count_substr(r.out, needle), BIG_BLOCKS, "blocks of site %u", big.id);
  sp_free(&r);
  sp_wait(&c);
}

Test(sites, leaks_at_exit_largest_first) {
  const char *argv[] = {sp_env("SIMALLOC_SITES_HELPER"), NULL};
  const char *env[] = {"SIMALLOC_SITES=all", "SIMALLOC_LEAKS=1", NULL};
  sp_opts o = {.preload = SP_PRELOAD, .env = env};
  sp_result r = sp_run(argv, &o);
  cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
  const char *big = strstr(r.err, ": 80.0 KiB in 20 blocks\n");
  const char *small = strstr(r.err, ": 29.5 KiB in 30 blocks\n");
  cr_assert(big && small && big < small, "report:\n%s", r.err);
  cr_assert(strstr(big, "sites_helper+0x"), "frames as module+offset:\n%s", r.err);
  sp_free(&r);
}

Test(sites, off_records_nothing) {
  sp_child c;
  char pid[32];
  const char *argv[] = {sp_env("SIMALLOC_SITES_HELPER"), NULL};
  setenv("SIMALLOC_SITES", "off", 1);
  sp_start(&c, argv, &(sp_opts){.preload = SP_PRELOAD});
  free(sp_line(&c));
  snprintf(pid, sizeof pid, "%d", (int)c.pid);
  sp_result r = dump("--json", pid, NULL);
  cr_assert(strstr(r.out, "\"sites_mode\": \"off\""), "%.600s", r.out);
  cr_assert_null(strstr(r.out, "hold_big"));
  sp_free(&r);
  sp_wait(&c);
}
