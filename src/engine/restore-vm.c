/* vmback engine: restore a VM point (docs/CLI.md, "restore").
 *
 * To a new VM directory: the saved configuration with each disk's
 * fileName pointing at its restored file, every disk restored in full
 * (engine_restore_disk), an empty snapshot database.
 *
 * In place, into the existing powered-off VM: the configuration is
 * restored first (the VM's current disk files kept), then a snapshot S
 * is taken, each disk's changes since the point (the connector's change
 * tracking on the current state, or chunk hashes when the point's
 * changeId is no longer valid) are written back into the new top layer
 * (engine_restore_in_place_src), and S is deleted, which merges the top
 * layer into the disks: the VM ends with the point's data and no
 * snapshot.  When a disk fails half way, the VM is reverted to S (the
 * partial writes are discarded), S deleted and the old configuration put
 * back, so a failed restore leaves the VM as it was.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "connectors/connector.h"
#include "connectors/vmsd.h"
#include "connectors/vmx-config.h"
#include "engine-int.h"

/* A VM point with what a VM restore needs. */
static int
check_vm_point (const struct manifest *m, bool need_config, struct vb_error *err)
{
  if (strcmp (m->kind, "vm") != 0)
    return vb_err (err, EINVAL, "point %s is a %s point, not a VM's: restore it to a "
                   "file or with --in-place DISK", m->id, m->kind);
  if (need_config && m->config_key[0] == '\0')
    return vb_err (err, EINVAL, "point %s has no saved VM configuration", m->id);
  return 0;
}

/* --- to a new directory --------------------------------------------------- */

/* Files created so far, removed when the restore fails. */
struct undo {
  char *paths[MANIFEST_MAX_DISKS + 2];
  bool is_disk[MANIFEST_MAX_DISKS + 2];
  size_t n;
  char *dir;                 /* created by us, else NULL */
};

/* Remember a created file (takes path). */
static void
undo_add (struct undo *u, char *path, bool disk)
{
  u->paths[u->n] = path;
  u->is_disk[u->n++] = disk;
}

/* Remove what was created (failed) or just forget it (done). */
static void
undo_run (struct undo *u, bool failed)
{
  for (size_t i = 0; i < u->n; i++) {
    if (failed && u->is_disk[i])
      vdisk_unlink (u->paths[i], NULL);
    else if (failed)
      unlink (u->paths[i]);
    free (u->paths[i]);
  }
  if (failed && u->dir)
    rmdir (u->dir);
  free (u->dir);
}

/* dir must be absent (created here) or an empty directory. */
static int
prepare_dir (const char *dir, struct undo *u, struct vb_error *err)
{
  struct stat st;
  if (stat (dir, &st) < 0) {
    if (errno != ENOENT)
      return vb_errno (err, errno, "cannot restore to '%s'", dir);
    if (mkdir (dir, 0755) < 0)
      return vb_errno (err, errno, "cannot create '%s'", dir);
    u->dir = strdup (dir);
    return 0;
  }
  if (!S_ISDIR (st.st_mode))
    return vb_err (err, ENOTDIR, "cannot restore to '%s': not a directory", dir);
  DIR *d = opendir (dir);
  if (!d)
    return vb_errno (err, errno, "cannot open '%s'", dir);
  struct dirent *e;
  int rc = 0;
  while ((e = readdir (d)))
    if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0) {
      rc = vb_err (err, EEXIST, "cannot restore to '%s': the directory is not empty "
                   "(a VM is restored into a new directory)", dir);
      break;
    }
  closedir (d);
  return rc;
}

/* File name for a restored disk: the base name of the file the saved
 * configuration names, without a snapshot suffix (-NNNNNN), unique in
 * the new directory. */
static void
disk_file_name (const char *vm, const char *key, const char *cfg_file, bool raw,
                char names[][256], size_t n_names, char *out, size_t len)
{
  const char *base = cfg_file ? strrchr (cfg_file, '/') : NULL;
  base = base ? base + 1 : cfg_file ? cfg_file : "";
  char stem[200];
  snprintf (stem, sizeof stem, "%s", base);
  size_t sl = strlen (stem);
  if (sl > 5 && strcasecmp (stem + sl - 5, ".vmdk") == 0)
    stem[sl -= 5] = '\0';
  if (sl > 7 && stem[sl - 7] == '-' && strspn (stem + sl - 6, "0123456789") == 6)
    stem[sl -= 7] = '\0';
  if (sl == 0 || stem[0] == '.')
    snprintf (stem, sizeof stem, "%s-%s", vm, key);
  for (char *p = stem; *p; p++)
    if (*p == ':' || *p == '/')
      *p = '_';
  const char *ext = raw ? ".raw" : ".vmdk";
  snprintf (out, len, "%s%s", stem, ext);
  for (size_t i = 0; i < n_names; i++)
    if (strcmp (names[i], out) == 0) {
      snprintf (out, len, "%s-%s%s", stem, key, ext);
      for (char *p = out; *p; p++)
        if (*p == ':')
          *p = '_';
      break;
    }
}

