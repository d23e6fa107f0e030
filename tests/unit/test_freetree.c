/* Unit tests of the first-fit index over hand-made free blocks. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "block.h"
#include "freetree.h"

#define UNITS (1u << 19)
static _Alignas(16) unsigned char mem[UNITS * 16];
static _Alignas(64) uint32_t summary[(UNITS >> 6) * 2 + 4096];
static sa_freetree tree;
static uintptr_t origin;

static void setup(void) {
  memset(mem, 0, sizeof mem);
  memset(summary, 0xa5, sizeof summary);  /* the index clears what it uses */
  origin = (uintptr_t)mem;
  cr_assert_leq(sa_tree_bytes(UNITS), sizeof summary);
  sa_tree_init(&tree, origin, summary, UNITS);
}

/* The summary entry of the chunk that holds block b. */
static uint32_t *chunk_entry(uintptr_t b) {
  return sa_tree_entry(&tree, 0, (uint32_t)(((b - origin) >> SA_UNIT_SHIFT) >> (SA_CHUNK_SHIFT - SA_UNIT_SHIFT)));
}

TestSuite(freetree, .init = setup);

/* A free block of size bytes at unit offset u. */
static uintptr_t block(uint32_t u, size_t size) {
  uintptr_t b = origin + ((uintptr_t)u << SA_UNIT_SHIFT);
  *blk_head_ptr(b) = head_make(b, size, SA_PREV_USED, 0);
  return b;
}

static long check(void) {
  const char *why = NULL;
  long n = sa_tree_check(&tree, NULL, NULL, &why);
  cr_assert_geq(n, 0, "tree damaged: %s", why ? why : "?");
  return n;
}

Test(freetree, empty) {
  cr_assert_eq(sa_tree_first_fit(&tree, 32), 0);
  cr_assert_eq(sa_tree_largest(&tree), 0);
  cr_assert_eq(check(), 0);
}

Test(freetree, lowest_fit_among_many) {
  /* sizes by address: 32, 64, 256, 64, 1024, 32 */
  size_t sizes[] = {32, 64, 256, 64, 1024, 32};
  uintptr_t b[6];
  for (int i = 0; i < 6; i++) {
    b[i] = block(1 + 100 * (uint32_t)i, sizes[i]);
    sa_tree_insert(&tree, b[i]);
  }
  cr_assert_eq(check(), 6);
  cr_assert_eq(sa_tree_first_fit(&tree, 32), b[0]);
  cr_assert_eq(sa_tree_first_fit(&tree, 48), b[1]);
  cr_assert_eq(sa_tree_first_fit(&tree, 100), b[2]);
  cr_assert_eq(sa_tree_first_fit(&tree, 512), b[4]);
  cr_assert_eq(sa_tree_first_fit(&tree, 2048), 0);
  cr_assert_eq(sa_tree_largest(&tree), 1024);
  sa_tree_remove(&tree, b[2]);
  cr_assert_eq(check(), 5);
  cr_assert_eq(sa_tree_first_fit(&tree, 100), b[4]);
}

Test(freetree, replace_and_resize_keep_order_and_maxima) {
  uintptr_t a = block(1, 64), c = block(200, 4096), d = block(900, 128);
  sa_tree_insert(&tree, a);
  sa_tree_insert(&tree, c);
  sa_tree_insert(&tree, d);
  /* c shrinks from the front: its remainder moves up by 1024 bytes */
  uintptr_t c2 = block(200 + 64, 4096 - 1024);
  *blk_node(c2) = *blk_node(c);
  sa_tree_replace(&tree, c, c2);
  cr_assert_eq(check(), 3);
  cr_assert_eq(sa_tree_largest(&tree), 3072);
  cr_assert_eq(sa_tree_first_fit(&tree, 3072), c2);
  /* a grows */
  block(1, 8192);
  sa_tree_grew(&tree, a);
  cr_assert_eq(check(), 3);
  cr_assert_eq(sa_tree_largest(&tree), 8192);
  cr_assert_eq(sa_tree_first_fit(&tree, 4000), a);
}

