/* Unit tests of quiescing with freeze/thaw hooks (src/connectors/quiesce.c,
 * docs/quiesce.md).
 *
 * Every test gets a fresh directory /tmp/vmback-test-quiesce-XXXXXX/tN
 * with a freeze.d/ of small /bin/sh hooks; the hooks append
 * "<name> <action>" to tN/log so the order of runs can be checked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "connectors/quiesce.h"

static char tmpdir[64];
static char tdir[256];     /* this test's directory */
static char hdir[300];     /* its freeze.d */
static char logp[300];     /* its log */
static int test_no;

/* Monotonic milliseconds for timing assertions. */
static uint64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* Fresh directory and freeze.d per test. */
static int
setup (void **state)
{
  (void) state;
  snprintf (tdir, sizeof tdir, "%s/t%d", tmpdir, ++test_no);
  snprintf (hdir, sizeof hdir, "%s/freeze.d", tdir);
  snprintf (logp, sizeof logp, "%s/log", tdir);
  if (mkdir (tdir, 0700) < 0 || mkdir (hdir, 0755) < 0)
    return -1;
  return 0;
}

static int
group_setup (void **state)
{
  (void) state;
  strcpy (tmpdir, "/tmp/vmback-test-quiesce-XXXXXX");
  umask (022);
  return mkdtemp (tmpdir) ? 0 : -1;
}

static int
group_teardown (void **state)
{
  (void) state;
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system (cmd) == 0 ? 0 : -1;
}

/* Write hook `name` in hdir with mode `mode`: a shell script that logs
 * "<name> <arg>" and then runs `body` (may be ""). */
static void
hook (const char *name, mode_t mode, const char *body)
{
  char p[512];
  snprintf (p, sizeof p, "%s/%s", hdir, name);
  FILE *f = fopen (p, "w");
  assert_non_null (f);
  fprintf (f, "#!/bin/sh\necho \"%s $1\" >> '%s'\n%s\n", name, logp, body);
  assert_int_equal (fclose (f), 0);
  assert_int_equal (chmod (p, mode), 0);
}

/* The log file's content ("" when missing), static buffer. */
static const char *
read_log (void)
{
  static char buf[4096];
  buf[0] = '\0';
  FILE *f = fopen (logp, "r");
  if (f == NULL)
    return buf;
  size_t n = fread (buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose (f);
  return buf;
}

/* Options for this test's hooks dir, TRY mode, short limits. */
static struct quiesce_opts
opts (enum quiesce_mode mode)
{
  struct quiesce_opts o = { 0 };
  o.mode = mode;
  o.hooks_dir = hdir;
  o.vmx_path = "/vms/web/web.vmx";
  o.snapshot_name = "vmback-1";
  o.freeze_timeout_ms = 10000;
  o.thaw_timeout_ms = 10000;
  o.kill_grace_ms = 300;
  return o;
}

/* True when pid no longer runs (gone or a zombie), waiting up to 3 s for
 * the kill to land. */
static bool
process_gone (pid_t pid)
{
  for (int i = 0; i < 300; i++) {
    if (kill (pid, 0) < 0 && errno == ESRCH)
      return true;
    char p[64], st[256];
    snprintf (p, sizeof p, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (p, "r");
    if (f) {
      size_t n = fread (st, 1, sizeof st - 1, f);
      fclose (f);
      st[n] = '\0';
      char *rp = strrchr (st, ')');
      if (rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'))
        return true;
    }
    usleep (10000);
  }
  return false;
}

/* Number of open file descriptors of this process (leak checks). */
static int
count_fds (void)
{
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl (fd, F_GETFD) >= 0)
      n++;
  return n;
}

/* --- tests ------------------------------------------------------------- */

/* Hooks freeze in lexical order and thaw in reverse; non-executable,
 * dot, backup files and directories are not hooks. */
static void
test_order_and_reverse_thaw (void **state)
{
  (void) state;
  hook ("20-b", 0755, "");
  hook ("10-a", 0755, "");
  hook ("30-c", 0700, "");
  hook ("15-not-exec", 0644, "");
  hook (".hidden", 0755, "");
  hook ("25-edit~", 0755, "");
  hook ("26-old.bak", 0755, "");
  char sub[400];
  snprintf (sub, sizeof sub, "%s/27-dir", hdir);
  assert_int_equal (mkdir (sub, 0755), 0);

  struct quiesce_opts o = opts (QUIESCE_TRY);
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_non_null (q);
  assert_int_equal (quiesce_hook_count (q), 3);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_FILESYSTEM);
  assert_null (quiesce_warning (q));
  assert_string_equal (read_log (), "10-a freeze\n20-b freeze\n30-c freeze\n");
  assert_int_equal (quiesce_mark_snapshot (q, &err), 0);
  assert_int_equal (quiesce_thaw (q, &err), 0);
  assert_string_equal (read_log (), "10-a freeze\n20-b freeze\n30-c freeze\n"
                       "30-c thaw\n20-b thaw\n10-a thaw\n");
  /* a second thaw (cleanup path) does nothing */
  assert_int_equal (quiesce_thaw (q, &err), 0);
  assert_int_equal (quiesce_signal (q), 0);
  assert_string_equal (quiesce_level_name (quiesce_level (q)), "filesystem");
  quiesce_free (q);
  assert_int_equal (err.code, 0);
}

/* An "app-" hook (after an optional number prefix) makes the level
 * application; names that merely contain "app" do not. */
static void
test_app_level (void **state)
{
  (void) state;
  hook ("10-apps", 0755, "");
  hook ("20-x-app-y", 0755, "");
  hook ("30-application", 0755, "");
  struct quiesce_opts o = opts (QUIESCE_REQUIRED);
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_FILESYSTEM);
  quiesce_free (q);

  unlink (logp);
  hook ("05_app-db", 0755, "");
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_APPLICATION);
  quiesce_free (q);

  /* the plain prefix, sorting after the numbered file-system hook */
  char p[400];
  snprintf (p, sizeof p, "%s/05_app-db", hdir);
  assert_int_equal (unlink (p), 0);
  hook ("app-db", 0755, "");
  unlink (logp);
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_APPLICATION);
  assert_string_equal (quiesce_level_name (quiesce_level (q)), "application");
  assert_int_equal (quiesce_thaw (q, &err), 0);
  assert_string_equal (read_log (), "10-apps freeze\n20-x-app-y freeze\n"
                       "30-application freeze\napp-db freeze\n"
                       "app-db thaw\n30-application thaw\n"
                       "20-x-app-y thaw\n10-apps thaw\n");
  quiesce_free (q);
  assert_int_equal (err.code, 0);
}

