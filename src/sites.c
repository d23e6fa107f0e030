/* sites.c - allocation sites: which call stacks hold the memory.
 *
 * Two fixed-size tables, both in memory from sa_os_reserve, so nothing here
 * ever allocates from the heaps:
 *
 *   the site table   one entry per distinct stack, its index is the site
 *                    id (0 none, 1 `other`, real sites from 2).  A hash
 *                    index of ids over the stacks finds a stack's site;
 *                    lookups take no lock (an id is published in the index
 *                    only after its entry is complete), additions take
 *                    `sites.lock`.  When the table is full, new stacks fold
 *                    into `other`.  Counters are updated with atomics.
 *
 *   the block table  block payload address -> site for every TRACKED
 *                    block, so that free and realloc credit the right site
 *                    back (what a block stands for follows from its size).  Open addressing with linear probing
 *                    and backward-shift deletion, cut into stripes with a
 *                    lock each.  A stripe more than 3/4 full takes no more
 *                    blocks: those stay untracked (TRACKED clear) and count
 *                    nowhere.
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
 * in place stands from then on for what a block of its new size would.  With `all`, the
 * weight is the size and the figures are exact.
 *
 * Nothing here runs under an allocator lock; the locks here are never held
 * while calling anything that could allocate.
 */
#include "sites.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "block.h"
#include "fmt.h"
#include "heap.h"
#include "lock.h"
#include "options.h"
#include "os.h"
#include "tcache.h"
#include "unwind.h"

#define STRIPES 16
/* Block table entries per site table entry: every block may be tracked
 * with `all`; sampling tracks about one block per SIMALLOC_SITE_RATE live
 * bytes, and a smaller table keeps its pages few. */
#define BLOCKS_PER_SITE_ALL 64
#define BLOCKS_PER_SITE_SAMPLE 8
#define LEAKS_SHOWN 20          /* sites in the exit report */

/* A block table entry: the payload address (16-byte aligned, below 2^48)
 * over 44 bits and the site id below it; 0 is an empty slot.  What a block
 * stands for follows from its size (sa_sites_weight), so it is not kept. */
typedef uint64_t block_entry;
#define SITE_BITS 20
#define SITE_MASK ((UINT64_C(1) << SITE_BITS) - 1)

static inline block_entry entry_make(uintptr_t p, uint32_t site) {
  return ((uint64_t)p >> 4) << SITE_BITS | site;
}
static inline uintptr_t entry_addr(block_entry e) { return (uintptr_t)(e >> SITE_BITS) << 4; }
static inline uint32_t entry_site(block_entry e) { return (uint32_t)(e & SITE_MASK); }

typedef struct stripe {
  sa_lock lock;
  uint32_t count;
  block_entry *slot;
} __attribute__((aligned(64))) stripe;

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
  sa_lock lock;                 /* additions to the site table */
  uint32_t stripe_mask;         /* slots per stripe - 1 */
  stripe stripes[STRIPES];
  uintptr_t own_lo, own_hi;     /* our own code: frames there are dropped */
  int report_fd;                /* where SIMALLOC_LEAKS reports */
} sites = {.report_fd = 2};

/* Per thread: the recursion guard and the random state of the intervals. */
static __thread int in_site __attribute__((tls_model("initial-exec")));
static __thread uint64_t rng __attribute__((tls_model("initial-exec")));

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

static uint64_t stack_hash(const uintptr_t *frames, int n) {
  uint64_t h = UINT64_C(0xcbf29ce484222325) ^ (uint64_t)n;
  for (int i = 0; i < n; i++) {
    h ^= frames[i];
    h *= UINT64_C(0x9e3779b97f4a7c15);
    h ^= h >> 29;
  }
  return h;
}

static int same_stack(const simalloc_snap_site *s, const uintptr_t *frames, int n) {
  if (s->frame_count != (uint32_t)n) return 0;
  for (int i = 0; i < n; i++)
    if (s->frames[i] != frames[i]) return 0;
  return 1;
}

/* The slot of the stack's id in the index, or of the empty slot that ends
 * its probe sequence. */
static uint32_t probe(const uintptr_t *frames, int n, uint64_t h, uint32_t *id) {
  uint32_t i = (uint32_t)h & sites.index_mask;
  for (;;) {
    *id = __atomic_load_n(&sites.index[i], __ATOMIC_ACQUIRE);
    if (*id == 0 || same_stack(&sites.site[*id], frames, n)) return i;
    i = (i + 1) & sites.index_mask;
  }
}

