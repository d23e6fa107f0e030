/* snapread.c - the snapshot reader: opening, copying, validating.
 *
 * The reader never dereferences the body of another process's segment.  It
 * copies the segment with pread(2), so a segment truncated under our feet
 * gives a short read instead of SIGBUS, and checks the copy.  The only
 * direct accesses are to the request/served/seq words of the first page,
 * made through a small mapping after fstat showed the page exists, and
 * guarded by a SIGBUS handler all the same.
 *
 * Invariant of a view handed out: every count is within its capacity, every
 * section and every block, hole and heap range lies inside the copy or the
 * arena, so that the renderer can index without checking again.
 */
#define _GNU_SOURCE
#include "snapread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define COPY_TRIES 100   /* seqlock retries before giving up */

__attribute__((format(printf, 3, 4)))
static enum snap_status fail(snap_error *err, enum snap_status st,
                             const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->status = st;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return st;
}

#define corrupt(err, ...) fail(err, SNAP_ECORRUPT, "corrupt snapshot: " __VA_ARGS__)

/* ---- validation -------------------------------------------------------- */

/* A section of n entries of esz bytes at off fits in [hdr, seg). */
static int section_fits(uint64_t off, uint64_t n, uint64_t esz, uint64_t hdr,
                        uint64_t seg) {
  if (n == 0)
    return off <= seg;  /* empty, but its pointer must still be in bounds */
  if (off % 8 != 0 || off < hdr || off > seg)
    return 0;
  return n <= (seg - off) / esz;
}

/* [off, off + size) lies in [0, limit). */
static int range_fits(uint64_t off, uint64_t size, uint64_t limit) {
  return off <= limit && size <= limit - off;
}

static enum snap_status check_header(const simalloc_snap_header *h, size_t len,
                                     snap_error *err) {
  if (h->magic != SIMALLOC_SNAP_MAGIC)
    return corrupt(err, "bad magic");
  if (h->version != SIMALLOC_SNAP_VERSION)
    return fail(err, SNAP_EVERSION,
                "incompatible snapshot version %u (this reader speaks %u)",
                h->version, SIMALLOC_SNAP_VERSION);
  if (h->header_size < sizeof *h || h->header_size > h->segment_size)
    return corrupt(err, "header size %u", h->header_size);
  if (h->segment_size > len)
    return corrupt(err, "segment holds %zu bytes, header says %llu", len,
                   (unsigned long long)h->segment_size);
  if (h->seq % 2 != 0)
    return corrupt(err, "caught in the middle of an update");
  if (memchr(h->exe, '\0', sizeof h->exe) == NULL)
    return corrupt(err, "executable name not terminated");
  return SNAP_OK;
}

static enum snap_status check_counts(const simalloc_snap_header *h,
                                     snap_error *err) {
  if (h->map_cells > h->map_cap)
    return corrupt(err, "map cells %u > capacity %u", h->map_cells, h->map_cap);
  if (h->hist_classes > SNAP_HIST_CLASSES)
    return corrupt(err, "%u histogram classes", h->hist_classes);
  if (h->history_len > h->history_cap)
    return corrupt(err, "history length %u > capacity %u", h->history_len,
                   h->history_cap);
  if (h->history_cap > 0 && h->history_head >= h->history_cap)
    return corrupt(err, "history head %u", h->history_head);
  if (h->block_count > h->blocks_cap)
    return corrupt(err, "block count %llu > capacity %llu",
                   (unsigned long long)h->block_count,
                   (unsigned long long)h->blocks_cap);
  if (h->block_total < h->block_count)
    return corrupt(err, "block total below block count");
  if (h->heap_count > SIMALLOC_SNAP_HEAPS)
    return corrupt(err, "%u heaps", h->heap_count);
  if (h->hole_count > SIMALLOC_SNAP_HOLES)
    return corrupt(err, "%u holes", h->hole_count);
  if (h->arena_touched > h->arena_size)
    return corrupt(err, "touched bytes beyond the arena");
  if (h->fragmentation_ppm > 1000000)
    return corrupt(err, "fragmentation above 100%%");
  if (h->site_count > h->sites_cap)
    return corrupt(err, "site count %u > capacity %u", h->site_count, h->sites_cap);
  if (h->module_count > h->modules_cap)
    return corrupt(err, "module count %u > capacity %u", h->module_count, h->modules_cap);
  if (h->sites_mode > SIMALLOC_SITES_ALL)
    return corrupt(err, "sites mode %u", h->sites_mode);
  if (h->site_depth > SIMALLOC_SITE_DEPTH)
    return corrupt(err, "site depth %u", h->site_depth);
  return SNAP_OK;
}

