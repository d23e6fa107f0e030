/* stress.c - many threads, shared blocks, verified contents.
 *
 *   stress [-t threads] [-r rounds] [-n ops] [-s slots] [-S seed]
 *
 * Every round starts `threads` new threads; each performs `ops` operations
 * on a shared array of slots.  An operation allocates a block (malloc,
 * calloc, aligned_alloc or posix_memalign; sizes 1..2000 bytes, about 1 in
 * 100 between 64 KiB and 4 MiB), fills it with a pattern that encodes its
 * slot, generation and size, and swaps it into a random slot with an atomic
 * exchange.  Whatever came out of the slot - usually written by another
 * thread, often one of an earlier round that has exited since - is checked
 * against its pattern, sometimes grown or shrunk with realloc and checked
 * again, and freed; now and then a thread calls malloc_trim on the way.  At
 * the end the slots are drained the same way.
 *
 * Every block is filled once and checked once, and a block's generation
 * depends only on the thread index, round and operation number, so the
 * checksum of everything that was read back is the same on every run with
 * the same options, whatever the interleaving and whatever the allocator.
 * It prints one line:
 *
 *   stress: threads=T rounds=R ops=N blocks=B checksum=0x... ok
 *
 * Exit status: 0 good, 1 a block did not hold its pattern, 2 an
 * allocation failed, 64 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A block and what it must contain.  The descriptor is itself allocated,
 * so it too is churned through the allocator. */
typedef struct item {
  unsigned char *p;
  size_t size;
  uint64_t gen;    /* thread, round and operation number */
  uint32_t slot;
  uint32_t align;  /* alignment it was allocated with, 0 for malloc */
} item;

static struct {
  unsigned threads, rounds, ops, slots;
  uint64_t seed;
} cfg = {8, 10, 20000, 4096, 1};

static _Atomic(item *) *slots;
static atomic_uint_fast64_t sum_filled, sum_read, blocks;

static uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= UINT64_C(0xbf58476d1ce4e5b9);
  x ^= x >> 27;
  x *= UINT64_C(0x94d049bb133111eb);
  return x ^ (x >> 31);
}

static uint64_t next(uint64_t *s) {
  *s += UINT64_C(0x9e3779b97f4a7c15);
  return mix(*s);
}

/* The word at byte offset i of a block described by key. */
static uint64_t word_at(uint64_t key, size_t i) {
  return key + i * UINT64_C(0x9e3779b97f4a7c15);
}

/* Byte i: the matching byte of the word that covers it, so a check of any
 * prefix agrees with a fill done a word at a time. */
static unsigned char byte_at(uint64_t key, size_t i) {
  return (unsigned char)(word_at(key, i & ~(size_t)7) >> (8 * (i & 7)));
}

static uint64_t key_of(const item *it) {
  return mix(it->gen ^ ((uint64_t)it->slot << 48) ^ mix(it->size));
}

/* Fills the block and returns the checksum of what it wrote. */
static uint64_t fill(const item *it) {
  uint64_t key = key_of(it), sum = 0;
  size_t i = 0;
  for (; i + 8 <= it->size; i += 8) {
    uint64_t w = word_at(key, i);
    memcpy(it->p + i, &w, 8);
    sum += w;
  }
  for (; i < it->size; i++) {
    it->p[i] = byte_at(key, i);
    sum += it->p[i];
  }
  return sum;
}

static void die_mismatch(const item *it, size_t at, const char *when) {
  fprintf(stderr,
          "stress: %s: block %p slot %" PRIu32 " gen %#" PRIx64 " size %zu differs at byte %zu\n",
          when, (void *)it->p, it->slot, it->gen, it->size, at);
  exit(1);
}

/* Checks the first n bytes of the block against its pattern and returns
 * the checksum of what it read. */
static uint64_t check(const item *it, size_t n, const char *when) {
  uint64_t key = key_of(it), sum = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, it->p + i, 8);
    if (w != word_at(key, i))
      die_mismatch(it, i, when);
    sum += w;
  }
  for (; i < n; i++) {
    if (it->p[i] != byte_at(key, i))
      die_mismatch(it, i, when);
    sum += it->p[i];
  }
  return sum;
}

static void die_oom(const char *what, size_t size) {
  fprintf(stderr, "stress: %s of %zu bytes failed: %s\n", what, size, strerror(errno));
  exit(2);
}

static size_t pick_size(uint64_t *rng) {
  uint64_t r = next(rng);
  if (r % 100 == 0)
    return (64 << 10) + (size_t)(next(rng) % ((4 << 20) - (64 << 10) + 1));
  return 1 + (size_t)(next(rng) % 2000);
}

static unsigned char *allocate(item *it, uint64_t *rng) {
  uint64_t how = next(rng) % 16;
  size_t n = it->size;
  void *p = NULL;
  it->align = 0;
  if (how == 0) {
    p = calloc(1, n);
    if (p)
      for (size_t i = 0; i < n; i++)
        if (((unsigned char *)p)[i] != 0) {
          fprintf(stderr, "stress: calloc(%zu) byte %zu is not zero\n", n, i);
          exit(1);
        }
  } else if (how == 1) {
    it->align = 16u << (next(rng) % 9); /* 16 .. 4096 */
    p = aligned_alloc(it->align, (n + it->align - 1) / it->align * it->align);
  } else if (how == 2) {
    it->align = 32u << (next(rng) % 6);
    if (posix_memalign(&p, it->align, n) != 0)
      p = NULL;
  } else {
    p = malloc(n);
  }
  if (!p)
    die_oom("allocation", n);
  if (it->align && (uintptr_t)p % it->align != 0) {
    fprintf(stderr, "stress: %p is not aligned to %" PRIu32 "\n", p, it->align);
    exit(1);
  }
  if (malloc_usable_size(p) < n) {
    fprintf(stderr, "stress: malloc_usable_size(%p) = %zu < %zu\n", p, malloc_usable_size(p), n);
    exit(1);
  }
  return p;
}

