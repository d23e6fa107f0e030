/* Unit tests of one heap over a private buffer: the first-fit policy,
 * splitting, coalescing, alignment, in-place realloc, and the invariants
 * after many random operations. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "block.h"
#include "fmt.h"
#include "heap.h"

#define ARENA (256 * 1024)

static _Alignas(4096) unsigned char buf[ARENA];
static sa_heap heap;

static void setup(void) {
  memset(buf, 0xa5, sizeof buf);
  cr_assert_eq(sa_heap_init(&heap, buf, sizeof buf, 0), 0);
}

static void assert_sound(void) {
  sa_heap_report r = sa_heap_check(&heap);
  cr_assert(r.ok, "heap check failed: %s at %#lx", r.what, (unsigned long)r.where);
}

static void *alloc(size_t n) {
  void *p = sa_heap_alloc(&heap, n);
  cr_assert_not_null(p, "alloc(%zu) failed", n);
  assert_sound();
  return p;
}

static void release(void *p) {
  sa_heap_free(&heap, p, "free");
  assert_sound();
}

static size_t block_size(const void *p) {
  return sa_heap_usable(&heap, p, "test") + SA_OVERHEAD;
}

TestSuite(heap, .init = setup);

Test(heap, init_rejects_bad_regions) {
  sa_heap h;
  cr_assert_eq(sa_heap_init(&h, buf + 8, 4096, 0), -1);
  cr_assert_eq(sa_heap_init(&h, buf, SA_HEAP_MIN_SIZE - 16, 0), -1);
  cr_assert_eq(sa_heap_init(&h, buf, SA_HEAP_MIN_SIZE, 0), 0);
  cr_assert(sa_heap_check(&h).ok);
}

Test(heap, first_block_starts_at_heap_start) {
  char *p = alloc(100);
  cr_assert_eq(sa_heap_offset(&heap, p), SA_PAYLOAD);
  cr_assert_eq((uintptr_t)p % 16, 0);
  cr_assert_eq(block_size(p), blk_size_for(100));
  cr_assert_eq(heap.st.used_blocks, 1);
  cr_assert_eq(heap.st.free_blocks, 1);
}

Test(heap, consecutive_allocations_are_adjacent) {
  char *a = alloc(40), *b = alloc(40), *c = alloc(40);
  cr_assert_eq(b - a, (ptrdiff_t)blk_size_for(40));
  cr_assert_eq(c - b, (ptrdiff_t)blk_size_for(40));
}

Test(heap, lowest_addressed_fit_is_chosen) {
  void *p[8];
  for (int i = 0; i < 8; i++) p[i] = alloc(200);
  release(p[1]);            /* hole of 208 at 1 */
  release(p[5]);            /* hole of 208 at 5 */
  release(p[3]);            /* hole of 208 at 3 */
  void *q = alloc(150);
  cr_assert_eq(q, p[1], "first fit must take the lowest hole");
  void *r = alloc(150);
  cr_assert_eq(r, p[3]);
}

Test(heap, lowest_hole_that_fits_not_lowest_hole) {
  void *hole[4];
  for (int i = 0; i < 4; i++) {
    hole[i] = alloc(i % 2 ? 1000 : 32);  /* small, big, small, big */
    alloc(16);                           /* a used guard after each */
  }
  for (int i = 0; i < 4; i++) release(hole[i]);
  cr_assert_eq(alloc(900), hole[1], "skips the small hole below it");
  cr_assert_eq(alloc(900), hole[3]);
  cr_assert_eq(alloc(20), hole[0]);
}

Test(heap, split_leaves_remainder_free) {
  void *a = alloc(1000), *guard = alloc(16);
  (void)guard;
  release(a);
  size_t free_before = heap.st.free_blocks;
  void *b = alloc(100);
  cr_assert_eq(b, a);
  cr_assert_eq(heap.st.free_blocks, free_before, "remainder stays a free block");
  void *c = alloc(100);
  cr_assert_eq((char *)c, (char *)b + blk_size_for(100), "remainder starts after the split");
}

Test(heap, exact_fit_removes_the_hole) {
  void *a = alloc(496), *guard = alloc(16);
  (void)guard;
  release(a);
  size_t holes = heap.st.free_blocks;
  void *b = alloc(496);
  cr_assert_eq(b, a);
  cr_assert_eq(heap.st.free_blocks, holes - 1);
}

Test(heap, remainder_too_small_is_given_away) {
  void *a = alloc(120), *guard = alloc(16);
  (void)guard;
  release(a);                                 /* hole of 128 */
  void *b = alloc(100);                       /* wants 112: rest 16 < 32 */
  cr_assert_eq(b, a);
  cr_assert_eq(block_size(b), 128);
  cr_assert_geq(sa_heap_usable(&heap, b, "test"), 120);
  memset(b, 1, sa_heap_usable(&heap, b, "test"));
  assert_sound();
}

Test(heap, coalesce_none) {
  void *a = alloc(64), *b = alloc(64), *c = alloc(64);
  (void)a;
  (void)c;
  size_t holes = heap.st.free_blocks;
  release(b);
  cr_assert_eq(heap.st.free_blocks, holes + 1);
}

Test(heap, coalesce_left) {
  void *a = alloc(64), *b = alloc(64), *c = alloc(64), *d = alloc(64);
  (void)a;
  (void)d;
  release(b);
  size_t holes = heap.st.free_blocks;
  release(c);
  cr_assert_eq(heap.st.free_blocks, holes);
  void *e = alloc(2 * 80 - 8);
  cr_assert_eq(e, b, "the merged hole serves a request the size of both");
}

Test(heap, coalesce_right) {
  void *a = alloc(64), *b = alloc(64), *c = alloc(64), *d = alloc(64);
  (void)a;
  (void)d;
  release(c);
  size_t holes = heap.st.free_blocks;
  release(b);
  cr_assert_eq(heap.st.free_blocks, holes);
  void *e = alloc(2 * 80 - 8);
  cr_assert_eq(e, b);
}

