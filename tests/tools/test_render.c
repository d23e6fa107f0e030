/* test_render.c - the heap bar, its labels, the emitter's two backends and
 * the small formatting helpers. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "json_check.h"
#include "render.h"

#define U SIMALLOC_SNAP_USED
#define F SIMALLOC_SNAP_FREE
#define C SIMALLOC_SNAP_CACHED

static snap_view view_of(const test_block *b, size_t n, uint64_t cell) {
  test_image img;
  snap_view v;
  snap_error err;
  cr_assert_eq(image_build(&img, b, n, cell, 0), 0);
  cr_assert_eq(snap_view_from_bytes(&v, img.buf, img.len, &err), SNAP_OK, "%s", err.msg);
  image_free(&img);
  return v;
}

/* The glyph string of the bar over [start, end) in n cells. */
static char *glyphs_of(const snap_view *v, uint64_t start, uint64_t end, int n,
                       int *from_blocks) {
  bar_cell *cells = calloc((size_t)n, sizeof *cells);
  char *g = malloc((size_t)n + 1);
  int fb = bar_fill(v, start, end, cells, n);
  if (from_blocks)
    *from_blocks = fb;
  bar_glyphs(cells, n, start, end, g);
  free(cells);
  return g;
}

static size_t count_char(const char *s, char c) {
  size_t n = 0;
  for (; *s; s++)
    n += *s == c;
  return n;
}

/* Renders v with o into a string. */
static char *render_to_string(const snap_view *v, const render_opts *o, emit_mode m,
                              int colour) {
  FILE *f = tmpfile();
  emitter e;
  cr_assert_not_null(f);
  emit_init(&e, f, m, colour);
  render_report(v, &e, o);
  long len = ftell(f);
  char *buf = malloc((size_t)len + 1);
  rewind(f);
  cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
  buf[len] = '\0';
  fclose(f);
  return buf;
}

/* The line of text that follows the line starting with prefix. */
static char *line_after(const char *text, const char *prefix) {
  const char *p = strstr(text, prefix);
  cr_assert_not_null(p, "no line '%s' in:\n%s", prefix, text);
  p = strchr(p, '\n') + 1;
  return strndup(p, strcspn(p, "\n"));
}

Test(bar, halves_are_exact) {
  test_block b[] = {{512, U}, {512, F}};
  snap_view v = view_of(b, 2, 64);
  char *g = glyphs_of(&v, 0, 1024, 10, NULL);
  cr_assert_str_eq(g, "#####.....");
  free(g);
  g = glyphs_of(&v, 0, 1024, 1024, NULL);
  cr_assert_eq(count_char(g, '#'), 512);
  cr_assert_eq(strspn(g, "#"), 512, "used bytes come first");
  free(g);
  snap_view_free(&v);
}

Test(bar, fine_grain_mix_is_proportional) {
  test_block b[128];
  for (int i = 0; i < 128; i += 2) {
    b[i] = (test_block){48, U};
    b[i + 1] = (test_block){16, F};
  }
  snap_view v = view_of(b, 128, 256);
  for (int n = 4; n <= 64; n *= 2) {
    char *g = glyphs_of(&v, 0, 64 * 64, n, NULL);
    cr_assert_eq(count_char(g, '#'), (size_t)(3 * n / 4), "width %d: %s", n, g);
    cr_assert_eq(count_char(g, '.'), (size_t)(n / 4), "width %d: %s", n, g);
    free(g);
  }
  snap_view_free(&v);
}

Test(bar, cached_and_order) {
  test_block b[] = {{256, F}, {256, C}, {512, U}};
  snap_view v = view_of(b, 3, 64);
  char *g = glyphs_of(&v, 0, 1024, 8, NULL);
  cr_assert_str_eq(g, "..++####");
  free(g);
  snap_view_free(&v);
}

Test(bar, range_zooms_exactly) {
  test_block b[] = {{512, U}, {512, F}, {1024, U}};
  snap_view v = view_of(b, 3, 512);
  char *g = glyphs_of(&v, 256, 768, 8, NULL);
  cr_assert_str_eq(g, "####....");
  free(g);
  g = glyphs_of(&v, 512, 1024, 5, NULL);
  cr_assert_str_eq(g, ".....");
  free(g);
  /* a range past the last block draws nothing */
  g = glyphs_of(&v, 2048, 4096, 4, NULL);
  cr_assert_str_eq(g, "    ");
  free(g);
  snap_view_free(&v);
}

