/* measure - run one command and report its wall time and peak RSS.
 *
 * usage: measure REPORT [-p LIB] -- COMMAND [ARG...]
 *
 * bench/run starts every measured program through this launcher rather
 * than forking it from Python: a child's peak RSS includes the memory of
 * the process it was forked from, and a Python interpreter would add its
 * own ~20 MiB to every figure.  This launcher is small, so the child it
 * forks starts from almost nothing.
 *
 * Peak RSS is read from /proc/PID/status (VmHWM) as the command exits,
 * while its memory still exists: the launcher traces the child for that
 * one stop (PTRACE_O_TRACEEXIT) and lets every signal through.  wait4's
 * ru_maxrss is not enough on its own: since Linux 6.2 a process's RSS is
 * kept in per-CPU counters and ru_maxrss comes from their approximate
 * total, which can miss up to a batch of pages per CPU and counter.  On
 * programs that peak at 1.7-5 MiB it read 60-220 KiB low on average, and
 * not by the same for every allocator.  The figure reported is the larger
 * of the two, so programs the command started and waited for (ru_maxrss
 * counts them) still count.
 * Where tracing is not allowed, ru_maxrss alone is reported.
 *
 * With -p LIB, LIB goes into LD_PRELOAD of the child only, not of this
 * launcher.  The command's stdin, stdout and stderr are inherited.  When it
 * has finished, REPORT gets one line
 *
 *     status=N wall=SECONDS maxrss=KIB peak=SOURCE
 *
 * where N is the exit status, or minus the signal number that killed it,
 * and SOURCE is "vmhwm" or "rusage" (tracing was refused).
 * Exit status: the command's, 128 + signal if it was killed, 125 if it
 * could not be started, 2 on bad usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(void)
{
  fprintf(stderr, "usage: measure REPORT [-p LIB] -- COMMAND [ARG...]\n");
  exit(2);
}

/* VmHWM of a live process, in KiB; -1 if it cannot be read. */
static long vm_hwm(pid_t pid)
{
  char path[64], line[256];
  long kib = -1;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

/* Waits for the child to end, letting it run past every ptrace stop;
 * *hwm gets its VmHWM as it exits (unchanged if it was not traced). */
static int wait_child(pid_t pid, int *status, struct rusage *ru, long *hwm)
{
  const int exit_stop = SIGTRAP | PTRACE_EVENT_EXIT << 8;
  const int exec_stop = SIGTRAP | PTRACE_EVENT_EXEC << 8;
  int options_set = 0;
  for (;;) {
    if (wait4(pid, status, 0, ru) < 0) {
      if (errno == EINTR)
        continue;
      fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
      return -1;
    }
    if (!WIFSTOPPED(*status))
      return 0;
    int sig = WSTOPSIG(*status), event = *status >> 8;
    if (!options_set && sig == SIGTRAP) {
      /* The stop after the first exec (a signal may come before it): from
       * now on stop at exit only. */
      ptrace(PTRACE_SETOPTIONS, pid, 0,
             PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
      options_set = 1;
      sig = 0;
    } else if (event == exit_stop) {
      long k = vm_hwm(pid);
      if (k > *hwm)
        *hwm = k;
      sig = 0;
    } else if (event == exec_stop) {
      sig = 0;
    }
    ptrace(PTRACE_CONT, pid, 0, sig);
  }
}

int main(int argc, char **argv)
{
  const char *preload = NULL;
  int cmd = 2;

  if (argc < 4)
    usage();
  if (strcmp(argv[2], "-p") == 0) {
    if (argc < 6)
      usage();
    preload = argv[3];
    cmd = 4;
  }
  if (strcmp(argv[cmd], "--") != 0 || cmd + 1 >= argc)
    usage();
  cmd++;

  FILE *report = fopen(argv[1], "w");
  if (!report) {
    fprintf(stderr, "measure: cannot write '%s': %s\n", argv[1],
            strerror(errno));
    return 125;
  }

  double t0 = now();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "measure: fork: %s\n", strerror(errno));
    return 125;
  }
  if (pid == 0) {
    if (preload && setenv("LD_PRELOAD", preload, 1) != 0)
      _exit(125);
    /* Refused (a sandbox): the child runs untraced, the parent sees no
     * stop and reports ru_maxrss. */
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    execvp(argv[cmd], argv + cmd);
    fprintf(stderr, "measure: cannot run '%s': %s\n", argv[cmd],
            strerror(errno));
    _exit(125);
  }

  int status;
  struct rusage ru;
  long hwm = -1;
  if (wait_child(pid, &status, &ru, &hwm) < 0)
    return 125;
  double wall = now() - t0;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  long peak = hwm > ru.ru_maxrss ? hwm : ru.ru_maxrss;
  fprintf(report, "status=%d wall=%.6f maxrss=%ld peak=%s\n", code, wall,
          peak, hwm >= 0 ? "vmhwm" : "rusage");
  if (fclose(report) != 0)
    return 125;
  return code >= 0 ? code : 128 - code;
}