Test(heap, coalesce_both) {
  void *a = alloc(64), *b = alloc(64), *c = alloc(64), *d = alloc(64), *e = alloc(64);
  (void)a;
  (void)e;
  release(b);
  release(d);
  size_t holes = heap.st.free_blocks;
  release(c);
  cr_assert_eq(heap.st.free_blocks, holes - 1);
  void *f = alloc(3 * 80 - 8);
  cr_assert_eq(f, b);
}

Test(heap, coalesce_with_the_top_block) {
  void *a = alloc(64), *b = alloc(64);
  release(b);
  cr_assert_eq(heap.st.free_blocks, 1);
  release(a);
  cr_assert_eq(heap.st.free_blocks, 1);
  cr_assert_eq(heap.st.used_bytes, 0);
  cr_assert_eq(sa_heap_largest_free_locked(&heap), heap.epilogue - heap.start);
}

Test(heap, whole_heap_in_one_block_and_back) {
  size_t all = heap.epilogue - heap.start - SA_OVERHEAD;
  void *p = alloc(all);
  cr_assert_eq(heap.st.free_blocks, 0);
  cr_assert_null(sa_heap_alloc(&heap, 1));
  cr_assert_eq(errno, ENOMEM);
  memset(p, 0x5a, all);  /* the whole payload, up to the epilogue, is ours */
  assert_sound();
  release(p);
  cr_assert_eq(heap.st.free_blocks, 1);
}

Test(heap, last_block_next_to_epilogue) {
  size_t all = heap.epilogue - heap.start;
  void *a = alloc(1000);
  void *b = alloc(all - blk_size_for(1000) - SA_OVERHEAD);  /* exactly the rest */
  cr_assert_eq(heap.st.free_blocks, 0);
  release(b);
  cr_assert_eq(heap.st.free_blocks, 1);
  release(a);
  cr_assert_eq(heap.st.free_blocks, 1);
}

Test(heap, out_of_memory_then_recover) {
  void *p[64];
  int n = 0;
  while (n < 64 && (p[n] = sa_heap_alloc(&heap, 8000)) != NULL) n++;
  cr_assert_lt(n, 64);
  cr_assert_eq(errno, ENOMEM);
  assert_sound();
  for (int i = 0; i < n; i++) release(p[i]);
  cr_assert_not_null(sa_heap_alloc(&heap, ARENA / 2));
}

Test(heap, alignments_from_16_to_64k) {
  for (size_t align = 16; align <= 65536; align *= 2) {
    void *pad = alloc(24);  /* disturb the alignment of the top block */
    char *p = sa_heap_alloc_aligned(&heap, align, 100);
    cr_assert_not_null(p, "align %zu", align);
    cr_assert_eq((uintptr_t)p % align, 0, "align %zu", align);
    memset(p, 0x11, 100);
    assert_sound();
    release(p);
    release(pad);
  }
  cr_assert_eq(heap.st.used_blocks, 0);
  cr_assert_eq(heap.st.free_blocks, 1);
}

Test(heap, aligned_blocks_coexist) {
  void *p[20];
  for (int i = 0; i < 20; i++) {
    p[i] = sa_heap_alloc_aligned(&heap, (size_t)64 << (i % 6), 1 + i * 37);
    cr_assert_not_null(p[i]);
    cr_assert_eq((uintptr_t)p[i] % ((size_t)64 << (i % 6)), 0);
    memset(p[i], i, 1 + i * 37);
  }
  assert_sound();
  for (int i = 0; i < 20; i += 2) release(p[i]);
  for (int i = 1; i < 20; i += 2) {
    const unsigned char *c = p[i];
    for (int k = 0; k < 1 + i * 37; k++) cr_assert_eq(c[k], i);
    release(p[i]);
  }
}

Test(heap, realloc_grows_in_place_into_free_neighbour) {
  char *a = alloc(100), *b = alloc(400), *c = alloc(16);
  (void)c;
  memset(a, 7, 100);
  release(b);
  char *a2 = sa_heap_realloc(&heap, a, 400);
  cr_assert_eq(a2, a, "grows in place");
  for (int i = 0; i < 100; i++) cr_assert_eq(a2[i], 7);
  assert_sound();
}

Test(heap, realloc_grows_in_place_at_the_top) {
  char *a = alloc(100);
  char *a2 = sa_heap_realloc(&heap, a, 50000);
  cr_assert_eq(a2, a);
  cr_assert_geq(sa_heap_usable(&heap, a2, "test"), 50000);
  assert_sound();
}

Test(heap, realloc_moves_when_blocked) {
  char *a = alloc(100), *b = alloc(100);
  (void)b;
  memset(a, 3, 100);
  char *a2 = sa_heap_realloc(&heap, a, 1000);
  cr_assert_neq(a2, a);
  for (int i = 0; i < 100; i++) cr_assert_eq(a2[i], 3);
  assert_sound();
  cr_assert_eq(heap.st.used_blocks, 2);
}

Test(heap, realloc_shrinks_in_place) {
  char *a = alloc(1000), *b = alloc(16);
  (void)b;
  memset(a, 9, 1000);
  size_t holes = heap.st.free_blocks;
  char *a2 = sa_heap_realloc(&heap, a, 100);
  cr_assert_eq(a2, a);
  cr_assert_eq(block_size(a2), blk_size_for(100));
  cr_assert_eq(heap.st.free_blocks, holes + 1, "the tail became a free block");
  for (int i = 0; i < 100; i++) cr_assert_eq(a2[i], 9);
  assert_sound();
}

Test(heap, realloc_shrink_tail_merges_with_free_right) {
  char *a = alloc(1000), *b = alloc(100), *c = alloc(16);
  (void)c;
  release(b);
  size_t holes = heap.st.free_blocks;
  cr_assert_eq(sa_heap_realloc(&heap, a, 100), a);
  cr_assert_eq(heap.st.free_blocks, holes, "the tail joins the hole after it");
  assert_sound();
}

Test(heap, calloc_zeroes_reused_memory) {
  unsigned char *a = alloc(3000), *guard = alloc(16);
  (void)guard;
  memset(a, 0xff, 3000);
  release(a);
  unsigned char *b = sa_heap_calloc(&heap, 2990);
  cr_assert_eq(b, a);
  for (int i = 0; i < 2990; i++) cr_assert_eq(b[i], 0, "byte %d", i);
  assert_sound();
}