Test(bar, map_when_block_list_is_cut) {
  test_block b[] = {{1024, U}, {1024, F}, {2048, U}};
  test_image img;
  snap_view v;
  int from_blocks;
  cr_assert_eq(image_build(&img, b, 3, 512, 0), 0);
  img.h->block_count = 1;          /* list cut after one block */
  img.h->flags |= SIMALLOC_SNAP_F_TRUNCATED;
  cr_assert_eq(snap_view_from_bytes(&v, img.buf, img.len, NULL), SNAP_OK);
  char *g = glyphs_of(&v, 0, 4096, 8, &from_blocks);
  cr_assert_eq(from_blocks, 0);
  cr_assert_str_eq(g, "##..####");
  free(g);
  snap_view_free(&v);
  image_free(&img);
}

Test(bar, map_and_blocks_agree) {
  test_block b[] = {{96, U}, {160, F}, {256, U}, {64, F}, {448, U}};
  snap_view v = view_of(b, 5, 32);
  char *from_blocks = glyphs_of(&v, 0, 1024, 16, NULL);
  ((simalloc_snap_header *)v.buf)->block_count = 0;   /* force the map */
  int fb;
  char *from_map = glyphs_of(&v, 0, 1024, 16, &fb);
  cr_assert_eq(fb, 0);
  cr_assert_str_eq(from_map, from_blocks);
  free(from_blocks);
  free(from_map);
  snap_view_free(&v);
}

Test(bar, map_lists_heaps_one_after_another) {
  /* heap 0 at [0, 1024) all used, heap 1 at [4096, 5120) all free; the map
   * holds them back to back: 2048 bytes in cells of 512 */
  test_block b[] = {{1024, U}, {1024, F}};
  test_image img;
  snap_view v;
  int from_blocks;
  cr_assert_eq(image_build(&img, b, 2, 512, 8192), 0);
  simalloc_snap_header *h = img.h;
  h->heap_count = 2;
  h->heaps[0] = (simalloc_snap_heap){0, 1024, 0, 1024, 0, 0};
  h->heaps[1] = (simalloc_snap_heap){4096, 5120, 1024, 0, 1024, 0};
  h->block_count = 0;              /* only the map */
  h->flags |= SIMALLOC_SNAP_F_TRUNCATED;
  cr_assert_eq(snap_view_from_bytes(&v, img.buf, img.len, NULL), SNAP_OK);
  char *g = glyphs_of(&v, 0, 5120, 10, &from_blocks);
  cr_assert_eq(from_blocks, 0);
  cr_assert_str_eq(g, "##      ..");
  free(g);

  /* by default the bar draws the heaps end to end, without the gap */
  cr_assert_eq(heaps_length(&v), 2048);
  cr_assert_eq(heaps_offset_of(&v, 1023), 1023);
  cr_assert_eq(heaps_offset_of(&v, 1024), 4096);
  cr_assert_eq(heaps_offset_of(&v, 2048), 5120);
  render_opts o = {.bar = 1, .ascii = 1, .width = 10};
  char *text = render_to_string(&v, &o, EMIT_JSON, 0);
  cr_assert_not_null(strstr(text, "\"layout\": \"heaps\",\n    \"start\": 0,\n    \"end\": 5120"),
                     "%s", text);
  cr_assert_not_null(strstr(text, "\"glyphs\": \"#####.....\""), "%s", text);
  free(text);
  o.width = 40;
  text = render_to_string(&v, &o, EMIT_TEXT, 0);
  cr_assert_not_null(strstr(text, "\n0       512       4K       4.5K       5K\n"),
                     "labels are arena offsets: %s", text);
  free(text);
  snap_view_free(&v);

  h->heaps[1].map_start = UINT64_MAX - 16;
  cr_assert_eq(snap_view_from_bytes(&v, img.buf, img.len, NULL), SNAP_ECORRUPT);
  image_free(&img);
}

Test(bar, cells_for_width) {
  cr_assert_eq(bar_cells_for_width(80, 1), 80);
  cr_assert_eq(bar_cells_for_width(80, 0), 40, "emoji are two columns wide");
  cr_assert_eq(bar_cells_for_width(81, 0), 40);
  cr_assert_eq(bar_cells_for_width(1, 0), 1);
}

