/* freetree.c - the address-ordered list of free blocks and the chunk
 * summary over it (freetree.h).
 *
 * Invariants:
 *   - the list runs through every indexed block in rising address order;
 *     each node's prev names the block before it (0 for head), and each
 *     node records its block's size in units;
 *   - first[c] locates the lowest block starting in chunk c, as its unit
 *     offset within the chunk plus one; 0 if there is none;
 *   - level[0][c] is the largest size among the blocks starting in chunk
 *     c (0 if none); level[l + 1][i] is the largest of level[l][16i ..
 *     16i + 15]; padding entries past a level's end are 0;
 *   - every group of 16 entries that covers a chunk below `ready` is
 *     cleared or up to date; nothing at or above `ready` is in the index;
 *   - group 0 of level low_top covers every chunk below `ready`, so the
 *     levels above it only repeat its maximum: searches start there.
 */
#include "freetree.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "block.h"
#include "fmt.h"

#define CHUNK_UNITS_SHIFT (SA_CHUNK_SHIFT - SA_UNIT_SHIFT)
#define NONE UINT32_MAX
#define READY_STEP 512u  /* chunks cleared at a time; the head covers the first */

#define NODE(t, u) blk_node(addr_of(t, u))
#define UNIT(t, b) ((uint32_t)(((b) - (t)->origin) >> SA_UNIT_SHIFT))

static inline uintptr_t addr_of(const sa_freetree *t, uint32_t u) {
  return t->origin + ((uintptr_t)u << SA_UNIT_SHIFT);
}

static inline uint32_t chunk_of(uint32_t u) { return u >> CHUNK_UNITS_SHIFT; }

_Static_assert(CHUNK_UNITS_SHIFT <= 7, "a chunk's first block must fit a byte");

static inline uint32_t *entry(const sa_freetree *t, uint32_t l, uint32_t i) {
  return sa_tree_entry(t, l, i);
}

/* Chunk c's first[] byte, in the summary's head for the lowest chunks. */
static inline uint8_t *first_at(const sa_freetree *t, uint32_t c) {
  return c < t->low_len[0] ? t->first_low + c : t->first + (c - t->low_len[0]);
}

static inline uint32_t first_of(const sa_freetree *t, uint32_t c) {
  uint32_t o = *first_at(t, c);
  return o ? (c << CHUNK_UNITS_SHIFT) + o - 1 : 0;
}

static inline void set_first(sa_freetree *t, uint32_t c, uint32_t u) {
  *first_at(t, c) = (uint8_t)(u ? (u & ((1u << CHUNK_UNITS_SHIFT) - 1)) + 1 : 0);
}

static inline uint32_t units_in_head(const sa_freetree *t, uint32_t u) {
  return head_units(blk_head(addr_of(t, u)));
}

static inline uint32_t want_of(size_t size) {
  uint32_t w = (uint32_t)(size >> SA_UNIT_SHIFT);
  return w ? w : 1;
}

__attribute__((cold, noreturn)) static void damaged(const char *what) { sa_fatal(what); }

/* ---- the summary --------------------------------------------------------- */

static inline uint32_t round16(uint64_t n) { return (uint32_t)((n + 15) & ~(uint64_t)15); }

/* Level lengths for units offsets; returns the top level. */
static uint32_t layout(uint32_t len[SA_TREE_LEVELS], size_t units) {
  uint64_t chunks = units ? ((units - 1) >> CHUNK_UNITS_SHIFT) + 1 : 1;
  uint32_t l = 0;
  len[0] = round16(chunks);
  while (len[l] > 16) {
    len[l + 1] = round16(len[l] / 16);
    l++;
  }
  return l;
}

/* Entries of level l that cover the first READY_STEP chunks (all of a
 * small heap's), a multiple of 16. */
static uint32_t head_len(const uint32_t len[SA_TREE_LEVELS], uint32_t l) {
  uint64_t span = (uint64_t)1 << (4 * l);
  uint32_t n = round16((READY_STEP + span - 1) / span);
  return n < len[l] ? n : len[l];
}

