/* render.c - the emitter (text and JSON backends) and the heap renderer.
 *
 * The renderer below the emitter never asks which backend it writes to:
 * whatever the status report says in text, the JSON says too.  The only
 * asymmetries are explicit: emit_raw() lines (the drawn bar) are text only,
 * EF_DATA values (the bar as a string) are JSON only.
 */
#define _GNU_SOURCE
#include "render.h"

#include <errno.h>
#include <langinfo.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define LABEL_WIDTH 22

static const char ANSI_BOLD[] = "\033[1m";
static const char ANSI_RESET[] = "\033[0m";

/* ---- emitter ------------------------------------------------------------ */

/* Output goes through the emitter's own buffer: a million-row block list is
 * mostly short strings, and stdio per call would dominate. */
static void e_flush(emitter *e) {
  if (e->len)
    fwrite(e->buf, 1, e->len, e->out);
  e->len = 0;
}

static void e_put(emitter *e, const char *s, size_t n) {
  if (e->len + n > sizeof e->buf) {
    e_flush(e);
    if (n > sizeof e->buf) {
      fwrite(s, 1, n, e->out);
      return;
    }
  }
  memcpy(e->buf + e->len, s, n);
  e->len += n;
}

static void e_putc(emitter *e, char c) {
  if (e->len == sizeof e->buf)
    e_flush(e);
  e->buf[e->len++] = c;
}

