/* vmback engine: back up a disk image into a restore point (the per-disk
 * steps of a VM backup, for one disk).
 *
 * The point is a synthetic full: its index lists every chunk of the disk.
 * Chunks the change tracker says are unchanged since the previous point
 * are copied from the previous index without reading the disk; the rest
 * is read, hashed, and stored when the repository does not have it yet.
 * Reading happens in the main thread, hashing/compression/encryption/
 * storing in worker threads (pipeline.c). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine-int.h"
#include "pipeline.h"
#include "transport/transport.h"
#include "vmback-config.h"

#define SLOTS_PER_THREAD 4

enum { JOB_READ = 1, JOB_ZERO = 2 };

/* Shared state of one disk's backup. */
struct bctx {
  struct repo *r;
  struct chunkstore *cs;
  const struct repo_keys *k;
  int level;
  pthread_mutex_t mu;        /* guards seen and the counters below */
  struct idset seen;         /* ids stored or found during this run */
  struct manifest_disk *md;
  const struct repo_index *prev; /* the previous point's index (incremental) */
  unsigned misses;           /* exists() answers "no" in a row */
  unsigned unasked;          /* chunks stored without asking, modulo */
};

/* When asking the repository whether a chunk exists costs a request
 * (S3: a HEAD, about as much server work as a small PUT), a run of new
 * data does not ask about every chunk: after PROBE_STREAK misses in a row
 * only every PROBE_EVERY-th chunk is asked about and the others are
 * stored without asking (chunks are content-addressed, so storing one
 * that exists only costs its upload).  One hit resumes asking about every
 * chunk, so data that is mostly present (a VM cloned from one already
 * backed up) is still stored once.  An incremental starts in the sampling
 * mode: what the change tracker reports is new data far more often than
 * not (after 1% of scattered writes: 13 HEADs instead of 43, of 227
 * requests in all). */
#define PROBE_STREAK 32
#define PROBE_EVERY 16

/* Ask the repository about this chunk?  (Always when asking is cheap:
 * a local directory, or a packed store's table.) */
static bool
want_probe (struct bctx *c)
{
  if (!chunkstore_has_costly (c->cs))
    return true;
  pthread_mutex_lock (&c->mu);
  bool ask = c->misses < PROBE_STREAK || ++c->unasked % PROBE_EVERY == 0;
  pthread_mutex_unlock (&c->mu);
  return ask;
}

/* Does the store have chunk id?  Keeps the streak of misses. */
static int
probe (struct bctx *c, const uint8_t id[REPO_ID_LEN], struct vb_error *err)
{
  int ex = chunkstore_has (c->cs, id, err);
  if (ex < 0)
    return ex;
  pthread_mutex_lock (&c->mu);
  c->misses = ex ? 0 : c->misses + 1;
  pthread_mutex_unlock (&c->mu);
  return ex;
}

/* Worker: zero check, id, dedup, encode, store. */
static int
store_chunk (void *opaque, struct pl_slot *s, struct vb_error *err)
{
  struct bctx *c = opaque;
  if (vio_is_zero (s->buf, s->len)) {
    memset (s->id, 0, sizeof s->id);
    s->kind = JOB_ZERO;
    return 0;
  }
  crypto_chunk_id (c->k, s->buf, s->len, s->id);
  s->kind = JOB_READ;
  s->stored = 0;
  /* rewritten with the same bytes: the previous point's chunk, which its
   * manifest keeps (and our lock keeps gc away from) */
  if (c->prev && memcmp (c->prev->ids[s->i], s->id, REPO_ID_LEN) == 0)
    return 0;
  pthread_mutex_lock (&c->mu);
  bool seen = idset_has (&c->seen, s->id);
  pthread_mutex_unlock (&c->mu);
  if (seen)
    return 0;
  int ex = 0;
  if (want_probe (c))
    ex = probe (c, s->id, err);
  if (ex < 0)
    return ex;
  if (ex == 0) {
    uint8_t *blob;
    size_t blen;
    int r = chunk_encode (c->k, s->id, s->buf, s->len, c->level, &blob, &blen, err);
    if (r < 0)
      return r;
    r = chunkstore_put (c->cs, s->id, blob, blen, err);
    free (blob);
    if (r < 0)
      return r;
    s->stored = r == 1 ? blen : 0;   /* 0: stored meanwhile by another worker */
  }
  pthread_mutex_lock (&c->mu);
  int a = idset_add (&c->seen, s->id);
  pthread_mutex_unlock (&c->mu);
  return a < 0 ? vb_errno (err, ENOMEM, "backup") : 0;
}

