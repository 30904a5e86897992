/* vmback: error reporting.
 *
 * Every fallible library call takes a `struct vb_error *` (may be NULL) and
 * returns a negative errno on failure.  The message says what failed first,
 * quotes the subject, starts lowercase and has no trailing period, e.g.
 *   cannot read grain table of 'x-s001.vmdk': Input/output error
 */
#ifndef VMBACK_ERROR_H
#define VMBACK_ERROR_H

#include <stdarg.h>

#define VB_ERROR_MAX 1024

struct vb_error {
  int code;                 /* positive errno of the first failure, 0 = none */
  char msg[VB_ERROR_MAX];
};

/* Record an error (the first one wins) and return -errnum.  errnum must be
 * a positive errno value; 0 is turned into EIO. */
int vb_err (struct vb_error *e, int errnum, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* Like vb_err but appends ": strerror(errnum)". */
int vb_errno (struct vb_error *e, int errnum, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* Prefix an already recorded message with "context: ". */
void vb_err_prefix (struct vb_error *e, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Clear an error. */
void vb_err_clear (struct vb_error *e);

/* Debug logging, enabled by VMBACK_DEBUG=1 in the environment. */
void vb_debug (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Crash test hook: when $VMBACK_CRASH_AT names this point ("NAME" or
 * "NAME:N" for its N-th pass, counting from 1), the process kills itself
 * with SIGKILL here, as a power cut or `kill -9` would.  Costs one getenv
 * otherwise.  Tests use it to stop at every step of multi-step updates. */
void vb_crashpoint (const char *name);

/* Failure test hook: 0, or the errno the step NAME should fail with now
 * because $VMBACK_FAIL_AT says so ("NAME[:N][+][=ERRNO],...": its N-th
 * pass, or with '+' that pass and every later one; ERRNO a name such as
 * ENOSPC or a number, EIO by default).  Costs one getenv otherwise. */
int vb_failpoint (const char *name);

#endif
