/* tcache.c - the slow paths of the per-thread caches (see tcache.h):
 * setting a cache up, refilling and flushing its lists, the process-wide
 * limit, thread exit and fork. */
#include "tcache.h"

#include <errno.h>
#include <string.h>

#include "fmt.h"
#include "lock.h"
#include "options.h"
#include "os.h"
#include "process.h"
#include "snapshot.h"
#include "unwind.h"

__thread sa_tcache sa_tc __attribute__((tls_model("initial-exec")));
uint64_t sa_tc_key;

#define REFILL_MAX 64  /* blocks a refill takes besides the one asked for */

/* Each cache class has a remote list of its own (heap.h). */
_Static_assert(SA_TC_CLASSES < SA_REMOTE_LISTS, "a remote list per cache class");

static sa_lock registry_lock;
static sa_tcache *registry;
static sa_os_exit_hook exit_hook;
static size_t process_cached;  /* bytes in all caches, updated on slow paths */
static uint8_t class_refills[SA_TC_CLASSES];  /* refills of each class so far, up to 8 */

static void on_thread_exit(void *arg);

/* Called once by process start-up, before any cache exists. */
void sa_tc_init_process(uint64_t key);
void sa_tc_init_process(uint64_t key) {
  sa_tc_key = key;
  sa_os_exit_hook_create(&exit_hook, on_thread_exit);
}

/* A list's length: it starts at SIMALLOC_CACHE_SIZE bytes (within
 * [2, 128] blocks) and doubles, up to GROWTH times that (and at most
 * MAX_CAP blocks), each time it overflows after having been emptied and
 * refilled since its last overflow: a class the thread both frees and
 * allocates in bursts larger than its list gets a longer one, so it stops
 * going to the heap, while a quiet class keeps a short one. */
#define GROWTH  2
#define MAX_CAP 1024

static size_t first_cap(size_t c) {
  size_t cap = sa_option(SA_OPT_CACHE_SIZE) / (c * SA_ALIGN);
  return cap < 2 ? 2 : cap > 128 ? 128 : cap;
}

static size_t most_cap(size_t c) {
  size_t cap = GROWTH * sa_option(SA_OPT_CACHE_SIZE) / (c * SA_ALIGN);
  size_t first = first_cap(c);
  return cap < first ? first : cap > MAX_CAP ? MAX_CAP : cap;
}

static void reset_caps(sa_tcache *tc) {
  for (size_t c = SA_MIN_BLOCK / SA_ALIGN; c < SA_TC_CLASSES; c++) {
    tc->cap[c] = (uint16_t)first_cap(c);
    tc->refilled[c] = 0;
  }
}

static void setup(sa_tcache *tc) {
  tc->heap = sa_process_pick_heap();
  tc->own_lo = tc->heap->start;
  tc->own_span = tc->heap->end - tc->heap->start;
  tc->state = SA_TC_ACTIVE;
  tc->sample_left = sa_sites_countdown();
  if (sa_option(SA_OPT_CACHE_SIZE) == 0 || !exit_hook.ok) return;  /* caches off: caps stay 0 */
  reset_caps(tc);
  sa_lock_acquire(&registry_lock);
  tc->prev = NULL;
  tc->next = registry;
  if (registry) registry->prev = tc;
  registry = tc;
  sa_lock_release(&registry_lock);
  sa_os_exit_hook_arm(&exit_hook, tc);
}

static void unregister(sa_tcache *tc) {
  sa_lock_acquire(&registry_lock);
  if (tc->prev) tc->prev->next = tc->next;
  else if (registry == tc) registry = tc->next;
  if (tc->next) tc->next->prev = tc->prev;
  tc->next = tc->prev = NULL;
  sa_lock_release(&registry_lock);
}

/* The last block of the batch that starts at first: a cached block of h,
 * or the list is damaged (a block written after it was freed). */
static void *batch_last(sa_heap *h, void *first) {
  void *last = sa_batch_last(h, first);
  if ((uintptr_t)last - h->start >= h->epilogue - h->start ||
      *blk_tag_ptr(last) != blk_cache_tag((uintptr_t)last, sa_tc_key))
    sa_fatal_ptr("malloc", "remote list damaged at", first);
  return last;
}

/* The first block of the batch after the one that ends with last, or
 * NULL: a link in a block's first word, which the program may have
 * overwritten. */
static inline void *batch_next(const sa_heap *h, void *last) {
  return sa_heap_checked_link(h, *(void **)last);
}

