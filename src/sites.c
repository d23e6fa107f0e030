/* sites.c - allocation sites: which call stacks hold the memory.
 *
 * The site table, in memory from sa_os_reserve so that nothing here ever
 * allocates from the heaps, has one entry per distinct stack; its index is
 * the site id (0 none, 1 `other`, real sites from 2).  A hash index of ids
 * over the stacks finds a stack's site: lookups take no lock (an id is
 * published in the index only after its entry is complete), additions take
 * `sites.lock`.  When the table is full, new stacks fold into `other`.
 * Counters are updated with atomics, from what each thread gathers (see
 * "counts kept per thread").
 *
 * Each recorded block names its site in its trailer (block.h), so that
 * free and realloc credit the right site back without a search; what a
 * block stands for follows from its size.  The allocation paths (tcache.c)
 * give a block chosen for a record the 8 bytes more that its trailer takes.
 *
 * The estimator (sample mode).  Each thread counts down the bytes it
 * allocates from an exponentially distributed start of mean R
 * (SIMALLOC_SITE_RATE), so sample points fall on the allocated bytes as a
 * Poisson process of rate 1/R.  An allocation of s bytes then holds at
 * least one point, and is recorded, with probability 1 - exp(-s/R);
 * weighting it by s / (1 - exp(-s/R)) makes its expected contribution
 * exactly s, so every per-site sum is unbiased.  The weight is about R for
 * small blocks and s for blocks much larger than R.  Block counts are
 * estimated the same way (weight / s blocks per sample).  A block resized
 * in place stands from then on for what a block of its new size would.
 * (The countdown counts the block an allocation would have without a
 * trailer, the weight the block it has: they differ by at most 16 bytes.)
 * With `all`, the weight is the size and the figures are exact.
 *
 * Nothing here runs under an allocator lock; the lock here is never held
 * while calling anything that could allocate.
 */
#include "sites.h"

#include <errno.h>
#include <string.h>

#include "block.h"
#include "fmt.h"
#include "heap.h"
#include "lock.h"
#include "options.h"
#include "os.h"
#include "tcache.h"
#include "unwind.h"

#define LEAKS_SHOWN 20          /* sites in the exit report */
#define SITE_LIMIT (1u << 20)   /* site table entries at most */
/* Frames of ours that an allocation's stack starts with, at most, in the
 * usual case: sa_unwind, the entry point and its slow path (sa_site_record
 * takes the stack again if there were more). */
#define OWN_FRAMES 4

static struct {
  int mode;                     /* SA_SITES_*; OFF until armed */
  int wanted;                   /* the mode asked for, once the tables are set up */
  int depth;                    /* frames kept per stack */
  uint64_t rate;                /* mean bytes between samples */
  uint32_t max;                 /* site table entries, ids 0 .. max-1 */
  uint32_t count;               /* entries in use (>= SIMALLOC_SITE_FIRST) */
  uint32_t index_mask;          /* hash index slots - 1 */
  simalloc_snap_site *site;     /* [max] */
  uint32_t *index;              /* [index_mask + 1] ids, 0 = empty */
  sa_lock lock;                 /* additions to the site table, the list of threads */
  struct thread_counts *threads; /* threads whose counts gather (below) */
  sa_os_exit_hook exit_hook;    /* hands a thread's counts over when it ends */
  uint32_t generation;          /* tables set up so far (a new one: > 1 in the tests) */
  uintptr_t own_lo, own_hi;     /* our own code: frames there are dropped */
  int report_fd;                /* where SIMALLOC_LEAKS reports */
} sites = {.report_fd = 2};

/* Per thread: the random state of the intervals, and the last stack
 * recorded with its site (site_of_stack). */
static __thread uint64_t rng __attribute__((tls_model("initial-exec")));
static __thread struct {
  uint32_t generation;          /* sites.generation it belongs to; 0 none */
  uint32_t id;
  int n;
  uint64_t frames[SIMALLOC_SITE_DEPTH];
} memo __attribute__((tls_model("initial-exec")));

/* ---- randomness and weights --------------------------------------------- */

static uint64_t next_random(void) {
  uint64_t x = rng;
  if (__builtin_expect(x == 0, 0))
    x = (sa_os_random64() ^ (uintptr_t)&rng) | 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  rng = x;
  return x * UINT64_C(0x2545f4914f6cdd1d);
}

/* Natural logarithm of x > 0, to about 1e-7 relative: x = m * 2^e with m
 * in [1, 2), ln m = 2 atanh((m - 1) / (m + 1)) by its series (no libm, so
 * that the library needs nothing more than libc). */
