/* vmback engine: garbage collection (mark and sweep).
 *
 * Runs under the exclusive repository lock, so no backup is in progress:
 * every chunk a running backup writes is protected by that backup's shared
 * lock until its manifest is durable.  Mark: the ids of every index of
 * every point.  Sweep: delete chunk objects not marked. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-int.h"

struct sweep {
  struct repo *r;
  struct repo_backend *b;
  const struct idset *live;
  bool dry_run;
  struct engine_gc_result *res;
  struct vb_error *err;
  int rc;
};

/* List callback: delete unmarked chunks. */
static int
sweep_one (void *opaque, const char *key, uint64_t size)
{
  struct sweep *s = opaque;
  uint8_t id[REPO_ID_LEN];
  if (chunk_key_parse (key, id) < 0)
    return 0;                       /* not ours: leave it alone */
  s->res->chunks_total++;
  if (idset_has (s->live, id))
    return 0;
  /* our exclusive lock must still hold (it may expire: docs/S3.md) */
  if (!s->dry_run && (s->rc = repo_lock_check (s->r, s->err)) < 0)
    return 1;
  s->res->chunks_deleted++;
  s->res->bytes_deleted += size;
  if (!s->dry_run && (s->rc = s->b->ops->del (s->b, key, s->err)) < 0)
    return 1;
  return 0;
}

/* Mark and sweep (see engine.h). */
int
engine_gc (struct repo *r, bool dry_run, struct engine_gc_result *res,
           struct vb_error *err)
{
  memset (res, 0, sizeof *res);
  int rc = repo_lock (r, true, "gc", err);
  if (rc < 0)
    return rc;
  struct manifest *pts = NULL;
  size_t np = 0;
  struct idset live = { 0 };
  if ((rc = repo_list_points (r, NULL, &pts, &np, err)) < 0)
    goto out;
  for (size_t p = 0; p < np && rc == 0; p++) {
    for (size_t dk = 0; dk < pts[p].n_disks && rc == 0; dk++) {
      struct repo_index ix = { 0 };
      /* a point whose index cannot be read stops gc: deleting chunks
       * while unsure what is referenced could destroy data */
      if ((rc = engine_load_index (r, &pts[p], (int) dk, &ix, err)) < 0) {
        vb_err_prefix (err, "gc stopped, nothing deleted");
        break;
      }
      for (uint64_t i = 0; i < ix.n && rc == 0; i++)
        if (idset_add (&live, ix.ids[i]) < 0)
          rc = vb_errno (err, ENOMEM, "gc");
      index_free (&ix);
    }
  }
  if (rc == 0) {
    struct repo_backend *b = repo_backend (r);
    struct sweep s = { .r = r, .b = b, .live = &live, .dry_run = dry_run, .res = res, .err = err };
    rc = b->ops->list (b, "chunks/", sweep_one, &s, err);
    if (rc > 0)
      rc = s.rc;
  }
out:
  idset_free (&live);
  free (pts);
  repo_unlock (r);
  return rc;
}
