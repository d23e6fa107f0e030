/* Unit tests of the allocation-site table and trailers (sites.c) without the unwinder:
 * stacks are given by hand, blocks come from a private heap keyed like the
 * process arena so that TRACKED can be set in their headers. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "block.h"
#include "fmt.h"
#include "heap.h"
#include "sites.h"
#include "tcache.h"

#define ARENA (1 << 20)

static _Alignas(4096) unsigned char buf[ARENA];
static sa_heap heap;

static void setup_mode(int mode, uint64_t rate, int depth, uint32_t max) {
  cr_assert_eq(sa_heap_init_keyed(&heap, buf, sizeof buf, 0, sa_tc_key), 0);
  cr_assert_eq(sa_sites_test_setup(mode, rate, depth, max), 0);
}

static void setup_all(void) { setup_mode(SA_SITES_ALL, 1, 16, 64); }

static void *block(size_t n) {
  void *p = sa_heap_alloc(&heap, n);
  cr_assert_not_null(p);
  return p;
}

static size_t size_of(const void *p) {
  return head_size(*blk_head_ptr(blk_of_payload(p)));
}

static int tracked(const void *p) {
  return (*blk_head_ptr(blk_of_payload(p)) & SA_TRACKED) != 0;
}

static simalloc_snap_site site(uint32_t id) {
  simalloc_snap_site s;
  cr_assert_eq(sa_sites_test_site(id, &s), 0, "no site %u", id);
  return s;
}

static const uintptr_t stack_a[] = {0x401000, 0x402000, 0x403000};
static const uintptr_t stack_b[] = {0x401000, 0x402000, 0x403008};

TestSuite(sites, .init = setup_all);

Test(sites, equal_stacks_share_a_site) {
  void *p = block(100), *q = block(200), *r = block(300);
  uint32_t a1 = sa_sites_test_record(p, size_of(p), stack_a, 3);
  uint32_t a2 = sa_sites_test_record(q, size_of(q), stack_a, 3);
  uint32_t b = sa_sites_test_record(r, size_of(r), stack_b, 3);
  cr_assert_geq(a1, SIMALLOC_SITE_FIRST);
  cr_assert_eq(a1, a2);
  cr_assert_neq(a1, b);
  cr_assert_eq(sa_sites_test_count(), SIMALLOC_SITE_FIRST + 2);
  simalloc_snap_site s = site(a1);
  cr_assert_eq(s.live_bytes, size_of(p) + size_of(q));
  cr_assert_eq(s.live_blocks, 2);
  cr_assert_eq(s.total_calls, 2);
  cr_assert_eq(s.frame_count, 3);
  cr_assert_eq(s.frames[2], 0x403000);
  cr_assert_eq(site(b).live_bytes, size_of(r));
  cr_assert(tracked(p) && tracked(q) && tracked(r));
  cr_assert_eq(sa_site_of(p), a1);
  cr_assert_eq(sa_site_of(r), b);
}

Test(sites, stacks_are_cut_at_the_depth) {
  cr_assert_eq(sa_sites_test_setup(SA_SITES_ALL, 1, 2, 64), 0);
  void *p = block(64), *q = block(64);
  uint32_t a = sa_sites_test_record(p, size_of(p), stack_a, 3);
  uint32_t b = sa_sites_test_record(q, size_of(q), stack_b, 3);
  cr_assert_eq(a, b, "the stacks differ only past the depth");
  cr_assert_eq(site(a).frame_count, 2);
}

Test(sites, a_full_table_folds_into_other) {
  /* Room for none, other and two real sites. */
  cr_assert_eq(sa_sites_test_setup(SA_SITES_ALL, 1, 16, SIMALLOC_SITE_FIRST + 2), 0);
  uintptr_t frames[1];
  uint32_t ids[5];
  void *p[5];
  for (int i = 0; i < 5; i++) {
    frames[0] = 0x1000 + (uintptr_t)i;
    p[i] = block(48);
    ids[i] = sa_sites_test_record(p[i], size_of(p[i]), frames, 1);
  }
  cr_assert_eq(ids[0], SIMALLOC_SITE_FIRST);
  cr_assert_eq(ids[1], SIMALLOC_SITE_FIRST + 1);
  cr_assert_eq(ids[2], SIMALLOC_SITE_OTHER);
  cr_assert_eq(ids[4], SIMALLOC_SITE_OTHER);
  cr_assert_eq(sa_sites_test_count(), SIMALLOC_SITE_FIRST + 2, "the table did not grow");
  cr_assert_eq(site(SIMALLOC_SITE_OTHER).live_blocks, 3);
  cr_assert_eq(site(SIMALLOC_SITE_OTHER).live_bytes, 3 * size_of(p[2]));
  /* A stack that has a site still finds it. */
  frames[0] = 0x1001;
  void *q = block(48);
  cr_assert_eq(sa_sites_test_record(q, size_of(q), frames, 1), SIMALLOC_SITE_FIRST + 1);
}

