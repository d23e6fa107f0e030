/* measure - run one command and report its wall time and peak RSS.
 *
 * usage: measure REPORT [-p LIB] -- COMMAND [ARG...]
 *
 * bench/run starts every measured program through this launcher rather
 * than forking it from Python: a child's peak RSS (ru_maxrss) includes the
 * memory of the process it was forked from, and a Python interpreter would
 * add its own ~20 MiB to every figure.  This launcher is small, so the
 * child it forks starts from almost nothing.
 *
 * With -p LIB, LIB goes into LD_PRELOAD of the child only, not of this
 * launcher.  The command's stdin, stdout and stderr are inherited.  When it
 * has finished, REPORT gets one line
 *
 *     status=N wall=SECONDS maxrss=KIB
 *
 * where N is the exit status, or minus the signal number that killed it.
 * Exit status: the command's, 128 + signal if it was killed, 125 if it
 * could not be started, 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    execvp(argv[cmd], argv + cmd);
    fprintf(stderr, "measure: cannot run '%s': %s\n", argv[cmd],
            strerror(errno));
    _exit(125);
  }

  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
      return 125;
    }
  }
  double wall = now() - t0;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  fprintf(report, "status=%d wall=%.6f maxrss=%ld\n", code, wall,
          ru.ru_maxrss);
  if (fclose(report) != 0)
    return 125;
  return code >= 0 ? code : 128 - code;
}
