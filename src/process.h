/* process.h - the process's arena and its heaps.
 *
 * One arena is reserved at start-up and cut into equal, power-of-two
 * slices, each a first-fit heap with its own lock: SIMALLOC_HEAPS heaps
 * that threads are spread over, and heap SA_LARGE_HEAP for the requests of
 * at least SIMALLOC_LARGE_THRESHOLD bytes of every thread, so that small
 * blocks never split the holes large ones leave (growing buffers, above
 * all).  The heap that owns a pointer is found from its address alone.  A
 * heap is set up when a thread is first given it (or a full heap sends an
 * allocation on to it): a process that never runs more than one thread
 * touches the pages of one heap only.  Everything comes up lazily on the
 * first call of any entry point (which may come before our constructor
 * runs), once, whatever the number of threads racing into it.
 */
#ifndef SA_PROCESS_H
#define SA_PROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "fmt.h"
#include "heap.h"

#define SA_MAX_HEAPS 64

enum { SA_DOWN = 0, SA_STARTING = 1, SA_READY = 2, SA_FAILED = 3 };

typedef struct sa_arena {
  uintptr_t base;
  size_t size;         /* reserved bytes */
  size_t span;         /* bytes covered by heaps: slices << shift */
  unsigned shift;      /* log2 of a heap's slice */
  int slices;          /* heaps there may be */
  int spread;          /* of which threads are spread over this many */
  size_t large_min;    /* requests this large go to heap SA_LARGE_HEAP; 0: none do */
  int large_open;      /* ... once this is set (sa_process_large) */
  int nheaps;          /* one past the highest heap set up so far */
  uint64_t key;        /* the header key shared by all heaps */
  uint8_t up[SA_MAX_HEAPS];  /* heap i is set up */
  sa_heap heaps[SA_MAX_HEAPS];
} sa_arena;

extern sa_arena sa_arena_g;
extern int sa_state;

/* Out of line: starts the arena; 0 on success, -1 if none could be had. */
int sa_process_start(void);

static inline int sa_process_ready(void) {
  if (__builtin_expect(__atomic_load_n(&sa_state, __ATOMIC_ACQUIRE) == SA_READY, 1)) return 1;
  return sa_process_start() == 0;
}

static inline int sa_in_arena(const void *p) {
  return (uintptr_t)p - sa_arena_g.base < sa_arena_g.span;
}

/* The heap that owns p, which is inside the arena. */
static inline sa_heap *sa_heap_of(const void *p) {
  return &sa_arena_g.heaps[((uintptr_t)p - sa_arena_g.base) >> sa_arena_g.shift];
}

/* The heap that owns p, or NULL (reported as an invalid pointer) if p is
 * not ours. */
static inline sa_heap *sa_process_owner(const void *p, const char *call) {
  if (__builtin_expect(!sa_process_ready() || !sa_in_arena(p), 0)) {
    sa_bad_ptr(call, "invalid pointer", p);
    return NULL;
  }
  return sa_heap_of(p);
}

/* A heap for a new thread, round robin. */
sa_heap *sa_process_pick_heap(void);
/* Whether more threads than heaps have had one: some heap is shared. */
int sa_process_heaps_shared(void);

/* The heap for large blocks, when there is one (large_min != 0): the second
 * slice, so that setting it up sets up no other heap.  It opens once the
 * process has asked for SA_LARGE_OPENING bytes in large requests: a
 * program with a few large blocks keeps them among its small ones, where
 * their space is reused for anything, rather than pay for a heap of their
 * own. */
#define SA_LARGE_HEAP 1
#define SA_LARGE_OPENING ((size_t)4 << 20)
int sa_process_open_large(size_t n);  /* counts n; 1 once open */
static inline int sa_process_large_open(void) {
  return __atomic_load_n(&sa_arena_g.large_open, __ATOMIC_RELAXED);
}
/* Whether a request of n bytes goes to the large blocks' heap. */
static inline int sa_process_large(size_t n) {
  return sa_arena_g.large_min && n >= sa_arena_g.large_min &&
         (sa_process_large_open() || sa_process_open_large(n));
}
static inline int sa_is_large_heap(const sa_heap *h) {
  return sa_arena_g.large_min && h == &sa_arena_g.heaps[SA_LARGE_HEAP];
}

/* One past the highest heap set up so far; it only grows.  Below it, the
 * large blocks' heap may not be set up (sa_process_heap_up). */
static inline int sa_process_heaps(void) {
  return __atomic_load_n(&sa_arena_g.nheaps, __ATOMIC_ACQUIRE);
}
static inline int sa_process_heap_up(int i) {
  return __atomic_load_n(&sa_arena_g.up[i], __ATOMIC_ACQUIRE);
}
/* The heaps set up so far, in address order, into out; returns how many. */
int sa_process_heap_list(sa_heap *out[SA_MAX_HEAPS]);

/* Heap i (< slices), set up first if it is not yet. */
sa_heap *sa_process_heap(int i);

/* What glibc's mallinfo2, mallinfo, malloc_stats and malloc_info report,
 * from the heaps (override.c). */
typedef struct sa_usage {
  size_t system;       /* bytes below where the heap's pages may be resident */
  size_t system_max;   /* the most system ever was */
  size_t in_use;       /* in used blocks, those waiting in thread caches too */
  size_t top;          /* of system, the top's part */
  size_t free_blocks;
} sa_usage;
/* The bytes of system that are not in use: free blocks, the top's part. */
static inline size_t sa_usage_free(const sa_usage *u) {
  return u->system > u->in_use ? u->system - u->in_use : 0;
}
/* The calling thread's cache goes back to the heaps, and every heap gives
 * back the whole pages of its free blocks, keeping pad bytes at its top;
 * 1 if any page went back. */
int sa_process_trim(size_t pad);
/* The heaps' usage summed in *total. */
void sa_process_usage(sa_usage *total);
/* glibc's reports on the heaps, handed to out a piece at a time: with xml
 * 0 malloc_stats's text, one "Arena" per heap, else malloc_info's XML,
 * one <heap> per heap. */
typedef void (*sa_sink)(void *ctx, const char *s, size_t n);
void sa_process_report(int xml, sa_sink out, void *ctx);

/* Call counts for SIMALLOC_STATS, kept only when it is on. */
typedef enum sa_call {
  SA_CALL_MALLOC, SA_CALL_FREE, SA_CALL_CALLOC, SA_CALL_REALLOC,
  SA_CALL_ALIGNED, SA_CALL_USABLE,
  SA_CALL_REFILL, SA_CALL_FLUSH, SA_CALL_REMOTE,  /* cache slow paths */
  SA_CALL_COUNT
} sa_call;

extern int sa_counting;
extern size_t sa_calls[SA_CALL_COUNT];

static inline void sa_count(sa_call c) {
  if (__builtin_expect(sa_counting, 0)) __atomic_fetch_add(&sa_calls[c], 1, __ATOMIC_RELAXED);
}

/* SIMALLOC_CHECK=N: every N calls, every heap is verified. */
extern size_t sa_check_every;
void sa_check_slow(void);
static inline void sa_check_tick(void) {
  if (__builtin_expect(sa_check_every != 0, 0)) sa_check_slow();
}

/* Whether SIMALLOC_STATS or SIMALLOC_CHECK is on: the entry points test
 * this one word, and only then count the call and tick the check. */
extern int sa_hooks;
static inline int sa_hooked(void) { return __builtin_expect(sa_hooks != 0, 0); }
static inline void sa_hook(sa_call c) {
  sa_count(c);
  sa_check_tick();
}

#endif