static inline void push(sa_tcache *tc, void *p, size_t c) {
  *(void **)p = tc->bin[c];
  *blk_tag_ptr(p) = blk_cache_tag((uintptr_t)p, sa_tc_key);
  tc->bin[c] = p;
  tc->count[c]++;
  tc->bytes += c << 4;
}

/* Blocks of list c bound for other heaps' remote lists, gathered into one
 * chain per heap, for a few heaps at a time: a flush rarely meets more. */
#define AWAY_HEAPS 4
typedef struct away {
  struct { sa_heap *heap; void *first, *last; size_t n; } to[AWAY_HEAPS];
  int heaps;
} away;

/* Pushes a chain of n blocks of class c, first to last, on heap h's
 * remote list. */
static void push_home(sa_heap *h, size_t c, void *first, void *last, size_t n) {
  sa_count(SA_CALL_REMOTE);
  sa_heap_remote_push(h, c, first, last, n, n * (c << 4));
}

static void away_push(away *a, size_t c) {
  for (int i = 0; i < a->heaps; i++)
    push_home(a->to[i].heap, c, a->to[i].first, a->to[i].last, a->to[i].n);
  a->heaps = 0;
}

static void away_add(away *a, sa_heap *h, void *p, size_t c) {
  int i = 0;
  while (i < a->heaps && a->to[i].heap != h) i++;
  if (i == AWAY_HEAPS) {
    away_push(a, c);
    i = 0;
  }
  if (i == a->heaps) {
    a->heaps++;
    a->to[i].heap = h;
    a->to[i].first = NULL;
    a->to[i].last = p;
    a->to[i].n = 0;
  }
  *(void **)p = a->to[i].first;  /* stays tagged on the other heap's remote list */
  a->to[i].first = p;
  a->to[i].n++;
}

/* Returns up to n blocks of list c to their heaps. */
static void flush_list(sa_tcache *tc, size_t c, unsigned n) {
  sa_count(SA_CALL_FLUSH);
  away out;
  out.heaps = 0;
  sa_heap *own = tc->heap;
  int locked = 0;
  while (n-- > 0 && tc->bin[c]) {
    void *p = tc->bin[c];
    if (!sa_tc_link_sound(p)) sa_heap_bad_link("free", p);
    tc->bin[c] = *(void **)p;
    tc->count[c]--;
    tc->bytes -= c << 4;
    sa_heap *h = sa_heap_of(p);
    if (h == own) {
      /* Blocks freed in address order follow each other down or up the
       * list: the run of them side by side is freed as one. */
      size_t size = c << 4;
      uintptr_t lo = (uintptr_t)p, hi = lo + size;
      unsigned k = 1;
      *blk_tag_ptr(p) = 0;
      for (void *q; n > 0 && (q = tc->bin[c]) && ((uintptr_t)q + size == lo || (uintptr_t)q == hi);
           n--, k++) {
        sa_tc_pop(tc, c);  /* q */
        if ((uintptr_t)q == hi) hi += size;
        else lo = (uintptr_t)q;
      }
      if (!locked) sa_heap_lock(own);
      locked = 1;
      sa_heap_free_run_locked(own, (void *)lo, k, size, "free");
    } else {
      away_add(&out, h, p, c);
    }
  }
  if (locked) sa_heap_unlock(own);
  away_push(&out, c);
}

/* Other heaps' blocks.  A thread does not hand out again the small
 * blocks of another heap that it frees: in the other heap they lie among
 * that heap's threads' blocks, and writing to them would share cache
 * lines with those threads.  They wait, tagged as cached, in one of
 * SA_TC_AWAY chains (class c in chain c % SA_TC_AWAY, so the classes up
 * to 528 bytes have one each), and go to their heap's remote list
 * together once a chain holds AWAY_BATCH blocks or all chains hold
 * AWAY_BYTES, when a block of another heap or class needs its chain, at a
 * sweep, and when the cache is emptied.  Each push is a compare-and-swap
 * on a line the heap's threads read: a thread freeing blocks of many
 * sizes, as a queue's consumer does, sends long chains, not one or two
 * blocks at a time. */
#define AWAY_BATCH 32
#define AWAY_BYTES 16384

static void send_chain(sa_tcache *tc, sa_tc_away *w) {
  if (!w->n) return;
  push_home(w->heap, w->cls, w->first, w->last, w->n);
  tc->away_bytes -= (size_t)w->n * (w->cls << 4);
  w->first = w->last = NULL;
  w->n = 0;
}

