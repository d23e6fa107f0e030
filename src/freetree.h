/* freetree.h - the first-fit index over a heap's free blocks.
 *
 * A treap ordered by address in which every node also knows the largest
 * block size in its subtree.  One descent finds the lowest-addressed free
 * block of at least a given size: go left while the left subtree has a fit,
 * else take this node if it fits, else go right.
 *
 * A node's priority is a keyed hash of its address, so it is not stored:
 * the hash is a bijection on 32-bit offsets, so no two nodes tie, and the
 * priorities look random whatever the order of addresses, which keeps the
 * depth O(log n) in expectation.  The space a stored priority would take
 * holds the node's parent instead, so that removing, moving or resizing a
 * node works upwards from the node itself and stops as soon as the
 * subtree maxima above it stop changing, rather than descending from the
 * root to find it.  Every operation is O(depth); most touch only the node,
 * its parent and its children.
 *
 * The nodes live inside the free blocks themselves (block.h); the tree
 * reads a block's size from its head.  Links are 32-bit unit offsets from
 * the heap's origin.  A link that does not lead back (a parent that does
 * not hold its child) means a damaged tree and is fatal.
 */
#ifndef SA_FREETREE_H
#define SA_FREETREE_H

#include <stddef.h>
#include <stdint.h>

/* Treap depth is O(log n) with overwhelming probability; a deeper walk
 * means a damaged tree (a cycle). */
#define SA_TREE_MAX_DEPTH 192

typedef struct sa_freetree {
  uintptr_t origin;  /* address of unit offset 0; no block starts there */
  uint32_t root;
  uint32_t key;      /* keys the priorities */
} sa_freetree;

void sa_tree_init(sa_freetree *t, uintptr_t origin, uint32_t seed);
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

/* Checks order, parent links, subtree maxima and priorities; calls
 * visit(b, ctx) for each node in address order.  Returns the node count, or -1 and sets
 * *why if the tree is damaged. */
long sa_tree_check(const sa_freetree *t, void (*visit)(uintptr_t, void *),
                   void *ctx, const char **why);

#endif
