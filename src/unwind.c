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

int (*sa_unwind_backtrace)(void **, int);

int sa_unwind_init(void) {
  void *lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return -1;
  int (*set_policy)(unw_addr_space_t, unw_caching_policy_t) =
      (int (*)(unw_addr_space_t, unw_caching_policy_t))dlsym(lib, NAME_OF(unw_set_caching_policy));
  unw_addr_space_t *local = (unw_addr_space_t *)dlsym(lib, NAME_OF(unw_local_addr_space));
  int (*backtrace)(void **, int) = (int (*)(void **, int))dlsym(lib, "unw_backtrace");
  if (!set_policy || !local || !backtrace || set_policy(*local, UNW_CACHE_PER_THREAD) != 0)
    return -1;
  sa_unwind_backtrace = backtrace;
  return 0;
}
