/* render.h - the one renderer of heap snapshots, and the emitter under it.
 *
 * Every report (status, holes, block list, heap bar, process list) is written
 * once, as a sequence of emitter calls.  The emitter has two backends: human
 * text and JSON.  The two outputs therefore always carry the same figures.
 *
 * Emitter model: a document is a tree of objects and lists.  Scalars carry a
 * JSON key and a human label; the format hint (bytes, offset, percent) is
 * used by the text backend only, JSON always prints plain numbers.  Inside a
 * list every element is a "row": the text backend prints it on one line, in
 * columns.  emit_raw() writes lines (the drawn bar) that only the text
 * backend shows; EF_DATA marks values that only JSON shows.
 */
#ifndef RENDER_H
#define RENDER_H

#include <stdint.h>
#include <stdio.h>

#include "snapread.h"

typedef enum emit_mode { EMIT_TEXT, EMIT_JSON } emit_mode;

/* How the text backend prints a scalar (JSON ignores all but EF_DATA). */
enum emit_fmt {
  EF_PLAIN = 0,    /* a count */
  EF_BYTES = 1,    /* "1.5 MiB (1572864)"; in a row the exact number */
  EF_OFFSET = 2,   /* hexadecimal */
  EF_PERCENT = 3,  /* a fraction 0..1 printed as "12.5%" */
  EF_WORD = 4,     /* in a row, a word taking EMIT_WORD_WIDTH columns (a block state) */
  EF_DATA = 0x10,  /* JSON only: the text shows it another way */
};

#define EMIT_MAX_DEPTH 16

#define EMIT_WORD_WIDTH 6   /* the longest block state, "cached" */

typedef struct emitter {
  FILE *out;
  emit_mode mode;
  int colour;                       /* ANSI escapes allowed (text) */
  int depth;
  int items[EMIT_MAX_DEPTH];        /* members emitted at each level */
  int row;                          /* inside a row (one line in text) */
  int owed;                         /* text row: columns a short word left to the next */
  size_t len;                       /* bytes waiting in buf */
  char buf[8192];
} emitter;

void emit_init(emitter *e, FILE *out, emit_mode mode, int colour);
void emit_begin(emitter *e);                 /* the document */
void emit_end(emitter *e);
/* A nested object; title is the text heading (NULL: none). */
void emit_object(emitter *e, const char *key, const char *title);
void emit_object_end(emitter *e);
/* A list; title is the text heading, columns the text column header. */
void emit_list(emitter *e, const char *key, const char *title, const char *columns);
void emit_list_end(emitter *e);
void emit_row(emitter *e);
void emit_row_end(emitter *e);
void emit_u64(emitter *e, const char *key, const char *label, uint64_t v, int fmt);
void emit_i64(emitter *e, const char *key, const char *label, int64_t v);
void emit_double(emitter *e, const char *key, const char *label, double v, int fmt);
void emit_str(emitter *e, const char *key, const char *label, const char *s, int fmt);
void emit_bool(emitter *e, const char *key, const char *label, int b);
void emit_raw(emitter *e, const char *line);  /* text only; adds a newline */

/* Writes s as a JSON string literal (quotes, escapes, invalid UTF-8
 * replaced by U+FFFD). */
void json_write_string(FILE *out, const char *s);

/* ---- the renderer ------------------------------------------------------ */

/* One frame of a site's stack, as a symbolizer sees it.  Empty strings and
 * line 0 mean unknown. */
typedef struct site_frame {
  char function[256];
  char file[512];
  int line;
  char module[256];         /* file name of the module, without directories */
  uint64_t module_offset;   /* address - module load address */
} site_frame;

/* Fills *out for address a of the target; 0 if it knows anything, else -1.
 * simalloc-dump passes one built on elfutils (symbolize.c); without one,
 * frames are named from the snapshot's module list. */
typedef int (*site_resolver)(void *ctx, uint64_t a, site_frame *out);

