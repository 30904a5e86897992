/* vmback: quiescing with freeze/thaw hook scripts (see quiesce.h and
 * docs/quiesce.md).
 *
 * Each hook runs in its own process group with stdin from /dev/null and
 * stdout+stderr on one pipe of which only the last QTAIL bytes are kept.
 * We wait without reaping (waitid WNOWAIT) so that the group can still be
 * signalled safely while its leader is a zombie: on a deadline the group
 * gets SIGTERM, then SIGKILL after the grace period, and only then is the
 * leader reaped (its pid, which is the group id, cannot be reused before). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "connectors/quiesce.h"

extern char **environ;

#define QTAIL 4096            /* bytes of hook output kept */
#define QTAIL_LINES 3         /* lines of it quoted in messages */
#define QSLICE_MS 50          /* longest sleep between exit checks */

struct qhook {
  char *name;
  char *path;
  bool app;                   /* "app-" prefix: application level */
};

struct quiesce_state {
  enum quiesce_mode mode;
  unsigned freeze_ms, thaw_ms, grace_ms, window_ms;
  char *dir;
  char **envp;                /* environ + VMBACK_* (owned strings marked) */
  size_t nenv_own;            /* the last nenv_own entries are ours */
  struct qhook *hooks;
  size_t n, nstarted;
  enum quiesce_level level;
  char warning[VB_ERROR_MAX];
  bool has_warning;
  int signo;
  bool catching, thawed;
  uint64_t t_freeze_start, t_freeze_done, t_thaw_start;
  struct sigaction old_act[3];
};

/* Outcome of one hook run. */
struct hook_result {
  bool ok;
  bool timed_out, interrupted;
  char what[160];             /* "exited with status 3", "timed out ..." */
  char tail[QTAIL];           /* last output bytes */
  size_t tail_len;
  uint64_t total_out;
};

static const int caught_signals[3] = { SIGINT, SIGTERM, SIGHUP };

/* Signal catching is process-wide, hence static: one session at a time. */
static volatile sig_atomic_t g_signo;
static int g_sigpipe[2] = { -1, -1 };
static bool g_active;

/* Monotonic clock in milliseconds. */
static uint64_t
mono_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* Name of a consistency level, as recorded in manifests and shown. */
const char *
quiesce_level_name (enum quiesce_level l)
{
  switch (l) {
  case QUIESCE_LEVEL_CRASH: return "crash";
  case QUIESCE_LEVEL_FILESYSTEM: return "filesystem";
  case QUIESCE_LEVEL_APPLICATION: return "application";
  }
  return "unknown";
}

/* Derive <dir>/<stem>.vmback/freeze.d from <dir>/<stem>.vmx, so that the
 * hooks travel with the VM directory. */
int
quiesce_hooks_dir (const char *vmx_path, char *buf, size_t size,
                   struct vb_error *err)
{
  if (vmx_path == NULL || *vmx_path == '\0')
    return vb_err (err, EINVAL, "no .vmx path to find the freeze hooks of");
  const char *slash = strrchr (vmx_path, '/');
  const char *base = slash ? slash + 1 : vmx_path;
  size_t dlen = slash ? (size_t) (slash - vmx_path) : 0;
  size_t blen = strlen (base);
  if (blen >= 4 && strcasecmp (base + blen - 4, ".vmx") == 0)
    blen -= 4;
  if (blen == 0)
    return vb_err (err, EINVAL, "cannot derive a hooks directory from '%s'",
                   vmx_path);
  int n;
  if (slash)
    n = snprintf (buf, size, "%.*s/%.*s.vmback/freeze.d", (int) dlen,
                  vmx_path, (int) blen, base);
  else
    n = snprintf (buf, size, "%.*s.vmback/freeze.d", (int) blen, base);
  if (n < 0 || (size_t) n >= size)
    return vb_err (err, ENAMETOOLONG, "hooks directory of '%s' is too long",
                   vmx_path);
  return 0;
}

/* Async-signal-safe handler: remember the first signal, wake the poll. */
static void
on_signal (int sig)
{
  int saved = errno;
  if (g_signo == 0)
    g_signo = sig;
  if (g_sigpipe[1] >= 0) {
    char c = 1;
    ssize_t r = write (g_sigpipe[1], &c, 1);
    (void) r;
  }
  errno = saved;
}

