/* vmback engine: back up a whole VM through its connector (docs/CLI.md,
 * "backup VMX"), the disks of the snapshot read through a transport (transport.h:
 * san, hotadd, nbd, nbdssl, or auto, the first of san, hotadd, nbd that
 * works; the modes used are recorded in the manifest).
 *
 *  1. open the VM; delete snapshots an interrupted run left behind;
 *  2. save the VM's configuration with the point;
 *  3. take a snapshot (quiesced when asked);
 *  4. back up each disk of the snapshot (engine_backup_read: incremental
 *     from the changeId of the same device key in the previous point);
 *     the next disk's transport opens while a disk is read (an nbd
 *     export is an nbdkit started per disk);
 *  5. make every disk's chunks durable (one repository sync) and write
 *     the manifest;
 *  6. delete the snapshot -- also when a step failed or the run was
 *     cancelled (a signal handler sets o->cancel).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/connector.h"
#include "engine-int.h"
#include "transport/transport.h"
#include "vmback-config.h"

/* Delete every snapshot named with one of our prefixes (see engine-int.h),
 * then consolidate what interrupted snapshot operations left.
 * A restore's snapshot is reverted to first: the layer above it holds the
 * partial writes of an in-place restore that was killed, and deleting the
 * snapshot would merge them into the disks (a half-restored VM kept for
 * good); reverting leaves the disks as they were before that restore. */
int
engine_delete_leftovers (struct vb_connector *c, struct vb_error *err)
{
  struct vb_snapshot_info *v;
  size_t n;
  int rc = c->ops->list_snapshots (c, &v, &n, err);
  if (rc < 0)
    return rc;
  int count = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    bool restore = strncmp (v[i].name, ENGINE_SNAP_RESTORE, strlen (ENGINE_SNAP_RESTORE)) == 0;
    if (!restore && strncmp (v[i].name, ENGINE_SNAP_BACKUP, strlen (ENGINE_SNAP_BACKUP)) != 0)
      continue;
    if (restore) {
      fprintf (stderr, "vmback: reverting to snapshot '%s' (id %s) left by an interrupted "
               "restore: its partial writes are discarded\n", v[i].name, v[i].id);
      if ((rc = c->ops->snapshot_revert (c, v[i].id, err)) < 0)
        break;
    }
    fprintf (stderr, "vmback: deleting snapshot '%s' (id %s) left by an interrupted run\n",
             v[i].name, v[i].id);
    rc = c->ops->snapshot_delete (c, v[i].id, err);
    count++;
  }
  free (v);
  /* a run killed inside a snapshot operation leaves delta files no
   * snapshot explains (the VM "needs consolidation"): finish the job */
  int k = rc < 0 ? 0 : c->ops->consolidate (c, err);
  if (k > 0)
    fprintf (stderr, "vmback: consolidated the VM: %d delta file%s left by an "
             "interrupted run merged or removed\n", k, k == 1 ? "" : "s");
  return rc < 0 ? rc : k < 0 ? k : count;
}

/* State of one VM backup. */
struct vmb {
  struct repo *r;
  struct vb_connector *c;
  const struct engine_backup_opts *o;
  struct manifest *m, *pm;   /* the new point, the previous one */
  bool have_prev;
  char snap[32];             /* our snapshot's id, "" when none */
  bool stored;               /* objects of the point were written */
  bool published;            /* its manifest was written */
  bool put_tried;            /* writing the manifest was attempted */
};

/* Record transport mode in the manifest: "san", or "hotadd+nbd" when
 * disks went different ways. */
static void
note_mode (struct manifest *m, const char *mode)
{
  char *t = m->transport;
  size_t n = strlen (mode), len = strlen (t);
  for (const char *p = t; *p; p += strcspn (p, "+"), p += *p == '+')
    if (strncmp (p, mode, n) == 0 && (p[n] == '+' || p[n] == '\0'))
      return;
  if (len == 0)
    snprintf (t, sizeof m->transport, "%s", mode);
  else if (len + 1 + n < sizeof m->transport)
    snprintf (t + len, sizeof m->transport - len, "+%s", mode);
}

/* Changed areas of a disk as of our snapshot (connector). */
static int
snap_changed (void *opaque, const char *key, const char *since,
              struct vdisk_extent_list *out, struct vb_error *err)
{
  struct vmb *b = opaque;
  return b->c->ops->changed_areas (b->c, b->snap, key, since, 0, out, err);
}

/* The newest point of the VM, if it is a VM point. */
static int
previous_point (struct vmb *b, struct vb_error *err)
{
  struct manifest *all;
  size_t n;
  int rc = repo_list_points (b->r, b->m->source_name, &all, &n, err);
  if (rc < 0)
    return rc;
  if (n > 0 && strcmp (all[n - 1].kind, "vm") == 0) {
    *b->pm = all[n - 1];
    b->have_prev = true;
    snprintf (b->m->parent_id, sizeof b->m->parent_id, "%s", b->pm->id);
  }
  free (all);
  return 0;
}

