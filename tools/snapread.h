/* snapread.h - reading and validating heap snapshots.
 *
 * A snapshot comes either from another process's shared-memory segment
 * (snap_open) or from an image already in memory (snap_view_from_bytes: the
 * shell's private heap, the tests, a fuzzer).  Both end in the same place: a
 * private, validated copy of the segment with typed pointers into it.  After
 * a successful call every count in the header is within its capacity and
 * every section, block, hole and heap range lies inside the copy, so the
 * renderer may index freely.  Nothing here ever trusts the target.
 */
#ifndef SNAPREAD_H
#define SNAPREAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "simalloc/snapshot.h"

/* Outcomes; the values double as the exit status of simalloc-dump. */
enum snap_status {
  SNAP_OK = 0,
  SNAP_ENOPROC = 2,   /* no such process */
  SNAP_ENOSIM = 3,    /* the process does not run under libsimalloc */
  SNAP_EPERM = 4,     /* the segment is not ours, or not private */
  SNAP_EVERSION = 5,  /* a format version we do not speak */
  SNAP_ECORRUPT = 6,  /* anything inconsistent in the segment */
  SNAP_ESYS = 7,      /* out of memory or another system failure */
};

/* Why a call failed: the status and one line of text, no newline. */
typedef struct snap_error {
  enum snap_status status;
  char msg[160];
} snap_error;

/* A validated snapshot.  buf is owned by the view. */
typedef struct snap_view {
  unsigned char *buf;
  size_t len;
  const simalloc_snap_header *h;
  const simalloc_snap_cell *map;       /* h->map_cells entries */
  const simalloc_snap_hist *hist;      /* h->hist_classes entries */
  const simalloc_snap_sample *history; /* h->history_cap entries (a ring) */
  const simalloc_snap_block *blocks;   /* h->block_count entries */
  const simalloc_snap_site *sites;     /* h->site_count entries, entry i has id i */
  const simalloc_snap_module *modules; /* h->module_count entries */
  int stale;          /* the target did not answer the fresh-snapshot request */
} snap_view;

/* Limits a reader imposes before it allocates anything. */
#define SNAP_MAX_SEGMENT  ((uint64_t)1 << 32)   /* 4 GiB */
#define SNAP_HIST_CLASSES 64

/* Bounds of the fresh-snapshot wait, in milliseconds: the answer is awaited
 * SNAP_FRESH_WAIT_MS, and up to SNAP_BUSY_WAIT_MS more while the writer is
 * visibly publishing (seq odd). */
#define SNAP_FRESH_WAIT_MS 500
#define SNAP_BUSY_WAIT_MS 4500

/* Validates len bytes at buf and makes a view over a private copy.
 * Returns SNAP_OK or an error (filled into err if it is not NULL). */
enum snap_status snap_view_from_bytes(snap_view *v, const void *buf, size_t len,
                                      snap_error *err);

/* Options of snap_open. */
typedef struct snap_open_opts {
  int fresh;          /* ask the target for a fresh snapshot first */
  int wait_ms;        /* how long to wait for it; 0 means SNAP_FRESH_WAIT_MS */
} snap_open_opts;

/* Reads the snapshot that process pid publishes. */
enum snap_status snap_open(snap_view *v, pid_t pid, const snap_open_opts *o,
                           snap_error *err);

void snap_view_free(snap_view *v);

/* Name of pid's segment for the current user ("/simalloc-<uid>-<pid>"). */
void snap_segment_name(char *out, size_t outsz, pid_t pid);

/* The block list accessors: size and state of block i. */
static inline uint64_t snap_block_size(const simalloc_snap_block *b) {
  return b->size_state & ~SIMALLOC_SNAP_STATE_MASK;
}
static inline unsigned snap_block_state(const simalloc_snap_block *b) {
  return (unsigned)(b->size_state & SIMALLOC_SNAP_STATE_MASK);
}

/* Site i, or NULL if the snapshot has no such site. */
static inline const simalloc_snap_site *snap_site(const snap_view *v, uint32_t id) {
  return id < v->h->site_count ? &v->sites[id] : NULL;
}

/* The module holding address a, or NULL. */
const simalloc_snap_module *snap_module_of(const snap_view *v, uint64_t a);

/* Index of the newest history sample, or -1 when the ring is empty. */
long snap_history_newest(const snap_view *v);

/* One published segment found by snap_list. */
typedef struct snap_entry {
  pid_t pid;
} snap_entry;

/* Lists the pids of this user's segments.  Segments of processes that no
 * longer exist are removed (if they are ours) and not listed.  Returns the
 * count (entries beyond max are dropped) or -1 on error. */
int snap_list(snap_entry *out, int max);

#endif