static double ln(double x) {
  union { double d; uint64_t u; } v = {x};
  int e = (int)((v.u >> 52) & 0x7ff) - 1023;
  v.u = (v.u & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1023) << 52);
  double z = (v.d - 1) / (v.d + 1), z2 = z * z;
  double series = z * (2 + z2 * (2.0 / 3 + z2 * (2.0 / 5 + z2 * (2.0 / 7 + z2 * (2.0 / 9 + z2 * (2.0 / 11))))));
  return e * 0.69314718055994530942 + series;
}

/* 1 - e^-x for x >= 0, without cancellation for small x. */
static double one_minus_exp_neg(double x) {
  if (x < 1e-4) return x * (1 - x * (0.5 - x / 6));
  if (x > 40) return 1;
  /* e^-x = 2^-(x / ln 2): split into an integer power and a small rest */
  double y = x / 0.69314718055994530942;
  int k = (int)y;
  double r = (y - k) * 0.69314718055994530942, t = 1, term = 1;  /* e^-r, r in [0, ln 2) */
  for (int i = 1; i < 18; i++) {
    term *= -r / i;
    t += term;
  }
  union { double d; uint64_t u; } scale = {.u = (uint64_t)(1023 - k) << 52};
  return 1 - t * scale.d;
}

/* An exponential draw of mean rate, at least 1. */
static int64_t next_interval(uint64_t rate) {
  double u = (double)((next_random() >> 11) + 1) * 0x1p-53;  /* (0, 1] */
  double v = -ln(u) * (double)rate;
  if (v >= 0x1p62) return INT64_C(1) << 62;
  return v < 1 ? 1 : (int64_t)v;
}

static int64_t countdown_for(int mode, uint64_t rate) {
  if (mode == SA_SITES_ALL) return 0;
  if (mode == SA_SITES_SAMPLE) return next_interval(rate);
  return INT64_MAX;
}

uint64_t sa_sites_weight(size_t size) {
  if (sites.mode != SA_SITES_SAMPLE) return size;
  double p = one_minus_exp_neg((double)size / (double)sites.rate);
  double w = p > 0 ? (double)size / p : (double)sites.rate;
  return w < (double)size ? size : (uint64_t)(w + 0.5);
}

/* ---- the site table ----------------------------------------------------- */

/* Stacks are the return addresses as the unwinder gives them. */
typedef void *const *stack;

static uint64_t stack_hash(stack frames, int n) {
  uint64_t h = UINT64_C(0xcbf29ce484222325) ^ (uint64_t)n;
  for (int i = 0; i < n; i++) {
    h ^= (uintptr_t)frames[i];
    h *= UINT64_C(0x9e3779b97f4a7c15);
    h ^= h >> 29;
  }
  return h;
}

static int same_frames(const uint64_t *kept, stack frames, int n) {
  for (int i = 0; i < n; i++)
    if (kept[i] != (uintptr_t)frames[i]) return 0;
  return 1;
}

static int same_stack(const simalloc_snap_site *s, stack frames, int n) {
  return s->frame_count == (uint32_t)n && same_frames(s->frames, frames, n);
}

/* The slot of the stack's id in the index, or of the empty slot that ends
 * its probe sequence. */
static uint32_t probe(stack frames, int n, uint64_t h, uint32_t *id) {
  uint32_t i = (uint32_t)h & sites.index_mask;
  for (;;) {
    *id = __atomic_load_n(&sites.index[i], __ATOMIC_ACQUIRE);
    if (*id == 0 || same_stack(&sites.site[*id], frames, n)) return i;
    i = (i + 1) & sites.index_mask;
  }
}

static uint32_t site_add(stack frames, int n, uint64_t h) {
  uint32_t id;
  sa_lock_acquire(&sites.lock);
  uint32_t i = probe(frames, n, h, &id);
  if (id == 0 && sites.count < sites.max) {
    id = sites.count;
    simalloc_snap_site *s = &sites.site[id];
    s->id = id;
    s->frame_count = (uint32_t)n;
    for (int k = 0; k < n; k++) s->frames[k] = (uintptr_t)frames[k];
    __atomic_store_n(&sites.count, id + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&sites.index[i], id, __ATOMIC_RELEASE);
  } else if (id == 0) {
    id = SIMALLOC_SITE_OTHER;
  }
  sa_lock_release(&sites.lock);
  return id;
}