static void e_puts(emitter *e, const char *s) {
  e_put(e, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void e_printf(emitter *e, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n < sizeof tmp) {
    e_put(e, tmp, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (big == NULL)
    return;
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  e_put(e, big, (size_t)n);
  free(big);
}

void emit_init(emitter *e, FILE *out, emit_mode mode, int colour) {
  memset(e, 0, sizeof *e);
  e->out = out;
  e->mode = mode;
  e->colour = colour && mode == EMIT_TEXT;
}

static void json_string(emitter *e, const char *s);

static void indent(emitter *e, int depth) {
  for (int i = 0; i < depth; i++)
    e_puts(e, "  ");
}

/* JSON: the separator and key of the next member. */
static void json_member(emitter *e, const char *key) {
  if (e->items[e->depth]++ > 0)
    e_putc(e, ',');
  if (e->row) {
    if (e->items[e->depth] > 1)
      e_putc(e, ' ');
  } else {
    e_putc(e, '\n');
    indent(e, e->depth);
  }
  if (key) {   /* keys are the renderer's own literals: nothing to escape */
    e_putc(e, '"');
    e_puts(e, key);
    e_puts(e, "\": ");
  }
}

/* Writes v in decimal without the cost of printf. */
static void put_u64(emitter *e, uint64_t v) {
  char buf[24];
  int i = sizeof buf;
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  e_put(e, buf + i, sizeof buf - (size_t)i);
}

static void push(emitter *e) {
  if (e->depth + 1 < EMIT_MAX_DEPTH)
    e->depth++;
  e->items[e->depth] = 0;
}

static void pop(emitter *e) {
  if (e->depth > 0)
    e->depth--;
}

void emit_begin(emitter *e) {
  if (e->mode == EMIT_JSON)
    e_putc(e, '{');
  e->depth = 0;
  push(e);
}

void emit_end(emitter *e) {
  pop(e);
  if (e->mode == EMIT_JSON)
    e_puts(e, "\n}\n");
  e_flush(e);
  fflush(e->out);
}

static void heading(emitter *e, const char *title) {
  if (title == NULL)
    return;
  indent(e, e->depth - 1);
  e_printf(e, "%s%s:%s\n", e->colour ? ANSI_BOLD : "", title,
          e->colour ? ANSI_RESET : "");
}

void emit_object(emitter *e, const char *key, const char *title) {
  if (e->mode == EMIT_JSON) {
    json_member(e, key);
    e_putc(e, '{');
  } else {
    heading(e, title);
  }
  push(e);
}

void emit_object_end(emitter *e) {
  if (e->mode == EMIT_JSON) {
    e_putc(e, '\n');
    indent(e, e->depth - 1);
    e_putc(e, '}');
  }
  pop(e);
}

void emit_list(emitter *e, const char *key, const char *title, const char *columns) {
  if (e->mode == EMIT_JSON) {
    json_member(e, key);
    e_putc(e, '[');
  } else {
    heading(e, title);
    if (columns) {
      indent(e, e->depth);
      e_printf(e, "%s\n", columns);
    }
  }
  push(e);
}

void emit_list_end(emitter *e) {
  if (e->mode == EMIT_JSON) {
    if (e->items[e->depth] > 0) {
      e_putc(e, '\n');
      indent(e, e->depth - 1);
    }
    e_putc(e, ']');
  }
  pop(e);
}

void emit_row(emitter *e) {
  if (e->mode == EMIT_JSON) {
    json_member(e, NULL);
    e_putc(e, '{');
  } else {
    indent(e, e->depth - 1);
  }
  push(e);
  e->row = 1;
}

void emit_row_end(emitter *e) {
  e->row = 0;
  e->owed = 0;
  if (e->mode == EMIT_JSON)
    e_putc(e, '}');
  else
    e_putc(e, '\n');
  pop(e);
}

/* What a row column holds: numbers are right-aligned in 14 columns, words
 * (EF_WORD) take EMIT_WORD_WIDTH, other text what it needs. */
enum { COL_NUMBER, COL_TEXT, COL_WORD };

/* Text: one "label value" line, or one column of a row. */
static void text_value(emitter *e, const char *label, const char *value, int col) {
  if (e->row) {   /* without printf */
    static const char spaces[] = "              ";
    size_t len = strlen(value);
    if (e->items[e->depth]++ > 0)
      e_put(e, "  ", 2);
    e_put(e, spaces, (size_t)e->owed);  /* a short word's padding: never at a line's end */
    e->owed = 0;
    if (col == COL_NUMBER && len < 14)
      e_put(e, spaces, 14 - len);
    e_put(e, value, len);
    if (col == COL_WORD && len < EMIT_WORD_WIDTH)
      e->owed = EMIT_WORD_WIDTH - (int)len;
    return;
  }
  indent(e, e->depth - 1);
  int pad = LABEL_WIDTH - 2 * (e->depth - 1);
  e_printf(e, "%-*s %s\n", pad > 0 ? pad : 0, label ? label : "", value);
}

/* v in decimal, or in hexadecimal with 0x; buf holds at least 24 bytes. */
static void u64_text(char *buf, uint64_t v, unsigned base) {
  char tmp[24];
  int i = sizeof tmp, o = 0;
  do {
    tmp[--i] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  if (base == 16)
    buf[o++] = '0', buf[o++] = 'x';
  memcpy(buf + o, tmp + i, sizeof tmp - (size_t)i);
  buf[o + (int)sizeof tmp - i] = '\0';
}

void emit_u64(emitter *e, const char *key, const char *label, uint64_t v, int fmt) {
  char buf[64], human[32];

  if (e->mode == EMIT_JSON) {
    json_member(e, key);
    put_u64(e, v);
    return;
  }
  if (fmt & EF_DATA)
    return;
  switch (fmt) {
  case EF_OFFSET:
    u64_text(buf, v, 16);
    break;
  case EF_BYTES:
    if (v >= 1024 && !e->row) {
      fmt_size_human(human, sizeof human, v);
      snprintf(buf, sizeof buf, "%s (%llu)", human, (unsigned long long)v);
    } else {
      u64_text(buf, v, 10);
      if (!e->row)
        strcat(buf, " B");
    }
    break;
  default:
    u64_text(buf, v, 10);
  }
  text_value(e, label, buf, COL_NUMBER);
}

void emit_i64(emitter *e, const char *key, const char *label, int64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)v);
  if (e->mode == EMIT_JSON) {
    json_member(e, key);
    e_puts(e, buf);
  } else {
    text_value(e, label, buf, COL_NUMBER);
  }
}

void emit_double(emitter *e, const char *key, const char *label, double v, int fmt) {
  char buf[64];
  if (e->mode == EMIT_JSON) {
    json_member(e, key);
    e_printf(e, "%.6f", v);
    return;
  }
  if (fmt & EF_DATA)
    return;
  if (fmt == EF_PERCENT)
    snprintf(buf, sizeof buf, "%.1f%%", v * 100.0);
  else
    snprintf(buf, sizeof buf, "%g", v);
  text_value(e, label, buf, COL_NUMBER);
}

void emit_str(emitter *e, const char *key, const char *label, const char *s, int fmt) {
  if (e->mode == EMIT_JSON) {
    json_member(e, key);
    json_string(e, s);
    return;
  }
  if (fmt & EF_DATA)
    return;
  text_value(e, label, s, fmt == EF_WORD ? COL_WORD : COL_TEXT);
}

void emit_bool(emitter *e, const char *key, const char *label, int b) {
  if (e->mode == EMIT_JSON) {
    json_member(e, key);
    e_puts(e, b ? "true" : "false");
  } else {
    text_value(e, label, b ? "yes" : "no", COL_TEXT);
  }
}

void emit_raw(emitter *e, const char *line) {
  if (e->mode == EMIT_TEXT) {
    e_puts(e, line);
    e_putc(e, '\n');
  }
}

/* Length of the valid UTF-8 sequence at s, or 0 if it is not valid. */
static int utf8_len(const unsigned char *s) {
  int n;
  uint32_t cp;
  if (s[0] < 0x80)
    return 1;
  if ((s[0] & 0xe0) == 0xc0) n = 2, cp = s[0] & 0x1f;
  else if ((s[0] & 0xf0) == 0xe0) n = 3, cp = s[0] & 0x0f;
  else if ((s[0] & 0xf8) == 0xf0) n = 4, cp = s[0] & 0x07;
  else return 0;
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3f);
  }
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

static void json_string(emitter *e, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  e_putc(e, '"');
  size_t plain = 0;   /* fast path: a run of printable ASCII */
  while (p[plain] >= 0x20 && p[plain] < 0x7f && p[plain] != '"' && p[plain] != '\\')
    plain++;
  e_put(e, (const char *)p, plain);
  p += plain;
  while (*p) {
    int n = utf8_len(p);
    if (n == 0) {
      e_puts(e, "\\ufffd");
      p++;
    } else if (*p == '"' || *p == '\\') {
      e_putc(e, '\\');
      e_putc(e, (char)*p++);
    } else if (*p < 0x20 || *p == 0x7f) {
      e_printf(e, "\\u%04x", *p++);
    } else {
      e_put(e, (const char *)p, (size_t)n);
      p += n;
    }
  }
  e_putc(e, '"');
}

void json_write_string(FILE *out, const char *s) {
  emitter e;
  emit_init(&e, out, EMIT_JSON, 0);
  json_string(&e, s);
  e_flush(&e);
}

/* ---- formatting helpers ----------------------------------------------- */

int parse_size(const char *s, uint64_t *out) {
  char *end;
  unsigned long long v;
  int shift = 0;

  if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
    return -1;
  errno = 0;
  v = strtoull(s, &end, (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10);
  if (errno != 0 || end == s)
    return -1;
  switch (*end) {
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  default: break;
  }
  if (*end == 'i' && shift)   /* "4Ki" is as good as "4K" */
    end++;
  if (*end == 'B' || *end == 'b')
    end++;
  if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
    return -1;
  *out = (uint64_t)v << shift;
  return 0;
}

void fmt_size_human(char *out, size_t outsz, uint64_t v) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double d = (double)v;
  int u = 0;
  while (d >= 1024.0 && u < 6) {
    d /= 1024.0;
    u++;
  }
  if (u == 0)
    snprintf(out, outsz, "%llu B", (unsigned long long)v);
  else
    snprintf(out, outsz, "%.1f %s", d, units[u]);
}

void fmt_size_short(char *out, size_t outsz, uint64_t v) {
  static const char units[] = "KMGTPE";
  double d = (double)v;
  int u = -1;
  while (d >= 1024.0 && u < 5) {
    d /= 1024.0;
    u++;
  }
  if (u < 0)
    snprintf(out, outsz, "%llu", (unsigned long long)v);
  else if (d < 10.0 && d != (double)(uint64_t)d)
    snprintf(out, outsz, "%.1f%c", d, units[u]);
  else
    snprintf(out, outsz, "%.0f%c", d, units[u]);
}

int render_locale_utf8(void) {
  const char *cs = nl_langinfo(CODESET);
  return cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
}

int render_colour_ok(int fd) {
  const char *nc = getenv("NO_COLOR");
  if (nc && nc[0] != '\0')
    return 0;
  return isatty(fd);
}

int render_term_width(int fd) {
  struct winsize ws;
  const char *env = getenv("COLUMNS");
  if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  if (env) {
    long c = strtol(env, NULL, 10);
    if (c > 0 && c < 10000)
      return (int)c;
  }
  return 80;
}

/* ---- the bar ------------------------------------------------------------ */

typedef unsigned __int128 u128;

/* Start of cell i of n over [start, start + span). */
static uint64_t cell_start(uint64_t start, uint64_t span, int n, int i) {
  return start + (uint64_t)((u128)span * (unsigned)i / (unsigned)n);
}

/* Index of the cell holding x (start <= x < start + span). */
static int cell_of(uint64_t x, uint64_t start, uint64_t span, int n) {
  int i = (int)((u128)(x - start) * (unsigned)n / span);
  while (i > 0 && cell_start(start, span, n, i) > x)
    i--;
  while (i + 1 < n && cell_start(start, span, n, i + 1) <= x)
    i++;
  return i;
}

static void cell_add(bar_cell *c, unsigned state, uint64_t bytes) {
  if (state == SIMALLOC_SNAP_USED)
    c->used += bytes;
  else if (state == SIMALLOC_SNAP_CACHED)
    c->cached += bytes;
  else
    c->free += bytes;
}

/* Adds [lo, hi) of one state, scaled by num/den, to the cells it overlaps. */
static void spread(bar_cell *cells, int n, uint64_t start, uint64_t end,
                   uint64_t lo, uint64_t hi, const uint64_t amount[3], uint64_t den) {
  uint64_t span = end - start;
  if (lo < start)
    lo = start;
  if (hi > end)
    hi = end;
  if (lo >= hi)
    return;
  for (int i = cell_of(lo, start, span, n); i < n; i++) {
    uint64_t cs = cell_start(start, span, n, i);
    uint64_t ce = i + 1 < n ? cell_start(start, span, n, i + 1) : end;
    if (cs >= hi)
      break;
    uint64_t part = (ce < hi ? ce : hi) - (cs > lo ? cs : lo);
    cells[i].used += (uint64_t)((u128)amount[0] * part / den);
    cells[i].free += (uint64_t)((u128)amount[1] * part / den);
    cells[i].cached += (uint64_t)((u128)amount[2] * part / den);
  }
}

/* Spreads the map cells covering heap hp over the bar.  The map lists the
 * heaps one after another: heap bytes [start, end) are map bytes
 * [map_start, map_start + end - start). */
static void map_heap(const snap_view *v, const simalloc_snap_heap *hp, uint64_t start,
                     uint64_t end, bar_cell *cells, int n) {
  uint64_t cb = v->h->map_cell_bytes, ms = hp->map_start, me = ms + (hp->end - hp->start);
  if (cb == 0 || v->h->map_cells == 0) return;  /* no map to draw from */
  for (uint64_t k = ms / cb; k < v->h->map_cells && k * cb < me; k++) {
    const simalloc_snap_cell *c = &v->map[k];
    uint64_t lo = k * cb > ms ? k * cb : ms, hi = k * cb + cb < me ? k * cb + cb : me;
    uint64_t amount[3] = {c->used, c->free, c->cached};
    spread(cells, n, start, end, hp->start + (lo - ms), hp->start + (hi - ms), amount, cb);
  }
}

int bar_fill(const snap_view *v, uint64_t start, uint64_t end, bar_cell *cells,
             int n) {
  const simalloc_snap_header *h = v->h;
  int from_blocks = h->block_count > 0 && h->block_count == h->block_total;

  memset(cells, 0, sizeof *cells * (size_t)n);
  if (n <= 0 || end <= start)
    return from_blocks;
  if (from_blocks) {
    for (uint64_t i = 0; i < h->block_count; i++) {
      const simalloc_snap_block *b = &v->blocks[i];
      uint64_t sz = snap_block_size(b), amount[3] = {0, 0, 0};
      if (sz == 0)
        continue;
      bar_cell one = {0, 0, 0};
      cell_add(&one, snap_block_state(b), sz);
      amount[0] = one.used, amount[1] = one.free, amount[2] = one.cached;
      spread(cells, n, start, end, b->offset, b->offset + sz, amount, sz);
    }
    return 1;
  }
  if (h->heap_count == 0) {   /* no heap table: the map is in arena offsets */
    simalloc_snap_heap all = {0, (uint64_t)h->map_cells * h->map_cell_bytes, 0, 0, 0, 0};
    map_heap(v, &all, start, end, cells, n);
  }
  for (uint32_t i = 0; i < h->heap_count; i++)
    map_heap(v, &h->heaps[i], start, end, cells, n);
  return 0;
}

/* ---- heaps end to end ----------------------------------------------------
 *
 * The default bar does not draw the arena, which is mostly unused address
 * space between heaps, but the heaps' listed bytes laid end to end, the
 * order the coarse map uses: position x belongs to the heap with map_start
 * <= x < map_start + (end - start). */

static int hp_end_at(const simalloc_snap_heap *hp, uint64_t x) {
  return x == hp->map_start + (hp->end - hp->start);
}

uint64_t heaps_length(const snap_view *v) {
  uint64_t len = 0;
  for (uint32_t i = 0; i < v->h->heap_count; i++) {
    const simalloc_snap_heap *hp = &v->h->heaps[i];
    uint64_t e = hp->map_start + (hp->end - hp->start);
    len = e > len ? e : len;
  }
  return len;
}

uint64_t heaps_offset_of(const snap_view *v, uint64_t x) {
  const simalloc_snap_header *h = v->h;
  for (uint32_t i = 0; i < h->heap_count; i++) {
    const simalloc_snap_heap *hp = &h->heaps[i];
    if (x >= hp->map_start && x - hp->map_start < hp->end - hp->start)
      return hp->start + (x - hp->map_start);
  }
  for (uint32_t i = 0; i < h->heap_count; i++)   /* the very end */
    if (hp_end_at(&h->heaps[i], x))
      return h->heaps[i].end;
  return x;
}

/* The heap holding arena offset off, trying *hint first; -1 if none. */
static int heap_of(const simalloc_snap_header *h, uint64_t off, int *hint) {
  if (*hint >= 0 && off >= h->heaps[*hint].start && off < h->heaps[*hint].end)
    return *hint;
  for (uint32_t i = 0; i < h->heap_count; i++)
    if (off >= h->heaps[i].start && off < h->heaps[i].end)
      return *hint = (int)i;
  return -1;
}

int bar_fill_heaps(const snap_view *v, bar_cell *cells, int n) {
  const simalloc_snap_header *h = v->h;
  int from_blocks = h->block_count > 0 && h->block_count == h->block_total;
  uint64_t len = heaps_length(v), cb = h->map_cell_bytes;
  int hint = -1;

  memset(cells, 0, sizeof *cells * (size_t)n);
  if (n <= 0 || len == 0)
    return from_blocks;
  if (from_blocks) {
    for (uint64_t i = 0; i < h->block_count; i++) {
      const simalloc_snap_block *b = &v->blocks[i];
      uint64_t sz = snap_block_size(b);
      int k = heap_of(h, b->offset, &hint);
      if (sz == 0 || k < 0)
        continue;
      bar_cell one = {0, 0, 0};
      cell_add(&one, snap_block_state(b), sz);
      uint64_t amount[3] = {one.used, one.free, one.cached};
      uint64_t x = h->heaps[k].map_start + (b->offset - h->heaps[k].start);
      spread(cells, n, 0, len, x, x + sz, amount, sz);
    }
    return 1;
  }
  for (uint32_t k = 0; k < h->map_cells; k++) {
    const simalloc_snap_cell *c = &v->map[k];
    uint64_t amount[3] = {c->used, c->free, c->cached};
    spread(cells, n, 0, len, k * cb, k * cb + cb, amount, cb);
  }
  return 0;
}

void bar_glyphs(const bar_cell *cells, int n, uint64_t start, uint64_t end,
                char *out) {
  static const char glyph[4] = {'#', '.', '+', ' '};
  double credit[4] = {0, 0, 0, 0};
  uint64_t span = end - start;

  for (int i = 0; i < n; i++) {
    uint64_t cs = cell_start(start, span, n, i);
    uint64_t ce = i + 1 < n ? cell_start(start, span, n, i + 1) : end;
    double len = ce > cs ? (double)(ce - cs) : 1.0;
    double f[4] = {(double)cells[i].used / len, (double)cells[i].free / len,
                   (double)cells[i].cached / len, 0};
    f[3] = 1.0 - f[0] - f[1] - f[2];
    if (f[3] < 0)
      f[3] = 0;
    int best = -1;
    for (int s = 0; s < 4; s++) {   /* only states present in this cell */
      credit[s] += f[s];
      if (f[s] > 1e-12 && (best < 0 || credit[s] > credit[best] + 1e-9))
        best = s;
    }
    if (best < 0)
      best = 3;
    credit[best] -= 1.0;
    out[i] = glyph[best];
  }
  out[n > 0 ? n : 0] = '\0';
}

int bar_cells_for_width(int width, int ascii) {
  int n = ascii ? width : width / 2;
  return n > 0 ? n : 1;
}

/* Writes text at col if it fits in [*used, limit); then *used moves past it
 * and one space. */
static void place(char *line, int limit, int col, const char *text, int *used) {
  int len = (int)strlen(text);
  if (col < *used || col + len > limit)
    return;
  memcpy(line + col, text, (size_t)len);
  *used = col + len + 1;
}

void bar_labels(uint64_t start, uint64_t end, int cols, char *out, size_t outsz) {
  uint64_t at[5];
  for (int k = 0; k <= 4; k++)
    at[k] = start + (uint64_t)((u128)(end - start) * (unsigned)k / 4u);
  bar_labels_at(at, cols, out, outsz);
}

void bar_labels_at(const uint64_t at[5], int cols, char *out, size_t outsz) {
  char text[5][32];
  int used = 0;

  if (outsz == 0)
    return;
  if (cols <= 0 || (size_t)cols >= outsz)
    cols = (int)outsz - 1;
  memset(out, ' ', (size_t)cols);
  out[cols] = '\0';
  for (int k = 0; k <= 4; k++)
    fmt_size_short(text[k], sizeof text[k], at[k]);
  /* start and end first; the quarters go where they fit between them */
  int end_col = cols - (int)strlen(text[4]);
  place(out, cols, 0, text[0], &used);
  if (end_col >= used) {
    memcpy(out + end_col, text[4], strlen(text[4]));
    for (int k = 1; k <= 3; k++)
      place(out, end_col - 1, (cols - 1) * k / 4 - (int)strlen(text[k]) / 2, text[k], &used);
  }
  for (int i = cols - 1; i >= 0 && out[i] == ' '; i--)   /* trim */
    out[i] = '\0';
}

void sparkline(const uint64_t *vals, int n, int width, int ascii, char *out,
               size_t outsz) {
  static const char *blocks[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                  "\u2585", "\u2586", "\u2587", "\u2588"};
  static const char levels[] = "_.-~=+*#";
  uint64_t lo = UINT64_MAX, hi = 0;
  size_t pos = 0;
  int first = n > width ? n - width : 0;

  if (outsz == 0)
    return;
  out[0] = '\0';
  for (int i = first; i < n; i++) {
    lo = vals[i] < lo ? vals[i] : lo;
    hi = vals[i] > hi ? vals[i] : hi;
  }
  for (int i = first; i < n; i++) {
    int lv = hi > lo ? (int)((u128)(vals[i] - lo) * 7 / (hi - lo)) : 3;
    const char *g = ascii ? (char[2]){levels[lv], '\0'} : blocks[lv];
    size_t gl = strlen(g);
    if (pos + gl + 1 > outsz)
      break;
    memcpy(out + pos, g, gl);
    pos += gl;
    out[pos] = '\0';
  }
}

/* ---- the report --------------------------------------------------------- */

static const char *state_name(unsigned s) {
  return s == SIMALLOC_SNAP_USED ? "used" : s == SIMALLOC_SNAP_CACHED ? "cached" : "free";
}

static void render_identity(const snap_view *v, emitter *e) {
  emit_i64(e, "pid", "pid", v->h->pid);
  emit_str(e, "exe", "executable", v->h->exe, EF_PLAIN);
  emit_u64(e, "publish_count", "snapshots published", v->h->publish_count, EF_PLAIN);
  emit_bool(e, "stale", "may be stale", v->stale);
}

static void render_status(const snap_view *v, emitter *e) {
  const simalloc_snap_header *h = v->h;

  emit_object(e, "arena", "arena");
  emit_u64(e, "base", "base", h->arena_base, EF_OFFSET);
  emit_u64(e, "size", "size", h->arena_size, EF_BYTES);
  emit_u64(e, "touched", "touched", h->arena_touched, EF_BYTES);
  emit_u64(e, "heap_count", "heaps", h->heap_count, EF_PLAIN);
  emit_object_end(e);
  emit_u64(e, "used_bytes", "used", h->used_bytes, EF_BYTES);
  emit_u64(e, "free_bytes", "free", h->free_bytes, EF_BYTES);
  emit_u64(e, "cached_bytes", "cached", h->cached_bytes, EF_BYTES);
  emit_u64(e, "blocks_used", "used blocks", h->used_blocks, EF_PLAIN);
  emit_u64(e, "blocks_free", "free blocks", h->free_blocks, EF_PLAIN);
  emit_u64(e, "blocks_cached", "cached blocks", h->cached_blocks, EF_PLAIN);
  emit_u64(e, "largest_free", "largest free block", h->largest_free, EF_BYTES);
  emit_double(e, "fragmentation", "fragmentation", (double)h->fragmentation_ppm / 1e6,
              EF_PERCENT);
  emit_u64(e, "rss_bytes", "RSS", h->rss_bytes, EF_BYTES);
  emit_u64(e, "peak_used_bytes", "peak used", h->peak_used_bytes, EF_BYTES);
  emit_u64(e, "block_total", "blocks in heap", h->block_total, EF_PLAIN);
  emit_bool(e, "truncated", "block list cut",
            (h->flags & SIMALLOC_SNAP_F_TRUNCATED) || h->block_count < h->block_total);
}

static void render_heaps(const snap_view *v, emitter *e) {
  emit_list(e, "heaps", "heaps",
            "         start             end            used            free          cached");
  for (uint32_t i = 0; i < v->h->heap_count; i++) {
    const simalloc_snap_heap *hp = &v->h->heaps[i];
    emit_row(e);
    emit_u64(e, "start", NULL, hp->start, EF_OFFSET);
    emit_u64(e, "end", NULL, hp->end, EF_OFFSET);
    emit_u64(e, "used_bytes", NULL, hp->used_bytes, EF_BYTES);
    emit_u64(e, "free_bytes", NULL, hp->free_bytes, EF_BYTES);
    emit_u64(e, "cached_bytes", NULL, hp->cached_bytes, EF_BYTES);
    emit_row_end(e);
  }
  emit_list_end(e);
}

/* ---- allocation sites --------------------------------------------------- */

void site_frame_of(const snap_view *v, const render_opts *o, uint64_t a, site_frame *out) {
  memset(out, 0, sizeof *out);
  if (o->resolve && o->resolve(o->resolve_ctx, a, out) == 0 && out->module[0])
    return;
  const simalloc_snap_module *m = snap_module_of(v, a);
  if (m == NULL)
    return;
  const char *base = strrchr(m->path, '/');
  snprintf(out->module, sizeof out->module, "%s", base ? base + 1 : m->path);
  out->module_offset = a - m->start + m->offset;
}

int site_frame_internal(const site_frame *f) {
  /* libc's and libstdc++'s functions that allocate on behalf of a caller */
  static const char *const wrappers[] = {
      "malloc", "calloc", "realloc", "reallocarray", "free", "memalign",
      "posix_memalign", "aligned_alloc", "valloc", "pvalloc", "strdup",
      "strndup", "__strdup", "__strndup", "wcsdup", "__libc_malloc",
      "__libc_calloc", "__libc_realloc", "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t",
      "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t"};
  if (!strncmp(f->module, "libsimalloc", 11))
    return 1;
  for (size_t i = 0; i < sizeof wrappers / sizeof *wrappers; i++)
    if (!strcmp(f->function, wrappers[i]))
      return 1;
  return 0;
}

void site_frame_text(const site_frame *f, uint64_t a, char *out, size_t outsz) {
  const char *file = strrchr(f->file, '/');
  file = file ? file + 1 : f->file;
  if (f->function[0] && file[0] && f->line > 0)
    snprintf(out, outsz, "%s (%s:%d)", f->function, file, f->line);
  else if (f->function[0])
    snprintf(out, outsz, "%s (%s+0x%llx)", f->function, f->module,
             (unsigned long long)f->module_offset);
  else if (f->module[0])
    snprintf(out, outsz, "%s+0x%llx", f->module, (unsigned long long)f->module_offset);
  else
    snprintf(out, outsz, "0x%llx", (unsigned long long)a);
}

uint32_t site_where(const snap_view *v, const render_opts *o, const simalloc_snap_site *s) {
  site_frame f;
  for (uint32_t i = 0; i < s->frame_count; i++) {
    site_frame_of(v, o, s->frames[i], &f);
    if (!site_frame_internal(&f))
      return i;
  }
  return 0;
}

/* The text of where site id allocates: "-" for no site. */
static void site_where_text(const snap_view *v, const render_opts *o, uint32_t id, char *out,
                            size_t outsz) {
  const simalloc_snap_site *s = snap_site(v, id);
  site_frame f;
  if (id == SIMALLOC_SITE_OTHER) {
    snprintf(out, outsz, "(other stacks: the site table is full)");
  } else if (s == NULL || id == SIMALLOC_SITE_NONE || s->frame_count == 0) {
    snprintf(out, outsz, "-");
  } else {
    uint32_t k = site_where(v, o, s);
    site_frame_of(v, o, s->frames[k], &f);
    site_frame_text(&f, s->frames[k], out, outsz);
  }
}

/* JSON only: the frames of s as a list of {address, function, file, line}. */
static void emit_frames(emitter *e, const snap_view *v, const render_opts *o,
                        const simalloc_snap_site *s) {
  if (e->mode != EMIT_JSON)
    return;
  int row = e->row;
  e->row = 0;
  emit_list(e, "frames", NULL, NULL);
  for (uint32_t i = 0; i < s->frame_count; i++) {
    site_frame f;
    site_frame_of(v, o, s->frames[i], &f);
    emit_row(e);
    emit_u64(e, "address", NULL, s->frames[i], EF_OFFSET);
    emit_str(e, "function", NULL, f.function, EF_PLAIN);
    emit_str(e, "file", NULL, f.file, EF_PLAIN);
    emit_u64(e, "line", NULL, (uint64_t)(f.line > 0 ? f.line : 0), EF_PLAIN);
    emit_str(e, "module", NULL, f.module, EF_PLAIN);
    emit_u64(e, "module_offset", NULL, f.module_offset, EF_OFFSET);
    emit_row_end(e);
  }
  emit_list_end(e);
  e->row = row;
}

static int site_grew(const render_opts *o, const simalloc_snap_site *s) {
  const simalloc_snap_site *before = o->prev ? snap_site(o->prev, s->id) : NULL;
  return o->prev && s->live_bytes > (before ? before->live_bytes : 0);
}

static int by_live_desc(const void *a, const void *b, void *arg) {
  const snap_view *v = arg;
  uint64_t x = v->sites[*(const uint32_t *)a].live_bytes;
  uint64_t y = v->sites[*(const uint32_t *)b].live_bytes;
  if (x != y)
    return x < y ? 1 : -1;
  return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static const char *sites_mode_name(uint32_t m) {
  return m == SIMALLOC_SITES_ALL ? "all" : m == SIMALLOC_SITES_SAMPLE ? "sample" : "off";
}

static void render_sites(const snap_view *v, emitter *e, const render_opts *o) {
  const simalloc_snap_header *h = v->h;
  uint32_t n = 0, *order = malloc(((size_t)h->site_count + 1) * sizeof *order);
  char where[1024];

  if (order == NULL)
    return;
  for (uint32_t i = SIMALLOC_SITE_OTHER; i < h->site_count; i++)
    if (v->sites[i].live_bytes > 0)
      order[n++] = i;
  qsort_r(order, n, sizeof *order, by_live_desc, (void *)v);
  if (n > o->sites)
    n = o->sites;
  emit_str(e, "sites_mode", "sites", sites_mode_name(h->sites_mode), EF_PLAIN);
  if (h->sites_mode == SIMALLOC_SITES_SAMPLE)
    emit_u64(e, "sites_rate", "one record per", h->sites_rate, EF_BYTES);
  emit_list(e, "sites", "top sites by live bytes",
            o->prev ? "          site      live bytes          blocks           share"
                      "     total bytes           calls  grew  where"
                    : "          site      live bytes          blocks           share"
                      "     total bytes           calls  where");
  for (uint32_t k = 0; k < n; k++) {
    const simalloc_snap_site *s = &v->sites[order[k]];
    site_where_text(v, o, s->id, where, sizeof where);
    emit_row(e);
    emit_u64(e, "id", NULL, s->id, EF_PLAIN);
    emit_u64(e, "live_bytes", NULL, s->live_bytes, EF_BYTES);
    emit_u64(e, "live_blocks", NULL, s->live_blocks, EF_PLAIN);
    emit_double(e, "share", NULL, h->used_bytes ? (double)s->live_bytes / (double)h->used_bytes : 0,
                EF_PERCENT);
    emit_u64(e, "total_bytes", NULL, s->total_bytes, EF_BYTES);
    emit_u64(e, "total_calls", NULL, s->total_calls, EF_PLAIN);
    emit_u64(e, "peak_live_bytes", NULL, s->peak_live_bytes, EF_DATA);
    if (o->prev)
      emit_bool(e, "grew", NULL, site_grew(o, s));
    emit_str(e, "where", NULL, where, EF_PLAIN);
    emit_frames(e, v, o, s);
    emit_row_end(e);
  }
  emit_list_end(e);
  free(order);
}

/* --site ID: the figures of one site and its whole stack. */
static void render_site(const snap_view *v, emitter *e, const render_opts *o) {
  const simalloc_snap_site *s = snap_site(v, o->site_id);
  char text[1024];

  emit_object(e, "site", "site");
  emit_u64(e, "id", "id", o->site_id, EF_PLAIN);
  emit_bool(e, "found", "recorded", s != NULL && o->site_id != SIMALLOC_SITE_NONE);
  if (s != NULL && o->site_id != SIMALLOC_SITE_NONE) {
    emit_str(e, "sites_mode", "sites", sites_mode_name(v->h->sites_mode), EF_PLAIN);
    emit_u64(e, "live_bytes", "live", s->live_bytes, EF_BYTES);
    emit_u64(e, "live_blocks", "live blocks", s->live_blocks, EF_PLAIN);
    emit_u64(e, "total_bytes", "allocated in all", s->total_bytes, EF_BYTES);
    emit_u64(e, "total_calls", "allocations", s->total_calls, EF_PLAIN);
    emit_u64(e, "peak_live_bytes", "peak live", s->peak_live_bytes, EF_BYTES);
    emit_list(e, "frames", "stack, innermost first", "       address  frame");
    for (uint32_t i = 0; i < s->frame_count; i++) {
      site_frame f;
      site_frame_of(v, o, s->frames[i], &f);
      site_frame_text(&f, s->frames[i], text, sizeof text);
      emit_row(e);
      emit_u64(e, "address", NULL, s->frames[i], EF_OFFSET);
      emit_str(e, "text", NULL, text, EF_PLAIN);
      emit_str(e, "function", NULL, f.function, EF_DATA);
      emit_str(e, "file", NULL, f.file, EF_DATA);
      emit_u64(e, "line", NULL, (uint64_t)(f.line > 0 ? f.line : 0), EF_DATA);
      emit_row_end(e);
    }
    emit_list_end(e);
  }
  emit_object_end(e);
}

/* The sites of the used blocks just before and after each hole: the code
 * whose live blocks keep the hole from joining its neighbours. */
static void hole_pins(const snap_view *v, uint32_t *left, uint32_t *right) {
  const simalloc_snap_header *h = v->h;
  for (uint32_t k = 0; k < h->hole_count; k++)
    left[k] = right[k] = SIMALLOC_SITE_NONE;
  for (uint64_t i = 0; i < h->block_count; i++) {
    const simalloc_snap_block *b = &v->blocks[i];
    if (snap_block_state(b) != SIMALLOC_SNAP_USED)
      continue;
    uint64_t end = b->offset + snap_block_size(b);
    for (uint32_t k = 0; k < h->hole_count; k++) {
      if (end == h->holes[k].offset)
        left[k] = b->site;
      if (b->offset == h->holes[k].offset + h->holes[k].size)
        right[k] = b->site;
    }
  }
}

static void render_holes(const snap_view *v, emitter *e, const render_opts *o) {
  uint32_t left[SIMALLOC_SNAP_HOLES], right[SIMALLOC_SNAP_HOLES];
  char lw[600], rw[600], pins[1300];
  int sites = v->h->site_count > 0;

  hole_pins(v, left, right);
  emit_list(e, "holes", "largest free holes",
            sites ? "        offset            size  pinned by (site before | site after)"
                  : "        offset            size");
  for (uint32_t i = 0; i < v->h->hole_count; i++) {
    emit_row(e);
    emit_u64(e, "offset", NULL, v->h->holes[i].offset, EF_OFFSET);
    emit_u64(e, "size", NULL, v->h->holes[i].size, EF_BYTES);
    if (sites) {
      site_where_text(v, o, left[i], lw, sizeof lw);
      site_where_text(v, o, right[i], rw, sizeof rw);
      snprintf(pins, sizeof pins, "%u %s | %u %s", left[i], lw, right[i], rw);
      emit_u64(e, "left_site", NULL, left[i], EF_DATA);
      emit_str(e, "left_where", NULL, lw, EF_DATA);
      emit_u64(e, "right_site", NULL, right[i], EF_DATA);
      emit_str(e, "right_where", NULL, rw, EF_DATA);
      emit_str(e, "pins", NULL, pins, EF_PLAIN);
    }
    emit_row_end(e);
  }
  emit_list_end(e);
}

static void render_blocks(const snap_view *v, emitter *e, const render_opts *o) {
  uint64_t listed = 0;

  int sites = v->h->site_count > 0;   /* a site column only when there are sites */

  emit_list(e, "blocks", "blocks",
            sites ? "        offset            size  state             site"
                  : "        offset            size  state");
  for (uint64_t i = 0; i < v->h->block_count; i++) {
    const simalloc_snap_block *b = &v->blocks[i];
    uint64_t sz = snap_block_size(b);
    if (o->limit && listed >= o->limit)
      break;
    if (o->has_range && (b->offset >= o->range_end || b->offset + sz <= o->range_start))
      continue;
    emit_row(e);
    emit_u64(e, "offset", NULL, b->offset, EF_OFFSET);
    emit_u64(e, "size", NULL, sz, EF_BYTES);
    emit_str(e, "state", NULL, state_name(snap_block_state(b)), EF_WORD);
    if (sites)
      emit_u64(e, "site", NULL, b->site, EF_PLAIN);
    emit_row_end(e);
    listed++;
  }
  emit_list_end(e);
  emit_u64(e, "blocks_listed", "blocks listed", listed, EF_PLAIN);
}

/* The range of a zoomed bar, in arena offsets. */
static void zoom_range(const snap_view *v, const render_opts *o, uint64_t *start,
                       uint64_t *end) {
  uint64_t size = v->h->arena_size;
  *start = o->range_start < size ? o->range_start : size;
  *end = o->range_end < size ? o->range_end : size;
  if (*end < *start)
    *end = *start;
}

/* The drawn bar: emoji or ASCII, coloured when allowed. */
static void draw_bar(emitter *e, const char *glyphs, int ascii) {
  static const char *emoji[256] = {['#'] = "\U0001F7E5", ['.'] = "\U0001F7E9",
                                   ['+'] = "\U0001F7E8", [' '] = "  "};
  static const char *ansi[256] = {['#'] = "\033[31m", ['.'] = "\033[32m",
                                  ['+'] = "\033[33m", [' '] = "\033[0m"};
  size_t n = strlen(glyphs), pos = 0;
  char *line = malloc(n * 10 + 16);
  char prev = 0;

  if (line == NULL)
    return;
  for (size_t i = 0; i < n; i++) {
    unsigned char g = (unsigned char)glyphs[i];
    if (ascii && e->colour && g != (unsigned char)prev)
      pos += (size_t)sprintf(line + pos, "%s", ansi[g]);
    pos += (size_t)sprintf(line + pos, "%s", ascii ? (char[2]){(char)g, 0} : emoji[g]);
    prev = (char)g;
  }
  if (ascii && e->colour)
    pos += (size_t)sprintf(line + pos, "%s", ANSI_RESET);
  line[pos] = '\0';
  emit_raw(e, line);
  free(line);
}

/* The bar: over a zoomed arena range, or over the heaps end to end (or,
 * without a heap table, the touched part of the arena). */
static void render_bar(const snap_view *v, emitter *e, const render_opts *o) {
  int heaps = !o->has_range && v->h->heap_count > 0;
  uint64_t start = 0, end = v->h->arena_touched, at[5];
  int n = bar_cells_for_width(o->width, o->ascii);

  if (o->has_range)
    zoom_range(v, o, &start, &end);
  else if (heaps)
    end = heaps_length(v);
  if ((uint64_t)n > end - start)
    n = (int)(end - start);
  bar_cell *cells = calloc((size_t)(n > 0 ? n : 1), sizeof *cells);
  char *glyphs = malloc((size_t)(n > 0 ? n : 0) + 1);
  if (cells == NULL || glyphs == NULL) {
    free(cells);
    free(glyphs);
    return;
  }
  int from_blocks = heaps ? bar_fill_heaps(v, cells, n) : bar_fill(v, start, end, cells, n);
  bar_glyphs(cells, n, start, end, glyphs);
  for (int k = 0; k <= 4; k++) {
    at[k] = start + (uint64_t)((u128)(end - start) * (unsigned)k / 4u);
    if (heaps)
      at[k] = heaps_offset_of(v, at[k]);
  }

  emit_object(e, "bar", "heap");
  emit_str(e, "layout", "layout", heaps ? "heaps" : "arena", EF_PLAIN);
  emit_u64(e, "start", "from", at[0], EF_OFFSET);
  emit_u64(e, "end", "to", at[4], EF_OFFSET);
  emit_u64(e, "glyph_bytes", "one glyph", n > 0 ? (end - start) / (uint64_t)n : 0,
           EF_BYTES);
  emit_str(e, "source", "drawn from", from_blocks ? "blocks" : "map", EF_PLAIN);
  emit_str(e, "glyphs", NULL, glyphs, EF_DATA);
  if (n > 0) {
    char labels[1024];
    draw_bar(e, glyphs, o->ascii);
    bar_labels_at(at, o->ascii ? n : 2 * n, labels, sizeof labels);
    emit_raw(e, labels);
  } else {
    emit_raw(e, "(nothing to draw: the range is empty)");
  }
  emit_raw(e, o->ascii ? "# used  . free  + cached"
                       : "\U0001F7E5 used  \U0001F7E9 free  \U0001F7E8 cached");
  emit_object_end(e);
  free(cells);
  free(glyphs);
}

void render_report(const snap_view *v, emitter *e, const render_opts *o) {
  emit_begin(e);
  if (o->identity)
    render_identity(v, e);
  if (o->status) {
    render_status(v, e);
    render_heaps(v, e);
    render_holes(v, e, o);
  }
  if (o->sites)
    render_sites(v, e, o);
  if (o->has_site)
    render_site(v, e, o);
  if (o->bar)
    render_bar(v, e, o);
  if (o->blocks)
    render_blocks(v, e, o);
  emit_end(e);
}
