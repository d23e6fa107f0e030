/* Unit tests of stack taking (unwind.c): the memo of the last stack must
 * give what a walk would, and spare the walk only when the stack is the
 * same. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "unwind.h"

#define MAX 20
#define NOINLINE __attribute__((noinline))
/* Keeps the call a call (not a jump) and its frame alive. */
#define KEEP() __asm__ volatile("" ::: "memory")

/* Each function of the chain notes its own return address, so that the
 * frames can be checked: frames[k + 2] is ra[k]. */
typedef struct taken {
  void *frames[MAX];
  int n, max;
  uintptr_t ra[3];
} taken;

NOINLINE static void leaf(taken *t) {
  t->ra[0] = (uintptr_t)__builtin_return_address(0);
  t->n = sa_unwind(t->frames, t->max ? t->max : MAX);
  KEEP();
}

NOINLINE static void mid(taken *t) {
  t->ra[1] = (uintptr_t)__builtin_return_address(0);
  leaf(t);
  KEEP();
}

/* Two callers of mid with the same frame: leaf's stack differs from the
 * third frame on only. */
NOINLINE static void top_a(taken *t) {
  t->ra[2] = (uintptr_t)__builtin_return_address(0);
  mid(t);
  KEEP();
}

NOINLINE static void top_b(taken *t) {
  t->ra[2] = (uintptr_t)__builtin_return_address(0);
  t->n = -1;  /* not the same code as top_a, which could be merged with it */
  mid(t);
  KEEP();
}

static void check(const taken *t) {
  cr_assert_gt(t->n, 5);
  for (int k = 0; k < 3; k++)
    cr_assert_eq((uintptr_t)t->frames[k + 2], t->ra[k], "frame %d is %p, not %p", k + 2,
                 t->frames[k + 2], (void *)t->ra[k]);
}

static void setup(void) {
  cr_assert_eq(sa_unwind_init(), 0, "libunwind.so.8 could not be loaded");
}

TestSuite(unwind, .init = setup);

Test(unwind, the_same_stack_is_walked_once) {
  taken t = {0}, first = {0};
  top_a(&first);
  check(&first);
  uint64_t walks = sa_unwind_walks();
  for (int i = 0; i < 100; i++) {
    top_a(&t);
    check(&t);
    cr_assert_eq(t.n, first.n);
    for (int k = 0; k < 4; k++) cr_assert_eq(t.frames[k], first.frames[k], "frame %d differs", k);
  }
  /* The loop calls top_a from another place than the first call. */
  cr_assert_leq(sa_unwind_walks() - walks, 1, "%llu walks for one stack",
                (unsigned long long)(sa_unwind_walks() - walks));
}

Test(unwind, a_change_deep_in_the_stack_is_seen) {
  taken a = {0}, b = {0};
  for (int i = 0; i < 50; i++) {
    uint64_t walks = sa_unwind_walks();
    top_a(&a);
    top_b(&b);
    check(&a);
    check(&b);
    cr_assert_eq(a.frames[2], b.frames[2], "leaf is called from the same place");
    cr_assert_neq(a.frames[3], b.frames[3]);
    cr_assert_eq(sa_unwind_walks(), walks + 2, "each change of stack is a walk");
  }
}

Test(unwind, the_same_stack_taken_to_another_depth_is_walked_again) {
  taken t = {0};
  for (int i = 0; i < 6; i++) {
    t.max = i % 2 ? 3 : 0;
    uint64_t walks = sa_unwind_walks();
    top_a(&t);
    if (t.max) {
      cr_assert_eq(t.n, 3);
    } else {
      check(&t);
    }
    cr_assert_eq(sa_unwind_walks(), walks + 1);
  }
}
