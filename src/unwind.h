/* unwind.h - the call stack of the running thread.  The only door to
 * libunwind (unwind.c). */
#ifndef SA_UNWIND_H
#define SA_UNWIND_H

#include <stddef.h>
#include <stdint.h>

/* Frames sa_unwind takes at most. */
#define SA_UNWIND_MAX 48

/* Loads libunwind and sets per-thread caching; 0, or -1 if unavailable.
 * Once, at start-up. */
int sa_unwind_init(void);

/* Fills frames[0 .. return value) with the return addresses of the calling
 * thread's stack, innermost first, at most max (<= SA_UNWIND_MAX); 0 if
 * libunwind is not loaded.  frames[0] is in sa_unwind itself, frames[1] in
 * its caller.  The same stack as the thread's last one is recognised
 * without a walk.  May allocate (the caller guards against that). */
int sa_unwind(void **frames, int max) __attribute__((noinline));

/* How many times the calling thread's sa_unwind walked a stack. */
uint64_t sa_unwind_walks(void);

#endif
