/* override.c - the exported malloc family, with glibc's semantics.
 *
 * Each entry point checks its arguments and forwards: small requests and
 * frees to the thread cache (tcache.h), the rest to the heaps (heap.h).
 * Nothing else lives here. */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "heap.h"
#include "os.h"
#include "process.h"
#include "tcache.h"

#define SA_API __attribute__((visibility("default")))

/* C23 functions that this libc may not declare yet. */
SA_API void free_sized(void *p, size_t size);
SA_API void free_aligned_sized(void *p, size_t align, size_t size);

void *sa_tc_aligned(size_t align, size_t n);
void *sa_tc_calloc_large(size_t n);

static inline void *enomem(void) {
  errno = ENOMEM;
  return NULL;
}

static inline int pow2(size_t a) { return a && !(a & (a - 1)); }

/* The entry points' rare cases are out of line, so that their fast paths
 * make no call that returns to them and save few registers. */
static __attribute__((noinline, cold)) void *malloc_hooked(size_t n) {
  sa_hook(SA_CALL_MALLOC);
  return sa_tc_malloc(n);
}

SA_API void *malloc(size_t n) {
  if (sa_hooked()) return malloc_hooked(n);
  return sa_tc_malloc(n);
}

static __attribute__((noinline, cold)) void free_hooked(void *p) {
  sa_hook(SA_CALL_FREE);
  sa_tc_free(p);
}

SA_API void free(void *p) {
  if (sa_hooked()) {
    free_hooked(p);
    return;
  }
  sa_tc_free(p);
}

SA_API void free_sized(void *p, size_t size) {
  (void)size;
  free(p);
}

SA_API void free_aligned_sized(void *p, size_t align, size_t size) {
  (void)align;
  (void)size;
  free(p);
}

SA_API void *calloc(size_t count, size_t size) {
  if (sa_hooked()) sa_hook(SA_CALL_CALLOC);
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) return enomem();
  if (n > SA_TC_MAX_REQ) return sa_tc_calloc_large(n);
  void *p = sa_tc_malloc(n);
  return p ? memset(p, 0, n) : NULL;
}

/* A block that grows to the size of a large block leaves its thread's heap
 * for the large blocks' heap, and one that shrinks to half of that leaves
 * the large blocks' heap (process.h): a move, not a resize in place. */
static int crosses(const sa_heap *h, size_t n) {
  size_t large = sa_arena_g.large_min;
  if (!sa_process_large_open()) return 0;
  return sa_is_large_heap(h) ? n < large / 2 : n >= large;
}

SA_API void *realloc(void *p, size_t n) {
  if (sa_hooked()) sa_hook(SA_CALL_REALLOC);
  if (!p) return malloc(n);
  if (n == 0) {
    free(p);
    return NULL;
  }
  sa_heap *h = sa_process_owner(p, "realloc");
  if (!h) {
    errno = EINVAL;
    return NULL;
  }
  /* Still fits, with little to give back: nothing to do, no lock.  (A
   * bad pointer fails these checks and is reported below.)  A block
   * recorded at its site keeps room for its trailer (block.h). */
  uintptr_t b = (uintptr_t)p - SA_PAYLOAD;
  uint64_t hd = blk_head(b);
  size_t size = head_size(hd), room = (hd & SA_TRACKED) ? SA_TRAILER : 0;
  if (n <= blk_usable(hd) && size - blk_size_for(n + room) < 64 + size / 8 && sa_blk_live(p, hd))
    return p;
  uint32_t site = SIMALLOC_SITE_NONE;
  if (room && sa_blk_live(p, hd)) {
    int saved = errno;
    site = sa_site_get(p, size, "realloc");
    errno = saved;
  }
  int done;
  if (crosses(h, n))
    done = sa_heap_usable(h, p, "realloc") ? 0 : -1;  /* a move: only p is checked */
  else
    done = sa_heap_resize_in_place(h, p, n <= PTRDIFF_MAX ? n + room : n);
  if (done < 0) {
    errno = EINVAL;
    return NULL;
  }
  if (done) {
    if (room) {
      int saved = errno;
      sa_site_resized(p, site, size, head_size(blk_head(b)));
      errno = saved;
    }
    return p;
  }
  if (n > PTRDIFF_MAX) return enomem();
  size_t old = sa_heap_usable(h, p, "realloc");
  void *q = sa_tc_malloc(n);
  if (!q) return NULL;
  memcpy(q, p, old < n ? old : n);
  sa_tc_free_moved(p);
  return q;
}

