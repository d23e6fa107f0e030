/* unwind.h - the call stack of the running thread.  The only door to
 * libunwind (unwind.c). */
#ifndef SA_UNWIND_H
#define SA_UNWIND_H

#include <stddef.h>

/* Frames sa_unwind takes at most. */
#define SA_UNWIND_MAX 48

/* Loads libunwind and sets per-thread caching; 0, or -1 if unavailable.
 * Once, at start-up. */
int sa_unwind_init(void);

/* libunwind's unw_backtrace once sa_unwind_init succeeded, else NULL. */
extern int (*sa_unwind_backtrace)(void **, int);

/* Fills frames[0 .. return value) with the return addresses of the calling
 * thread's stack, innermost first, at most max (<= SA_UNWIND_MAX).
 * frames[0] is in the function that sa_unwind is inlined into: inline, so
 * that the unwinder walks no frame of ours that it need not.  May allocate
 * (the caller guards against that). */
static inline __attribute__((always_inline)) int sa_unwind(void **frames, int max) {
  if (!sa_unwind_backtrace || max <= 0) return 0;
  int n = sa_unwind_backtrace(frames, max);
  return n > 0 ? n : 0;
}

#endif