/* The id of the site of this stack, made if new; `other` if none is left.
 * A thread that records from the same place again and again finds the
 * site in its memo of the last stack, without hashing. */
static uint32_t site_of_stack(stack frames, int n) {
  if (memo.generation == sites.generation && memo.n == n && same_frames(memo.frames, frames, n))
    return memo.id;
  uint64_t h = stack_hash(frames, n);
  uint32_t id;
  probe(frames, n, h, &id);
  if (!id) id = site_add(frames, n, h);
  memo.generation = sites.generation;
  memo.n = n;
  memo.id = id;
  for (int k = 0; k < n; k++) memo.frames[k] = (uintptr_t)frames[k];
  return id;
}

/* ---- counts kept per thread --------------------------------------------
 *
 * Every thread that allocates or frees from a site would otherwise update
 * the same counters, and with several threads those lines go back and
 * forth between the cores on every call.  Instead each thread gathers its
 * changes to the sites it last touched (PENDING_SLOTS of them, by id) and
 * hands them to the table every PENDING_OPS changes of a site, when another
 * site takes the slot, and when the thread ends.  Whoever reads the table
 * (the snapshot, the exit report, the tests) adds what the threads still
 * hold, so the figures are exact whenever the threads are between calls.
 *
 * A site's peak is the table's live bytes when a thread's gathering began
 * plus the highest its own changes went since.  That is exact when one
 * thread works a site at a time; when several threads change a site
 * together, the peak can be somewhat over or under the true one.
 *
 * Only the owner writes its slots (a forked child also empties the slots
 * of threads that did not survive); readers load them with relaxed atomics
 * under sites.lock, which also guards the list of threads.
 */
#define PENDING_SLOTS 4
#define PENDING_OPS 1024

#define GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define PUT(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

typedef struct pending {
  uint32_t id, generation;      /* the site, of table sites.generation */
  uint32_t ops;                 /* changes since the last hand-over */
  int64_t live_bytes, live_blocks;
  int64_t high;                 /* the highest live_bytes went, >= 0 */
  uint64_t base;                /* the table's live bytes when gathering began */
  uint64_t total_bytes, total_calls;
} pending;

enum { COUNTS_NEW, COUNTS_LISTED, COUNTS_GONE };

typedef struct thread_counts {
  pending slot[PENDING_SLOTS];
  struct thread_counts *next, *prev;  /* sites.threads */
  int state;                    /* COUNTS_*; not listed: straight to the table */
} thread_counts;

static __thread thread_counts mine __attribute__((tls_model("initial-exec")));

/* Adds to site id's counters a change of its live bytes and blocks and
 * allocated totals; the site's live bytes went as high as top on the way
 * (0: not higher than before).  Returns the live bytes after. */