/* A heap over size bytes of fresh pages that gives the pages of free
 * blocks of at least threshold bytes back past retain dirty bytes. */
static sa_heap *paged_heap(sa_heap *h, size_t size, size_t threshold, size_t retain) {
  void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(mem, MAP_FAILED);
  cr_assert_eq(sa_heap_init(h, mem, size, 1), 0);
  h->release_threshold = threshold;
  h->retain = retain;
  return h;
}

Test(heap, release_pages_keeps_calloc_zero) {
  size_t size = 8 << 20;
  sa_heap h;
  paged_heap(&h, size, 64 * 1024, 0);  /* purge at every large free */
  for (int round = 0; round < 20; round++) {
    unsigned char *p[16];
    for (int i = 0; i < 16; i++) {
      p[i] = sa_heap_calloc(&h, 10000 + (size_t)i * 3000 + (size_t)round * 100);
      cr_assert_not_null(p[i]);
      for (size_t k = 0; k < 10000; k++) cr_assert_eq(p[i][k], 0);
      memset(p[i], 0xee, 10000 + (size_t)i * 3000 + (size_t)round * 100);
    }
    for (int i = round % 2; i < 16; i += 2) sa_heap_free(&h, p[i], "free");
    for (int i = 1 - round % 2; i < 16; i += 2) sa_heap_free(&h, p[i], "free");
    cr_assert(sa_heap_check(&h).ok);
  }
  cr_assert_eq(h.dirty, 0);
  munmap((void *)h.start, size);
}

Test(heap, free_of_foreign_pointer_aborts, .signal = SIGABRT) {
  int local;
  sa_heap_free(&heap, &local, "free");
}

Test(heap, free_of_interior_pointer_aborts, .signal = SIGABRT) {
  char *p = alloc(100);
  sa_heap_free(&heap, p + 16, "free");
}

Test(heap, double_free_aborts, .signal = SIGABRT) {
  char *p = alloc(100);
  alloc(100);
  sa_heap_free(&heap, p, "free");
  sa_heap_free(&heap, p, "free");
}

/* xorshift64*, fixed seed: the same operations on every run. */
static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dull;
}

Test(heap, random_operations_keep_invariants) {
  enum { SLOTS = 300, OPS = 20000 };
  unsigned char *slot[SLOTS] = {0};
  size_t len[SLOTS] = {0};
  for (int op = 0; op < OPS; op++) {
    int i = (int)(next() % SLOTS);
    uint64_t r = next();
    if (slot[i]) {
      for (size_t k = 0; k < len[i]; k++)
        cr_assert_eq(slot[i][k], (unsigned char)(i + k), "slot %d byte %zu", i, k);
      if (r % 3 == 0) {
        size_t n = r % 2 ? (r >> 8) % 64 : (r >> 8) % 3000;
        unsigned char *q = sa_heap_realloc(&heap, slot[i], n ? n : 1);
        if (q) {
          slot[i] = q;
          size_t keep = len[i] < n ? len[i] : n;
          len[i] = n;
          for (size_t k = keep; k < n; k++) q[k] = (unsigned char)(i + k);
        }
      } else {
        sa_heap_free(&heap, slot[i], "free");
        slot[i] = NULL;
      }
    } else {
      size_t n = r % 4 ? (r >> 8) % 100 : (r >> 8) % 4000;
      size_t align = r % 7 == 0 ? (size_t)32 << ((r >> 40) % 6) : 0;
      slot[i] = align ? sa_heap_alloc_aligned(&heap, align, n) : sa_heap_alloc(&heap, n);
      if (slot[i]) {
        if (align) cr_assert_eq((uintptr_t)slot[i] % align, 0);
        len[i] = n;
        for (size_t k = 0; k < n; k++) slot[i][k] = (unsigned char)(i + k);
      }
    }
    if (op % 50 == 0) assert_sound();
  }
  assert_sound();
  for (int i = 0; i < SLOTS; i++)
    if (slot[i]) sa_heap_free(&heap, slot[i], "free");
  assert_sound();
  cr_assert_eq(heap.st.used_bytes, 0);
  cr_assert_eq(heap.st.free_blocks, 1);
}

Test(heap, check_detects_a_damaged_header) {
  char *a = alloc(100);
  alloc(100);
  ((uint64_t *)a)[-1] ^= (uint64_t)1 << 40;  /* the size in a's head */
  sa_heap_report r = sa_heap_check(&heap);
  cr_assert_not(r.ok);
  cr_assert_str_eq(r.what, "block header damaged");
}

Test(heap, check_detects_an_overflow_into_the_next_header) {
  char *a = alloc(100), *b = alloc(100);
  memset(a, 0x41, (size_t)(b - a));  /* runs over b's head */
  cr_assert_not(sa_heap_check(&heap).ok);
}

typedef struct walk_state {
  uintptr_t last;
  size_t bytes;
  int used, free;
} walk_state;

static int visit(const sa_block_info *b, void *ctx) {
  walk_state *w = ctx;
  cr_assert_gt(b->addr, w->last);
  w->last = b->addr;
  w->bytes += b->size;
  if (b->used) w->used++;
  else w->free++;
  return 0;
}

static int count_cached(const sa_block_info *b, void *ctx) {
  ((walk_state *)ctx)->used += b->cached;
  return 0;
}

Test(heap, walk_visits_every_block_in_order) {
  void *p[5];
  for (int i = 0; i < 5; i++) p[i] = alloc(50 * (i + 1));
  release(p[2]);
  walk_state w = {0, 0, 0, 0};
  sa_heap_walk(&heap, visit, &w);
  cr_assert_eq(w.used, 4);
  cr_assert_eq(w.free, 2);
  cr_assert_eq(w.bytes, heap.epilogue - heap.start);
}

Test(heap, large_blocks_on_the_remote_list_are_freed_by_the_next_lock_holder) {
  char *a = alloc(5000);
  alloc(16);
  *blk_tag_ptr(a) = blk_cache_tag((uintptr_t)a, heap.key);
  sa_lock_acquire(&heap.lock);
  sa_heap_remote_push(&heap, SA_REMOTE_LISTS - 1, a, a, 1, blk_size_for(5000));
  sa_lock_release(&heap.lock);
  cr_assert_eq(heap.st.used_blocks, 2);
  sa_heap_lock(&heap);
  sa_heap_unlock(&heap);
  cr_assert_null(heap.remote[SA_REMOTE_LISTS - 1]);
  cr_assert_eq(heap.st.used_blocks, 1);
  assert_sound();
}

