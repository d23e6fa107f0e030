/* freetree.c - address-ordered treap with subtree maxima and parent links
 * (freetree.h).
 *
 * Invariants, for every node u:
 *   - the nodes of u's left subtree lie below u, those of its right above;
 *   - prio(u) is above the priorities of all nodes of its subtree;
 *   - u's children name u as their parent; the root names none (0);
 *   - max(u) is the largest size in units of the blocks of its subtree.
 * Whether u is its parent's left or right child follows from the order:
 * u is the left child of p exactly when u < p.
 *
 * Changes to the shape (insert's split, remove's merge, rotations) happen
 * along short paths; `pull` then recomputes the maxima there, and `carry`
 * takes a change of one subtree's maximum up towards the root as far as it
 * makes a difference. */
#include "freetree.h"

#include "block.h"
#include "fmt.h"

#define NODE(t, u) blk_node(addr_of(t, u))
#define UNIT(t, b) ((uint32_t)(((b) - (t)->origin) >> SA_UNIT_SHIFT))
#define MAX_DEPTH SA_TREE_MAX_DEPTH

static inline uintptr_t addr_of(const sa_freetree *t, uint32_t u) {
  return t->origin + ((uintptr_t)u << SA_UNIT_SHIFT);
}

static inline uint32_t units_of(const sa_freetree *t, uint32_t u) {
  return head_units(blk_head(addr_of(t, u)));
}

static inline uint32_t max_of(const sa_freetree *t, uint32_t u) {
  return u ? NODE(t, u)->max : 0;
}

/* A bijective mix of the offset, so distinct nodes never tie. */
static inline uint32_t prio(const sa_freetree *t, uint32_t u) {
  uint32_t x = (u ^ t->key) * 0x9e3779b1u;
  x ^= x >> 16;
  return x * 0x85ebca6bu;
}

static inline void pull(const sa_freetree *t, uint32_t u) {
  sa_node *n = NODE(t, u);
  uint32_t m = units_of(t, u), l = max_of(t, n->left), r = max_of(t, n->right);
  if (l > m) m = l;
  if (r > m) m = r;
  n->max = m;
}

static inline void too_deep(int depth) {
  if (depth >= MAX_DEPTH) sa_fatal("free index damaged (too deep)");
}

/* The link that holds u: its parent's left or right, or the root. */
static uint32_t *link_to(sa_freetree *t, uint32_t u) {
  uint32_t p = NODE(t, u)->parent;
  uint32_t *link = !p ? &t->root : u < p ? &NODE(t, p)->left : &NODE(t, p)->right;
  if (*link != u) sa_fatal("free index damaged (parent link)");
  return link;
}

/* Makes c (which may be none) the child of p through link. */
static inline void hang(const sa_freetree *t, uint32_t *link, uint32_t c, uint32_t p) {
  *link = c;
  if (c) NODE(t, c)->parent = p;
}

/* The maximum of a subtree whose parent is p went from was to now: brings
 * p and its ancestors up to date, stopping where nothing changes. */
static void carry(const sa_freetree *t, uint32_t p, uint32_t was, uint32_t now) {
  for (int depth = 0; p && was != now; depth++) {
    too_deep(depth);
    sa_node *n = NODE(t, p);
    uint32_t before = n->max;
    if (now > was) {
      if (before >= now) return;
      n->max = now;
    } else {
      if (before > was) return;  /* the maximum lies elsewhere */
      pull(t, p);
    }
    was = before;
    now = n->max;
    p = n->parent;
  }
}

/* Recomputes the maxima from u up to (not including) its ancestor top. */
static void pull_up_to(const sa_freetree *t, uint32_t u, uint32_t top) {
  for (int depth = 0; u != top; depth++) {
    too_deep(depth);
    pull(t, u);
    u = NODE(t, u)->parent;
  }
}

void sa_tree_init(sa_freetree *t, uintptr_t origin, uint32_t seed) {
  t->origin = origin;
  t->root = 0;
  t->key = seed;
}

/* Splits the subtree u below x: the nodes below x become x's left subtree,
 * those above its right. */
static void split_under(const sa_freetree *t, uint32_t x, uint32_t u) {
  sa_node *nx = NODE(t, x);
  uint32_t *lo = &nx->left, *hi = &nx->right, lo_par = x, hi_par = x;
  for (int depth = 0; u; depth++) {
    too_deep(depth);
    sa_node *n = NODE(t, u);
    if (u < x) {
      hang(t, lo, u, lo_par);
      lo_par = u;
      lo = &n->right;
      u = n->right;
    } else {
      hang(t, hi, u, hi_par);
      hi_par = u;
      hi = &n->left;
      u = n->left;
    }
  }
  *lo = *hi = 0;
  pull_up_to(t, lo_par, x);
  pull_up_to(t, hi_par, x);
  pull(t, x);
}

void sa_tree_insert(sa_freetree *t, uintptr_t b) {
  uint32_t x = UNIT(t, b), px = prio(t, x), size = units_of(t, x), par = 0;
  uint32_t *link = &t->root;
  /* Down to x's place; x will be in the subtree of every node passed. */
  for (int depth = 0; *link && prio(t, *link) > px; depth++) {
    too_deep(depth);
    par = *link;
    sa_node *n = NODE(t, par);
    if (n->max < size) n->max = size;
    link = x < par ? &n->left : &n->right;
  }
  uint32_t below = *link;
  NODE(t, x)->parent = par;
  *link = x;
  split_under(t, x, below);
}

