/* common.h - what every benchmark workload shares.
 *
 * Each workload is one small C program that exercises one allocation
 * pattern through the plain malloc family, so it measures whichever
 * allocator is linked or preloaded.  This header gives them:
 *
 *   - a fixed-seed PRNG (splitmix64), so every run and every allocator sees
 *     exactly the same sequence of requests;
 *   - one command line: `-s SCALE` multiplies the amount of work (1.0 is
 *     sized for about a second under glibc), `-t THREADS` for the threaded
 *     workloads;
 *   - the output contract: one line "NAME checksum HEX" on stdout, exit 0.
 *     The checksum depends only on the data the workload wrote and read
 *     back, never on addresses or scheduling, so it is the same under every
 *     correct allocator.  Bad arguments give one line on stderr and exit 2;
 *     an allocation failure gives one line and exit 3, a failure to start a
 *     thread exit 4.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BENCH_EXIT_USAGE 2
#define BENCH_EXIT_NOMEM 3
#define BENCH_EXIT_THREAD 4
#define BENCH_MAX_THREADS 256

/* ---- PRNG --------------------------------------------------------------- */

static inline uint64_t rng_next(uint64_t *state)
{
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0.  The modulo bias is irrelevant here. */
static inline uint64_t rng_below(uint64_t *state, uint64_t n)
{
  return rng_next(state) % n;
}

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
  return lo + rng_below(state, hi - lo + 1);
}

/* Seed of stream `k` (one per thread), derived from one fixed constant. */
static inline uint64_t rng_seed(uint64_t k)
{
  uint64_t s = 0x5eed5eed12345678ull ^ (k * 0x2545f4914f6cdd1dull);
  rng_next(&s);
  return s;
}

/* ---- command line ------------------------------------------------------- */

struct bench_args {
  double scale;   /* work multiplier, > 0 */
  int threads;    /* >= 1; only meaningful for threaded workloads */
};

static inline void bench_usage(const char *name, int threaded)
{
  fprintf(stderr, "usage: %s [-s SCALE]%s\n", name,
          threaded ? " [-t THREADS]" : "");
}

static inline int bench_parse_double(const char *text, double *out)
{
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || !(v > 0.0) || v > 1000.0)
    return -1;
  *out = v;
  return 0;
}

static inline int bench_parse_int(const char *text, int *out)
{
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < 1 || v > BENCH_MAX_THREADS)
    return -1;
  *out = (int)v;
  return 0;
}

/* Parse argv into *a; on bad input print one line and exit 2. */
static inline void bench_parse(int argc, char **argv, const char *name,
                               int threaded, struct bench_args *a)
{
  int opt;
  a->scale = 1.0;
  a->threads = 1;
  while ((opt = getopt(argc, argv, threaded ? "s:t:h" : "s:h")) != -1) {
    if (opt == 's' && bench_parse_double(optarg, &a->scale) == 0)
      continue;
    if (opt == 't' && bench_parse_int(optarg, &a->threads) == 0)
      continue;
    if (opt == 'h') {
      bench_usage(name, threaded);
      exit(0);
    }
    if (opt == 's')
      fprintf(stderr, "%s: bad scale '%s' (want a number in (0, 1000])\n",
              name, optarg);
    else if (opt == 't')
      fprintf(stderr, "%s: bad thread count '%s' (want 1..%d)\n", name,
              optarg, BENCH_MAX_THREADS);
    else
      bench_usage(name, threaded);
    exit(BENCH_EXIT_USAGE);
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\n", name, argv[optind]);
    exit(BENCH_EXIT_USAGE);
  }
}

/* `base` work units scaled, at least 1. */
static inline uint64_t bench_scaled(const struct bench_args *a, double base)
{
  double v = base * a->scale;
  return v < 1.0 ? 1 : (uint64_t)v;
}

/* ---- allocation and output ---------------------------------------------- */

static inline void bench_nomem(const char *name, size_t size)
{
  fprintf(stderr, "%s: out of memory allocating %zu bytes\n", name, size);
  exit(BENCH_EXIT_NOMEM);
}

/* Fill the first and last word-sized pieces of a block with `tag`, so each
 * block is really touched and its contents can be checked on free. */
static inline void bench_stamp(void *p, size_t size, uint64_t tag)
{
  unsigned char *b = p;
  size_t n = size < 8 ? size : 8;
  memcpy(b, &tag, n);
  memcpy(b + size - n, &tag, n);
}

/* Read back what bench_stamp wrote (the first piece), for the checksum. */
static inline uint64_t bench_peek(const void *p, size_t size)
{
  uint64_t tag = 0;
  memcpy(&tag, p, size < 8 ? size : 8);
  return tag;
}

/* Mix a value into a running checksum (order-dependent). */
static inline uint64_t bench_mix(uint64_t sum, uint64_t v)
{
  return (sum ^ v) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
}

/* Run fn on each of the n records of `args` (each `size` bytes) in its own
 * thread and wait for all of them. */
static inline void bench_spawn(const char *name, int n, void *(*fn)(void *),
                               void *args, size_t size)
{
  pthread_t tid[BENCH_MAX_THREADS * 2];
  int err;
  for (int i = 0; i < n; i++) {
    err = pthread_create(&tid[i], NULL, fn, (char *)args + (size_t)i * size);
    if (err) {
      fprintf(stderr, "%s: cannot create thread %d: %s\n", name, i,
              strerror(err));
      exit(BENCH_EXIT_THREAD);
    }
  }
  for (int i = 0; i < n; i++)
    pthread_join(tid[i], NULL);
}

static inline void bench_report(const char *name, uint64_t sum)
{
  printf("%s checksum %016llx\n", name, (unsigned long long)sum);
}

#endif
