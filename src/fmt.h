/* fmt.h - building messages without allocating and without stdio.
 *
 *   char buf[160];
 *   sa_fmt f = SA_FMT_INIT(buf);
 *   sa_fmt_str(&f, "simalloc: free(): invalid pointer ");
 *   sa_fmt_hex(&f, (uintptr_t)p);
 *   sa_fmt_str(&f, "\n");
 *   sa_os_write(2, f.buf, f.len);
 *
 * Output that does not fit is cut, never overflowed.
 */
#ifndef SA_FMT_H
#define SA_FMT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sa_fmt {
  char *buf;
  size_t len, cap;
} sa_fmt;

#define SA_FMT_INIT(array) {(array), 0, sizeof(array)}

void sa_fmt_str(sa_fmt *f, const char *s);
void sa_fmt_u64(sa_fmt *f, uint64_t v);
void sa_fmt_u64_right(sa_fmt *f, uint64_t v, int width);  /* spaces to its left */
void sa_fmt_hex(sa_fmt *f, uint64_t v);  /* 0x-prefixed */
void sa_fmt_size(sa_fmt *f, uint64_t bytes);  /* 1536 -> "1.5 KiB" */

/* SIMALLOC_ON_ERROR=warn: bad pointers are reported and the call is left
 * without effect, instead of aborting. */
extern int sa_warn_only;

/* Reports a bad pointer handed to CALL, "simalloc: CALL(): WHAT ADDR\n" on
 * stderr, and aborts unless sa_warn_only: then the caller must return
 * leaving everything as it was. */
void sa_bad_ptr(const char *call, const char *what, const void *p);

/* "simalloc: CALL(): WHAT ADDR\n" on stderr, then abort. */
_Noreturn void sa_fatal_ptr(const char *call, const char *what, const void *p);
/* "simalloc: MSG\n" on stderr, then abort. */
_Noreturn void sa_fatal(const char *msg);
/* Aborts the process, removing its snapshot segment first: once it is
 * gone nobody else would.  Every fatal error ends here. */
_Noreturn void sa_abort(void);

#endif