Test(labels, start_quarters_end) {
  char out[128];
  bar_labels(0, 1024, 40, out, sizeof out);
  cr_assert(strncmp(out, "0 ", 2) == 0, "'%s'", out);
  cr_assert_eq(strlen(out), 40, "the end label ends under the last column: '%s'", out);
  cr_assert_str_eq(out + 38, "1K");
  cr_assert_not_null(strstr(out, "256"), "'%s'", out);
  cr_assert_not_null(strstr(out, "512"), "'%s'", out);
  cr_assert_not_null(strstr(out, "768"), "'%s'", out);
  const char *mid = strstr(out, "512");
  cr_assert(mid - out >= 17 && mid - out <= 19, "512 centred: '%s'", out);
}

Test(labels, absolute_offsets_of_a_range) {
  char out[128];
  bar_labels(1 << 20, 2 << 20, 60, out, sizeof out);
  cr_assert(strncmp(out, "1M ", 3) == 0, "'%s'", out);
  cr_assert_not_null(strstr(out, "1.5M"), "'%s'", out);
  cr_assert_str_eq(out + strlen(out) - 2, "2M");
}

Test(labels, narrow_bars_drop_labels_without_overlap) {
  char out[64];
  bar_labels(0, 1 << 30, 8, out, sizeof out);
  cr_assert_leq(strlen(out), 8);
  cr_assert(strncmp(out, "0", 1) == 0, "'%s'", out);
  cr_assert_str_eq(out + strlen(out) - 2, "1G", "'%s'", out);
  cr_assert_null(strstr(out, "256M"), "no room for the quarters: '%s'", out);
}

Test(report, ascii_bar_fills_the_width) {
  test_block b[] = {{2048, U}, {2048, F}};
  snap_view v = view_of(b, 2, 256);
  render_opts o = {.bar = 1, .ascii = 1, .width = 40};
  char *text = render_to_string(&v, &o, EMIT_TEXT, 0);
  char *bar = line_after(text, "  drawn from");
  cr_assert_str_eq(bar, "####################....................");
  char *labels = line_after(text, "####");
  cr_assert_eq(strlen(labels), 40, "'%s'", labels);
  cr_assert_not_null(strstr(text, "# used  . free  + cached"));
  cr_assert_null(strchr(text, '\033'), "no colour unless asked");
  free(labels);
  free(bar);
  free(text);
  snap_view_free(&v);
}

Test(report, emoji_bar_is_half_as_many_glyphs) {
  test_block b[] = {{2048, U}, {2048, F}};
  snap_view v = view_of(b, 2, 256);
  render_opts o = {.bar = 1, .ascii = 0, .width = 40};
  char *text = render_to_string(&v, &o, EMIT_TEXT, 0);
  char *bar = line_after(text, "  drawn from");
  cr_assert_eq(count_substr(bar, "\U0001F7E5"), 10, "'%s'", bar);
  cr_assert_eq(count_substr(bar, "\U0001F7E9"), 10, "'%s'", bar);
  cr_assert_eq(strlen(bar), 20 * 4);
  free(bar);
  free(text);
  snap_view_free(&v);
}

Test(report, colour_only_when_asked) {
  test_block b[] = {{2048, U}, {2048, F}};
  snap_view v = view_of(b, 2, 256);
  render_opts o = {.bar = 1, .ascii = 1, .width = 20};
  char *text = render_to_string(&v, &o, EMIT_TEXT, 1);
  cr_assert_not_null(strstr(text, "\033[31m#"));
  cr_assert_not_null(strstr(text, "\033[32m."));
  free(text);
  text = render_to_string(&v, &o, EMIT_JSON, 1);
  cr_assert_null(strchr(text, '\033'), "JSON never has colour");
  free(text);
  snap_view_free(&v);
}

Test(report, colour_rules) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  unsetenv("NO_COLOR");
  cr_assert_eq(render_colour_ok(p[1]), 0, "a pipe is not a terminal");
  setenv("NO_COLOR", "1", 1);
  cr_assert_eq(render_colour_ok(p[1]), 0);
  close(p[0]);
  close(p[1]);
}