Test(sites, free_credits_the_site_back) {
  void *p = block(1000), *q = block(1000);
  uint32_t id = sa_sites_test_record(p, size_of(p), stack_a, 3);
  sa_sites_test_record(q, size_of(q), stack_a, 3);
  sa_site_released(p, size_of(p));
  cr_assert_not(tracked(p), "released clears TRACKED");
  cr_assert(head_valid(blk_of_payload(p), *blk_head_ptr(blk_of_payload(p)), sa_tc_key));
  cr_assert_eq(sa_site_of(p), SIMALLOC_SITE_NONE);
  simalloc_snap_site s = site(id);
  cr_assert_eq(s.live_bytes, size_of(q));
  cr_assert_eq(s.live_blocks, 1);
  cr_assert_eq(s.total_bytes, 2 * size_of(p), "totals count what was allocated");
  cr_assert_eq(s.peak_live_bytes, 2 * size_of(p));
  sa_site_released(q, size_of(q));
  cr_assert_eq(site(id).live_bytes, 0);
  cr_assert_eq(site(id).live_blocks, 0);
  sa_heap_free(&heap, p, "free");
  sa_heap_free(&heap, q, "free");
  cr_assert(sa_heap_check(&heap).ok);
}

Test(sites, realloc_in_place_credits_the_difference) {
  void *p = block(100);
  size_t old = size_of(p);
  uint32_t id = sa_sites_test_record(p, old, stack_a, 3);
  cr_assert_eq(sa_site_get(p, old, "test"), id);
  cr_assert(sa_heap_resize_in_place(&heap, p, 5000 + SA_TRAILER));
  sa_site_resized(p, id, old, size_of(p));
  cr_assert(tracked(p), "a resized block stays tracked");
  cr_assert_eq(sa_site_of(p), id, "the trailer is at the new end");
  cr_assert_eq(site(id).live_bytes, size_of(p));
  cr_assert_eq(site(id).peak_live_bytes, size_of(p));
  cr_assert_eq(site(id).live_blocks, 1);
  sa_site_released(p, size_of(p));
  cr_assert_eq(site(id).live_bytes, 0);
}

Test(sites, many_blocks_in_and_out) {
  /* Each block keeps its own site, however many there are. */
  enum { N = 5000 };
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = block(16);
    cr_assert_eq(sa_sites_test_record(p[i], size_of(p[i]), stack_a + (i % 2), 1),
                 SIMALLOC_SITE_FIRST + (uint32_t)(i % 2));
  }
  for (int i = 0; i < N; i += 3) sa_site_released(p[i], size_of(p[i]));
  uint64_t live = 0;
  for (int i = 0; i < N; i++) {
    uint32_t want = i % 3 ? SIMALLOC_SITE_FIRST + (uint32_t)(i % 2) : SIMALLOC_SITE_NONE;
    cr_assert_eq(sa_site_of(p[i]), want, "block %d", i);
    if (i % 3) live += size_of(p[i]);
  }
  cr_assert_eq(site(SIMALLOC_SITE_FIRST).live_bytes + site(SIMALLOC_SITE_FIRST + 1).live_bytes,
               live);
}