static item *make(uint32_t slot, uint64_t gen, uint64_t *rng) {
  item *it = malloc(sizeof *it);
  if (!it)
    die_oom("descriptor", sizeof *it);
  it->slot = slot;
  it->gen = gen;
  it->size = pick_size(rng);
  it->p = allocate(it, rng);
  atomic_fetch_add(&sum_filled, fill(it));
  atomic_fetch_add(&blocks, 1);
  return it;
}

/* Checks a block that came out of a slot, perhaps resizes it, frees it;
 * now and then has the allocator give its free pages back meanwhile. */
static void retire(item *it, uint64_t *rng) {
  if (next(rng) % 2048 == 0)
    malloc_trim(next(rng) % 2 ? 0 : (size_t)1 << 20);
  if (next(rng) % 8 == 0) {
    size_t keep = it->size;
    size_t n = pick_size(rng);
    uint64_t before = check(it, keep, "before realloc");
    unsigned char *q = realloc(it->p, n);
    if (!q)
      die_oom("realloc", n);
    it->p = q;
    size_t common = keep < n ? keep : n;
    uint64_t after = check(it, common, "after realloc");
    if (common == keep && after != before)
      die_mismatch(it, 0, "after realloc");
    /* The bytes beyond the old size are not part of the pattern, so the
     * block counts as read in full before the realloc. */
    atomic_fetch_add(&sum_read, before);
  } else {
    atomic_fetch_add(&sum_read, check(it, it->size, "before free"));
  }
  free(it->p);
  free(it);
}

typedef struct worker {
  pthread_t tid;
  unsigned index, round;
} worker;

static void *work(void *arg) {
  const worker *w = arg;
  /* Separate streams: how often retire() runs depends on the interleaving,
   * so it must not disturb the sequence of sizes that make() draws. */
  uint64_t rng = mix(cfg.seed ^ ((uint64_t)w->round << 32) ^ w->index);
  uint64_t rrng = ~rng;
  for (unsigned op = 0; op < cfg.ops; op++) {
    uint32_t slot = (uint32_t)(next(&rng) % cfg.slots);
    uint64_t gen = ((uint64_t)w->round << 40) | ((uint64_t)w->index << 28) | op;
    item *old = atomic_exchange(&slots[slot], make(slot, gen, &rng));
    if (old)
      retire(old, &rrng);
  }
  return NULL;
}

static unsigned number(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || end == s || v == 0 || v > 1u << 24) {
    fprintf(stderr, "stress: %s must be a number from 1 to %u, not '%s'\n", what, 1u << 24, s);
    exit(64);
  }
  return (unsigned)v;
}

static void parse(int argc, char **argv) {
  int c;
  while ((c = getopt(argc, argv, "t:r:n:s:S:")) != -1) {
    switch (c) {
    case 't': cfg.threads = number(optarg, "-t threads"); break;
    case 'r': cfg.rounds = number(optarg, "-r rounds"); break;
    case 'n': cfg.ops = number(optarg, "-n ops"); break;
    case 's': cfg.slots = number(optarg, "-s slots"); break;
    case 'S': cfg.seed = number(optarg, "-S seed"); break;
    default:
      fprintf(stderr, "usage: stress [-t threads] [-r rounds] [-n ops] [-s slots] [-S seed]\n");
      exit(64);
    }
  }
  if (optind != argc) {
    fprintf(stderr, "stress: unexpected argument '%s'\n", argv[optind]);
    exit(64);
  }
  if (cfg.threads > 1024) {
    fprintf(stderr, "stress: at most 1024 threads\n");
    exit(64);
  }
}

int main(int argc, char **argv) {
  parse(argc, argv);
  slots = calloc(cfg.slots, sizeof *slots);
  worker *ws = calloc(cfg.threads, sizeof *ws);
  if (!slots || !ws)
    die_oom("slot array", cfg.slots * sizeof *slots);
  for (unsigned r = 0; r < cfg.rounds; r++) {
    for (unsigned i = 0; i < cfg.threads; i++) {
      ws[i] = (worker){.index = i, .round = r};
      int e = pthread_create(&ws[i].tid, NULL, work, &ws[i]);
      if (e) {
        fprintf(stderr, "stress: pthread_create: %s\n", strerror(e));
        return 2;
      }
    }
    for (unsigned i = 0; i < cfg.threads; i++)
      pthread_join(ws[i].tid, NULL);
  }
  uint64_t rng = mix(cfg.seed);
  for (unsigned s = 0; s < cfg.slots; s++) {
    item *it = atomic_exchange(&slots[s], NULL);
    if (it)
      retire(it, &rng);
  }
  uint64_t filled = atomic_load(&sum_filled), read = atomic_load(&sum_read);
  if (filled != read) {
    fprintf(stderr, "stress: wrote checksum %#" PRIx64 " but read back %#" PRIx64 "\n", filled,
            read);
    return 1;
  }
  printf("stress: threads=%u rounds=%u ops=%u blocks=%" PRIu64 " checksum=%#018" PRIx64 " ok\n",
         cfg.threads, cfg.rounds, cfg.ops, (uint64_t)atomic_load(&blocks), read);
  free(slots);
  free(ws);
  return 0;
}