/* The configuration's disk with device key, or NULL. */
static const struct vmx_disk *
cfg_disk (const struct vmx_disk *vd, size_t n, const char *key)
{
  for (size_t i = 0; i < n; i++)
    if (strcasecmp (vd[i].device, key) == 0)
      return &vd[i];
  return NULL;
}

/* Is disk i of the point to be restored? */
static bool
selected (const struct engine_restore_opts *o, size_t i)
{
  return !o->one_disk || (size_t) o->disk == i;
}

/* Restore the selected disks into dir and point cfg at them. */
static int
restore_disks_to (struct repo *r, const struct manifest *m, const char *dir,
                  struct vmx_config *cfg, const struct engine_restore_opts *o,
                  struct undo *u, struct vb_error *err)
{
  struct vmx_disk *vd;
  size_t nvd;
  int rc = vmx_disks (cfg, &vd, &nvd, err);
  if (rc < 0)
    return rc;
  char names[MANIFEST_MAX_DISKS][256];
  size_t nn = 0;
  struct engine_restore_opts ro = *o;
  if (!ro.type_set) {
    ro.type = VDISK_TYPE_MONOLITHIC_SPARSE;
    ro.type_set = true;
  }
  for (size_t i = 0; i < m->n_disks && rc == 0; i++) {
    if (!selected (o, i))
      continue;
    const char *key = m->disks[i].key;
    const struct vmx_disk *cd = cfg_disk (vd, nvd, key);
    if (!cd) {
      rc = vb_err (err, EBADMSG, "the saved configuration of point %s has no disk '%s'",
                   m->id, key);
      break;
    }
    disk_file_name (m->source_name, key, cd->file_name, ro.type == VDISK_TYPE_RAW, names,
                    nn, names[nn], sizeof names[nn]);
    char *path = vdisk_path_join (dir, names[nn]);
    if (!path) {
      rc = vb_errno (err, ENOMEM, "restore of point %s", m->id);
      break;
    }
    ro.disk = (int) i;
    if ((rc = engine_restore_disk (r, m, path, &ro, err)) < 0) {
      free (path);
      break;
    }
    undo_add (u, path, true);
    struct vb_error ce = { 0 };
    if (cd->ctk_enabled && ro.type != VDISK_TYPE_RAW && vdisk_ctk_enable (path, &ce) < 0)
      fprintf (stderr, "vmback: note: change tracking not enabled on '%s': %s\n", path,
               ce.msg);
    rc = vmx_disk_set_file_name (cfg, key, names[nn++], err);
  }
  /* devices of the configuration that were not restored: not present */
  for (size_t j = 0; j < nvd && rc == 0; j++) {
    bool done = false;
    for (size_t i = 0; i < m->n_disks; i++)
      done |= selected (o, i) && strcasecmp (m->disks[i].key, vd[j].device) == 0;
    char k[64];
    snprintf (k, sizeof k, "%s.present", vd[j].device);
    if (!done)
      rc = vmx_set (cfg, k, "FALSE", err);
  }
  vmx_disks_free (vd, nvd);
  return rc;
}

/* Write NAME.vmsd (empty) and NAME.vmx into dir. */
static int
write_vm_files (const char *dir, const char *name, const struct vmx_config *cfg,
                struct undo *u, struct vb_error *err)
{
  char *vmsd = NULL, *vmx = NULL;
  if (asprintf (&vmsd, "%s/%s.vmsd", dir, name) < 0 || asprintf (&vmx, "%s/%s.vmx", dir,
                                                                  name) < 0) {
    free (vmsd);
    return vb_errno (err, ENOMEM, "restore to '%s'", dir);
  }
  struct vmsd sd;
  int rc = vmsd_init (&sd);
  if (rc < 0)
    rc = vb_errno (err, -rc, "cannot create '%s'", vmsd);
  else {
    rc = vmsd_save (&sd, vmsd, err);
    vmsd_free (&sd);
  }
  undo_add (u, vmsd, false);
  if (rc == 0 && (rc = vmx_save (cfg, vmx, err)) == 0)
    undo_add (u, vmx, false);
  else
    free (vmx);
  return rc;
}

