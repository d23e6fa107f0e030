/* symbolize.h - naming the return addresses of another process's stacks
 * (elfutils libdwfl), for simalloc-dump. */
#ifndef SYMBOLIZE_H
#define SYMBOLIZE_H

#include <stdint.h>
#include <sys/types.h>

#include "render.h"
#include "snapread.h"

typedef struct symbolizer symbolizer;

/* Reports the modules of process pid as it runs now (/proc/PID/maps); if
 * that fails (gone, not permitted), the modules listed in the snapshot v,
 * read from their files.  NULL if neither works. */
symbolizer *sym_open(pid_t pid, const snap_view *v);
/* 1 if the modules came from the live process, 0 if from the snapshot. */
int sym_live(const symbolizer *s);
/* A site_resolver (render.h): ctx is a symbolizer. */
int sym_resolve(void *ctx, uint64_t a, site_frame *out);
void sym_close(symbolizer *s);

#endif
