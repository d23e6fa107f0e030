/* lock.h - a small futex mutex that knows its holder.
 *
 * The lock word is 0 when free, else the holder's thread id, with
 * SA_LOCK_WAITERS set once another thread may be asleep on it.  Taking and
 * releasing are one atomic instruction each when uncontended; only a
 * contended lock or a release with waiters enters the kernel.  Because the
 * holder is part of the word, fork (even from a signal handler that
 * interrupted this thread inside the allocator) can always tell whether
 * this thread holds a lock.  It needs no initialisation beyond zeroing and
 * never allocates.
 */
#ifndef SA_LOCK_H
#define SA_LOCK_H

#include <stdint.h>

#define SA_LOCK_WAITERS UINT32_C(0x80000000)

typedef struct sa_lock {
  uint32_t v;
} sa_lock;

void sa_lock_slow(sa_lock *l);
void sa_unlock_slow(sa_lock *l);
uint32_t sa_self_slow(void);

/* This thread's id, cached (the cache survives into a forked child, which
 * is what fork needs: the interrupted code took its locks under it). */
extern __thread uint32_t sa_self_id __attribute__((tls_model("initial-exec")));
static inline uint32_t sa_self(void) {
  uint32_t id = sa_self_id;
  return __builtin_expect(id != 0, 1) ? id : sa_self_slow();
}

static inline void sa_lock_acquire(sa_lock *l) {
  uint32_t expected = 0;
  if (!__atomic_compare_exchange_n(&l->v, &expected, sa_self(), 0, __ATOMIC_ACQUIRE,
                                   __ATOMIC_RELAXED))
    sa_lock_slow(l);
}

static inline void sa_lock_release(sa_lock *l) {
  if (__atomic_exchange_n(&l->v, 0, __ATOMIC_RELEASE) & SA_LOCK_WAITERS)
    sa_unlock_slow(l);
}

/* Takes the lock only if it is free; 1 if taken. */
static inline int sa_lock_try(sa_lock *l) {
  uint32_t expected = 0;
  return __atomic_compare_exchange_n(&l->v, &expected, sa_self(), 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED);
}

/* For fork, which may run in a signal handler that interrupted this very
 * thread inside the allocator: takes the lock unless this thread already
 * holds it; returns 1 if it took it (and must release it after the fork). */
static inline int sa_lock_for_fork(sa_lock *l) {
  if ((__atomic_load_n(&l->v, __ATOMIC_RELAXED) & ~SA_LOCK_WAITERS) == sa_self()) return 0;
  sa_lock_acquire(l);
  return 1;
}

/* For fork: the child resets locks it inherited in the locked state. */
static inline void sa_lock_reset(sa_lock *l) {
  __atomic_store_n(&l->v, 0, __ATOMIC_RELAXED);
}

#endif
