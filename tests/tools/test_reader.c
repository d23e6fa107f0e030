/* test_reader.c - the snapshot reader against valid and corrupted segments.
 *
 * In-memory images go through snap_view_from_bytes; each test breaks one
 * field and expects the matching error.  Segments in shared memory, named
 * after this process, go through snap_open: ownership, permissions,
 * truncation, a writer that never finishes, and the fresh-snapshot request
 * answered by a thread playing the writer.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image.h"
#include "snapread.h"

static const test_block sample[] = {
    {64, SIMALLOC_SNAP_USED},  {128, SIMALLOC_SNAP_FREE}, {256, SIMALLOC_SNAP_USED},
    {32, SIMALLOC_SNAP_CACHED}, {512, SIMALLOC_SNAP_FREE}, {48, SIMALLOC_SNAP_USED},
};
#define NSAMPLE (sizeof sample / sizeof sample[0])

static test_image img;

static void setup(void) {
  cr_assert_eq(image_build(&img, sample, NSAMPLE, 256, 4096), 0);
}

static void teardown(void) {
  image_free(&img);
}

/* Validates img and returns the status, freeing any view. */
static enum snap_status check(snap_error *err) {
  snap_view v;
  enum snap_status st = snap_view_from_bytes(&v, img.buf, img.len, err);
  if (st == SNAP_OK)
    snap_view_free(&v);
  return st;
}

static void expect_corrupt(const char *what) {
  snap_error err;
  enum snap_status st = check(&err);
  cr_assert_eq(st, SNAP_ECORRUPT, "%s: status %d", what, st);
  cr_assert(strstr(err.msg, "corrupt snapshot") != NULL, "%s: message '%s'", what, err.msg);
}

TestSuite(reader, .init = setup, .fini = teardown);

Test(reader, valid_image_gives_typed_view) {
  snap_view v;
  snap_error err;
  cr_assert_eq(snap_view_from_bytes(&v, img.buf, img.len, &err), SNAP_OK, "%s", err.msg);
  cr_assert_eq(v.h->block_count, NSAMPLE);
  cr_assert_eq(snap_block_size(&v.blocks[2]), 256);
  cr_assert_eq(snap_block_state(&v.blocks[3]), SIMALLOC_SNAP_CACHED);
  cr_assert_eq(v.blocks[1].offset, 64);
  cr_assert_eq(v.h->used_bytes, 64 + 256 + 48);
  cr_assert_eq(v.map[0].used + v.map[0].free + v.map[0].cached, 256);
  cr_assert_str_eq(v.h->exe, "/usr/bin/example");
  cr_assert_neq((void *)v.buf, (void *)img.buf, "the view owns a copy");
  snap_view_free(&v);
  cr_assert_null(v.buf);
}

Test(reader, short_buffers) {
  snap_view v;
  snap_error err;
  cr_assert_eq(snap_view_from_bytes(&v, img.buf, 0, &err), SNAP_ECORRUPT);
  cr_assert_eq(snap_view_from_bytes(&v, NULL, 100, &err), SNAP_ECORRUPT);
  cr_assert_eq(snap_view_from_bytes(&v, img.buf, sizeof(simalloc_snap_header) - 1, &err),
               SNAP_ECORRUPT);
  /* all of the header but not all of the sections it describes */
  cr_assert_eq(snap_view_from_bytes(&v, img.buf, img.len - 1, &err), SNAP_ECORRUPT);
  cr_assert(strstr(err.msg, "header says") != NULL, "%s", err.msg);
}

Test(reader, wrong_magic) {
  img.h->magic ^= 1;
  expect_corrupt("magic");
}

Test(reader, other_version) {
  snap_error err;
  img.h->version = SIMALLOC_SNAP_VERSION + 1;
  cr_assert_eq(check(&err), SNAP_EVERSION);
  cr_assert(strstr(err.msg, "version") != NULL, "%s", err.msg);
}

Test(reader, header_size) {
  img.h->header_size = sizeof(simalloc_snap_header) - 8;
  expect_corrupt("small header");
  img.h->header_size = (uint32_t)img.len + 8;
  expect_corrupt("header past the segment");
}

Test(reader, segment_size) {
  img.h->segment_size = img.len + 1;
  expect_corrupt("segment size past the buffer");
  img.h->segment_size = UINT64_MAX;
  expect_corrupt("huge segment size");
}

Test(reader, odd_sequence) {
  img.h->seq = 3;
  expect_corrupt("odd seq");
}