/* Where the parts of the summary lie from its start, which is `base`
 * bytes into a page.  First the head: for each level from the top down,
 * its entries for the lowest chunks, then theirs of first[]; a small
 * heap's index touches nothing else, so the head shares one page with the
 * epilogue (heap.c).  Then the rest of each level, and of first[]; one of
 * a page or more starts on a page boundary, so that its entries for the
 * chunks next in use take one page, not two.  off[l] for level l's head,
 * off[SA_TREE_LEVELS + 1 + l] for its rest, first[]'s two parts last.
 * Returns the summary's size. */
#define PAGE 4096u
#define PARTS (2 * SA_TREE_LEVELS + 2)
static size_t place(const uint32_t len[SA_TREE_LEVELS], uint32_t top, size_t base,
                    size_t off[PARTS]) {
  size_t at = base;
  for (uint32_t l = top + 1; l-- > 0;) {
    off[l] = at - base;
    at += (size_t)head_len(len, l) * sizeof(uint32_t);
  }
  off[SA_TREE_LEVELS] = at - base;
  at += head_len(len, 0);
  for (uint32_t l = top + 1; l-- > 0;) {
    size_t bytes = (size_t)(len[l] - head_len(len, l)) * sizeof(uint32_t);
    if (bytes >= PAGE) at = (at + PAGE - 1) & ~(size_t)(PAGE - 1);
    off[SA_TREE_LEVELS + 1 + l] = at - base;
    at += bytes;
  }
  size_t bytes = len[0] - head_len(len, 0);
  if (bytes >= PAGE) at = (at + PAGE - 1) & ~(size_t)(PAGE - 1);
  off[PARTS - 1] = at - base;
  return at + bytes - base;
}

size_t sa_tree_bytes(size_t units) {
  uint32_t len[SA_TREE_LEVELS];
  size_t off[PARTS];
  uint32_t top = layout(len, units);
  /* Wherever the summary starts, no part needs more than a page to reach
   * its boundary. */
  return top == 0 ? 0 : place(len, top, 0, off) + (top + 2) * (size_t)PAGE;
}

size_t sa_tree_lead(size_t units) {
  uint32_t len[SA_TREE_LEVELS];
  size_t off[PARTS];
  uint32_t top = layout(len, units);
  if (top == 0) return 0;
  place(len, top, 0, off);
  size_t head = off[SA_TREE_LEVELS] + head_len(len, 0);
  return head < PAGE - 64 ? (head + 63) & ~(size_t)63 : 0;
}

/* Bit k set when g[k] >= want, for the 16 entries of a group. */
#if defined(__SSE2__)
static inline unsigned at_least(const uint32_t *g, uint32_t want) {
  const __m128i bias = _mm_set1_epi32(INT32_MIN);
  __m128i w = _mm_xor_si128(_mm_set1_epi32((int32_t)want), bias);
  const __m128i *v = (const __m128i *)g;
  __m128i b0 = _mm_cmpgt_epi32(w, _mm_xor_si128(_mm_loadu_si128(v), bias));
  __m128i b1 = _mm_cmpgt_epi32(w, _mm_xor_si128(_mm_loadu_si128(v + 1), bias));
  __m128i b2 = _mm_cmpgt_epi32(w, _mm_xor_si128(_mm_loadu_si128(v + 2), bias));
  __m128i b3 = _mm_cmpgt_epi32(w, _mm_xor_si128(_mm_loadu_si128(v + 3), bias));
  /* below: one byte per entry, set when the entry is under want */
  __m128i below = _mm_packs_epi16(_mm_packs_epi32(b0, b1), _mm_packs_epi32(b2, b3));
  return ~(unsigned)_mm_movemask_epi8(below) & 0xffffu;
}
#else
static inline unsigned at_least(const uint32_t *g, uint32_t want) {
  unsigned m = 0;
  for (int k = 0; k < 16; k++) m |= (unsigned)(g[k] >= want) << k;
  return m;
}
#endif