static uint32_t site_add(const uintptr_t *frames, int n, uint64_t h) {
  uint32_t id;
  sa_lock_acquire(&sites.lock);
  uint32_t i = probe(frames, n, h, &id);
  if (id == 0 && sites.count < sites.max) {
    id = sites.count++;
    simalloc_snap_site *s = &sites.site[id];
    s->id = id;
    s->frame_count = (uint32_t)n;
    memcpy(s->frames, frames, (size_t)n * sizeof *frames);
    __atomic_store_n(&sites.index[i], id, __ATOMIC_RELEASE);
  } else if (id == 0) {
    id = SIMALLOC_SITE_OTHER;
  }
  sa_lock_release(&sites.lock);
  return id;
}

/* The id of the site of this stack, made if new; `other` if none is left. */
static uint32_t site_of_stack(const uintptr_t *frames, int n) {
  uint64_t h = stack_hash(frames, n);
  uint32_t id;
  probe(frames, n, h, &id);
  return id ? id : site_add(frames, n, h);
}

static void credit(uint32_t id, int64_t bytes, int64_t blocks) {
  simalloc_snap_site *s = &sites.site[id];
  uint64_t live = __atomic_add_fetch(&s->live_bytes, (uint64_t)bytes, __ATOMIC_RELAXED);
  __atomic_add_fetch(&s->live_blocks, (uint64_t)blocks, __ATOMIC_RELAXED);
  if (bytes <= 0) return;
  uint64_t peak = __atomic_load_n(&s->peak_live_bytes, __ATOMIC_RELAXED);
  while (live > peak &&
         !__atomic_compare_exchange_n(&s->peak_live_bytes, &peak, live, 1,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

/* ---- the block table ---------------------------------------------------- */

/* Blocks near each other land near each other in the table, so that frees
 * of neighbours share cache lines: the stripe is the 4 KiB page modulo
 * STRIPES, the slot the address with those page bits taken out; each
 * 64 MiB window starts at its own place so that heaps far apart do not
 * pile up on the same slots. */
static stripe *stripe_of(uintptr_t p, uint32_t *home) {
  uint64_t packed = ((p >> 4) & 0xff) | ((p >> 16) << 8);
  *home = (uint32_t)(packed + (p >> 26) * UINT64_C(0x9e3779b1)) & sites.stripe_mask;
  return &sites.stripes[(p >> 12) & (STRIPES - 1)];
}

/* Index of p's entry in st, or of the empty slot where it would go. */
static uint32_t block_find(stripe *st, uint32_t home, uintptr_t p) {
  uint32_t i = home;
  while (st->slot[i] && entry_addr(st->slot[i]) != p) i = (i + 1) & sites.stripe_mask;
  return i;
}

static int block_put(uintptr_t p, uint32_t site) {
  uint32_t home;
  stripe *st = stripe_of(p, &home);
  int ok = 0;
  if (p >> 48) return 0;  /* beyond what an entry holds (5-level paging) */
  sa_lock_acquire(&st->lock);
  if (st->count < (sites.stripe_mask + 1) / 4 * 3) {
    uint32_t i = block_find(st, home, p);
    if (!st->slot[i]) st->count++;
    st->slot[i] = entry_make(p, site);
    ok = 1;
  }
  sa_lock_release(&st->lock);
  return ok;
}

/* Removes slot i of st, shifting later entries of its cluster back so that
 * no probe sequence is cut (the stripe lock is held). */
static void block_remove(stripe *st, uint32_t i) {
  uint32_t m = sites.stripe_mask, j = i;
  for (;;) {
    j = (j + 1) & m;
    if (!st->slot[j]) break;
    uint32_t home;
    stripe_of(entry_addr(st->slot[j]), &home);
    /* j's entry may move to i if its home is not in (i, j]. */
    if (((j - home) & m) >= ((j - i) & m)) {
      st->slot[i] = st->slot[j];
      i = j;
    }
  }
  st->slot[i] = 0;
  st->count--;
}

/* p's site, taking its entry out of the table if take; 0 if it had none. */
static uint32_t block_lookup(uintptr_t p, int take) {
  uint32_t home;
  stripe *st = stripe_of(p, &home);
  sa_lock_acquire(&st->lock);
  uint32_t i = block_find(st, home, p);
  uint32_t site = st->slot[i] ? entry_site(st->slot[i]) : SIMALLOC_SITE_NONE;
  if (site && take) block_remove(st, i);
  sa_lock_release(&st->lock);
  return site;
}

/* Blocks a record of this size stands for. */
static int64_t blocks_for(size_t size, uint64_t weight) {
  uint64_t b = size ? weight / size : 1;
  return b ? (int64_t)b : 1;
}

/* ---- recording ---------------------------------------------------------- */

/* Records p (block_size bytes) as allocated by the stack frames[0..n):
 * returns its site, or 0 if the block table had no room. */
static uint32_t record(void *p, size_t block_size, const uintptr_t *frames, int n) {
  if (n > sites.depth) n = sites.depth;
  uint32_t id = site_of_stack(frames, n);
  if (!block_put((uintptr_t)p, id)) return 0;
  uint64_t w = sa_sites_weight(block_size);
  int64_t blocks = blocks_for(block_size, w);
  simalloc_snap_site *s = &sites.site[id];
  __atomic_add_fetch(&s->total_bytes, w, __ATOMIC_RELAXED);
  __atomic_add_fetch(&s->total_calls, (uint64_t)blocks, __ATOMIC_RELAXED);
  credit(id, (int64_t)w, blocks);
  sa_blk_set_tracked(p, 1);
  return id;
}

/* Leading frames inside our own code are the allocator's: dropped. */
static int drop_own(uintptr_t *frames, int n) {
  int k = 0;
  while (k < n && frames[k] >= sites.own_lo && frames[k] < sites.own_hi) k++;
  memmove(frames, frames + k, (size_t)(n - k) * sizeof *frames);
  return n - k;
}

void *sa_site_sampled(void *p, size_t block_size) {
  if (in_site) return p;
  in_site = 1;
  sa_tc.sample_left = INT64_MAX;  /* the unwinder's allocations are not sampled */
  int mode = __atomic_load_n(&sites.mode, __ATOMIC_ACQUIRE);
  if (mode != SA_SITES_OFF) {
    uintptr_t frames[SA_UNWIND_MAX];
    int n = drop_own(frames, sa_unwind(frames, SA_UNWIND_MAX));
    record(p, block_size, frames, n);
  }
  sa_tc.sample_left = countdown_for(mode, sites.rate);
  in_site = 0;
  return p;
}

void sa_site_released(void *p, size_t block_size) {
  uint32_t id = sites.site ? block_lookup((uintptr_t)p, 1) : SIMALLOC_SITE_NONE;
  if (id) {
    uint64_t w = sa_sites_weight(block_size);
    credit(id, -(int64_t)w, -blocks_for(block_size, w));
  }
  sa_blk_set_tracked(p, 0);
}

/* A resized block stands for what a block of its new size would. */
void sa_site_resized(void *p, size_t old_size, size_t new_size) {
  uint32_t id = sites.site ? block_lookup((uintptr_t)p, 0) : SIMALLOC_SITE_NONE;
  if (!id) return;
  uint64_t w0 = sa_sites_weight(old_size), w1 = sa_sites_weight(new_size);
  credit(id, (int64_t)(w1 - w0), blocks_for(new_size, w1) - blocks_for(old_size, w0));
}

uint32_t sa_site_of(const void *p) {
  return sites.site ? block_lookup((uintptr_t)p, 0) : SIMALLOC_SITE_NONE;
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

uint32_t sa_sites_modules(simalloc_snap_module *out, uint32_t cap) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[4096], line[SIMALLOC_SNAP_PATH_LEN + 128];
  size_t len = 0;
  uint32_t n = 0;
  ssize_t got;
  while (n < cap && (got = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < got && n < cap; i++) {
      if (buf[i] != '\n') {
        if (len < sizeof line - 1) line[len++] = buf[i];
        continue;
      }
      line[len] = 0;
      len = 0;
      n += (uint32_t)parse_maps_line(line, &out[n]);
    }
  }
  close(fd);
  return n;
}

/* Finds the executable mapping that holds our own code. */
static void find_own_code(void) {
  simalloc_snap_module m[128];
  uint32_t n = sa_sites_modules(m, 128);
  uintptr_t here = (uintptr_t)&sa_sites_init;
  for (uint32_t i = 0; i < n; i++)
    if (here >= m[i].start && here < m[i].end) {
      sites.own_lo = m[i].start;
      sites.own_hi = m[i].end;
    }
}

/* ---- set-up ------------------------------------------------------------- */

static uint32_t pow2_at_least(uint64_t v) {
  uint32_t p = 1;
  while (p < v && p < (UINT32_C(1) << 31)) p <<= 1;
  return p;
}

/* Makes the tables for the given settings; 0 or -1. */
static int setup(int mode, uint64_t rate, int depth, uint32_t max) {
  if (max < SIMALLOC_SITE_FIRST + 1) max = SIMALLOC_SITE_FIRST + 1;
  if (max > SITE_MASK + 1) max = SITE_MASK + 1;
  if (depth < 1) depth = 1;
  if (depth > SIMALLOC_SITE_DEPTH) depth = SIMALLOC_SITE_DEPTH;
  uint32_t index_slots = pow2_at_least((uint64_t)max * 2);
  uint64_t per_site = mode == SA_SITES_ALL ? BLOCKS_PER_SITE_ALL : BLOCKS_PER_SITE_SAMPLE;
  uint32_t per_stripe = pow2_at_least((uint64_t)max * per_site / STRIPES);
  if (per_stripe < 64) per_stripe = 64;
  simalloc_snap_site *site = sa_os_reserve((size_t)max * sizeof *site);
  uint32_t *index = sa_os_reserve((size_t)index_slots * sizeof *index);
  block_entry *blocks = sa_os_reserve((size_t)per_stripe * STRIPES * sizeof *blocks);
  if (!site || !index || !blocks) return -1;  /* the rest is left reserved */
  sites.site = site;
  sites.index = index;
  sites.index_mask = index_slots - 1;
  sites.stripe_mask = per_stripe - 1;
  for (int i = 0; i < STRIPES; i++)
    sites.stripes[i] = (stripe){{0}, 0, blocks + (size_t)i * per_stripe};
  sites.max = max;
  sites.count = SIMALLOC_SITE_FIRST;
  site[SIMALLOC_SITE_OTHER].id = SIMALLOC_SITE_OTHER;
  sites.depth = depth;
  sites.rate = rate ? rate : 1;
  sites.wanted = mode;
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
    static const char msg[] = "simalloc: no memory for the site tables; SIMALLOC_SITES is off\n";
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

int64_t sa_sites_first_countdown(void) {
  return countdown_for(__atomic_load_n(&sites.mode, __ATOMIC_ACQUIRE), sites.rate);
}

/* Fork takes the table locks like the heap locks (see process.c). */
static char fork_took[1 + STRIPES];

void sa_sites_fork_prepare(void) {
  fork_took[0] = (char)sa_lock_for_fork(&sites.lock);
  for (int i = 0; i < STRIPES; i++) fork_took[1 + i] = (char)sa_lock_for_fork(&sites.stripes[i].lock);
}

void sa_sites_fork_parent(void) {
  for (int i = STRIPES - 1; i >= 0; i--)
    if (fork_took[1 + i]) sa_lock_release(&sites.stripes[i].lock);
  if (fork_took[0]) sa_lock_release(&sites.lock);
}

void sa_sites_after_fork_child(void) {
  for (int i = 0; i < STRIPES; i++)
    if (fork_took[1 + i]) sa_lock_reset(&sites.stripes[i].lock);
  if (fork_took[0]) sa_lock_reset(&sites.lock);
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
  static simalloc_snap_module mods[256];
  uint32_t nm = sa_sites_modules(mods, 256);
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
}

/* ---- for the unit tests ------------------------------------------------- */

int sa_sites_test_setup(int mode, uint64_t rate, int depth, uint32_t max) {
  __atomic_store_n(&sites.mode, SA_SITES_OFF, __ATOMIC_RELEASE);
  sites.site = NULL;  /* the old tables are left behind */
  int r = setup(mode, rate, depth, max);
  if (r == 0) arm();  /* the tests record given stacks: no unwinder needed */
  return r;
}

uint32_t sa_sites_test_record(void *p, size_t block_size, const uintptr_t *frames, int n) {
  return record(p, block_size, frames, n);
}

int sa_sites_test_site(uint32_t id, simalloc_snap_site *out) {
  if (!sites.site || id >= sites.count) return -1;
  copy_site(out, &sites.site[id]);
  return 0;
}

uint32_t sa_sites_test_count(void) {
  return sites.site ? sites.count : 0;
}