/* Account a finished slot into the index and the counters. */
static int
finish_slot (struct bctx *c, struct repo_index *ix, struct pl_slot *s,
             struct vb_error *err)
{
  if (s->rc < 0) {
    if (err && err->code == 0)
      *err = s->err;
    return s->rc;
  }
  memcpy (ix->ids[s->i], s->id, REPO_ID_LEN);
  c->md->chunks_read++;
  c->md->bytes_read += s->len;
  if (s->kind == JOB_ZERO)
    c->md->chunks_zero++;
  else if (s->stored) {
    c->md->chunks_new++;
    c->md->bytes_new_stored += s->stored;
  } else
    c->md->chunks_reused++;
  return 0;
}

/* Does chunk [a, a+len) intersect any changed area?  *cursor walks the
 * sorted list forward as chunks advance. */
static bool
intersects (const struct vdisk_extent_list *l, size_t *cursor, uint64_t a,
            uint64_t len)
{
  while (*cursor < l->n && l->v[*cursor].offset + l->v[*cursor].length <= a)
    (*cursor)++;
  return *cursor < l->n && l->v[*cursor].offset < a + len;
}

/* Is the whole range a hole/zero area of the disk (no read needed)? */
static int
all_zero_area (struct vb_reader *d, uint64_t off, uint64_t len, struct vb_error *err)
{
  while (len > 0) {
    uint64_t pnum;
    int s = d->ops->status (d, off, len, &pnum, err);
    if (s < 0)
      return s;
    if (s == VDISK_STATUS_DATA)
      return 0;
    off += pnum;
    len -= pnum;
  }
  return 1;
}

/* Which chunks to read: the plan for one disk. */
struct plan {
  const struct repo_index *prev;     /* previous point's index, or NULL */
  struct vdisk_extent_list changed;  /* valid when incremental */
  bool incremental;
};

/* Reads started into slots, oldest first, for readers with read_start:
 * a slot goes to the workers once its read is waited for. */
struct reads {
  struct pl_slot *s[VB_READS_AHEAD];
  int first, n;
};

/* Wait for the oldest started read and submit its slot (dropped when the
 * read failed, or when submit is false: an error already stops us). */
static int
reads_finish_one (struct reads *q, struct vb_reader *d, struct pipeline *p, bool submit,
                  struct vb_error *err)
{
  struct pl_slot *s = q->s[q->first];
  q->first = (q->first + 1) % VB_READS_AHEAD;
  q->n--;
  struct vb_error e = { 0 };
  int r = d->ops->read_wait (d, submit ? err : &e);
  if (r == 0 && submit)
    pl_submit (p, s);
  return r;
}

/* Fill slot s with [off, off+len): read now, or start the read and pass
 * on the oldest one once VB_READS_AHEAD are in flight. */
static int
read_slot (struct reads *q, struct vb_reader *d, struct pipeline *p, struct pl_slot *s,
           uint64_t off, uint64_t len, struct vb_error *err)
{
  int r;
  if (!d->ops->read_start) {
    if ((r = d->ops->pread (d, s->buf, len, off, err)) == 0)
      pl_submit (p, s);
    return r;
  }
  if ((r = d->ops->read_start (d, s->buf, len, off, err)) < 0)
    return r;
  q->s[(q->first + q->n++) % VB_READS_AHEAD] = s;
  return q->n == VB_READS_AHEAD ? reads_finish_one (q, d, p, true, err) : 0;
}

