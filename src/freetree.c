/* freetree.c - address-ordered treap with subtree maxima (freetree.h).
 *
 * The recursive helpers return the new root of the subtree they were
 * given; `pull` recomputes a node's subtree maximum from its own size and
 * its children's.  Recursion depth is the tree depth, O(log n). */
#include "freetree.h"

#include "block.h"
#include "fmt.h"

#define NODE(t, u) blk_node((t)->origin + ((uintptr_t)(u) << SA_UNIT_SHIFT))
#define UNIT(t, b) ((uint32_t)(((b) - (t)->origin) >> SA_UNIT_SHIFT))

static inline uint32_t units_of(const sa_freetree *t, uint32_t u) {
  return head_units(blk_head(t->origin + ((uintptr_t)u << SA_UNIT_SHIFT)));
}

static inline uint32_t max_of(const sa_freetree *t, uint32_t u) {
  return u ? NODE(t, u)->max : 0;
}

static inline void pull(const sa_freetree *t, uint32_t u) {
  sa_node *n = NODE(t, u);
  uint32_t m = units_of(t, u), l = max_of(t, n->left), r = max_of(t, n->right);
  if (l > m) m = l;
  if (r > m) m = r;
  n->max = m;
}

void sa_tree_init(sa_freetree *t, uintptr_t origin, uint32_t seed) {
  t->origin = origin;
  t->root = 0;
  t->found = 0;
  t->rng = seed ? seed : 0x9e3779b9u;
}

static uint32_t next_prio(sa_freetree *t) {
  uint32_t x = t->rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return t->rng = x;
}

/* Splits subtree u into the nodes below key (*lo) and above it (*hi). */
static void split(const sa_freetree *t, uint32_t u, uint32_t key, uint32_t *lo, uint32_t *hi) {
  if (!u) {
    *lo = *hi = 0;
    return;
  }
  sa_node *n = NODE(t, u);
  if (u < key) {
    split(t, n->right, key, &n->right, hi);
    *lo = u;
  } else {
    split(t, n->left, key, lo, &n->left);
    *hi = u;
  }
  pull(t, u);
}

/* Joins two subtrees, every node of a below every node of b. */
static uint32_t merge(const sa_freetree *t, uint32_t a, uint32_t b) {
  if (!a) return b;
  if (!b) return a;
  sa_node *na = NODE(t, a), *nb = NODE(t, b);
  if (na->prio >= nb->prio) {
    na->right = merge(t, na->right, b);
    pull(t, a);
    return a;
  }
  nb->left = merge(t, a, nb->left);
  pull(t, b);
  return b;
}

typedef sa_tree_path path;
#define MAX_DEPTH SA_TREE_MAX_DEPTH

static inline void step(path *p, uint32_t *link) {
  if (p->n == MAX_DEPTH) sa_fatal("free index damaged (too deep)");
  p->link[p->n++] = link;
}

/* Recomputes subtree maxima from level up to the root, stopping as soon as
 * one does not change: the ones above cannot change either. */
static void fix_up(const sa_freetree *t, const path *p, int level) {
  for (; level >= 0; level--) {
    uint32_t u = *p->link[level];
    sa_node *n = NODE(t, u);
    uint32_t before = n->max;
    pull(t, u);
    if (n->max == before) return;
  }
}

/* The path to node x (which must be in the tree); its last link holds x.
 * That is the remembered one if the last first fit found x, else it is
 * built in *scratch.  Every change to the tree goes through here or
 * through insert, which both forget the remembered first fit. */
static path *path_to(sa_freetree *t, uint32_t x, path *scratch) {
  if (t->found == x) {
    t->found = 0;
    return &t->found_path;
  }
  t->found = 0;
  path *p = scratch;
  p->n = 0;
  uint32_t *link = &t->root;
  for (;;) {
    step(p, link);
    uint32_t u = *link;
    if (u == x) return p;
    if (!u) sa_fatal("free index damaged (block missing)");
    link = x < u ? &NODE(t, u)->left : &NODE(t, u)->right;
  }
}

