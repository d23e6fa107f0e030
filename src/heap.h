/* heap.h - one first-fit heap over a contiguous region of memory.
 *
 * A heap is a value: the region it manages, its free index and its lock.
 * The process heap lives in the big arena (see process.c); the interactive
 * shell and the unit tests make small private heaps over their own buffers.
 *
 * Policy: address-ordered first fit.  A request is served from the
 * lowest-addressed free block that is large enough; the block is split and
 * the remainder stays free.  A freed block is merged at once with free
 * physical neighbours, so no two free blocks are ever adjacent.  The free
 * blocks are indexed (freetree.h) so the search is O(log n).
 */
#ifndef SA_HEAP_H
#define SA_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "freetree.h"
#include "lock.h"

/* Remote lists per block size class (size / 16), the last for all larger. */
#define SA_REMOTE_LISTS 258

/* Counters kept under the heap lock. */
typedef struct sa_heap_stats {
  size_t used_bytes;   /* bytes in used blocks, headers included */
  size_t used_blocks;
  size_t free_blocks;
  size_t peak_used;    /* high-water mark of used_bytes */
} sa_heap_stats;

typedef struct sa_heap {
  sa_lock lock;
  sa_freetree tree;    /* index of the free blocks but the top */
  uintptr_t top;       /* the free block that ends the heap, or 0 */
  uintptr_t start;     /* first block */
  uintptr_t epilogue;  /* the zero-sized block that ends the heap */
  uintptr_t end;       /* one past the epilogue; the index's summary follows */
  uintptr_t touched;   /* nothing at or above this may be resident (heap.c) */
  uintptr_t reached;   /* the highest touched ever was */
  uint64_t key;        /* keys the header checks */
  size_t release_threshold;  /* free blocks this big may give pages back ... */
  size_t retain;       /* ... once more than this many of their bytes are dirty */
  size_t dirty;        /* bytes in such blocks not given back (heap.c) */
  uint64_t purged_at;  /* second of the last purge by age */
  uint64_t decay;      /* seconds a dirty block may stay unused */
  uint64_t hold;       /* seconds too much dirty memory waits before it goes (0: at once) */
  uint64_t high_at;    /* when too much was first found (coarse second + 1), or 0 */
  int release_pages;   /* 0 for heaps over caller memory: never madvise */
  sa_heap_stats st;
  size_t remote_bytes; /* about how many bytes wait on the remote lists */
  void *remote[SA_REMOTE_LISTS];  /* blocks other threads freed into this heap */
} __attribute__((aligned(64))) sa_heap;

/* Result of a consistency check; ok != 0 when the heap is sound. */
typedef struct sa_heap_report {
  int ok;
  const char *what;    /* first violated invariant, static string */
  uintptr_t where;     /* address of the offending block, or 0 */
} sa_heap_report;

/* One block as seen by sa_heap_walk.  A cached block is used as far as
 * the heap knows, but the program has freed it: it waits in a thread cache
 * or on the heap's remote list. */
typedef struct sa_block_info {
  uintptr_t addr;      /* block start (header) */
  size_t size;         /* whole block size, 16-byte multiple */
  int used;
  int cached;
  int tracked;         /* used, and recorded in the site table */
} sa_block_info;

/* Creates a heap over [mem, mem + size).  mem must be 16-byte aligned and
 * size at least SA_HEAP_MIN_SIZE.  release_pages != 0 lets the heap return
 * pages of large free blocks to the kernel (mem must then be page aligned
 * and come from mmap).  The free index's summary (about 0.25% of the size)
 * takes the region's high end.  Returns 0, or -1 if the region is
 * unusable. */
#define SA_HEAP_MIN_SIZE 64
int sa_heap_init(sa_heap *h, void *mem, size_t size, int release_pages);
/* What a new heap starts with for release_threshold, retain and decay:
 * also the defaults of SIMALLOC_RELEASE_THRESHOLD, _RETAIN and _DECAY. */
#define SA_HEAP_RELEASE_THRESHOLD ((size_t)128 << 10)
#define SA_HEAP_RETAIN            ((size_t)2 << 20)
#define SA_HEAP_DECAY             5
/* The same with a given header key: heaps of one arena share theirs, so a
 * block can be checked without knowing its heap. */