static enum snap_status check_sections(const simalloc_snap_header *h,
                                       snap_error *err) {
  uint64_t hs = h->header_size, seg = h->segment_size;

  if (!section_fits(h->map_offset, h->map_cap, sizeof(simalloc_snap_cell), hs, seg))
    return corrupt(err, "map outside the segment");
  if (!section_fits(h->hist_offset, h->hist_classes, sizeof(simalloc_snap_hist), hs, seg))
    return corrupt(err, "histogram outside the segment");
  if (!section_fits(h->history_offset, h->history_cap,
                    sizeof(simalloc_snap_sample), hs, seg))
    return corrupt(err, "history outside the segment");
  if (!section_fits(h->blocks_offset, h->blocks_cap, sizeof(simalloc_snap_block), hs, seg))
    return corrupt(err, "block list outside the segment");
  if (!section_fits(h->sites_offset, h->sites_cap, sizeof(simalloc_snap_site), hs, seg))
    return corrupt(err, "site table outside the segment");
  if (!section_fits(h->modules_offset, h->modules_cap, sizeof(simalloc_snap_module), hs, seg))
    return corrupt(err, "module list outside the segment");
  if (h->map_cells > 0 &&
      (h->map_cell_bytes == 0 || h->map_cell_bytes > UINT64_MAX / h->map_cells))
    return corrupt(err, "map cell size %llu", (unsigned long long)h->map_cell_bytes);
  return SNAP_OK;
}

static enum snap_status check_sites(const snap_view *v, snap_error *err) {
  const simalloc_snap_header *h = v->h;

  for (uint32_t i = 0; i < h->site_count; i++) {
    const simalloc_snap_site *s = &v->sites[i];
    if (s->id != i)
      return corrupt(err, "site %u has id %u", i, s->id);
    if (s->frame_count > SIMALLOC_SITE_DEPTH)
      return corrupt(err, "site %u has %u frames", i, s->frame_count);
  }
  for (uint32_t i = 0; i < h->module_count; i++) {
    const simalloc_snap_module *m = &v->modules[i];
    if (m->start > m->end)
      return corrupt(err, "module %u ends before it starts", i);
    if (memchr(m->path, '\0', sizeof m->path) == NULL)
      return corrupt(err, "module %u path not terminated", i);
  }
  return SNAP_OK;
}

static enum snap_status check_entries(const snap_view *v, snap_error *err) {
  const simalloc_snap_header *h = v->h;

  for (uint32_t i = 0; i < h->heap_count; i++) {
    const simalloc_snap_heap *hp = &h->heaps[i];
    if (hp->start > hp->end || hp->end > h->arena_size)
      return corrupt(err, "heap %u outside the arena", i);
    if (hp->map_start > UINT64_MAX - (hp->end - hp->start))
      return corrupt(err, "heap %u outside the map", i);
  }
  for (uint32_t i = 0; i < h->hole_count; i++)
    if (!range_fits(h->holes[i].offset, h->holes[i].size, h->arena_size))
      return corrupt(err, "hole %u outside the arena", i);
  for (uint32_t i = 0; i < h->map_cells; i++) {
    const simalloc_snap_cell *c = &v->map[i];
    if (c->used > h->map_cell_bytes || c->free > h->map_cell_bytes - c->used ||
        c->cached > h->map_cell_bytes - c->used - c->free)
      return corrupt(err, "map cell %u holds more than its size", i);
  }
  for (uint64_t i = 0; i < h->block_count; i++) {
    const simalloc_snap_block *b = &v->blocks[i];
    if (snap_block_state(b) > SIMALLOC_SNAP_CACHED)
      return corrupt(err, "block %llu has state %u", (unsigned long long)i,
                     snap_block_state(b));
    if (!range_fits(b->offset, snap_block_size(b), h->arena_size))
      return corrupt(err, "block %llu outside the arena", (unsigned long long)i);
    if (b->site != SIMALLOC_SITE_NONE && b->site >= h->site_count)
      return corrupt(err, "block %llu has site %u of %u", (unsigned long long)i, b->site,
                     h->site_count);
  }
  return check_sites(v, err);
}