Test(heap, a_remote_link_overwritten_after_free_is_reported, .signal = SIGABRT) {
  char *a = alloc(5000), *b = alloc(5000);
  alloc(16);
  *blk_tag_ptr(a) = blk_cache_tag((uintptr_t)a, heap.key);
  *blk_tag_ptr(b) = blk_cache_tag((uintptr_t)b, heap.key);
  *(void **)a = b;
  sa_lock_acquire(&heap.lock);
  sa_heap_remote_push(&heap, SA_REMOTE_LISTS - 1, a, b, 2, 2 * blk_size_for(5000));
  sa_lock_release(&heap.lock);
  static char elsewhere[64];
  *(void **)a = elsewhere;  /* the program writes to a after freeing it */
  sa_warn_only = 1;         /* a bad pointer would only be reported: this aborts */
  sa_heap_lock(&heap);      /* the drain must not follow that link */
}

Test(heap, remote_list_is_drained_by_the_next_lock_holder) {
  char *a = alloc(64), *b = alloc(64), *c = alloc(64);
  alloc(16);
  /* chain a -> b, as tcache.c does for blocks of a heap it does not hold */
  *blk_tag_ptr(a) = blk_cache_tag((uintptr_t)a, heap.key);
  *blk_tag_ptr(b) = blk_cache_tag((uintptr_t)b, heap.key);
  *(void **)a = b;
  size_t cls = sa_remote_list(80);
  sa_heap_remote_push(&heap, cls, a, b, 2, 2 * 80);
  cr_assert_eq(heap.remote[cls], a, "the blocks wait for a thread of the heap");
  cr_assert_eq(heap.remote_bytes, 2 * 80);
  sa_heap_lock(&heap);
  sa_heap_unlock(&heap);
  cr_assert_eq(heap.remote[cls], a, "small blocks are left for a thread cache to take");
  size_t used = heap.st.used_bytes;
  heap.remote_bytes = SA_REMOTE_FLOOR + 1;  /* as if many were waiting... */
  heap.st.used_bytes = 4 * SA_REMOTE_FLOOR;  /* ...in a heap that uses far more */
  sa_heap_lock(&heap);
  sa_heap_unlock(&heap);
  cr_assert_eq(heap.remote[cls], a, "a flow that is small beside the heap's use is left");
  heap.st.used_bytes = used;                /* past half of what the heap uses */
  sa_heap_lock(&heap);              /* then the next holder frees them */
  sa_heap_unlock(&heap);
  cr_assert_null(heap.remote[cls]);
  cr_assert_eq(heap.st.used_blocks, 2);
  assert_sound();
  cr_assert_eq(sa_heap_alloc(&heap, 2 * 80 - 8), a, "a and b coalesced");
  (void)c;
}

Test(heap, remote_batches_name_their_last_block_and_length) {
  char *b[5];
  for (int i = 0; i < 5; i++) {
    b[i] = alloc(64);
    *blk_tag_ptr(b[i]) = blk_cache_tag((uintptr_t)b[i], heap.key);
  }
  alloc(16);
  size_t cls = sa_remote_list(80);
  *(void **)b[0] = b[1];  /* a batch of three ... */
  *(void **)b[1] = b[2];
  sa_heap_remote_push(&heap, cls, b[0], b[2], 3, 3 * 80);
  *(void **)b[3] = b[4];  /* ... then one of two */
  sa_heap_remote_push(&heap, cls, b[3], b[4], 2, 2 * 80);
  void *p = sa_heap_remote_take(&heap, cls);
  cr_assert_null(heap.remote[cls]);
  cr_assert_eq(p, b[3], "the last batch pushed comes first");
  cr_assert_eq(sa_batch_length(p), 2);
  cr_assert_eq(sa_batch_last(&heap, p), b[4]);
  p = *(void **)b[4];
  cr_assert_eq(p, b[0], "a batch's last block leads to the batch pushed before");
  cr_assert_eq(sa_batch_length(p), 3);
  cr_assert_eq(sa_batch_last(&heap, p), b[2]);
  cr_assert_null(*(void **)b[2]);
  cr_assert_eq(heap.remote_bytes, 5 * 80);
  sa_heap_remote_taken(&heap, 5 * 80);
  for (int i = 0; i < 5; i++) {
    *blk_tag_ptr(b[i]) = 0;
    release(b[i]);
  }
  assert_sound();
}

/* One thread pushes a block on a remote list as soon as the list is empty
 * and another takes it back at once: the count of bytes waiting must never
 * read below zero.  Counted after the push was published, it would, now
 * and then, when the taker subtracts first; read as an unsigned number it
 * is then "too much" and makes every lock holder free all remote blocks. */
#define HANDOFFS 200000
static void *push_often(void *arg) {
  void *a = arg;
  for (int i = 0; i < HANDOFFS; i++) {
    while (sa_heap_remote_waiting(&heap, 3)) {
    }
    sa_heap_remote_push(&heap, 3, a, a, 1, 80);
  }
  return NULL;
}

Test(heap, the_count_of_remote_bytes_never_reads_below_zero) {
  char *a = alloc(64);
  alloc(16);
  *blk_tag_ptr(a) = blk_cache_tag((uintptr_t)a, heap.key);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, push_often, a), 0);
  int taken = 0, below = 0;
  while (taken < HANDOFFS) {
    if (!sa_heap_remote_take(&heap, 3)) continue;
    sa_heap_remote_taken(&heap, 80);
    taken++;
    below += (int64_t)__atomic_load_n(&heap.remote_bytes, __ATOMIC_RELAXED) < 0;
  }
  pthread_join(t, NULL);
  cr_assert_eq(below, 0, "%d of %d takes saw fewer than zero bytes waiting", below, taken);
  cr_assert_eq(heap.remote_bytes, 0);
}

