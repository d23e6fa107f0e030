/* freetree.h - the first-fit index over a heap's free blocks.
 *
 * A treap ordered by address in which every node also knows the largest
 * block size in its subtree.  One descent finds the lowest-addressed free
 * block of at least a given size: go left while the left subtree has a fit,
 * else take this node if it fits, else go right.  Every operation is
 * O(depth), and the random priorities keep the depth O(log n) in
 * expectation whatever the order of addresses.
 *
 * The nodes live inside the free blocks themselves (block.h); the tree
 * reads a block's size from its head.  Links are 32-bit unit offsets from
 * the heap's origin.
 */
#ifndef SA_FREETREE_H
#define SA_FREETREE_H

#include <stddef.h>
#include <stdint.h>

/* A path from the root down to a node: the links (the root, or a parent's
 * left or right) that lead there.  Treap depth is O(log n) with
 * overwhelming probability; a deeper path means a damaged tree. */
#define SA_TREE_MAX_DEPTH 192

typedef struct sa_tree_path {
  int n;
  uint32_t *link[SA_TREE_MAX_DEPTH];
} sa_tree_path;

typedef struct sa_freetree {
  uintptr_t origin;  /* address of unit offset 0; no block starts there */
  uint32_t root;
  uint32_t rng;      /* xorshift state for priorities */
  uint32_t found;    /* the node the last first fit found, until a change */
  sa_tree_path found_path;
} sa_freetree;

void sa_tree_init(sa_freetree *t, uintptr_t origin, uint32_t seed);
/* b is a free block whose head is written; it joins the index. */
void sa_tree_insert(sa_freetree *t, uintptr_t b);
void sa_tree_remove(sa_freetree *t, uintptr_t b);
/* nb takes the place of old: no other free block lies between them.  The
 * caller has written nb's head and copied old's node into nb's node (the
 * two may overlap, so only the caller can do it in the right order). */
void sa_tree_replace(sa_freetree *t, uintptr_t old, uintptr_t nb);
/* b's size changed (its address did not). */
void sa_tree_resized(sa_freetree *t, uintptr_t b);
/* Lowest-addressed free block of at least size bytes, or 0.  Remembers
 * the way there, so that taking the block out or replacing it next costs
 * no second descent. */
uintptr_t sa_tree_first_fit(sa_freetree *t, size_t size);
size_t sa_tree_largest(const sa_freetree *t);

/* Checks order, subtree maxima and priorities; calls visit(b, ctx) for
 * each node in address order.  Returns the node count, or -1 and sets
 * *why if the tree is damaged. */
long sa_tree_check(const sa_freetree *t, void (*visit)(uintptr_t, void *),
                   void *ctx, const char **why);

#endif