/* Restore a VM point into a new directory (see engine.h). */
int
engine_restore_vm_to (struct repo *r, const struct manifest *m, const char *dir,
                      const struct engine_restore_opts *o, struct vb_error *err)
{
  int rc = check_vm_point (m, true, err);
  if (rc < 0)
    return rc;
  if (o->one_disk && (o->disk < 0 || (size_t) o->disk >= m->n_disks))
    return vb_err (err, EINVAL, "point %s has no disk %d", m->id, o->disk);
  char *text;
  size_t len;
  if ((rc = engine_load_config (r, m, &text, &len, err)) < 0)
    return rc;
  struct vmx_config *cfg = NULL;
  char cname[300];
  snprintf (cname, sizeof cname, "%s.vmx of point %s", m->source_name, m->id);
  rc = vmx_parse (text, len, cname, &cfg, err);
  free (text);
  if (rc < 0)
    return rc;
  struct undo u = { 0 };
  if ((rc = repo_lock (r, false, "restore", err)) < 0) {    /* once for every disk */
    vmx_free (cfg);
    return rc;
  }
  if ((rc = prepare_dir (dir, &u, err)) == 0
      && (rc = restore_disks_to (r, m, dir, cfg, o, &u, err)) == 0)
    rc = write_vm_files (dir, m->source_name, cfg, &u, err);
  repo_unlock (r);
  undo_run (&u, rc < 0);
  vmx_free (cfg);
  return rc;
}

/* --- in place --------------------------------------------------------------- */

/* State of one in-place restore. */
struct vmr {
  struct repo *r;
  const struct manifest *m;
  const struct engine_restore_opts *o;
  struct vb_connector *c;
  struct engine_vm_inplace_result *res;
  char *old_config;          /* the VM's configuration before, to put back */
  size_t old_len;
  char snap[32];             /* S, "" when none */
};

/* Changed areas of a disk in the VM's current state. */
static int
cur_changed (void *opaque, const char *key, const char *since,
             struct vdisk_extent_list *out, struct vb_error *err)
{
  struct vb_connector *c = opaque;
  return c->ops->changed_areas (c, "", key, since, 0, out, err);
}

/* The VM must be off, and have the selected disks with the point's
 * sizes; a whole-VM restore needs exactly the point's disks. */
static int
check_target (struct vmr *v, const char *source, struct vb_error *err)
{
  enum vb_power_state ps;
  int rc = v->c->ops->power_state (v->c, &ps, err);
  if (rc < 0)
    return rc;
  if (ps != VB_POWER_OFF)
    return vb_err (err, EBUSY, "VM '%s' is %s: power it off before restoring in place",
                   source, ps == VB_POWER_ON ? "powered on" : "suspended");
  struct vb_vm_disk *vd;
  size_t n;
  if ((rc = v->c->ops->list_disks (v->c, &vd, &n, err)) < 0)
    return rc;
  const struct manifest *m = v->m;
  for (size_t i = 0; i < m->n_disks && rc == 0; i++) {
    if (!selected (v->o, i))
      continue;
    size_t j = 0;
    while (j < n && strcasecmp (vd[j].key, m->disks[i].key) != 0)
      j++;
    if (j == n)
      rc = vb_err (err, ENOENT, "VM '%s' has no disk '%s' of point %s: restore the "
                   "VM with --to", source, m->disks[i].key, m->id);
    else if (vd[j].capacity != m->disks[i].size)
      rc = vb_err (err, EINVAL, "disk '%s' of VM '%s' has %llu bytes, the point's has "
                   "%llu: restore the VM with --to", vd[j].key, source,
                   (unsigned long long) vd[j].capacity,
                   (unsigned long long) m->disks[i].size);
  }
  for (size_t j = 0; j < n && rc == 0 && !v->o->one_disk; j++) {
    size_t i = 0;
    while (i < m->n_disks && strcasecmp (vd[j].key, m->disks[i].key) != 0)
      i++;
    if (i == m->n_disks)
      rc = vb_err (err, EINVAL, "VM '%s' has a disk '%s' that point %s lacks: restore "
                   "single disks with --disk, or the VM with --to", source, vd[j].key,
                   m->id);
  }
  vb_vm_disks_free (vd, n);
  return rc;
}

/* Put the point's configuration in place, keeping the old one. */
static int
restore_config (struct vmr *v, struct vb_error *err)
{
  char *text;
  size_t len;
  int rc = v->c->ops->get_config (v->c, &v->old_config, &v->old_len, err);
  if (rc < 0)
    return rc;
  if ((rc = engine_load_config (v->r, v->m, &text, &len, err)) < 0)
    return rc;
  rc = v->c->ops->set_config (v->c, text, len, err);
  free (text);
  if (rc == 0)
    v->res->config_restored = true;
  return rc;
}

/* Take S, tagged as ours. */
static int
take_restore_snapshot (struct vmr *v, struct vb_error *err)
{
  char name[64], when[32];
  time_t t = time (NULL);
  struct tm tm;
  gmtime_r (&t, &tm);
  strftime (when, sizeof when, "%Y%m%dT%H%M%SZ", &tm);
  snprintf (name, sizeof name, ENGINE_SNAP_RESTORE "%s", when);
  struct vb_snapshot s = { 0 };
  int rc = v->c->ops->snapshot_create (v->c, name, "vmback restore in progress",
                                       QUIESCE_OFF, &s, err);
  if (rc == 0)
    snprintf (v->snap, sizeof v->snap, "%s", s.id);
  return rc;
}

