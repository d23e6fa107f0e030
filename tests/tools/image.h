/* image.h - snapshot images built by hand for the tools' tests.
 *
 * An image is a complete, valid segment made from a list of blocks laid end
 * to end from offset 0: header, coarse map, histogram, history and block
 * list, with the totals computed from the blocks.  Tests then corrupt one
 * field at a time.
 */
#ifndef TEST_IMAGE_H
#define TEST_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "simalloc/snapshot.h"

typedef struct test_block {
  uint64_t size;        /* multiple of 16 */
  unsigned state;       /* SIMALLOC_SNAP_* */
} test_block;

typedef struct test_image {
  unsigned char *buf;
  size_t len;
  simalloc_snap_header *h;
} test_image;

/* Builds an image of blocks[0..n) with map cells of cell_bytes.  The arena
 * is arena_size bytes (0: exactly the blocks).  Returns 0 or -1. */
int image_build(test_image *img, const test_block *blocks, size_t n,
                uint64_t cell_bytes, uint64_t arena_size);
void image_free(test_image *img);

#endif