/* No hooks directory: crash (warning), an error when required; quiesce
 * off runs nothing even when hooks exist. */
static void
test_no_hooks (void **state)
{
  (void) state;
  struct quiesce_opts o = opts (QUIESCE_TRY);
  char missing[400];
  snprintf (missing, sizeof missing, "%s/nothing.d", tdir);
  o.hooks_dir = missing;
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_CRASH);
  assert_non_null (quiesce_warning (q));
  assert_non_null (strstr (quiesce_warning (q), "no freeze hooks"));
  assert_int_equal (quiesce_thaw (q, &err), 0);
  quiesce_free (q);

  o.mode = QUIESCE_REQUIRED;
  assert_int_equal (quiesce_freeze (&o, &q, &err), -ENOENT);
  assert_non_null (strstr (err.msg, "quiescing required but there are no "
                           "freeze hooks in"));
  quiesce_free (q);

  /* an empty directory is the same as none */
  vb_err_clear (&err);
  o = opts (QUIESCE_TRY);
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_CRASH);
  quiesce_free (q);

  hook ("10-a", 0755, "");
  o.mode = QUIESCE_OFF;
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_CRASH);
  assert_null (quiesce_warning (q));
  assert_int_equal (quiesce_thaw (q, &err), 0);
  quiesce_free (q);
  assert_string_equal (read_log (), "");
  assert_string_equal (quiesce_level_name (QUIESCE_LEVEL_CRASH), "crash");
}

/* A failing freeze hook: no later hook starts, the started ones thaw in
 * reverse, crash with the hook's output in the warning; required: -EIO. */
static void
test_failing_freeze (void **state)
{
  (void) state;
  hook ("10-a", 0755, "");
  hook ("20-b", 0755, "[ \"$1\" = freeze ] && { echo one; echo 'boom: disk busy' >&2; exit 3; }; exit 0");
  hook ("30-c", 0755, "");
  struct quiesce_opts o = opts (QUIESCE_TRY);
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (err.code, 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_CRASH);
  assert_int_equal (quiesce_started_count (q), 2);
  const char *w = quiesce_warning (q);
  assert_non_null (w);
  assert_non_null (strstr (w, "freeze hook '20-b' exited with status 3"));
  assert_non_null (strstr (w, "one | boom: disk busy"));
  assert_int_equal (quiesce_thaw (q, &err), 0);
  assert_string_equal (read_log (), "10-a freeze\n20-b freeze\n"
                       "20-b thaw\n10-a thaw\n");
  quiesce_free (q);

  unlink (logp);
  o.mode = QUIESCE_REQUIRED;
  assert_int_equal (quiesce_freeze (&o, &q, &err), -EIO);
  assert_non_null (strstr (err.msg, "quiescing required but freeze hook "
                           "'20-b' exited with status 3"));
  quiesce_free (q);             /* thaws on the cleanup path */
  assert_string_equal (read_log (), "10-a freeze\n20-b freeze\n"
                       "20-b thaw\n10-a thaw\n");
}

