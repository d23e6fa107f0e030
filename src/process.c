/* process.c - the process's arena and heaps: lazy start-up, fork handlers,
 * the exit report, and the simalloc_* API.
 *
 * One arena is reserved with a single mmap (SIMALLOC_ARENA_SIZE, halved
 * until the kernel agrees, so a small RLIMIT_AS still works) and cut into
 * power-of-two slices, one heap each, all sharing one header key: the
 * SIMALLOC_HEAPS heaps of the threads, and one for large blocks (process.h).
 * Pages cost nothing until a heap writes them. */
#include "process.h"

#include <stdlib.h>

#include "fmt.h"
#include "options.h"
#include "os.h"
#include "simalloc.h"
#include "sites.h"
#include "snapshot.h"
#include "tcache.h"

#define SA_API __attribute__((visibility("default")))
#define MIN_SLICE ((size_t)64 << 20)
#define LARGE_MIN ((size_t)4 << 10)  /* above what the thread caches hold */

/* In a section of its own, after every other variable of the library
 * (process.c is linked last): a program touches only the first few of its
 * 100 KiB of heap records, and the small variables then share the page
 * of .data instead of one page beyond it. */
sa_arena sa_arena_g __attribute__((section(".bss.sa_arena")));
int sa_state;
int sa_counting;
size_t sa_calls[SA_CALL_COUNT];
size_t sa_check_every;
int sa_hooks;
static size_t check_calls;
static unsigned next_heap;
static int stats_fd = 2;  /* where SIMALLOC_STATS reports */

void sa_tc_init_process(uint64_t key);

/* Fork takes every heap lock, so that the child gets consistent heaps.  A
 * lock this thread already holds (fork called from a signal handler that
 * interrupted it inside the allocator) is left alone: in parent and child
 * alike, the interrupted code finishes and releases it.
 *
 * glibc's fork takes its stdio list lock after these handlers, and
 * fflush(NULL) holds that lock while it waits for a stream whose holder may
 * be waiting for a heap lock (getline growing its buffer): so we take the
 * list lock first (it is recursive), and give it back in the parent; in the
 * child glibc resets it itself. */
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);
static char fork_took[SA_MAX_HEAPS], fork_took_growth;
static sa_lock growth_lock;  /* setting up one more heap */

static void before_fork(void) {
  _IO_list_lock();
  sa_sites_fork_prepare();
  sa_tc_registry_lock();
  fork_took_growth = (char)sa_lock_for_fork(&growth_lock);
  for (int i = 0; i < sa_arena_g.nheaps; i++)
    fork_took[i] = (char)sa_lock_for_fork(&sa_arena_g.heaps[i].lock);
}

static void after_fork_parent(void) {
  for (int i = sa_arena_g.nheaps - 1; i >= 0; i--)
    if (fork_took[i]) sa_lock_release(&sa_arena_g.heaps[i].lock);
  if (fork_took_growth) sa_lock_release(&growth_lock);
  sa_tc_registry_unlock();
  sa_sites_fork_parent();
  _IO_list_unlock();
}

static void after_fork_child(void) {
  for (int i = 0; i < sa_arena_g.nheaps; i++)
    if (fork_took[i]) sa_lock_reset(&sa_arena_g.heaps[i].lock);
  if (fork_took_growth) sa_lock_reset(&growth_lock);
  sa_tc_after_fork_child();
  sa_sites_after_fork_child();
  sa_snapshot_after_fork_child();
}


/* Sets up heap i. */
static int set_up_heap(int i) {
  sa_arena *a = &sa_arena_g;
  sa_heap *h = &a->heaps[i];
  if (sa_heap_init_keyed(h, (char *)a->base + ((size_t)i << a->shift), (size_t)1 << a->shift, 1,
                         a->key))
    return -1;
  h->release_threshold = sa_option(SA_OPT_RELEASE_THRESHOLD);
  h->retain = sa_option(SA_OPT_RETAIN);
  h->decay = sa_option(SA_OPT_DECAY);
  h->hold = 1;
  __atomic_store_n(&a->up[i], 1, __ATOMIC_RELEASE);
  if (i >= a->nheaps) __atomic_store_n(&a->nheaps, i + 1, __ATOMIC_RELEASE);
  return 0;
}

