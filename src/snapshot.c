/* snapshot.c - building a heap snapshot image (include/simalloc/snapshot.h)
 * from heaps, in any memory.  Publishing it is publish.c's business.
 *
 * sa_snap_fill lists every block.  The publisher leaves out the top free
 * block of a process heap, the part of the arena not handed out yet: its
 * snapshot covers the heap up to where it has grown, and arena_touched
 * says how far it ever reached.
 */
#include "snapshot.h"

#include <string.h>

#include "block.h"
#include "sites.h"

#define HIST_CLASSES 64
#define SECTION_ALIGN 64

static size_t round_up(size_t v) { return (v + SECTION_ALIGN - 1) & ~(size_t)(SECTION_ALIGN - 1); }

size_t sa_snap_size(const sa_snap_caps *caps) {
  return round_up(sizeof(simalloc_snap_header)) +
         round_up(caps->map_cells * sizeof(simalloc_snap_cell)) +
         round_up(HIST_CLASSES * sizeof(simalloc_snap_hist)) +
         round_up(caps->history * sizeof(simalloc_snap_sample)) +
         round_up(caps->blocks * sizeof(simalloc_snap_block)) +
         round_up(caps->sites * sizeof(simalloc_snap_site)) +
         round_up(caps->modules * sizeof(simalloc_snap_module));
}

void sa_snap_layout(simalloc_snap_header *seg, const sa_snap_caps *caps) {
  memset(seg, 0, sizeof *seg);
  seg->magic = SIMALLOC_SNAP_MAGIC;
  seg->version = SIMALLOC_SNAP_VERSION;
  seg->header_size = sizeof *seg;
  seg->segment_size = sa_snap_size(caps);
  size_t off = round_up(sizeof *seg);
  seg->map_offset = off;
  seg->map_cap = caps->map_cells;
  off += round_up(caps->map_cells * sizeof(simalloc_snap_cell));
  seg->hist_offset = off;
  seg->hist_classes = HIST_CLASSES;
  off += round_up(HIST_CLASSES * sizeof(simalloc_snap_hist));
  seg->history_offset = off;
  seg->history_cap = caps->history;
  off += round_up(caps->history * sizeof(simalloc_snap_sample));
  seg->blocks_offset = off;
  seg->blocks_cap = caps->blocks;
  off += round_up(caps->blocks * sizeof(simalloc_snap_block));
  seg->sites_offset = off;
  seg->sites_cap = caps->sites;
  off += round_up(caps->sites * sizeof(simalloc_snap_site));
  seg->modules_offset = off;
  seg->modules_cap = caps->modules;
}


/* ---- filling ------------------------------------------------------------ */

typedef struct fill_ctx {
  simalloc_snap_header *seg;
  simalloc_snap_cell *map;
  simalloc_snap_hist *hist;
  simalloc_snap_block *blocks;
  uintptr_t base;       /* arena base: offsets count from here */
  uintptr_t limit;      /* blocks at or past this are not listed */
  uintptr_t heap_start; /* the heap being walked ... */
  uint64_t map_start;   /* ... and where it begins in the map */
  simalloc_snap_heap *heap;
} fill_ctx;

static int floor_log2(uint64_t v) { return 63 - __builtin_clzll(v); }

static void add_hole(simalloc_snap_header *seg, uint64_t off, uint64_t size) {
  uint32_t n = seg->hole_count, i = n;
  if (n == SIMALLOC_SNAP_HOLES && seg->holes[n - 1].size >= size) return;
  if (n < SIMALLOC_SNAP_HOLES) seg->hole_count = ++n;
  else i = n - 1;
  while (i > 0 && seg->holes[i - 1].size < size) {
    seg->holes[i] = seg->holes[i - 1];
    i--;
  }
  seg->holes[i].offset = off;
  seg->holes[i].size = size;
}

static void add_to_map(fill_ctx *c, uint64_t off, uint64_t size, int state) {
  uint64_t cb = c->seg->map_cell_bytes, end = off + size;
  for (uint64_t i = off / cb; i < c->seg->map_cells && i * cb < end; i++) {
    uint64_t lo = i * cb > off ? i * cb : off;
    uint64_t hi = (i + 1) * cb < end ? (i + 1) * cb : end;
    simalloc_snap_cell *m = &c->map[i];
    if (state == SIMALLOC_SNAP_USED) m->used += hi - lo;
    else if (state == SIMALLOC_SNAP_CACHED) m->cached += hi - lo;
    else m->free += hi - lo;
  }
}

