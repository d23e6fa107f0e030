/* block.h - the layout of a block and its accessors.
 *
 * The heap is a contiguous run of blocks, each a multiple of 16 bytes and
 * starting on a 16-byte boundary, ended by a zero-sized epilogue:
 *
 *  used block at b                     free block at b
 *  +------------------------+ b        +------------------------+ b
 *  | prev_foot (8)          |          | prev_foot (8)          |
 *  +------------------------+ b+8      +------------------------+ b+8
 *  | head: size|check|flags |          | head: size|check|flags |
 *  +------------------------+ b+16     +------------------------+ b+16
 *  | payload ...            |          | index node: next, prev,|
 *  |                        |          |   size in units        |
 *  |                        |          +------------------------+ b+32
 *  |                        |          | (unused, maybe released|
 *  |                        |          |  to the kernel)        |
 *  +- - - - - - - - - - - - + b+size   +------------------------+ b+size
 *  | ...last 8 payload bytes| = the next block's prev_foot = size (footer)
 *  +------------------------+ b+size+8
 *
 * head, 64 bits:
 *   63..32  size in 16-byte units (blocks are < 64 GiB)
 *   31..3   check: a keyed hash of the block's address, size and flags,
 *           so a header that was overwritten or never written is noticed
 *    2      CLEAN: (free blocks) the whole pages of the block after its
 *           index node read as zero;
 *           TRACKED: (used blocks) the block is recorded at an allocation
 *           site (sites.h) and ends with a trailer
 *    1      PREV_USED: the block before this one is in use
 *    0      USED
 *
 * prev_foot belongs to the previous block: while that block is free it
 * holds its size (the boundary tag that lets free() find it); while it is
 * used it is the last 8 bytes of its payload.  So a used block costs 8
 * bytes of overhead, and the payload of a block of size s is s - 8 bytes.
 *
 * A TRACKED block gives its last 8 bytes (at b+size, where the next
 * block's prev_foot is) to a trailer naming its allocation site: the site
 * id in the low 32 bits, a keyed check of the id and the trailer's address
 * in the high 32, so that a trailer overwritten by the program is noticed.
 * Its payload is then s - 16 bytes (blk_usable).
 *
 * Invariants (checked by sa_heap_check):
 *   - blocks tile [start, epilogue) exactly; sizes are >= SA_MIN_BLOCK;
 *   - no two free blocks are adjacent (frees coalesce immediately), so
 *     the PREV_USED flag of a free block is always set;
 *   - every free block but the top is in the free index (freetree.h) and
 *     every free block's footer equals its size;
 *   - a block's PREV_USED flag tells the state of the block before it.
 */
#ifndef SA_BLOCK_H
#define SA_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#define SA_ALIGN      16u
#define SA_LINE       64u   /* a cache line: what threads should not share */
#define SA_PAYLOAD    16u   /* payload offset from the block start */
#define SA_OVERHEAD   8u    /* head; prev_foot is lent to the payload */
#define SA_MIN_BLOCK  32u   /* a free block must hold head + index node */
#define SA_UNIT_SHIFT 4
#define SA_MAX_BLOCK  (((size_t)UINT32_MAX) << SA_UNIT_SHIFT)

#define SA_USED      UINT64_C(1)
#define SA_PREV_USED UINT64_C(2)
#define SA_CLEAN     UINT64_C(4)
#define SA_TRACKED   UINT64_C(4)  /* the same bit, in used blocks */
#define SA_FLAGS     UINT64_C(7)
#define SA_CHECK     UINT64_C(0xfffffff8)

/* The index node kept in a free block's first payload bytes: the links of
 * the address-ordered list of free blocks, as unit offsets from the heap
 * origin (0 meaning none), and the block's size as the index knows it. */
typedef struct sa_node {
  uint32_t next, prev;
  uint32_t units;
  uint32_t spare;
} sa_node;

static inline uint64_t *blk_head_ptr(uintptr_t b) { return (uint64_t *)(b + 8); }
/* A head as it is now: used blocks' heads may change under another thread
 * (blk_set_flag), so they are read atomically. */
static inline uint64_t blk_head(uintptr_t b) {
  return __atomic_load_n(blk_head_ptr(b), __ATOMIC_RELAXED);
}
static inline uint64_t *blk_foot_of_prev(uintptr_t b) { return (uint64_t *)b; }
static inline sa_node *blk_node(uintptr_t b) { return (sa_node *)(b + SA_PAYLOAD); }
static inline void *blk_payload(uintptr_t b) { return (void *)(b + SA_PAYLOAD); }
static inline uintptr_t blk_of_payload(const void *p) { return (uintptr_t)p - SA_PAYLOAD; }

