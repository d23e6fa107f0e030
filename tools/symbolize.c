/* symbolize.c - function, file and line of target addresses, with libdwfl.
 *
 * Live: dwfl_linux_proc_report reads /proc/PID/maps and finds each module's
 * ELF file (and its separate debug info) the standard way.  Offline: every
 * file in the snapshot's module list is reported at the load address its
 * executable mapping implies (mapping start - file offset, which holds for
 * the usual layout where a segment's address and file offset agree modulo
 * the load address).  A return address points after its call, so lines and
 * names are looked up one byte before it.
 */
#define _GNU_SOURCE
#include "symbolize.h"

#include <elfutils/libdwfl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct symbolizer {
  Dwfl *dwfl;
  int live;
};

static char *debuginfo_path;

static const Dwfl_Callbacks proc_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

static Dwfl *open_live(pid_t pid) {
  Dwfl *d = dwfl_begin(&proc_callbacks);
  if (d == NULL)
    return NULL;
  dwfl_report_begin(d);
  if (dwfl_linux_proc_report(d, pid) != 0 || dwfl_report_end(d, NULL, NULL) != 0) {
    dwfl_end(d);
    return NULL;
  }
  return d;
}

/* Was path reported already (by an earlier mapping of the same file)? */
static int seen_before(const snap_view *v, uint32_t i) {
  for (uint32_t j = 0; j < i; j++)
    if (!strcmp(v->modules[j].path, v->modules[i].path))
      return 1;
  return 0;
}

static Dwfl *open_offline(const snap_view *v) {
  Dwfl *d = dwfl_begin(&offline_callbacks);
  int reported = 0;
  if (d == NULL)
    return NULL;
  dwfl_report_begin(d);
  for (uint32_t i = 0; i < v->h->module_count; i++) {
    const simalloc_snap_module *m = &v->modules[i];
    if (m->path[0] != '/' || seen_before(v, i) || m->offset > m->start)
      continue;
    if (dwfl_report_elf(d, m->path, m->path, -1, m->start - m->offset, true) != NULL)
      reported++;
  }
  if (dwfl_report_end(d, NULL, NULL) != 0 || reported == 0) {
    dwfl_end(d);
    return NULL;
  }
  return d;
}

symbolizer *sym_open(pid_t pid, const snap_view *v) {
  symbolizer *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->dwfl = pid > 0 ? open_live(pid) : NULL;
  s->live = s->dwfl != NULL;
  if (s->dwfl == NULL && v != NULL)
    s->dwfl = open_offline(v);
  if (s->dwfl == NULL) {
    free(s);
    return NULL;
  }
  return s;
}

int sym_live(const symbolizer *s) {
  return s->live;
}

static void copy(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

int sym_resolve(void *ctx, uint64_t a, site_frame *out) {
  symbolizer *s = ctx;
  Dwarf_Addr pc = a ? a - 1 : 0, start = 0;
  Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
  const char *name;
  int line = 0;

  memset(out, 0, sizeof *out);
  if (mod == NULL)
    return -1;
  name = dwfl_module_info(mod, NULL, &start, NULL, NULL, NULL, NULL, NULL);
  if (name != NULL) {
    const char *base = strrchr(name, '/');
    copy(out->module, sizeof out->module, base ? base + 1 : name);
  }
  out->module_offset = a - start;
  copy(out->function, sizeof out->function, dwfl_module_addrname(mod, pc));
  Dwfl_Line *l = dwfl_module_getsrc(mod, pc);
  if (l != NULL) {
    copy(out->file, sizeof out->file, dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL));
    out->line = line;
  }
  return 0;
}

void sym_close(symbolizer *s) {
  if (s == NULL)
    return;
  dwfl_end(s->dwfl);
  free(s);
}