/* Takes ownership of buf (malloc'd, len bytes) on success and on failure. */
static enum snap_status adopt(snap_view *v, unsigned char *buf, size_t len,
                              snap_error *err) {
  enum snap_status st;

  memset(v, 0, sizeof *v);
  if (len < sizeof(simalloc_snap_header)) {
    free(buf);
    return corrupt(err, "%zu bytes is shorter than the header", len);
  }
  v->buf = buf;
  v->len = len;
  v->h = (const simalloc_snap_header *)buf;
  st = check_header(v->h, len, err);
  if (st == SNAP_OK)
    st = check_counts(v->h, err);
  if (st == SNAP_OK)
    st = check_sections(v->h, err);
  if (st == SNAP_OK) {
    v->map = (const void *)(buf + v->h->map_offset);
    v->hist = (const void *)(buf + v->h->hist_offset);
    v->history = (const void *)(buf + v->h->history_offset);
    v->blocks = (const void *)(buf + v->h->blocks_offset);
    v->sites = (const void *)(buf + v->h->sites_offset);
    v->modules = (const void *)(buf + v->h->modules_offset);
    st = check_entries(v, err);
  }
  if (st != SNAP_OK)
    snap_view_free(v);
  return st;
}

enum snap_status snap_view_from_bytes(snap_view *v, const void *buf, size_t len,
                                      snap_error *err) {
  unsigned char *copy;

  memset(v, 0, sizeof *v);
  if (buf == NULL || len < sizeof(simalloc_snap_header))
    return corrupt(err, "%zu bytes is shorter than the header", buf ? len : 0);
  if (len > SNAP_MAX_SEGMENT)
    return corrupt(err, "segment of %zu bytes is too large", len);
  copy = malloc(len);
  if (copy == NULL)
    return fail(err, SNAP_ESYS, "out of memory copying %zu bytes", len);
  memcpy(copy, buf, len);
  return adopt(v, copy, len, err);
}

void snap_view_free(snap_view *v) {
  free(v->buf);
  memset(v, 0, sizeof *v);
}

const simalloc_snap_module *snap_module_of(const snap_view *v, uint64_t a) {
  for (uint32_t i = 0; i < v->h->module_count; i++)
    if (a >= v->modules[i].start && a < v->modules[i].end)
      return &v->modules[i];
  return NULL;
}

long snap_history_newest(const snap_view *v) {
  const simalloc_snap_header *h = v->h;
  if (h->history_len == 0 || h->history_cap == 0)
    return -1;
  return (long)(((uint64_t)h->history_head + h->history_len - 1) % h->history_cap);
}

void snap_segment_name(char *out, size_t outsz, pid_t pid) {
  snprintf(out, outsz, SIMALLOC_SNAP_NAME_FMT, (unsigned)getuid(), (int)pid);
}

/* ---- the fresh-snapshot request ----------------------------------------- */

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig) {
  (void)sig;
  siglongjmp(bus_jmp, 1);
}

static long futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts) {
  return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Increments request, wakes the writer and waits until served catches up.
 * Returns 1 if the answer came, 0 if not (or the page vanished). */
static int ask_fresh(simalloc_snap_header *m, int wait_ms) {
  _Atomic uint32_t *req = (_Atomic uint32_t *)&m->request;
  _Atomic uint32_t *served = (_Atomic uint32_t *)&m->served;
  _Atomic uint32_t *seq = (_Atomic uint32_t *)&m->seq;
  uint64_t deadline = now_ms() + (uint64_t)wait_ms;
  uint64_t hard_deadline = deadline + SNAP_BUSY_WAIT_MS;
  uint32_t mine = atomic_fetch_add(req, 1) + 1;

  futex(&m->request, FUTEX_WAKE, 1, NULL);
  for (;;) {
    if ((int32_t)(atomic_load(served) - mine) >= 0)
      return 1;
    uint64_t now = now_ms();
    /* A writer in the middle of publishing (seq odd) has our request in
     * hand: a large heap takes a while to walk, so give it longer. */
    if (now >= deadline && atomic_load(seq) % 2 != 0 && now < hard_deadline)
      deadline = now + 10;
    if (now >= deadline)
      return 0;
    uint64_t slice = deadline - now < 10 ? deadline - now : 10;
    struct timespec ts = {0, (long)slice * 1000000L};
    futex(&m->seq, FUTEX_WAIT, atomic_load(seq), &ts);
  }
}

/* Maps the first page of fd and runs ask_fresh under a SIGBUS guard. */
static int request_fresh(int fd, int wait_ms) {
  struct sigaction sa, old;
  volatile int answered = 0;
  void *m = mmap(NULL, sizeof(simalloc_snap_header), PROT_READ | PROT_WRITE,
                 MAP_SHARED, fd, 0);

  if (m == MAP_FAILED)
    return 0;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigbus;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &old);
  if (sigsetjmp(bus_jmp, 1) == 0)
    answered = ask_fresh(m, wait_ms);
  sigaction(SIGBUS, &old, NULL);
  munmap(m, sizeof(simalloc_snap_header));
  return answered;
}