static inline size_t head_size(uint64_t h) { return (size_t)(h >> 32) << SA_UNIT_SHIFT; }
static inline uint32_t head_units(uint64_t h) { return (uint32_t)(h >> 32); }
static inline uint64_t head_flags(uint64_t h) { return h & SA_FLAGS; }

/* The check bits of a header: a keyed mix of where it is and what it says.
 * The size and flags are rotated to the low half, the address and key mixed
 * in, and the check is the top 29 bits of one odd multiply.  Flipping any
 * one bit of the mixed word changes the product by the multiplier shifted,
 * at least 2^35 either way for this multiplier, so it always shows in the
 * check; a header overwritten by anything else passes one time in 2^29. */
static inline uint64_t head_check(uintptr_t b, uint64_t size_and_flags, uint64_t key) {
  uint64_t sf = (size_and_flags << 32) | (size_and_flags >> 32);
  uint64_t x = (b ^ key ^ sf) * UINT64_C(0x9e3779b97f4a7c15);
  return (x >> 32) & SA_CHECK;
}

static inline uint64_t head_make(uintptr_t b, size_t size, uint64_t flags, uint64_t key) {
  uint64_t sf = ((uint64_t)(size >> SA_UNIT_SHIFT) << 32) | flags;
  return sf | head_check(b, sf, key);
}

static inline int head_valid(uintptr_t b, uint64_t h, uint64_t key) {
  return (h & SA_CHECK) == head_check(b, h & ~SA_CHECK, key);
}

/* A block the program freed but the heap has not taken back yet (it sits
 * in a thread cache or on a remote list) is still a used block to the
 * heap.  It is told apart by a tag in its second payload word, keyed like
 * the header check; the first word links it into its list.  The tag is
 * cleared when the block leaves the cache. */
static inline uint64_t blk_cache_tag(uintptr_t payload, uint64_t key) {
  return (payload ^ key) * UINT64_C(0xd6e8feb86659fd93) | 1;
}
static inline uint64_t *blk_tag_ptr(void *payload) { return (uint64_t *)payload + 1; }

/* Sets or clears one flag of a live block's head atomically: its owner may
 * set TRACKED while the heap, under its lock, rewrites PREV_USED. */
static inline void blk_set_flag(uintptr_t b, uint64_t flag, int on, uint64_t key) {
  uint64_t *hp = blk_head_ptr(b), old = __atomic_load_n(hp, __ATOMIC_RELAXED), nw;
  do {
    uint64_t sf = ((old & ~SA_CHECK) & ~flag) | (on ? flag : 0);
    nw = sf | head_check(b, sf, key);
  } while (!__atomic_compare_exchange_n(hp, &old, nw, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

#define SA_TRAILER 8u

/* Payload bytes of a used block with head h. */
static inline size_t blk_usable(uint64_t h) {
  return head_size(h) - SA_OVERHEAD - ((h & SA_TRACKED) ? SA_TRAILER : 0);
}

/* The trailer of TRACKED block b of size bytes. */
static inline uint64_t *blk_trailer_ptr(uintptr_t b, size_t size) { return (uint64_t *)(b + size); }

static inline uint64_t trailer_check(uintptr_t at, uint32_t site, uint64_t key) {
  uint64_t x = (at ^ key) + site * UINT64_C(0x9e3779b97f4a7c15);
  x ^= x >> 32;
  x *= UINT64_C(0xd6e8feb86659fd93);
  return x & UINT64_C(0xffffffff00000000);
}

static inline uint64_t trailer_make(uintptr_t at, uint32_t site, uint64_t key) {
  return trailer_check(at, site, key) | site;
}

/* The site a trailer t read at `at` names, or UINT32_MAX if it is damaged. */
static inline uint32_t trailer_site(uintptr_t at, uint64_t t, uint64_t key) {
  uint32_t site = (uint32_t)t;
  return (t & ~UINT64_C(0xffffffff)) == trailer_check(at, site, key) ? site : UINT32_MAX;
}

/* Bytes of block for a request of n payload bytes (n <= PTRDIFF_MAX). */
static inline size_t blk_size_for(size_t n) {
  size_t s = (n + SA_OVERHEAD + SA_ALIGN - 1) & ~(size_t)(SA_ALIGN - 1);
  return s < SA_MIN_BLOCK ? SA_MIN_BLOCK : s;
}

#endif
