/* process.h - the process's arena and heap.
 *
 * The heap comes up lazily on the first call of any entry point (which may
 * come before our constructor runs, from another library's constructor),
 * and once only, whatever the number of threads racing into it. */
#ifndef SA_PROCESS_H
#define SA_PROCESS_H

#include "heap.h"

enum { SA_DOWN = 0, SA_STARTING = 1, SA_READY = 2, SA_FAILED = 3 };

extern sa_heap sa_main_heap;
extern int sa_state;

/* Out of line: starts the heap; NULL if no arena could be reserved. */
sa_heap *sa_process_start(void);

static inline sa_heap *sa_process_heap(void) {
  if (__builtin_expect(__atomic_load_n(&sa_state, __ATOMIC_ACQUIRE) == SA_READY, 1))
    return &sa_main_heap;
  return sa_process_start();
}

/* Arena bounds, for the snapshot. */
void sa_process_arena(uintptr_t *base, size_t *size);

/* Call counts for SIMALLOC_STATS, kept only when it is on. */
typedef enum sa_call {
  SA_CALL_MALLOC, SA_CALL_FREE, SA_CALL_CALLOC, SA_CALL_REALLOC,
  SA_CALL_ALIGNED, SA_CALL_USABLE, SA_CALL_COUNT
} sa_call;

extern int sa_counting;
extern size_t sa_calls[SA_CALL_COUNT];

static inline void sa_count(sa_call c) {
  if (__builtin_expect(sa_counting, 0)) __atomic_fetch_add(&sa_calls[c], 1, __ATOMIC_RELAXED);
}

#endif
