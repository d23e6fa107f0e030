/* tcache.h - the per-thread cache of recently freed small blocks.
 *
 * In front of the first-fit heaps, each thread keeps, per block size up to
 * SA_TC_MAX_BLOCK (16-byte classes), a short LIFO list of blocks it freed.
 * A small malloc pops one and a small free pushes one (the block of the
 * thread's previous free: see sa_tc_hold): no lock, no shared cache line,
 * a handful of instructions.  The heaps still own the blocks
 * (they stay "used" there, tagged as cached, see block.h), so the policy
 * inside each heap stays address-ordered first fit and the snapshot shows
 * the cached blocks for what they are.
 *
 * The slow paths (tcache.c) serve a request whose list is empty from the
 * next lists up, with a block at most a quarter larger, or else refill the
 * list from the thread's heap with a few first-fit allocations under one
 * lock; they flush half of a full list back: blocks of the thread's own
 * heap are freed (and coalesced) under its lock, others go to their heap's
 * remote list.  A list unchanged over many refills and overflows of its
 * thread goes back whole (tcache.c, sweep).  A cache is flushed whole
 * when its thread exits, when the process's cached bytes pass
 * SIMALLOC_CACHE_LIMIT, and in a forked child for the threads that did not
 * survive the fork.
 */
#ifndef SA_TCACHE_H
#define SA_TCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "block.h"
#include "heap.h"
#include "process.h"
#include "sites.h"

#define SA_TC_MAX_BLOCK 4096u
#define SA_TC_CLASSES   (SA_TC_MAX_BLOCK / SA_ALIGN + 1)  /* index = size / 16 */
#define SA_TC_MAX_REQ   (SA_TC_MAX_BLOCK - SA_OVERHEAD)

/* Blocks of other heaps that this thread frees go back to their heaps'
 * remote lists in batches, gathered in chains by class (tcache.c). */
#define SA_TC_AWAY 32
typedef struct sa_tc_away {
  void *first, *last;
  sa_heap *heap;
  uint32_t n, cls;
} sa_tc_away;

typedef struct sa_tcache {
  void *bin[SA_TC_CLASSES];       /* list heads (payload pointers) */
  uint16_t count[SA_TC_CLASSES];
  uint16_t cap[SA_TC_CLASSES];    /* all 0 until the cache is set up: slow path */
  uint8_t refilled[SA_TC_CLASSES]; /* emptied and refilled since it last overflowed */
  uint16_t seen[SA_TC_CLASSES];   /* each list's mark at the last sweep (tcache.c) */
  unsigned visits;                /* refills and overflows, for the sweeps */
  int64_t sample_left;            /* bytes to allocate before the next site sample */
  size_t bytes;                   /* bytes cached by this thread */
  size_t reported;                /* part of bytes counted in the process total */
  sa_heap *heap;                  /* the heap this thread allocates from */
  uintptr_t own_lo, own_span;     /* where its blocks lie: [own_lo, own_lo + own_span) */
  void *held;                     /* the block freed last, not yet checked (sa_tc_hold) */
  size_t held_size;
  sa_tc_away away[SA_TC_AWAY];    /* other heaps' blocks on their way back */
  size_t away_bytes;              /* in all of them */
  struct sa_tcache *next, *prev;  /* every live cache, for fork */
  int state;                      /* SA_TC_* */
} sa_tcache;

enum { SA_TC_NEW = 0, SA_TC_ACTIVE = 1, SA_TC_DEAD = 2 };

extern __thread sa_tcache sa_tc __attribute__((tls_model("initial-exec")));
extern uint64_t sa_tc_key;  /* the arena's header key */

/* Slow paths. */
void *sa_tc_malloc_slow(size_t n);
void sa_tc_free_slow(void *p, uint64_t head);
void sa_tc_settle_slow(void *p, size_t size);
/* The process exits: the block this thread freed last, held back and not
 * checked yet, goes back to its heap, which checks it. */
void sa_tc_settle_held(void);
/* Frees the block realloc moved away from: a block too large for the cache
 * goes straight back to this thread's heap or to the large blocks' heap
 * (sa_heap_free_moved); other blocks as sa_tc_free. */
void sa_tc_free_moved(void *p);
/* Flushes this thread's cache, or (fork) another, dead thread's. */
void sa_tc_flush_all(sa_tcache *tc);
/* malloc_trim: this thread's cache goes back to the heaps. */
void sa_tc_trim(void);
/* In a forked child: flush the caches of the threads that did not survive. */
void sa_tc_after_fork_child(void);
void sa_tc_registry_lock(void);
void sa_tc_registry_unlock(void);

static inline size_t sa_tc_class(size_t block_size) { return block_size >> 4; }

/* Whether an allocation of a block of s bytes is left unrecorded: counts
 * it towards the next site sample if so (sites.h). */
static inline int sa_tc_unsampled(sa_tcache *tc, size_t s) {
  if (__builtin_expect(tc->sample_left < (int64_t)s, 0)) return 0;
  tc->sample_left -= (int64_t)s;
  return 1;
}

/* Sets or clears TRACKED on the block of payload p. */
static inline void sa_blk_set_tracked(void *p, int on) {
  blk_set_flag((uintptr_t)p - SA_PAYLOAD, SA_TRACKED, on, sa_tc_key);
}

/* A list's head came from the link in a freed block, which a write after
 * free may have overwritten: it must at least lie in the arena, aligned,
 * before anything is read through it or handed out (sa_heap_bad_link
 * reports it otherwise).  A link overwritten with such an address is not
 * caught here. */