/* Install the catching handlers and the self-pipe that wakes poll(). */
static int
catch_start (struct quiesce_state *st, struct vb_error *err)
{
  if (g_active)
    return vb_err (err, EBUSY, "another quiesce session is active");
  if (pipe2 (g_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
    return vb_errno (err, errno, "cannot create signal pipe");
  g_signo = 0;
  struct sigaction sa;
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset (&sa.sa_mask);
  for (int i = 0; i < 3; i++)
    sigaction (caught_signals[i], &sa, &st->old_act[i]);
  g_active = true;
  st->catching = true;
  return 0;
}

/* Restore the caller's handlers and forget the self-pipe. */
static void
catch_stop (struct quiesce_state *st)
{
  if (!st->catching)
    return;
  for (int i = 0; i < 3; i++)
    sigaction (caught_signals[i], &st->old_act[i], NULL);
  if (st->signo == 0)
    st->signo = g_signo;
  close (g_sigpipe[0]);
  close (g_sigpipe[1]);
  g_sigpipe[0] = g_sigpipe[1] = -1;
  g_active = false;
  st->catching = false;
}

/* Pick up a signal caught by the handler into the state. */
static void
note_signal (struct quiesce_state *st)
{
  if (st->catching && st->signo == 0 && g_signo != 0)
    st->signo = g_signo;
}

/* Names that are never hooks: dotfiles, editor and package-manager
 * leftovers (as run-parts skips them). */
static bool
skip_name (const char *name)
{
  static const char *const sfx[] = { "~", ".bak", ".orig", ".swp", ".tmp",
    ".rpmsave", ".rpmnew", ".dpkg-old", ".dpkg-new", ".dpkg-dist",
    ".dpkg-tmp" };
  size_t len = strlen (name);
  if (len == 0 || name[0] == '.' || name[0] == '#')
    return true;
  for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
    size_t sl = strlen (sfx[i]);
    if (len >= sl && strcmp (name + len - sl, sfx[i]) == 0)
      return true;
  }
  return false;
}

/* The application-level rule: the name, after an optional order prefix
 * of digits and one '-' or '_', starts with "app-" ("app-db", "10-app-db"). */
static bool
is_app_hook (const char *name)
{
  const char *p = name;
  while (*p >= '0' && *p <= '9')
    p++;
  if (p > name && (*p == '-' || *p == '_'))
    p++;
  return strncmp (p, "app-", 4) == 0;
}

/* True when a file or directory could be changed by someone other than
 * us or root: such a hook would run arbitrary code as vmback. */
static bool
unsafe_owner (const struct stat *sb)
{
  return (sb->st_mode & (S_IWGRP | S_IWOTH)) != 0
    || (sb->st_uid != 0 && sb->st_uid != geteuid ());
}

/* qsort comparator: byte order of the names ("C" locale lexical). */
static int
cmp_hook (const void *a, const void *b)
{
  return strcmp (((const struct qhook *) a)->name,
                 ((const struct qhook *) b)->name);
}

/* Collect the hooks of st->dir.  Returns 0 with st->n == 0 when the
 * directory does not exist, a negative errno with err set when the
 * directory is unreadable or unsafe. */
static int
scan_hooks (struct quiesce_state *st, struct vb_error *err)
{
  int dfd = open (st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == ENOENT)
      return 0;
    return vb_errno (err, errno, "cannot open hooks directory '%s'", st->dir);
  }
  struct stat sb;
  if (fstat (dfd, &sb) < 0) {
    int e = errno;
    close (dfd);
    return vb_errno (err, e, "cannot stat hooks directory '%s'", st->dir);
  }
  if (unsafe_owner (&sb)) {
    close (dfd);
    return vb_err (err, EPERM, "hooks directory '%s' is writable by others "
                   "than its owner or not owned by root or us, refusing it",
                   st->dir);
  }
  DIR *d = fdopendir (dfd);
  if (d == NULL) {
    int e = errno;
    close (dfd);
    return vb_errno (err, e, "cannot read hooks directory '%s'", st->dir);
  }
  int r = 0;
  struct dirent *de;
  errno = 0;
  while ((de = readdir (d)) != NULL) {
    const char *name = de->d_name;
    if (skip_name (name))
      continue;
    /* follows symlinks: a link to an executable file is a hook */
    if (fstatat (dfd, name, &sb, 0) < 0 || !S_ISREG (sb.st_mode))
      continue;
    if ((sb.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) == 0
        || faccessat (dfd, name, X_OK, AT_EACCESS) < 0)
      continue;
    if (unsafe_owner (&sb)) {
      r = vb_err (err, EPERM, "hook '%s/%s' is writable by others than its "
                  "owner or not owned by root or us, refusing it",
                  st->dir, name);
      goto out;
    }
    if (st->n >= QUIESCE_MAX_HOOKS) {
      r = vb_err (err, E2BIG, "more than %d hooks in '%s'",
                  QUIESCE_MAX_HOOKS, st->dir);
      goto out;
    }
    if (st->n == 0 && st->hooks == NULL) {
      /* QUIESCE_MAX_HOOKS entries of a few pointers: bounded */
      st->hooks = calloc (QUIESCE_MAX_HOOKS, sizeof *st->hooks);
      if (st->hooks == NULL) {
        r = vb_err (err, ENOMEM, "out of memory");
        goto out;
      }
    }
    struct qhook *h = &st->hooks[st->n];
    h->name = strdup (name);
    if (h->name == NULL
        || asprintf (&h->path, "%s/%s", st->dir, name) < 0) {
      free (h->name);
      h->name = NULL;
      h->path = NULL;
      r = vb_err (err, ENOMEM, "out of memory");
      goto out;
    }
    h->app = is_app_hook (name);
    st->n++;
    errno = 0;
  }
  if (errno != 0)
    r = vb_errno (err, errno, "cannot read hooks directory '%s'", st->dir);
 out:
  closedir (d);
  if (st->n > 1)
    qsort (st->hooks, st->n, sizeof *st->hooks, cmp_hook);
  return r;
}