int sa_heap_init_keyed(sa_heap *h, void *mem, size_t size, int release_pages, uint64_t key);

/* All of these take and release the heap lock themselves. */
void *sa_heap_alloc(sa_heap *h, size_t n);
void *sa_heap_calloc(sa_heap *h, size_t n);            /* zeroed */
void *sa_heap_alloc_aligned(sa_heap *h, size_t align, size_t n);
void *sa_heap_realloc(sa_heap *h, void *p, size_t n);  /* n > 0, p != NULL */
void sa_heap_free(sa_heap *h, void *p, const char *call);
size_t sa_heap_usable(sa_heap *h, const void *p, const char *call);
int sa_heap_contains(const sa_heap *h, const void *p);
/* malloc_trim: every free block, and the top past pad bytes, gives back
 * its whole pages, whatever its size and age (the blocks on the remote
 * lists are freed first); returns 1 if any page went back. */
int sa_heap_trim(sa_heap *h, size_t pad);

/* For the thread caches (tcache.c), which batch their work under one lock.
 * sa_heap_lock also returns the blocks waiting on the remote list. */
void sa_heap_lock(sa_heap *h);
void sa_heap_unlock(sa_heap *h);
/* Up to max blocks of size bytes, as max first fits in a row would give
 * them, with one search of the index; returns how many (0: none fits).
 * They lie side by side: block i's payload is *first + i * size.  Only
 * the last may be larger than size: by less than SA_MIN_BLOCK, or, with
 * line_end and blocks under a cache line, by up to 48 bytes more, so
 * that the payload of the block after the run starts a cache line (the
 * thread that takes the next run then shares no line with this one). */
int sa_heap_alloc_run_locked(sa_heap *h, size_t size, void **first, int max, int line_end);
void sa_heap_free_locked(sa_heap *h, void *p, const char *call);
/* Frees k used blocks of size bytes that lie side by side, the lowest at
 * payload lo, as sa_heap_free_locked would one by one, but with one merge
 * and one index update. */
void sa_heap_free_run_locked(sa_heap *h, void *lo, unsigned k, size_t size, const char *call);
/* A thread cache and the remote lists chain their blocks through the
 * first payload word, which a program that writes to a block after
 * freeing it overwrites: a link that cannot be a block is reported with
 * this (it aborts), never followed. */
_Noreturn void sa_heap_bad_link(const char *call, const void *link);
/* link, read from a block of h, if it is NULL or could be a block of h. */
void *sa_heap_checked_link(const sa_heap *h, void *link);

/* The remote lists: lock-free stacks of blocks that threads freed into a
 * heap they do not hold, chained through their first payload word and
 * tagged as cached, one list per size class.  Pushes a batch: the chain
 * first..last of n blocks of one class, bytes in all.  A thread of the
 * heap takes a class's list into its cache (sa_heap_remote_take, then
 * sa_heap_remote_taken with the bytes) a batch at a time: the third
 * payload word of a batch's first block names its last block and its
 * length (sa_batch_*), so the blocks in between, which another core freed,
 * are not read until they are used.  Whoever locks the heap frees the
 * large blocks' list, and all of them once too much waits
 * (sa_heap_remote_too_much) or before the heap grows
 * (sa_heap_must_grow_locked); so does the pusher when too much waits, if
 * the lock is free. */
void sa_heap_remote_push(sa_heap *h, size_t cls, void *first, void *last, size_t n, size_t bytes);
void *sa_heap_remote_take(sa_heap *h, size_t cls);
/* Whether blocks wait on list cls (a hint: they may be taken meanwhile). */
static inline int sa_heap_remote_waiting(const sa_heap *h, size_t cls) {
  return __atomic_load_n(&h->remote[cls], __ATOMIC_RELAXED) != NULL;
}
/* A batch's record: its last block's unit offset from the heap's start in
 * the high half (blocks are < 64 GiB), its length in the low half. */
