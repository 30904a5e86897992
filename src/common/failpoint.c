/* vmback: failpoints -- make a named step fail with a chosen errno, for
 * tests of error paths that real hardware produces rarely (a full disk,
 * an I/O error, a transport that cannot attach).
 *
 *   VMBACK_FAIL_AT="NAME[:N][+][=ERRNO],..."
 *
 * NAME's N-th pass (counting from 1; default 1) fails with ERRNO (a name
 * such as ENOSPC or EIO, or a number; default EIO); with '+', that pass
 * and every later one fail.  ERRNO "KILL" makes the process SIGKILL
 * itself there instead (a crash at that exact I/O step).  Several specs
 * are separated by commas.
 *
 *   VMBACK_FAIL_TRACE=FILE
 *
 * appends "NAME\n" to FILE at every pass of every failpoint, so a test
 * can count a command's passes and then pick the one to fail.
 * Unset, a failpoint costs two getenv calls. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmback/error.h"

#define MAX_SPECS 8
#define CODE_KILL (-1)               /* spec code: SIGKILL, not an errno */

/* One parsed spec and how often its point was passed. */
struct spec {
  char name[48];
  unsigned long nth;
  bool onward;
  int code;
  unsigned long hits;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct spec specs[MAX_SPECS];
static int n_specs = -1;             /* -1: not parsed yet */

/* errno from a name or a number; EIO when unknown. */
static int
errno_from (const char *s, size_t len)
{
  static const struct { const char *n; int v; } names[] = {
    { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT }, { "EROFS", EROFS },
    { "EACCES", EACCES }, { "EPERM", EPERM }, { "ENOENT", ENOENT },
    { "ECONNRESET", ECONNRESET }, { "ETIMEDOUT", ETIMEDOUT }, { "ENOMEM", ENOMEM },
    { "ENODEV", ENODEV }, { "EAGAIN", EAGAIN },
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen (names[i].n) == len && strncmp (names[i].n, s, len) == 0)
      return names[i].v;
  if (len == 4 && strncmp (s, "KILL", 4) == 0)
    return CODE_KILL;
  int v = atoi (s);
  return v > 0 ? v : EIO;
}

/* Parse one "NAME[:N][+][=ERRNO]" of length len into sp. */
static bool
parse_spec (const char *s, size_t len, struct spec *sp)
{
  memset (sp, 0, sizeof *sp);
  size_t n = strcspn (s, ":+=,");
  if (n == 0 || n >= sizeof sp->name || n > len)
    return false;
  memcpy (sp->name, s, n);
  sp->nth = 1;
  sp->code = EIO;
  const char *p = s + n, *end = s + len;
  if (p < end && *p == ':') {
    char *e;
    sp->nth = strtoul (p + 1, &e, 10);
    p = e;
  }
  if (p < end && *p == '+') {
    sp->onward = true;
    p++;
  }
  if (p < end && *p == '=')
    sp->code = errno_from (p + 1, (size_t) (end - p - 1));
  return sp->nth > 0;
}

/* Parse $VMBACK_FAIL_AT once (mu held). */
static void
load_specs (void)
{
  n_specs = 0;
  const char *s = getenv ("VMBACK_FAIL_AT");
  while (s && *s && n_specs < MAX_SPECS) {
    size_t len = strcspn (s, ",");
    if (parse_spec (s, len, &specs[n_specs]))
      n_specs++;
    s += len;
    if (*s == ',')
      s++;
  }
}

/* Append "name\n" to the file $VMBACK_FAIL_TRACE names (one write, so
 * lines of concurrent threads do not mix). */
static void
trace (const char *path, const char *name)
{
  char line[64];
  int n = snprintf (line, sizeof line, "%s\n", name);
  if (n <= 0 || (size_t) n >= sizeof line)
    return;
  int e = errno;                     /* callers may rely on errno */
  int fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    if (write (fd, line, (size_t) n) < 0) { /* a lost trace line only */ }
    close (fd);
  }
  errno = e;
}

/* Should the step NAME fail now?  0 or the errno to fail with (error.h). */
int
vb_failpoint (const char *name)
{
  const char *tr = getenv ("VMBACK_FAIL_TRACE");
  if (tr && *tr)
    trace (tr, name);
  const char *env = getenv ("VMBACK_FAIL_AT");
  if (!env || !*env)
    return 0;
  int code = 0;
  pthread_mutex_lock (&mu);
  if (n_specs < 0)
    load_specs ();
  /* every spec of the name counts the pass; the first that fires wins */
  for (int i = 0; i < n_specs; i++) {
    struct spec *sp = &specs[i];
    if (strcmp (sp->name, name) != 0)
      continue;
    sp->hits++;
    if (!code && (sp->hits == sp->nth || (sp->onward && sp->hits > sp->nth)))
      code = sp->code;
  }
  pthread_mutex_unlock (&mu);
  if (code == CODE_KILL) {
    fflush (NULL);
    raise (SIGKILL);
  }
  return code;
}