/* Before a heap touches new memory for a block, the blocks waiting on its
 * remote lists are freed: two neighbours there merge into a hole that
 * holds the block. */
Test(heap, a_heap_about_to_grow_frees_its_remote_blocks_first) {
  char *a = alloc(1000), *b = alloc(1000);
  alloc(16);
  size_t size = block_size(a) + block_size(b), cls = sa_remote_list(block_size(a));
  cr_assert(sa_heap_must_grow_locked(&heap, size), "nothing is free yet");
  for (char *p = a; p; p = p == a ? b : NULL) *blk_tag_ptr(p) = blk_cache_tag((uintptr_t)p, heap.key);
  *(void **)a = b;
  *(void **)b = NULL;
  sa_heap_remote_push(&heap, cls, a, b, 2, size);
  cr_assert_eq(heap.remote[cls], a, "a flow this small is left for a thread cache");
  cr_assert_not(sa_heap_must_grow_locked(&heap, size), "the waiting blocks were not freed");
  cr_assert_null(heap.remote[cls]);
  cr_assert_eq(heap.remote_bytes, 0);
  cr_assert_eq(heap.st.used_blocks, 1);
  assert_sound();
}

Test(heap, remote_push_frees_when_blocks_pile_up_and_the_lock_is_free) {
  char *a = alloc(64);
  alloc(16);
  *blk_tag_ptr(a) = blk_cache_tag((uintptr_t)a, heap.key);
  sa_heap_remote_push(&heap, 3, a, a, 1, SA_REMOTE_FLOOR + 1);  /* as if many were waiting */
  cr_assert_null(heap.remote[3]);
  cr_assert_eq(heap.st.used_blocks, 1);
  assert_sound();
}

/* A producer's blocks that its consumers freed wait on its heap's remote
 * lists until its refills take them; in a heap of a few MiB, a megabyte
 * waiting is already too much, and the pusher frees them. */
Test(heap, a_small_heap_frees_its_remote_blocks_once_a_mebibyte_waits) {
  char *a = alloc(64);
  alloc(16);
  *blk_tag_ptr(a) = blk_cache_tag((uintptr_t)a, heap.key);
  heap.st.used_bytes += 2 << 20;  /* as if the heap used 2 MiB more... */
  sa_heap_remote_push(&heap, 3, a, a, 1, 5 << 18);  /* ...and 1.25 MiB waited */
  heap.st.used_bytes -= 2 << 20;
  cr_assert_null(heap.remote[3]);
  cr_assert_eq(heap.st.used_blocks, 1);
  assert_sound();
}

Test(heap, walk_reports_cached_blocks) {
  char *a = alloc(64);
  alloc(64);
  *blk_tag_ptr(a) = blk_cache_tag((uintptr_t)a, heap.key);
  walk_state w = {0, 0, 0, 0};
  sa_heap_walk(&heap, count_cached, &w);
  cr_assert_eq(w.used, 1, "one block is cached");
}

Test(heap, free_of_a_cached_block_is_a_double_free, .signal = SIGABRT) {
  char *a = alloc(64);
  alloc(16);
  *blk_tag_ptr(a) = blk_cache_tag((uintptr_t)a, heap.key);
  sa_heap_free(&heap, a, "free");
}

Test(heap, dirty_bytes_are_retained_then_purged) {
  size_t size = 8 << 20;
  sa_heap h;
  paged_heap(&h, size, 64 * 1024, 1 << 20);
  unsigned char *a = sa_heap_alloc(&h, 600 << 10), *guard = sa_heap_alloc(&h, 16);
  unsigned char *b = sa_heap_alloc(&h, 600 << 10), *guard2 = sa_heap_alloc(&h, 16);
  memset(a, 0x77, 600 << 10);
  memset(b, 0x77, 600 << 10);
  sa_heap_free(&h, a, "free");
  cr_assert_eq(h.dirty, blk_size_for(600 << 10), "kept warm, not given back");
  cr_assert_eq(a[300 << 10], 0x77, "the pages were not released");
  sa_heap_free(&h, b, "free");
  cr_assert_eq(h.dirty, blk_size_for(600 << 10),
               "past the limit, purged down to it, highest block first");
  cr_assert_eq(b[300 << 10], 0, "b's pages went back to the kernel");
  cr_assert_eq(a[300 << 10], 0x77, "a, lower and likelier to be reused, kept its pages");
  unsigned char *c = sa_heap_calloc(&h, 500 << 10);
  for (size_t k = 0; k < (500 << 10); k += 997) cr_assert_eq(c[k], 0);
  cr_assert(sa_heap_check(&h).ok);
  (void)guard;
  (void)guard2;
  munmap((void *)h.start, size);
}


/* With a hold, too much dirty memory is given back only when a free finds
 * it again a second or more after it was first found: a heap freed nearly
 * whole and filled again at once keeps its pages. */
Test(heap, too_much_dirty_memory_waits_for_its_hold) {
  size_t size = 8 << 20;
  sa_heap h;
  paged_heap(&h, size, 64 * 1024, 1 << 20);
  h.hold = 1;
  unsigned char *a = sa_heap_alloc(&h, 600 << 10), *mid = sa_heap_alloc(&h, 16);
  unsigned char *b = sa_heap_alloc(&h, 600 << 10), *guard = sa_heap_alloc(&h, 16);
  memset(a, 0x77, 600 << 10);
  memset(b, 0x77, 600 << 10);
  sa_heap_free(&h, a, "free");
  sa_heap_free(&h, b, "free");
  cr_assert_eq(h.dirty, 2 * blk_size_for(600 << 10), "too much, but only just found");
  cr_assert_eq(b[300 << 10], 0x77, "b kept its pages");
  struct timespec wait = {1, 100 * 1000 * 1000};
  nanosleep(&wait, NULL);
  sa_heap_free(&h, mid, "free");  /* merges a, mid and b: found again */
  cr_assert_leq(h.dirty, (size_t)1 << 20, "given back down to the retained bytes");
  cr_assert_eq(b[300 << 10], 0, "the highest pages went back to the kernel");
  cr_assert(sa_heap_check(&h).ok);
  (void)guard;
  munmap((void *)h.start, size);
}