/* Reference: the lowest-addressed block of at least size in a sorted list. */
Test(freetree, random_against_a_linear_scan) {
  enum { N = 2000 };
  static size_t size_at[N];  /* 0: not in the tree */
  uint64_t x = 88172645463325252ull;
  for (int op = 0; op < 20000; op++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    uint32_t i = (uint32_t)(x % N);
    uintptr_t b = origin + ((uintptr_t)(1 + i * 32) << SA_UNIT_SHIFT);
    if (size_at[i]) {
      sa_tree_remove(&tree, b);
      size_at[i] = 0;
    } else {
      size_at[i] = 32 + 16 * ((x >> 20) % 30);
      block(1 + i * 32, size_at[i]);
      sa_tree_insert(&tree, b);
    }
    size_t want = 32 + 16 * ((x >> 40) % 32);
    uintptr_t expect = 0;
    for (int k = 0; k < N && !expect; k++)
      if (size_at[k] >= want) expect = origin + ((uintptr_t)(1 + k * 32) << SA_UNIT_SHIFT);
    cr_assert_eq(sa_tree_first_fit(&tree, want), expect, "op %d want %zu", op, want);
  }
  long n = check(), count = 0;
  for (int k = 0; k < N; k++) count += size_at[k] != 0;
  cr_assert_eq(n, count);
}

Test(freetree, check_notices_a_wrong_maximum) {
  uintptr_t a = block(1, 64), c = block(50, 128);
  sa_tree_insert(&tree, a);
  sa_tree_insert(&tree, c);
  *chunk_entry(a) += 3;
  const char *why = NULL;
  cr_assert_eq(sa_tree_check(&tree, NULL, NULL, &why), -1);
  cr_assert_not_null(why);
}

/* Moves the free block at old to nb, as the heap does: node first, since
 * nb's head may overlap old's node. */
static void move_block(uintptr_t old, uintptr_t nb, size_t size) {
  sa_node node = *blk_node(old);
  *blk_head_ptr(nb) = head_make(nb, size, SA_PREV_USED, 0);
  *blk_node(nb) = node;
  sa_tree_replace(&tree, old, nb);
}

/* Inserts, removes, moves (as the front of a block is taken, or a block
 * merges with the one below it) and growths, against a linear scan, with
 * the whole tree checked as it goes. */
Test(freetree, moves_and_growths_against_a_linear_scan) {
  enum { N = 1500, SPAN = 32 };  /* block i lives in units [1 + i*SPAN, 1 + (i+1)*SPAN) */
  static uint32_t at[N];         /* its start, in units from the span's start */
  static size_t size_at[N];      /* 0: not in the tree */
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int op = 0; op < 30000; op++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    uint32_t i = (uint32_t)(x % N), base = 1 + i * SPAN;
    uintptr_t b = origin + ((uintptr_t)(base + at[i]) << SA_UNIT_SHIFT);
    unsigned what = (unsigned)(x >> 12) % 4;
    if (!size_at[i]) {
      at[i] = (uint32_t)(x >> 16) % 8;
      size_at[i] = 32 + 16 * ((x >> 24) % 16);
      b = block(base + at[i], size_at[i]);
      sa_tree_insert(&tree, b);
    } else if (what == 0) {
      sa_tree_remove(&tree, b);
      size_at[i] = 0;
    } else if (what == 1 && size_at[i] > 32) {  /* the front is taken */
      uint32_t by = 1 + (uint32_t)((x >> 30) % ((size_at[i] - 32) / 16));
      at[i] += by;
      size_at[i] -= 16 * by;
      move_block(b, b + 16 * by, size_at[i]);
    } else if (what == 2 && at[i] > 0) {  /* merges with a block below */
      uint32_t by = 1 + (uint32_t)((x >> 30) % at[i]);
      at[i] -= by;
      size_at[i] += 16 * by;
      move_block(b, b - 16 * by, size_at[i]);
    } else if (at[i] * 16 + size_at[i] + 16 <= 16 * (SPAN - 8)) {  /* grows */
      size_at[i] += 16;
      block(base + at[i], size_at[i]);
      sa_tree_grew(&tree, b);
    }
    size_t want = 32 + 16 * ((x >> 40) % 20);
    uintptr_t expect = 0;
    for (int k = 0; k < N && !expect; k++)
      if (size_at[k] >= want) expect = origin + ((uintptr_t)(1 + k * SPAN + at[k]) << SA_UNIT_SHIFT);
    cr_assert_eq(sa_tree_first_fit(&tree, want), expect, "op %d want %zu", op, want);
    if (op % 500 == 0) check();
  }
  long n = check(), count = 0;
  for (int k = 0; k < N; k++) count += size_at[k] != 0;
  cr_assert_eq(n, count);
}

Test(freetree, check_notices_a_broken_list_link) {
  uintptr_t b[8];
  for (int i = 0; i < 8; i++) {
    b[i] = block(1 + 10 * (uint32_t)i, 64);
    sa_tree_insert(&tree, b[i]);
  }
  check();
  blk_node(b[5])->prev ^= 1;
  const char *why = NULL;
  cr_assert_eq(sa_tree_check(&tree, NULL, NULL, &why), -1);
  cr_assert_str_eq(why, "free index list link broken");
}

