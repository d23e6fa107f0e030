/* Unit tests of the first-fit tree over hand-made free blocks. */
#include <criterion/criterion.h>
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