static inline int sa_tc_link_sound(const void *p) {
  return sa_in_arena(p) && !((uintptr_t)p & (SA_ALIGN - 1));
}

/* Takes a block off list c, or NULL if the list is empty. */
static inline void *sa_tc_pop(sa_tcache *tc, size_t c) {
  void *p = tc->bin[c];
  if (p) {
    if (__builtin_expect(!sa_tc_link_sound(p), 0)) sa_heap_bad_link("malloc", p);
    void *next = *(void **)p;
    /* The next pop reads next's link: start fetching its line now. */
    __builtin_prefetch(next, 1);
    tc->bin[c] = next;
    tc->count[c]--;
    tc->bytes -= c << 4;
    *blk_tag_ptr(p) = 0;
  }
  return p;
}

/* p, inside the arena with head hd, is the payload of a live block: aligned,
 * a sound used head, and not freed into a cache (whose tag for p is tag). */
static inline int sa_blk_live_tagged(void *p, uint64_t hd, uint64_t tag) {
  uintptr_t a = (uintptr_t)p;
  return !(a & (SA_ALIGN - 1)) && (hd & SA_USED) && *blk_tag_ptr(p) != tag &&
         head_valid(a - SA_PAYLOAD, hd, sa_tc_key);
}

static inline int sa_blk_live(void *p, uint64_t hd) {
  return sa_blk_live_tagged(p, hd, blk_cache_tag((uintptr_t)p, sa_tc_key));
}

/* An allocation to be recorded at its site, or for an empty list, takes
 * the slow path. */
static inline void *sa_tc_malloc(size_t n) {
  if (__builtin_expect(n <= SA_TC_MAX_REQ, 1)) {
    size_t s = blk_size_for(n), c = sa_tc_class(s);
    sa_tcache *tc = &sa_tc;
    if (__builtin_expect(tc->bin[c] != NULL, 1) && sa_tc_unsampled(tc, s)) return sa_tc_pop(tc, c);
  }
  return sa_tc_malloc_slow(n);
}

/* The head after a used block must be intact: a write past the block's
 * end is caught when the block is freed (sa_tc_hold). */
static inline int next_sound(uintptr_t n) {
  uint64_t nh = blk_head(n);
  return (nh & SA_PREV_USED) && head_valid(n, nh, sa_tc_key);
}

/* Caches p, the block of size bytes held back by the thread's previous
 * free, once the head after it is found sound: here if its list has room,
 * else out of line (a full list, a damaged head). */
static inline __attribute__((always_inline)) void sa_tc_settle(sa_tcache *tc, void *p,
                                                               size_t size) {
  size_t c = sa_tc_class(size);
  if (__builtin_expect(tc->count[c] < tc->cap[c] && next_sound((uintptr_t)p - SA_PAYLOAD + size),
                       1)) {
    *(void **)p = tc->bin[c];
    tc->bin[c] = p;
    tc->count[c]++;
    tc->bytes += size;
    return;
  }
  sa_tc_settle_slow(p, size);
}

/* Holding back.  Checking the head after a block reads a line that the
 * program seldom has in its cache, and a free that waited for it would
 * hold back the program's next loads.  So the fast free checks the
 * block's own head and tag, tags it as cached (from here on a second free
 * of it is a double free), starts fetching the next head, and leaves the
 * block in tc->held until the thread's next free, when the line is there:
 * only then is the next head checked and the block cached.  A write past
 * a block's end is so reported, naming the block, at the thread's next
 * free, or when the block is needed sooner (a malloc that finds its list
 * empty), the cache is emptied or the thread or the process exits.  Until
 * then the block is neither in a list nor in its heap. */
static inline __attribute__((always_inline)) void sa_tc_hold(sa_tcache *tc, void *p, uint64_t tag,
                                                             size_t size) {
  __builtin_prefetch((char *)p - SA_PAYLOAD + size + 8);  /* the next head */
  *blk_tag_ptr(p) = tag;
  void *q = tc->held;
  size_t qsize = tc->held_size;
  tc->held = p;
  tc->held_size = size;
  if (q) sa_tc_settle(tc, q, qsize);
}

void sa_tc_free_elsewhere(void *p);

/* Frees p, any pointer the program passes.  The fast path holds back a
 * live block of the thread's own heap (see above): one range test tells
 * it from NULL, a pointer that is not ours and another heap's block,
 * which go out of line (sa_tc_free_elsewhere).  A block recorded at its
 * site, or one freed before the cache is set up, takes the slow path. */
static inline __attribute__((always_inline)) void sa_tc_free(void *p) {
  sa_tcache *tc = &sa_tc;
  if (__builtin_expect((uintptr_t)p - tc->own_lo >= tc->own_span, 0)) {
    sa_tc_free_elsewhere(p);
    return;
  }
  uint64_t hd = blk_head((uintptr_t)p - SA_PAYLOAD);
  uint64_t tag = blk_cache_tag((uintptr_t)p, sa_tc_key);
  size_t size = head_size(hd), c = sa_tc_class(size);
  if (__builtin_expect(c < SA_TC_CLASSES && tc->cap[c] && !(hd & SA_TRACKED) &&
                           sa_blk_live_tagged(p, hd, tag),
                       1)) {
    sa_tc_hold(tc, p, tag, size);
    return;
  }
  sa_tc_free_slow(p, hd);
}

#endif
