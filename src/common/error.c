/* vmback: error reporting helpers (see include/vmback/error.h). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmback/error.h"

/* Format into e->msg, optionally with ": strerror", unless an error is
 * already recorded (the first failure is the interesting one). */
static int
vb_verr (struct vb_error *e, int errnum, bool with_strerror,
         const char *fmt, va_list ap)
{
  if (errnum <= 0)
    errnum = errnum < 0 ? -errnum : EIO;
  if (e == NULL || e->code != 0)
    return -errnum;
  e->code = errnum;
  int n = vsnprintf (e->msg, sizeof e->msg, fmt, ap);
  if (with_strerror && n >= 0 && (size_t) n < sizeof e->msg)
    snprintf (e->msg + n, sizeof e->msg - (size_t) n, ": %s",
              strerror (errnum));
  return -errnum;
}

/* Record an error message and return -errnum. */
int
vb_err (struct vb_error *e, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int r = vb_verr (e, errnum, false, fmt, ap);
  va_end (ap);
  return r;
}

/* Record an error message ending in ": strerror(errnum)". */
int
vb_errno (struct vb_error *e, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int r = vb_verr (e, errnum, true, fmt, ap);
  va_end (ap);
  return r;
}

/* Put "context: " in front of the recorded message. */
void
vb_err_prefix (struct vb_error *e, const char *fmt, ...)
{
  if (e == NULL || e->code == 0)
    return;
  char pre[VB_ERROR_MAX], old[VB_ERROR_MAX];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (pre, sizeof pre, fmt, ap);
  va_end (ap);
  memcpy (old, e->msg, sizeof old);
  size_t n = strnlen (pre, sizeof e->msg - 3);
  memcpy (e->msg, pre, n);
  memcpy (e->msg + n, ": ", 2);
  size_t m = strnlen (old, sizeof e->msg - n - 3);
  memcpy (e->msg + n + 2, old, m);
  e->msg[n + 2 + m] = '\0';
}

/* Forget a recorded error. */
void
vb_err_clear (struct vb_error *e)
{
  if (e) {
    e->code = 0;
    e->msg[0] = '\0';
  }
}

/* Print a debug line to stderr when VMBACK_DEBUG is set. */
void
vb_debug (const char *fmt, ...)
{
  static int enabled = -1;
  if (enabled < 0) {
    const char *s = getenv ("VMBACK_DEBUG");
    enabled = s && *s && strcmp (s, "0") != 0;
  }
  if (!enabled)
    return;
  va_list ap;
  va_start (ap, fmt);
  fputs ("vmback: debug: ", stderr);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
}

/* Die here if $VMBACK_CRASH_AT says so (see error.h). */
void
vb_crashpoint (const char *name)
{
  static unsigned long hits;
  const char *want = getenv ("VMBACK_CRASH_AT");
  if (!want || !*want)
    return;
  size_t n = strlen (name);
  if (strncmp (want, name, n) != 0 || (want[n] != '\0' && want[n] != ':'))
    return;
  unsigned long nth = want[n] == ':' ? strtoul (want + n + 1, NULL, 10) : 1;
  if (++hits == nth) {
    fflush (NULL);
    raise (SIGKILL);
  }
}