/* Index of the first of g[from..15] that is at least want, or -1. */
static inline int first_at_least(const uint32_t *g, int from, uint32_t want) {
  unsigned m = at_least(g, want) & (0xffffu << from);
  return m ? __builtin_ctz(m) : -1;
}

/* Index of the last of g[0..from] that is at least want, or -1. */
static inline int last_at_least(const uint32_t *g, int from, uint32_t want) {
  unsigned m = at_least(g, want) & ((2u << from) - 1);
  return m ? 31 - __builtin_clz(m) : -1;
}

static inline uint32_t group_max(const uint32_t *g) {
  uint32_t m = 0;
  for (int k = 0; k < 16; k++) m = g[k] > m ? g[k] : m;
  return m;
}

/* Clears the summary up to and including chunk c. */
__attribute__((cold, noinline)) static void make_ready(sa_freetree *t, uint32_t c) {
  uint64_t want = ((uint64_t)c + READY_STEP) & ~(uint64_t)(READY_STEP - 1);
  if (want > t->len[0]) want = t->len[0];
  if (c >= want) damaged("free index damaged (block beyond the heap)");
  for (uint32_t l = 0; l <= t->top; l++) {
    unsigned sh = 4 * (l + 1);
    uint64_t step = (uint64_t)1 << sh;
    uint32_t lo = (uint32_t)(16 * ((t->ready + step - 1) >> sh));
    uint32_t hi = (uint32_t)(16 * ((want + step - 1) >> sh));
    if (hi > t->len[l]) hi = t->len[l];
    for (uint32_t i = lo; i < hi; i += 16) memset(entry(t, l, i), 0, 16 * sizeof(uint32_t));
  }
  for (uint32_t k = t->ready; k < want; k += 16) memset(first_at(t, k), 0, 16);
  t->ready = (uint32_t)want;
  while (t->low_top < t->top && ((uint64_t)1 << (4 * (t->low_top + 1))) < want) t->low_top++;
}

static inline void ready_for(sa_freetree *t, uint32_t c) {
  if (__builtin_expect(c >= t->ready, 0)) make_ready(t, c);
}

/* Chunk c's maximum becomes m: updates the levels above as far as they
 * change. */
static void set_chunk_max(sa_freetree *t, uint32_t c, uint32_t m) {
  uint32_t i = c;
  for (uint32_t l = 0;; l++) {
    uint32_t *e = entry(t, l, i), was = *e;
    if (was == m) return;
    *e = m;
    if (l == t->top) return;
    uint32_t p = *entry(t, l + 1, i >> 4);
    if (m > was) {
      if (p >= m) return;
    } else {
      if (p > was) return;  /* the maximum lies elsewhere */
      m = group_max(entry(t, l, i & ~15u));
    }
    i >>= 4;
  }
}

/* From entry i of level l, whose maximum is at least want, down to the
 * lowest (or highest) chunk below it that holds such a block. */
static uint32_t descend(const sa_freetree *t, uint32_t l, uint32_t i, uint32_t want, int highest) {
  while (l > 0) {
    l--;
    if (16 * (uint64_t)i >= t->len[l]) damaged("free index damaged (summary)");
    const uint32_t *g = entry(t, l, 16 * i);
    int k = highest ? last_at_least(g, 15, want) : first_at_least(g, 0, want);
    if (k < 0) damaged("free index damaged (summary maxima)");
    i = 16 * i + (uint32_t)k;
  }
  return i;
}

