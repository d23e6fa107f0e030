/* gen_corpus.c - writes the seed corpora of the two fuzzers.
 *
 *   gen_corpus HEAP_DIR SNAPSHOT_DIR
 *
 * Snapshot seeds are real segment images: small private heaps put through
 * a few allocations and frees, then laid out and filled by the same code
 * the library publishes with (sa_snap_layout, sa_snap_fill), with small
 * capacities so that the files stay small.  Heap seeds are operation
 * programs in the format fuzz_heap.c reads.  The output is deterministic;
 * the committed corpora were made with this program.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "snapshot.h"

static void write_file(const char *dir, const char *name, const void *buf, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
    fprintf(stderr, "gen_corpus: cannot write %s\n", path);
    exit(1);
  }
}

/* ---- snapshot images ------------------------------------------------------ */

#define ARENA (64u << 10)
static _Alignas(4096) unsigned char arena[ARENA];

static void snapshot(const char *dir, const char *name, sa_heap *const *heaps, int n,
                     uint64_t blocks_cap) {
  sa_snap_caps caps = {.map_cells = 64, .history = 16, .blocks = blocks_cap};
  size_t len = sa_snap_size(&caps);
  simalloc_snap_header *seg = calloc(1, len);
  if (!seg)
    exit(1);
  sa_snap_layout(seg, &caps);
  sa_snap_fill(seg, heaps, n, (uintptr_t)arena, ARENA);
  /* fixed identity so that the files do not change from run to run */
  seg->pid = 4242;
  seg->start_time_ns = UINT64_C(1700000000000000000);
  seg->publish_time_ns = seg->start_time_ns + UINT64_C(3000000000);
  seg->publish_count = 3;
  seg->arena_base = UINT64_C(0x7f0000000000);
  snprintf(seg->exe, sizeof seg->exe, "/usr/bin/example");
  seg->history_len = 3;
  simalloc_snap_sample *hist = (void *)((unsigned char *)seg + seg->history_offset);
  for (uint32_t i = 0; i < 3; i++)
    hist[i] = (simalloc_snap_sample){i, seg->used_bytes / (3 - i), seg->free_bytes, 1 << 20};
  write_file(dir, name, seg, len);
  free(seg);
}

static void snapshot_seeds(const char *dir) {
  sa_heap h, h2;
  sa_heap *one[] = {&h}, *two[] = {&h, &h2};
  void *p[32];

  sa_heap_init_keyed(&h, arena, ARENA, 0, 1);
  snapshot(dir, "empty", one, 1, 16);

  for (int i = 0; i < 8; i++)
    p[i] = sa_heap_alloc(&h, 100 + (size_t)i * 300);
  sa_heap_free(&h, p[2], "free");
  sa_heap_free(&h, p[5], "free");
  snapshot(dir, "some-blocks", one, 1, 16);

  for (int i = 8; i < 32; i++)
    p[i] = sa_heap_alloc(&h, 40);
  for (int i = 8; i < 32; i += 3)
    sa_heap_free(&h, p[i], "free");
  snapshot(dir, "truncated", one, 1, 16);

  sa_heap_init_keyed(&h, arena, ARENA / 2, 0, 2);
  sa_heap_init_keyed(&h2, arena + ARENA / 2, ARENA / 2, 0, 3);
  sa_heap_alloc(&h, 5000);
  sa_heap_free(&h2, sa_heap_alloc_aligned(&h2, 1024, 700), "free");
  sa_heap_alloc(&h2, 9000);
  snapshot(dir, "two-heaps", two, 2, 16);
}

/* ---- heap programs --------------------------------------------------------- */

enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_ALIGNED, OP_FREE, OP_USABLE };

typedef struct prog {
  uint8_t buf[4096];
  size_t len;
} prog;

/* Small sizes are encoded as v >> 7 with (v & 3) != 3 (see fuzz_heap.c). */
static void op(prog *g, unsigned what, unsigned slot, unsigned small) {
  unsigned v = (small << 7) | 1u;
  if (g->len + 4 > sizeof g->buf)
    return;
  g->buf[g->len++] = (uint8_t)what;
  g->buf[g->len++] = (uint8_t)slot;
  g->buf[g->len++] = (uint8_t)(v >> 8);
  g->buf[g->len++] = (uint8_t)v;
}

/* A large size: (v & 3) == 3 gives (v >> 2) << 5 bytes. */
static void op_large(prog *g, unsigned what, unsigned slot, unsigned units32) {
  unsigned v = (units32 << 2) | 3u;
  if (g->len + 4 > sizeof g->buf)
    return;
  g->buf[g->len++] = (uint8_t)what;
  g->buf[g->len++] = (uint8_t)slot;
  g->buf[g->len++] = (uint8_t)(v >> 8);
  g->buf[g->len++] = (uint8_t)v;
}

static void heap_seeds(const char *dir) {
  prog g = {0};
  uint32_t x = 12345;
  for (int i = 0; i < 300; i++) {
    x = x * 1103515245u + 12345u;
    op(&g, (x >> 8) % 6, (x >> 16) % 64, (x >> 20) % 500);
  }
  write_file(dir, "mixed", g.buf, g.len);

  memset(&g, 0, sizeof g);
  for (unsigned i = 1; i < 120; i++)
    op(&g, OP_REALLOC, i % 3, i * 4);
  write_file(dir, "realloc-grow", g.buf, g.len);

  memset(&g, 0, sizeof g);
  for (unsigned i = 0; i < 64; i++)
    op(&g, OP_ALIGNED | (i % 9) << 3, i, 1 + i * 7);
  for (unsigned i = 0; i < 64; i += 2)
    op(&g, OP_FREE, i, 0);
  write_file(dir, "aligned", g.buf, g.len);

  memset(&g, 0, sizeof g);
  for (unsigned i = 0; i < 64; i++)
    op_large(&g, i % 2 ? OP_CALLOC : OP_MALLOC, i, 300 + i * 40);
  for (unsigned i = 0; i < 64; i += 3)
    op(&g, OP_FREE, i, 0);
  for (unsigned i = 0; i < 64; i++)
    op(&g, OP_USABLE, i, 0);
  write_file(dir, "fill-up", g.buf, g.len);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: gen_corpus HEAP_DIR SNAPSHOT_DIR\n");
    return 64;
  }
  heap_seeds(argv[1]);
  snapshot_seeds(argv[2]);
  return 0;
}