static int fill_block(const sa_block_info *b, void *arg) {
  fill_ctx *c = arg;
  if (b->addr >= c->limit) return 1;
  simalloc_snap_header *seg = c->seg;
  uint64_t off = b->addr - c->base, size = b->size;
  if (b->addr + size > c->limit) size = c->limit - b->addr;  /* the heap moved on */
  simalloc_snap_hist *k = &c->hist[floor_log2(size)];
  int state = b->cached ? SIMALLOC_SNAP_CACHED : b->used ? SIMALLOC_SNAP_USED : SIMALLOC_SNAP_FREE;
  if (state == SIMALLOC_SNAP_CACHED) {
    seg->cached_bytes += size;
    seg->cached_blocks++;
    c->heap->cached_bytes += size;
    k->cached_count++;
    k->cached_bytes += size;
  } else if (state == SIMALLOC_SNAP_USED) {
    seg->used_bytes += size;
    seg->used_blocks++;
    c->heap->used_bytes += size;
    k->used_count++;
    k->used_bytes += size;
  } else {
    c->heap->free_bytes += size;
    seg->free_bytes += size;
    seg->free_blocks++;
    k->free_count++;
    k->free_bytes += size;
    if (size > seg->largest_free) seg->largest_free = size;
    add_hole(seg, off, size);
  }
  add_to_map(c, c->map_start + (b->addr - c->heap_start), size, state);
  if (seg->block_count < seg->blocks_cap) {
    simalloc_snap_block *e = &c->blocks[seg->block_count++];
    e->offset = off;
    e->size_state = size | (uint64_t)state;
    e->site = b->tracked ? sa_site_of(blk_payload(b->addr)) : SIMALLOC_SITE_NONE;
    e->reserved = 0;
  }
  seg->block_total++;
  return 0;
}

/* Where a heap's listed part ends: before its top free block, if any. */
static uintptr_t listed_end(sa_heap *h, int include_top) {
  if (include_top) return h->epilogue;
  uint64_t last = *blk_foot_of_prev(h->epilogue);
  uint64_t eh = blk_head(h->epilogue);
  if (eh & SA_PREV_USED) return h->epilogue;
  return h->epilogue - last;
}

static void fill(simalloc_snap_header *seg, sa_heap *const *heaps, int n,
                 uintptr_t base, size_t size, int include_top) {
  seg->arena_base = base;
  seg->arena_size = size;
  seg->used_bytes = seg->free_bytes = seg->cached_bytes = 0;
  seg->used_blocks = seg->free_blocks = seg->cached_blocks = 0;
  seg->largest_free = 0;
  seg->hole_count = 0;
  seg->block_count = seg->block_total = 0;
  seg->flags &= ~SIMALLOC_SNAP_F_TRUNCATED;
  fill_ctx c = {seg, SECTION(seg, simalloc_snap_cell, map_offset),
                SECTION(seg, simalloc_snap_hist, hist_offset),
                SECTION(seg, simalloc_snap_block, blocks_offset), base, 0, 0, 0, NULL};
  memset(c.hist, 0, seg->hist_classes * sizeof *c.hist);

  /* The map spans the listed parts of the heaps, one after the other.  A
   * heap may grow between this pass and the walk: the walk keeps to the
   * extent found here. */
  uint64_t span = 0, touched = 0, peak = 0;
  if (n > SIMALLOC_SNAP_HEAPS) n = SIMALLOC_SNAP_HEAPS;
  seg->heap_count = (uint32_t)n;
  for (int i = 0; i < n; i++) {
    sa_lock_acquire(&heaps[i]->lock);
    uintptr_t end = listed_end(heaps[i], include_top);
    simalloc_snap_heap *sh = &seg->heaps[i];
    *sh = (simalloc_snap_heap){heaps[i]->start - base, end - base, span, 0, 0, 0};
    span += end - heaps[i]->start;
    touched += heaps[i]->reached - heaps[i]->start;
    peak += heaps[i]->st.peak_used;
    sa_lock_release(&heaps[i]->lock);
  }
  seg->arena_touched = touched;
  seg->peak_used_bytes = peak;
  uint64_t cells = seg->map_cap, cb = span ? (span + cells - 1) / cells : 16;
  cb = (cb + 15) & ~(uint64_t)15;
  seg->map_cell_bytes = cb;
  seg->map_cells = span ? (uint32_t)((span + cb - 1) / cb) : 0;
  memset(c.map, 0, seg->map_cap * sizeof *c.map);

  for (int i = 0; i < n; i++) {
    sa_lock_acquire(&heaps[i]->lock);
    c.heap = &seg->heaps[i];
    c.limit = base + c.heap->end;
    c.heap_start = heaps[i]->start;
    c.map_start = c.heap->map_start;
    sa_heap_walk_locked(heaps[i], fill_block, &c);
    sa_lock_release(&heaps[i]->lock);
  }
  if (seg->block_total > seg->block_count) seg->flags |= SIMALLOC_SNAP_F_TRUNCATED;
  seg->fragmentation_ppm =
      seg->free_bytes ? 1000000 - seg->largest_free * 1000000 / seg->free_bytes : 0;
}

void sa_snap_fill(simalloc_snap_header *seg, sa_heap *const *heaps, int n,
                  uintptr_t arena_base, size_t arena_size) {
  fill(seg, heaps, n, arena_base, arena_size, 1);
}

void sa_snap_fill_process(simalloc_snap_header *seg, sa_heap *const *heaps, int n,
                          uintptr_t arena_base, size_t arena_size) {
  fill(seg, heaps, n, arena_base, arena_size, 0);
}
