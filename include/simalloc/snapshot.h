/* simalloc/snapshot.h - the heap snapshot that a process publishes.
 *
 * Every process running on libsimalloc publishes its heap in a POSIX
 * shared-memory object named "/simalloc-<uid>-<pid>" (see shm_open(3); on
 * Linux it appears as /dev/shm/simalloc-<uid>-<pid>), created with
 * O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, and removed at exit.
 *
 * This header is the contract between the writer (inside the library) and
 * any reader (simalloc-dump).  All fields are fixed width, little endian as
 * the host, and every section is located by a byte offset from the start of
 * the segment, never by a pointer.  A reader must trust nothing: it checks
 * the magic, the version, the header size, and that every section lies
 * inside the segment, before it reads a single entry.
 *
 * Layout of the segment:
 *
 *   +--------------------------+ 0
 *   | simalloc_snap_header     |   header_size bytes
 *   +--------------------------+ map_offset
 *   | simalloc_snap_cell[map_cells]        coarse heap map
 *   +--------------------------+ hist_offset
 *   | simalloc_snap_hist[hist_classes]     size histogram
 *   +--------------------------+ history_offset
 *   | simalloc_snap_sample[history_cap]    ring of samples, ~1 per second
 *   +--------------------------+ blocks_offset
 *   | simalloc_snap_block[blocks_cap]      block list (first block_count)
 *   +--------------------------+ sites_offset
 *   | simalloc_snap_site[sites_cap]        allocation sites (first site_count)
 *   +--------------------------+ modules_offset
 *   | simalloc_snap_module[modules_cap]    executable mappings (first module_count)
 *   +--------------------------+ segment_size
 *
 * Consistency: `seq` is a sequence counter.  The writer makes it odd before
 * it changes anything and even again afterwards.  A reader copies the
 * segment, then re-reads `seq`: the copy is good if seq was even and did not
 * change; otherwise it retries a bounded number of times.
 *
 * Freshness: a reader that wants a fresh snapshot atomically increments
 * `request` and wakes it with FUTEX_WAKE (a shared futex, so no
 * FUTEX_PRIVATE_FLAG).  The writer's thread sleeps on `request`, publishes,
 * stores the request value it served in `served`, and wakes waiters on
 * `seq`.  Nobody asking means the writer never wakes.
 */
#ifndef SIMALLOC_SNAPSHOT_H
#define SIMALLOC_SNAPSHOT_H

#include <stdint.h>

#define SIMALLOC_SNAP_MAGIC   UINT64_C(0x3150414e53414d53) /* "SMASNAP1" */
#define SIMALLOC_SNAP_VERSION 2u
#define SIMALLOC_SNAP_NAME_FMT "/simalloc-%u-%d"            /* uid, pid */

#define SIMALLOC_SNAP_EXE_LEN    256  /* NUL-terminated, truncated */
#define SIMALLOC_SNAP_HOLES      16   /* largest free holes kept */
#define SIMALLOC_SNAP_HEAPS      64   /* heaps described in the header */
#define SIMALLOC_SITE_DEPTH      32   /* frames a site keeps, at most */
#define SIMALLOC_SNAP_PATH_LEN   256  /* module paths, NUL-terminated, truncated */

/* Site ids: 0 is "not known" (an untracked block), 1 is the `other` site
 * that stacks fold into once the site table is full; real sites count up
 * from SIMALLOC_SITE_FIRST.  A site's id is its index in the site table. */
#define SIMALLOC_SITE_NONE  0u
#define SIMALLOC_SITE_OTHER 1u
#define SIMALLOC_SITE_FIRST 2u

/* Values of simalloc_snap_header.sites_mode (SIMALLOC_SITES). */
enum simalloc_snap_sites_mode {
  SIMALLOC_SITES_OFF = 0,
  SIMALLOC_SITES_SAMPLE = 1,  /* figures are estimates, see sites_rate */
  SIMALLOC_SITES_ALL = 2,
};

/* Block states, in the low bits of simalloc_snap_block.size_state. */
enum simalloc_snap_state {
  SIMALLOC_SNAP_FREE = 0,
  SIMALLOC_SNAP_USED = 1,
  SIMALLOC_SNAP_CACHED = 2,  /* freed, held in a thread cache */
};
#define SIMALLOC_SNAP_STATE_MASK UINT64_C(0xf)   /* sizes are 16-byte multiples */

/* One cell of the coarse map.  The map covers the listed part of every
 * heap, one heap after the other (heap i's bytes begin where heap i-1's
 * listed bytes end, see simalloc_snap_heap.map_start); cell i holds the
 * bytes of [i * cell_bytes, (i+1) * cell_bytes) of that sequence that are in
 * used / free / cached blocks.  used + free + cached == cell_bytes except in
 * the last cell. */
typedef struct simalloc_snap_cell {
  uint64_t used;
  uint64_t free;
  uint64_t cached;
} simalloc_snap_cell;

/* A block: offset of its header from arena_base, its size with the state
 * in the low four bits, and the site that allocated it (used blocks that
 * were tracked; SIMALLOC_SITE_NONE otherwise). */
typedef struct simalloc_snap_block {
  uint64_t offset;
  uint64_t size_state;
  uint32_t site;
  uint32_t reserved;
} simalloc_snap_block;

/* An allocation site: one distinct call stack, innermost frame first, as
 * raw return addresses in the target (frames[0 .. frame_count)).  The
 * allocator's own frames are left out.  In sample mode every figure is an
 * estimate (each recorded allocation stands for the bytes between samples);
 * with all, they are exact. */
