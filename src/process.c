/* process.c - the process heap: lazy start-up, fork handlers, exit report,
 * and the simalloc_* API.
 *
 * One arena is reserved with a single mmap at start-up (SIMALLOC_ARENA_SIZE,
 * halved until the kernel agrees, so a small RLIMIT_AS still works) and
 * one heap covers it.  Pages cost nothing until the heap writes them. */
#include "process.h"

#include <pthread.h>

#include "fmt.h"
#include "options.h"
#include "os.h"
#include "snapshot.h"
#include "simalloc.h"

#define SA_API __attribute__((visibility("default")))

sa_heap sa_main_heap;
int sa_state;
int sa_counting;
size_t sa_calls[SA_CALL_COUNT];

static uintptr_t arena_base;
static size_t arena_size;

static void before_fork(void) {
  sa_lock_acquire(&sa_main_heap.lock);
}

static void after_fork_parent(void) {
  sa_lock_release(&sa_main_heap.lock);
}

static void after_fork_child(void) {
  sa_lock_reset(&sa_main_heap.lock);
  sa_snapshot_after_fork_child();
}

static int reserve(void) {
  size_t size = sa_option(SA_OPT_ARENA_SIZE) & ~(size_t)4095;
  for (; size >= 1 << 20; size = (size / 2) & ~(size_t)4095) {
    void *mem = sa_os_reserve(size);
    if (!mem) continue;
    if (sa_heap_init(&sa_main_heap, mem, size, 1) != 0) return -1;
    arena_base = (uintptr_t)mem;
    arena_size = size;
    return 0;
  }
  return -1;
}

__attribute__((cold, noinline)) sa_heap *sa_process_start(void) {
  int expected = SA_DOWN;
  if (__atomic_compare_exchange_n(&sa_state, &expected, SA_STARTING, 0, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE)) {
    sa_options_load();
    sa_counting = (int)sa_option(SA_OPT_STATS);
    if (reserve() != 0) {
      __atomic_store_n(&sa_state, SA_FAILED, __ATOMIC_RELEASE);
      return NULL;
    }
    sa_main_heap.release_threshold = sa_option(SA_OPT_RELEASE_THRESHOLD);
    __atomic_store_n(&sa_state, SA_READY, __ATOMIC_RELEASE);
    /* May allocate: the heap is ready by now. */
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    return &sa_main_heap;
  }
  int s;
  while ((s = __atomic_load_n(&sa_state, __ATOMIC_ACQUIRE)) == SA_STARTING)
    __builtin_ia32_pause();
  return s == SA_READY ? &sa_main_heap : NULL;
}

void sa_process_arena(uintptr_t *base, size_t *size) {
  *base = arena_base;
  *size = arena_size;
}

static void fill_stats(struct simalloc_stats *s) {
  sa_heap *h = &sa_main_heap;
  sa_lock_acquire(&h->lock);
  s->arena_size = arena_size;
  s->arena_touched = h->touched - arena_base;
  s->used_bytes = h->st.used_bytes;
  s->peak_used_bytes = h->st.peak_used;
  s->free_bytes = (h->touched - h->start) - h->st.used_bytes;
  s->largest_free = sa_heap_largest_free_locked(h);
  s->used_blocks = h->st.used_blocks;
  s->free_blocks = h->st.free_blocks;
  sa_lock_release(&h->lock);
}

static void print_stats(void) {
  struct simalloc_stats s;
  fill_stats(&s);
  char buf[512];
  sa_fmt f = SA_FMT_INIT(buf);
  sa_fmt_str(&f, "simalloc: peak used ");
  sa_fmt_size(&f, s.peak_used_bytes);
  sa_fmt_str(&f, ", used ");
  sa_fmt_size(&f, s.used_bytes);
  sa_fmt_str(&f, " in ");
  sa_fmt_u64(&f, s.used_blocks);
  sa_fmt_str(&f, " blocks, ");
  sa_fmt_u64(&f, s.free_blocks);
  sa_fmt_str(&f, " free blocks, largest free ");
  sa_fmt_size(&f, s.largest_free);
  sa_fmt_str(&f, ", arena touched ");
  sa_fmt_size(&f, s.arena_touched);
  sa_fmt_str(&f, " of ");
  sa_fmt_size(&f, s.arena_size);
  sa_fmt_str(&f, "\nsimalloc: calls: malloc ");
  static const char *const names[SA_CALL_COUNT] = {"malloc", "free", "calloc", "realloc",
                                                   "aligned", "usable_size"};
  for (int i = 0; i < SA_CALL_COUNT; i++) {
    if (i) {
      sa_fmt_str(&f, ", ");
      sa_fmt_str(&f, names[i]);
      sa_fmt_str(&f, " ");
    }
    sa_fmt_u64(&f, __atomic_load_n(&sa_calls[i], __ATOMIC_RELAXED));
  }
  sa_fmt_str(&f, "\n");
  sa_os_write(2, f.buf, f.len);
}

__attribute__((constructor)) static void process_init(void) {
  if (sa_process_heap()) sa_snapshot_start();
}

__attribute__((destructor)) static void process_exit(void) {
  if (__atomic_load_n(&sa_state, __ATOMIC_ACQUIRE) != SA_READY) return;
  sa_snapshot_stop();
  if (sa_counting) print_stats();
}

SA_API int simalloc_get_stats(struct simalloc_stats *out) {
  if (!out || !sa_process_heap()) return -1;
  fill_stats(out);
  return 0;
}

SA_API int simalloc_check(void) {
  if (!sa_process_heap()) return -1;
  sa_heap_report r = sa_heap_check(&sa_main_heap);
  if (r.ok) return 0;
  char buf[256];
  sa_fmt f = SA_FMT_INIT(buf);
  sa_fmt_str(&f, "simalloc: heap check failed: ");
  sa_fmt_str(&f, r.what);
  if (r.where) {
    sa_fmt_str(&f, " at ");
    sa_fmt_hex(&f, r.where);
  }
  sa_fmt_str(&f, "\n");
  sa_os_write(2, f.buf, f.len);
  return -1;
}

SA_API const char *simalloc_version(void) {
  return "0.1.0";
}
