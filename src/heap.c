/* heap.c - allocate, free, split, coalesce and resize on one heap.
 *
 * Owns the block chain of a heap (block.h) and keeps its free index
 * (freetree.h) in step with it.  Every function named *_locked runs with
 * the heap lock held; the public sa_heap_* entry points take it.
 *
 * The top: the free block that ends at the epilogue, if there is one, is
 * kept out of the index.  It is the highest free block, so the lowest fit
 * is in the index whenever the index has one, and the top is the fit of last
 * resort: growing the heap, or giving memory back at its end, costs no
 * index work.
 *
 * Pages: a free block flagged CLEAN has all whole pages after its index node
 * reading as zero (fresh from the kernel, or given back with
 * sa_os_release); calloc skips zeroing them.  `dirty` counts the bytes of
 * free blocks of at least release_threshold that are not CLEAN (for the top,
 * only up to where the heap ever reached); each such block carries, after
 * its index node, the second at which it last became dirty and how many
 * of its bytes may be resident.  Past `retain` dirty bytes, the blocks that
 * have stayed dirty for `decay` seconds or more give their pages back and
 * become CLEAN (checked at most once a second, at a free); past `retain`
 * plus sixteen times the used bytes, the highest blocks do when a free
 * finds it so again `hold` seconds after it first did, or at once when
 * realloc moved a block (maybe_purge, realloc_trim).  So a program that
 * frees and reallocates large blocks reuses warm pages, and memory it
 * stops using goes back to the kernel.  When realloc gives memory back,
 * the used and dirty bytes together are also held within `retain` plus
 * the most the heap ever had in use, the highest blocks going first
 * (realloc_trim).
 */
#include "heap.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "block.h"
#include "fmt.h"
#include "os.h"

/* ---- small accessors ---------------------------------------------------- */

static inline uint64_t head(uintptr_t b) { return blk_head(b); }

static inline void set_head(const sa_heap *h, uintptr_t b, size_t size, uint64_t flags) {
  *blk_head_ptr(b) = head_make(b, size, flags, h->key);
}

/* The boundary tag of a free block: its size, in the next block's prev_foot. */
static inline void set_foot(uintptr_t b, size_t size) {
  *blk_foot_of_prev(b + size) = size;
}

/* b may be a used block whose owner sets TRACKED at the same time. */
static inline void set_prev_used(const sa_heap *h, uintptr_t b, int used) {
  blk_set_flag(b, SA_PREV_USED, used, h->key);
}

static inline uintptr_t page_floor(uintptr_t a) { return a & ~(uintptr_t)4095; }
static inline uintptr_t page_ceil(uintptr_t a) { return (a + 4095) & ~(uintptr_t)4095; }

/* A large free block that is not CLEAN keeps a record after its index node:
 * since when it is dirty (the second) and how many of its bytes may be
 * resident. */
typedef struct dirt {
  uint64_t since;
  uint64_t bytes;
} dirt;

static inline dirt *dirt_of(uintptr_t b) { return (dirt *)(b + SA_PAYLOAD + sizeof(sa_node)); }

/* The smallest block that has room for the record (a smaller release
 * threshold does not make smaller blocks keep one). */
#define DIRT_MIN_BLOCK (SA_PAYLOAD + sizeof(sa_node) + sizeof(dirt))

static inline int tracked(const sa_heap *h, uint64_t hd) {
  size_t size = head_size(hd);
  return h->release_pages && !(hd & SA_CLEAN) && size >= h->release_threshold &&
         size >= DIRT_MIN_BLOCK;
}

/* What free block b (head hd) counts in h->dirty. */
static inline size_t dirty_part(const sa_heap *h, uintptr_t b, uint64_t hd) {
  return tracked(h, hd) ? dirt_of(b)->bytes : 0;
}

/* Bytes of free block b that may be resident. */
static inline size_t resident(const sa_heap *h, uintptr_t b, uint64_t hd) {
  if (hd & SA_CLEAN) return 0;
  return tracked(h, hd) ? dirt_of(b)->bytes : head_size(hd);
}

/* When free block f (head fh) became dirty, for the parts it is cut into. */
static inline dirt dirt_when(const sa_heap *h, uintptr_t f, uint64_t fh) {
  dirt when = {0, 0};
  if (tracked(h, fh)) when = *dirt_of(f);
  return when;
}

/* Starts the record of free block b, if it keeps one: bytes that may be
 * resident, dirty since `when`. */
static inline void set_dirt(sa_heap *h, uintptr_t b, size_t bytes, dirt when) {
  if (!tracked(h, head(b))) return;
  size_t size = head_size(head(b));
  dirt *d = dirt_of(b);
  d->since = when.since;
  d->bytes = bytes < size ? bytes : size;
  h->dirty += d->bytes;
}

static inline void account_used_n(sa_heap *h, size_t bytes, size_t blocks) {
  h->st.used_bytes += bytes;
  h->st.used_blocks += blocks;
  if (h->st.used_bytes > h->st.peak_used) h->st.peak_used = h->st.used_bytes;
}

