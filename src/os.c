/* os.c - the only file that talks to the kernel and to pthreads: address
 * space, futexes, clocks, shared memory, threads, their exit hooks, fork
 * handlers and raw writes.  See os.h for the contract.  Nothing here may
 * allocate: the allocator calls it from inside malloc.
 *
 * Most calls go straight to the kernel with syscall() rather than through
 * their libc wrappers: the kernel maps a library's code into a process in
 * 64 KiB stretches around each first use, so every wrapper that only the
 * allocator would call costs a small program resident memory.  The clocks
 * are the exception: the allocator reads one on frees of large blocks, and
 * libc's clock_gettime answers from the vDSO without entering the kernel. */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"

void *sa_os_reserve(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void sa_os_unreserve(void *p, size_t size) {
  munmap(p, size);
}

int sa_os_release(void *p, size_t n) {
  return (int)syscall(SYS_madvise, p, n, MADV_DONTNEED);
}

size_t sa_os_page_size(void) {
  static size_t page;
  if (!page) page = (size_t)getauxval(AT_PAGESZ);
  if (!page) page = 4096;
  return page;
}

int sa_os_futex_wait(uint32_t *word, uint32_t expected, int shared, long timeout_ms) {
  struct timespec ts, *tp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (timeout_ms % 1000) * 1000000L;
    tp = &ts;
  }
  int op = FUTEX_WAIT | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  int saved = errno;
  long r = syscall(SYS_futex, word, op, expected, tp, NULL, 0);
  errno = saved;
  return r == 0 ? 0 : -1;
}

void sa_os_futex_wake(uint32_t *word, int count, int shared) {
  int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  int saved = errno;
  syscall(SYS_futex, word, op, count, NULL, NULL, 0);
  errno = saved;
}

__thread uint32_t sa_self_id __attribute__((tls_model("initial-exec")));

uint32_t sa_self_slow(void) {
  return sa_self_id = (uint32_t)syscall(SYS_gettid);
}