Test(reader, unterminated_exe) {
  memset(img.h->exe, 'x', sizeof img.h->exe);
  expect_corrupt("exe");
}

Test(reader, map_fields) {
  img.h->map_cells = img.h->map_cap + 1;
  expect_corrupt("map cells above capacity");
  setup();
  img.h->map_cap = UINT32_MAX;
  img.h->map_cells = 1;
  expect_corrupt("map capacity past the end");
  setup();
  img.h->map_offset = img.len;
  expect_corrupt("map offset at the end");
  setup();
  img.h->map_offset = UINT64_MAX - 7;
  expect_corrupt("map offset overflowing");
  setup();
  img.h->map_offset += 4;
  expect_corrupt("misaligned map");
  setup();
  img.h->map_offset = 0;
  expect_corrupt("map inside the header");
  setup();
  img.h->map_cell_bytes = 0;
  expect_corrupt("zero cell size");
  setup();
  img.h->map_cell_bytes = UINT64_MAX / 2;
  expect_corrupt("cell size overflowing");
  setup();
  ((simalloc_snap_cell *)(img.buf + img.h->map_offset))[0].used = 257;
  expect_corrupt("cell over its size");
  setup();
  ((simalloc_snap_cell *)(img.buf + img.h->map_offset))[0].free = UINT64_MAX;
  expect_corrupt("cell bytes overflowing");
}

Test(reader, histogram_fields) {
  img.h->hist_classes = 65;
  expect_corrupt("too many classes");
  setup();
  img.h->hist_offset = img.len - 8;
  expect_corrupt("histogram past the end");
}

Test(reader, history_fields) {
  img.h->history_len = img.h->history_cap + 1;
  expect_corrupt("history longer than its ring");
  setup();
  img.h->history_head = img.h->history_cap;
  expect_corrupt("history head outside the ring");
  setup();
  img.h->history_cap = 1u << 30;
  expect_corrupt("history ring past the end");
  setup();
  img.h->history_offset = img.len;
  expect_corrupt("history offset past the end");
}

Test(reader, block_fields) {
  img.h->block_count = img.h->blocks_cap + 1;
  expect_corrupt("count above capacity");
  setup();
  img.h->blocks_cap = UINT64_MAX / 8;
  expect_corrupt("huge capacity");
  setup();
  img.h->block_count = img.h->blocks_cap = UINT64_MAX;
  img.h->block_total = UINT64_MAX;
  expect_corrupt("huge count");
  setup();
  img.h->blocks_offset = img.len - 16;
  expect_corrupt("list past the end");
  setup();
  img.h->block_total = img.h->block_count - 1;
  expect_corrupt("total below count");
}

Test(reader, block_entries) {
  simalloc_snap_block *b = (void *)(img.buf + img.h->blocks_offset);
  b[2].size_state = (b[2].size_state & ~SIMALLOC_SNAP_STATE_MASK) | 7;
  expect_corrupt("unknown state");
  setup();
  b = (void *)(img.buf + img.h->blocks_offset);
  b[5].offset = img.h->arena_size;
  expect_corrupt("block past the arena");
  setup();
  b = (void *)(img.buf + img.h->blocks_offset);
  b[0].offset = UINT64_MAX - 16;
  expect_corrupt("block offset overflowing");
}

Test(reader, header_counts) {
  img.h->heap_count = SIMALLOC_SNAP_HEAPS + 1;
  expect_corrupt("heaps");
  setup();
  img.h->hole_count = SIMALLOC_SNAP_HOLES + 1;
  expect_corrupt("holes");
  setup();
  img.h->holes[0].size = UINT64_MAX;
  expect_corrupt("hole past the arena");
  setup();
  img.h->heaps[0].end = img.h->arena_size + 16;
  expect_corrupt("heap past the arena");
  setup();
  img.h->heaps[0].start = 32;
  img.h->heaps[0].end = 16;
  expect_corrupt("heap upside down");
  setup();
  img.h->arena_touched = img.h->arena_size + 1;
  expect_corrupt("touched past the arena");
  setup();
  img.h->fragmentation_ppm = 1000001;
  expect_corrupt("fragmentation");
}

/* Flips bytes at random: any verdict is fine, a crash is not; a view that
 * passes must keep its promises. */
