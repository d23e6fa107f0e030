/* snapshot.h - turning heaps into the snapshot format, and publishing it.
 *
 * The format itself is the public contract in include/simalloc/snapshot.h.
 * sa_snap_* below build a segment image in any memory: the publisher uses
 * them on the shared segment, the interactive shell on a private buffer so
 * that both feed the same reader and renderer.
 */
#ifndef SA_SNAPSHOT_H
#define SA_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "heap.h"
#include "simalloc/snapshot.h"

/* A section of a segment image, by its offset field: SECTION(seg,
 * simalloc_snap_cell, map_offset). */
#define SECTION(seg, type, field) ((type *)((char *)(seg) + (seg)->field))

/* Capacities of a segment's sections. */
typedef struct sa_snap_caps {
  uint32_t map_cells;
  uint32_t history;
  uint64_t blocks;
  uint32_t sites;      /* allocation sites (0: no section) */
  uint32_t modules;    /* executable mappings */
} sa_snap_caps;

/* Bytes needed for a segment with these capacities. */
size_t sa_snap_size(const sa_snap_caps *caps);

/* Writes an empty, valid header and section layout into seg (which holds
 * sa_snap_size(caps) bytes): magic, version, offsets, capacities. */
void sa_snap_layout(simalloc_snap_header *seg, const sa_snap_caps *caps);

/* Fills the snapshot of heaps[0..n) (they lie in one arena starting at
 * arena_base): totals, holes, map, histogram and block list, every block
 * of every heap included.  Takes each heap's lock in turn.  Does not touch
 * seq, identity, rss or history. */
void sa_snap_fill(simalloc_snap_header *seg, sa_heap *const *heaps, int n,
                  uintptr_t arena_base, size_t arena_size);

/* The same, leaving out each heap's top free block (the untouched rest). */
void sa_snap_fill_process(simalloc_snap_header *seg, sa_heap *const *heaps, int n,
                          uintptr_t arena_base, size_t arena_size);

/* Process side (publish.c): start publishing after the process heap is up;
 * stop and remove the segment at exit; forget the parent's segment in a
 * forked child, which makes a new one later (sa_snapshot_poll). */
void sa_snapshot_start(void);
void sa_snapshot_stop(void);
void sa_snapshot_after_fork_child(void);

/* Set in a forked child that has not published yet; the allocation slow
 * path then calls sa_snapshot_poll now and then, outside every lock. */
extern int sa_snapshot_pending;
void sa_snapshot_poll(void);

#endif
