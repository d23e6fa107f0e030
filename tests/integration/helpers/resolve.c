/* resolve.c - prints which object provides each malloc-family symbol.
 *
 * For every name, dlsym(RTLD_DEFAULT) finds the definition the program
 * really calls and dladdr names the object holding it.  One line per
 * symbol: "NAME OBJECT".  Exit 0 when every symbol comes from an object
 * whose file name contains libsimalloc, 1 otherwise.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static const char *const names[] = {
  "malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc",
  "memalign", "valloc", "pvalloc", "malloc_usable_size", "free_sized",
  "free_aligned_sized", "malloc_trim", "mallinfo2", "mallinfo", "malloc_stats", "malloc_info",
};

int main(void) {
  int foreign = 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *sym = dlsym(RTLD_DEFAULT, names[i]);
    Dl_info info;
    const char *obj = "(undefined)";
    if (sym && dladdr(sym, &info) && info.dli_fname)
      obj = info.dli_fname;
    else if (sym)
      obj = "(unknown object)";
    const char *base = strrchr(obj, '/');
    base = base ? base + 1 : obj;
    if (!strstr(base, "libsimalloc"))
      foreign++;
    printf("%s %s\n", names[i], obj);
  }
  return foreign ? 1 : 0;
}