static inline void account_used(sa_heap *h, size_t size) { account_used_n(h, size, 1); }

/* ---- set-up ------------------------------------------------------------- */

int sa_heap_init(sa_heap *h, void *mem, size_t size, int release_pages) {
  return sa_heap_init_keyed(h, mem, size, release_pages, sa_os_random64() ^ (uintptr_t)h);
}

int sa_heap_init_keyed(sa_heap *h, void *mem, size_t size, int release_pages, uint64_t key) {
  uintptr_t s = (uintptr_t)mem;
  if ((s & (SA_ALIGN - 1)) || size < SA_HEAP_MIN_SIZE) return -1;
  size &= ~(size_t)(SA_ALIGN - 1);
  if (size > SA_MAX_BLOCK) size = SA_MAX_BLOCK;
  /* The free index's summary, if it needs one, takes the high end; its
   * head, all of it a small heap uses, shares the epilogue's page. */
  size_t index = sa_tree_bytes(size >> SA_UNIT_SHIFT);
  uintptr_t summary = s + size;
  if (index) {
    uintptr_t page = (s + size - index) & ~(uintptr_t)4095;
    size_t lead = sa_tree_lead(size >> SA_UNIT_SHIFT);  /* a multiple of 64 */
    summary = page - lead > s ? page - lead : (s + size - index) & ~(uintptr_t)63;
  }
  if (summary < s + SA_MIN_BLOCK + SA_PAYLOAD) return -1;
  memset(h, 0, sizeof *h);
  h->key = key;
  h->start = s;
  h->end = summary;
  h->epilogue = h->end - SA_PAYLOAD;
  h->release_pages = release_pages;
  h->release_threshold = SA_HEAP_RELEASE_THRESHOLD;
  h->retain = SA_HEAP_RETAIN;
  h->decay = SA_HEAP_DECAY;
  sa_tree_init(&h->tree, s - SA_PAYLOAD, (void *)summary, (summary - s) >> SA_UNIT_SHIFT);

  size_t first = h->epilogue - s;
  set_head(h, s, first, SA_PREV_USED | (release_pages ? SA_CLEAN : 0));
  set_foot(s, first);
  set_head(h, h->epilogue, 0, SA_USED);
  h->top = s;
  h->st.free_blocks = 1;
  h->touched = h->reached = s + SA_MIN_BLOCK;
  return 0;
}

int sa_heap_contains(const sa_heap *h, const void *p) {
  uintptr_t a = (uintptr_t)p;
  return a >= h->start && a < h->end;
}

/* ---- validation --------------------------------------------------------- */

/* What is wrong with a pointer handed to free or realloc, or NULL. */
static const char *why_not_used(const sa_heap *h, uintptr_t a) {
  uintptr_t b = a - SA_PAYLOAD;
  if ((a & (SA_ALIGN - 1)) || a < h->start + SA_PAYLOAD || a >= h->epilogue)
    return "invalid pointer";
  uint64_t hd = head(b);
  if (!head_valid(b, hd, h->key)) return "invalid pointer";
  if (!(hd & SA_USED) || *blk_tag_ptr((void *)a) == blk_cache_tag(a, h->key))
    return "double free";
  size_t size = head_size(hd);
  if (size < SA_MIN_BLOCK || size > h->epilogue - b) return "invalid pointer";
  uint64_t next = head(b + size);
  if (!head_valid(b + size, next, h->key) || !(next & SA_PREV_USED))
    return "heap overflow: the header after this block is damaged";
  return NULL;
}

/* The block of a pointer handed to free/realloc; 0 (reported) if it is
 * not the start of a live block. */
static uintptr_t checked_used(const sa_heap *h, const void *p, const char *call) {
  const char *why = why_not_used(h, (uintptr_t)p);
  if (!why) return (uintptr_t)p - SA_PAYLOAD;
  sa_bad_ptr(call, why, p);
  return 0;
}

/* A free neighbour about to be merged: its head, or 0 (reported) if it is
 * damaged. */
static uint64_t checked_free(const sa_heap *h, uintptr_t b, size_t size, const void *p,
                             const char *call) {
  uint64_t hd = head(b);
  if (b < h->start || b >= h->epilogue || !head_valid(b, hd, h->key) || (hd & SA_USED) ||
      (size && head_size(hd) != size)) {
    sa_bad_ptr(call, "heap corruption: the free block next to this one is damaged", p);
    return 0;
  }
  return hd;
}

static inline void reach(sa_heap *h, uintptr_t a) {
  __atomic_store_n(&h->touched, a, __ATOMIC_RELAXED);  /* sa_heap_idle reads it unlocked */
  if (a > h->reached) h->reached = a;
}

/* ---- the free index and the top -------------------------------- */

static inline void index_add(sa_heap *h, uintptr_t b, size_t size) {
  if (b + size == h->epilogue)
    h->top = b;
  else
    sa_tree_insert(&h->tree, b);
}