/* ---- copying ------------------------------------------------------------ */

static ssize_t pread_full(int fd, void *buf, size_t len, off_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      break;
    got += (size_t)n;
  }
  return (ssize_t)got;
}

static int read_seq(int fd, uint32_t *seq) {
  return pread_full(fd, seq, sizeof *seq, offsetof(simalloc_snap_header, seq)) ==
                 (ssize_t)sizeof *seq
             ? 0
             : -1;
}

static void pause_briefly(void) {
  struct timespec ts = {0, 200000};   /* 0.2 ms */
  nanosleep(&ts, NULL);
}

static enum snap_status segment_size(int fd, size_t *size, snap_error *err) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return fail(err, SNAP_ESYS, "fstat: %s", strerror(errno));
  if ((uint64_t)st.st_size < sizeof(simalloc_snap_header))
    return corrupt(err, "segment of %lld bytes is shorter than the header",
                   (long long)st.st_size);
  if ((uint64_t)st.st_size > SNAP_MAX_SEGMENT)
    return corrupt(err, "segment of %lld bytes is too large", (long long)st.st_size);
  *size = (size_t)st.st_size;
  return SNAP_OK;
}

/* One attempt at a consistent copy: 1 on success, 0 to retry. */
static int copy_once(int fd, unsigned char *buf, size_t size, size_t *got) {
  uint32_t s1, s2;
  ssize_t n;

  if (read_seq(fd, &s1) != 0 || s1 % 2 != 0)
    return 0;
  n = pread_full(fd, buf, size, 0);
  if (n < 0 || read_seq(fd, &s2) != 0 || s1 != s2)
    return 0;
  *got = (size_t)n;
  return 1;
}

static enum snap_status copy_segment(int fd, unsigned char **out, size_t *outlen,
                                     snap_error *err) {
  for (int attempt = 0; attempt < COPY_TRIES; attempt++) {
    size_t size, got = 0;
    enum snap_status st = segment_size(fd, &size, err);
    if (st != SNAP_OK)
      return st;
    unsigned char *buf = malloc(size);
    if (buf == NULL)
      return fail(err, SNAP_ESYS, "out of memory copying %zu bytes", size);
    if (copy_once(fd, buf, size, &got)) {
      const simalloc_snap_header *h = (const void *)buf;
      /* A segment that grew between fstat and pread: look again. */
      int grew = got == size && got >= sizeof *h && h->magic == SIMALLOC_SNAP_MAGIC &&
                 h->segment_size > got && h->segment_size <= SNAP_MAX_SEGMENT;
      if (!grew || attempt + 1 == COPY_TRIES) {
        *out = buf;
        *outlen = got;
        return SNAP_OK;
      }
    }
    free(buf);
    pause_briefly();
  }
  return corrupt(err, "the segment never held still long enough to copy");
}

/* ---- opening ------------------------------------------------------------ */

static enum snap_status check_owner(int fd, snap_error *err) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return fail(err, SNAP_ESYS, "fstat: %s", strerror(errno));
  if (!S_ISREG(st.st_mode))
    return fail(err, SNAP_EPERM, "permission denied: the segment is not a regular file");
  if (st.st_uid != getuid())
    return fail(err, SNAP_EPERM, "permission denied: the segment belongs to uid %u",
                (unsigned)st.st_uid);
  if ((st.st_mode & 077) != 0)
    return fail(err, SNAP_EPERM,
                "permission denied: the segment is accessible to others (mode %03o)",
                (unsigned)(st.st_mode & 0777));
  return SNAP_OK;
}

/* The uid of another user's segment for pid ("simalloc-<uid>-<pid>"), or
 * -1 if there is none. */