/* Save the configuration as the point's config object. */
static int
save_config (struct vmb *b, struct vb_error *err)
{
  char *text;
  size_t len;
  int rc = b->c->ops->get_config (b->c, &text, &len, err);
  if (rc < 0)
    return rc;
  b->stored = true;
  rc = engine_store_config (b->r, b->m, text, len, err);
  free (text);
  return rc;
}

/* Consistency level name for the manifest. */
static const char *
level_name (enum quiesce_level l)
{
  return l == QUIESCE_LEVEL_APPLICATION ? "application"
    : l == QUIESCE_LEVEL_FILESYSTEM ? "filesystem" : "crash";
}

/* Take our snapshot, tagged so that a later run can find a leftover. */
static int
take_snapshot (struct vmb *b, struct vb_error *err)
{
  char name[64], when[32];
  time_t t = (time_t) b->m->started;
  struct tm tm;
  gmtime_r (&t, &tm);
  strftime (when, sizeof when, "%Y%m%dT%H%M%SZ", &tm);
  snprintf (name, sizeof name, ENGINE_SNAP_BACKUP "%s", when);
  enum quiesce_mode q = b->o->quiesce == ENGINE_QUIESCE_REQUIRED ? QUIESCE_REQUIRED
    : b->o->quiesce == ENGINE_QUIESCE_TRY ? QUIESCE_TRY : QUIESCE_OFF;
  struct vb_snapshot s = { 0 };
  int rc = b->c->ops->snapshot_create (b->c, name, "vmback backup in progress", q, &s, err);
  if (rc < 0) {
    /* a snapshot may exist anyway (a signal while frozen): find it by name */
    struct vb_error e2 = { 0 };
    engine_delete_leftovers (b->c, &e2);
    return rc;
  }
  snprintf (b->snap, sizeof b->snap, "%s", s.id);
  if (s.warning[0])
    fprintf (stderr, "vmback: warning: %s\n", s.warning);
  snprintf (b->m->consistency, sizeof b->m->consistency, "%s", level_name (s.level));
  return 0;
}

/* A disk's transport, opened in a thread while the previous disk is
 * read: nbd starts an nbdkit per disk, tens of ms of dynamic linking and
 * handshake that the reads hide.  The thread stays until the reader is
 * closed: nbdkit runs with --exit-with-parent, which watches the thread
 * that started it, not the process. */
struct opener {
  pthread_t t;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool started;              /* opener_start ran; opener_finish is due */
  bool threaded;             /* t runs */
  bool opened, release;      /* under mu */
  const char *mode;
  int quiet;
  char *path;                /* the snapshot's disk; NULL once taken */
  struct vb_reader *rd;
  int rc;
  struct vb_error err;
};

/* Thread body: open o->path, then wait to be released. */
static void *
opener_run (void *arg)
{
  struct opener *o = arg;
  int rc = vb_transport_open (o->mode, o->path, o->quiet, &o->rd, &o->err);
  pthread_mutex_lock (&o->mu);
  o->rc = rc;
  o->opened = true;
  pthread_cond_broadcast (&o->cv);
  while (!o->release)
    pthread_cond_wait (&o->cv, &o->mu);
  pthread_mutex_unlock (&o->mu);
  return NULL;
}

/* Start opening path (taken over) in the background; without a thread,
 * opener_take opens it in the foreground. */
static void
opener_start (struct opener *o, const struct vmb *b, char *path)
{
  memset (o, 0, sizeof *o);
  pthread_mutex_init (&o->mu, NULL);
  pthread_cond_init (&o->cv, NULL);
  o->started = true;
  o->mode = b->o->transport;
  o->quiet = b->o->quiet;
  o->path = path;
  o->threaded = pthread_create (&o->t, NULL, opener_run, o) == 0;
}

/* The reader of o->path, and the path (both now the caller's). */
static int
opener_take (struct opener *o, struct vb_reader **rd, char **path, struct vb_error *err)
{
  if (o->threaded) {
    pthread_mutex_lock (&o->mu);
    while (!o->opened)
      pthread_cond_wait (&o->cv, &o->mu);
    pthread_mutex_unlock (&o->mu);
  }
  *path = o->path;           /* the thread is done with it */
  o->path = NULL;
  if (!o->threaded)
    return vb_transport_open (o->mode, *path, o->quiet, rd, err);
  if (o->rc < 0)
    return vb_err (err, -o->rc, "%s", o->err.msg);
  *rd = o->rd;
  return 0;
}