SA_API void *reallocarray(void *p, size_t count, size_t size) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) return enomem();
  return realloc(p, n);
}

static void *aligned(size_t align, size_t n) {
  if (sa_hooked()) sa_hook(SA_CALL_ALIGNED);
  if (align <= SA_ALIGN) return sa_tc_malloc(n);
  return sa_tc_aligned(align, n);
}

SA_API int posix_memalign(void **out, size_t align, size_t n) {
  if (!pow2(align) || align % sizeof(void *)) return EINVAL;
  int saved = errno;
  void *p = aligned(align, n);
  errno = saved;
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

SA_API void *aligned_alloc(size_t align, size_t n) {
  if (!pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return aligned(align, n);
}

SA_API void *memalign(size_t align, size_t n) {
  return aligned_alloc(align, n);
}

SA_API void *valloc(size_t n) {
  return aligned(4096, n);
}

SA_API void *pvalloc(size_t n) {
  size_t rounded;
  if (__builtin_add_overflow(n, 4095, &rounded)) return enomem();
  rounded &= ~(size_t)4095;
  return aligned(4096, rounded ? rounded : 4096);
}

/* glibc's extensions that report on or tune the heap: with these, a
 * program that asks glibc's malloc what it holds is told about ours. */
SA_API int malloc_trim(size_t pad) {
  int saved = errno;
  int gave = sa_process_ready() && sa_process_trim(pad);
  errno = saved;
  return gave;
}

SA_API struct mallinfo2 mallinfo2(void) {
  struct mallinfo2 mi = {0};
  sa_usage u;
  if (!sa_process_ready()) return mi;
  sa_process_usage(&u);
  mi.arena = u.system;
  mi.ordblks = u.free_blocks;
  mi.uordblks = u.in_use;
  mi.fordblks = sa_usage_free(&u);
  mi.keepcost = u.top;
  return mi;
}

static int clamp_int(size_t v) { return v > INT_MAX ? INT_MAX : (int)v; }

SA_API struct mallinfo mallinfo(void) {
  struct mallinfo2 m = mallinfo2();
  struct mallinfo mi = {0};
  mi.arena = clamp_int(m.arena);
  mi.ordblks = clamp_int(m.ordblks);
  mi.uordblks = clamp_int(m.uordblks);
  mi.fordblks = clamp_int(m.fordblks);
  mi.keepcost = clamp_int(m.keepcost);
  return mi;
}

static void to_stderr(void *ctx, const char *s, size_t n) {
  (void)ctx;
  sa_os_write(2, s, n);
}

SA_API void malloc_stats(void) {
  int saved = errno;
  if (sa_process_ready()) sa_process_report(0, to_stderr, NULL);
  errno = saved;
}

/* The one place the library writes through stdio: the caller hands it the
 * stream.  No lock is held meanwhile, so a stream that allocates its
 * buffer allocates from us as any caller would. */
static void to_stream(void *ctx, const char *s, size_t n) {
  fwrite(s, 1, n, ctx);
}

SA_API int malloc_info(int options, FILE *fp) {
  if (options != 0 || !fp) {
    errno = EINVAL;
    return -1;
  }
  if (!sa_process_ready()) {
    errno = ENOMEM;
    return -1;
  }
  sa_process_report(1, to_stream, fp);
  return 0;
}

SA_API size_t malloc_usable_size(void *p) {
  sa_count(SA_CALL_USABLE);
  if (!p) return 0;
  sa_heap *h = sa_process_owner(p, "malloc_usable_size");
  return h ? sa_heap_usable(h, p, "malloc_usable_size") : 0;
}
