/* vmback engine: restore a disk of a point (docs/CLI.md, "restore").
 *
 * A full restore reads every non-zero chunk of the point (the index is a
 * synthetic full) and writes it at its offset; zero chunks are skipped on a
 * new sparse target.  Chunks are fetched and decoded (hash checked) by
 * workers and written in order by the main thread, so any writable format
 * works, streamOptimized included.  In place, only chunks that differ are
 * written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine-int.h"
#include "pipeline.h"

struct rctx {
  struct repo *r;
  const struct repo_index *ix;
};

/* Worker: fetch and decode chunk s->i into s->buf. */
static int
fetch_chunk (void *opaque, struct pl_slot *s, struct vb_error *err)
{
  struct rctx *c = opaque;
  int n = engine_fetch_chunk (c->r, c->ix->ids[s->i], s->buf, c->ix->chunk_size, false, err);
  if (n < 0)
    return n;
  if ((size_t) n != s->len)
    return vb_err (err, EBADMSG, "chunk %llu of the point has %d bytes, expected %zu",
                   (unsigned long long) s->i, n, s->len);
  return 0;
}

/* Where restored chunks go: the vdisk, and for a flat target (raw file,
 * flat VMDK extent, block device) also a descriptor of the extent opened
 * with O_DIRECT.  Direct writes skip the copy into the page cache and the
 * dirty-page throttling that follows: a full restore spent more than half
 * of its CPU time there (perf: copy_folio_from_iter_atomic). */
struct target {
  struct vdisk *d;
  int dfd;                   /* O_DIRECT descriptor, -1 when none */
  uint64_t base;             /* the disk's first byte in the extent */
};

#define DIRECT_ALIGN 4096u

/* Open the direct descriptor when the target is one flat extent and the
 * file system takes O_DIRECT (tmpfs does not: then buffered writes).
 * Only for new targets and block devices: direct writes bypass the
 * disk's change tracking and CID, which an existing disk must keep. */
