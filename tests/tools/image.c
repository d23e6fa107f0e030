/* image.c - see image.h. */
#include "image.h"

#include <stdlib.h>
#include <string.h>

#define HISTORY_CAP 8

static void add_cells(simalloc_snap_cell *map, uint64_t cb, uint64_t off,
                      uint64_t size, unsigned state) {
  while (size > 0) {
    uint64_t k = off / cb, room = (k + 1) * cb - off;
    uint64_t part = room < size ? room : size;
    if (state == SIMALLOC_SNAP_USED)
      map[k].used += part;
    else if (state == SIMALLOC_SNAP_CACHED)
      map[k].cached += part;
    else
      map[k].free += part;
    off += part;
    size -= part;
  }
}

static void add_totals(simalloc_snap_header *h, simalloc_snap_hist *hist,
                       uint64_t off, uint64_t size, unsigned state) {
  int k = 63 - __builtin_clzll(size);
  if (state == SIMALLOC_SNAP_USED) {
    h->used_bytes += size, h->used_blocks++;
    hist[k].used_count++, hist[k].used_bytes += size;
  } else if (state == SIMALLOC_SNAP_CACHED) {
    h->cached_bytes += size, h->cached_blocks++;
  } else {
    h->free_bytes += size, h->free_blocks++;
    hist[k].free_count++, hist[k].free_bytes += size;
    if (size > h->largest_free)
      h->largest_free = size;
    if (h->hole_count < SIMALLOC_SNAP_HOLES) {   /* good enough: first holes */
      h->holes[h->hole_count].offset = off;
      h->holes[h->hole_count].size = size;
      h->hole_count++;
    }
  }
}

int image_build(test_image *img, const test_block *blocks, size_t n,
                uint64_t cell_bytes, uint64_t arena_size) {
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += blocks[i].size;
  if (arena_size < total)
    arena_size = total;
  uint32_t cells = (uint32_t)((total + cell_bytes - 1) / cell_bytes);
  size_t hs = sizeof(simalloc_snap_header);
  size_t map_off = hs, hist_off = map_off + cells * sizeof(simalloc_snap_cell);
  size_t hist_n = 64, hisy_off = hist_off + hist_n * sizeof(simalloc_snap_hist);
  size_t blk_off = hisy_off + HISTORY_CAP * sizeof(simalloc_snap_sample);
  size_t len = blk_off + (n ? n : 1) * sizeof(simalloc_snap_block);

  img->buf = calloc(1, len);
  if (img->buf == NULL)
    return -1;
  img->len = len;
  simalloc_snap_header *h = img->h = (simalloc_snap_header *)img->buf;
  h->magic = SIMALLOC_SNAP_MAGIC;
  h->version = SIMALLOC_SNAP_VERSION;
  h->header_size = (uint32_t)hs;
  h->segment_size = len;
  h->pid = 4242;
  strcpy(h->exe, "/usr/bin/example");
  h->arena_base = 0x7f0000000000;
  h->arena_size = arena_size;
  h->arena_touched = total;
  h->heap_count = 1;
  h->heaps[0].end = total;
  h->map_offset = map_off, h->map_cells = h->map_cap = cells;
  h->map_cell_bytes = cell_bytes;
  h->hist_offset = hist_off, h->hist_classes = (uint32_t)hist_n;
  h->history_offset = hisy_off, h->history_cap = HISTORY_CAP;
  h->blocks_offset = blk_off, h->blocks_cap = n ? n : 1;
  h->block_count = h->block_total = n;

  simalloc_snap_cell *map = (void *)(img->buf + map_off);
  simalloc_snap_hist *hist = (void *)(img->buf + hist_off);
  simalloc_snap_block *bl = (void *)(img->buf + blk_off);
  uint64_t off = 0;
  for (size_t i = 0; i < n; i++) {
    bl[i].offset = off;
    bl[i].size_state = blocks[i].size | blocks[i].state;
    add_cells(map, cell_bytes, off, blocks[i].size, blocks[i].state);
    add_totals(h, hist, off, blocks[i].size, blocks[i].state);
    off += blocks[i].size;
  }
  h->heaps[0].used_bytes = h->used_bytes;
  h->heaps[0].free_bytes = h->free_bytes;
  h->heaps[0].cached_bytes = h->cached_bytes;
  if (h->free_bytes)
    h->fragmentation_ppm = 1000000 - h->largest_free * 1000000 / h->free_bytes;
  h->peak_used_bytes = h->used_bytes;
  return 0;
}

void image_free(test_image *img) {
  free(img->buf);
  img->buf = NULL;
}