static inline void index_del(sa_heap *h, uintptr_t b) {
  if (b == h->top)
    h->top = 0;
  else
    sa_tree_remove(&h->tree, b);
}

/* ---- the core: claim, allocate, free ------------------------------------- */

/* Takes keep bytes from the front of free block f (head fh) out of the
 * index.  The rest stays free in f's place if it can stand alone as a
 * block; otherwise it is taken too.  Returns the bytes taken; the caller
 * writes the head of what it took. */
static size_t claim(sa_heap *h, uintptr_t f, size_t keep, uint64_t fh) {
  size_t fsize = head_size(fh), rest = fsize - keep;
  size_t res = resident(h, f, fh);
  dirt when = dirt_when(h, f, fh);  /* r's head may overlap f's record */
  h->dirty -= dirty_part(h, f, fh);
  if (rest >= SA_MIN_BLOCK) {
    uintptr_t r = f + keep;
    sa_node node = *blk_node(f);  /* r's head may overlap f's node */
    set_head(h, r, rest, SA_PREV_USED | (fh & SA_CLEAN));
    set_foot(r, rest);
    if (f == h->top) {
      h->top = r;
    } else {
      *blk_node(r) = node;
      sa_tree_replace(&h->tree, f, r);
    }
    if (r + SA_MIN_BLOCK > h->touched) reach(h, r + SA_MIN_BLOCK);
    set_dirt(h, r, res > keep ? res - keep : 0, when);
    return keep;
  }
  index_del(h, f);
  h->st.free_blocks--;
  set_prev_used(h, f + fsize, 1);
  if (f + fsize > h->touched) reach(h, f + fsize);
  return fsize;
}

/* The lowest-addressed free block of at least need bytes, or 0. */
static uintptr_t find(sa_heap *h, size_t need) {
  if (need > SA_MAX_BLOCK) return 0;  /* no block can be that large */
  uintptr_t f = sa_tree_first_fit(&h->tree, need);
  if (!f) {
    if (sa_tree_largest(&h->tree) >= need) sa_fatal("free index damaged (maxima disagree)");
    f = h->top;
    if (!f || head_size(head(f)) < need) return 0;
  }
  uint64_t fh = head(f);
  if (f < h->start || f >= h->epilogue || !head_valid(f, fh, h->key) ||
      (fh & SA_USED) || head_size(fh) < need)
    sa_fatal_ptr("malloc", "free index damaged at", (void *)f);
  return f;
}

/* Allocates a block of need bytes.  If zone is given, it receives the
 * range of the block's memory known to read as zero. */
static uintptr_t alloc_locked(sa_heap *h, size_t need, uintptr_t zone[2]) {
  uintptr_t f = find(h, need);
  if (!f) return 0;
  uint64_t fh = head(f);
  if (zone) {
    int clean = (fh & SA_CLEAN) != 0;
    zone[0] = clean ? page_ceil(f + SA_MIN_BLOCK) : 0;
    zone[1] = clean ? page_floor(f + head_size(fh)) : 0;
  }
  size_t got = claim(h, f, need, fh);
  set_head(h, f, got, SA_USED | (fh & SA_PREV_USED));
  account_used(h, got);
  return f;
}

/* Gives back the whole pages of free block b that lie after its index node
 * (and below touched), then flags it CLEAN.  Returns 1 if it gave any. */
static int purge_block(sa_heap *h, uintptr_t b) {
  uint64_t hd = head(b);
  size_t size = head_size(hd);
  if (hd & SA_CLEAN) return 0;
  size_t part = dirty_part(h, b, hd);
  uintptr_t lo = page_ceil(b + SA_MIN_BLOCK), hi = page_floor(b + size);
  uintptr_t limit = page_ceil(h->touched);
  if (hi > limit) hi = limit;
  if (lo < hi && sa_os_release((void *)lo, hi - lo) != 0) return 0;
  set_head(h, b, size, head_flags(hd) | SA_CLEAN);
  h->dirty -= part;
  if (b == h->top)  /* the rest is back to untouched */
    __atomic_store_n(&h->touched, b + SA_MIN_BLOCK, __ATOMIC_RELAXED);
  return lo < hi;
}

/* Purges the free blocks of the index of at least release_threshold
 * bytes that have been dirty since before the second `before`. */
static void purge_locked(sa_heap *h, uint64_t before) {
  size_t min = h->release_threshold;
  for (uintptr_t b = sa_tree_next_at_least(&h->tree, 0, min); b;
       b = sa_tree_next_at_least(&h->tree, b, min))
    if (tracked(h, head(b)) && dirt_of(b)->since < before) purge_block(h, b);
  if (h->top && tracked(h, head(h->top)) && dirt_of(h->top)->since < before)
    purge_block(h, h->top);
}

/* Purges the top, then the free blocks of the index of at least
 * release_threshold bytes from the highest address down, until no more
 * than goal bytes are dirty: first fit reuses the lowest blocks first, so
 * the pages most likely to be reused stay. */
