/* vmback engine: garbage collection (mark and sweep).
 *
 * Runs under the exclusive repository lock, so no backup is in progress:
 * every chunk a running backup writes is protected by that backup's shared
 * lock until its manifest is durable.  Mark: the ids of every index of
 * every point.  Sweep: drop the chunks not marked (chunkstore_gc: their
 * objects, or in a packed repository their packs, rewriting packs that
 * are mostly unused), and the objects
 * (configuration, indexes) of points that never got a manifest -- what a
 * killed backup leaves; with the lock held, no backup can still be
 * writing them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-int.h"

/* chunkstore_gc callback: is a chunk marked? */
static bool
is_live (void *opaque, const uint8_t id[REPO_ID_LEN])
{
  return idset_has (opaque, id);
}

/* The point directory of a key "snapshots/<source>/<time>/<name>" into
 * dir (without the name); false for other keys. */
static bool
point_dir (const char *key, char *dir, size_t len)
{
  const char *slash = strrchr (key, '/');
  if (strncmp (key, "snapshots/", 10) != 0 || !slash || (size_t) (slash - key) >= len)
    return false;
  memcpy (dir, key, (size_t) (slash - key));
  dir[slash - key] = '\0';
  return true;
}

/* Keys under snapshots/: which directories have a manifest. */
struct orphans {
  char (*keys)[256];
  size_t n, cap;
  struct vb_error *err;
};

/* List callback: remember every key under snapshots/. */
static int
collect_key (void *opaque, const char *key, uint64_t size)
{
  struct orphans *o = opaque;
  if (strlen (key) >= sizeof o->keys[0])
    return 0;
  if (o->n == o->cap) {
    size_t cap = o->cap ? 2 * o->cap : 256;
    void *k = realloc (o->keys, cap * sizeof o->keys[0]);
    if (!k) {
      vb_errno (o->err, ENOMEM, "gc");
      return 1;
    }
    o->keys = k;
    o->cap = cap;
  }
  snprintf (o->keys[o->n++], sizeof o->keys[0], "%s", key);
  return 0;
}

/* qsort/bsearch order of keys. */
static int
key_cmp (const void *a, const void *b)
{
  return strcmp (a, b);
}

/* Does directory dir hold a manifest?  (o->keys sorted) */
static bool
has_manifest (const struct orphans *o, const char *dir)
{
  char want[300];
  snprintf (want, sizeof want, "%s/manifest", dir);
  return bsearch (want, o->keys, o->n, sizeof o->keys[0], key_cmp) != NULL;
}

/* Delete the objects of point directories without a manifest. */
static int
sweep_orphans (struct repo *r, bool dry_run, struct engine_gc_result *res,
               struct vb_error *err)
{
  struct repo_backend *b = repo_backend (r);
  struct orphans o = { .err = err };
  int rc = b->ops->list (b, "snapshots/", collect_key, &o, err);
  if (rc == 0 && o.n)
    qsort (o.keys, o.n, sizeof o.keys[0], key_cmp);
  for (size_t i = 0; i < o.n && rc == 0; i++) {
    char dir[256];
    if (!point_dir (o.keys[i], dir, sizeof dir) || has_manifest (&o, dir))
      continue;
    res->orphans_deleted++;
    if (dry_run)
      continue;
    if ((rc = repo_lock_check (r, err)) == 0)
      rc = b->ops->del (b, o.keys[i], err);
  }
  free (o.keys);
  return rc > 0 ? -EIO : rc;
}

/* Mark and sweep (see engine.h). */
int
engine_gc (struct repo *r, bool dry_run, struct engine_gc_result *res,
           struct vb_error *err)
{
  memset (res, 0, sizeof *res);
  struct repo_backend *b = repo_backend (r);
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
    struct chunkstore_gc_stats st;
    rc = chunkstore_gc (repo_chunks (r), is_live, &live, dry_run, &st, err);
    res->chunks_total = st.chunks_total;
    res->chunks_deleted = st.chunks_deleted;
    res->bytes_deleted = st.bytes_deleted;
    res->packs_deleted = st.packs_deleted;
    res->packs_repacked = st.packs_repacked;
    res->bytes_repacked = st.bytes_repacked;
  }
  if (rc == 0)
    rc = sweep_orphans (r, dry_run, res, err);
  if (rc == 0 && b->ops->sweep_tmp && (rc = repo_lock_check (r, err)) == 0)
    rc = b->ops->sweep_tmp (b, dry_run, &res->tmp_deleted, &res->tmp_bytes, err);
out:
  idset_free (&live);
  free (pts);
  repo_unlock (r);
  return rc;
}
