/* fuzz_snapshot.c - libFuzzer harness: the snapshot reader and renderer.
 *
 * The input is taken as a whole shared-memory segment, as simalloc-dump
 * would copy it out of another process.  The reader must refuse it or
 * produce a view whose every count and offset is safe to follow; an
 * accepted view is then rendered, in text and in JSON, with every part of
 * the report switched on, once over the whole arena and once zoomed into
 * a range, so that the renderer indexes everything the reader let through.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "render.h"
#include "snapread.h"

static FILE *sink;

static void render_all(const snap_view *v, emit_mode mode, int ascii, int zoom) {
  render_opts o = {
    .identity = 1, .status = 1, .bar = 1, .blocks = 1,
    .limit = 0, .width = ascii ? 72 : 100, .ascii = ascii,
  };
  if (zoom) {
    uint64_t t = v->h->arena_touched;
    o.has_range = 1;
    o.range_start = t / 4;
    o.range_end = t / 4 + t / 3 + 1;
  }
  emitter e;
  emit_init(&e, sink, mode, !ascii);
  render_report(v, &e, &o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!sink && !(sink = fopen("/dev/null", "w")))
    abort();
  snap_view v;
  snap_error err;
  if (snap_view_from_bytes(&v, data, size, &err) != SNAP_OK)
    return 0;
  render_all(&v, EMIT_TEXT, 0, 0);
  render_all(&v, EMIT_TEXT, 1, 1);
  render_all(&v, EMIT_JSON, 1, 0);
  render_all(&v, EMIT_JSON, 0, 1);
  fflush(sink);
  snap_view_free(&v);
  return 0;
}