static void purge_high(sa_heap *h, size_t goal) {
  if (h->dirty <= goal) return;  /* realloc_trim asks after every move */
  size_t min = h->release_threshold;
  if (h->top && tracked(h, head(h->top))) purge_block(h, h->top);
  for (uintptr_t b = sa_tree_prev_at_least(&h->tree, 0, min); b && h->dirty > goal;
       b = sa_tree_prev_at_least(&h->tree, b, min))
    if (tracked(h, head(b))) purge_block(h, b);
}

/* The top gives back its pages from pad bytes past its index node up to
 * where the heap reached; with no pad it becomes CLEAN.  Returns 1 if it
 * gave any. */
static int trim_top(sa_heap *h, size_t pad) {
  uintptr_t t = h->top;
  if (!t || (head(t) & SA_CLEAN)) return 0;
  if (pad == 0) return purge_block(h, t);
  uintptr_t end = page_ceil(h->touched), from = t + SA_MIN_BLOCK;
  if (end <= from || pad >= end - from) return 0;
  uintptr_t lo = page_ceil(from + pad);
  if (lo >= end || sa_os_release((void *)lo, end - lo) != 0) return 0;
  __atomic_store_n(&h->touched, lo, __ATOMIC_RELAXED);
  if (tracked(h, head(t)) && dirt_of(t)->bytes > lo - t) {
    h->dirty -= dirt_of(t)->bytes - (lo - t);
    dirt_of(t)->bytes = lo - t;
  }
  return 1;
}

static void drain_locked(sa_heap *h);

int sa_heap_trim(sa_heap *h, size_t pad) {
  if (!h->release_pages) return 0;
  sa_lock_acquire(&h->lock);
  drain_locked(h);  /* blocks other threads freed into h are free too */
  int gave = 0;
  for (uintptr_t b = sa_tree_next_at_least(&h->tree, 0, SA_MIN_BLOCK + 4096); b;
       b = sa_tree_next_at_least(&h->tree, b, SA_MIN_BLOCK + 4096))
    gave |= purge_block(h, b);
  gave |= trim_top(h, pad);
  sa_lock_release(&h->lock);
  return gave;
}

/* Too much dirty memory is more than retain plus PURGE_HIGH_WATER times
 * the used bytes; then the highest blocks go, down to PURGE_LOW_WATER
 * times. */
#define PURGE_HIGH_WATER 16
#define PURGE_LOW_WATER  8
static inline int too_much_dirt(const sa_heap *h) {
  return h->dirty > h->retain + PURGE_HIGH_WATER * h->st.used_bytes;
}

static inline size_t too_much_goal(const sa_heap *h) {
  return h->retain + PURGE_LOW_WATER * h->st.used_bytes;
}

/* After a free: give back what has stayed dirty too long, or too much,
 * found again `hold` seconds after it was first found (a program that
 * frees nearly everything and starts over at once keeps its pages). */
static void maybe_purge(sa_heap *h) {
  if (h->dirty <= h->retain) return;
  if (too_much_dirt(h)) {
    if (h->hold) {
      uint64_t now = sa_os_mono_coarse_s() + 1;  /* never 0 */
      if (!h->high_at) h->high_at = now;
      if (now < h->high_at + h->hold) return;
      h->high_at = 0;
    }
    purge_high(h, too_much_goal(h));
    return;
  }
  h->high_at = 0;
  uint64_t now = sa_os_mono_coarse_s();
  if (now == h->purged_at) return;
  h->purged_at = now;
  purge_locked(h, now - h->decay);
}

/* After realloc gave memory back (the block it moved away from, or the
 * tail it cut off), at once: too much dirty memory goes as after a free,
 * and the used and dirty bytes together may exceed the heap's peak use by
 * no more than retain; past that, the highest blocks give their pages
 * back.  Growing and shrinking buffers leave dirty holes behind them at
 * every move; this keeps their resident memory near what the program ever
 * had in use at once. */
static void realloc_trim(sa_heap *h) {
  if (!h->release_pages) return;
  size_t goal = too_much_dirt(h) ? too_much_goal(h) : h->dirty;
  size_t cap = h->retain + h->st.peak_used;
  if (h->st.used_bytes + goal > cap) goal = cap - h->st.used_bytes;
  purge_high(h, goal);
}

/* Frees used block b and merges it with its free neighbours; returns the
 * merged block.  If a neighbour is damaged, reports it and (warn mode)
 * leaves b as it was: returns 0. */
