/* simalloc.h - what a program may call on purpose in libsimalloc.
 *
 * Everything else the library exports is the standard malloc family
 * (malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size, free_sized,
 * free_aligned_sized) and glibc's malloc_trim, mallinfo2, mallinfo,
 * malloc_stats and malloc_info, which a program reaches simply by being
 * run with LD_PRELOAD=libsimalloc.so or by linking with -lsimalloc.
 */
#ifndef SIMALLOC_H
#define SIMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A consistent picture of the process heap. */
struct simalloc_stats {
  size_t arena_size;       /* bytes of address space reserved */
  size_t arena_touched;    /* bytes of the arena the heaps ever reached */
  size_t used_bytes;       /* bytes in used blocks, headers included */
  size_t peak_used_bytes;
  size_t free_bytes;       /* free bytes below the top of each heap (holes) */
  size_t largest_free;     /* largest free block, the untouched rest included */
  size_t used_blocks;
  size_t free_blocks;
};

/* Fills *out; returns 0, or -1 if the allocator is not running. */
int simalloc_get_stats(struct simalloc_stats *out);

/* Verifies every heap invariant.  Returns 0 when the heap is sound;
 * otherwise writes one line naming the first broken invariant to stderr
 * and returns -1. */
int simalloc_check(void);

/* The library version, e.g. "0.1.0". */
const char *simalloc_version(void);

#ifdef __cplusplus
}
#endif
#endif
