/* unwind.h - the call stack of the running thread.  The only door to
 * libunwind (unwind.c). */
#ifndef SA_UNWIND_H
#define SA_UNWIND_H

#include <stdint.h>

/* Frames sa_unwind takes at most. */
#define SA_UNWIND_MAX 48

/* Sets up the unwinder (per-thread caching).  Once, at start-up. */
/* Loads libunwind and sets per-thread caching; 0, or -1 if unavailable. */
int sa_unwind_init(void);

/* Fills frames[0 .. return value) with the return addresses of the calling
 * thread's stack, innermost first, at most max.  frames[0] is in the
 * caller of sa_unwind.  May allocate (the caller guards against that). */
int sa_unwind(uintptr_t *frames, int max);

#endif