static void send_all_chains(sa_tcache *tc) {
  for (int i = 0; i < SA_TC_AWAY && tc->away_bytes; i++) send_chain(tc, &tc->away[i]);
}

/* p, a sound block of class c, belongs to heap h, not the thread's. */
static void send_away(sa_tcache *tc, sa_heap *h, void *p, size_t c) {
  sa_tc_away *w = &tc->away[c % SA_TC_AWAY];
  if (w->n && (w->heap != h || w->cls != c)) send_chain(tc, w);
  *blk_tag_ptr(p) = blk_cache_tag((uintptr_t)p, sa_tc_key);
  *(void **)p = w->first;
  if (!w->n) {
    w->last = p;
    w->heap = h;
    w->cls = (uint32_t)c;
  }
  w->first = p;
  w->n++;
  tc->away_bytes += c << 4;
  if (w->n >= AWAY_BATCH || tc->away_bytes >= AWAY_BYTES) send_chain(tc, w);
}

/* Idle lists.  Every SWEEP_EVERY refills and overflows of a thread's
 * lists, each list that has not changed since the previous sweep goes back
 * to the heaps whole: blocks of a size the thread no longer asks for would
 * otherwise stay cached, and each one keeps the free memory around it from
 * merging.  A list's mark is its head and length folded together, so a
 * list that did change may, rarely, look unchanged: it is flushed and
 * refills later. */
#define SWEEP_EVERY 256

static inline uint16_t list_mark(const sa_tcache *tc, size_t c) {
  return (uint16_t)(((uintptr_t)tc->bin[c] >> 4) ^ tc->count[c]);
}

/* Its callers bring the process's cached bytes up to date (account). */
static void sweep(sa_tcache *tc) {
  if (++tc->visits % SWEEP_EVERY) return;
  send_all_chains(tc);
  for (size_t c = SA_MIN_BLOCK / SA_ALIGN; c < SA_TC_CLASSES; c++) {
    if (tc->count[c] && list_mark(tc, c) == tc->seen[c]) flush_list(tc, c, tc->count[c]);
    tc->seen[c] = list_mark(tc, c);
  }
}

/* Room in list c for one more block: a full list that was emptied and
 * refilled since it last overflowed grows; else it goes down to half. */
static void make_room(sa_tcache *tc, size_t c) {
  if (tc->count[c] < tc->cap[c]) return;
  sweep(tc);
  if (tc->count[c] < tc->cap[c]) return;
  size_t most = most_cap(c);
  if (tc->refilled[c] && tc->cap[c] < most)
    tc->cap[c] = (uint16_t)(2u * tc->cap[c] < most ? 2u * tc->cap[c] : most);
  if (tc->count[c] >= tc->cap[c]) flush_list(tc, c, (unsigned)(tc->count[c] - tc->cap[c] / 2));
  tc->refilled[c] = 0;
}

static void account(sa_tcache *tc);

/* Caches p, a sound block of the thread's own heap, in list c. */
static void cache_own(sa_tcache *tc, void *p, size_t c) {
  int full = tc->count[c] >= tc->cap[c];
  make_room(tc, c);
  push(tc, p, c);
  if (full) account(tc);
}

/* p, a held block, goes straight back to its heap, which checks it and
 * reports a damaged head. */
static void held_to_heap(void *p) {
  *blk_tag_ptr(p) = 0;
  sa_heap_free(sa_heap_of(p), p, "free");
}

/* tc may be another, dead thread's cache. */
static void drop_held(sa_tcache *tc) {
  void *p = tc->held;
  if (!p) return;
  tc->held = NULL;
  held_to_heap(p);
}

void sa_tc_flush_all(sa_tcache *tc) {
  drop_held(tc);
  for (size_t c = 0; c < SA_TC_CLASSES; c++)
    if (tc->bin[c]) flush_list(tc, c, tc->count[c]);
  send_all_chains(tc);
}

/* The whole of tc goes back to the heaps, and the process total with it. */
static void give_back(sa_tcache *tc) {
  sa_tc_flush_all(tc);
  account(tc);
}

void sa_tc_trim(void) {
  if (sa_tc.state == SA_TC_ACTIVE) give_back(&sa_tc);
}

