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
 */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <stddef.h>
#include <libunwind.h>

#include "unwind.h"

#define NAME_OF(sym) NAME_OF_(sym)
#define NAME_OF_(sym) #sym

static int (*backtrace_fn)(void **, int);

int sa_unwind_init(void) {
  void *lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return -1;
  int (*set_policy)(unw_addr_space_t, unw_caching_policy_t) =
      (int (*)(unw_addr_space_t, unw_caching_policy_t))dlsym(lib, NAME_OF(unw_set_caching_policy));
  unw_addr_space_t *local = (unw_addr_space_t *)dlsym(lib, NAME_OF(unw_local_addr_space));
  backtrace_fn = (int (*)(void **, int))dlsym(lib, "unw_backtrace");
  if (!set_policy || !local || !backtrace_fn) {
    backtrace_fn = NULL;
    return -1;
  }
  set_policy(*local, UNW_CACHE_PER_THREAD);
  return 0;
}

__attribute__((noinline)) int sa_unwind(uintptr_t *frames, int max) {
  /* frames[0] would be here: take one more and drop it. */
  void *raw[SA_UNWIND_MAX + 1];
  if (max > SA_UNWIND_MAX) max = SA_UNWIND_MAX;
  int n = backtrace_fn ? backtrace_fn(raw, max + 1) : 0;
  for (int i = 1; i < n; i++) frames[i - 1] = (uintptr_t)raw[i];
  return n > 0 ? n - 1 : 0;
}
