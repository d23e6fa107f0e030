/* sites.h - who holds the memory: allocation sites (SIMALLOC_SITES).
 *
 * The allocation paths decide cheaply which allocations to record: every
 * thread counts down the bytes it allocates (sa_tcache.sample_left), and
 * an allocation that would take the count below zero is chosen.  The
 * allocation path then takes the stack (unwind.h, libunwind), allocates
 * the block with 8 bytes more for its trailer (block.h) and calls
 * sa_site_record, which finds or makes the site of that stack, credits it,
 * writes the site into the trailer and marks the block TRACKED in its
 * header; then the thread's next countdown is set.  When a TRACKED block
 * is freed, sa_site_released (out of the free path's line) credits its
 * site back before the block is reused.
 *
 * Modes: off (never sampled: the countdown never ends), sample (one
 * allocation per SIMALLOC_SITE_RATE bytes on average, at random, each
 * standing for the bytes between samples), all (every allocation).
 *
 * All of these run outside every allocator lock.  The unwinder may
 * allocate: while a stack is taken, the thread's countdown is set so high
 * that nothing it allocates is recorded (the per-thread recursion guard).
 */
#ifndef SA_SITES_H
#define SA_SITES_H

#include <stddef.h>
#include <stdint.h>

#include "simalloc/snapshot.h"

enum { SA_SITES_OFF = 0, SA_SITES_SAMPLE = 1, SA_SITES_ALL = 2 };

/* Reads SIMALLOC_SITES, _SITE_RATE, _SITE_DEPTH; sets up the site table.
 * Called once by process start-up, after the heaps are ready. */
void sa_sites_init(void);

/* Loads the unwinder (libunwind, only now and only if sites are wanted, so
 * that a process with sites off maps nothing more) and starts recording.
 * Called from the library's constructor, outside any allocation. */
void sa_sites_arm(void);

/* Fork: the table lock, taken and released like the heap locks. */
void sa_sites_fork_prepare(void);
void sa_sites_fork_parent(void);

/* A thread's next countdown: INT64_MAX when sites are off, 0 with all. */
int64_t sa_sites_countdown(void);

/* How many frames to take for a record (0: sites are off): the depth and
 * room for the allocator's own frames. */
int sa_sites_frames_wanted(void);

/* p (payload of a used block with 8 bytes to spare for the trailer, or
 * NULL) was chosen for a record; frames[0..n) is the stack as sa_unwind
 * took it, with at most sa_sites_frames_wanted() frames, in an array of
 * SA_UNWIND_MAX.  Records it (setting TRACKED) and returns p. */
void *sa_site_record(void *p, void **frames, int n);

/* A TRACKED block is being freed, or moved by realloc: credits its site
 * back and clears TRACKED.  block_size is its current size.  Keeps errno. */
void sa_site_released(void *p, size_t block_size);

/* The site of TRACKED block p (block_size bytes) before a resize; a
 * damaged trailer is reported on behalf of call (0 if the program goes
 * on). */
uint32_t sa_site_get(void *p, size_t block_size, const char *call);

/* TRACKED block p of site id (from sa_site_get) was resized in place, with
 * its 8 spare bytes: writes the trailer at its new end and credits the
 * difference.  id 0: the block is no longer tracked. */
void sa_site_resized(void *p, uint32_t id, size_t old_size, size_t new_size);

/* The site id of a used block, for the snapshot (0: none, or unknown).
 * Reports nothing. */
uint32_t sa_site_of(const void *p);

/* At exit with SIMALLOC_LEAKS=1: reports the sites still holding memory.
 * Does nothing otherwise. */
void sa_sites_report_leaks(void);

/* In a forked child: frees the table lock that a thread gone with the
 * fork may have held. */
void sa_sites_after_fork_child(void);

/* For the snapshot (publish.c): fills the site and module sections of seg
 * (laid out with room for sa_sites_capacity() sites) and the header's
 * sites_mode, site_depth and sites_rate.  Takes the site table lock. */
void sa_sites_snap(simalloc_snap_header *seg);
/* Site table entries (0 when sites are off). */
uint32_t sa_sites_capacity(void);
/* This process's executable mappings of files, from /proc/self/maps read
 * without allocating; returns how many were written (at most cap). */
uint32_t sa_sites_modules(simalloc_snap_module *out, uint32_t cap);
/* The bytes a recorded block of this size stands for in the current mode
 * (sites.c explains the estimator). */
uint64_t sa_sites_weight(size_t block_size);

/* ---- for the unit tests only: the table without the unwinder ----------- */

/* Starts afresh with these settings (the old table is abandoned). */
int sa_sites_test_setup(int mode, uint64_t rate, int depth, uint32_t max);
/* Records p (a used block of block_size bytes, whose last 8 bytes become
 * the trailer) as allocated by the stack frames[0..n), as sa_site_record
 * would: returns its site id. */
uint32_t sa_sites_test_record(void *p, size_t block_size, const uintptr_t *frames, int n);
/* A copy of site id; -1 if there is no such site. */
int sa_sites_test_site(uint32_t id, simalloc_snap_site *out);
/* Entries in use in the site table, none and other included. */
uint32_t sa_sites_test_count(void);

#endif