/* The lock's slow paths live here because they sleep in the kernel. */
void sa_lock_slow(sa_lock *l) {
  uint32_t me = sa_self();
  for (int spin = 0; spin < 100; spin++) {
    uint32_t expected = 0;
    if (__atomic_load_n(&l->v, __ATOMIC_RELAXED) == 0 &&
        __atomic_compare_exchange_n(&l->v, &expected, me, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
      return;
    __builtin_ia32_pause();
  }
  for (;;) {
    uint32_t v = __atomic_load_n(&l->v, __ATOMIC_RELAXED);
    if (v == 0) {
      /* Taken with the waiters bit: others may still sleep on it. */
      if (__atomic_compare_exchange_n(&l->v, &v, me | SA_LOCK_WAITERS, 0, __ATOMIC_ACQUIRE,
                                      __ATOMIC_RELAXED))
        return;
      continue;
    }
    if (!(v & SA_LOCK_WAITERS) &&
        !__atomic_compare_exchange_n(&l->v, &v, v | SA_LOCK_WAITERS, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
      continue;
    sa_os_futex_wait(&l->v, v | SA_LOCK_WAITERS, 0, -1);
  }
}

void sa_unlock_slow(sa_lock *l) {
  sa_os_futex_wake(&l->v, 1, 0);
}

void sa_os_write(int fd, const char *buf, size_t n) {
  int saved = errno;
  while (n > 0) {
    ssize_t w = syscall(SYS_write, fd, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    buf += w;
    n -= (size_t)w;
  }
  errno = saved;
}

int sa_os_dup_stderr(void) {
  return (int)syscall(SYS_fcntl, 2, F_DUPFD_CLOEXEC, 3);
}

uint64_t sa_os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sa_os_mono_coarse_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec;
}

/* Reads a small /proc file into buf; returns the length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap) {
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = syscall(SYS_read, fd, buf, cap - 1);
  syscall(SYS_close, fd);
  if (n >= 0) buf[n] = 0;
  return n;
}

int sa_os_each_line(const char *path, char *buf, size_t cap,
                    int (*fn)(const char *line, void *ctx), void *ctx) {
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char chunk[4096];
  size_t len = 0;
  ssize_t got;
  int more = 1;
  while (more && (got = syscall(SYS_read, fd, chunk, sizeof chunk)) > 0) {
    for (ssize_t i = 0; i < got && more; i++) {
      if (chunk[i] != '\n') {
        if (len < cap - 1) buf[len++] = chunk[i];
        continue;
      }
      buf[len] = 0;
      len = 0;
      more = fn(buf, ctx);
    }
  }
  syscall(SYS_close, fd);
  return 0;
}

size_t sa_os_rss(void) {
  char buf[128];
  if (read_small("/proc/self/statm", buf, sizeof buf) <= 0) return 0;
  const char *s = buf;
  while (*s && *s != ' ') s++;  /* skip total size */
  size_t pages = 0;
  for (s++; *s >= '0' && *s <= '9'; s++) pages = pages * 10 + (size_t)(*s - '0');
  return pages * sa_os_page_size();
}

void sa_os_exe_name(char *buf, size_t cap) {
  ssize_t n = syscall(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", buf, cap - 1);
  if (n > 0) {
    buf[n] = 0;
    return;
  }
  n = read_small("/proc/self/comm", buf, cap);
  if (n <= 0) {
    buf[0] = 0;
    return;
  }
  if (buf[n - 1] == '\n') buf[n - 1] = 0;
}

/* Shared memory objects are files in /dev/shm (as shm_open makes them). */
static int shm_path(const char *name, char *buf, size_t cap) {
  static const char dir[] = "/dev/shm";
  size_t n = sizeof dir - 1, i = 0;
  if (name[0] != '/') return -1;
  memcpy(buf, dir, n);
  for (; name[i]; i++) {
    if (n + i + 1 >= cap || (i && name[i] == '/')) return -1;
    buf[n + i] = name[i];
  }
  buf[n + i] = 0;
  return 0;
}

void *sa_os_shm_create(const char *name, size_t size) {
  char path[128];
  if (shm_path(name, path, sizeof path) != 0) {
    errno = EINVAL;
    return NULL;
  }
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path,
                        O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return NULL;
  struct stat st;
  void *p = NULL;
  if (syscall(SYS_fstat, fd, &st) == 0 && S_ISREG(st.st_mode) &&
      st.st_uid == (uid_t)syscall(SYS_geteuid) && syscall(SYS_ftruncate, fd, (off_t)size) == 0) {
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) p = NULL;
  }
  int saved = errno;
  syscall(SYS_close, fd);
  if (!p) sa_os_shm_unlink(name);
  errno = saved;
  return p;
}

void sa_os_shm_unmap(void *p, size_t size) {
  munmap(p, size);
}

void sa_os_shm_unlink(const char *name) {
  int saved = errno;
  char path[128];
  if (shm_path(name, path, sizeof path) == 0) syscall(SYS_unlinkat, AT_FDCWD, path, 0);
  errno = saved;
}

uint32_t sa_os_pid(void) { return (uint32_t)syscall(SYS_getpid); }
uint32_t sa_os_uid(void) { return (uint32_t)syscall(SYS_getuid); }

int sa_os_cpu_count(void) {
  uint64_t set[16] = {0};  /* up to 1024 CPUs */
  long n = syscall(SYS_sched_getaffinity, 0, sizeof set, set);
  int count = 0;
  for (long i = 0; n > 0 && i < n / 8; i++) count += __builtin_popcountll(set[i]);
  return count > 0 ? count : 1;
}

int sa_os_thread_start(void *(*fn)(void *), void *arg) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t t;
  int r = pthread_create(&t, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return r == 0 ? 0 : -1;
}

_Static_assert(sizeof(pthread_key_t) == sizeof(unsigned), "a pthread key fits sa_os_exit_hook");

int sa_os_exit_hook_create(sa_os_exit_hook *hook, void (*fn)(void *)) {
  pthread_key_t key;
  hook->ok = pthread_key_create(&key, fn) == 0;
  hook->key = (unsigned)key;
  return hook->ok ? 0 : -1;
}

void sa_os_exit_hook_arm(const sa_os_exit_hook *hook, void *value) {
  if (hook->ok) pthread_setspecific((pthread_key_t)hook->key, value);
}

int sa_os_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
  return pthread_atfork(prepare, parent, child) == 0 ? 0 : -1;
}

uint64_t sa_os_random64(void) {
  uint64_t r = 0;
  const unsigned char *a = (const unsigned char *)getauxval(AT_RANDOM);
  if (a) memcpy(&r, a + 8, sizeof r);
  return r ^ sa_os_now_ns();
}
