/* test_shell.c - scripted simalloc-shell sessions with checked output. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <pty.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"

static sp_result shell(const char *args[], const char *script) {
  const char *argv[8] = {sp_env("SIMALLOC_SHELL")};
  const char *env[] = {"LC_ALL=C", "COLUMNS=64", NULL};
  for (int i = 0; args && args[i] && i < 6; i++)
    argv[i + 1] = args[i];
  sp_opts o = {.env = env, .input = script};
  return sp_run(argv, &o);
}

static void expect_out(const sp_result *r, const char *needle) {
  cr_assert_not_null(strstr(r->out, needle), "'%s' not in stdout:\n%s", needle, r->out);
}

static void expect_err(const sp_result *r, const char *needle) {
  cr_assert_not_null(strstr(r->err, needle), "'%s' not in stderr:\n%s", needle, r->err);
}

static size_t count_prompts(const char *s) {
  size_t n = 0;
  for (const char *p = strstr(s, "simalloc> "); p; p = strstr(p + 1, "simalloc> "))
    n++;
  return n;
}

static size_t lines(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

Test(shell, first_fit_session) {
  sp_result r = shell(NULL,
                        "alloc 100\n"
                        "alloc 200\n"
                        "alloc 50\n"
                        "free 1\n"
                        "alloc 150\n"      /* first fit: into the hole of ptr[1] */
                        "realloc 0 40\n"   /* shrinks in place */
                        "exit\n");
  cr_assert_eq(r.code, 0, "stderr: %s", r.err);
  cr_assert_str_empty(r.err);
  cr_assert_null(strstr(r.out, "simalloc>"), "no prompt without a terminal");
  /* block = size + 8 bytes of header, rounded up to 16 */
  expect_out(&r, "ptr[0] = offset 0 (size 100, block 112)\n");
  expect_out(&r, "ptr[1] = offset 112 (size 200, block 208)\n");
  expect_out(&r, "ptr[2] = offset 320 (size 50, block 64)\n");
  expect_out(&r, "freed ptr[1]\n");
  expect_out(&r, "ptr[3] = offset 112 (size 150, block 160)\n");
  expect_out(&r, "ptr[0] = offset 0 (size 40, block 48)\n");
  sp_free(&r);
}

Test(shell, realloc_moves_when_it_must) {
  sp_result r = shell(NULL,
                        "alloc 64\n"
                        "alloc 64\n"
                        "realloc ptr[0] 300\n"
                        "blocks\n");
  cr_assert_eq(r.code, 0, "stderr: %s", r.err);
  expect_out(&r, "ptr[0] = offset 160 (size 300, block 320), moved from offset 0\n");
  expect_out(&r, "             0x0              80  free\n");
  expect_out(&r, "            0x50              80  used\n");
  expect_out(&r, "            0xa0             320  used\n");
  sp_free(&r);
}

Test(shell, status_and_visualize_share_the_renderer) {
  const char *args[] = {"--arena", "2048", "--width", "32", NULL};
  sp_result r = shell(args,
                        "alloc 1000\n"
                        "status\n"
                        "visualize\n");
  cr_assert_eq(r.code, 0, "stderr: %s", r.err);
  expect_out(&r, "  size                 2.0 KiB (2048)\n");
  expect_out(&r, "used                   1008 B\n");
  expect_out(&r, "used blocks            1\n");
  expect_out(&r, "free blocks            1\n");
  expect_out(&r, "fragmentation          0.0%\n");
  /* 1008 of 2048 bytes used: 15.75 of 32 glyphs */
  expect_out(&r, "################................\n");
  expect_out(&r, "0     512     1K     1.5K     2K\n");
  expect_out(&r, "# used  . free  + cached\n");
  sp_free(&r);
}

Test(shell, fragmentation_is_reported) {
  sp_result r = shell(NULL,
                        "alloc 100\nalloc 100\nalloc 100\nalloc 100\n"
                        "free 0\nfree 2\nstatus\n");
  cr_assert_eq(r.code, 0, "stderr: %s", r.err);
  /* free: 112 + 112 + the tail 1024 - 4 * 112 - 16 */
  expect_out(&r, "free blocks            3\n");
  expect_out(&r, "largest free block     560 B\n");
  expect_out(&r, "free                   784 B\n");
  expect_out(&r, "fragmentation          28.6%\n");
  sp_free(&r);
}

