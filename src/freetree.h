/* freetree.h - the first-fit index over a heap's free blocks.
 *
 * Two parts.  The free blocks are linked in address order through the
 * nodes inside them (block.h).  Outside the blocks, the heap's unit range
 * is cut into chunks of SA_CHUNK_BYTES, and a summary records, for each
 * chunk, its first free block and the size of the largest free block that
 * starts in it.  Above those per-chunk maxima sits an implicit 16-ary tree
 * of maxima: every entry of a level is the largest of its 16 children one
 * level down, so a group of 16 siblings fills one cache line, and the top
 * level is a single group.
 *
 * First fit descends the summary to the lowest chunk holding a large
 * enough block, then walks that chunk's few free blocks in address order.
 * An insert finds its neighbours in the list through its chunk (or, if the
 * chunk is empty, through the next chunk that is not); a removal unlinks
 * the block and recomputes its chunk's maximum from the chunk's blocks.
 * Changes of a chunk's maximum go up the summary only as far as they make
 * a difference.  Every operation costs O(log16 chunks) summary entries,
 * mostly in cache, plus the free blocks of one chunk.  Searches start at
 * the lowest level whose first group covers every chunk in use.
 *
 * The summary's memory is the caller's (sa_tree_bytes says how much) but
 * for the smallest heaps.  It need not be zeroed: the index clears it a
 * stretch at a time as the blocks it holds reach higher chunks, so pages
 * the heap never reaches stay untouched.  The entries of every level for
 * the first 512 chunks (1 MiB) lie together in the summary's head, less
 * than a page, so a heap that small touches one page of summary.
 *
 * Links are 32-bit unit offsets from the heap's origin.  A link that does
 * not lead back (a neighbour that does not name the block) or that runs
 * backwards means a damaged index and is fatal.
 */
#ifndef SA_FREETREE_H
#define SA_FREETREE_H

#include <stddef.h>
#include <stdint.h>

#define SA_CHUNK_SHIFT  11    /* chunks of 2 KiB */
#define SA_CHUNK_BYTES  ((size_t)1 << SA_CHUNK_SHIFT)
#define SA_TREE_LEVELS  8     /* enough for 2^32 units */

typedef struct sa_freetree {
  uintptr_t origin;     /* address of unit offset 0; no block starts there */
  /* level[0]: the chunks' maxima, in units; first: where each chunk's
   * first free block is.  The entries of the lowest chunks are kept apart,
   * in the summary's head (freetree.c): low_len[l] entries at low[l]. */
  uint32_t *low[SA_TREE_LEVELS], *level[SA_TREE_LEVELS];
  uint32_t low_len[SA_TREE_LEVELS];
  uint32_t len[SA_TREE_LEVELS];     /* entries per level, multiples of 16 */
  uint8_t *first_low, *first;
  uint32_t top;         /* the top level; it has at most 16 entries */
  uint32_t low_top;     /* the lowest level whose group 0 covers the chunks in use */
  uint32_t ready;       /* chunks below this have their summary cleared */
  uint32_t head, tail;  /* the lowest and highest free block, or 0 */
  uint32_t small[32] __attribute__((aligned(64)));  /* the summary of a small heap */
} sa_freetree;

/* Entry i of level l (a group of 16 from there when i is a multiple of
 * 16): in the summary's head for the lowest chunks, else in the level's
 * own array. */
static inline uint32_t *sa_tree_entry(const sa_freetree *t, uint32_t l, uint32_t i) {
  return i < t->low_len[l] ? t->low[l] + i : t->level[l] + (i - t->low_len[l]);
}

/* Bytes of summary the caller provides for unit offsets below units: 0 if
 * there are at most 16 chunks, whose summary the index keeps itself. */
size_t sa_tree_bytes(size_t units);
/* Bytes of the summary's head, which holds the entries of the lowest
 * chunks, if it is less than a page (else 0): a summary that starts that
 * many bytes before a page boundary shares one page with what precedes
 * it for as long as the heap's blocks stay in those chunks. */
size_t sa_tree_lead(size_t units);
/* mem: sa_tree_bytes(units) bytes, 64-byte aligned.  The index must not
 * move once made. */
void sa_tree_init(sa_freetree *t, uintptr_t origin, void *mem, size_t units);
/* b is a free block whose head is written; it joins the index. */
void sa_tree_insert(sa_freetree *t, uintptr_t b);
void sa_tree_remove(sa_freetree *t, uintptr_t b);
/* nb takes the place of old: no other free block lies between them.  The
 * caller has written nb's head and copied old's node into nb's node (the
 * two may overlap, so only the caller can do it in the right order). */
void sa_tree_replace(sa_freetree *t, uintptr_t old, uintptr_t nb);
/* b grew (its address did not). */
void sa_tree_grew(sa_freetree *t, uintptr_t b);
/* Lowest-addressed free block of at least size bytes, or 0. */
uintptr_t sa_tree_first_fit(const sa_freetree *t, size_t size);
size_t sa_tree_largest(const sa_freetree *t);

/* Walks in order over the free blocks of at least size bytes: the lowest
 * one above b (b = 0: the lowest of all), and the highest one below b
 * (b = 0: the highest of all); 0 when there is none.  The index must not
 * change between steps, but the blocks' other bytes may. */
uintptr_t sa_tree_next_at_least(const sa_freetree *t, uintptr_t b, size_t size);
uintptr_t sa_tree_prev_at_least(const sa_freetree *t, uintptr_t b, size_t size);

/* Checks the list's order and links, the sizes the nodes record, each
 * chunk's first block and maximum, and the summary's maxima above them;
 * calls visit(b, ctx) for each block in address order.  Returns the block
 * count, or -1 and sets *why if the index is damaged. */
long sa_tree_check(const sa_freetree *t, void (*visit)(uintptr_t, void *),
                   void *ctx, const char **why);

#endif