/* The lowest chunk at or above c with a block of want units, or NONE. */
static uint32_t chunk_from(const sa_freetree *t, uint32_t c, uint32_t want) {
  uint32_t i = c, l = 0;
  for (;;) {
    if (((uint64_t)(i >> 4) << (4 * (l + 1))) >= t->ready) return NONE;
    int k = first_at_least(entry(t, l, i & ~15u), (int)(i & 15), want);
    if (k >= 0) return descend(t, l, (i & ~15u) + (uint32_t)k, want, 0);
    if (l == t->top) return NONE;
    i = (i >> 4) + 1;
    l++;
  }
}

/* The highest chunk at or below c (c < ready) with a block of want units,
 * or NONE. */
static uint32_t chunk_before(const sa_freetree *t, uint32_t c, uint32_t want) {
  uint32_t i = c, l = 0;
  for (;;) {
    int k = last_at_least(entry(t, l, i & ~15u), (int)(i & 15), want);
    if (k >= 0) return descend(t, l, (i & ~15u) + (uint32_t)k, want, 1);
    if (l == t->top || i < 16) return NONE;
    i = (i >> 4) - 1;
    l++;
  }
}

/* The largest block starting in chunk c, by walking its blocks. */
static uint32_t chunk_max(const sa_freetree *t, uint32_t c) {
  uint32_t m = 0;
  for (uint32_t u = first_of(t, c); u && chunk_of(u) == c;) {
    const sa_node *n = NODE(t, u);
    if (n->units > m) m = n->units;
    if (n->next && n->next <= u) damaged("free index damaged (list order)");
    u = n->next;
  }
  return m;
}

/* The first block of at least want units in chunk c at or above unit
 * from, or 0. */
static uint32_t fit_in_chunk(const sa_freetree *t, uint32_t c, uint32_t from, uint32_t want) {
  uint32_t u = first_of(t, c);
  while (u && chunk_of(u) == c) {
    const sa_node *n = NODE(t, u);
    if (u >= from && n->units >= want) return u;
    if (n->next && n->next <= u) damaged("free index damaged (list order)");
    u = n->next;
  }
  return 0;
}

/* Chunk c lost block x (whose node still holds its links and size). */
static void leave_chunk(sa_freetree *t, uint32_t c, uint32_t x, const sa_node *n) {
  uint32_t f = first_of(t, c);
  if (f == x)
    set_first(t, c, n->next && chunk_of(n->next) == c ? n->next : 0);
  else if (!f || f > x)
    damaged("free index damaged (chunk's first block)");
  if (n->units >= *entry(t, 0, c)) set_chunk_max(t, c, chunk_max(t, c));
}

/* ---- the list ------------------------------------------------------------ */

static inline uint32_t *link_below(sa_freetree *t, uint32_t prev) {
  return prev ? &NODE(t, prev)->next : &t->head;
}

static inline uint32_t *link_above(sa_freetree *t, uint32_t next) {
  return next ? &NODE(t, next)->prev : &t->tail;
}

/* ---- the operations ------------------------------------------------------ */

void sa_tree_init(sa_freetree *t, uintptr_t origin, void *mem, size_t units) {
  memset(t, 0, sizeof *t);
  t->origin = origin;
  t->top = layout(t->len, units);
  if (t->top) {
    size_t off[PARTS];
    place(t->len, t->top, (uintptr_t)mem % PAGE, off);
    for (uint32_t l = 0; l <= t->top; l++) {
      t->low_len[l] = head_len(t->len, l);
      t->low[l] = (uint32_t *)((char *)mem + off[l]);
      t->level[l] = (uint32_t *)((char *)mem + off[SA_TREE_LEVELS + 1 + l]);
    }
    t->first_low = (uint8_t *)mem + off[SA_TREE_LEVELS];
    t->first = (uint8_t *)mem + off[PARTS - 1];
  } else {
    t->low_len[0] = t->len[0];
    t->low[0] = t->level[0] = t->small;
    t->first_low = t->first = (uint8_t *)(t->small + t->len[0]);
  }
  make_ready(t, 0);
}