/* Brings the process total up to date; flushes everything past the limit. */
static void account(sa_tcache *tc) {
  size_t now = tc->bytes, before = tc->reported;
  size_t total = now >= before
                     ? __atomic_add_fetch(&process_cached, now - before, __ATOMIC_RELAXED)
                     : __atomic_sub_fetch(&process_cached, before - now, __ATOMIC_RELAXED);
  tc->reported = now;
  if (total > sa_option(SA_OPT_CACHE_LIMIT)) {
    sa_tc_flush_all(tc);
    reset_caps(tc);
    __atomic_sub_fetch(&process_cached, now - tc->bytes, __ATOMIC_RELAXED);
    tc->reported = tc->bytes;
  }
}

static void on_thread_exit(void *arg) {
  sa_tcache *tc = arg;
  give_back(tc);
  memset(tc->cap, 0, sizeof tc->cap);
  tc->state = SA_TC_DEAD;
  unregister(tc);
}

static void *alloc_from(sa_heap *h, size_t n, size_t align, int zero) {
  return align ? sa_heap_alloc_aligned(h, align, n) : zero ? sa_heap_calloc(h, n)
                                                           : sa_heap_alloc(h, n);
}

/* Moves the blocks of class c that other threads freed into heap h into
 * this cache (they are tagged already), a batch at a time; what does not
 * fit goes back. */
static void take_remote(sa_tcache *tc, sa_heap *h, size_t c) {
  /* All of it, even past the list's length: a thread that finds blocks
   * there is on the allocating side of a flow and uses them soon. */
  void *p = sa_heap_remote_take(h, c), *last = NULL;
  size_t n = 0, k;
  while (p && tc->count[c] + (k = sa_batch_length(p)) <= UINT16_MAX) {
    last = batch_last(h, p);
    void *next = batch_next(h, last);
    *(void **)last = tc->bin[c];
    tc->bin[c] = p;
    tc->count[c] = (uint16_t)(tc->count[c] + k);
    n += k;
    p = next;
  }
  tc->bytes += n * (c << 4);
  sa_heap_remote_taken(h, n * (c << 4));
  if (!p) return;
  /* The list is full: only in the unlikeliest case.  The rest goes back
   * as one batch. */
  size_t rest = 0;
  for (void *b = p; b; b = batch_next(h, last)) {
    last = batch_last(h, b);
    rest += sa_batch_length(b);
  }
  sa_heap_remote_taken(h, rest * (c << 4));  /* counted again by the push */
  sa_heap_remote_push(h, c, p, last, rest, rest * (c << 4));
}

/* Any heap that can serve the request, the thread's own first.  When all
 * are full, what this thread holds in its cache goes back first. */
static void *alloc_anywhere(sa_heap *own, size_t n, size_t align, int zero) {
  for (int round = 0; round < 2; round++) {
    void *p = alloc_from(own, n, align, zero);
    /* A heap not set up yet is set up for a request that can fit it. */
    int fits = n < ((size_t)1 << sa_arena_g.shift);
    for (int i = 0; !p && i < sa_arena_g.slices; i++)
      if (&sa_arena_g.heaps[i] != own && (fits || sa_process_heap_up(i)))
        p = alloc_from(sa_process_heap(i), n, align, zero);
    if (p || round || sa_tc.bytes == 0) return p;
    give_back(&sa_tc);
  }
  return NULL;
}

static sa_tcache *current(void) {
  sa_tcache *tc = &sa_tc;
  if (__builtin_expect(tc->state == SA_TC_NEW, 0)) setup(tc);
  return tc;
}

/* The list that lends list c, which is empty, a block: the first of the
 * next lists up, of blocks up to a quarter larger (one class at least),
 * that holds one; 0 if none does.  The lists of neighbouring sizes so
 * share their blocks: a thread that frees blocks of other sizes than it
 * allocates, as most do, keeps fewer of them cached for the same number
 * of trips to the heap. */
static inline size_t lender(const sa_tcache *tc, size_t c) {
  size_t most = c + (c / 4 > 1 ? c / 4 : 1);
  if (most > SA_TC_CLASSES - 1) most = SA_TC_CLASSES - 1;
  for (size_t k = c + 1; k <= most; k++)
    if (tc->bin[k]) return k;
  return 0;
}

/* Another heap than h that holds at least IDLE_MIN bytes of free memory
 * below the highest it touched, the most of them, or NULL.  A thread whose
 * heap would have to grow takes its blocks there instead: memory that the
 * threads of one heap freed serves those of another (a producer thread
 * whose blocks other threads free, as a queue's consumers do, fills
 * its heap while the others' stand empty).  Not the large blocks'. */