/* Read and store the disk's chunks according to plan into ix. */
static int
run_chunks (struct bctx *c, struct vb_reader *d, const char *path, struct plan *pl,
            struct repo_index *ix, const struct engine_backup_opts *o,
            struct vb_error *err)
{
  struct pipeline *p;
  int threads = o->threads > 0 ? o->threads : pl_default_threads ();
  /* slots for the reads in flight, for readers that keep some */
  int ahead = d->ops->read_start ? VB_READS_AHEAD : 0;
  int r = pl_start (&p, threads * SLOTS_PER_THREAD + ahead, ix->chunk_size, threads,
                    store_chunk, c, err);
  if (r < 0)
    return r;
  uint64_t size = ix->disk_size;
  size_t cursor = 0;
  struct reads q = { .n = 0 };
  for (uint64_t i = 0; i < ix->n && r == 0; i++) {
    uint64_t off = i * ix->chunk_size;
    uint64_t len = size - off < ix->chunk_size ? size - off : ix->chunk_size;
    if (o->cancel && *o->cancel) {
      r = vb_err (err, ECANCELED, "backup of '%s' interrupted", path);
      break;
    }
    if (pl->incremental && !intersects (&pl->changed, &cursor, off, len)) {
      memcpy (ix->ids[i], pl->prev->ids[i], REPO_ID_LEN);
      if (index_is_zero (ix, i))
        c->md->chunks_zero++;
      else
        c->md->chunks_reused++;
      continue;
    }
    int z = all_zero_area (d, off, len, err);
    if (z < 0) {
      r = z;
      break;
    }
    if (z == 1) {                    /* a hole: zero without reading */
      memset (ix->ids[i], 0, REPO_ID_LEN);
      c->md->chunks_zero++;
      continue;
    }
    struct pl_slot *done;
    struct pl_slot *s = pl_next (p, &done);
    if (done && (r = finish_slot (c, ix, done, err)) < 0)
      break;
    s->i = i;
    s->len = len;
    if ((r = read_slot (&q, d, p, s, off, len, err)) < 0)
      break;
    if (o->progress)
      o->progress (o->opaque, off + len, size);
  }
  while (q.n > 0) {                  /* no slot is freed under a read */
    int wr = reads_finish_one (&q, d, p, r == 0, err);
    if (r == 0)
      r = wr;
  }
  struct pl_slot *s;
  while ((s = pl_take (p))) {
    int fr = finish_slot (c, ix, s, err);
    if (r == 0)
      r = fr;
    pl_release (p, s);
  }
  pl_stop (p);
  if (r == 0 && o->progress)
    o->progress (o->opaque, size, size);
  return r;
}

/* The newest point of source of the given kind into *pm; *have = false
 * when there is none. */
static int
load_previous (struct repo *r, const char *source, const char *kind,
               struct manifest *pm, bool *have, struct vb_error *err)
{
  struct manifest *all;
  size_t n;
  *have = false;
  int rc = repo_list_points (r, source, &all, &n, err);
  if (rc < 0)
    return rc;
  if (n > 0 && strcmp (all[n - 1].kind, kind) == 0) {
    *pm = all[n - 1];
    *have = true;
  }
  free (all);
  return 0;
}

/* A changeId that could not be read (engine-int.h): an I/O error on the
 * tracker must not pass unseen, though the backup itself is sound. */
void
engine_note_no_change_id (const char *what, const struct vb_error *ce)
{
  if (ce->code == ENOENT || ce->code == ESTALE || getenv ("VMBACK_QUIET_FALLBACK"))
    return;
  fprintf (stderr, "vmback: note: %s: %s; this point has no changeId, so the next "
           "backup reads it in full\n", what, ce->msg);
}

/* Say why a disk is read in full (VM backups; disk images stay quiet). */
static void __attribute__ ((format (printf, 2, 3)))
full_note (const struct engine_disk_src *src, const char *fmt, ...)
{
  if (!src->notes || getenv ("VMBACK_QUIET_FALLBACK"))
    return;
  char why[600];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (why, sizeof why, fmt, ap);
  va_end (ap);
  fprintf (stderr, "vmback: note: disk %s: %s; reading it in full\n", src->key, why);
}

/* Decide full vs incremental from the previous point's disk of the same
 * key (pd, its index pix) and the change tracker. */