Test(reader, random_damage_never_crashes) {
  unsigned seed = 12345;
  size_t accepted = 0;
  for (int round = 0; round < 20000; round++) {
    test_image t;
    cr_assert_eq(image_build(&t, sample, NSAMPLE, 256, 4096), 0);
    int flips = 1 + (int)(rand_r(&seed) % 4);
    for (int i = 0; i < flips; i++) {
      size_t at = (size_t)rand_r(&seed) % (round % 2 ? sizeof(simalloc_snap_header) : t.len);
      t.buf[at] ^= (unsigned char)(1u << (rand_r(&seed) % 8));
    }
    snap_view v;
    if (snap_view_from_bytes(&v, t.buf, t.len, NULL) == SNAP_OK) {
      accepted++;
      cr_assert_leq(v.h->block_count, v.h->blocks_cap);
      for (uint64_t i = 0; i < v.h->block_count; i++)
        cr_assert_leq(v.blocks[i].offset + snap_block_size(&v.blocks[i]), v.h->arena_size);
      snap_view_free(&v);
    }
    image_free(&t);
  }
  cr_assert_gt(accepted, 0, "flips in unused bytes should still pass");
}

/* ---- segments in shared memory ------------------------------------------ */

static char seg_name[64];

static void seg_cleanup(void) {
  shm_unlink(seg_name);
  image_free(&img);
}

/* Publishes img as this process's segment with the given mode. */
static int publish(mode_t mode, size_t len) {
  snap_segment_name(seg_name, sizeof seg_name, getpid());
  shm_unlink(seg_name);
  int fd = shm_open(seg_name, O_RDWR | O_CREAT | O_EXCL, mode);
  cr_assert_geq(fd, 0, "shm_open %s", seg_name);
  fchmod(fd, mode);
  img.h->pid = getpid();
  cr_assert_eq(ftruncate(fd, (off_t)len), 0);
  cr_assert_eq(pwrite(fd, img.buf, len < img.len ? len : img.len, 0),
               (ssize_t)(len < img.len ? len : img.len));
  return fd;
}

TestSuite(segment, .init = setup, .fini = seg_cleanup);

Test(segment, reads_own_segment) {
  snap_view v;
  snap_error err;
  close(publish(0600, img.len));
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_OK, "%s", err.msg);
  cr_assert_eq(v.h->block_count, NSAMPLE);
  cr_assert_eq(v.stale, 0);
  snap_view_free(&v);
}

Test(segment, refuses_shared_modes) {
  snap_view v;
  snap_error err;
  close(publish(0644, img.len));
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_EPERM);
  cr_assert(strstr(err.msg, "permission denied") != NULL, "%s", err.msg);
  shm_unlink(seg_name);
  close(publish(0660, img.len));
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_EPERM);
}

Test(segment, refuses_symlink) {
  char path[128];
  snap_view v;
  snap_error err;
  snap_segment_name(seg_name, sizeof seg_name, getpid());
  snprintf(path, sizeof path, "/dev/shm%s", seg_name);
  unlink(path);
  cr_assert_eq(symlink("/etc/passwd", path), 0);
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_EPERM, "%s", err.msg);
  unlink(path);
}

Test(segment, foreign_owner_is_refused) {
  snap_view v;
  snap_error err;
  if (getuid() != 0)
    cr_skip_test("changing a segment's owner needs root");
  int fd = publish(0600, img.len);
  cr_assert_eq(fchown(fd, 12345, (gid_t)-1), 0);
  close(fd);
  /* root owns nothing here: the reader compares with getuid() == 0 */
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_EPERM);
  cr_assert(strstr(err.msg, "uid 12345") != NULL, "%s", err.msg);
}

Test(segment, truncated_segment) {
  snap_view v;
  snap_error err;
  close(publish(0600, img.len / 2));
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_ECORRUPT);
  shm_unlink(seg_name);
  close(publish(0600, 16));
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_ECORRUPT);
  cr_assert(strstr(err.msg, "shorter than the header") != NULL, "%s", err.msg);
}

Test(segment, writer_never_finishes) {
  snap_view v;
  snap_error err;
  img.h->seq = 7;
  close(publish(0600, img.len));
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_ECORRUPT);
  cr_assert(strstr(err.msg, "never held still") != NULL, "%s", err.msg);
}

Test(segment, wrong_pid_inside) {
  snap_view v;
  snap_error err;
  int fd = publish(0600, img.len);
  int64_t other = getpid() + 1;
  pwrite(fd, &other, sizeof other, offsetof(simalloc_snap_header, pid));
  close(fd);
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_ECORRUPT);
}

