/* os.h - every call into the operating system made by the allocator.
 *
 * Nothing here allocates.  Functions return 0 (or a valid pointer) on
 * success and -1 (or NULL) on failure, with errno from the kernel.
 */
#ifndef SA_OS_H
#define SA_OS_H

#include <stddef.h>
#include <stdint.h>

/* Reserves size bytes of zeroed, readable and writable address space that
 * costs no memory until touched.  NULL if the kernel refuses. */
void *sa_os_reserve(size_t size);
/* Gives back a whole reservation of size bytes at p. */
void sa_os_unreserve(void *p, size_t size);
/* Returns the whole pages of [p, p + n) to the kernel; they read back as
 * zeros.  p and n must be page aligned. */
int sa_os_release(void *p, size_t n);
size_t sa_os_page_size(void);

/* Futexes.  shared != 0 for words in memory shared between processes.
 * A timeout_ms < 0 waits forever.  Returns 0 when woken, -1 otherwise
 * (value changed, timeout or signal). */
int sa_os_futex_wait(uint32_t *word, uint32_t expected, int shared, long timeout_ms);
void sa_os_futex_wake(uint32_t *word, int count, int shared);

/* Writes all of buf to fd, retrying short writes; errors are ignored. */
void sa_os_write(int fd, const char *buf, size_t n);
/* A private copy of stderr (close-on-exec), for a report at exit that
 * should survive the program closing its stderr; -1 if none. */
int sa_os_dup_stderr(void);

/* Clocks, in nanoseconds. */
uint64_t sa_os_now_ns(void);        /* CLOCK_REALTIME */
uint64_t sa_os_mono_coarse_s(void); /* CLOCK_MONOTONIC_COARSE, seconds */

/* Resident set size of this process in bytes, 0 if unknown. */
size_t sa_os_rss(void);

/* Calls fn on each line of the file at path (a /proc file: read as it is
 * produced, no size known), without its newline and cut to cap - 1
 * bytes, in buf, until fn returns 0 or the file ends.  Returns -1 if the
 * file cannot be opened, else 0. */
int sa_os_each_line(const char *path, char *buf, size_t cap,
                    int (*fn)(const char *line, void *ctx), void *ctx);

/* Shared memory for the snapshot.  Creates a fresh segment of size bytes
 * named name (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600), checks that it is a
 * regular file owned by us, maps it and returns the mapping, or NULL. */
void *sa_os_shm_create(const char *name, size_t size);
void sa_os_shm_unmap(void *p, size_t size);
void sa_os_shm_unlink(const char *name);

/* This process's id and real user id. */
uint32_t sa_os_pid(void);
uint32_t sa_os_uid(void);
/* The CPUs this process may run on (at least 1). */
int sa_os_cpu_count(void);

/* Starts a thread with every signal blocked running fn(arg); 0 or -1. */
int sa_os_thread_start(void *(*fn)(void *), void *arg);

/* A hook run as a thread ends: once created, each thread that arms it
 * with a non-NULL value has fn(value) called at its exit (a pthread key's
 * destructor).  Create returns 0 or -1; arm does nothing for a hook that
 * could not be created. */
typedef struct sa_os_exit_hook {
  unsigned key;
  int ok;
} sa_os_exit_hook;
int sa_os_exit_hook_create(sa_os_exit_hook *hook, void (*fn)(void *));
void sa_os_exit_hook_arm(const sa_os_exit_hook *hook, void *value);

/* Handlers around fork, as pthread_atfork; 0 or -1.  libc may allocate
 * their record: call it once malloc can be served. */
int sa_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* The executable name of this process (from /proc/self/exe or comm) into
 * buf, NUL-terminated; never allocates. */
void sa_os_exe_name(char *buf, size_t cap);

/* 64 random bits from the kernel's start-up entropy (AT_RANDOM). */
uint64_t sa_os_random64(void);
#endif