/* A hanging freeze hook is cut at the deadline; thaw still runs it and
 * the earlier ones; crash with a warning, or -ETIMEDOUT when required. */
static void
test_hang_timeout (void **state)
{
  (void) state;
  hook ("10-a", 0755, "");
  hook ("20-hang", 0755, "[ \"$1\" = freeze ] && { echo stuck; sleep 1000; }; exit 0");
  hook ("30-c", 0755, "");
  struct quiesce_opts o = opts (QUIESCE_TRY);
  o.freeze_timeout_ms = 2000;
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  int fds = count_fds ();
  uint64_t t0 = now_ms ();
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  uint64_t dt = now_ms () - t0;
  assert_true (dt >= 1900 && dt < 4000);
  assert_true (quiesce_freeze_ms (q) >= 1900);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_CRASH);
  const char *w = quiesce_warning (q);
  assert_non_null (w);
  assert_non_null (strstr (w, "freeze hook '20-hang' timed out"));
  assert_non_null (strstr (w, "stuck"));
  assert_non_null (strstr (w, "2000 ms freeze limit"));
  assert_int_equal (quiesce_thaw (q, &err), 0);
  assert_string_equal (read_log (), "10-a freeze\n20-hang freeze\n"
                       "20-hang thaw\n10-a thaw\n");
  quiesce_free (q);

  unlink (logp);
  o.mode = QUIESCE_REQUIRED;
  assert_int_equal (quiesce_freeze (&o, &q, &err), -ETIMEDOUT);
  assert_non_null (strstr (err.msg, "quiescing required but freeze hook "
                           "'20-hang' timed out"));
  assert_int_equal (quiesce_thaw (q, NULL), 0);
  assert_string_equal (read_log (), "10-a freeze\n20-hang freeze\n"
                       "20-hang thaw\n10-a thaw\n");
  quiesce_free (q);
  assert_int_equal (count_fds (), fds);
}

/* On timeout the whole process group dies, also a background child that
 * ignores SIGTERM (it needs the SIGKILL after the grace period). */
static void
test_process_group_killed (void **state)
{
  (void) state;
  char body[1024];
  snprintf (body, sizeof body,
            "[ \"$1\" = freeze ] || exit 0\n"
            "sleep 1000 & echo $! > '%s/bg1'\n"
            "(trap '' TERM; exec sleep 1001) & echo $! > '%s/bg2'\n"
            "sleep 1000\n", tdir, tdir);
  hook ("10-spawner", 0755, body);
  struct quiesce_opts o = opts (QUIESCE_TRY);
  o.freeze_timeout_ms = 1000;
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_CRASH);
  for (int i = 1; i <= 2; i++) {
    char p[400];
    snprintf (p, sizeof p, "%s/bg%d", tdir, i);
    FILE *f = fopen (p, "r");
    assert_non_null (f);
    int pid = 0;
    assert_int_equal (fscanf (f, "%d", &pid), 1);
    fclose (f);
    assert_true (pid > 1);
    assert_true (process_gone (pid));
  }
  assert_int_equal (quiesce_thaw (q, &err), 0);
  quiesce_free (q);
}

/* SIGINT sent to vmback by a freeze hook: vmback survives, the freeze is
 * aborted (-EINTR), every started hook thaws, the caller sees SIGINT and
 * its handler is back afterwards. */