/* After the reader is closed: let the thread go. */
static void
opener_finish (struct opener *o)
{
  if (!o->started)
    return;
  if (o->threaded) {
    pthread_mutex_lock (&o->mu);
    o->release = true;
    pthread_cond_broadcast (&o->cv);
    pthread_mutex_unlock (&o->mu);
    pthread_join (o->t, NULL);
  }
  pthread_mutex_destroy (&o->mu);
  pthread_cond_destroy (&o->cv);
  o->started = false;
}

/* Drop an opener whose reader is not used (a failure or cancel came
 * first): close what it opened. */
static void
opener_drop (struct opener *o)
{
  struct vb_reader *rd = NULL;
  char *path = NULL;
  struct vb_error e = { 0 };
  if (o->started && o->path && opener_take (o, &rd, &path, &e) == 0)
    rd->ops->close (rd);
  free (path);
  opener_finish (o);
}

/* Back up disk i (key, as of our snapshot; its reader rd, which is
 * closed here) and store its index. */
static int
backup_one (struct vmb *b, size_t i, const struct vb_vm_disk *vd, char *path,
            struct vb_reader *rd, struct vb_error *err)
{
  char cid[128] = "";
  struct vb_error ce = { 0 };
  if (b->c->ops->change_id (b->c, b->snap, vd->key, cid, sizeof cid, &ce) < 0) {
    char what[80];
    snprintf (what, sizeof what, "disk %s", vd->key);
    cid[0] = '\0';
    engine_note_no_change_id (what, &ce);
  }
  note_mode (b->m, rd->mode);
  if (!b->o->quiet)
    fprintf (stderr, "vmback: disk %s: transport %s\n", vd->key, rd->mode);
  struct engine_disk_src src = {
    .key = vd->key, .path = path, .reader = rd, .change_id = cid,
    .changed = snap_changed, .opaque = b, .notes = true,
  };
  struct repo_index ix = { 0 };
  int rc = engine_backup_read (b->r, &src, b->have_prev ? b->pm : NULL, b->o,
                               &b->m->disks[i], &ix, err);
  rd->ops->close (rd);
  if (rc < 0 && rc != -ECANCELED)
    vb_err_prefix (err, "disk %s", vd->key);
  if (rc < 0)
    return rc;
  /* the disk's chunks become durable with all the others, before the
   * manifest (run_backup): without a manifest, nothing reads this index */
  rc = engine_store_index (b->r, b->m, (int) i, &ix, err);
  index_free (&ix);
  return rc;
}

/* Start opening the transport of disk i of the snapshot. */
static int
open_next (struct vmb *b, const struct vb_vm_disk *vd, struct opener *o, struct vb_error *err)
{
  char *path;
  int rc = b->c->ops->disk_path (b->c, b->snap, vd->key, &path, err);
  if (rc == 0)
    opener_start (o, b, path);
  return rc;
}

/* Back up every disk of the snapshot, disk i+1's transport opening while
 * disk i is read. */
static int
backup_disks (struct vmb *b, struct vb_error *err)
{
  struct vb_vm_disk *disks;
  size_t n;
  int rc = b->c->ops->list_disks (b->c, &disks, &n, err);
  if (rc < 0)
    return rc;
  if (n == 0 || n > MANIFEST_MAX_DISKS)
    rc = vb_err (err, EINVAL, "VM '%s' has %zu disks (1..%d can be backed up)",
                 b->m->source_name, n, MANIFEST_MAX_DISKS);
  struct opener op[2];
  op[0].started = op[1].started = false;
  if (rc == 0)
    rc = open_next (b, &disks[0], &op[0], err);
  for (size_t i = 0; i < n && rc == 0; i++) {
    struct opener *cur = &op[i % 2];
    struct vb_reader *rd = NULL;
    char *path = NULL;
    if (b->o->cancel && *b->o->cancel) {
      rc = vb_err (err, ECANCELED, "backup of '%s' interrupted", b->m->source_name);
      break;
    }
    b->m->n_disks = i + 1;
    rc = opener_take (cur, &rd, &path, err);
    if (rc < 0)
      vb_err_prefix (err, "disk %s", disks[i].key);
    if (rc == 0 && i + 1 < n && (rc = open_next (b, &disks[i + 1], &op[(i + 1) % 2], err)) < 0)
      rd->ops->close (rd);
    if (rc == 0)
      rc = backup_one (b, i, &disks[i], path, rd, err);
    free (path);
    opener_finish (cur);
  }
  opener_drop (&op[0]);
  opener_drop (&op[1]);
  vb_vm_disks_free (disks, n);
  return rc;
}

/* Delete the objects a failed run stored for the point (chunks stay for
 * gc; there is no manifest, so nothing lists the point). */