/* Sets up heap i and the threads' heaps below it (the large blocks' heap
 * only when it is asked for). */
__attribute__((cold, noinline)) static void grow(int i) {
  sa_arena *a = &sa_arena_g;
  sa_lock_acquire(&growth_lock);
  for (int k = 0; k <= i; k++)
    if (!a->up[k] && (k == i || !sa_is_large_heap(&a->heaps[k])) && set_up_heap(k) != 0)
      break;
  sa_lock_release(&growth_lock);
}

sa_heap *sa_process_heap(int i) {
  if (!sa_process_heap_up(i)) grow(i);
  return &sa_arena_g.heaps[sa_process_heap_up(i) ? i : 0];
}

static int reserve(void) {
  sa_arena *a = &sa_arena_g;
  size_t size = sa_option(SA_OPT_ARENA_SIZE) & ~(size_t)4095;
  void *mem;
  while ((mem = sa_os_reserve(size)) == NULL) {
    size = (size / 2) & ~(size_t)4095;
    if (size < ((size_t)1 << 20)) return -1;
  }
  int spread = (int)sa_option(SA_OPT_HEAPS);
  if (spread <= 0) spread = sa_os_cpu_count();
  size_t large = sa_option(SA_OPT_LARGE_THRESHOLD);
  if (large && large < LARGE_MIN) large = LARGE_MIN;
  int n = spread + (large != 0);
  if (n > SA_MAX_HEAPS) n = SA_MAX_HEAPS;
  while (n > 1 && size / (size_t)n < MIN_SLICE) n--;
  if (n == 1) large = 0;  /* no room for a heap of its own */
  unsigned shift = 63 - (unsigned)__builtin_clzll(size / (size_t)n);
  a->base = (uintptr_t)mem;
  a->size = size;
  a->shift = shift;
  a->slices = n;
  a->spread = n - (large != 0);
  a->large_min = large;
  a->span = (size_t)n << shift;
  a->key = sa_os_random64();
  return set_up_heap(0);
}

__attribute__((cold, noinline)) int sa_process_start(void) {
  int expected = SA_DOWN;
  if (__atomic_compare_exchange_n(&sa_state, &expected, SA_STARTING, 0, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE)) {
    sa_options_load();
    sa_counting = (int)sa_option(SA_OPT_STATS);
    sa_check_every = sa_option(SA_OPT_CHECK);  /* sa_check_slow waits for SA_READY */
    sa_hooks = sa_counting || sa_check_every;
    sa_warn_only = sa_option(SA_OPT_ON_ERROR) == 1;
    if (sa_counting) {
      int fd = sa_os_dup_stderr();  /* some programs close stderr before exit */
      if (fd >= 0) stats_fd = fd;
    }
    if (reserve() != 0) {
      __atomic_store_n(&sa_state, SA_FAILED, __ATOMIC_RELEASE);
      return -1;
    }
    sa_tc_init_process(sa_arena_g.key);
    __atomic_store_n(&sa_state, SA_READY, __ATOMIC_RELEASE);
    sa_sites_init();
    /* May allocate: the heaps are ready by now. */
    sa_os_atfork(before_fork, after_fork_parent, after_fork_child);
    return 0;
  }
  int s;
  while ((s = __atomic_load_n(&sa_state, __ATOMIC_ACQUIRE)) == SA_STARTING)
    __builtin_ia32_pause();
  return s == SA_READY ? 0 : -1;
}

int sa_process_open_large(size_t n) {
  static size_t asked;
  if (__atomic_add_fetch(&asked, n, __ATOMIC_RELAXED) < SA_LARGE_OPENING) return 0;
  __atomic_store_n(&sa_arena_g.large_open, 1, __ATOMIC_RELAXED);
  return 1;
}

sa_heap *sa_process_pick_heap(void) {
  unsigned i = __atomic_fetch_add(&next_heap, 1, __ATOMIC_RELAXED) % (unsigned)sa_arena_g.spread;
  /* Past heap 0, skip the large blocks' heap. */
  return sa_process_heap((int)i + (i > 0 && sa_arena_g.large_min ? 1 : 0));
}