#define IDLE_MIN ((size_t)64 << 10)
static sa_heap *idle_heap(const sa_heap *h) {
  sa_heap *best = NULL;
  size_t most = IDLE_MIN - 1;
  for (int i = 0, heaps = sa_process_heaps(); i < heaps; i++) {
    sa_heap *x = &sa_arena_g.heaps[i];
    size_t idle;
    if (x != h && sa_process_heap_up(i) && !sa_is_large_heap(x) && (idle = sa_heap_idle(x)) > most) {
      best = x;
      most = idle;
    }
  }
  return best;
}

/* Carves want blocks of class c, counting the have carved already, from
 * locked heap h, first fit: the very first goes to *first, the others to
 * their lists.  Once heaps are shared by threads, runs of small blocks
 * end on a cache line (sa_heap_alloc_run_locked): a thread that writes
 * its blocks over and over, another's next to them, would otherwise
 * bounce the line they share between cores (`cache-thrash -t 8` took
 * 5% more time).  A run's last block may be a crumb larger than the class;
 * if its list is full, it goes back to the heap once carving is done (the
 * next run would find it again), and after a few such, carving stops.
 * Returns the count carved. */
#define CRUMBS 4
static int carve(sa_tcache *tc, sa_heap *h, size_t c, int have, int want, void **first) {
  size_t size = c << 4;
  void *crumb[CRUMBS];
  int crumbs = 0;
  while (have < want && crumbs < CRUMBS) {
    void *lo;
    int run = sa_heap_alloc_run_locked(h, size, &lo, want - have, sa_process_heaps_shared());
    if (run <= 0) break;
    for (int i = 0; i < run; i++, have++) {
      void *q = (char *)lo + (size_t)i * size;
      size_t k = i + 1 < run ? c : sa_tc_class(head_size(blk_head((uintptr_t)q - SA_PAYLOAD)));
      if (have == 0)
        *first = q;
      else if (k < SA_TC_CLASSES && tc->count[k] < tc->cap[k])
        push(tc, q, k);
      else
        crumb[crumbs++] = q;  /* the last of its run */
    }
  }
  while (crumbs > 0) sa_heap_free_locked(h, crumb[--crumbs], "free");
  return have;
}

/* n bytes for list c, which is empty: from the blocks other threads
 * freed into the thread's heap, else borrowed, else refilled from the
 * heap. */
static void *refill(sa_tcache *tc, size_t n, size_t c) {
  void *p;
  sa_heap *h = tc->heap;
  if (sa_heap_remote_waiting(h, c)) {
    take_remote(tc, h, c);
    p = sa_tc_pop(tc, c);
    if (p) return p;
  }
  size_t from = lender(tc, c);
  if (from) return sa_tc_pop(tc, from);
  sa_count(SA_CALL_REFILL);
  sweep(tc);  /* list c is empty: not flushed */
  tc->refilled[c] = 1;
  /* Half a list, but the process's first refills of a class take 1, 2,
   * 4 ... blocks more: a class used once or twice costs no more. */
  unsigned before = __atomic_load_n(&class_refills[c], __ATOMIC_RELAXED);
  size_t extra = tc->cap[c] / 2, warm = (size_t)1 << before;
  if (extra > warm) extra = warm;
  if (extra > REFILL_MAX) extra = REFILL_MAX;
  if (before < 8) __atomic_store_n(&class_refills[c], (uint8_t)(before + 1), __ATOMIC_RELAXED);
  int want = (int)extra + 1, have = 0;
  p = NULL;
  sa_heap_lock(h);
  sa_heap *idle;
  if (sa_heap_must_grow_locked(h, c << 4) && (idle = idle_heap(h))) {
    sa_heap_unlock(h);
    sa_heap_lock(idle);
    if (!sa_heap_must_grow_locked(idle, c << 4)) have = carve(tc, idle, c, 0, want, &p);
    if (have) {
      h = idle;
    } else {
      sa_heap_unlock(idle);
      sa_heap_lock(h);
    }
  }
  if (have < want) carve(tc, h, c, have, want, &p);
  sa_heap_unlock(h);
  account(tc);
  return p ? p : alloc_anywhere(h, n, 0, 0);
}

