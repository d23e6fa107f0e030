/* unwind.c - taking the calling thread's stack with libunwind.
 *
 * libunwind's fast local backtrace (unw_backtrace) walks the frames with
 * cached unwind info; UNW_CACHE_PER_THREAD keeps one cache per thread so
 * that threads never wait for each other here.  This is the only file that
 * includes libunwind.h.
 *
 * libunwind (and what it pulls in: libm, liblzma) is loaded with dlopen
 * when allocation sites are turned on, not linked: a process with sites
 * off maps none of it.  Loading happens once, from the library's
 * constructor; the functions are looked up then and never again.
 *
 * The memo.  A program that allocates in a loop takes the same stack again
 * and again, and walking it costs far more than everything else a record
 * does.  On x86-64 a call pushes its return address just below the
 * caller's stack pointer, so each return address of a stack lies in a
 * stack slot of its own.  After a walk, each thread keeps the stack and
 * where its return addresses lie (found by looking up the stack from
 * sa_unwind's own return address for each one in turn):
 *
 *   higher addresses        slot[3] -> frame 3's return address
 *   (outer frames)          ...        (caller's locals)
 *                           slot[2] -> frame 2's return address
 *                           ...        (frame 1's locals)
 *   sa_unwind's frame  -->  slot[1] -> frame 1's return address
 *
 * The next call is the same stack when its own return-address slot is at
 * the same place and every kept slot still holds its address: the same
 * return address at the same place means the same caller at the same
 * point, whose frame then spans the same bytes, so the next slot is again
 * its caller's; and so on outwards.  Then the memo is the answer, for a
 * dozen loads instead of a walk.  A frame whose size changes while it runs
 * (alloca) breaks that reasoning: such a stack could be taken for another
 * that once stood at the same place, and its records credited to that
 * other stack's site.  Stacks that pass through a signal frame (which can
 * lie on another stack) are not kept.
 */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <libunwind.h>

#include "unwind.h"

#define NAME_OF(sym) NAME_OF_(sym)
#define NAME_OF_(sym) #sym

/* Frames a memo keeps at most: the default depth and our own frames. */
#define MEMO_FRAMES 24
/* Bytes looked through for one return address, at most: a frame bigger
 * than that is walked every time. */
#define SCAN_LIMIT (64 * 1024)

static int (*backtrace)(void **, int);
static __thread uint64_t walks __attribute__((tls_model("initial-exec")));

static __thread struct {
  int n;                        /* frames kept, 0 none */
  int max;                      /* the max they were taken with */
  uintptr_t *slot[MEMO_FRAMES]; /* where frame k's return address lies (k >= 1) */
  uintptr_t frame[MEMO_FRAMES];
} memo __attribute__((tls_model("initial-exec")));

int sa_unwind_init(void) {
  void *lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return -1;
  int (*set_policy)(unw_addr_space_t, unw_caching_policy_t) =
      (int (*)(unw_addr_space_t, unw_caching_policy_t))dlsym(lib, NAME_OF(unw_set_caching_policy));
  unw_addr_space_t *local = (unw_addr_space_t *)dlsym(lib, NAME_OF(unw_local_addr_space));
  int (*bt)(void **, int) = (int (*)(void **, int))dlsym(lib, "unw_backtrace");
  if (!set_policy || !local || !bt || set_policy(*local, UNW_CACHE_PER_THREAD) != 0)
    return -1;
  backtrace = bt;
  return 0;
}

/* Whether code at ip is the signal return trampoline (x86-64 Linux:
 * mov $15, %rax; syscall), i.e. the frame is a signal frame. */
static int signal_frame(uintptr_t ip) {
  static const unsigned char sigreturn[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
  return memcmp((const void *)ip, sigreturn, sizeof sigreturn) == 0;
}

/* Keeps frames[0..n) with the slots of their return addresses, the first
 * at ra; the caller's array (frames[0..max)) is not looked at.  The search
 * for frame k's slot starts past frame k-1's, checked not to be a signal
 * frame: each search stays on the stack that holds the frames so far. */
__attribute__((no_sanitize("address")))  /* it reads the callers' frames whole */
static void learn(void *const *frames, int n, int max, uintptr_t *ra) {
  memo.n = 0;
  if (n < 2 || n > MEMO_FRAMES || *ra != (uintptr_t)frames[1]) return;
  uintptr_t *own_lo = (uintptr_t *)frames, *own_hi = (uintptr_t *)(frames + max);
  uintptr_t *at = ra;
  memo.slot[1] = ra;
  for (int k = 2; k < n; k++) {
    uintptr_t want = (uintptr_t)frames[k];
    if (signal_frame((uintptr_t)frames[k - 1])) return;
    uintptr_t *end = at + SCAN_LIMIT / sizeof *at;
    do {
      if (++at >= own_lo && at < own_hi) at = own_hi;
      if (at >= end) return;
    } while (*at != want);
    memo.slot[k] = at;
  }
  for (int k = 0; k < n; k++) memo.frame[k] = (uintptr_t)frames[k];
  memo.max = max;
  memo.n = n;
}

int sa_unwind(void **frames, int max) {
  uintptr_t *ra = (uintptr_t *)__builtin_frame_address(0) + 1;
  int n = memo.n;
  if (n && memo.max == max && memo.slot[1] == ra) {
    int k = 1;
    while (k < n && *memo.slot[k] == memo.frame[k]) k++;
    if (k == n) {
      for (k = 0; k < n; k++) frames[k] = (void *)memo.frame[k];
      return n;
    }
  }
  if (!backtrace || max <= 0) return 0;
  walks++;
  n = backtrace(frames, max);
  if (n < 0) n = 0;
  learn(frames, n, max, ra);
  return n;
}

uint64_t sa_unwind_walks(void) {
  return walks;
}