/* Write each selected disk's differences into the current top layer. */
static int
restore_disks_in_place (struct vmr *v, struct vb_error *err)
{
  int rc = 0;
  struct engine_restore_opts ro = *v->o;
  for (size_t i = 0; i < v->m->n_disks && rc == 0; i++) {
    if (!selected (v->o, i))
      continue;
    const char *key = v->m->disks[i].key;
    char *path;
    if ((rc = v->c->ops->disk_path (v->c, "", key, &path, err)) < 0)
      break;
    size_t k = v->res->n_disks++;
    snprintf (v->res->keys[k], sizeof v->res->keys[k], "%s", key);
    ro.disk = (int) i;
    rc = engine_restore_in_place_src (v->r, v->m, path, cur_changed, v->c, &ro,
                                      &v->res->disk[k], err);
    free (path);
  }
  return rc;
}

/* Is our snapshot S still in the VM's snapshot list? (true when unsure) */
static bool
snapshot_listed (struct vmr *v)
{
  struct vb_snapshot_info *l;
  size_t n;
  struct vb_error e = { 0 };
  if (v->c->ops->list_snapshots (v->c, &l, &n, &e) < 0)
    return true;
  bool found = false;
  for (size_t i = 0; i < n && !found; i++)
    found = strcmp (l[i].id, v->snap) == 0;
  free (l);
  return found;
}

/* After a failure: discard the partial writes and the new configuration. */
static void
roll_back (struct vmr *v)
{
  struct vb_error e = { 0 };
  if (v->snap[0] && v->c->ops->snapshot_revert (v->c, v->snap, &e) < 0)
    fprintf (stderr, "vmback: cannot revert to the restore snapshot: %s\n", e.msg);
  if (v->snap[0] && v->c->ops->snapshot_delete (v->c, v->snap, &e) < 0)
    fprintf (stderr, "vmback: cannot delete the restore snapshot: %s\n", e.msg);
  v->snap[0] = '\0';
  if (v->res->config_restored
      && v->c->ops->set_config (v->c, v->old_config, v->old_len, &e) < 0)
    fprintf (stderr, "vmback: cannot put the old configuration back: %s\n", e.msg);
}

/* The steps with the VM open (see the file comment). */
static int
run_in_place (struct vmr *v, const char *source, struct vb_error *err)
{
  int rc;
  if ((rc = check_target (v, source, err)) < 0)
    return rc;
  if ((rc = engine_delete_leftovers (v->c, err)) < 0)
    return rc;
  if (!v->o->one_disk && (rc = restore_config (v, err)) < 0)
    return rc;
  if ((rc = take_restore_snapshot (v, err)) == 0
      && (rc = restore_disks_in_place (v, err)) == 0) {
    rc = v->c->ops->snapshot_delete (v->c, v->snap, err);    /* merge into the disks */
    if (rc == 0 || !snapshot_listed (v))
      v->snap[0] = '\0';
    if (rc < 0 && !v->snap[0]) {
      /* S is gone from the snapshot list: its merge is journalled and the
       * next open of the VM finishes it; nothing to roll back */
      vb_err_prefix (err, "the VM's disks hold the point, but merging them failed "
                     "(`vmback vm snapshot consolidate` finishes it)");
      return rc;
    }
  }
  if (rc < 0)
    roll_back (v);
  return rc;
}

/* Restore a VM point into an existing VM (see engine.h). */
int
engine_restore_vm_in_place (struct repo *r, const struct manifest *m, const char *source,
                            const struct engine_restore_opts *o,
                            struct engine_vm_inplace_result *res, struct vb_error *err)
{
  memset (res, 0, sizeof *res);
  int rc = check_vm_point (m, !o->one_disk, err);
  if (rc < 0)
    return rc;
  if (o->one_disk && (o->disk < 0 || (size_t) o->disk >= m->n_disks))
    return vb_err (err, EINVAL, "point %s has no disk %d", m->id, o->disk);
  const struct vb_connector_ops *ops = vb_connector_find (source);
  if (!ops)
    return vb_err (err, EINVAL, "'%s' is not a VM any connector knows", source);
  struct vmr v = { .r = r, .m = m, .o = o, .res = res };
  /* locked once for every disk, before the VM is touched */
  if ((rc = repo_lock (r, false, "restore", err)) < 0)
    return rc;
  if ((rc = ops->open (source, &v.c, err)) == 0) {
    rc = run_in_place (&v, source, err);
    ops->close (v.c);
  }
  repo_unlock (r);
  free (v.old_config);
  return rc;
}