int sa_process_heaps_shared(void) {
  return __atomic_load_n(&next_heap, __ATOMIC_RELAXED) > (unsigned)sa_arena_g.spread;
}

int sa_process_heap_list(sa_heap *out[SA_MAX_HEAPS]) {
  int n = 0;
  for (int i = 0, top = sa_process_heaps(); i < top; i++)
    if (sa_process_heap_up(i)) out[n++] = &sa_arena_g.heaps[i];
  return n;
}

/* Fills *s; returns how many heaps it summed. */
static int fill_stats(struct simalloc_stats *s) {
  *s = (struct simalloc_stats){0};
  s->arena_size = sa_arena_g.size;
  sa_heap *heaps[SA_MAX_HEAPS];
  int n = sa_process_heap_list(heaps);
  for (int i = 0; i < n; i++) {
    sa_heap *h = heaps[i];
    sa_lock_acquire(&h->lock);
    s->arena_touched += h->reached - h->start;
    s->used_bytes += h->st.used_bytes;
    s->peak_used_bytes += h->st.peak_used;
    s->free_bytes += ((h->top ? h->top : h->epilogue) - h->start) - h->st.used_bytes;
    size_t largest = sa_heap_largest_free_locked(h);
    if (largest > s->largest_free) s->largest_free = largest;
    s->used_blocks += h->st.used_blocks;
    s->free_blocks += h->st.free_blocks;
    sa_lock_release(&h->lock);
  }
  return n;
}

static void print_stats(void) {
  struct simalloc_stats s;
  int heaps = fill_stats(&s);
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
  sa_fmt_str(&f, " in ");
  sa_fmt_u64(&f, (uint64_t)heaps);
  sa_fmt_str(&f, heaps == 1 ? " heap" : " heaps");
  static const char *const names[SA_CALL_COUNT] = {
      "malloc", "free", "calloc", "realloc", "aligned", "usable_size",
      "cache refills", "cache flushes", "remote frees"};
  sa_fmt_str(&f, "\nsimalloc: calls:");
  for (int i = 0; i < SA_CALL_COUNT; i++) {
    sa_fmt_str(&f, i ? ", " : " ");
    sa_fmt_str(&f, names[i]);
    sa_fmt_str(&f, " ");
    sa_fmt_u64(&f, __atomic_load_n(&sa_calls[i], __ATOMIC_RELAXED));
  }
  sa_fmt_str(&f, "\n");
  sa_os_write(stats_fd, f.buf, f.len);
}

__attribute__((constructor)) static void process_init(void) {
  if (!sa_process_ready()) return;
  sa_sites_arm();
  sa_tc.sample_left = sa_sites_countdown();  /* this thread's first sample */
  sa_snapshot_start();
}

__attribute__((destructor)) static void process_exit(void) {
  if (__atomic_load_n(&sa_state, __ATOMIC_ACQUIRE) != SA_READY) return;
  sa_tc_settle_held();
  sa_snapshot_stop();
  sa_sites_report_leaks();
  if (sa_counting) print_stats();
}

int sa_process_trim(size_t pad) {
  sa_tc_trim();
  sa_heap *heaps[SA_MAX_HEAPS];
  int gave = 0;
  for (int i = 0, n = sa_process_heap_list(heaps); i < n; i++) gave |= sa_heap_trim(heaps[i], pad);
  return gave;
}

static sa_usage heap_usage(sa_heap *h) {
  sa_lock_acquire(&h->lock);
  uintptr_t touched = __atomic_load_n(&h->touched, __ATOMIC_RELAXED);
  sa_usage u = {touched - h->start, h->reached - h->start, h->st.used_bytes,
                h->top ? touched - h->top : 0, h->st.free_blocks};
  sa_lock_release(&h->lock);
  return u;
}

static void add_usage(sa_usage *total, const sa_usage *u) {
  total->system += u->system;
  total->system_max += u->system_max;
  total->in_use += u->in_use;
  total->top += u->top;
  total->free_blocks += u->free_blocks;
}

void sa_process_usage(sa_usage *total) {
  *total = (sa_usage){0};
  sa_heap *heaps[SA_MAX_HEAPS];
  for (int i = 0, n = sa_process_heap_list(heaps); i < n; i++) {
    sa_usage u = heap_usage(heaps[i]);
    add_usage(total, &u);
  }
}