void sa_tree_remove(sa_freetree *t, uintptr_t b) {
  uint32_t x = UNIT(t, b);
  sa_node *nx = NODE(t, x);
  uint32_t *top = link_to(t, x), *link = top;
  uint32_t above = nx->parent, par = above, was = nx->max;
  uint32_t a = nx->left, c = nx->right;
  /* Merge the two subtrees: a's right spine and c's left spine zip
   * together by priority. */
  for (int depth = 0; a && c; depth++) {
    too_deep(depth);
    if (prio(t, a) > prio(t, c)) {
      hang(t, link, a, par);
      par = a;
      link = &NODE(t, a)->right;
      a = *link;
    } else {
      hang(t, link, c, par);
      par = c;
      link = &NODE(t, c)->left;
      c = *link;
    }
  }
  hang(t, link, a ? a : c, par);
  pull_up_to(t, par, above);
  carry(t, above, was, max_of(t, *top));
}

/* Rotates x above its parent. */
static void rotate_up(sa_freetree *t, uint32_t x) {
  sa_node *nx = NODE(t, x);
  uint32_t p = nx->parent;
  sa_node *np = NODE(t, p);
  uint32_t *link = link_to(t, p), g = np->parent;
  if (x < p) {
    hang(t, &np->left, nx->right, p);
    hang(t, &nx->right, p, x);
  } else {
    hang(t, &np->right, nx->left, p);
    hang(t, &nx->left, p, x);
  }
  *link = x;
  nx->parent = g;
  nx->max = np->max;  /* the same blocks as p's subtree had */
  pull(t, p);
}

/* Restores the priority order around x after its priority changed. */
static void sift(sa_freetree *t, uint32_t x) {
  uint32_t px = prio(t, x);
  sa_node *nx = NODE(t, x);
  for (int depth = 0; nx->parent && prio(t, nx->parent) < px; depth++) {
    too_deep(depth);
    rotate_up(t, x);
  }
  for (int depth = 0;; depth++) {
    too_deep(depth);
    uint32_t l = nx->left, r = nx->right;
    uint32_t pl = l ? prio(t, l) : 0, pr = r ? prio(t, r) : 0;
    uint32_t c = pl > pr ? l : r, pc = pl > pr ? pl : pr;
    if (!c || pc < px) return;
    rotate_up(t, c);
  }
}

void sa_tree_replace(sa_freetree *t, uintptr_t old, uintptr_t nb) {
  uint32_t o = UNIT(t, old), x = UNIT(t, nb);
  sa_node *nx = NODE(t, x);  /* holds old's node */
  uint32_t p = nx->parent;
  uint32_t *link = !p ? &t->root : o < p ? &NODE(t, p)->left : &NODE(t, p)->right;
  if (*link != o) sa_fatal("free index damaged (parent link)");
  *link = x;
  uint32_t kids[2] = {nx->left, nx->right};
  for (int i = 0; i < 2; i++) {
    if (!kids[i]) continue;
    sa_node *k = NODE(t, kids[i]);
    if (k->parent != o) sa_fatal("free index damaged (parent link)");
    k->parent = x;
  }
  uint32_t was = nx->max;
  pull(t, x);
  carry(t, p, was, nx->max);
  sift(t, x);
}

void sa_tree_grew(sa_freetree *t, uintptr_t b) {
  uint32_t x = UNIT(t, b), size = units_of(t, x);
  sa_node *nx = NODE(t, x);
  if (size <= nx->max) return;
  uint32_t was = nx->max;
  nx->max = size;
  carry(t, nx->parent, was, size);
}

uintptr_t sa_tree_first_fit(const sa_freetree *t, size_t size) {
  uint32_t want = (uint32_t)(size >> SA_UNIT_SHIFT), u = t->root;
  if (!u || NODE(t, u)->max < want) return 0;
  /* The subtree of u has a fit: in its left subtree, else u, else (so its
   * right subtree needs no look) its right subtree.  Maxima that disagree
   * with the sizes end the descent at a missing child. */
  for (int depth = 0; u; depth++) {
    too_deep(depth);
    sa_node *n = NODE(t, u);
    uint32_t l = n->left;
    if (l && NODE(t, l)->max >= want)
      u = l;
    else if (units_of(t, u) >= want)
      return addr_of(t, u);
    else
      u = n->right;
  }
  return 0;  /* the caller reports it */
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

static void check_rec(check_state *s, uint32_t u, uint32_t parent, int depth) {
  if (!u || s->why) return;
  const sa_freetree *t = s->t;
  sa_node *n = NODE(t, u);
  if (depth > 1000) { s->why = "free tree too deep (cycle?)"; return; }
  if (n->parent != parent) { s->why = "free tree parent link broken"; return; }
  if (parent && prio(t, u) > prio(t, parent)) {
    s->why = "free tree priority order broken";
    return;
  }
  check_rec(s, n->left, u, depth + 1);
  if (s->why) return;
  if (u <= s->last) { s->why = "free tree address order broken"; return; }
  s->last = u;
  uint32_t m = units_of(t, u);
  if (max_of(t, n->left) > m) m = max_of(t, n->left);
  if (max_of(t, n->right) > m) m = max_of(t, n->right);
  s->count++;
  if (s->visit) s->visit(addr_of(t, u), s->ctx);
  check_rec(s, n->right, u, depth + 1);
  if (!s->why && m != n->max) s->why = "free tree subtree maximum wrong";
}

long sa_tree_check(const sa_freetree *t, void (*visit)(uintptr_t, void *),
                   void *ctx, const char **why) {
  check_state s = {t, visit, ctx, 0, 0, NULL};
  check_rec(&s, t->root, 0, 0);
  if (s.why) {
    *why = s.why;
    return -1;
  }
  return s.count;
}