/* The heap to serve n bytes from first: large requests have one of their
 * own (process.h). */
static inline sa_heap *heap_for(sa_tcache *tc, size_t n) {
  return sa_process_large(n) ? sa_process_heap(SA_LARGE_HEAP) : tc->heap;
}

/* n bytes (aligned to align if it is not 0, zeroed if zero), not counted
 * towards the next sample. */
static inline void *alloc_plain(sa_tcache *tc, size_t n, size_t align, int zero) {
  if (align || zero || n > SA_TC_MAX_REQ) return alloc_anywhere(heap_for(tc, n), n, align, zero);
  size_t c = sa_tc_class(blk_size_for(n));
  if (tc->cap[c] == 0) return alloc_anywhere(tc->heap, n, 0, 0);
  void *p = sa_tc_pop(tc, c);
  return p ? p : refill(tc, n, c);
}

/* The allocation the countdown chose for a record at its site (sites.h).
 * Inlined into each slow entry point, so that the stack is taken there:
 * every frame of ours costs the unwinder a step. */
static inline __attribute__((always_inline)) void *sampled(sa_tcache *tc, size_t n, size_t align,
                                                           int zero) {
  int saved = errno;
  void *frames[SA_UNWIND_MAX];
  tc->sample_left = INT64_MAX;  /* the guard: nothing allocated until the reset is recorded */
  int got = sa_unwind(frames, sa_sites_frames_wanted());
  void *p = n <= PTRDIFF_MAX - SA_TRAILER ? alloc_plain(tc, n + SA_TRAILER, align, zero) : NULL;
  if (p) {
    sa_site_record(p, frames, got);
    errno = saved;
  } else if (n > PTRDIFF_MAX - SA_TRAILER) {
    errno = ENOMEM;
  }
  tc->sample_left = sa_sites_countdown();
  return p;
}

/* Whether an allocation of n bytes is to be recorded; counts it if not. */
static inline int chosen(sa_tcache *tc, size_t n) {
  return n <= PTRDIFF_MAX && !sa_tc_unsampled(tc, blk_size_for(n));
}

static __attribute__((noinline)) void *malloc_slower(size_t n) {
  if (!sa_process_ready()) {
    errno = ENOMEM;
    return NULL;
  }
  sa_tcache *tc = current();
  if (__builtin_expect(sa_snapshot_pending, 0)) sa_snapshot_poll();
  if (chosen(tc, n)) return sampled(tc, n, 0, 0);
  return alloc_plain(tc, n, 0, 0);
}

/* The fast path found list c empty (or a sample due).  A block borrowed
 * from the next lists up is the common case, and costs a few loads; but
 * blocks of the class that other threads freed into the thread's heap
 * come first (refill), or a thread on the allocating side of a flow would
 * leave them waiting while it borrows. */
void *sa_tc_malloc_slow(size_t n) {
  if (n <= SA_TC_MAX_REQ) {
    sa_tcache *tc = &sa_tc;
    size_t s = blk_size_for(n), c = sa_tc_class(s), k;
    void *held = tc->held;
    if (held) {  /* the block freed last may be of this list, or lend */
      tc->held = NULL;
      sa_tc_settle(tc, held, tc->held_size);
      if (tc->bin[c] && sa_tc_unsampled(tc, s)) return sa_tc_pop(tc, c);
    }
    if (!tc->bin[c] && tc->heap && !sa_heap_remote_waiting(tc->heap, c) &&
        (k = lender(tc, c)) && sa_tc_unsampled(tc, s))
      return sa_tc_pop(tc, k);
  }
  return malloc_slower(n);
}

void *sa_tc_aligned(size_t align, size_t n);
void *sa_tc_aligned(size_t align, size_t n) {
  if (!sa_process_ready()) {
    errno = ENOMEM;
    return NULL;
  }
  sa_tcache *tc = current();
  if (chosen(tc, n)) return sampled(tc, n, align, 0);
  return alloc_anywhere(heap_for(tc, n), n, align, 0);
}

void *sa_tc_calloc_large(size_t n);
void *sa_tc_calloc_large(size_t n) {
  if (!sa_process_ready()) {
    errno = ENOMEM;
    return NULL;
  }
  sa_tcache *tc = current();
  if (chosen(tc, n)) return sampled(tc, n, 0, 1);
  return alloc_anywhere(heap_for(tc, n), n, 0, 1);
}