void sa_tree_insert(sa_freetree *t, uintptr_t b) {
  t->found = 0;
  uint32_t x = UNIT(t, b);
  sa_node *nx = NODE(t, x);
  nx->prio = next_prio(t);
  path p = {0};
  uint32_t *link = &t->root;
  while (*link && NODE(t, *link)->prio >= nx->prio) {
    step(&p, link);
    sa_node *n = NODE(t, *link);
    link = x < *link ? &n->left : &n->right;
  }
  split(t, *link, x, &nx->left, &nx->right);
  pull(t, x);
  *link = x;
  fix_up(t, &p, p.n - 1);
}

void sa_tree_remove(sa_freetree *t, uintptr_t b) {
  path scratch, *p = path_to(t, UNIT(t, b), &scratch);
  uint32_t *link = p->link[p->n - 1];
  sa_node *n = NODE(t, *link);
  *link = merge(t, n->left, n->right);
  fix_up(t, p, p->n - 2);
}

void sa_tree_replace(sa_freetree *t, uintptr_t old, uintptr_t nb) {
  path scratch, *p = path_to(t, UNIT(t, old), &scratch);
  *p->link[p->n - 1] = UNIT(t, nb);  /* nb's node already holds old's links */
  fix_up(t, p, p->n - 1);
}

void sa_tree_resized(sa_freetree *t, uintptr_t b) {
  path scratch, *p = path_to(t, UNIT(t, b), &scratch);
  fix_up(t, p, p->n - 1);
}

uintptr_t sa_tree_first_fit(sa_freetree *t, size_t size) {
  uint32_t want = (uint32_t)(size >> SA_UNIT_SHIFT);
  path *p = &t->found_path;
  p->n = 0;
  t->found = 0;
  uint32_t *link = &t->root;
  if (!*link || NODE(t, *link)->max < want) return 0;
  for (;;) {
    step(p, link);
    uint32_t u = *link;
    sa_node *n = NODE(t, u);
    if (n->left && NODE(t, n->left)->max >= want) {
      link = &n->left;
    } else if (units_of(t, u) >= want) {
      t->found = u;
      return t->origin + ((uintptr_t)u << SA_UNIT_SHIFT);
    } else if (n->right && NODE(t, n->right)->max >= want) {
      link = &n->right;
    } else {
      return 0;  /* maxima disagree with sizes: the caller reports it */
    }
  }
}

size_t sa_tree_largest(const sa_freetree *t) {
  return (size_t)max_of(t, t->root) << SA_UNIT_SHIFT;
}

typedef struct check_state {
  const sa_freetree *t;
  void (*visit)(uintptr_t, void *);
  void *ctx;
  uint32_t last;
  long count;
  const char *why;
} check_state;

static void check_rec(check_state *s, uint32_t u, uint32_t parent_prio, int depth) {
  if (!u || s->why) return;
  const sa_freetree *t = s->t;
  sa_node *n = NODE(t, u);
  if (depth > 1000) { s->why = "free tree too deep (cycle?)"; return; }
  if (n->prio > parent_prio) { s->why = "free tree priority order broken"; return; }
  check_rec(s, n->left, n->prio, depth + 1);
  if (s->why) return;
  if (u <= s->last) { s->why = "free tree address order broken"; return; }
  s->last = u;
  uint32_t m = units_of(t, u);
  if (max_of(t, n->left) > m) m = max_of(t, n->left);
  if (max_of(t, n->right) > m) m = max_of(t, n->right);
  s->count++;
  if (s->visit) s->visit(t->origin + ((uintptr_t)u << SA_UNIT_SHIFT), s->ctx);
  check_rec(s, n->right, n->prio, depth + 1);
  if (!s->why && m != n->max) s->why = "free tree subtree maximum wrong";
}

long sa_tree_check(const sa_freetree *t, void (*visit)(uintptr_t, void *),
                   void *ctx, const char **why) {
  check_state s = {t, visit, ctx, 0, 0, NULL};
  check_rec(&s, t->root, UINT32_MAX, 0);
  if (s.why) {
    *why = s.why;
    return -1;
  }
  return s.count;
}