static void
target_direct (struct target *t)
{
  const char *file;
  t->dfd = -1;
  if (getenv ("VMBACK_NO_DIRECT") || !vdisk_flat_extent (t->d, &file, &t->base)
      || t->base % DIRECT_ALIGN)
    return;
  t->dfd = open (file, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

/* Write a finished slot to the target.  Writes stay in the main thread,
 * in order: parallel pwrites to one file serialise on its inode lock and
 * measured slower, and ordered writes suit every format. */
static int
write_slot (struct target *t, const struct repo_index *ix, struct pl_slot *s,
            struct vb_error *err)
{
  if (s->rc < 0) {
    if (err && err->code == 0)
      *err = s->err;
    return s->rc;
  }
  uint64_t off = s->i * ix->chunk_size;
  vb_crashpoint ("restore-chunk");            /* tests: killed between chunks */
  if (t->dfd >= 0 && s->len % DIRECT_ALIGN == 0) {
    int rc = vio_pwrite (t->dfd, s->buf, s->len, t->base + off);
    if (rc == 0)
      return 0;
    if (rc != -EINVAL)
      return vb_errno (err, -rc, "cannot write '%s' at %llu", vdisk_path (t->d),
                       (unsigned long long) off);
    close (t->dfd);                /* not for this file after all */
    t->dfd = -1;
  }
  return vdisk_pwrite (t->d, s->buf, s->len, off, err);
}

/* Make direct writes durable and close their descriptor. */
static int
target_finish (struct target *t, int rc, struct vb_error *err)
{
  if (t->dfd < 0)
    return rc;
  if (rc == 0 && fsync (t->dfd) < 0)
    rc = vb_errno (err, errno, "cannot sync '%s'", vdisk_path (t->d));
  close (t->dfd);
  t->dfd = -1;
  return rc;
}

/* Restore chunks selected by want (NULL = all non-zero) into d, with
 * direct writes when asked and possible (see target_direct). */
static int
restore_chunks (struct repo *r, const struct repo_index *ix, struct vdisk *d,
                bool direct, const bool *want, const struct engine_restore_opts *o,
                uint64_t *written, struct vb_error *err)
{
  struct target t = { .d = d, .dfd = -1 };
  if (direct)
    target_direct (&t);
  struct rctx c = { .r = r, .ix = ix };
  struct pipeline *p;
  int threads = o->threads > 0 ? o->threads : pl_default_threads ();
  int rc = pl_start (&p, threads * 4, ix->chunk_size, threads, fetch_chunk, &c, err);
  if (rc < 0)
    return target_finish (&t, rc, err);
  for (uint64_t i = 0; i < ix->n && rc == 0; i++) {
    if (want ? !want[i] : index_is_zero (ix, i))
      continue;
    uint64_t off = i * ix->chunk_size;
    uint64_t len = ix->disk_size - off < ix->chunk_size ? ix->disk_size - off : ix->chunk_size;
    if (index_is_zero (ix, i)) {              /* in place: make it zero */
      rc = vdisk_zero (d, len, off, err);
      if (written)
        (*written)++;
      continue;
    }
    struct pl_slot *done;
    struct pl_slot *s = pl_next (p, &done);
    if (done && (rc = write_slot (&t, ix, done, err)) < 0)
      break;
    if (done && written)
      (*written)++;
    s->i = i;
    s->len = len;
    pl_submit (p, s);
    if (o->progress)
      o->progress (o->opaque, off, ix->disk_size);
  }
  struct pl_slot *s;
  while ((s = pl_take (p))) {
    int wr = rc == 0 ? write_slot (&t, ix, s, err) : 0;
    if (rc == 0)
      rc = wr;
    if (wr == 0 && written)
      (*written)++;
    pl_release (p, s);
  }
  pl_stop (p);
  rc = target_finish (&t, rc, err);
  if (rc == 0 && o->progress)
    o->progress (o->opaque, ix->disk_size, ix->disk_size);
  return rc;
}

/* Target type from the extension: .vmdk = monolithicSparse, else raw. */
static enum vdisk_type
type_for (const char *target, const struct engine_restore_opts *o)
{
  if (o->type_set)
    return o->type;
  size_t n = strlen (target);
  return n > 5 && strcasecmp (target + n - 5, ".vmdk") == 0
    ? VDISK_TYPE_MONOLITHIC_SPARSE : VDISK_TYPE_RAW;
}

/* Restore one disk of a point into a new file or a block device. */
int
engine_restore_disk (struct repo *r, const struct manifest *m, const char *target,
                     const struct engine_restore_opts *o, struct vb_error *err)
{
  if (o->disk < 0 || (size_t) o->disk >= m->n_disks)
    return vb_err (err, EINVAL, "point %s has no disk %d", m->id, o->disk);
  struct repo_index ix = { 0 };
  struct vdisk *d = NULL;
  bool own_lock = !repo_locked (r);
  int rc = own_lock ? repo_lock (r, false, "restore", err) : 0;
  if (rc < 0)
    return rc;
  if ((rc = engine_load_index (r, m, o->disk, &ix, err)) < 0)
    goto out;
  struct stat st;
  bool blockdev = stat (target, &st) == 0 && S_ISBLK (st.st_mode);
  bool created = false;
  if (!blockdev) {
    if (lstat (target, &st) == 0) {
      rc = vb_err (err, EEXIST, "cannot restore to '%s': file exists (remove it, or use "
                   "--in-place to update an existing disk)", target);
      goto out;
    }
    struct vdisk_create_opts co = { .type = type_for (target, o), .size = ix.disk_size };
    if ((rc = vdisk_create (target, &co, err)) < 0)
      goto out;
    created = true;
  }
  if ((rc = vdisk_open (target, VDISK_OPEN_RDWR, &d, err)) < 0)
    goto out;
  if (vdisk_size (d) < ix.disk_size) {
    rc = vb_err (err, ENOSPC, "'%s' has %llu bytes, the disk needs %llu", target,
                 (unsigned long long) vdisk_size (d), (unsigned long long) ix.disk_size);
    goto out;
  }
  /* a device holds old data: its zero chunks must be written as zeros */
  bool *all = NULL;
  if (blockdev) {
    all = malloc (ix.n ? ix.n : 1);
    if (!all) {
      rc = vb_errno (err, ENOMEM, "restore");
      goto out;
    }
    memset (all, 1, ix.n ? ix.n : 1);
  }
  rc = restore_chunks (r, &ix, d, true, all, o, NULL, err);
  free (all);
  int cr = vdisk_close (d, rc ? NULL : err);
  d = NULL;
  if (rc == 0)
    rc = cr;
  if (rc < 0 && created)
    vdisk_unlink (target, NULL);
out:
  if (d)
    vdisk_close (d, NULL);
  index_free (&ix);
  if (own_lock)
    repo_unlock (r);
  return rc;
}

/* Mark chunks touched by the disk's changes since the point, asked of
 * changed (NULL: the disk file's own change tracking). */
static int
want_from_ctk (const char *disk_path, engine_changed_fn changed, void *opaque,
               const struct manifest_disk *md, const struct repo_index *ix, bool *want,
               struct vb_error *err)
{
  struct vdisk_extent_list l = { 0 };
  if (md->change_id[0] == '\0')
    return -ESTALE;
  int rc = changed ? changed (opaque, md->key, md->change_id, &l, err)
    : vdisk_query_changed (disk_path, md->change_id, 0, &l, err);
  if (rc < 0) {
    vdisk_extent_list_free (&l);
    return rc;
  }
  for (size_t k = 0; k < l.n; k++) {
    uint64_t a = l.v[k].offset / ix->chunk_size;
    uint64_t b = (l.v[k].offset + l.v[k].length - 1) / ix->chunk_size;
    for (uint64_t i = a; i <= b && i < ix->n; i++)
      want[i] = true;
  }
  vdisk_extent_list_free (&l);
  return 0;
}

/* Mark chunks whose current content hashes differently from the point. */
static int
want_from_hashes (struct repo *r, struct vdisk *d, const struct repo_index *ix,
                  bool *want, struct vb_error *err)
{
  uint8_t *buf = malloc (ix->chunk_size);
  if (!buf)
    return vb_errno (err, ENOMEM, "compare");
  int rc = 0;
  for (uint64_t i = 0; i < ix->n && rc == 0; i++) {
    uint64_t off = i * ix->chunk_size;
    uint64_t len = ix->disk_size - off < ix->chunk_size ? ix->disk_size - off : ix->chunk_size;
    if ((rc = vdisk_pread (d, buf, len, off, err)) < 0)
      break;
    uint8_t id[REPO_ID_LEN];
    if (vio_is_zero (buf, len))
      memset (id, 0, sizeof id);
    else
      crypto_chunk_id (repo_keys (r), buf, len, id);
    want[i] = memcmp (id, ix->ids[i], REPO_ID_LEN) != 0;
  }
  free (buf);
  return rc;
}

/* Restore in place: write only chunks that differ. */
int
engine_restore_in_place (struct repo *r, const struct manifest *m,
                         const char *disk_path, const struct engine_restore_opts *o,
                         struct engine_inplace_result *res, struct vb_error *err)
{
  return engine_restore_in_place_src (r, m, disk_path, NULL, NULL, o, res, err);
}

/* Restore in place with the changed areas from a callback. */
int
engine_restore_in_place_src (struct repo *r, const struct manifest *m,
                             const char *disk_path, engine_changed_fn changed,
                             void *opaque, const struct engine_restore_opts *o,
                             struct engine_inplace_result *res, struct vb_error *err)
{
  memset (res, 0, sizeof *res);
  if (o->disk < 0 || (size_t) o->disk >= m->n_disks)
    return vb_err (err, EINVAL, "point %s has no disk %d", m->id, o->disk);
  struct repo_index ix = { 0 };
  struct vdisk *d = NULL;
  bool *want = NULL;
  bool own_lock = !repo_locked (r);
  int rc = own_lock ? repo_lock (r, false, "restore", err) : 0;
  if (rc < 0)
    return rc;
  if ((rc = engine_load_index (r, m, o->disk, &ix, err)) < 0)
    goto out;
  want = calloc (ix.n ? ix.n : 1, sizeof *want);
  if (!want) {
    rc = vb_errno (err, ENOMEM, "restore");
    goto out;
  }
  struct vb_error ce = { 0 };
  rc = want_from_ctk (disk_path, changed, opaque, &m->disks[o->disk], &ix, want, &ce);
  res->used_ctk = rc == 0;
  if ((rc = vdisk_open (disk_path, VDISK_OPEN_RDWR, &d, err)) < 0)
    goto out;
  if (vdisk_size (d) != ix.disk_size) {
    rc = vb_err (err, EINVAL, "'%s' has %llu bytes but the point's disk has %llu; "
                 "restore to a new file instead", disk_path,
                 (unsigned long long) vdisk_size (d), (unsigned long long) ix.disk_size);
    goto out;
  }
  if (!res->used_ctk) {
    if (!getenv ("VMBACK_QUIET_FALLBACK"))
      fprintf (stderr, "vmback: note: %s%s%s%s; comparing chunk hashes instead\n",
               changed ? "disk " : "", changed ? m->disks[o->disk].key : "",
               changed ? ": " : "",
               ce.msg[0] ? ce.msg : "no change tracking since the point");
    if ((rc = want_from_hashes (r, d, &ix, want, err)) < 0)
      goto out;
  }
  for (uint64_t i = 0; i < ix.n; i++)
    res->chunks_checked += 1;
  rc = restore_chunks (r, &ix, d, false, want, o, &res->chunks_written, err);
  int cr = vdisk_close (d, rc ? NULL : err);
  d = NULL;
  if (rc == 0)
    rc = cr;
out:
  if (d)
    vdisk_close (d, NULL);
  free (want);
  index_free (&ix);
  if (own_lock)
    repo_unlock (r);
  return rc;
}