static uintptr_t free_locked(sa_heap *h, uintptr_t b, const void *p, const char *call) {
  uint64_t hd = head(b);
  size_t size = head_size(hd), total = size;
  int left = !(hd & SA_PREV_USED);
  uintptr_t r = b + size, m = b;  /* right neighbour, merged block */
  uint64_t rh = head(r), lh = 0;
  int right = !(rh & SA_USED);
  if (left) {
    size_t ls = *blk_foot_of_prev(b);
    m = b - ls;
    if (ls > b - h->start || !(lh = checked_free(h, m, ls, p, call))) return 0;
  }
  if (right && !checked_free(h, r, 0, p, call)) return 0;

  h->st.used_bytes -= size;
  h->st.used_blocks--;
  size_t res = size;  /* bytes of the merged block that may be resident */
  if (left) {
    res += resident(h, m, lh);
    h->dirty -= dirty_part(h, m, lh);
    total += head_size(lh);
  }
  if (right) {
    res += resident(h, r, rh);
    h->dirty -= dirty_part(h, r, rh);
    total += head_size(rh);
    if (left) {
      index_del(h, r);
      h->st.free_blocks--;
    } else if (r != h->top) {
      *blk_node(b) = *blk_node(r);  /* b takes r's place */
    }
  }

  set_head(h, m, total, SA_PREV_USED);
  set_foot(m, total);
  int top = m + total == h->epilogue;
  if (left && top) {         /* the left neighbour leaves the index for the top */
    sa_tree_remove(&h->tree, m);
    h->top = m;
  } else if (left) {
    sa_tree_grew(&h->tree, m);
  } else if (right && r == h->top) {
    h->top = b;
  } else if (right) {
    sa_tree_replace(&h->tree, r, b);
  } else {
    index_add(h, b, total);
    h->st.free_blocks++;
  }
  set_prev_used(h, m + total, 0);
  if (tracked(h, head(m))) {
    dirt now = {sa_os_mono_coarse_s(), 0};
    set_dirt(h, m, res, now);
    maybe_purge(h);
  }
  return m;
}

/* Resizes used block b to need bytes without moving it; 1 on success. */
static int resize_locked(sa_heap *h, uintptr_t b, size_t need, const void *p) {
  uint64_t hd = head(b);
  size_t size = head_size(hd);
  uint64_t keep_flags = hd & (SA_USED | SA_PREV_USED | SA_TRACKED);
  if (need <= size) {
    if (size - need < SA_MIN_BLOCK) return 1;
    uintptr_t t = b + need;  /* the tail becomes a used block, then is freed */
    set_head(h, b, need, keep_flags);
    set_head(h, t, size - need, SA_USED | SA_PREV_USED);
    h->st.used_blocks++;
    free_locked(h, t, p, "realloc");
    realloc_trim(h);
    return 1;
  }
  uintptr_t r = b + size;
  uint64_t rh = head(r);
  if ((rh & SA_USED) || size + head_size(rh) < need) return 0;
  if (!checked_free(h, r, 0, p, "realloc")) return 0;
  size_t got = claim(h, r, need - size, rh);
  set_head(h, b, size + got, keep_flags);
  h->st.used_bytes += got;
  if (h->st.used_bytes > h->st.peak_used) h->st.peak_used = h->st.used_bytes;
  return 1;
}

/* ---- public entry points ------------------------------------------------- */

/* Sizes no heap can hold: over PTRDIFF_MAX, or over the largest block. */
static inline int too_big(size_t n) {
  if (n > SA_MAX_BLOCK - 2 * 4096) {
    errno = ENOMEM;
    return 1;
  }
  return 0;
}

void *sa_heap_alloc(sa_heap *h, size_t n) {
  if (too_big(n)) return NULL;
  size_t need = blk_size_for(n);
  sa_heap_lock(h);
  uintptr_t b = alloc_locked(h, need, NULL);
  sa_lock_release(&h->lock);
  if (!b) {
    errno = ENOMEM;
    return NULL;
  }
  return blk_payload(b);
}