typedef struct simalloc_snap_site {
  uint32_t id;
  uint32_t frame_count;
  uint64_t live_bytes;        /* in blocks not yet freed */
  uint64_t live_blocks;
  uint64_t total_bytes;       /* allocated here since start-up */
  uint64_t total_calls;
  uint64_t peak_live_bytes;
  uint64_t frames[SIMALLOC_SITE_DEPTH];
} simalloc_snap_site;

/* An executable mapping of the target: [start, end) maps the file at
 * `path` from file offset `offset`.  With these a reader symbolizes the
 * site frames even after the target is gone. */
typedef struct simalloc_snap_module {
  uint64_t start;
  uint64_t end;
  uint64_t offset;
  char path[SIMALLOC_SNAP_PATH_LEN];
} simalloc_snap_module;

/* Size class k holds blocks of size in [2^k, 2^(k+1)). */
typedef struct simalloc_snap_hist {
  uint64_t used_count;
  uint64_t used_bytes;
  uint64_t free_count;
  uint64_t free_bytes;
  uint64_t cached_count;
  uint64_t cached_bytes;
} simalloc_snap_hist;

/* One history sample; time_s is seconds since the process started. */
typedef struct simalloc_snap_sample {
  uint64_t time_s;
  uint64_t used_bytes;
  uint64_t free_bytes;
  uint64_t rss_bytes;
} simalloc_snap_sample;

/* A free hole: offset from arena_base and size. */
typedef struct simalloc_snap_hole {
  uint64_t offset;
  uint64_t size;
} simalloc_snap_hole;

/* A heap inside the arena: its listed range as offsets from arena_base
 * (end excludes the untouched top), and where its bytes begin in the map. */
typedef struct simalloc_snap_heap {
  uint64_t start;
  uint64_t end;
  uint64_t map_start;
  uint64_t used_bytes;
  uint64_t free_bytes;
  uint64_t cached_bytes;
} simalloc_snap_heap;

typedef struct simalloc_snap_header {
  uint64_t magic;              /* SIMALLOC_SNAP_MAGIC */
  uint32_t version;            /* SIMALLOC_SNAP_VERSION */
  uint32_t header_size;        /* sizeof(simalloc_snap_header) of the writer */
  uint64_t segment_size;       /* bytes in the whole segment */

  uint32_t seq;                /* odd while the writer is writing */
  uint32_t request;            /* readers increment and FUTEX_WAKE this */
  uint32_t served;             /* last request value published */
  uint32_t flags;              /* SIMALLOC_SNAP_F_* */

  /* process identity */
  int64_t pid;
  uint64_t start_time_ns;      /* CLOCK_REALTIME at start-up */
  uint64_t publish_time_ns;    /* CLOCK_REALTIME of this snapshot */
  uint64_t publish_count;
  char exe[SIMALLOC_SNAP_EXE_LEN];

  /* arena */
  uint64_t arena_base;         /* address in the target, informative only */
  uint64_t arena_size;
  uint64_t arena_touched;      /* bytes the heaps ever reached, summed */
  uint32_t heap_count;
  uint32_t reserved0;
  simalloc_snap_heap heaps[SIMALLOC_SNAP_HEAPS];

  /* totals, over the whole arena */
  uint64_t used_bytes;         /* in use by the program */
  uint64_t free_bytes;         /* free, inside the listed part of the heaps */
  uint64_t cached_bytes;       /* freed by the program, held in thread caches */
  uint64_t used_blocks;
  uint64_t free_blocks;
  uint64_t cached_blocks;
  uint64_t largest_free;
  uint64_t fragmentation_ppm;  /* (1 - largest_free / free_bytes) * 1e6 */
  uint64_t rss_bytes;
  uint64_t peak_used_bytes;

  /* the largest free holes, largest first */
  uint32_t hole_count;
  uint32_t reserved1;
  simalloc_snap_hole holes[SIMALLOC_SNAP_HOLES];

  /* coarse map */
  uint64_t map_offset;
  uint32_t map_cells;          /* cells in use */
  uint32_t map_cap;
  uint64_t map_cell_bytes;

  /* size histogram */
  uint64_t hist_offset;
  uint32_t hist_classes;
  uint32_t reserved2;

  /* history ring: the newest sample is at (history_head + history_len - 1)
   * % history_cap */
  uint64_t history_offset;
  uint32_t history_cap;
  uint32_t history_len;
  uint32_t history_head;
  uint32_t reserved3;

  /* block list */
  uint64_t blocks_offset;
  uint64_t blocks_cap;
  uint64_t block_count;        /* entries present */
  uint64_t block_total;        /* blocks in the heap; > block_count if cut */

  /* allocation sites: entry i has id i; entries 0 (none) and 1 (other) are
   * always present once site_count > 0 */
  uint64_t sites_offset;
  uint32_t sites_cap;
  uint32_t site_count;         /* entries present */
  uint32_t sites_mode;         /* simalloc_snap_sites_mode */
  uint32_t site_depth;         /* frames taken per stack (SIMALLOC_SITE_DEPTH) */
  uint64_t sites_rate;         /* sample mode: mean bytes between samples */

  /* executable mappings */
  uint64_t modules_offset;
  uint32_t modules_cap;
  uint32_t module_count;
} simalloc_snap_header;

#define SIMALLOC_SNAP_F_TRUNCATED 1u   /* the block list was cut at blocks_cap */

#endif
