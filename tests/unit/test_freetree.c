/* Unit tests of the first-fit tree over hand-made free blocks. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "block.h"
#include "freetree.h"

#define UNITS 65536
static _Alignas(16) unsigned char mem[UNITS * 16];
static sa_freetree tree;
static uintptr_t origin;

static void setup(void) {
  memset(mem, 0, sizeof mem);
  origin = (uintptr_t)mem;
  sa_tree_init(&tree, origin, 12345);
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
  blk_node(a)->max += 3;
  blk_node(c)->max += 3;
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

Test(freetree, check_notices_a_broken_parent_link) {
  uintptr_t b[8];
  for (int i = 0; i < 8; i++) {
    b[i] = block(1 + 10 * (uint32_t)i, 64);
    sa_tree_insert(&tree, b[i]);
  }
  check();
  for (int i = 0; i < 8; i++)
    if (blk_node(b[i])->parent) {
      blk_node(b[i])->parent ^= 1;
      break;
    }
  const char *why = NULL;
  cr_assert_eq(sa_tree_check(&tree, NULL, NULL, &why), -1);
  cr_assert_str_eq(why, "free tree parent link broken");
}

Test(freetree, removing_a_node_whose_parent_disowns_it_aborts, .signal = SIGABRT) {
  uintptr_t b[8];
  for (int i = 0; i < 8; i++) {
    b[i] = block(1 + 10 * (uint32_t)i, 64);
    sa_tree_insert(&tree, b[i]);
  }
  /* Any node but its parent does not hold it as a child. */
  sa_node *n = blk_node(b[3]);
  n->parent = n->parent == 1 ? 11 : 1;
  sa_tree_remove(&tree, b[3]);
}