static void
make_plan (const struct engine_disk_src *src, const struct manifest *pm,
           const struct manifest_disk *pd, const struct repo_index *pix, uint64_t size,
           uint32_t chunk_size, const struct engine_backup_opts *o, struct plan *pl,
           struct manifest_disk *md)
{
  memset (pl, 0, sizeof *pl);
  snprintf (md->change_id_used, sizeof md->change_id_used, "*");
  if (o->full || !pm)
    return;
  if (!pd) {
    full_note (src, "not in point %s", pm->id);
    return;
  }
  if (pd->change_id[0] == '\0' || pix->chunk_size != chunk_size) {
    vb_debug ("previous point %s cannot seed an incremental: reading everything", pm->id);
    full_note (src, "point %s has no changeId (or another chunk size) for it", pm->id);
    return;
  }
  if (pix->disk_size != size) {
    vb_debug ("previous point %s cannot seed an incremental: reading everything", pm->id);
    full_note (src, "size changed from %llu to %llu bytes",
               (unsigned long long) pix->disk_size, (unsigned long long) size);
    return;
  }
  struct vb_error qe = { 0 };
  if (src->changed (src->opaque, src->key, pd->change_id, &pl->changed, &qe) < 0) {
    if (!getenv ("VMBACK_QUIET_FALLBACK")) {
      if (src->notes)
        fprintf (stderr, "vmback: note: disk %s: %s; reading it in full (deduplicated)\n",
                 src->key, qe.msg);
      else
        fprintf (stderr, "vmback: note: %s; reading the whole disk (deduplicated)\n", qe.msg);
    }
    vdisk_extent_list_free (&pl->changed);
    return;
  }
  pl->incremental = true;
  pl->prev = pix;
  snprintf (md->change_id_used, sizeof md->change_id_used, "%s", pd->change_id);
}

/* The disk of prev with key, or NULL. */
static const struct manifest_disk *
prev_disk (const struct manifest *prev, const char *key, int *idx)
{
  for (size_t i = 0; prev && i < prev->n_disks; i++)
    if (strcmp (prev->disks[i].key, key) == 0) {
      *idx = (int) i;
      return &prev->disks[i];
    }
  return NULL;
}

/* Read one disk into ix and md (see engine-int.h). */
int
engine_backup_read (struct repo *r, const struct engine_disk_src *src,
                    const struct manifest *prev, const struct engine_backup_opts *o,
                    struct manifest_disk *md, struct repo_index *ix,
                    struct vb_error *err)
{
  struct repo_index pix = { 0 };
  struct vb_reader *d = src->reader;
  struct bctx c = { .r = r, .md = md };
  struct plan pl = { 0 };
  snprintf (md->key, sizeof md->key, "%s", src->key);
  snprintf (md->source, sizeof md->source, "%s", src->path);
  snprintf (md->change_id, sizeof md->change_id, "%s", src->change_id);
  int rc = d ? 0 : vb_transport_open ("san", src->path, 1, &d, err);
  if (rc < 0)
    return rc;
  uint64_t size = d->size;
  uint32_t cs = repo_chunk_size (r);
  md->size = size;
  int pidx = -1;
  const struct manifest_disk *pd = prev_disk (prev, src->key, &pidx);
  if (pd && (rc = engine_load_index (r, prev, pidx, &pix, err)) < 0)
    goto out;
  make_plan (src, prev, pd, &pix, size, cs, o, &pl, md);
  if ((rc = index_alloc (ix, size, cs, err)) < 0)
    goto out;
  c.cs = repo_chunks (r);
  c.k = repo_keys (r);
  c.level = repo_compress_level (r);
  if (pl.incremental) {
    c.prev = pl.prev;
    c.misses = PROBE_STREAK;
  }
  pthread_mutex_init (&c.mu, NULL);
  rc = run_chunks (&c, d, src->path, &pl, ix, o, err);
  pthread_mutex_destroy (&c.mu);
out:
  if (d != src->reader)
    d->ops->close (d);
  vdisk_extent_list_free (&pl.changed);
  idset_free (&c.seen);
  index_free (&pix);
  if (rc < 0)
    index_free (ix);
  return rc;
}