Test(shell, every_error_keeps_going_and_fails_the_run) {
  sp_result r = shell(NULL,
                        "alloc 100\n"
                        "bogus\n"
                        "alloc abc\n"
                        "alloc\n"
                        "alloc 0\n"
                        "alloc -5\n"
                        "alloc 5000\n"
                        "free 7\n"
                        "free x\n"
                        "free\n"
                        "free 0\n"
                        "free 0\n"
                        "realloc 0 10\n"
                        "alloc 10\n"
                        "realloc 1 100000\n"
                        "realloc 1\n"
                        "alloc 1 2\n"
                        "status extra\n"
                        "alloc 16\n");
  cr_assert_eq(r.code, 1);
  expect_err(&r, "line 2: unknown command 'bogus' (try help)\n");
  expect_err(&r, "line 3: 'abc' is not a size\n");
  expect_err(&r, "line 4: alloc needs a size\n");
  expect_err(&r, "line 5: a size must be positive\n");
  expect_err(&r, "line 6: '-5' is not a size\n");
  expect_err(&r, "line 7: out of memory: no free block holds 5000 bytes\n");
  expect_err(&r, "line 8: no handle ptr[7] (1 handed out)\n");
  expect_err(&r, "line 9: 'x' is not a handle\n");
  expect_err(&r, "line 10: free needs a handle\n");
  expect_err(&r, "line 12: ptr[0] is already freed\n");
  expect_err(&r, "line 13: ptr[0] is already freed\n");
  expect_err(&r, "line 15: out of memory: ptr[1] cannot grow to 100000 bytes (left as it was)\n");
  expect_err(&r, "line 16: realloc needs a size\n");
  expect_err(&r, "line 17: too many arguments to alloc\n");
  expect_err(&r, "line 18: too many arguments to status\n");
  cr_assert_eq(lines(r.err), 15, "one line per error:\n%s", r.err);
  /* the good commands in between still ran */
  expect_out(&r, "freed ptr[0]\n");
  expect_out(&r, "ptr[1] = offset 0 (size 10, block 32)\n");
  expect_out(&r, "ptr[2] = offset 32 (size 16, block 32)\n");
  sp_free(&r);
}

Test(shell, comments_blank_lines_and_eof) {
  sp_result r = shell(NULL, "# a comment\n\n   \nalloc 8\nhelp\n");
  cr_assert_eq(r.code, 0, "stderr: %s", r.err);
  expect_out(&r, "ptr[0] = offset 0 (size 8, block 32)\n");
  expect_out(&r, "realloc <i> <size>");
  sp_free(&r);
}

Test(shell, exit_stops_reading) {
  sp_result r = shell(NULL, "quit\nbogus\n");
  cr_assert_eq(r.code, 0);
  cr_assert_str_empty(r.err);
  sp_free(&r);
}

Test(shell, bad_arguments) {
  const char *a1[] = {"--arena", "12", NULL};
  sp_result r = shell(a1, "");
  cr_assert_eq(r.code, 1);
  expect_err(&r, "--arena wants a number from 64 to");
  sp_free(&r);
  const char *a2[] = {"--arena", "lots", NULL};
  r = shell(a2, "");
  cr_assert_eq(r.code, 1);
  sp_free(&r);
  const char *a3[] = {"--nope", NULL};
  r = shell(a3, "");
  cr_assert_eq(r.code, 1);
  expect_err(&r, "unknown argument '--nope'");
  sp_free(&r);
}

Test(shell, big_arena_with_suffix) {
  const char *args[] = {"--arena", "1M", NULL};
  sp_result r = shell(args, "alloc 900K\nalloc 200K\nstatus\n");
  cr_assert_eq(r.code, 1, "the second allocation does not fit");
  expect_out(&r, "ptr[0] = offset 0 (size 921600, block 921616)\n");
  expect_err(&r, "out of memory: no free block holds 204800 bytes");
  expect_out(&r, "  size                 1.0 MiB (1048576)\n");
  sp_free(&r);
}

Test(shell, prompts_on_a_terminal) {
  int master;
  pid_t pid = forkpty(&master, NULL, NULL, NULL);
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    setenv("LC_ALL", "C", 1);
    execl(sp_env("SIMALLOC_SHELL"), "simalloc-shell", (char *)NULL);
    _exit(127);
  }
  cr_assert_eq(write(master, "alloc 10\nfoo\nexit\n", 18), 18);
  char out[8192];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof out - 1 && (n = read(master, out + len, sizeof out - 1 - len)) > 0)
    len += (size_t)n;   /* ends with EIO once the shell is gone */
  out[len] = '\0';
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "a failed command: status 1");
  cr_assert_geq(count_prompts(out), 3, "a prompt per command:\n%s", out);
  cr_assert_not_null(strstr(out, "ptr[0] = offset 0 (size 10, block 32)"), "%s", out);
  cr_assert_not_null(strstr(out, "error: unknown command 'foo'"), "%s", out);
}