Test(segment, missing_and_dead) {
  snap_view v;
  snap_error err;
  snap_segment_name(seg_name, sizeof seg_name, getpid());
  shm_unlink(seg_name);
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_ENOSIM);
  cr_assert(strstr(err.msg, "does not run under libsimalloc") != NULL, "%s", err.msg);

  pid_t child = fork();
  if (child == 0)
    _exit(0);
  waitpid(child, NULL, 0);
  cr_assert_eq(snap_open(&v, child, NULL, &err), SNAP_ENOPROC);
  cr_assert_eq(snap_open(&v, -5, NULL, &err), SNAP_ENOPROC);
}

Test(segment, list_removes_dead_segments) {
  char name[64];
  snap_entry ents[256];
  pid_t child = fork();
  if (child == 0)
    _exit(0);
  waitpid(child, NULL, 0);
  snap_segment_name(name, sizeof name, child);
  int fd = shm_open(name, O_RDWR | O_CREAT, 0600);
  cr_assert_geq(fd, 0);
  close(fd);
  close(publish(0600, img.len));

  int n = snap_list(ents, 256);
  int self = 0, dead = 0;
  for (int i = 0; i < n; i++) {
    self += ents[i].pid == getpid();
    dead += ents[i].pid == child;
  }
  cr_assert_eq(self, 1, "our own segment is listed");
  cr_assert_eq(dead, 0, "the dead process is not listed");
  fd = shm_open(name, O_RDONLY, 0);
  cr_assert_lt(fd, 0, "the dead process's segment is removed");
}

/* A writer thread: waits for requests and answers them. */
static void *fake_writer(void *arg) {
  simalloc_snap_header *m = arg;
  uint32_t served = __atomic_load_n(&m->served, __ATOMIC_ACQUIRE);
  for (int i = 0; i < 200; i++) {
    uint32_t req = __atomic_load_n(&m->request, __ATOMIC_ACQUIRE);
    if (req == served) {
      struct timespec ts = {0, 5000000};
      syscall(SYS_futex, &m->request, FUTEX_WAIT, req, &ts, NULL, 0);
      continue;
    }
    __atomic_store_n(&m->seq, m->seq + 1, __ATOMIC_RELEASE);
    m->publish_count++;
    __atomic_store_n(&m->seq, m->seq + 1, __ATOMIC_RELEASE);
    served = req;
    __atomic_store_n(&m->served, req, __ATOMIC_RELEASE);
    syscall(SYS_futex, &m->seq, FUTEX_WAKE, 64, NULL, NULL, 0);
    return NULL;
  }
  return NULL;
}

Test(segment, fresh_request_answered) {
  snap_view v;
  snap_error err;
  pthread_t t;
  int fd = publish(0600, img.len);
  simalloc_snap_header *m = mmap(NULL, img.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  cr_assert_neq(m, MAP_FAILED);
  pthread_create(&t, NULL, fake_writer, m);
  snap_open_opts o = {.fresh = 1, .wait_ms = 2000};
  cr_assert_eq(snap_open(&v, getpid(), &o, &err), SNAP_OK, "%s", err.msg);
  pthread_join(t, NULL);
  cr_assert_eq(v.stale, 0);
  cr_assert_eq(v.h->publish_count, 1, "the copy is the answer to our request");
  cr_assert_eq(v.h->request, 1);
  cr_assert_eq(v.h->served, 1);
  snap_view_free(&v);
  munmap(m, img.len);
  close(fd);
}

Test(segment, fresh_request_unanswered_is_stale) {
  snap_view v;
  snap_error err;
  close(publish(0600, img.len));
  snap_open_opts o = {.fresh = 1, .wait_ms = 30};
  cr_assert_eq(snap_open(&v, getpid(), &o, &err), SNAP_OK, "%s", err.msg);
  cr_assert_eq(v.stale, 1);
  cr_assert_eq(v.h->request, 1, "the request was made");
  snap_view_free(&v);
}

Test(segment, another_users_segment_is_refused) {
  char name[64];
  snap_view v;
  snap_error err;
  snprintf(name, sizeof name, "/simalloc-%u-%d", (unsigned)getuid() + 1, (int)getpid());
  int fd = shm_open(name, O_RDWR | O_CREAT, 0600);
  cr_assert_geq(fd, 0);
  close(fd);
  snap_segment_name(seg_name, sizeof seg_name, getpid());
  shm_unlink(seg_name);   /* none of our own: only the other user's */
  cr_assert_eq(snap_open(&v, getpid(), NULL, &err), SNAP_EPERM, "%s", err.msg);
  cr_assert(strstr(err.msg, "publishes as uid") != NULL, "%s", err.msg);
  shm_unlink(name);
}