/* The disk file's own change tracking (disk images). */
static int
file_changed (void *opaque, const char *key, const char *since,
              struct vdisk_extent_list *out, struct vb_error *err)
{
  (void) key;
  return vdisk_query_changed (opaque, since, 0, out, err);
}

/* Source name from a path: file name without extension, safe characters. */
static void
default_source (const char *path, char *buf, size_t len)
{
  const char *base = strrchr (path, '/');
  base = base ? base + 1 : path;
  size_t j = 0;
  for (size_t i = 0; base[i] && j + 1 < len; i++) {
    char ch = base[i];
    if (ch == '.' && (strcasecmp (base + i, ".vmdk") == 0 || strcasecmp (base + i, ".raw") == 0
                      || strcasecmp (base + i, ".img") == 0))
      break;
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
      || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    buf[j++] = ok ? ch : '_';
  }
  buf[j] = '\0';
  if (j == 0)
    snprintf (buf, len, "disk");
}

/* Back up one disk image (see engine.h). */
int
engine_backup_disk (struct repo *r, const char *disk_path,
                    const struct engine_backup_opts *o, struct manifest *out,
                    struct vb_error *err)
{
  struct manifest *m = calloc (1, sizeof *m), *pm = calloc (1, sizeof *pm);
  struct repo_index ix = { 0 };
  int rc;
  if (!m || !pm) {
    rc = vb_errno (err, ENOMEM, "backup of '%s'", disk_path);
    goto out_free;
  }
  if ((rc = repo_lock (r, false, "backup", err)) < 0)
    goto out_free;
  m->started = time (NULL);
  if (o->source_name)
    snprintf (m->source_name, sizeof m->source_name, "%s", o->source_name);
  else
    default_source (disk_path, m->source_name, sizeof m->source_name);
  m->n_disks = 1;
  /* the changeId is taken before reading: writes during the read show up
   * in the next incremental rather than being lost */
  char cid[128];
  struct vb_error ce = { 0 };
  if (vdisk_ctk_change_id (disk_path, cid, sizeof cid, &ce) < 0) {
    cid[0] = '\0';
    engine_note_no_change_id (disk_path, &ce);
  }
  bool have_prev;
  if ((rc = load_previous (r, m->source_name, "disk", pm, &have_prev, err)) < 0)
    goto out;
  if (have_prev)
    snprintf (m->parent_id, sizeof m->parent_id, "%s", pm->id);
  struct engine_disk_src src = {
    .key = "disk0", .path = disk_path, .change_id = cid,
    .changed = file_changed, .opaque = (void *) disk_path,
  };
  /* a disk image is read directly unless a transport is asked for */
  if (o->transport && (rc = vb_transport_open (o->transport, disk_path, o->quiet,
                                               &src.reader, err)) < 0)
    goto out;
  uint32_t cs = repo_chunk_size (r);
  rc = engine_backup_read (r, &src, have_prev ? pm : NULL, o, &m->disks[0], &ix, err);
  snprintf (m->transport, sizeof m->transport, "%s", src.reader ? src.reader->mode : "file");
  if (src.reader)
    src.reader->ops->close (src.reader);
  if (rc < 0)
    goto out;
  m->chunk_size = cs;
  snprintf (m->kind, sizeof m->kind, "disk");
  snprintf (m->consistency, sizeof m->consistency, "crash");
  snprintf (m->tool_version, sizeof m->tool_version, "vmback %s", VMBACK_VERSION);
  /* every chunk durable before the index that references it */
  if ((rc = chunkstore_flush (repo_chunks (r), err)) < 0)
    goto out;
  if ((rc = repo_new_point_id (r, m->source_name, m->started, m->id, sizeof m->id, err)) < 0)
    goto out;
  if ((rc = engine_store_index (r, m, 0, &ix, err)) < 0)
    goto out;
  m->finished = time (NULL);
  if ((rc = repo_put_manifest (r, m, err)) < 0)
    goto out;
  if (out)
    *out = *m;
out:
  repo_unlock (r);
out_free:
  index_free (&ix);
  free (m);
  free (pm);
  return rc;
}