/* A large block in a thread's heap once large blocks have a heap of their
 * own (one from before it opened): only small requests come here to reuse
 * its hole, so its pages go back when it is freed. */
static inline int stray(const sa_heap *h, size_t size) {
  return sa_process_large_open() && !sa_is_large_heap(h) && size >= sa_arena_g.large_min;
}

/* Whether h is the heap of another thread than tc's: neither tc's own
 * heap nor the large blocks' heap, which no thread owns. */
static inline int others(const sa_tcache *tc, const sa_heap *h) {
  return h != tc->heap && !sa_is_large_heap(h);
}

/* sa_tc_free_slow; moved: p is the block realloc moved away from. */
static void free_slow(void *p, uint64_t hd, int moved) {
  int saved = errno;
  uintptr_t a = (uintptr_t)p;
  sa_heap *h = sa_heap_of(p);
  sa_tcache *tc = current();
  size_t c = sa_tc_class(head_size(hd));
  int sound = sa_blk_live(p, hd) && head_size(hd) >= SA_MIN_BLOCK &&
              next_sound(a - SA_PAYLOAD + head_size(hd));
  if (sound && (hd & SA_TRACKED)) {
    sa_site_released(p, head_size(hd));  /* clears TRACKED */
    hd = blk_head(a - SA_PAYLOAD);
  }
  int foreign = others(tc, h);
  if (sound && c < SA_TC_CLASSES && tc->cap[c]) {
    if (foreign)
      send_away(tc, h, p, c);
    else
      cache_own(tc, p, c);  /* recorded at its site, or the cache is new */
  } else if (sound && foreign) {
    /* A large block of another thread's heap: leave it on that heap's
     * remote list.  The large blocks' heap, which no thread owns, takes
     * its blocks back at once. */
    *blk_tag_ptr(p) = blk_cache_tag(a, sa_tc_key);
    sa_heap_remote_push(h, sa_remote_list(head_size(hd)), p, p, 1, head_size(hd));
  } else if (stray(h, head_size(hd))) {
    sa_heap_free_giving_back(h, p, moved);
  } else if (moved) {
    sa_heap_free_moved(h, p);    /* also reports what is wrong if not sound */
  } else {
    sa_heap_free(h, p, "free");  /* also reports what is wrong if not sound */
  }
  errno = saved;
}

void sa_tc_free_slow(void *p, uint64_t hd) { free_slow(p, hd, 0); }

/* The held block p, of size bytes, found its list full, or the head after
 * it damaged. */
void sa_tc_settle_slow(void *p, size_t size) {
  int saved = errno;
  if (next_sound((uintptr_t)p - SA_PAYLOAD + size))
    cache_own(&sa_tc, p, sa_tc_class(size));
  else
    held_to_heap(p);
  errno = saved;
}

void sa_tc_settle_held(void) {
  if (sa_tc.state == SA_TC_ACTIVE) drop_held(&sa_tc);
}

/* The fast free found p outside the thread's own heap (or the thread's
 * cache is not set up yet). */
void sa_tc_free_elsewhere(void *p) {
  if (!p) return;
  int saved = errno;
  sa_heap *h = sa_process_owner(p, "free");  /* reports a pointer not ours */
  errno = saved;
  if (h) free_slow(p, blk_head((uintptr_t)p - SA_PAYLOAD), 0);
}

void sa_tc_free_moved(void *p) {
  uint64_t hd = blk_head((uintptr_t)p - SA_PAYLOAD);
  sa_heap *h = sa_heap_of(p);
  if (sa_tc_class(head_size(hd)) < SA_TC_CLASSES || others(&sa_tc, h))
    sa_tc_free(p);
  else
    free_slow(p, hd, 1);
}

static int fork_took_registry;
void sa_tc_registry_lock(void) { fork_took_registry = sa_lock_for_fork(&registry_lock); }
void sa_tc_registry_unlock(void) {
  if (fork_took_registry) sa_lock_release(&registry_lock);
}

void sa_tc_after_fork_child(void) {
  if (!fork_took_registry) return;  /* the interrupted code is changing it */
  sa_lock_reset(&registry_lock);
  sa_tcache *tc = registry;
  while (tc) {
    sa_tcache *next = tc->next;
    if (tc != &sa_tc) {
      sa_tc_flush_all(tc);
      __atomic_sub_fetch(&process_cached, tc->reported, __ATOMIC_RELAXED);
      unregister(tc);
    }
    tc = next;
  }
}