static void
drop_objects (struct vmb *b)
{
  struct repo_backend *be = repo_backend (b->r);
  struct vb_error e = { 0 };
  if (b->m->config_key[0])
    be->ops->del (be, b->m->config_key, &e);
  for (size_t i = 0; i < b->m->n_disks; i++)
    if (b->m->disks[i].index_key[0])
      be->ops->del (be, b->m->disks[i].index_key, &e);
}

/* After a failed manifest write: is the point there all the same?  An
 * object store can fail a request (a timeout) that it carried out; the
 * point's objects must then stay, or a listed point would lose them. */
static bool
manifest_landed (struct vmb *b)
{
  if (!b->put_tried)
    return false;
  struct manifest *m = malloc (sizeof *m);
  struct vb_error e = { 0 };
  bool there = m && repo_find_point (b->r, b->m->id, m, &e) == 0
    && strcmp (m->id, b->m->id) == 0;
  free (m);
  if (there)
    fprintf (stderr, "vmback: note: point %s was stored although writing its manifest "
             "reported an error\n", b->m->id);
  return there;
}

/* Delete our snapshot; rc is the flow's result so far. */
static int
drop_snapshot (struct vmb *b, int rc, struct vb_error *err)
{
  if (!b->snap[0])
    return rc;
  struct vb_error de = { 0 };
  int d = b->c->ops->snapshot_delete (b->c, b->snap, &de);
  b->snap[0] = '\0';
  if (d < 0 && rc == 0)
    return vb_err (err, -d, "point %s is stored, but deleting the backup snapshot "
                   "failed (the next backup deletes it): %s", b->m->id, de.msg);
  if (d < 0)
    fprintf (stderr, "vmback: cannot delete the backup snapshot (the next backup "
             "deletes it): %s\n", de.msg);
  return rc;
}

/* Steps 2-5 with the VM open and the repository locked. */
static int
run_backup (struct vmb *b, struct vb_error *err)
{
  int rc;
  if ((rc = engine_delete_leftovers (b->c, err)) < 0)
    return rc;
  if ((rc = previous_point (b, err)) < 0)
    return rc;
  if ((rc = repo_new_point_id (b->r, b->m->source_name, b->m->started, b->m->id,
                               sizeof b->m->id, err)) < 0)
    return rc;
  if ((rc = save_config (b, err)) < 0)
    return rc;
  if ((rc = take_snapshot (b, err)) < 0)
    return rc;
  if ((rc = backup_disks (b, err)) < 0)
    return rc;
  if (b->o->cancel && *b->o->cancel)
    return vb_err (err, ECANCELED, "backup of '%s' interrupted", b->m->source_name);
  /* every chunk of every disk durable before the manifest binds their
   * indexes: one sync for all disks, so writing back disk i's chunks
   * overlaps reading disk i+1 */
  if ((rc = chunkstore_flush (repo_chunks (b->r), err)) < 0)
    return rc;
  b->m->finished = time (NULL);
  b->put_tried = true;
  if ((rc = repo_put_manifest (b->r, b->m, err)) == 0)
    b->published = true;
  return rc;
}

/* Fill the constant parts of the new point. */
static void
init_point (struct vmb *b, struct vb_connector *c)
{
  struct manifest *m = b->m;
  m->started = time (NULL);
  snprintf (m->source_name, sizeof m->source_name, "%s",
            b->o->source_name ? b->o->source_name : c->ops->vm_name (c));
  snprintf (m->kind, sizeof m->kind, "vm");
  snprintf (m->consistency, sizeof m->consistency, "crash");
  snprintf (m->tool_version, sizeof m->tool_version, "vmback %s", VMBACK_VERSION);
  m->chunk_size = repo_chunk_size (b->r);
}

/* Back up a VM (see engine.h). */
int
engine_backup_vm (struct repo *r, const char *source, const struct engine_backup_opts *o,
                  struct manifest *out, struct vb_error *err)
{
  const struct vb_connector_ops *ops = vb_connector_find (source);
  if (!ops)
    return vb_err (err, EINVAL, "'%s' is not a VM any connector knows", source);
  struct vmb b = { .r = r, .o = o };
  b.m = calloc (1, sizeof *b.m);
  b.pm = calloc (1, sizeof *b.pm);
  int rc = 0;
  if (!b.m || !b.pm) {
    rc = vb_errno (err, ENOMEM, "backup of '%s'", source);
    goto out;
  }
  if ((rc = ops->open (source, &b.c, err)) < 0)
    goto out;
  init_point (&b, b.c);
  if ((rc = repo_lock (r, false, "backup", err)) == 0) {
    rc = run_backup (&b, err);
    rc = drop_snapshot (&b, rc, err);
    if (rc < 0 && b.stored && !b.published && !manifest_landed (&b))
      drop_objects (&b);
    repo_unlock (r);
  }
  if (rc == 0 && out)
    *out = *b.m;
  ops->close (b.c);
out:
  free (b.m);
  free (b.pm);
  return rc;
}