/* Two threads work one site: one records N blocks, the other releases
 * half of them; then both wait.  What each thread still holds counts, and
 * so does what it hands over when it ends. */
enum { THREAD_BLOCKS = 3000 };
static void *shared_blocks[THREAD_BLOCKS];
static pthread_barrier_t step;

static void *recorder(void *arg) {
  (void)arg;
  for (int i = 0; i < THREAD_BLOCKS; i++)
    sa_sites_test_record(shared_blocks[i], size_of(shared_blocks[i]), stack_a, 3);
  pthread_barrier_wait(&step);  /* recorded */
  pthread_barrier_wait(&step);  /* released */
  pthread_barrier_wait(&step);  /* checked: end */
  return NULL;
}

static void *releaser(void *arg) {
  (void)arg;
  pthread_barrier_wait(&step);
  for (int i = 0; i < THREAD_BLOCKS / 2; i++)
    sa_site_released(shared_blocks[i], size_of(shared_blocks[i]));
  pthread_barrier_wait(&step);
  pthread_barrier_wait(&step);
  return NULL;
}

static void check_threads_counts(uint32_t id, size_t size) {
  simalloc_snap_site s = site(id);
  uint64_t left = THREAD_BLOCKS - THREAD_BLOCKS / 2;
  cr_assert_eq(s.live_bytes, left * size);
  cr_assert_eq(s.live_blocks, left);
  cr_assert_eq(s.total_bytes, THREAD_BLOCKS * size);
  cr_assert_eq(s.total_calls, THREAD_BLOCKS);
  cr_assert_eq(s.peak_live_bytes, THREAD_BLOCKS * size, "peak %llu, not %llu",
               (unsigned long long)s.peak_live_bytes, (unsigned long long)(THREAD_BLOCKS * size));
}

Test(sites, counts_of_threads_add_up_while_they_wait_and_when_they_end) {
  for (int i = 0; i < THREAD_BLOCKS; i++) shared_blocks[i] = block(48);
  size_t size = size_of(shared_blocks[0]);
  pthread_barrier_init(&step, NULL, 3);
  pthread_t a, b;
  cr_assert_eq(pthread_create(&a, NULL, recorder, NULL), 0);
  cr_assert_eq(pthread_create(&b, NULL, releaser, NULL), 0);
  pthread_barrier_wait(&step);
  pthread_barrier_wait(&step);
  uint32_t id = SIMALLOC_SITE_FIRST;
  check_threads_counts(id, size);
  pthread_barrier_wait(&step);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  check_threads_counts(id, size);
  pthread_barrier_destroy(&step);
  for (int i = THREAD_BLOCKS / 2; i < THREAD_BLOCKS; i++)
    sa_site_released(shared_blocks[i], size_of(shared_blocks[i]));
  cr_assert_eq(site(id).live_bytes, 0);
  cr_assert_eq(site(id).live_blocks, 0);
  for (int i = 0; i < THREAD_BLOCKS; i++) sa_heap_free(&heap, shared_blocks[i], "free");
}