void sa_tree_insert(sa_freetree *t, uintptr_t b) {
  uint32_t x = UNIT(t, b), c = chunk_of(x), prev, next;
  ready_for(t, c);
  uint32_t f = first_of(t, c);
  if (f && f < x) {  /* after f, in f's chunk */
    prev = f;
    for (uint32_t q; (q = NODE(t, prev)->next) && q < x; prev = q)
      if (q <= prev) damaged("free index damaged (list order)");
    next = NODE(t, prev)->next;
  } else {
    if (!f) {
      uint32_t s = chunk_from(t, c + 1, 1);
      f = s == NONE ? 0 : first_of(t, s);
    }
    next = f;
    prev = next ? NODE(t, next)->prev : t->tail;
    set_first(t, c, x);
  }
  sa_node *n = NODE(t, x);
  n->next = next;
  n->prev = prev;
  n->units = units_in_head(t, x);
  *link_below(t, prev) = x;
  *link_above(t, next) = x;
  if (n->units > *entry(t, 0, c)) set_chunk_max(t, c, n->units);
}

void sa_tree_remove(sa_freetree *t, uintptr_t b) {
  uint32_t x = UNIT(t, b);
  sa_node *n = NODE(t, x);
  uint32_t *lo = link_below(t, n->prev), *hi = link_above(t, n->next);
  if (*lo != x || *hi != x) damaged("free index damaged (list link)");
  *lo = n->next;
  *hi = n->prev;
  leave_chunk(t, chunk_of(x), x, n);
}

void sa_tree_replace(sa_freetree *t, uintptr_t old, uintptr_t nb) {
  uint32_t o = UNIT(t, old), x = UNIT(t, nb);
  sa_node *n = NODE(t, x);  /* holds old's node */
  uint32_t *lo = link_below(t, n->prev), *hi = link_above(t, n->next);
  if (*lo != o || *hi != o) damaged("free index damaged (list link)");
  *lo = x;
  *hi = x;
  uint32_t was = n->units, now = units_in_head(t, x), co = chunk_of(o), cx = chunk_of(x);
  if (co == cx) {
    n->units = now;
    if (first_of(t, co) == o) set_first(t, co, x);
    uint32_t m = *entry(t, 0, co);
    if (now > m)
      set_chunk_max(t, co, now);
    else if (was >= m && now < was)
      set_chunk_max(t, co, chunk_max(t, co));
    return;
  }
  ready_for(t, cx);
  leave_chunk(t, co, o, n);  /* x already stands where o stood in the list */
  n->units = now;
  uint32_t f = first_of(t, cx);
  if (!f || x < f) set_first(t, cx, x);
  if (now > *entry(t, 0, cx)) set_chunk_max(t, cx, now);
}

void sa_tree_grew(sa_freetree *t, uintptr_t b) {
  uint32_t x = UNIT(t, b), c = chunk_of(x);
  sa_node *n = NODE(t, x);
  n->units = units_in_head(t, x);
  if (n->units > *entry(t, 0, c)) set_chunk_max(t, c, n->units);
}

uintptr_t sa_tree_first_fit(const sa_freetree *t, size_t size) {
  uint32_t want = want_of(size);
  int k = first_at_least(entry(t, t->low_top, 0), 0, want);
  if (k < 0) return 0;
  uint32_t c = descend(t, t->low_top, (uint32_t)k, want, 0);
  uint32_t u = fit_in_chunk(t, c, 0, want);
  return u ? addr_of(t, u) : 0;  /* 0 here: the caller reports it */
}

size_t sa_tree_largest(const sa_freetree *t) {
  return (size_t)group_max(entry(t, t->low_top, 0)) << SA_UNIT_SHIFT;
}

uintptr_t sa_tree_next_at_least(const sa_freetree *t, uintptr_t b, size_t size) {
  uint32_t want = want_of(size), c = 0, from = 0;
  if (b) {
    from = UNIT(t, b) + 1;
    c = chunk_of(from - 1);
  }
  for (;;) {
    c = chunk_from(t, c, want);
    if (c == NONE) return 0;
    uint32_t u = fit_in_chunk(t, c, from, want);
    if (u) return addr_of(t, u);
    c++;
  }
}