Test(freetree, check_notices_a_wrong_recorded_size) {
  uintptr_t a = block(1, 64), c = block(500, 128);
  sa_tree_insert(&tree, a);
  sa_tree_insert(&tree, c);
  block(500, 144);  /* c grew, but the index was not told */
  const char *why = NULL;
  cr_assert_eq(sa_tree_check(&tree, NULL, NULL, &why), -1);
  cr_assert_str_eq(why, "free index size wrong");
}

Test(freetree, removing_a_block_whose_neighbour_disowns_it_aborts, .signal = SIGABRT) {
  uintptr_t b[8];
  for (int i = 0; i < 8; i++) {
    b[i] = block(1 + 10 * (uint32_t)i, 64);
    sa_tree_insert(&tree, b[i]);
  }
  /* b[3]'s predecessor is b[2], which does not name it as its next */
  blk_node(b[3])->prev = (uint32_t)((b[1] - origin) >> SA_UNIT_SHIFT);
  sa_tree_remove(&tree, b[3]);
}

Test(freetree, a_summary_that_promises_too_much_aborts_the_search, .signal = SIGABRT) {
  uintptr_t a = block(1, 64), c = block(5000, 128);
  sa_tree_insert(&tree, a);
  sa_tree_insert(&tree, c);
  /* the entries above the first chunks claim a fit that none of them has */
  for (uint32_t l = 1; l <= tree.top; l++) *sa_tree_entry(&tree, l, 0) = 1000;
  sa_tree_first_fit(&tree, 4096);
}

/* The walks over blocks of at least a size, both ways, against the list. */
static void check_walks(const uintptr_t *addr, const size_t *size_at, int n, size_t min) {
  uintptr_t b = 0;
  for (int k = 0; k < n; k++)
    if (size_at[k] >= min) {
      b = sa_tree_next_at_least(&tree, b, min);
      cr_assert_eq(b, addr[k], "next walk, block %d, min %zu", k, min);
    }
  cr_assert_eq(sa_tree_next_at_least(&tree, b, min), 0);
  b = 0;
  for (int k = n; k-- > 0;)
    if (size_at[k] >= min) {
      b = sa_tree_prev_at_least(&tree, b, min);
      cr_assert_eq(b, addr[k], "prev walk, block %d, min %zu", k, min);
    }
  cr_assert_eq(sa_tree_prev_at_least(&tree, b, min), 0);
}

/* Small blocks packed tightly, many to a chunk, over most of the span so
 * that the summary is cleared a stretch at a time; first fits and walks
 * against a linear scan. */
Test(freetree, dense_blocks_over_a_wide_span_against_a_linear_scan) {
  enum { N = 30000, STEP = 4, GAP = 800 };  /* every 64 blocks, a gap of GAP units */
  static size_t size_at[N];
  static uintptr_t addr[N];
  for (int k = 0; k < N; k++)
    addr[k] = origin + ((uintptr_t)(1 + k * STEP + (k / 64) * GAP) << SA_UNIT_SHIFT);
  cr_assert_lt((addr[N - 1] - origin) >> SA_UNIT_SHIFT, UNITS);
  uint64_t x = 0x2545f4914f6cdd1dull;
  for (int op = 0; op < 60000; op++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    uint32_t i = (uint32_t)(x % N);
    if (size_at[i]) {
      sa_tree_remove(&tree, addr[i]);
      size_at[i] = 0;
    } else {
      size_at[i] = 32 + 16 * ((x >> 20) % 2);
      block((uint32_t)((addr[i] - origin) >> SA_UNIT_SHIFT), size_at[i]);
      sa_tree_insert(&tree, addr[i]);
    }
    size_t want = 32 + 16 * ((x >> 40) % 2);
    uintptr_t expect = 0;
    for (int k = 0; k < N && !expect; k++)
      if (size_at[k] >= want) expect = addr[k];
    cr_assert_eq(sa_tree_first_fit(&tree, want), expect, "op %d want %zu", op, want);
    if (op % 5000 == 0) {
      check();
      check_walks(addr, size_at, N, 48);
    }
  }
  check_walks(addr, size_at, N, 32);
  check_walks(addr, size_at, N, 48);
  long n = check(), count = 0;
  for (int k = 0; k < N; k++) count += size_at[k] != 0;
  cr_assert_eq(n, count);
}