Test(heap, a_block_freed_giving_back_leaves_no_resident_hole) {
  size_t size = 8 << 20;
  sa_heap h;
  paged_heap(&h, size, 64 * 1024, 4 << 20);  /* would keep it warm otherwise */
  unsigned char *a = sa_heap_alloc(&h, 600 << 10), *guard = sa_heap_alloc(&h, 16);
  unsigned char *b = sa_heap_alloc(&h, 40 << 10), *guard2 = sa_heap_alloc(&h, 16);
  memset(a, 0x77, 600 << 10);
  memset(b, 0x77, 40 << 10);
  sa_heap_free(&h, a, "free");
  cr_assert_eq(a[300 << 10], 0x77, "a plain free keeps the pages");
  sa_heap_free_giving_back(&h, b, 0);
  cr_assert_eq(b[20 << 10], 0, "the pages went back, though the block is below the threshold");
  cr_assert(blk_head((uintptr_t)b - SA_PAYLOAD) & SA_CLEAN, "the hole knows it reads as zero");
  cr_assert_eq(h.dirty, blk_size_for(600 << 10), "only a's bytes count as dirty");
  cr_assert(sa_heap_check(&h).ok);
  (void)guard;
  (void)guard2;
  munmap((void *)h.start, size);
}

/* The most used and dirty bytes realloc leaves a heap with (heap.c). */
static size_t realloc_bound(const sa_heap *h) {
  return h->retain + h->st.peak_used;
}

static int page_resident(const void *p) {
  unsigned char v = 0;
  cr_assert_eq(mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, &v), 0);
  return v & 1;
}

static void assert_heap_sound(sa_heap *h) {
  sa_heap_report r = sa_heap_check(h);
  cr_assert(r.ok, "heap check failed: %s at %#lx", r.what, (unsigned long)r.where);
}

/* malloc_trim's part: every free block with a whole page after its node
 * gives it back, however small and recent, and the top past pad bytes;
 * the dirty count follows, and a second trim finds nothing to give. */
Test(heap, trim_gives_back_every_free_page) {
  size_t size = 8 << 20;
  sa_heap h;
  paged_heap(&h, size, 1 << 20, 4 << 20);  /* no policy would give any back */
  unsigned char *p[64];
  for (int i = 0; i < 64; i++) {
    p[i] = sa_heap_alloc(&h, 20000);
    memset(p[i], 0x55, 20000);
  }
  for (int i = 0; i < 64; i += 2) sa_heap_free(&h, p[i], "free");
  sa_heap_free(&h, p[63], "free");  /* joins the top */
  cr_assert_eq(p[0][10000], 0x55, "a plain free keeps the pages");
  cr_assert_eq(sa_heap_trim(&h, 0), 1);
  for (int i = 0; i < 62; i += 2) {
    cr_assert_eq(p[i][10000], 0, "hole %d kept its pages", i);
    cr_assert(blk_head((uintptr_t)p[i] - SA_PAYLOAD) & SA_CLEAN, "hole %d", i);
  }
  for (int i = 1; i < 62; i += 2) cr_assert_eq(p[i][19999], 0x55, "live block %d changed", i);
  cr_assert_eq(h.dirty, 0);
  cr_assert_not(page_resident((char *)h.top + 8192), "the top went back");
  assert_heap_sound(&h);
  cr_assert_eq(sa_heap_trim(&h, 0), 0, "nothing left to give");
  munmap((void *)h.start, size);
}

Test(heap, trim_keeps_pad_bytes_of_the_top) {
  size_t size = 8 << 20;
  sa_heap h;
  paged_heap(&h, size, 1 << 20, 4 << 20);
  unsigned char *a = sa_heap_alloc(&h, 2 << 20);
  memset(a, 0x66, 2 << 20);
  sa_heap_free(&h, a, "free");  /* all of it the top again, dirty */
  cr_assert_eq(sa_heap_trim(&h, 1 << 20), 1);
  cr_assert(page_resident(a + (1 << 20) - 8192), "the pad stays");
  cr_assert_eq(a[(1 << 20) - 8192], 0x66);
  cr_assert_not(page_resident(a + (1 << 20) + 8192), "past the pad goes");
  assert_heap_sound(&h);
  cr_assert_eq(sa_heap_trim(&h, 1 << 20), 0, "nothing past the pad");
  cr_assert_eq(sa_heap_trim(&h, 0), 1, "the pad goes too");
  cr_assert_not(page_resident(a + (1 << 20) - 8192));
  unsigned char *b = sa_heap_calloc(&h, 2 << 20);
  cr_assert_eq(b, a);
  for (size_t k = 0; k < (2 << 20); k += 4096) cr_assert_eq(b[k], 0, "byte %zu", k);
  assert_heap_sound(&h);
  munmap((void *)h.start, size);
}

/* A heap over caller memory never gives pages back (release_pages 0). */
Test(heap, trim_leaves_caller_memory_alone) {
  unsigned char *a = sa_heap_alloc(&heap, 20000), *guard = sa_heap_alloc(&heap, 16);
  memset(a, 0x44, 20000);
  sa_heap_free(&heap, a, "free");
  cr_assert_eq(sa_heap_trim(&heap, 0), 0);
  cr_assert_eq(a[10000], 0x44);
  (void)guard;
}

/* A block of n bytes filled and cut down to 16 bytes by realloc, or freed.
 * The guard after it comes first: later guards go to the lowest hole. */
static unsigned char *fill_and_drop(sa_heap *h, size_t n, int by_realloc) {
  unsigned char *x = sa_heap_alloc(h, n);
  cr_assert_not_null(x);
  cr_assert_not_null(sa_heap_alloc(h, 16));
  memset(x, 0x77, n);
  if (by_realloc)
    cr_assert_eq(sa_heap_realloc(h, x, 16), x, "shrinks in place");
  else
    sa_heap_free(h, x, "free");
  assert_heap_sound(h);
  return x;
}

/* 1 MiB, then 1.25 MiB, which does not fit in the first one's hole: the
 * heap touches more memory than it ever had in use at once, and realloc
 * gives back the highest hole, the top, which first fit would reuse last. */