/* Make the hook environment: ours with VMBACK_VM, VMBACK_SNAPSHOT and
 * VMBACK_HOOKS_DIR replaced.  Built before any fork (malloc is not safe
 * in the child of a threaded process). */
static int
make_env (struct quiesce_state *st, const struct quiesce_opts *o)
{
  size_t n = 0;
  for (char **e = environ; e && *e; e++)
    n++;
  st->envp = calloc (n + 4, sizeof *st->envp);
  if (st->envp == NULL)
    return -ENOMEM;
  size_t k = 0;
  for (char **e = environ; e && *e; e++)
    if (strncmp (*e, "VMBACK_VM=", 10) != 0
        && strncmp (*e, "VMBACK_SNAPSHOT=", 16) != 0
        && strncmp (*e, "VMBACK_HOOKS_DIR=", 17) != 0)
      st->envp[k++] = *e;
  const char *names[3] = { "VMBACK_VM", "VMBACK_SNAPSHOT", "VMBACK_HOOKS_DIR" };
  const char *vals[3] = { o->vmx_path, o->snapshot_name, st->dir };
  for (int i = 0; i < 3; i++) {
    if (vals[i] == NULL)
      continue;
    if (asprintf (&st->envp[k], "%s=%s", names[i], vals[i]) < 0) {
      st->envp[k] = NULL;
      return -ENOMEM;
    }
    k++;
    st->nenv_own++;
  }
  st->envp[k] = NULL;
  return 0;
}

/* Append output to the bounded tail (only the last QTAIL bytes stay). */
static void
tail_add (struct hook_result *res, const char *p, size_t n)
{
  res->total_out += n;
  if (n >= QTAIL) {
    memcpy (res->tail, p + n - QTAIL, QTAIL);
    res->tail_len = QTAIL;
    return;
  }
  if (res->tail_len + n > QTAIL) {
    size_t drop = res->tail_len + n - QTAIL;
    memmove (res->tail, res->tail + drop, res->tail_len - drop);
    res->tail_len -= drop;
  }
  memcpy (res->tail + res->tail_len, p, n);
  res->tail_len += n;
}

/* Render the last QTAIL_LINES lines of the output on one line into out:
 * newlines become " | ", other control bytes '?', at most ~300 bytes
 * (the end is kept). */