static uint64_t add_to_table(uint32_t id, int64_t bytes, int64_t blocks, uint64_t top,
                             uint64_t total_bytes, uint64_t total_calls) {
  simalloc_snap_site *s = &sites.site[id];
  if (total_calls) {
    __atomic_add_fetch(&s->total_bytes, total_bytes, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->total_calls, total_calls, __ATOMIC_RELAXED);
  }
  uint64_t live = __atomic_add_fetch(&s->live_bytes, (uint64_t)bytes, __ATOMIC_RELAXED);
  __atomic_add_fetch(&s->live_blocks, (uint64_t)blocks, __ATOMIC_RELAXED);
  if (top < live) top = live;
  uint64_t peak = __atomic_load_n(&s->peak_live_bytes, __ATOMIC_RELAXED);
  while (top > peak &&
         !__atomic_compare_exchange_n(&s->peak_live_bytes, &peak, top, 1,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return live;
}

/* Moves slot e's changes into the table (those of an older table are
 * dropped). */
static void hand_over(pending *e) {
  if (e->ops && e->generation == sites.generation)
    PUT(e->base, add_to_table(e->id, e->live_bytes, e->live_blocks, e->base + (uint64_t)e->high,
                              e->total_bytes, e->total_calls));
  PUT(e->live_bytes, 0);
  PUT(e->live_blocks, 0);
  PUT(e->high, 0);
  PUT(e->total_bytes, 0);
  PUT(e->total_calls, 0);
  e->ops = 0;
}

static void hand_over_all(thread_counts *t) {
  for (int i = 0; i < PENDING_SLOTS; i++) hand_over(&t->slot[i]);
}

static void unlist(thread_counts *t) {
  if (t->prev) t->prev->next = t->next;
  else if (sites.threads == t) sites.threads = t->next;
  if (t->next) t->next->prev = t->prev;
  t->next = t->prev = NULL;
}

/* The thread ends (a key destructor): its counts go to the table. */
static void thread_gone(void *arg) {
  thread_counts *t = arg;
  hand_over_all(t);
  sa_lock_acquire(&sites.lock);
  unlist(t);
  sa_lock_release(&sites.lock);
  t->state = COUNTS_GONE;
}

/* Lists the calling thread, whose counts then gather; 0 if it cannot be. */
static int list_me(thread_counts *t) {
  if (t->state != COUNTS_NEW || !sites.exit_hook.ok) return 0;
  sa_lock_acquire(&sites.lock);
  t->prev = NULL;
  t->next = sites.threads;
  if (t->next) t->next->prev = t;
  sites.threads = t;
  sa_lock_release(&sites.lock);
  t->state = COUNTS_LISTED;
  sa_os_exit_hook_arm(&sites.exit_hook, t);
  return 1;
}

/* Site id's live bytes and blocks change by bytes and blocks; an
 * allocation also counts total_calls calls of total_bytes. */
static void count(uint32_t id, int64_t bytes, int64_t blocks, uint64_t total_bytes,
                  uint64_t total_calls) {
  thread_counts *t = &mine;
  if (t->state != COUNTS_LISTED && !list_me(t)) {
    add_to_table(id, bytes, blocks, 0, total_bytes, total_calls);
    return;
  }
  pending *e = &t->slot[id % PENDING_SLOTS];
  if (e->id != id || e->generation != sites.generation) {
    hand_over(e);
    PUT(e->id, id);
    PUT(e->generation, sites.generation);
    PUT(e->base, __atomic_load_n(&sites.site[id].live_bytes, __ATOMIC_RELAXED));
  }
  int64_t live = e->live_bytes + bytes;
  PUT(e->live_bytes, live);
  PUT(e->live_blocks, e->live_blocks + blocks);
  if (live > e->high) PUT(e->high, live);
  if (total_calls) {
    PUT(e->total_bytes, e->total_bytes + total_bytes);
    PUT(e->total_calls, e->total_calls + total_calls);
  }
  if (++e->ops >= PENDING_OPS) hand_over(e);
}

/* The site whose changes another thread's slot e holds, or 0 (none, or
 * of an older table). */
static uint32_t held_site(pending *e) {
  return GET(e->generation) == sites.generation ? GET(e->id) : 0;
}

/* Adds what the listed threads hold for sites first .. first+n-1 to
 * out[0 .. n).  Under sites.lock. */
static void add_held(simalloc_snap_site *out, uint32_t first, uint32_t n) {
  for (thread_counts *t = sites.threads; t; t = t->next)
    for (int i = 0; i < PENDING_SLOTS; i++) {
      pending *e = &t->slot[i];
      uint32_t id = held_site(e);
      if (!id || id < first || id - first >= n) continue;
      simalloc_snap_site *d = &out[id - first];
      d->live_bytes += (uint64_t)GET(e->live_bytes);
      d->live_blocks += (uint64_t)GET(e->live_blocks);
      d->total_bytes += GET(e->total_bytes);
      d->total_calls += GET(e->total_calls);
      uint64_t top = GET(e->base) + (uint64_t)GET(e->high);
      if (d->peak_live_bytes < top) d->peak_live_bytes = top;
      if (d->peak_live_bytes < d->live_bytes) d->peak_live_bytes = d->live_bytes;
    }
}

/* ---- the trailer ------------------------------------------------------- */

/* The site in TRACKED block p's trailer (block of block_size bytes), or
 * UINT32_MAX if the trailer is damaged or names no site of the table. */
static uint32_t trailer_of(const void *p, size_t block_size) {
  uintptr_t at = (uintptr_t)blk_trailer_ptr(blk_of_payload(p), block_size);
  uint64_t t = __atomic_load_n((uint64_t *)at, __ATOMIC_RELAXED);
  uint32_t id = trailer_site(at, t, sa_tc_key);
  return id < __atomic_load_n(&sites.count, __ATOMIC_ACQUIRE) ? id : UINT32_MAX;
}

static void set_trailer(void *p, size_t block_size, uint32_t id) {
  uintptr_t at = (uintptr_t)blk_trailer_ptr(blk_of_payload(p), block_size);
  __atomic_store_n((uint64_t *)at, trailer_make(at, id, sa_tc_key), __ATOMIC_RELAXED);
}

/* What a record of a block of size bytes stands for: the bytes and the
 * blocks it adds to its site. */
typedef struct weight {
  uint64_t bytes;
  int64_t blocks;
} weight;

static inline weight weigh(size_t size) {
  if (sites.mode != SA_SITES_SAMPLE) return (weight){size, 1};
  uint64_t w = sa_sites_weight(size), b = size ? w / size : 1;
  return (weight){w, b ? (int64_t)b : 1};
}

/* ---- recording ---------------------------------------------------------- */

/* Records p (block_size bytes, its last 8 free for the trailer) as
 * allocated by the stack frames[0..n): returns its site. */
static uint32_t record(void *p, size_t block_size, stack frames, int n) {
  if (n > sites.depth) n = sites.depth;
  uint32_t id = site_of_stack(frames, n);
  weight w = weigh(block_size);
  count(id, (int64_t)w.bytes, w.blocks, w.bytes, (uint64_t)w.blocks);
  set_trailer(p, block_size, id);
  sa_blk_set_tracked(p, 1);  /* after the trailer: whoever sees TRACKED finds it */
  return id;
}

/* Leading frames inside our own code are the allocator's. */
static int own_frames(stack frames, int n) {
  int k = 0;
  while (k < n && (uintptr_t)frames[k] >= sites.own_lo && (uintptr_t)frames[k] < sites.own_hi) k++;
  return k;
}

int sa_sites_frames_wanted(void) {
  if (__atomic_load_n(&sites.mode, __ATOMIC_ACQUIRE) == SA_SITES_OFF) return 0;
  return sites.depth + OWN_FRAMES;
}

void *sa_site_record(void *p, void **frames, int n) {
  if (!p || __atomic_load_n(&sites.mode, __ATOMIC_ACQUIRE) == SA_SITES_OFF) return p;
  int k = own_frames(frames, n);
  if (n == sites.depth + OWN_FRAMES && n - k < sites.depth) {
    /* More of our frames than usual: take the stack whole. */
    n = sa_unwind(frames, SA_UNWIND_MAX);
    k = own_frames(frames, n);
  }
  record(p, head_size(blk_head(blk_of_payload(p))), frames + k, n - k);
  return p;
}

uint32_t sa_site_get(void *p, size_t block_size, const char *call) {
  uint32_t id = sites.site ? trailer_of(p, block_size) : SIMALLOC_SITE_NONE;
  if (id != UINT32_MAX) return id;
  int saved = errno;
  sa_bad_ptr(call, "heap overflow: the end of this block is damaged", p);
  errno = saved;
  return SIMALLOC_SITE_NONE;
}

void sa_site_released(void *p, size_t block_size) {
  uint32_t id = sa_site_get(p, block_size, "free");
  if (id) {
    weight w = weigh(block_size);
    count(id, -(int64_t)w.bytes, -w.blocks, 0, 0);
  }
  sa_blk_set_tracked(p, 0);
}

/* A resized block stands for what a block of its new size would. */
void sa_site_resized(void *p, uint32_t id, size_t old_size, size_t new_size) {
  if (!id) {
    sa_blk_set_tracked(p, 0);
    return;
  }
  set_trailer(p, new_size, id);
  weight w0 = weigh(old_size), w1 = weigh(new_size);
  count(id, (int64_t)(w1.bytes - w0.bytes), w1.blocks - w0.blocks, 0, 0);
}

uint32_t sa_site_of(const void *p) {
  uint64_t hd = blk_head(blk_of_payload(p));
  if (!sites.site || !(hd & SA_TRACKED)) return SIMALLOC_SITE_NONE;
  uint32_t id = trailer_of(p, head_size(hd));
  return id == UINT32_MAX ? SIMALLOC_SITE_NONE : id;
}

/* ---- modules ------------------------------------------------------------ */

static uint64_t parse_hex(const char **s) {
  uint64_t v = 0;
  for (;; (*s)++) {
    char c = **s;
    if (c >= '0' && c <= '9') v = v * 16 + (uint64_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (uint64_t)(c - 'a' + 10);
    else return v;
  }
}

/* One line of /proc/self/maps: "start-end perms offset dev inode path".
 * Keeps executable mappings of files.  Returns 1 if *m was filled. */
static int parse_maps_line(const char *s, simalloc_snap_module *m) {
  m->start = parse_hex(&s);
  if (*s++ != '-') return 0;
  m->end = parse_hex(&s);
  if (*s++ != ' ' || s[0] == 0 || s[1] == 0 || s[2] != 'x') return 0;
  s += 4;
  if (*s++ != ' ') return 0;
  m->offset = parse_hex(&s);
  for (int fields = 0; fields < 2 && *s; fields++) {  /* dev, inode */
    while (*s == ' ') s++;
    while (*s && *s != ' ') s++;
  }
  while (*s == ' ') s++;
  if (*s != '/' && *s != '[') return 0;
  size_t n = strlen(s);
  if (n >= sizeof m->path) n = sizeof m->path - 1;
  memcpy(m->path, s, n);
  m->path[n] = 0;
  return 1;
}

typedef struct module_list {
  simalloc_snap_module *out;
  uint32_t n, cap;
} module_list;

static int add_module(const char *line, void *ctx) {
  module_list *l = ctx;
  l->n += (uint32_t)parse_maps_line(line, &l->out[l->n]);
  return l->n < l->cap;
}

uint32_t sa_sites_modules(simalloc_snap_module *out, uint32_t cap) {
  char line[SIMALLOC_SNAP_PATH_LEN + 128];
  module_list l = {out, 0, cap};
  if (cap) sa_os_each_line("/proc/self/maps", line, sizeof line, add_module, &l);
  return l.n;
}

/* A table of the process's modules, from the kernel: 70 KiB is too much
 * for the stack of whichever thread allocates first, or of one that exits.
 * Returns the count (0 if the table could not be had); *table is NULL or
 * must go back with modules_done. */
#define MODULES_MAX 256
static uint32_t modules(simalloc_snap_module **table) {
  *table = sa_os_reserve(MODULES_MAX * sizeof **table);
  return *table ? sa_sites_modules(*table, MODULES_MAX) : 0;
}

static void modules_done(simalloc_snap_module *table) {
  if (table) sa_os_unreserve(table, MODULES_MAX * sizeof *table);
}

/* Finds the executable mapping that holds our own code. */
static void find_own_code(void) {
  simalloc_snap_module *m;
  uint32_t n = modules(&m);
  uintptr_t here = (uintptr_t)&sa_sites_init;
  for (uint32_t i = 0; i < n; i++)
    if (here >= m[i].start && here < m[i].end) {
      sites.own_lo = m[i].start;
      sites.own_hi = m[i].end;
    }
  modules_done(m);
}

/* ---- set-up ------------------------------------------------------------- */

static uint32_t pow2_at_least(uint64_t v) {
  uint32_t p = 1;
  while (p < v && p < (UINT32_C(1) << 31)) p <<= 1;
  return p;
}

/* Makes the table for the given settings; 0 or -1. */
static int setup(int mode, uint64_t rate, int depth, uint32_t max) {
  if (max < SIMALLOC_SITE_FIRST + 1) max = SIMALLOC_SITE_FIRST + 1;
  if (max > SITE_LIMIT) max = SITE_LIMIT;
  if (depth < 1) depth = 1;
  if (depth > SIMALLOC_SITE_DEPTH) depth = SIMALLOC_SITE_DEPTH;
  uint32_t index_slots = pow2_at_least((uint64_t)max * 2);
  simalloc_snap_site *site = sa_os_reserve((size_t)max * sizeof *site);
  uint32_t *index = sa_os_reserve((size_t)index_slots * sizeof *index);
  if (!site || !index) return -1;  /* the rest is left reserved */
  sites.site = site;
  sites.index = index;
  sites.index_mask = index_slots - 1;
  sites.max = max;
  sites.count = SIMALLOC_SITE_FIRST;
  site[SIMALLOC_SITE_OTHER].id = SIMALLOC_SITE_OTHER;
  sites.depth = depth;
  sites.rate = rate ? rate : 1;
  sites.wanted = mode;
  sites.generation++;
  if (!sites.exit_hook.ok) sa_os_exit_hook_create(&sites.exit_hook, thread_gone);
  return 0;
}

/* Starts recording, once the unwinder is loaded (sa_sites_arm). */
static void arm(void) {
  __atomic_store_n(&sites.mode, sites.wanted, __ATOMIC_RELEASE);
}

void sa_sites_init(void) {
  sa_options_load();
  if (sa_option(SA_OPT_LEAKS)) {
    int fd = sa_os_dup_stderr();  /* the program may close stderr before exit */
    if (fd >= 0) sites.report_fd = fd;
  }
  int mode = (int)sa_option(SA_OPT_SITES);
  if (mode == SA_SITES_OFF) return;
  find_own_code();
  if (setup(mode, sa_option(SA_OPT_SITE_RATE), (int)sa_option(SA_OPT_SITE_DEPTH),
            (uint32_t)sa_option(SA_OPT_SITE_MAX)) != 0) {
    static const char msg[] = "simalloc: no memory for the site table; SIMALLOC_SITES is off\n";
    sa_os_write(2, msg, sizeof msg - 1);
  }
}

void sa_sites_arm(void) {
  if (!sites.wanted || sites.mode) return;
  if (sa_unwind_init() != 0) {
    static const char msg[] = "simalloc: libunwind.so.8 cannot be loaded; SIMALLOC_SITES is off\n";
    sa_os_write(2, msg, sizeof msg - 1);
    return;
  }
  arm();
}

int64_t sa_sites_countdown(void) {
  return countdown_for(__atomic_load_n(&sites.mode, __ATOMIC_ACQUIRE), sites.rate);
}

/* Fork takes the table lock like the heap locks (see process.c). */
static int fork_took;

void sa_sites_fork_prepare(void) { fork_took = sa_lock_for_fork(&sites.lock); }

void sa_sites_fork_parent(void) {
  if (fork_took) sa_lock_release(&sites.lock);
}

void sa_sites_after_fork_child(void) {
  if (!fork_took) return;  /* the interrupted code is changing the list */
  sa_lock_reset(&sites.lock);
  /* The other threads are gone: their counts go to the table. */
  for (thread_counts *t = sites.threads, *next; t; t = next) {
    next = t->next;
    if (t == &mine) continue;
    hand_over_all(t);
    unlist(t);
  }
}

/* ---- the snapshot ------------------------------------------------------- */

static void copy_site(simalloc_snap_site *d, const simalloc_snap_site *s) {
  d->id = s->id;
  d->frame_count = s->frame_count;
  d->live_bytes = __atomic_load_n(&s->live_bytes, __ATOMIC_RELAXED);
  d->live_blocks = __atomic_load_n(&s->live_blocks, __ATOMIC_RELAXED);
  d->total_bytes = __atomic_load_n(&s->total_bytes, __ATOMIC_RELAXED);
  d->total_calls = __atomic_load_n(&s->total_calls, __ATOMIC_RELAXED);
  d->peak_live_bytes = __atomic_load_n(&s->peak_live_bytes, __ATOMIC_RELAXED);
  memcpy(d->frames, s->frames, sizeof d->frames);
  /* Frees racing with this copy may leave live above a fresh peak. */
  if (d->peak_live_bytes < d->live_bytes) d->peak_live_bytes = d->live_bytes;
}

void sa_sites_snap(simalloc_snap_header *seg) {
  seg->sites_mode = (uint32_t)sites.mode;
  seg->site_depth = (uint32_t)sites.depth;
  seg->sites_rate = sites.mode == SA_SITES_SAMPLE ? sites.rate : 0;
  simalloc_snap_module *mods = (simalloc_snap_module *)((char *)seg + seg->modules_offset);
  seg->module_count = seg->modules_cap ? sa_sites_modules(mods, seg->modules_cap) : 0;
  simalloc_snap_site *out = (simalloc_snap_site *)((char *)seg + seg->sites_offset);
  uint32_t n = 0;
  if (sites.site) {
    n = __atomic_load_n(&sites.count, __ATOMIC_ACQUIRE);
    if (n > seg->sites_cap) n = seg->sites_cap;
    sa_lock_acquire(&sites.lock);  /* entries being added are complete */
    for (uint32_t i = 0; i < n; i++) copy_site(&out[i], &sites.site[i]);
    add_held(out, 0, n);
    sa_lock_release(&sites.lock);
  }
  seg->site_count = n;
}

uint32_t sa_sites_capacity(void) {
  return sites.site ? sites.max : 0;
}

/* ---- SIMALLOC_LEAKS ----------------------------------------------------- */

static void leak_frame(sa_fmt *f, uintptr_t a, const simalloc_snap_module *m, uint32_t nm) {
  sa_fmt_str(f, "    ");
  sa_fmt_hex(f, a);
  for (uint32_t i = 0; i < nm; i++) {
    if (a < m[i].start || a >= m[i].end) continue;
    const char *base = strrchr(m[i].path, '/');
    sa_fmt_str(f, " ");
    sa_fmt_str(f, base ? base + 1 : m[i].path);
    sa_fmt_str(f, "+");
    sa_fmt_hex(f, a - m[i].start + m[i].offset);
    break;
  }
  sa_fmt_str(f, "\n");
}

static void leak_site(const simalloc_snap_site *s, const simalloc_snap_module *m, uint32_t nm) {
  char buf[256];
  sa_fmt f = SA_FMT_INIT(buf);
  sa_fmt_str(&f, "simalloc: site ");
  sa_fmt_u64(&f, s->id);
  sa_fmt_str(&f, s->id == SIMALLOC_SITE_OTHER ? " (other stacks): " : ": ");
  sa_fmt_size(&f, s->live_bytes);
  sa_fmt_str(&f, " in ");
  sa_fmt_u64(&f, s->live_blocks);
  sa_fmt_str(&f, " blocks\n");
  sa_os_write(sites.report_fd, f.buf, f.len);
  for (uint32_t i = 0; i < s->frame_count; i++) {
    f.len = 0;
    leak_frame(&f, s->frames[i], m, nm);
    sa_os_write(sites.report_fd, f.buf, f.len);
  }
}

/* The site with the most live bytes below `below` (ties broken by id
 * after `after`), or 0. */
static uint32_t next_largest(uint64_t below, uint32_t after) {
  uint32_t best = 0;
  uint64_t best_live = 0;
  for (uint32_t i = SIMALLOC_SITE_OTHER; i < sites.count; i++) {
    uint64_t live = __atomic_load_n(&sites.site[i].live_bytes, __ATOMIC_RELAXED);
    if (live == 0 || live > below || (live == below && i <= after)) continue;
    if (live > best_live) best = i, best_live = live;
  }
  return best;
}

void sa_sites_report_leaks(void) {
  if (!sa_option(SA_OPT_LEAKS) || !sites.site) return;
  /* What the threads hold goes to the table: this thread's for good;
   * other threads may still run, and theirs is added as it stands. */
  hand_over_all(&mine);
  sa_lock_acquire(&sites.lock);
  for (thread_counts *t = sites.threads; t; t = t->next)
    for (int i = 0; t != &mine && i < PENDING_SLOTS; i++) {
      pending *e = &t->slot[i];
      uint32_t id = held_site(e);
      if (id)
        add_to_table(id, GET(e->live_bytes), GET(e->live_blocks),
                     GET(e->base) + (uint64_t)GET(e->high), 0, 0);
    }
  sa_lock_release(&sites.lock);
  simalloc_snap_module *mods;
  uint32_t nm = modules(&mods);
  uint64_t below = UINT64_MAX;
  uint32_t last = 0, shown = 0;
  char buf[160];
  sa_fmt f = SA_FMT_INIT(buf);
  sa_fmt_str(&f, sites.mode == SA_SITES_SAMPLE
                     ? "simalloc: sites still holding memory at exit (sampled estimates):\n"
                     : "simalloc: sites still holding memory at exit:\n");
  sa_os_write(sites.report_fd, f.buf, f.len);
  for (uint32_t id; shown < LEAKS_SHOWN && (id = next_largest(below, last)); shown++) {
    simalloc_snap_site s;
    copy_site(&s, &sites.site[id]);
    leak_site(&s, mods, nm);
    below = s.live_bytes;
    last = id;
  }
  modules_done(mods);
}

/* ---- for the unit tests ------------------------------------------------- */

int sa_sites_test_setup(int mode, uint64_t rate, int depth, uint32_t max) {
  __atomic_store_n(&sites.mode, SA_SITES_OFF, __ATOMIC_RELEASE);
  sites.site = NULL;  /* the old table is left behind */
  int r = setup(mode, rate, depth, max);
  if (r == 0) arm();  /* the tests record given stacks: no unwinder needed */
  return r;
}

uint32_t sa_sites_test_record(void *p, size_t block_size, const uintptr_t *frames, int n) {
  void *raw[SIMALLOC_SITE_DEPTH];
  if (n > SIMALLOC_SITE_DEPTH) n = SIMALLOC_SITE_DEPTH;
  for (int i = 0; i < n; i++) raw[i] = (void *)frames[i];
  return record(p, block_size, raw, n);
}

int sa_sites_test_site(uint32_t id, simalloc_snap_site *out) {
  if (!sites.site || id >= sites.count) return -1;
  sa_lock_acquire(&sites.lock);
  copy_site(out, &sites.site[id]);
  add_held(out, id, 1);
  sa_lock_release(&sites.lock);
  return 0;
}

uint32_t sa_sites_test_count(void) {
  return sites.site ? sites.count : 0;
}