Test(report, locale_decides_ascii) {
  cr_assert_not_null(setlocale(LC_ALL, "C"));
  cr_assert_eq(render_locale_utf8(), 0);
  if (setlocale(LC_ALL, "C.UTF-8") == NULL)
    cr_skip_test("the C.UTF-8 locale is not installed");
  cr_assert_eq(render_locale_utf8(), 1);
}

Test(json, full_report_is_valid_and_complete) {
  test_block b[] = {{64, U}, {128, F}, {32, C}, {256, U}};
  snap_view v = view_of(b, 4, 64);
  render_opts o = {.identity = 1, .status = 1, .bar = 1, .blocks = 1, .width = 30, .ascii = 1};
  char *js = render_to_string(&v, &o, EMIT_JSON, 0);
  uint64_t x;
  cr_assert(json_valid(js, strlen(js)), "invalid JSON:\n%s", js);
  static const char *keys[] = {"\"pid\": ", "\"exe\": ", "\"arena\": ", "\"base\": ",
                               "\"size\": ", "\"touched\": ", "\"used_bytes\": ",
                               "\"free_bytes\": ", "\"blocks_used\": ", "\"blocks_free\": ",
                               "\"largest_free\": ", "\"fragmentation\": ",
                               "\"rss_bytes\": ", "\"blocks\": ", "\"truncated\": "};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    cr_assert_not_null(strstr(js, keys[i]), "missing %s", keys[i]);
  cr_assert_eq(json_u64(js, "used_bytes", &x), 0);
  cr_assert_eq(x, 320);
  cr_assert_eq(json_u64(js, "blocks_free", &x), 0);
  cr_assert_eq(x, 1);
  cr_assert_eq(count_substr(js, "\"state\": \"used\""), 2);
  cr_assert_eq(count_substr(js, "\"state\": \"free\""), 1);
  cr_assert_eq(count_substr(js, "\"state\": \"cached\""), 1);
  cr_assert_not_null(strstr(js, "{\"offset\": 192, \"size\": 32, \"state\": \"cached\"}"));
  cr_assert_not_null(strstr(js, "\"truncated\": false"));
  cr_assert_not_null(strstr(js, "\"glyphs\": \""), "the bar travels as data");
  free(js);
  snap_view_free(&v);
}

Test(json, text_and_json_agree) {
  test_block b[] = {{4096, U}, {8192, F}, {1024, U}};
  snap_view v = view_of(b, 3, 1024);
  render_opts o = {.identity = 1, .status = 1, .width = 30, .ascii = 1};
  char *js = render_to_string(&v, &o, EMIT_JSON, 0);
  char *text = render_to_string(&v, &o, EMIT_TEXT, 0);
  static const char *pairs[][2] = {{"used_bytes", "used "},
                                   {"free_bytes", "free "},
                                   {"largest_free", "largest free block "}};
  for (size_t i = 0; i < 3; i++) {
    uint64_t x;
    char want[64];
    cr_assert_eq(json_u64(js, pairs[i][0], &x), 0);
    snprintf(want, sizeof want, "(%llu)", (unsigned long long)x);
    const char *line = strstr(text, pairs[i][1]);
    cr_assert_not_null(line);
    cr_assert(strncmp(strstr(line, "("), want, strlen(want)) == 0, "%s vs %s", line, want);
  }
  cr_assert_not_null(strstr(text, "fragmentation          0.0%"), "%s", text);
  free(js);
  free(text);
  snap_view_free(&v);
}

Test(json, limit_and_strange_names) {
  test_block b[] = {{64, U}, {64, F}, {64, U}, {64, F}, {64, U}};
  test_image img;
  snap_view v;
  cr_assert_eq(image_build(&img, b, 5, 64, 0), 0);
  strcpy(img.h->exe, "/tmp/a \"quoted\"\\\n\t\x01\xff\xc3\xa9 name");
  cr_assert_eq(snap_view_from_bytes(&v, img.buf, img.len, NULL), SNAP_OK);
  render_opts o = {.identity = 1, .blocks = 1, .limit = 2};
  char *js = render_to_string(&v, &o, EMIT_JSON, 0);
  uint64_t x;
  cr_assert(json_valid(js, strlen(js)), "invalid JSON:\n%s", js);
  cr_assert_not_null(strstr(js, "\\\"quoted\\\"\\\\\\u000a\\u0009\\u0001\\ufffd\xc3\xa9 name"),
                     "%s", js);
  cr_assert_eq(count_substr(js, "\"offset\": "), 2);
  cr_assert_eq(json_u64(js, "blocks_listed", &x), 0);
  cr_assert_eq(x, 2);
  free(js);
  snap_view_free(&v);
  image_free(&img);
}