Test(heap, realloc_gives_back_the_highest_hole_once_past_its_peak_use) {
  sa_heap h;
  paged_heap(&h, 32 << 20, 64 * 1024, 0);
  cr_assert_not_null(sa_heap_alloc(&h, 512 << 10));  /* in use throughout */
  unsigned char *x1 = fill_and_drop(&h, 1 << 20, 1);
  cr_assert_eq(x1[512 << 10], 0x77, "within the bound, the tail keeps its pages");
  cr_assert(page_resident(x1 + (512 << 10)));
  size_t lower = h.dirty;
  unsigned char *x2 = fill_and_drop(&h, 5 << 18, 1);
  cr_assert_leq(h.st.used_bytes + h.dirty, realloc_bound(&h));
  cr_assert_not(page_resident(x2 + (640 << 10)), "the top went back to the kernel");
  cr_assert_eq(x2[640 << 10], 0);
  cr_assert_eq(x1[512 << 10], 0x77, "the lower hole, reused first, kept its pages");
  cr_assert(page_resident(x1 + (512 << 10)));
  cr_assert_eq(h.dirty, lower - SA_MIN_BLOCK,
               "only the lower hole is dirty, less the guard first fit carved from it");
  munmap((void *)h.start, 32 << 20);
}

Test(heap, free_keeps_the_pages_realloc_would_give_back) {
  sa_heap h;
  paged_heap(&h, 32 << 20, 64 * 1024, 0);
  cr_assert_not_null(sa_heap_alloc(&h, 512 << 10));
  unsigned char *x1 = fill_and_drop(&h, 1 << 20, 0);
  unsigned char *x2 = fill_and_drop(&h, 5 << 18, 0);
  cr_assert_gt(h.st.used_bytes + h.dirty, realloc_bound(&h));
  cr_assert_eq(x1[512 << 10], 0x77, "free leaves warm pages to the purge policy");
  cr_assert_eq(x2[640 << 10], 0x77);
  munmap((void *)h.start, 32 << 20);
}

/* Buffers growing by half and shrinking by a third, as bench/ realloc does:
 * moves leave holes behind, and whenever realloc gives memory back the
 * heap's used and dirty bytes are within the bound again. */
Test(heap, realloc_keeps_used_and_dirty_bytes_within_its_bound) {
  enum { BUFS = 64, MAX = 256 << 10 };
  struct { unsigned char *p; size_t n; int up; } b[BUFS];
  sa_heap h;
  paged_heap(&h, 64 << 20, 64 * 1024, 0);
  for (int i = 0; i < BUFS; i++) {
    b[i].n = 16 + (size_t)i * 64;
    b[i].p = sa_heap_alloc(&h, b[i].n);
    cr_assert_not_null(b[i].p);
    memset(b[i].p, i, b[i].n);
    b[i].up = 1;
  }
  size_t gave_back = 0;
  for (int op = 0; op < 20000; op++) {
    int i = (int)(next() % BUFS);
    size_t n = b[i].up ? b[i].n * 3 / 2 : b[i].n * 2 / 3;
    if (n > MAX || n < 16) {
      b[i].up = !b[i].up;
      n = b[i].up ? b[i].n * 3 / 2 : b[i].n * 2 / 3;
    }
    size_t before = sa_heap_usable(&h, b[i].p, "test");
    unsigned char *q = sa_heap_realloc(&h, b[i].p, n);
    cr_assert_not_null(q);
    size_t keep = n < b[i].n ? n : b[i].n;
    cr_assert_eq(q[0], (unsigned char)i);
    cr_assert_eq(q[keep - 1], (unsigned char)i);
    if (q != b[i].p || sa_heap_usable(&h, q, "test") < before) {  /* gave memory back */
      cr_assert_leq(h.st.used_bytes + h.dirty, realloc_bound(&h), "op %d", op);
      gave_back++;
    }
    if (n > b[i].n) memset(q + b[i].n, i, n - b[i].n);
    b[i].p = q;
    b[i].n = n;
    if (op % 1000 == 0) assert_heap_sound(&h);
  }
  assert_heap_sound(&h);
  cr_assert_gt(gave_back, 1000);
  cr_assert_gt(h.reached - h.start, realloc_bound(&h),
               "the heap touched more than the bound, and gave the difference back");
  munmap((void *)h.start, 64 << 20);
}

Test(heap, a_tiny_release_threshold_keeps_the_page_records_inside_their_blocks) {
  size_t size = 1 << 20;
  sa_heap h;
  paged_heap(&h, size, 16, 4 << 20);  /* a threshold smaller than any block */
  void *p[8];
  for (int i = 0; i < 8; i++) p[i] = sa_heap_alloc(&h, 16 + (size_t)i * 16);
  for (int i = 0; i < 8; i += 2) sa_heap_free(&h, p[i], "free");
  sa_heap_report r = sa_heap_check(&h);
  cr_assert(r.ok, "%s at %#lx", r.what, (unsigned long)r.where);
  for (int i = 1; i < 8; i += 2) sa_heap_free(&h, p[i], "free");
  cr_assert(sa_heap_check(&h).ok);
  munmap((void *)h.start, size);
}

Test(heap, a_damaged_free_index_is_caught_while_searching, .signal = SIGABRT) {
  void *a = alloc(1000), *guard = alloc(16), *b = alloc(3000);
  alloc(16);
  (void)guard;
  release(a);
  release(b);
  /* a's chunk, and every level above it, claims a fit of 100000 bytes
   * that no block has */
  uint32_t i = (uint32_t)(((uintptr_t)a - SA_PAYLOAD - heap.tree.origin) >> SA_CHUNK_SHIFT);
  for (uint32_t l = 0; l <= heap.tree.top; l++, i >>= 4)
    *sa_tree_entry(&heap.tree, l, i) = (uint32_t)(100000 >> SA_UNIT_SHIFT);
  sa_heap_alloc(&heap, 50000);
}

Test(heap, a_damaged_index_link_is_caught_when_merging, .signal = SIGABRT) {
  char *a = alloc(100), *g1 = alloc(100), *b = alloc(100);
  alloc(100);
  release(a);
  release(b);
  /* b's node names no block before it, though a is */
  uintptr_t bb = (uintptr_t)b - SA_PAYLOAD;
  blk_node(bb)->prev = 0;
  sa_heap_free(&heap, g1, "free");  /* merges a, g1 and b: b leaves the tree */
}