/* "LABEL N\n", the number right-aligned as glibc prints it. */
static void text_line(sa_fmt *f, const char *label, size_t v) {
  sa_fmt_str(f, label);
  sa_fmt_u64_right(f, v, 10);
  sa_fmt_str(f, "\n");
}

/* <TAG type="TYPE" size="N"/> */
static void xml_size(sa_fmt *f, const char *tag, const char *type, size_t v) {
  sa_fmt_str(f, "<");
  sa_fmt_str(f, tag);
  sa_fmt_str(f, " type=\"");
  sa_fmt_str(f, type);
  sa_fmt_str(f, "\" size=\"");
  sa_fmt_u64(f, v);
  sa_fmt_str(f, "\"/>\n");
}

/* What both reports say of a heap, or of all of them. */
static void usage_lines(sa_fmt *f, int xml, const sa_usage *u) {
  if (!xml) {
    text_line(f, "system bytes     = ", u->system);
    text_line(f, "in use bytes     = ", u->in_use);
    return;
  }
  sa_fmt_str(f, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\" count=\"");
  sa_fmt_u64(f, u->free_blocks);
  sa_fmt_str(f, "\" size=\"");
  sa_fmt_u64(f, sa_usage_free(u));
  sa_fmt_str(f, "\"/>\n");
}

static void system_lines(sa_fmt *f, const sa_usage *u) {
  xml_size(f, "system", "current", u->system);
  xml_size(f, "system", "max", u->system_max);
  xml_size(f, "aspace", "total", u->system);
  xml_size(f, "aspace", "mprotect", u->system);
}

void sa_process_report(int xml, sa_sink out, void *ctx) {
  sa_heap *heaps[SA_MAX_HEAPS];
  sa_usage total = {0};
  static const char head[] = "<malloc version=\"1\">\n";
  if (xml) out(ctx, head, sizeof head - 1);
  for (int i = 0, n = sa_process_heap_list(heaps); i < n; i++) {
    char buf[512];
    sa_fmt f = SA_FMT_INIT(buf);
    sa_usage u = heap_usage(heaps[i]);
    add_usage(&total, &u);
    sa_fmt_str(&f, xml ? "<heap nr=\"" : "Arena ");
    sa_fmt_u64(&f, (uint64_t)i);
    sa_fmt_str(&f, xml ? "\">\n<sizes>\n</sizes>\n" : ":\n");
    usage_lines(&f, xml, &u);
    if (xml) {
      system_lines(&f, &u);
      sa_fmt_str(&f, "</heap>\n");
    }
    out(ctx, f.buf, f.len);
  }
  char buf[512];
  sa_fmt f = SA_FMT_INIT(buf);
  if (!xml) sa_fmt_str(&f, "Total (incl. mmap):\n");
  usage_lines(&f, xml, &total);
  if (xml) {
    sa_fmt_str(&f, "<total type=\"mmap\" count=\"0\" size=\"0\"/>\n");
    system_lines(&f, &total);
    sa_fmt_str(&f, "</malloc>\n");
  } else {
    text_line(&f, "max mmap regions = ", 0);
    text_line(&f, "max mmap bytes   = ", 0);
  }
  out(ctx, f.buf, f.len);
}

SA_API int simalloc_get_stats(struct simalloc_stats *out) {
  if (!out || !sa_process_ready()) return -1;
  fill_stats(out);
  return 0;
}

/* Verifies every heap; on the first failure writes one line and returns -1. */
static int check_all(void) {
  sa_heap *heaps[SA_MAX_HEAPS];
  for (int i = 0, n = sa_process_heap_list(heaps); i < n; i++) {
    sa_heap_report r = sa_heap_check(heaps[i]);
    if (r.ok) continue;
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
  return 0;
}

void sa_check_slow(void) {
  if (__atomic_add_fetch(&check_calls, 1, __ATOMIC_RELAXED) % sa_check_every) return;
  if (sa_state == SA_READY && check_all() != 0) sa_abort();  /* a damaged heap cannot go on */
}

SA_API int simalloc_check(void) {
  if (!sa_process_ready()) return -1;
  return check_all();
}

SA_API const char *simalloc_version(void) {
  return SA_VERSION;
}