Test(json, checker_rejects_bad_documents) {
  static const char *bad[] = {"{", "{\"a\" 1}", "[1,]", "{\"a\": 01}", "\"\x01\"", "tru", "{} {}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_not(json_valid(bad[i], strlen(bad[i])), "accepted %s", bad[i]);
  const char *good = "{\"a\": [1, -2.5e3, true, null, \"\\u00e9\"], \"b\": {}}";
  cr_assert(json_valid(good, strlen(good)));
}

Test(format, words_keep_the_columns_after_them_aligned) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  emitter e;
  emit_init(&e, f, EMIT_TEXT, 0);
  emit_begin(&e);
  emit_list(&e, "blocks", "blocks", NULL);
  static const char *const states[] = {"used", "cached", "free"};
  for (int i = 0; i < 3; i++) {
    emit_row(&e);
    emit_u64(&e, "size", NULL, 48, EF_BYTES);
    emit_str(&e, "state", NULL, states[i], EF_WORD);
    emit_u64(&e, "site", NULL, 7, EF_PLAIN);
    emit_row_end(&e);
  }
  emit_list_end(&e);
  emit_end(&e);
  fclose(f);
  /* Every row ends with the site, in the same column, and no row ends in
   * a space. */
  int end = -1, rows = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (!strstr(line, "48")) continue;
    int n = (int)strlen(line);
    cr_assert_eq(line[n - 1], '7', "row: [%s]", line);
    if (end < 0) end = n;
    cr_assert_eq(n, end, "row: [%s]", line);
    rows++;
  }
  cr_assert_eq(rows, 3);
  free(text);
}

Test(format, parse_size) {
  uint64_t v;
  cr_assert_eq(parse_size("4096", &v), 0);
  cr_assert_eq(v, 4096);
  cr_assert_eq(parse_size("0x1F0", &v), 0);
  cr_assert_eq(v, 0x1f0);
  cr_assert_eq(parse_size("4K", &v), 0);
  cr_assert_eq(v, 4096);
  cr_assert_eq(parse_size("3M", &v), 0);
  cr_assert_eq(v, 3u << 20);
  cr_assert_eq(parse_size("2GiB", &v), 0);
  cr_assert_eq(v, (uint64_t)2 << 30);
  cr_assert_eq(parse_size("010", &v), 0);
  cr_assert_eq(v, 10, "a leading zero is not octal");
  static const char *bad[] = {"", "-1", "+5", " 5", "12abc", "K", "0x", "99999999999999G",
                              "184467440737095516160"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(parse_size(bad[i], &v), -1, "accepted '%s'", bad[i]);
}

Test(format, sizes) {
  char b[32];
  fmt_size_short(b, sizeof b, 0);
  cr_assert_str_eq(b, "0");
  fmt_size_short(b, sizeof b, 1000);
  cr_assert_str_eq(b, "1000");
  fmt_size_short(b, sizeof b, 1536);
  cr_assert_str_eq(b, "1.5K");
  fmt_size_short(b, sizeof b, (uint64_t)64 << 20);
  cr_assert_str_eq(b, "64M");
  fmt_size_human(b, sizeof b, 512);
  cr_assert_str_eq(b, "512 B");
  fmt_size_human(b, sizeof b, 3 << 20);
  cr_assert_str_eq(b, "3.0 MiB");
}

Test(format, sparkline) {
  uint64_t rising[8] = {0, 1, 2, 3, 4, 5, 6, 7}, flat[4] = {9, 9, 9, 9};
  char out[128];
  sparkline(rising, 8, 80, 0, out, sizeof out);
  cr_assert_str_eq(out, "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588");
  sparkline(rising, 8, 3, 1, out, sizeof out);
  cr_assert_str_eq(out, "_~#", "only the newest values fit, rescaled: '%s'", out);
  sparkline(flat, 4, 80, 1, out, sizeof out);
  cr_assert_str_eq(out, "~~~~");
  sparkline(rising, 8, 80, 0, out, 7);
  cr_assert_str_eq(out, "\u2581\u2582", "stops at the buffer size");
}
