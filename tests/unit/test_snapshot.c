/* Unit tests of the snapshot image built from a private heap. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "heap.h"
#include "snapshot.h"

static _Alignas(4096) unsigned char buf[64 * 1024];
static sa_heap heap;

static simalloc_snap_header *image(const sa_snap_caps *caps) {
  simalloc_snap_header *seg = calloc(1, sa_snap_size(caps));
  cr_assert_not_null(seg);
  sa_snap_layout(seg, caps);
  sa_heap *hs[1] = {&heap};
  sa_snap_fill(seg, hs, 1, heap.start, heap.end - heap.start);
  return seg;
}


static void setup(void) { cr_assert_eq(sa_heap_init(&heap, buf, sizeof buf, 0), 0); }
TestSuite(snapshot, .init = setup);

Test(snapshot, layout_is_self_describing) {
  sa_snap_caps caps = {100, 10, 50};
  simalloc_snap_header *seg = image(&caps);
  cr_assert_eq(seg->magic, SIMALLOC_SNAP_MAGIC);
  cr_assert_eq(seg->version, SIMALLOC_SNAP_VERSION);
  cr_assert_eq(seg->header_size, sizeof *seg);
  cr_assert_eq(seg->segment_size, sa_snap_size(&caps));
  cr_assert_geq(seg->map_offset, seg->header_size);
  cr_assert_geq(seg->hist_offset, seg->map_offset + caps.map_cells * sizeof(simalloc_snap_cell));
  cr_assert_geq(seg->history_offset, seg->hist_offset + seg->hist_classes * sizeof(simalloc_snap_hist));
  cr_assert_geq(seg->blocks_offset, seg->history_offset + caps.history * sizeof(simalloc_snap_sample));
  cr_assert_leq(seg->blocks_offset + caps.blocks * sizeof(simalloc_snap_block), seg->segment_size);
  free(seg);
}

Test(snapshot, totals_blocks_and_holes_match_the_heap) {
  void *p[10];
  for (int i = 0; i < 10; i++) p[i] = sa_heap_alloc(&heap, 100 * (size_t)(i + 1));
  sa_heap_free(&heap, p[2], "free");
  sa_heap_free(&heap, p[6], "free");
  sa_snap_caps caps = {64, 10, 100};
  simalloc_snap_header *seg = image(&caps);
  cr_assert_eq(seg->used_blocks, 8);
  cr_assert_eq(seg->free_blocks, 3);  /* two holes and the top */
  cr_assert_eq(seg->used_bytes, heap.st.used_bytes);
  cr_assert_eq(seg->used_bytes + seg->free_bytes, heap.epilogue - heap.start);
  cr_assert_eq(seg->block_count, 11);
  cr_assert_eq(seg->block_total, 11);
  cr_assert_eq(seg->flags & SIMALLOC_SNAP_F_TRUNCATED, 0);
  /* blocks tile the heap in order */
  const simalloc_snap_block *b = SECTION(seg, simalloc_snap_block, blocks_offset);
  uint64_t off = 0;
  for (uint64_t i = 0; i < seg->block_count; i++) {
    cr_assert_eq(b[i].offset, off);
    off += b[i].size_state & ~SIMALLOC_SNAP_STATE_MASK;
  }
  cr_assert_eq(b[2].size_state & SIMALLOC_SNAP_STATE_MASK, SIMALLOC_SNAP_FREE);
  cr_assert_eq(b[3].size_state & SIMALLOC_SNAP_STATE_MASK, SIMALLOC_SNAP_USED);
  /* holes: largest first */
  cr_assert_eq(seg->hole_count, 3);
  cr_assert_eq(seg->holes[0].size, seg->largest_free);
  cr_assert_geq(seg->holes[1].size, seg->holes[2].size);
  cr_assert_eq(seg->holes[2].size, blk_size_for(300));
  uint64_t frag = 1000000 - seg->largest_free * 1000000 / seg->free_bytes;
  cr_assert_eq(seg->fragmentation_ppm, frag);
  free(seg);
}

Test(snapshot, map_cells_add_up) {
  void *p[40];
  for (int i = 0; i < 40; i++) p[i] = sa_heap_alloc(&heap, 37 * (size_t)(i + 1));
  for (int i = 0; i < 40; i += 3) sa_heap_free(&heap, p[i], "free");
  sa_snap_caps caps = {50, 10, 1000};
  simalloc_snap_header *seg = image(&caps);
  const simalloc_snap_cell *m = SECTION(seg, simalloc_snap_cell, map_offset);
  uint64_t used = 0, fre = 0;
  cr_assert_leq(seg->map_cells, seg->map_cap);
  for (uint32_t i = 0; i < seg->map_cells; i++) {
    cr_assert_leq(m[i].used + m[i].free, seg->map_cell_bytes);
    used += m[i].used;
    fre += m[i].free;
  }
  cr_assert_eq(used, seg->used_bytes);
  cr_assert_eq(fre, seg->free_bytes);
  free(seg);
}

Test(snapshot, histogram_by_power_of_two) {
  sa_heap_alloc(&heap, 24);    /* block 32: class 5 */
  sa_heap_alloc(&heap, 40);    /* block 48: class 5 */
  sa_heap_alloc(&heap, 1000);  /* block 1008: class 9 */
  sa_snap_caps caps = {16, 4, 16};
  simalloc_snap_header *seg = image(&caps);
  const simalloc_snap_hist *h = SECTION(seg, simalloc_snap_hist, hist_offset);
  cr_assert_eq(h[5].used_count, 2);
  cr_assert_eq(h[5].used_bytes, 80);
  cr_assert_eq(h[9].used_count, 1);
  cr_assert_eq(h[9].used_bytes, 1008);
  free(seg);
}

Test(snapshot, block_list_is_cut_at_its_cap) {
  for (int i = 0; i < 30; i++) sa_heap_alloc(&heap, 50);
  sa_snap_caps caps = {16, 4, 10};
  simalloc_snap_header *seg = image(&caps);
  cr_assert_eq(seg->block_count, 10);
  cr_assert_eq(seg->block_total, 31);
  cr_assert(seg->flags & SIMALLOC_SNAP_F_TRUNCATED);
  cr_assert_eq(seg->used_blocks, 30, "totals still count every block");
  free(seg);
}