static void
tail_format (const struct hook_result *res, char *out, size_t size)
{
  size_t end = res->tail_len;
  while (end > 0 && (res->tail[end - 1] == '\n' || res->tail[end - 1] == '\r'))
    end--;
  size_t start = end;
  int lines = 0;
  while (start > 0) {
    if (res->tail[start - 1] == '\n' && ++lines == QTAIL_LINES)
      break;
    start--;
  }
  if (end - start > 300)
    start = end - 300;
  size_t k = 0;
  for (size_t i = start; i < end && k + 4 < size; i++) {
    unsigned char c = (unsigned char) res->tail[i];
    if (c == '\n') {
      memcpy (out + k, " | ", 3);
      k += 3;
    } else if (c == '\r' || c == '\t') {
      out[k++] = ' ';
    } else {
      out[k++] = (c < 0x20 || c == 0x7f) ? '?' : (char) c;
    }
  }
  out[k] = '\0';
}

/* Child side of the spawn: own process group, default signals, the pipe
 * as stdout/stderr, then exec.  Only async-signal-safe calls. */
static void
child_exec (const struct qhook *h, const char *action, char **envp,
            int nullfd, int outfd)
{
  setpgid (0, 0);
  struct sigaction dfl;
  memset (&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset (&dfl.sa_mask);
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      sigaction (s, &dfl, NULL);
  sigset_t none;
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  if (dup2 (nullfd, 0) < 0 || dup2 (outfd, 1) < 0 || dup2 (outfd, 2) < 0)
    _exit (126);
  close_range (3, ~0u, 0);
  char *argv[3] = { h->path, (char *) action, NULL };
  execve (h->path, argv, envp);
  static const char msg[] = "vmback: cannot execute hook\n";
  ssize_t r = write (2, msg, sizeof msg - 1);
  (void) r;
  _exit (errno == ENOENT ? 127 : 126);
}

/* Read what the pipe has; returns false at EOF or error. */
static bool
drain_output (int fd, struct hook_result *res)
{
  char buf[QTAIL];
  for (;;) {
    ssize_t r = read (fd, buf, sizeof buf);
    if (r > 0) {
      tail_add (res, buf, (size_t) r);
      continue;
    }
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && errno == EAGAIN)
      return true;
    return false;
  }
}

/* Run one hook with `action` until it exits or `deadline` (monotonic ms)
 * passes; with abort_on_signal a caught signal ends it too.  An ended hook
 * gets SIGTERM on its whole process group, SIGKILL after the grace period.
 * Fills res; returns a negative errno only when the hook could not be
 * started at all (res->what says why). */
