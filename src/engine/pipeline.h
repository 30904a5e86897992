/* vmback engine: a small ordered work ring.
 *
 * The main thread fills slots in sequence and submits them; worker threads
 * process submitted slots in any order; the main thread takes finished
 * slots back in submission order.  Memory is bounded by the number of
 * slots, whatever the size of the disk. */
#ifndef VMBACK_PIPELINE_H
#define VMBACK_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

struct pl_slot {
  uint64_t i;              /* job number (e.g. chunk index), set by the caller */
  uint8_t *buf;            /* bufsize bytes, owned by the ring */
  size_t len;              /* bytes used in buf */
  uint8_t id[32];          /* chunk id (worker output or input) */
  int kind;                /* caller-defined */
  uint64_t stored;         /* caller-defined counter (e.g. bytes written) */
  int rc;                  /* worker result */
  struct vb_error err;     /* worker error */
  int state;               /* internal */
};

struct pipeline;
typedef int (*pl_work_fn) (void *ctx, struct pl_slot *s, struct vb_error *err);

/* Start nthreads workers over nslots slots of bufsize bytes each. */
int pl_start (struct pipeline **out, int nslots, size_t bufsize, int nthreads,
              pl_work_fn fn, void *ctx, struct vb_error *err);
/* The next slot to fill, waiting for (and returning through *done) the
 * oldest finished slot when all are busy: the caller must handle *done
 * (if non-NULL) before filling the returned slot.  Several slots may be
 * out being filled at once (fewer than nslots, at least one submitted
 * slot being the oldest); they are submitted in the order received, and
 * slots never submitted are simply dropped by pl_stop. */
struct pl_slot *pl_next (struct pipeline *p, struct pl_slot **done);
/* Hand a filled slot to the workers (the oldest one being filled). */
void pl_submit (struct pipeline *p, struct pl_slot *s);
/* Oldest outstanding slot once finished, or NULL when none is outstanding. */
struct pl_slot *pl_take (struct pipeline *p);
/* Release a slot returned by pl_take/pl_next's done. */
void pl_release (struct pipeline *p, struct pl_slot *s);
/* Stop and join the workers, free everything (outstanding work is waited for). */
void pl_stop (struct pipeline *p);

/* Worker count for this machine (CPUs, at least 2, at most 16). */
int pl_default_threads (void);

#endif
