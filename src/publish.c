/* publish.c - publishing the heap snapshot in shared memory.
 *
 * One thread of ours, with every signal blocked, sleeps on the segment's
 * `request` futex: a reader bumps it and wakes us, we publish and wake the
 * reader back.  Nobody asking means the thread never runs, and the
 * allocation paths never touch the segment.  The segment is named after the
 * user and the process (SIMALLOC_SNAP_NAME_FMT) and removed at exit.
 *
 * A forked child makes its own, but only once it has lived a second or two
 * and allocates (sa_snapshot_poll, from the allocation slow path): a child
 * that execs or leaves with _exit soon, as most do, would otherwise leave a
 * segment behind that nobody removes.
 */
#include <errno.h>
#include <unistd.h>

#include "fmt.h"
#include "options.h"
#include "os.h"
#include "process.h"
#include "sites.h"
#include "snapshot.h"


static struct {
  simalloc_snap_header *seg;
  size_t size;
  char name[64];
  uint64_t last_sample_s;
  uint64_t start_mono_s;
  uint32_t generation;  /* bumped when a forked child starts over */
} pub;

static void add_history(simalloc_snap_header *seg) {
  uint64_t now = sa_os_mono_coarse_s();
  if (!seg->history_cap || (seg->history_len && now == pub.last_sample_s)) return;
  pub.last_sample_s = now;
  simalloc_snap_sample *ring = SECTION(seg, simalloc_snap_sample, history_offset);
  uint32_t slot;
  if (seg->history_len < seg->history_cap) {
    slot = (seg->history_head + seg->history_len++) % seg->history_cap;
  } else {
    slot = seg->history_head;
    seg->history_head = (seg->history_head + 1) % seg->history_cap;
  }
  simalloc_snap_sample *s = &ring[slot];
  s->time_s = now - pub.start_mono_s;
  s->used_bytes = seg->used_bytes;
  s->free_bytes = seg->free_bytes;
  s->rss_bytes = seg->rss_bytes;
}

static void publish(simalloc_snap_header *seg) {
  sa_arena *a = &sa_arena_g;
  sa_heap *heaps[SA_MAX_HEAPS];
  int n = sa_process_heap_list(heaps);
  __atomic_store_n(&seg->seq, seg->seq + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  sa_snap_fill_process(seg, heaps, n, a->base, a->size);
  sa_sites_snap(seg);
  seg->rss_bytes = sa_os_rss();
  seg->publish_time_ns = sa_os_now_ns();
  seg->publish_count++;
  add_history(seg);
  __atomic_store_n(&seg->seq, seg->seq + 1, __ATOMIC_RELEASE);
}

static void *publisher(void *arg) {
  simalloc_snap_header *seg = arg;
  uint32_t gen = pub.generation;
  long interval = (long)sa_option(SA_OPT_SNAPSHOT_INTERVAL_MS);
  uint32_t served = __atomic_load_n(&seg->served, __ATOMIC_ACQUIRE);
  while (gen == __atomic_load_n(&pub.generation, __ATOMIC_ACQUIRE)) {
    uint32_t req = __atomic_load_n(&seg->request, __ATOMIC_ACQUIRE);
    if (req == served) {
      sa_os_futex_wait(&seg->request, req, 1, interval ? interval : -1);
      req = __atomic_load_n(&seg->request, __ATOMIC_ACQUIRE);
      if (req == served && !interval) continue;  /* spurious wake-up */
    }
    if (gen != __atomic_load_n(&pub.generation, __ATOMIC_ACQUIRE)) break;
    publish(seg);
    served = req;
    __atomic_store_n(&seg->served, req, __ATOMIC_RELEASE);
    sa_os_futex_wake(&seg->seq, 0x7fffffff, 1);
  }
  return NULL;
}

/* The segment name for this process: SIMALLOC_SNAP_NAME_FMT. */
static void make_name(char *buf, size_t cap) {
  sa_fmt f = {buf, 0, cap - 1};
  sa_fmt_str(&f, "/simalloc-");
  sa_fmt_u64(&f, sa_os_uid());
  sa_fmt_str(&f, "-");
  sa_fmt_u64(&f, sa_os_pid());
  buf[f.len] = 0;
}

void sa_snapshot_start(void) {
  if (!sa_option(SA_OPT_SNAPSHOT) || pub.seg) return;
  sa_snap_caps caps = {4096, 300, sa_option(SA_OPT_SNAPSHOT_BLOCKS), sa_sites_capacity(),
                       sa_sites_capacity() ? 256 : 0};
  make_name(pub.name, sizeof pub.name);
  size_t size = sa_snap_size(&caps);
  simalloc_snap_header *seg = sa_os_shm_create(pub.name, size);
  if (!seg && errno == EEXIST) {
    /* Ours from before an exec (same pid), or left by a dead process. */
    sa_os_shm_unlink(pub.name);
    seg = sa_os_shm_create(pub.name, size);
  }
  if (!seg) return;
  sa_snap_layout(seg, &caps);
  seg->pid = (int64_t)sa_os_pid();
  seg->start_time_ns = sa_os_now_ns();
  pub.start_mono_s = sa_os_mono_coarse_s();
  sa_os_exe_name(seg->exe, sizeof seg->exe);
  /* No walk yet: the first reader's request brings the first snapshot. */
  pub.seg = seg;
  pub.size = size;
  if (sa_os_thread_start(publisher, seg) != 0) sa_snapshot_stop();
}

void sa_snapshot_stop(void) {
  if (!pub.seg) return;
  __atomic_fetch_add(&pub.generation, 1, __ATOMIC_RELEASE);
  sa_os_shm_unlink(pub.name);
  /* The mapping stays: the publisher may still be finishing a snapshot. */
  pub.seg = NULL;
}

int sa_snapshot_pending;
static uint64_t pending_until;  /* the coarse second a forked child publishes from */

void sa_snapshot_after_fork_child(void) {
  if (!pub.seg) return;
  /* The parent's segment and thread are the parent's: forget both. */
  __atomic_fetch_add(&pub.generation, 1, __ATOMIC_RELEASE);
  sa_os_shm_unmap(pub.seg, pub.size);
  pub.seg = NULL;
  pending_until = sa_os_mono_coarse_s() + 2;
  __atomic_store_n(&sa_snapshot_pending, 1, __ATOMIC_RELEASE);
}

void sa_snapshot_poll(void) {
  static unsigned calls;  /* racy, and only a pace: the clock every 64 calls */
  if (++calls % 64 || sa_os_mono_coarse_s() < pending_until) return;
  /* Only one thread starts it, and its own allocations do not come back. */
  if (__atomic_exchange_n(&sa_snapshot_pending, 0, __ATOMIC_ACQ_REL)) sa_snapshot_start();
}