static int
run_hook (struct quiesce_state *st, const struct qhook *h, const char *action,
          uint64_t deadline, bool abort_on_signal, struct hook_result *res)
{
  memset (res, 0, sizeof *res);
  int pfd[2];
  if (pipe2 (pfd, O_CLOEXEC) < 0) {
    int e = errno;
    snprintf (res->what, sizeof res->what, "could not be started: %s",
              strerror (e));
    return -e;
  }
  int nullfd = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (nullfd < 0) {
    int e = errno;
    close (pfd[0]);
    close (pfd[1]);
    snprintf (res->what, sizeof res->what, "could not be started: %s",
              strerror (e));
    return -e;
  }
  pid_t pid = fork ();
  if (pid == 0)
    child_exec (h, action, st->envp, nullfd, pfd[1]);
  int fork_errno = errno;
  close (nullfd);
  close (pfd[1]);
  if (pid < 0) {
    close (pfd[0]);
    snprintf (res->what, sizeof res->what, "could not be started: %s",
              strerror (fork_errno));
    return -fork_errno;
  }
  setpgid (pid, pid);         /* both sides, to win the race; may fail */
  fcntl (pfd[0], F_SETFL, O_NONBLOCK);
  int outfd = pfd[0];

  bool term_sent = false, kill_sent = false, lost = false;
  uint64_t kill_at = 0;
  for (;;) {
    siginfo_t si;
    memset (&si, 0, sizeof si);
    if (waitid (P_PID, (id_t) pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
      if (si.si_pid == pid)
        break;
    } else if (errno == ECHILD) {
      lost = true;            /* SIGCHLD ignored by the caller: reaped */
      break;
    }
    note_signal (st);
    uint64_t now = mono_ms ();
    if (!term_sent) {
      if (now >= deadline)
        res->timed_out = true;
      else if (abort_on_signal && st->signo != 0)
        res->interrupted = true;
      if (res->timed_out || res->interrupted) {
        kill (-pid, SIGTERM);
        term_sent = true;
        kill_at = now + st->grace_ms;
      }
    } else if (!kill_sent && now >= kill_at) {
      kill (-pid, SIGKILL);
      kill_sent = true;
    }
    uint64_t until = !term_sent ? deadline : !kill_sent ? kill_at : now + QSLICE_MS;
    int wait = until > now ? (int) (until - now) : 0;
    if (wait > QSLICE_MS)
      wait = QSLICE_MS;
    if (outfd < 0 && wait > 10)
      wait = 10;              /* pipe closed: the exit is near, poll faster */
    struct pollfd pf[2];
    int np = 0;
    if (outfd >= 0)
      pf[np++] = (struct pollfd) { .fd = outfd, .events = POLLIN };
    if (st->catching)
      pf[np++] = (struct pollfd) { .fd = g_sigpipe[0], .events = POLLIN };
    int pr = poll (pf, (nfds_t) np, wait);
    if (pr <= 0)
      continue;
    for (int i = 0; i < np; i++) {
      if (pf[i].revents == 0)
        continue;
      if (pf[i].fd == outfd) {
        if (!drain_output (outfd, res)) {
          close (outfd);
          outfd = -1;
        }
      } else {
        char junk[64];
        while (read (g_sigpipe[0], junk, sizeof junk) > 0)
          ;
      }
    }
  }
  /* The leader has exited but is not reaped: its group id is still ours.
   * After a kill, nothing of the group may stay behind. */
  if (term_sent && !kill_sent)
    kill (-pid, SIGKILL);
  if (outfd >= 0) {
    drain_output (outfd, res);  /* background children may keep it open */
    close (outfd);
  }
  int status = 0;
  if (!lost) {
    while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
      ;
  }
  note_signal (st);

  if (res->timed_out)
    snprintf (res->what, sizeof res->what, "timed out and was killed");
  else if (res->interrupted)
    snprintf (res->what, sizeof res->what, "was stopped by SIG%s",
              sigabbrev_np (st->signo) ? sigabbrev_np (st->signo) : "?");
  else if (lost)
    snprintf (res->what, sizeof res->what,
              "ended with an unknown status (SIGCHLD is ignored)");
  else if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    res->ok = true;
  else if (WIFEXITED (status))
    snprintf (res->what, sizeof res->what, "exited with status %d",
              WEXITSTATUS (status));
  else if (WIFSIGNALED (status))
    snprintf (res->what, sizeof res->what, "was killed by SIG%s",
              sigabbrev_np (WTERMSIG (status))
              ? sigabbrev_np (WTERMSIG (status)) : "?");
  else
    snprintf (res->what, sizeof res->what, "ended with status 0x%x", status);
  return 0;
}

/* "<action> hook 'name' <what> (output: ...)" for messages. */
static void
describe (char *buf, size_t size, const char *action, const struct qhook *h,
          const struct hook_result *res)
{
  char tail[512];
  tail_format (res, tail, sizeof tail);
  if (tail[0])
    snprintf (buf, size, "%s hook '%s' %s (output: %s)", action, h->name,
              res->what, tail);
  else
    snprintf (buf, size, "%s hook '%s' %s", action, h->name, res->what);
}

/* Settle a failed quiesce: in TRY mode the level falls back to crash and
 * the reason becomes the warning; in REQUIRED mode it is an error. */
static int
quiesce_fail (struct quiesce_state *st, int errnum, const char *why,
              struct vb_error *err)
{
  st->level = QUIESCE_LEVEL_CRASH;
  static const char pre[] =
    "quiescing failed, the snapshot is only crash-consistent: ";
  size_t l = sizeof pre - 1, w = strnlen (why, sizeof st->warning - l - 1);
  memcpy (st->warning, pre, l);
  memcpy (st->warning + l, why, w);       /* truncated to fit */
  st->warning[l + w] = '\0';
  st->has_warning = true;
  if (st->mode == QUIESCE_REQUIRED)
    return vb_err (err, errnum, "quiescing required but %s", why);
  return 0;
}

/* Run the freeze hooks in order under one deadline (see quiesce.h). */
int
quiesce_freeze (const struct quiesce_opts *o, struct quiesce_state **stp,
                struct vb_error *err)
{
  if (stp == NULL || o == NULL)
    return vb_err (err, EINVAL, "quiesce_freeze: no options or state");
  *stp = NULL;
  struct quiesce_state *st = calloc (1, sizeof *st);
  if (st == NULL)
    return vb_err (err, ENOMEM, "out of memory");
  *stp = st;
  st->mode = o->mode;
  st->freeze_ms = o->freeze_timeout_ms ? o->freeze_timeout_ms
    : QUIESCE_DEFAULT_FREEZE_MS;
  st->thaw_ms = o->thaw_timeout_ms ? o->thaw_timeout_ms
    : QUIESCE_DEFAULT_THAW_MS;
  st->grace_ms = o->kill_grace_ms ? o->kill_grace_ms
    : QUIESCE_DEFAULT_GRACE_MS;
  st->window_ms = o->max_window_ms ? o->max_window_ms
    : QUIESCE_DEFAULT_WINDOW_MS;
  st->level = QUIESCE_LEVEL_CRASH;
  if (o->mode == QUIESCE_OFF)
    return 0;

  if (o->hooks_dir)
    st->dir = strdup (o->hooks_dir);
  else {
    char buf[4096];
    int r = quiesce_hooks_dir (o->vmx_path, buf, sizeof buf, err);
    if (r < 0)
      return r;
    st->dir = strdup (buf);
  }
  if (st->dir == NULL || make_env (st, o) < 0)
    return vb_err (err, ENOMEM, "out of memory");

  struct vb_error serr = { 0 };
  if (scan_hooks (st, &serr) < 0)
    return quiesce_fail (st, serr.code, serr.msg, err);
  if (st->n == 0) {
    char why[VB_ERROR_MAX];
    snprintf (why, sizeof why, "there are no freeze hooks in '%s'", st->dir);
    return quiesce_fail (st, ENOENT, why, err);
  }

  if (o->catch_signals) {
    int r = catch_start (st, err);
    if (r < 0)
      return r;
  }

  st->t_freeze_start = mono_ms ();
  uint64_t deadline = st->t_freeze_start + st->freeze_ms;
  bool app = false;
  int ret = 0;
  for (size_t i = 0; i < st->n; i++) {
    note_signal (st);
    if (st->signo != 0)
      break;
    if (i > 0 && mono_ms () >= deadline) {
      char why[512];
      snprintf (why, sizeof why, "the %u ms freeze limit was reached before "
                "freeze hook '%s' could start", st->freeze_ms,
                st->hooks[i].name);
      ret = quiesce_fail (st, ETIMEDOUT, why, err);
      break;
    }
    struct hook_result res;
    st->nstarted = i + 1;     /* thaw it even if it fails or is killed */
    run_hook (st, &st->hooks[i], "freeze", deadline, true, &res);
    vb_debug ("quiesce: freeze hook '%s': %s (%llu bytes of output)",
              st->hooks[i].name, res.ok ? "ok" : res.what,
              (unsigned long long) res.total_out);
    if (!res.ok) {
      char why[VB_ERROR_MAX];
      describe (why, sizeof why, "freeze", &st->hooks[i], &res);
      if (res.timed_out) {
        size_t l = strlen (why);
        snprintf (why + l, sizeof why - l, " after the %u ms freeze limit",
                  st->freeze_ms);
      }
      if (!res.interrupted)
        ret = quiesce_fail (st, res.timed_out ? ETIMEDOUT : EIO, why, err);
      break;
    }
    if (st->hooks[i].app)
      app = true;
  }
  st->t_freeze_done = mono_ms ();
  note_signal (st);
  if (st->signo != 0) {
    char why[128];
    snprintf (why, sizeof why, "freeze was interrupted by SIG%s",
              sigabbrev_np (st->signo) ? sigabbrev_np (st->signo) : "?");
    quiesce_fail (st, EINTR, why, NULL);
    return vb_err (err, EINTR, "%s", why);
  }
  if (!st->has_warning)
    st->level = app ? QUIESCE_LEVEL_APPLICATION : QUIESCE_LEVEL_FILESYSTEM;
  return ret;
}

/* Check the freeze window at snapshot time (see quiesce.h). */
int
quiesce_mark_snapshot (struct quiesce_state *st, struct vb_error *err)
{
  if (st == NULL || st->nstarted == 0 || st->level == QUIESCE_LEVEL_CRASH)
    return 0;
  uint64_t w = quiesce_window_ms (st);
  if (w <= st->window_ms)
    return 0;
  char why[256];
  snprintf (why, sizeof why, "the guest was frozen %llu ms before the "
            "snapshot was taken, more than the %u ms limit",
            (unsigned long long) w, st->window_ms);
  return quiesce_fail (st, ETIMEDOUT, why, err);
}

/* Run the thaw hooks in reverse order, all of them (see quiesce.h). */
int
quiesce_thaw (struct quiesce_state *st, struct vb_error *err)
{
  if (st == NULL || st->thawed)
    return 0;
  st->thawed = true;
  st->t_thaw_start = mono_ms ();
  int ret = 0;
  size_t failed = 0;
  char first[VB_ERROR_MAX] = "";
  for (size_t i = st->nstarted; i-- > 0;) {
    struct hook_result res;
    uint64_t deadline = mono_ms () + st->thaw_ms;
    run_hook (st, &st->hooks[i], "thaw", deadline, false, &res);
    vb_debug ("quiesce: thaw hook '%s': %s", st->hooks[i].name,
              res.ok ? "ok" : res.what);
    if (!res.ok) {
      if (failed++ == 0) {
        describe (first, sizeof first, "thaw", &st->hooks[i], &res);
        ret = res.timed_out ? -ETIMEDOUT : -EIO;
      }
    }
  }
  note_signal (st);
  catch_stop (st);
  if (failed)
    return vb_err (err, -ret, "%zu of %zu thaw hooks failed, the guest may "
                   "still be frozen: %s", failed, st->nstarted, first);
  return 0;
}

/* Thaw when the caller did not (a cleanup path), then free everything. */
void
quiesce_free (struct quiesce_state *st)
{
  if (st == NULL)
    return;
  quiesce_thaw (st, NULL);
  catch_stop (st);
  for (size_t i = 0; i < st->n; i++) {
    free (st->hooks[i].name);
    free (st->hooks[i].path);
  }
  free (st->hooks);
  if (st->envp) {
    size_t k = 0;
    while (st->envp[k])
      k++;
    for (size_t i = k - st->nenv_own; i < k; i++)
      free (st->envp[i]);
    free (st->envp);
  }
  free (st->dir);
  free (st);
}

/* Accessors. */
enum quiesce_level
quiesce_level (const struct quiesce_state *st)
{
  return st ? st->level : QUIESCE_LEVEL_CRASH;
}

/* The fallback reason, or NULL. */
const char *
quiesce_warning (const struct quiesce_state *st)
{
  return st && st->has_warning ? st->warning : NULL;
}

/* The first caught signal, also one caught while the guest was frozen
 * between quiesce_freeze and quiesce_thaw. */
int
quiesce_signal (const struct quiesce_state *st)
{
  if (st == NULL)
    return 0;
  if (st->signo)
    return st->signo;
  return st->catching ? (int) g_signo : 0;
}

/* Number of hooks found in the directory. */
size_t
quiesce_hook_count (const struct quiesce_state *st)
{
  return st ? st->n : 0;
}

/* Number of hooks whose freeze was started (and which get thawed). */
size_t
quiesce_started_count (const struct quiesce_state *st)
{
  return st ? st->nstarted : 0;
}

/* How long the freeze hooks ran. */
uint64_t
quiesce_freeze_ms (const struct quiesce_state *st)
{
  if (st == NULL || st->nstarted == 0)
    return 0;
  return st->t_freeze_done - st->t_freeze_start;
}

/* Freeze done -> thaw start (or now). */
uint64_t
quiesce_window_ms (const struct quiesce_state *st)
{
  if (st == NULL || st->nstarted == 0)
    return 0;
  uint64_t end = st->thawed ? st->t_thaw_start : mono_ms ();
  return end - st->t_freeze_done;
}