Test(heap, a_run_of_blocks_is_what_repeated_first_fits_give) {
  char *small = alloc(40), *g1 = alloc(16);  /* a hole too small for 80 */
  void *hole[5];
  for (int i = 0; i < 5; i++) hole[i] = alloc(72);  /* 80-byte blocks */
  alloc(16);
  release(small);
  for (int i = 0; i < 5; i++) release(hole[i]);      /* one hole of 400 */
  (void)g1;
  char *first;
  sa_heap_lock(&heap);
  int n = sa_heap_alloc_run_locked(&heap, 80, (void **)&first, 8, 0);
  sa_heap_unlock(&heap);
  cr_assert_eq(n, 5, "the lowest fitting hole holds five");
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(first + i * 80, hole[i]);
    cr_assert_eq(head_size(blk_head(blk_of_payload(hole[i]))), 80);
  }
  assert_sound();
  sa_heap_lock(&heap);
  n = sa_heap_alloc_run_locked(&heap, 80, (void **)&first, 3, 0);
  sa_heap_unlock(&heap);
  cr_assert_eq(n, 3, "then the top");
  cr_assert_gt((uintptr_t)first, (uintptr_t)hole[4]);
  cr_assert_eq(heap.st.used_blocks, 1 + 1 + 5 + 3, "g1, the guard, the run from the hole, the run from the top");
  assert_sound();
}

/* With line_end, a run of small blocks ends where the next block's payload
 * starts a cache line: its last block takes up to 48 bytes more. */
Test(heap, a_run_of_small_blocks_can_end_on_a_cache_line) {
  for (int shift = 0; shift < 4; shift++) {
    char *first;
    sa_heap_lock(&heap);
    int n = sa_heap_alloc_run_locked(&heap, 32, (void **)&first, 3, 1);
    sa_heap_unlock(&heap);
    cr_assert_eq(n, 3);
    char *last = first + 2 * 32;
    size_t last_size = head_size(blk_head(blk_of_payload(last)));
    cr_assert(last_size >= 32 && last_size <= 32 + 48, "last block %zu bytes", last_size);
    uintptr_t next_payload = blk_of_payload(last) + last_size + SA_PAYLOAD;
    cr_assert_eq(next_payload % SA_LINE, 0, "the next payload at %#lx", (unsigned long)next_payload);
    alloc(8 + 16 * (size_t)shift);  /* moves the next run's start */
  }
  char *first;
  sa_heap_lock(&heap);
  int n = sa_heap_alloc_run_locked(&heap, 80, (void **)&first, 2, 1);
  sa_heap_unlock(&heap);
  cr_assert_eq(n, 2);
  cr_assert_eq(head_size(blk_head(blk_of_payload(first + 80))), 80, "blocks of a line or more stay as they are");
  assert_sound();
}

Test(heap, a_run_freed_at_once_ends_as_one_by_one_frees_would) {
  char *left = alloc(40);
  void *blk[5];
  for (int i = 0; i < 5; i++) blk[i] = alloc(72);  /* 80-byte blocks side by side */
  void *guard = alloc(16);
  (void)guard;
  release(left);
  size_t used = heap.st.used_bytes, blocks = heap.st.used_blocks, holes = heap.st.free_blocks;
  sa_heap_lock(&heap);
  sa_heap_free_run_locked(&heap, blk[0], 5, 80, "free");
  sa_heap_unlock(&heap);
  assert_sound();
  cr_assert_eq(heap.st.used_bytes, used - 5 * 80);
  cr_assert_eq(heap.st.used_blocks, blocks - 5);
  cr_assert_eq(heap.st.free_blocks, holes, "the run joined the free block on its left");
  void *all = alloc(5 * 80 + 48 - 8);
  cr_assert_eq(all, left, "one hole from the left block to the guard");
}

Test(heap, a_damaged_block_in_a_run_is_reported, .signal = SIGABRT) {
  void *blk[4];
  for (int i = 0; i < 4; i++) blk[i] = alloc(72);
  alloc(16);
  ((uint64_t *)blk[2])[-1] ^= 1u << 20;  /* the third block's header */
  sa_heap_lock(&heap);
  sa_heap_free_run_locked(&heap, blk[0], 4, 80, "free");
}

Test(heap, a_run_whose_last_block_overran_is_reported, .signal = SIGABRT) {
  void *blk[4];
  for (int i = 0; i < 4; i++) blk[i] = alloc(72);
  void *guard = alloc(16);
  ((uint64_t *)guard)[-1] ^= 1u << 20;  /* the header after the run */
  sa_heap_lock(&heap);
  sa_heap_free_run_locked(&heap, blk[0], 4, 80, "free");
}

/* A heap whose blocks stay within its first megabyte touches one page of
 * its free index's summary, the one the epilogue lies in, however large
 * its region (the summary of a 4 GiB heap spans 10 MiB). */
Test(heap, a_small_heap_touches_one_page_of_its_index) {
  size_t size = (size_t)4 << 30;
  unsigned char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  cr_assert_neq(mem, MAP_FAILED);
  sa_heap h;
  cr_assert_eq(sa_heap_init(&h, mem, size, 1), 0);
  void *p[200];
  for (int i = 0; i < 200; i++) cr_assert_not_null(p[i] = sa_heap_alloc(&h, 100 + 40 * (size_t)i));
  for (int i = 0; i < 200; i += 2) sa_heap_free(&h, p[i], "free");
  cr_assert(sa_heap_check(&h).ok);
  uintptr_t lo = h.epilogue & ~(uintptr_t)4095, hi = (uintptr_t)mem + size;
  size_t pages = (hi - lo) / 4096, resident = 0;
  unsigned char *vec = mmap(NULL, pages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(vec, MAP_FAILED);
  cr_assert_eq(mincore((void *)lo, hi - lo, vec), 0);
  for (size_t i = 0; i < pages; i++) resident += vec[i] & 1;
  cr_expect_eq(resident, 1, "pages of the summary resident: %zu", resident);
  munmap(vec, pages);
  munmap(mem, size);
}
