/* lock.h - a small futex mutex.
 *
 * States: 0 unlocked, 1 locked, 2 locked with (possible) waiters.  The
 * uncontended lock and unlock are one atomic instruction each; only a
 * contended lock or an unlock with waiters enters the kernel.  It needs no
 * initialisation beyond zeroing, works in a forked child once unlocked, and
 * never allocates.
 */
#ifndef SA_LOCK_H
#define SA_LOCK_H

#include <stdint.h>

typedef struct sa_lock {
  uint32_t v;
  uintptr_t owner;  /* sa_self() of the holder, for fork from a signal handler */
} sa_lock;

void sa_lock_slow(sa_lock *l);
void sa_unlock_slow(sa_lock *l);

/* A number that tells this thread from the others (and stays the same in
 * a forked child): the address of a thread-local byte. */
extern __thread char sa_self_marker __attribute__((tls_model("initial-exec")));
static inline uintptr_t sa_self(void) { return (uintptr_t)&sa_self_marker; }

static inline void sa_lock_acquire(sa_lock *l) {
  uint32_t expected = 0;
  if (!__atomic_compare_exchange_n(&l->v, &expected, 1, 0, __ATOMIC_ACQUIRE,
                                   __ATOMIC_RELAXED))
    sa_lock_slow(l);
  l->owner = sa_self();
}

static inline void sa_lock_release(sa_lock *l) {
  l->owner = 0;
  if (__atomic_exchange_n(&l->v, 0, __ATOMIC_RELEASE) != 1)
    sa_unlock_slow(l);
}

/* Takes the lock only if it is free; 1 if taken. */
static inline int sa_lock_try(sa_lock *l) {
  uint32_t expected = 0;
  if (!__atomic_compare_exchange_n(&l->v, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
    return 0;
  l->owner = sa_self();
  return 1;
}

/* For fork, which may run in a signal handler that interrupted this very
 * thread inside the allocator: takes the lock unless this thread already
 * holds it; returns 1 if it took it (and must release it after the fork). */
static inline int sa_lock_for_fork(sa_lock *l) {
  if (__atomic_load_n(&l->v, __ATOMIC_RELAXED) && l->owner == sa_self()) return 0;
  sa_lock_acquire(l);
  return 1;
}

/* For fork: the child resets locks it inherited in the locked state. */
static inline void sa_lock_reset(sa_lock *l) {
  l->owner = 0;
  __atomic_store_n(&l->v, 0, __ATOMIC_RELAXED);
}

#endif