typedef struct render_opts {
  int identity;        /* show pid and executable */
  int status;          /* the status report and holes */
  int bar;             /* the heap bar */
  int blocks;          /* the block list (always in JSON) */
  uint64_t limit;      /* blocks listed at most; 0 = all */
  int width;           /* terminal columns for the bar */
  int ascii;           /* '#' '.' '+' instead of emoji */
  int has_range;       /* zoom into [range_start, range_end) */
  uint64_t range_start, range_end;
  uint32_t sites;      /* list this many top sites by live bytes (0: none) */
  int has_site;        /* show the whole stack of site_id */
  uint32_t site_id;
  site_resolver resolve;          /* symbolizer, or NULL */
  void *resolve_ctx;
  const snap_view *prev;          /* --watch: the previous frame, to mark growth */
} render_opts;

/* The frame of address a: from the resolver, else from the module list. */
void site_frame_of(const snap_view *v, const render_opts *o, uint64_t a, site_frame *out);
/* 1 if the frame is the allocator's or one of libc's allocation wrappers
 * (strdup, operator new, ...): not where the program asked for memory. */
int site_frame_internal(const site_frame *f);
/* "function (file:line)", "function", "module+0x1234" or "0x..." */
void site_frame_text(const site_frame *f, uint64_t a, char *out, size_t outsz);
/* Index of the innermost frame of site s outside the allocator, or 0. */
uint32_t site_where(const snap_view *v, const render_opts *o, const simalloc_snap_site *s);

/* Renders the parts of o for the snapshot v. */
void render_report(const snap_view *v, emitter *e, const render_opts *o);

/* Bytes of each state in one cell of the bar. */
typedef struct bar_cell {
  uint64_t used, free, cached;
} bar_cell;

/* The bar over [start, end): fills n cells (n <= end - start) with the
 * bytes of each state, from the block list when it is complete and from the
 * coarse map otherwise.  Returns 1 if the block list was used, 0 if the map. */
int bar_fill(const snap_view *v, uint64_t start, uint64_t end, bar_cell *cells,
             int n);

/* The heaps end to end, the default bar and the order of the coarse map:
 * heap i's bytes [start, end) are positions [map_start, map_start + end -
 * start).  heaps_length is the total; heaps_offset_of turns a position into
 * an arena offset; bar_fill_heaps fills n cells over [0, heaps_length). */
uint64_t heaps_length(const snap_view *v);
uint64_t heaps_offset_of(const snap_view *v, uint64_t x);
int bar_fill_heaps(const snap_view *v, bar_cell *cells, int n);

/* Chooses one glyph per cell so that the count of each glyph is proportional
 * to the bytes of its state over the whole bar (error diffusion; a cell
 * only ever shows a state it contains), writing
 * '#' used, '.' free, '+' cached, ' ' nothing, and a NUL. */
void bar_glyphs(const bar_cell *cells, int n, uint64_t start, uint64_t end,
                char *out);

/* Glyphs of the bar for width columns: emoji are two columns wide. */
int bar_cells_for_width(int width, int ascii);

/* Offset labels under a bar of cols columns over [start, end): start, the
 * quarters and end, each placed under its column without overlapping.
 * Writes at most outsz bytes including the NUL. */
void bar_labels(uint64_t start, uint64_t end, int cols, char *out, size_t outsz);
/* The same with the five offsets given. */
void bar_labels_at(const uint64_t at[5], int cols, char *out, size_t outsz);

/* A sparkline of n values in at most width glyphs (the newest values). */
void sparkline(const uint64_t *vals, int n, int width, int ascii, char *out,
               size_t outsz);

/* Compact size for labels: "0", "512", "1.5K", "64M", "2G". */
void fmt_size_short(char *out, size_t outsz, uint64_t v);
/* Parses a size or offset: decimal or 0x hexadecimal, with an
 * optional K, M or G suffix (powers of 1024).  Returns 0, or -1 if s is not
 * such a number or overflows. */
int parse_size(const char *s, uint64_t *out);
/* Human size: "1.5 MiB". */
void fmt_size_human(char *out, size_t outsz, uint64_t v);

/* Environment: 1 if the locale's codeset is UTF-8 (call setlocale first). */
int render_locale_utf8(void);
/* 1 if ANSI colour may be written to fd: a terminal and NO_COLOR unset. */
int render_colour_ok(int fd);
/* Columns of the terminal on fd, or COLUMNS, or 80. */
int render_term_width(int fd);

#endif