void *sa_heap_calloc(sa_heap *h, size_t n) {
  if (too_big(n)) return NULL;
  size_t need = blk_size_for(n);
  uintptr_t zone[2];
  sa_heap_lock(h);
  uintptr_t b = alloc_locked(h, need, zone);
  sa_lock_release(&h->lock);
  if (!b) {
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t lo = b + SA_PAYLOAD, hi = b + head_size(head(b)) + SA_OVERHEAD;
  uintptr_t zlo = zone[0] > lo ? zone[0] : lo, zhi = zone[1] < hi ? zone[1] : hi;
  if (zlo >= zhi) {
    memset((void *)lo, 0, hi - lo);
  } else {
    memset((void *)lo, 0, zlo - lo);
    memset((void *)zhi, 0, hi - zhi);
  }
  return (void *)lo;
}

void *sa_heap_alloc_aligned(sa_heap *h, size_t align, size_t n) {
  if (align <= SA_ALIGN) return sa_heap_alloc(h, n);
  if (too_big(n) || too_big(align) || too_big(n + align)) return NULL;
  size_t need = blk_size_for(n);
  sa_heap_lock(h);
  uintptr_t f = find(h, need + align + SA_MIN_BLOCK);
  if (!f) {
    sa_lock_release(&h->lock);
    errno = ENOMEM;
    return NULL;
  }
  uint64_t fh = head(f);
  uintptr_t b = ((f + SA_PAYLOAD + align - 1) & ~(uintptr_t)(align - 1)) - SA_PAYLOAD;
  if (b != f && b - f < SA_MIN_BLOCK) b += align;
  if (b != f) {  /* leave the gap in front free, start a free block at b */
    size_t gap = b - f, fsize = head_size(fh);
    index_del(h, f);
    size_t res = resident(h, f, fh);
    dirt when = dirt_when(h, f, fh);
    h->dirty -= dirty_part(h, f, fh);
    set_head(h, f, gap, fh & (SA_PREV_USED | SA_CLEAN));
    set_foot(f, gap);
    index_add(h, f, gap);
    set_head(h, b, fsize - gap, fh & SA_CLEAN);
    set_foot(b, fsize - gap);
    index_add(h, b, fsize - gap);
    set_dirt(h, f, res < gap ? res : gap, when);
    set_dirt(h, b, res > gap ? res - gap : 0, when);
    h->st.free_blocks++;
    f = b;
    fh = head(b);
  }
  size_t got = claim(h, f, need, fh);
  set_head(h, f, got, SA_USED | (fh & SA_PREV_USED));
  account_used(h, got);
  sa_lock_release(&h->lock);
  return blk_payload(f);
}

/* Frees the block at p under the lock; trims after a realloc's move. */
static void free_one(sa_heap *h, void *p, const char *call, int moved, int give_back) {
  sa_lock_acquire(&h->lock);
  uintptr_t b = checked_used(h, p, call), m;
  if (b) {
    m = free_locked(h, b, p, call);
    if (m && give_back) purge_block(h, m);
    if (moved) realloc_trim(h);
  }
  sa_lock_release(&h->lock);
}

void sa_heap_free(sa_heap *h, void *p, const char *call) { free_one(h, p, call, 0, 0); }

void sa_heap_free_moved(sa_heap *h, void *p) { free_one(h, p, "realloc", 1, 0); }

void sa_heap_free_giving_back(sa_heap *h, void *p, int moved) {
  free_one(h, p, moved ? "realloc" : "free", moved, 1);
}

int sa_heap_resize_in_place(sa_heap *h, void *p, size_t n) {
  sa_lock_acquire(&h->lock);
  uintptr_t b = checked_used(h, p, "realloc");
  int ok = !b ? -1 : too_big(n) ? 0 : resize_locked(h, b, blk_size_for(n), p);
  sa_lock_release(&h->lock);
  return ok;
}

void *sa_heap_realloc(sa_heap *h, void *p, size_t n) {
  if (too_big(n)) return NULL;
  sa_lock_acquire(&h->lock);
  uintptr_t b = checked_used(h, p, "realloc");
  if (!b) {
    sa_lock_release(&h->lock);
    errno = EINVAL;
    return NULL;
  }
  size_t old = blk_usable(head(b));
  int ok = resize_locked(h, b, blk_size_for(n), p);
  sa_lock_release(&h->lock);
  if (ok) return p;
  void *q = sa_heap_alloc(h, n);
  if (!q) return NULL;
  memcpy(q, p, old < n ? old : n);
  sa_heap_free_moved(h, p);
  return q;
}

size_t sa_heap_usable(sa_heap *h, const void *p, const char *call) {
  uintptr_t a = (uintptr_t)p, b = a - SA_PAYLOAD;
  const char *why = NULL;
  uint64_t hd = 0;
  if ((a & (SA_ALIGN - 1)) || a < h->start + SA_PAYLOAD || a >= h->epilogue)
    why = "invalid pointer";
  else if (hd = head(b), !head_valid(b, hd, h->key) || !(hd & SA_USED))
    why = "invalid pointer";
  else if (*blk_tag_ptr((void *)a) == blk_cache_tag(a, h->key))
    why = "freed pointer";
  if (!why) return blk_usable(hd);
  sa_bad_ptr(call, why, p);
  return 0;
}

/* ---- batches and the remote list ----------------------------------------- */

void *sa_heap_remote_take(sa_heap *h, size_t cls) {
  if (!sa_heap_remote_waiting(h, cls)) return NULL;
  return __atomic_exchange_n(&h->remote[cls], NULL, __ATOMIC_ACQUIRE);
}

_Noreturn void sa_heap_bad_link(const char *call, const void *link) {
  sa_fatal_ptr(call, "use after free: a cached block's link was overwritten with", link);
}

void *sa_heap_checked_link(const sa_heap *h, void *link) {
  if (link && (!sa_heap_contains(h, link) || ((uintptr_t)link & (SA_ALIGN - 1))))
    sa_heap_bad_link("free", link);
  return link;
}

/* Frees the blocks on remote list c; the lock is held. */
static void drain_list_locked(sa_heap *h, size_t c) {
  size_t bytes = 0;
  for (void *p = sa_heap_remote_take(h, c), *next; p; p = next) {
    next = sa_heap_checked_link(h, *(void **)p);
    *blk_tag_ptr(p) = 0;
    uintptr_t b = checked_used(h, p, "free");
    if (!b) continue;
    bytes += head_size(head(b));
    free_locked(h, b, p, "free");
  }
  if (bytes) sa_heap_remote_taken(h, bytes);
}

static void drain_locked(sa_heap *h) {
  for (size_t c = 0; c < SA_REMOTE_LISTS; c++) drain_list_locked(h, c);
}

void sa_heap_lock(sa_heap *h) {
  sa_lock_acquire(&h->lock);
  if (sa_heap_remote_too_much(h, __atomic_load_n(&h->remote_bytes, __ATOMIC_RELAXED)))
    drain_locked(h);
  else
    drain_list_locked(h, SA_REMOTE_LISTS - 1);
}

void sa_heap_unlock(sa_heap *h) {
  sa_lock_release(&h->lock);
}

int sa_heap_alloc_run_locked(sa_heap *h, size_t size, void **first, int max, int line_end) {
  uintptr_t f = find(h, size);
  if (!f) return 0;
  /* Every hole below f is too small, so repeated first fits would carve
   * f's remainder again and again while it holds a block: do it at once. */
  uint64_t fh = head(f);
  size_t fsize = head_size(fh), n = fsize / size;
  if (n > (size_t)max) n = (size_t)max;
  if (n > 1 && fsize - n * size != 0 && fsize - n * size < SA_MIN_BLOCK) n--;
  size_t keep = n * size;
  if (line_end && size < SA_LINE) {
    /* The next block's head at f + keep + 8, its payload on a line. */
    size_t pad = (SA_LINE - SA_PAYLOAD - (f + keep)) & (SA_LINE - 1);
    if (keep + pad == fsize || keep + pad + SA_MIN_BLOCK <= fsize) keep += pad;
  }
  size_t got = claim(h, f, keep, fh);
  uint64_t prev = fh & SA_PREV_USED;
  for (size_t i = 0; i < n; i++) {
    uintptr_t b = f + i * size;
    size_t bs = i + 1 < n ? size : got - (n - 1) * size;  /* the last may absorb a crumb */
    set_head(h, b, bs, SA_USED | prev);
    prev = SA_PREV_USED;
  }
  account_used_n(h, got, n);
  *first = blk_payload(f);
  return (int)n;
}

static int must_grow(const sa_heap *h, size_t size) {
  return sa_tree_largest(&h->tree) < size && (!h->top || h->top + size + SA_MIN_BLOCK > h->touched);
}

int sa_heap_must_grow_locked(sa_heap *h, size_t size) {
  if (!must_grow(h, size)) return 0;
  if (!__atomic_load_n(&h->remote_bytes, __ATOMIC_RELAXED)) return 1;
  drain_locked(h);
  return must_grow(h, size);
}

void sa_heap_free_locked(sa_heap *h, void *p, const char *call) {
  uintptr_t b = checked_used(h, p, call);
  if (b) free_locked(h, b, p, call);
}

/* Whether the k blocks of size bytes from payload lo on are used blocks of
 * the heap, side by side, with a sound head after them: why_not_used's
 * test for a run, reading each head once.  The blocks come from a thread
 * cache, which has cleared their cache tags. */
static int run_sound(const sa_heap *h, uintptr_t lo, unsigned k, size_t size) {
  uintptr_t b = lo - SA_PAYLOAD, end = b + (uintptr_t)k * size;
  if ((lo & (SA_ALIGN - 1)) || b < h->start || end > h->epilogue || end <= b) return 0;
  for (; b < end; b += size) {
    uint64_t hd = head(b);
    if (head_size(hd) != size || !(hd & SA_USED) || !head_valid(b, hd, h->key)) return 0;
  }
  uint64_t next = head(end);
  return (next & SA_PREV_USED) && head_valid(end, next, h->key);
}

void sa_heap_free_run_locked(sa_heap *h, void *lo, unsigned k, size_t size, const char *call) {
  uintptr_t a = (uintptr_t)lo;
  if (!run_sound(h, a, k, size)) {
    for (unsigned j = 0; j < k; j++) sa_heap_free_locked(h, (void *)(a + j * size), call);
    return;  /* one by one, so that the damaged one is reported as such */
  }
  /* All sound: they become one used block, freed as such. */
  uintptr_t b = a - SA_PAYLOAD;
  set_head(h, b, k * size, head(b) & (SA_USED | SA_PREV_USED));
  h->st.used_blocks -= k - 1;
  free_locked(h, b, lo, call);
}

void sa_heap_remote_push(sa_heap *h, size_t cls, void *first, void *last, size_t n, size_t bytes) {
  sa_batch_set(h, first, last, n);
  /* Counted before they are published: a thread that takes them (after
   * the release below) subtracts after this add, so the count never
   * wraps below zero, where it would read as too much. */
  size_t waiting = __atomic_add_fetch(&h->remote_bytes, bytes, __ATOMIC_RELAXED);
  void *top = __atomic_load_n(&h->remote[cls], __ATOMIC_RELAXED);
  do {
    *(void **)last = top;
  } while (!__atomic_compare_exchange_n(&h->remote[cls], &top, first, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
  /* Normally a thread of h takes them back into its cache.  If they pile up
   * (the heap's threads are gone or busy elsewhere) and nobody holds the
   * lock, the pusher frees them itself. */
  if (sa_heap_remote_too_much(h, waiting) && sa_lock_try(&h->lock)) {
    drain_locked(h);
    sa_lock_release(&h->lock);
  }
}

/* ---- walking and checking ------------------------------------------------ */

void sa_heap_walk_locked(sa_heap *h, int (*fn)(const sa_block_info *, void *), void *ctx) {
  for (uintptr_t b = h->start; b < h->epilogue;) {
    uint64_t hd = head(b);
    int used = (hd & SA_USED) != 0;
    uintptr_t p = b + SA_PAYLOAD;
    int cached = used && *blk_tag_ptr((void *)p) == blk_cache_tag(p, h->key);
    sa_block_info info = {b, head_size(hd), used, cached, used && (hd & SA_TRACKED)};
    if (info.size == 0 || fn(&info, ctx)) return;
    b += info.size;
  }
}

void sa_heap_walk(sa_heap *h, int (*fn)(const sa_block_info *, void *), void *ctx) {
  sa_lock_acquire(&h->lock);
  sa_heap_walk_locked(h, fn, ctx);
  sa_lock_release(&h->lock);
}

size_t sa_heap_largest_free_locked(const sa_heap *h) {
  size_t t = sa_tree_largest(&h->tree), top = h->top ? head_size(head(h->top)) : 0;
  return t > top ? t : top;
}

typedef struct tree_cursor {
  const sa_heap *h;
  uintptr_t next;      /* where to look for the next free block */
  const char *why;
  uintptr_t where;
} tree_cursor;

/* Each indexed block, in address order, must be the next free block. */
static void visit_node(uintptr_t node, void *ctx) {
  tree_cursor *c = ctx;
  if (c->why) return;
  uintptr_t b = c->next;
  while (b < c->h->epilogue && (head(b) & SA_USED)) b += head_size(head(b));
  if (b != node) {
    c->why = "free index and block chain disagree";
    c->where = node;
    return;
  }
  c->next = b + head_size(head(b));
}

static sa_heap_report fail(const char *what, uintptr_t where) {
  sa_heap_report r = {0, what, where};
  return r;
}

sa_heap_report sa_heap_check_locked(sa_heap *h) {
  size_t used = 0, nused = 0, nfree = 0, dirty = 0;
  int prev_used = 1;
  uintptr_t b = h->start;
  while (b < h->epilogue) {
    uint64_t hd = head(b);
    size_t size = head_size(hd);
    if (!head_valid(b, hd, h->key)) return fail("block header damaged", b);
    if (size < SA_MIN_BLOCK || size > h->epilogue - b) return fail("block size out of range", b);
    if (!!(hd & SA_PREV_USED) != prev_used) return fail("PREV_USED flag wrong", b);
    if (hd & SA_USED) {
      used += size;
      nused++;
    } else {
      if (!prev_used) return fail("two free blocks are adjacent", b);
      if (*blk_foot_of_prev(b + size) != size) return fail("free block footer wrong", b);
      dirty += dirty_part(h, b, hd);
      nfree++;
    }
    prev_used = (hd & SA_USED) != 0;
    b += size;
  }
  if (b != h->epilogue) return fail("blocks do not tile the heap", b);
  uint64_t eh = head(b);
  if (!head_valid(b, eh, h->key) || head_size(eh) != 0 || !(eh & SA_USED))
    return fail("epilogue damaged", b);
  if (!!(eh & SA_PREV_USED) != prev_used) return fail("PREV_USED flag wrong", b);

  tree_cursor c = {h, h->start, NULL, 0};
  const char *why = NULL;
  long n = sa_tree_check(&h->tree, visit_node, &c, &why);
  if (n < 0) return fail(why, 0);
  if (c.why) return fail(c.why, c.where);
  uintptr_t last = h->epilogue - (prev_used ? 0 : *blk_foot_of_prev(h->epilogue));
  if (h->top != (prev_used ? 0 : last)) return fail("top block wrong", h->top);
  if ((size_t)n + (h->top != 0) != nfree) return fail("free index misses free blocks", 0);
  if (used != h->st.used_bytes || nused != h->st.used_blocks || nfree != h->st.free_blocks)
    return fail("statistics disagree with the blocks", 0);
  if (dirty != h->dirty) return fail("dirty byte count disagrees with the blocks", 0);
  sa_heap_report ok = {1, NULL, 0};
  return ok;
}

sa_heap_report sa_heap_check(sa_heap *h) {
  sa_lock_acquire(&h->lock);
  sa_heap_report r = sa_heap_check_locked(h);
  sa_lock_release(&h->lock);
  return r;
}