uintptr_t sa_tree_prev_at_least(const sa_freetree *t, uintptr_t b, size_t size) {
  uint32_t want = want_of(size), below = b ? UNIT(t, b) : NONE;
  if (!t->tail) return 0;
  uint32_t c = chunk_of(b ? below : t->tail);
  for (;;) {
    c = chunk_before(t, c, want);
    if (c == NONE) return 0;
    uint32_t best = 0;
    for (uint32_t u = fit_in_chunk(t, c, 0, want); u && u < below;
         u = fit_in_chunk(t, c, u + 1, want))
      best = u;
    if (best) return addr_of(t, best);
    if (c == 0) return 0;
    c--;
  }
}

/* ---- checking ------------------------------------------------------------ */

typedef struct check_state {
  const sa_freetree *t;
  long chunks;     /* non-empty chunks the summary leads to */
  const char *why;
} check_state;

/* Checks group g of level l and, through its non-zero entries, below. */
static void check_group(check_state *s, uint32_t l, uint32_t g) {
  const sa_freetree *t = s->t;
  for (uint32_t k = 0; k < 16 && !s->why; k++) {
    uint32_t i = 16 * g + k, e = *entry(t, l, i);
    if (l == 0) {
      if (e && !*first_at(t, i))
        s->why = "free index summary names an empty chunk";
      else if (!e && *first_at(t, i))
        s->why = "free index chunk without maximum has a first block";
      s->chunks += e != 0;
    } else if (e) {
      if (16 * (uint64_t)i >= t->len[l - 1] || group_max(entry(t, l - 1, 16 * i)) != e)
        s->why = "free index summary maximum wrong";
      else
        check_group(s, l - 1, i);
    }
  }
}

/* Chunk c's blocks have the largest size m: its entry and those above it
 * must say so. */
static const char *check_chunk(const sa_freetree *t, uint32_t c, uint32_t m) {
  if (*entry(t, 0, c) != m) return "free index chunk maximum wrong";
  for (uint32_t l = 1, i = c >> 4; l <= t->top; l++, i >>= 4)
    if (*entry(t, l, i) < m) return "free index summary maximum wrong";
  return NULL;
}

long sa_tree_check(const sa_freetree *t, void (*visit)(uintptr_t, void *),
                   void *ctx, const char **why) {
  uint32_t last = 0, c = NONE, m = 0;
  long count = 0, chunks = 0;
  const char *bad = NULL;
  for (uint32_t u = t->head; u && !bad; u = NODE(t, u)->next) {
    const sa_node *n = NODE(t, u);
    if (u <= last) { bad = "free index address order broken"; break; }
    if (chunk_of(u) >= t->ready) { bad = "free index block beyond its summary"; break; }
    if (n->prev != last) { bad = "free index list link broken"; break; }
    if (n->units != units_in_head(t, u)) { bad = "free index size wrong"; break; }
    if (chunk_of(u) != c) {
      if (c != NONE) bad = check_chunk(t, c, m);
      c = chunk_of(u);
      m = 0;
      chunks++;
      if (!bad && first_of(t, c) != u) bad = "free index chunk's first block wrong";
    }
    if (n->units > m) m = n->units;
    count++;
    if (visit && !bad) visit(addr_of(t, u), ctx);
    last = u;
  }
  if (!bad && c != NONE) bad = check_chunk(t, c, m);
  if (!bad && t->tail != last) bad = "free index tail wrong";
  if (!bad) {
    check_state s = {t, 0, NULL};
    check_group(&s, t->top, 0);
    bad = s.why;
    if (!bad && s.chunks != chunks) bad = "free index summary and list disagree";
  }
  if (bad) {
    *why = bad;
    return -1;
  }
  return count;
}