Test(sites, a_damaged_trailer_is_noticed) {
  void *p = block(100);
  uint32_t id = sa_sites_test_record(p, size_of(p), stack_a, 3);
  cr_assert_eq(sa_site_of(p), id);
  /* One byte written past the usable size lands in the trailer. */
  cr_assert_eq(sa_heap_usable(&heap, p, "test"), size_of(p) - SA_OVERHEAD - SA_TRAILER);
  ((unsigned char *)p)[sa_heap_usable(&heap, p, "test")] ^= 1;
  cr_assert_eq(sa_site_of(p), SIMALLOC_SITE_NONE, "the snapshot trusts no damaged trailer");
  sa_warn_only = 1;
  cr_assert_eq(sa_site_get(p, size_of(p), "test"), SIMALLOC_SITE_NONE);
  sa_site_released(p, size_of(p));
  sa_warn_only = 0;
  cr_assert_not(tracked(p));
  cr_assert_eq(site(id).live_blocks, 1, "a site a damaged trailer named keeps its figures");
}

Test(sites, sample_mode_scales_each_record) {
  const uint64_t rate = 64 << 10;
  setup_mode(SA_SITES_SAMPLE, rate, 16, 64);
  /* A small block stands for about the mean interval ... */
  uint64_t w = sa_sites_weight(64);
  cr_assert(w > rate && w < rate + 64, "weight %lu", (unsigned long)w);
  /* ... a huge one for itself; in between, s / P(recorded). */
  cr_assert_eq(sa_sites_weight(64 << 20), 64 << 20);
  double expect = (double)rate / -expm1(-1.0);
  cr_assert(fabs((double)sa_sites_weight(rate) - expect) < 2, "weight %lu",
            (unsigned long)sa_sites_weight(rate));
  void *p = block(4000);
  uint32_t id = sa_sites_test_record(p, size_of(p), stack_a, 3);
  simalloc_snap_site s = site(id);
  cr_assert_eq(s.live_bytes, sa_sites_weight(size_of(p)));
  cr_assert_eq(s.live_blocks, sa_sites_weight(size_of(p)) / size_of(p));
  sa_site_released(p, size_of(p));
  cr_assert_eq(site(id).live_bytes, 0, "a free takes back what its record added");
  cr_assert_eq(site(id).live_blocks, 0);
}

Test(sites, sample_mode_estimates_are_unbiased) {
  /* Simulate the countdown: bytes allocated in blocks of 48, a record each
   * time the exponential countdown runs out; the weighted sum estimates
   * the bytes. */
  const uint64_t rate = 4096;
  setup_mode(SA_SITES_SAMPLE, rate, 16, 64);
  const uint64_t size = 48, n = 400000;
  uint64_t sum = 0, x = 88172645463325252u;
  int64_t left = 0;
  for (uint64_t i = 0; i < n; i++) {
    left -= (int64_t)size;
    if (left >= 0) continue;
    sum += sa_sites_weight(size);
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double u = (double)((x >> 11) + 1) * 0x1p-53;
    left = (int64_t)(-log(u) * (double)rate);
  }
  double truth = (double)(size * n), err = fabs((double)sum - truth) / truth;
  cr_assert(err < 0.05, "estimate %lu vs %lu bytes", (unsigned long)sum, (unsigned long)(size * n));
}

/* The module table is what /proc/self/maps says: the executable part of
 * this test program is in it, with its path, and a smaller table stops
 * where it is full. */
Test(sites, the_module_table_maps_the_running_code) {
  static simalloc_snap_module mods[256];
  uint32_t n = sa_sites_modules(mods, 256);
  cr_assert_gt(n, 2);
  uintptr_t here = (uintptr_t)&sa_sites_weight;
  int found = 0;
  for (uint32_t i = 0; i < n; i++) {
    cr_assert_lt(mods[i].start, mods[i].end);
    cr_assert(mods[i].path[0] == '/' || mods[i].path[0] == '[', "%s", mods[i].path);
    if (here >= mods[i].start && here < mods[i].end) {
      found = 1;
      cr_assert(strstr(mods[i].path, "test_sites") != NULL, "%s", mods[i].path);
    }
  }
  cr_assert(found, "no module holds the code of sa_sites_weight");
  cr_assert_eq(sa_sites_modules(mods, 2), 2);
  cr_assert_eq(sa_sites_modules(mods, 0), 0);
}
