/* fuzz_heap.c - libFuzzer harness: operation sequences on a private heap.
 *
 * The input is a program.  Each operation takes four bytes:
 *
 *   byte 0   what (low 3 bits): malloc, calloc, realloc, aligned, free,
 *            usable size; the high bits choose the alignment (16..4096)
 *   byte 1   the slot it works on (64 slots)
 *   byte 2,3 the size: mostly small, sometimes up to half the heap
 *
 * The heap is a fresh 1 MiB one for every input, over a static buffer and
 * with a fixed key, so an input always replays the same way.  Every live
 * block is filled with a pattern derived from its slot and a generation
 * number; the block an operation touches is checked before it is changed,
 * and every few operations all blocks and all the heap's invariants are.
 * At the end everything is freed and the heap must be one free block
 * again.  Any violation aborts with the reason, which libFuzzer reports as
 * a crash with the input that caused it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"

#define HEAP_BYTES (1u << 20)
#define SLOTS 64
#define CHECK_EVERY 16

static _Alignas(4096) unsigned char arena[HEAP_BYTES];
static sa_heap heap;

typedef struct slot {
  unsigned char *p;
  size_t size;
  uint8_t gen;
} slot;

static slot slots[SLOTS];

enum op { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_ALIGNED, OP_FREE, OP_USABLE, OP_COUNT };

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...);

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz_heap: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

/* The pattern of a block is a window into a fixed random table, starting
 * at an offset chosen by its slot and generation; fill and check are then
 * one memcpy and one memcmp, which keeps the harness fast under the
 * sanitizers and the coverage instrumentation. */
#define PAT_SPREAD 4096
static unsigned char table[HEAP_BYTES + PAT_SPREAD];

static void table_init(void) {
  static int done;
  if (done)
    return;
  done = 1;
  uint64_t x = UINT64_C(0x243f6a8885a308d3);
  for (size_t i = 0; i < sizeof table; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    table[i] = (unsigned char)x;
  }
}

static const unsigned char *pat(unsigned s, uint8_t gen) {
  return table + (s * 61u + gen * 7u) % PAT_SPREAD;
}

static void fill(unsigned s) {
  memcpy(slots[s].p, pat(s, slots[s].gen), slots[s].size);
}

static void verify(unsigned s, size_t n) {
  const slot *sl = &slots[s];
  const unsigned char *want = pat(s, sl->gen);
  if (memcmp(sl->p, want, n) == 0)
    return;
  size_t i = 0;
  while (sl->p[i] == want[i])
    i++;
  die("slot %u (%p, %zu bytes) changed at byte %zu", s, (void *)sl->p, sl->size, i);
}

static void check_heap(void) {
  sa_heap_report r = sa_heap_check(&heap);
  if (!r.ok)
    die("heap check: %s at %#lx", r.what, (unsigned long)r.where);
  for (unsigned s = 0; s < SLOTS; s++)
    if (slots[s].p)
      verify(s, slots[s].size);
}

/* Sizes: three in four below 512 bytes, the rest up to 512 KiB. */
static size_t decode_size(uint8_t a, uint8_t b) {
  unsigned v = (unsigned)a << 8 | b;
  if ((v & 3) != 3)
    return v >> 7;
  return (size_t)(v >> 2) << 5;
}

static void after_alloc(unsigned s, void *p, size_t n, const char *what) {
  if (!p) {
    if (errno != ENOMEM)
      die("%s(%zu) returned NULL with errno %d, not ENOMEM", what, n, errno);
    return;
  }
  if ((uintptr_t)p % 16)
    die("%s(%zu) returned %p, not 16-byte aligned", what, n, p);
  if (!sa_heap_contains(&heap, p))
    die("%s(%zu) returned %p outside the heap", what, n, p);
  if (sa_heap_usable(&heap, p, "malloc_usable_size") < n)
    die("%s(%zu): usable size %zu is short", what, n, sa_heap_usable(&heap, p, "usable"));
  slots[s].p = p;
  slots[s].size = n;
  slots[s].gen++;
  fill(s);
}

static void release(unsigned s) {
  verify(s, slots[s].size);
  sa_heap_free(&heap, slots[s].p, "free");
  slots[s].p = NULL;
  slots[s].size = 0;
}

static void op_alloc(enum op op, unsigned s, size_t n, uint8_t extra) {
  if (slots[s].p)
    release(s);
  errno = 0;
  if (op == OP_MALLOC) {
    after_alloc(s, sa_heap_alloc(&heap, n), n, "malloc");
  } else if (op == OP_CALLOC) {
    static const unsigned char zero[HEAP_BYTES];
    unsigned char *p = sa_heap_calloc(&heap, n);
    if (p && n <= sizeof zero && memcmp(p, zero, n) != 0)
      die("calloc(%zu) returned memory that is not zeroed", n);
    after_alloc(s, p, n, "calloc");
  } else {
    size_t align = (size_t)16 << (extra % 9);
    void *p = sa_heap_alloc_aligned(&heap, align, n);
    if (p && (uintptr_t)p % align)
      die("aligned(%zu, %zu) returned %p", align, n, p);
    after_alloc(s, p, n, "aligned");
  }
}

static void op_realloc(unsigned s, size_t n) {
  slot *sl = &slots[s];
  if (!sl->p || n == 0) {
    op_alloc(OP_MALLOC, s, n ? n : 1, 0);
    return;
  }
  verify(s, sl->size);
  errno = 0;
  unsigned char *q = sa_heap_realloc(&heap, sl->p, n);
  if (!q) {
    if (errno != ENOMEM)
      die("realloc(%zu) failed with errno %d, not ENOMEM", n, errno);
    verify(s, sl->size); /* a failed realloc leaves the block alone */
    return;
  }
  sl->p = q;
  verify(s, n < sl->size ? n : sl->size);
  after_alloc(s, q, n, "realloc");
}

static void run_op(const uint8_t *in, unsigned k) {
  enum op op = (enum op)((in[0] & 7) % OP_COUNT);
  unsigned s = in[1] % SLOTS;
  size_t n = decode_size(in[2], in[3]);
  switch (op) {
  case OP_MALLOC:
  case OP_CALLOC:
  case OP_ALIGNED: op_alloc(op, s, n, in[0] >> 3); break;
  case OP_REALLOC: op_realloc(s, n); break;
  case OP_FREE:
    if (slots[s].p)
      release(s);
    break;
  case OP_USABLE:
    if (slots[s].p && sa_heap_usable(&heap, slots[s].p, "malloc_usable_size") < slots[s].size)
      die("usable size of slot %u is below its %zu bytes", s, slots[s].size);
    break;
  default: break;
  }
  if (k % CHECK_EVERY == 0)
    check_heap();
}

static int count_blocks(const sa_block_info *b, void *ctx) {
  size_t *n = ctx;
  n[b->used ? 1 : 0]++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  table_init();
  memset(slots, 0, sizeof slots);
  if (sa_heap_init_keyed(&heap, arena, sizeof arena, 0, UINT64_C(0x5eed5eed5eed5eed)) != 0)
    die("sa_heap_init refused a 1 MiB buffer");
  unsigned k = 0;
  for (size_t i = 0; i + 4 <= size; i += 4)
    run_op(data + i, ++k);
  check_heap();
  for (unsigned s = 0; s < SLOTS; s++)
    if (slots[s].p)
      release(s);
  check_heap();
  size_t n[2] = {0, 0};
  sa_heap_walk(&heap, count_blocks, n);
  if (n[1] != 0 || n[0] != 1)
    die("after freeing everything: %zu used and %zu free blocks, not one free block", n[1], n[0]);
  return 0;
}
