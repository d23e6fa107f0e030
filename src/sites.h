/* sites.h - who holds the memory: allocation sites (SIMALLOC_SITES).
 *
 * The allocation paths decide cheaply which allocations to record: every
 * thread counts down the bytes it allocates (sa_tcache.sample_left) and
 * calls sa_site_sampled when the count goes below zero.  sa_site_sampled
 * takes the stack (unwind.c, libunwind), finds or makes the site of that
 * stack, credits it, remembers block -> site, marks the block TRACKED in its
 * header (block.h) and sets the thread's next countdown.  A TRACKED block
 * leaves the fast free path; sa_site_released credits its site back before
 * the block is reused.
 *
 * Modes: off (never sampled: the countdown never ends), sample (one
 * allocation per SIMALLOC_SITE_RATE bytes on average, at random, each
 * standing for the bytes between samples), all (every allocation).
 *
 * All of these run outside every allocator lock.  The unwinder may
 * allocate: a per-thread guard keeps those allocations untracked.
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

/* The first countdown of a new thread: INT64_MAX when sites are off. */
int64_t sa_sites_first_countdown(void);

/* p (payload of a used block of block_size bytes) was just handed out and
 * the thread's countdown ran out.  Records it if it can (setting TRACKED),
 * resets the countdown, and returns p. */
void *sa_site_sampled(void *p, size_t block_size);

/* A TRACKED block is being freed, or moved by realloc: credits its site
 * back and clears TRACKED.  block_size is its current size. */
void sa_site_released(void *p, size_t block_size);

/* A TRACKED block changed size in place (realloc). */
void sa_site_resized(void *p, size_t old_size, size_t new_size);

/* The site id of a TRACKED block, for the snapshot (0: unknown). */
uint32_t sa_site_of(const void *p);

/* At exit with SIMALLOC_LEAKS=1: reports the sites still holding memory. */
void sa_sites_report_leaks(void);

#endif
