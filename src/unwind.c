/* unwind.c - taking the calling thread's stack with libunwind.
 *
 * libunwind's fast local backtrace (unw_backtrace) walks the frames with
 * cached unwind info; UNW_CACHE_PER_THREAD keeps one cache per thread so
 * that threads never wait for each other here.  This is the only file that
 * includes libunwind.h.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "unwind.h"

void sa_unwind_init(void) {
  unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

__attribute__((noinline)) int sa_unwind(uintptr_t *frames, int max) {
  /* frames[0] would be here: take one more and drop it. */
  void *raw[SA_UNWIND_MAX + 1];
  if (max > SA_UNWIND_MAX) max = SA_UNWIND_MAX;
  int n = unw_backtrace(raw, max + 1);
  for (int i = 1; i < n; i++) frames[i - 1] = (uintptr_t)raw[i];
  return n > 0 ? n - 1 : 0;
}