static void
test_sigint_during_freeze (void **state)
{
  (void) state;
  hook ("10-a", 0755, "");
  hook ("20-sig", 0755, "[ \"$1\" = freeze ] && { kill -INT $PPID; sleep 5; }; exit 0");
  hook ("30-c", 0755, "");
  struct sigaction before;
  sigaction (SIGINT, NULL, &before);
  int fds = count_fds ();
  struct quiesce_opts o = opts (QUIESCE_TRY);
  o.catch_signals = true;
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  uint64_t t0 = now_ms ();
  assert_int_equal (quiesce_freeze (&o, &q, &err), -EINTR);
  assert_true (now_ms () - t0 < 3000);  /* the sleep 5 was cut short */
  assert_non_null (strstr (err.msg, "freeze was interrupted by SIGINT"));
  assert_int_equal (quiesce_signal (q), SIGINT);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_CRASH);
  assert_int_equal (quiesce_thaw (q, NULL), 0);
  assert_string_equal (read_log (), "10-a freeze\n20-sig freeze\n"
                       "20-sig thaw\n10-a thaw\n");
  assert_int_equal (quiesce_signal (q), SIGINT);
  quiesce_free (q);
  struct sigaction after;
  sigaction (SIGINT, NULL, &after);
  assert_true (after.sa_handler == before.sa_handler);
  assert_int_equal (count_fds (), fds);   /* signal pipe closed too */
}

/* SIGINT and SIGTERM while frozen (between freeze and thaw) are held: the
 * thaw runs, the caller learns of the first signal. */
static void
test_signal_while_frozen (void **state)
{
  (void) state;
  hook ("10-a", 0755, "");
  struct quiesce_opts o = opts (QUIESCE_TRY);
  o.catch_signals = true;
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_signal (q), 0);
  raise (SIGTERM);
  raise (SIGINT);
  assert_int_equal (quiesce_signal (q), SIGTERM);
  /* a second session cannot catch signals at the same time */
  struct quiesce_state *q2 = NULL;
  struct vb_error err2 = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q2, &err2), -EBUSY);
  quiesce_free (q2);
  assert_int_equal (quiesce_thaw (q, &err), 0);
  assert_string_equal (read_log (), "10-a freeze\n10-a thaw\n");
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_FILESYSTEM);
  assert_int_equal (quiesce_signal (q), SIGTERM);
  quiesce_free (q);
}

/* Megabytes of output neither block the hook nor grow our memory; the
 * last lines are quoted. */
static void
test_big_output (void **state)
{
  (void) state;
  hook ("10-noisy", 0755, "head -c 20000000 /dev/zero | tr '\\000' x >&2\n"
        "echo; echo LAST-LINE-MARK; exit 4");
  struct rusage ru0, ru1;
  getrusage (RUSAGE_SELF, &ru0);
  struct quiesce_opts o = opts (QUIESCE_TRY);
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  uint64_t t0 = now_ms ();
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_true (now_ms () - t0 < 8000);
  getrusage (RUSAGE_SELF, &ru1);
  assert_true (ru1.ru_maxrss - ru0.ru_maxrss < 4096);   /* KiB */
  const char *w = quiesce_warning (q);
  assert_non_null (w);
  assert_non_null (strstr (w, "exited with status 4"));
  assert_non_null (strstr (w, "LAST-LINE-MARK"));
  assert_true (strlen (w) < 600);
  quiesce_free (q);
}

/* All thaw hooks run even when one fails and one hangs; thaw reports it. */
static void
test_thaw_failures (void **state)
{
  (void) state;
  hook ("10-a", 0755, "[ \"$1\" = thaw ] && { echo cannot unlock; exit 1; }; exit 0");
  hook ("20-b", 0755, "[ \"$1\" = thaw ] && sleep 1000; exit 0");
  hook ("30-c", 0755, "");
  struct quiesce_opts o = opts (QUIESCE_TRY);
  o.thaw_timeout_ms = 500;
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_FILESYSTEM);
  uint64_t t0 = now_ms ();
  assert_int_equal (quiesce_thaw (q, &err), -ETIMEDOUT);
  assert_true (now_ms () - t0 < 3000);
  assert_string_equal (read_log (), "10-a freeze\n20-b freeze\n30-c freeze\n"
                       "30-c thaw\n20-b thaw\n10-a thaw\n");
  assert_non_null (strstr (err.msg, "2 of 3 thaw hooks failed, the guest "
                           "may still be frozen: thaw hook '20-b' timed out"));
  quiesce_free (q);
}

/* The snapshot must be taken within max_window_ms of the freeze. */
static void
test_window_limit (void **state)
{
  (void) state;
  hook ("app-db", 0755, "");
  struct quiesce_opts o = opts (QUIESCE_TRY);
  o.max_window_ms = 100;
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_mark_snapshot (q, &err), 0);  /* in time */
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_APPLICATION);
  usleep (250000);
  assert_true (quiesce_window_ms (q) >= 250);
  assert_int_equal (quiesce_mark_snapshot (q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_CRASH);
  assert_non_null (strstr (quiesce_warning (q), "more than the 100 ms limit"));
  assert_int_equal (quiesce_thaw (q, &err), 0);
  uint64_t w = quiesce_window_ms (q);
  usleep (50000);
  assert_true (quiesce_window_ms (q) == w);   /* fixed once thawed */
  quiesce_free (q);

  o.mode = QUIESCE_REQUIRED;
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  usleep (250000);
  assert_int_equal (quiesce_mark_snapshot (q, &err), -ETIMEDOUT);
  assert_non_null (strstr (err.msg, "quiescing required but the guest was "
                           "frozen"));
  quiesce_free (q);
}

