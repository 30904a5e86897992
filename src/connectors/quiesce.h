/* vmback: quiescing with freeze/thaw hook scripts (docs/quiesce.md).
 *
 * The hooks of a VM live in one directory (by default
 * <vmdir>/<NAME>.vmback/freeze.d/ next to <vmdir>/<NAME>.vmx).  Executable
 * regular files there run in lexical (byte) order with the argument
 * "freeze"; on thaw the hooks that were started run in reverse order with
 * the argument "thaw".  A hook whose file name starts with "app-", after
 * an optional order prefix of digits and '-' or '_' ("app-db", "10-app-db"),
 * freezes an application; every other hook is a file-system freeze.
 *
 * Usage (the caller must thaw on every path once quiesce_freeze has
 * returned a state, also after an error or a caught signal):
 *
 *   struct quiesce_state *q = NULL;
 *   int r = quiesce_freeze (&opts, &q, &err);
 *   if (r == 0) {
 *     ... take the snapshot ...
 *     r = quiesce_mark_snapshot (q, &err);   // enforce the 60 s window
 *   }
 *   int t = quiesce_thaw (q, &terr);          // NULL-safe, idempotent
 *   level = quiesce_level (q); warning = quiesce_warning (q);
 *   sig = quiesce_signal (q);                 // exit 128 + sig when set
 *   quiesce_free (q);
 */
#ifndef VMBACK_QUIESCE_H
#define VMBACK_QUIESCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

/* Consistency level of a snapshot, weakest first. */
enum quiesce_level {
  QUIESCE_LEVEL_CRASH = 0,
  QUIESCE_LEVEL_FILESYSTEM,
  QUIESCE_LEVEL_APPLICATION,
};

/* What the user asked for (--quiesce=off|on|required). */
enum quiesce_mode {
  QUIESCE_OFF = 0,        /* run no hooks: crash-consistent */
  QUIESCE_TRY,            /* run hooks, fall back to crash with a warning */
  QUIESCE_REQUIRED,       /* run hooks, any failure is an error */
};

#define QUIESCE_DEFAULT_FREEZE_MS 60000u   /* all freeze hooks together */
#define QUIESCE_DEFAULT_THAW_MS   60000u   /* each thaw hook */
#define QUIESCE_DEFAULT_GRACE_MS  5000u    /* SIGTERM -> SIGKILL */
#define QUIESCE_DEFAULT_WINDOW_MS 60000u   /* freeze done -> snapshot taken */
#define QUIESCE_MAX_HOOKS 128

struct quiesce_opts {
  enum quiesce_mode mode;
  const char *vmx_path;       /* exported as VMBACK_VM; derives hooks_dir */
  const char *hooks_dir;      /* NULL = quiesce_hooks_dir (vmx_path) */
  const char *snapshot_name;  /* exported as VMBACK_SNAPSHOT (may be NULL) */
  unsigned freeze_timeout_ms; /* 0 = QUIESCE_DEFAULT_FREEZE_MS, from the
                                 start of the first freeze hook */
  unsigned thaw_timeout_ms;   /* 0 = QUIESCE_DEFAULT_THAW_MS, per thaw hook */
  unsigned kill_grace_ms;     /* 0 = QUIESCE_DEFAULT_GRACE_MS */
  unsigned max_window_ms;     /* 0 = QUIESCE_DEFAULT_WINDOW_MS */
  /* Catch SIGINT, SIGTERM and SIGHUP from the start of the freeze until
   * quiesce_thaw has finished: the signal is recorded (quiesce_signal),
   * aborts the running freeze hook and the rest of the freeze, and the
   * previous handlers are restored after thaw.  One session at a time. */
  bool catch_signals;
};

struct quiesce_state;

/* Name of a level: "crash", "filesystem" or "application". */
const char *quiesce_level_name (enum quiesce_level l);

/* The default hooks directory of a VM: for "/vms/a/a.vmx" it is
 * "/vms/a/a.vmback/freeze.d". */
int quiesce_hooks_dir (const char *vmx_path, char *buf, size_t size,
                       struct vb_error *err);

/* Run the freeze hooks.  Returns 0 when the level is settled (possibly
 * "crash" with a warning after a failed hook in QUIESCE_TRY mode), or a
 * negative errno: a failure in QUIESCE_REQUIRED mode (-ETIMEDOUT for a
 * timed-out hook, -EIO for a failed one, -ENOENT when there are no hooks),
 * -EINTR when a caught signal aborted the freeze, -EINVAL/-ENOMEM/-EBUSY.
 * *st is set whenever a state could be made (also on errors); the caller
 * must then call quiesce_thaw and quiesce_free. */
int quiesce_freeze (const struct quiesce_opts *o, struct quiesce_state **st,
                    struct vb_error *err);

/* Record that the snapshot has been taken.  When the guest has by then
 * been frozen longer than max_window_ms (counted from the end of the
 * freeze), the level falls back to crash with a warning, or -ETIMEDOUT in
 * QUIESCE_REQUIRED mode. */
int quiesce_mark_snapshot (struct quiesce_state *st, struct vb_error *err);

/* Run the thaw hooks of every hook whose freeze was started, in reverse
 * order, each bounded by thaw_timeout_ms; all of them run even when some
 * fail.  Then restores the signal handlers.  NULL-safe; a second call
 * does nothing and returns 0.  Returns -EIO (or -ETIMEDOUT) when a thaw
 * hook failed: the guest may still be frozen. */
int quiesce_thaw (struct quiesce_state *st, struct vb_error *err);

/* Thaw if not done yet (errors ignored), then free.  NULL-safe. */
void quiesce_free (struct quiesce_state *st);

/* The level reached (QUIESCE_LEVEL_CRASH for NULL). */
enum quiesce_level quiesce_level (const struct quiesce_state *st);

/* Why the level is lower than asked for, or NULL. */
const char *quiesce_warning (const struct quiesce_state *st);

/* The first caught signal (SIGINT, ...) or 0. */
int quiesce_signal (const struct quiesce_state *st);

/* Number of hooks found and of hooks whose freeze was started. */
size_t quiesce_hook_count (const struct quiesce_state *st);
size_t quiesce_started_count (const struct quiesce_state *st);

/* Milliseconds the freeze hooks took (first start to last exit). */
uint64_t quiesce_freeze_ms (const struct quiesce_state *st);

/* Milliseconds between the end of the freeze and the start of thaw (until
 * now while not yet thawed); 0 when no hook was started. */
uint64_t quiesce_window_ms (const struct quiesce_state *st);

#endif