static inline uint64_t *sa_batch_word(void *first) { return (uint64_t *)first + 2; }
static inline void sa_batch_set(const sa_heap *h, void *first, void *last, size_t n) {
  *sa_batch_word(first) = (uint64_t)(((uintptr_t)last - h->start) >> 4) << 32 | (uint32_t)n;
}
static inline void *sa_batch_last(const sa_heap *h, void *first) {
  return (void *)(h->start + ((*sa_batch_word(first) >> 32) << 4));
}
static inline size_t sa_batch_length(void *first) { return (uint32_t)*sa_batch_word(first); }
static inline void sa_heap_remote_taken(sa_heap *h, size_t bytes) {
  __atomic_sub_fetch(&h->remote_bytes, bytes, __ATOMIC_RELAXED);
}
/* Too much waits: more than SA_REMOTE_FLOOR bytes and more than half of
 * what the heap has in use (the waiting blocks included).  A flow of
 * blocks from the threads that free them to the heap's threads that
 * allocate keeps far less than that waiting; blocks nobody takes back
 * (their heap's threads left, or refills borrow from other lists) are
 * freed. */
#define SA_REMOTE_FLOOR ((size_t)1 << 20)
static inline int sa_heap_remote_too_much(const sa_heap *h, size_t waiting) {
  return waiting > SA_REMOTE_FLOOR &&
         waiting > __atomic_load_n(&h->st.used_bytes, __ATOMIC_RELAXED) / 2;
}
static inline size_t sa_remote_list(size_t block_size) {
  size_t c = block_size >> 4;
  return c < SA_REMOTE_LISTS - 1 ? c : SA_REMOTE_LISTS - 1;
}

/* Bytes the heap holds free below the highest address it touched: memory
 * that is resident already, or was.  A hint, read without the lock. */
static inline size_t sa_heap_idle(const sa_heap *h) {
  size_t span = __atomic_load_n(&h->touched, __ATOMIC_RELAXED) - h->start;
  size_t used = __atomic_load_n(&h->st.used_bytes, __ATOMIC_RELAXED);
  return span > used ? span - used : 0;
}
/* Whether a block of size bytes must come from memory the heap never
 * touched: no free block of the index fits, and the top would have to
 * reach higher.  The lock must be held.  If so and blocks wait on the
 * remote lists, they are freed first: they may merge into a hole that
 * fits, and blocks of other classes that wait there would otherwise stay
 * apart while the heap grows (a producer whose consumers free blocks of
 * many sizes). */
int sa_heap_must_grow_locked(sa_heap *h, size_t size);

/* Frees the block at p, whose contents realloc has moved elsewhere, and
 * keeps the heap's resident memory in bounds (heap.c, realloc_trim). */
void sa_heap_free_moved(sa_heap *h, void *p);
/* Frees the block at p (moved: as sa_heap_free_moved) and gives back the
 * pages of the hole it leaves at once: for a block of a size this heap no
 * longer serves, whose hole would otherwise stay resident unused. */
void sa_heap_free_giving_back(sa_heap *h, void *p, int moved);

/* Resizes the block at p in place if possible: 1 if done, 0 if not
 * possible, -1 if p is not a live block (reported, see sa_bad_ptr).
 * Shrinking keeps the resident memory in bounds like sa_heap_free_moved. */
int sa_heap_resize_in_place(sa_heap *h, void *p, size_t n);

/* Walks every block in address order under the lock; stops early when fn
 * returns non-zero.  fn must not call back into this heap. */
void sa_heap_walk(sa_heap *h, int (*fn)(const sa_block_info *, void *), void *ctx);
/* Same, for a caller that already holds the lock. */
void sa_heap_walk_locked(sa_heap *h, int (*fn)(const sa_block_info *, void *), void *ctx);

/* Largest free block (0 if none); the lock must be held. */
size_t sa_heap_largest_free_locked(const sa_heap *h);

/* Verifies every invariant: block chain, tags, no adjacent free blocks,
 * sizes adding up, and the index agreeing with the blocks. */
sa_heap_report sa_heap_check(sa_heap *h);
sa_heap_report sa_heap_check_locked(sa_heap *h);

/* Offset of a payload pointer from the heap start (for display). */
static inline size_t sa_heap_offset(const sa_heap *h, const void *p) {
  return (size_t)((uintptr_t)p - h->start);
}

#endif