/* A hook anyone may rewrite is refused before any hook runs. */
static void
test_unsafe_hook (void **state)
{
  (void) state;
  hook ("10-a", 0755, "");
  hook ("20-open", 0777, "");
  struct quiesce_opts o = opts (QUIESCE_TRY);
  struct quiesce_state *q = NULL;
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_CRASH);
  assert_non_null (strstr (quiesce_warning (q), "20-open' is writable by "
                           "others"));
  assert_int_equal (quiesce_started_count (q), 0);
  quiesce_free (q);
  assert_string_equal (read_log (), "");
}

/* Hooks find VMBACK_VM and VMBACK_SNAPSHOT; the default directory comes
 * from the .vmx path. */
static void
test_env_and_default_dir (void **state)
{
  (void) state;
  char buf[512];
  struct vb_error err = { 0 };
  assert_int_equal (quiesce_hooks_dir ("/vms/web/web.vmx", buf, sizeof buf,
                                       &err), 0);
  assert_string_equal (buf, "/vms/web/web.vmback/freeze.d");
  assert_int_equal (quiesce_hooks_dir ("db.VMX", buf, sizeof buf, &err), 0);
  assert_string_equal (buf, "db.vmback/freeze.d");
  assert_int_equal (quiesce_hooks_dir ("/vms/x/.vmx", buf, sizeof buf, &err),
                    -EINVAL);
  vb_err_clear (&err);
  assert_int_equal (quiesce_hooks_dir ("/vms/web/web.vmx", buf, 10, &err),
                    -ENAMETOOLONG);
  vb_err_clear (&err);

  /* a VM directory with the hooks next to the .vmx */
  char vmx[400], vdir[400];
  snprintf (vmx, sizeof vmx, "%s/vm1.vmx", tdir);
  snprintf (vdir, sizeof vdir, "%s/vm1.vmback", tdir);
  assert_int_equal (mkdir (vdir, 0755), 0);
  snprintf (hdir, sizeof hdir, "%s/vm1.vmback/freeze.d", tdir);
  assert_int_equal (mkdir (hdir, 0755), 0);
  char body[600];
  snprintf (body, sizeof body, "echo \"vm=$VMBACK_VM snap=$VMBACK_SNAPSHOT\" >> '%s'",
            logp);
  hook ("10-env", 0755, body);
  setenv ("VMBACK_SNAPSHOT", "stale", 1);
  struct quiesce_opts o = opts (QUIESCE_TRY);
  o.hooks_dir = NULL;
  o.vmx_path = vmx;
  struct quiesce_state *q = NULL;
  assert_int_equal (quiesce_freeze (&o, &q, &err), 0);
  assert_int_equal (quiesce_level (q), QUIESCE_LEVEL_FILESYSTEM);
  quiesce_free (q);             /* thaw via free */
  unsetenv ("VMBACK_SNAPSHOT");
  char want[1200];
  snprintf (want, sizeof want, "10-env freeze\nvm=%s snap=vmback-1\n"
            "10-env thaw\nvm=%s snap=vmback-1\n", vmx, vmx);
  assert_string_equal (read_log (), want);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup (test_order_and_reverse_thaw, setup),
    cmocka_unit_test_setup (test_app_level, setup),
    cmocka_unit_test_setup (test_no_hooks, setup),
    cmocka_unit_test_setup (test_failing_freeze, setup),
    cmocka_unit_test_setup (test_hang_timeout, setup),
    cmocka_unit_test_setup (test_process_group_killed, setup),
    cmocka_unit_test_setup (test_sigint_during_freeze, setup),
    cmocka_unit_test_setup (test_signal_while_frozen, setup),
    cmocka_unit_test_setup (test_big_output, setup),
    cmocka_unit_test_setup (test_thaw_failures, setup),
    cmocka_unit_test_setup (test_window_limit, setup),
    cmocka_unit_test_setup (test_unsafe_hook, setup),
    cmocka_unit_test_setup (test_env_and_default_dir, setup),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