static long foreign_segment(pid_t pid) {
  DIR *d = opendir("/dev/shm");
  struct dirent *e;
  long found = -1;
  if (d == NULL)
    return -1;
  while (found < 0 && (e = readdir(d)) != NULL) {
    unsigned uid;
    int p, end = 0;
    if (sscanf(e->d_name, "simalloc-%u-%d%n", &uid, &p, &end) == 2 &&
        e->d_name[end] == '\0' && p == (int)pid && uid != (unsigned)getuid())
      found = (long)uid;
  }
  closedir(d);
  return found;
}

static enum snap_status open_segment(pid_t pid, int *fdp, snap_error *err) {
  char name[64];
  int fd;

  if (pid <= 0)
    return fail(err, SNAP_ENOPROC, "no such process: %d", (int)pid);
  if (kill(pid, 0) != 0 && errno == ESRCH)
    return fail(err, SNAP_ENOPROC, "no such process: %d", (int)pid);
  snap_segment_name(name, sizeof name, pid);
  fd = shm_open(name, O_RDWR | O_NOFOLLOW, 0);
  if (fd < 0 && (errno == EACCES || errno == ELOOP || errno == EPERM))
    return fail(err, SNAP_EPERM, "permission denied: %s: %s", name, strerror(errno));
  if (fd < 0 && errno == ENOENT) {
    long uid = foreign_segment(pid);
    if (uid >= 0)
      return fail(err, SNAP_EPERM, "permission denied: process %d publishes as uid %ld",
                  (int)pid, uid);
    return fail(err, SNAP_ENOSIM, "process %d does not run under libsimalloc",
                (int)pid);
  }
  if (fd < 0)
    return fail(err, SNAP_ESYS, "%s: %s", name, strerror(errno));
  *fdp = fd;
  return SNAP_OK;
}

enum snap_status snap_open(snap_view *v, pid_t pid, const snap_open_opts *o,
                           snap_error *err) {
  unsigned char *buf = NULL;
  size_t len = 0, size;
  int fd = -1, fresh = 0;
  enum snap_status st;

  memset(v, 0, sizeof *v);
  st = open_segment(pid, &fd, err);
  if (st != SNAP_OK)
    return st;
  st = check_owner(fd, err);
  if (st == SNAP_OK)
    st = segment_size(fd, &size, err);
  if (st == SNAP_OK && o && o->fresh)
    fresh = request_fresh(fd, o->wait_ms > 0 ? o->wait_ms : SNAP_FRESH_WAIT_MS);
  if (st == SNAP_OK)
    st = copy_segment(fd, &buf, &len, err);
  close(fd);
  if (st != SNAP_OK)
    return st;
  st = adopt(v, buf, len, err);
  if (st != SNAP_OK)
    return st;
  if (v->h->pid != (int64_t)pid) {
    long long claimed = (long long)v->h->pid;
    snap_view_free(v);
    return corrupt(err, "segment of pid %d claims pid %lld", (int)pid, claimed);
  }
  v->stale = o && o->fresh && !fresh;
  return SNAP_OK;
}

/* ---- listing ------------------------------------------------------------ */

/* Parses "simalloc-<uid>-<pid>" for our uid; returns the pid or -1. */
static pid_t parse_entry(const char *name) {
  char want[64];
  unsigned uid;
  int pid, end = 0;

  if (sscanf(name, "simalloc-%u-%d%n", &uid, &pid, &end) != 2 || name[end] != '\0')
    return -1;
  if (uid != (unsigned)getuid() || pid <= 0)
    return -1;
  snprintf(want, sizeof want, "simalloc-%u-%d", uid, pid);   /* canonical form */
  return strcmp(want, name) == 0 ? (pid_t)pid : -1;
}

static void remove_if_ours(int dirfd, const char *name) {
  struct stat st;
  char shm_name[NAME_MAX + 2];
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return;
  if (!S_ISREG(st.st_mode) || st.st_uid != getuid())
    return;
  snprintf(shm_name, sizeof shm_name, "/%s", name);
  shm_unlink(shm_name);
}

int snap_list(snap_entry *out, int max) {
  DIR *d = opendir("/dev/shm");
  struct dirent *e;
  int n = 0;

  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL) {
    pid_t pid = parse_entry(e->d_name);
    if (pid < 0)
      continue;
    if (kill(pid, 0) != 0 && errno == ESRCH) {
      remove_if_ours(dirfd(d), e->d_name);
      continue;
    }
    if (n < max)
      out[n].pid = pid;
    n++;
  }
  closedir(d);
  return n < max ? n : max;
}
