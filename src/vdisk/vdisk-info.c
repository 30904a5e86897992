/* vmback vdisk: info, check and the change tracking entry points. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctk.h"
#include "vdisk-int.h"

/* Bytes a file takes on the host (allocated blocks). */
static uint64_t
file_bytes (const char *p)
{
  struct stat st;
  return stat (p, &st) == 0 ? (uint64_t) st.st_blocks * 512 : 0;
}

/* Path of a layer's tracker file, or NULL when tracking is off. */
static char *
layer_ctk_path (const struct vdisk_layer *l)
{
  if (!l->has_desc || !l->desc.change_track_path)
    return NULL;
  return vdisk_path_join (l->dir, l->desc.change_track_path);
}

/* Open the tracker of a layer read-only (NULL *out when tracking is off). */
static int
layer_ctk_open_ro (const struct vdisk_layer *l, struct ctk **out,
                   struct vb_error *err)
{
  *out = NULL;
  char *p = layer_ctk_path (l);
  if (!p)
    return 0;
  int r = ctk_open (p, l->size, l->desc.cid, false, out, err);
  free (p);
  return r;
}

/* Fill the CTK part of an info struct. */
static void
info_ctk (const struct vdisk_layer *l, struct vdisk_info *info)
{
  char *p = layer_ctk_path (l);
  if (!p)
    return;
  snprintf (info->ctk_path, sizeof info->ctk_path, "%s", p);
  free (p);
  struct ctk *c;
  struct vb_error e = { 0 };
  if (layer_ctk_open_ro (l, &c, &e) < 0) {
    info->ctk_state = -1;
    snprintf (info->ctk_reason, sizeof info->ctk_reason, "%s", e.msg);
    return;
  }
  const char *why;
  if (ctk_valid (c, &why)) {
    info->ctk_state = 1;
    ctk_change_id (c, info->change_id, sizeof info->change_id);
  } else {
    info->ctk_state = -1;
    snprintf (info->ctk_reason, sizeof info->ctk_reason, "%s", why ? why : "invalid");
  }
  ctk_close (c, l->desc.cid, NULL);
}

/* Everything `vmback disk info` shows. */
int
vdisk_get_info (const char *path, struct vdisk_info *info, struct vb_error *err)
{
  memset (info, 0, sizeof *info);
  struct vdisk *d;
  int r = vdisk_open (path, VDISK_OPEN_RDONLY, &d, err);
  if (r < 0)
    return r;
  struct vdisk_layer *l = d->top;
  info->type = l->type;
  info->size = l->size;
  info->cid = l->has_desc ? l->desc.cid : 0xffffffffu;
  info->parent_cid = l->has_desc ? l->desc.parent_cid : 0xffffffffu;
  const char *u = l->has_desc ? vmdk_desc_ddb_get (&l->desc, "ddb.uuid") : NULL;
  const char *a = l->has_desc ? vmdk_desc_ddb_get (&l->desc, "ddb.adapterType") : NULL;
  snprintf (info->uuid, sizeof info->uuid, "%s", u ? u : "");
  snprintf (info->adapter, sizeof info->adapter, "%s", a ? a : "");
  for (struct vdisk_layer *x = l; x && info->chain_len < VDISK_MAX_CHAIN; x = x->parent)
    info->chain[info->chain_len++] = strdup (x->path);
  bool self = false;
  for (size_t i = 0; i < l->n_ext; i++) {
    struct vdisk_extent *e = &l->ext[i];
    info->allocated += e->ops->allocated ? e->ops->allocated (e) : e->length;
    if (e->ops->kind == VMDK_EXT_ZERO)
      continue;
    if (strcmp (e->path, l->path) == 0)
      self = true;
    info->file_bytes += file_bytes (e->path);
    if (info->n_extents < (int) (sizeof info->extents / sizeof *info->extents))
      info->extents[info->n_extents++] = strdup (e->path);
  }
  if (!self)
    info->file_bytes += file_bytes (l->path);
  info_ctk (l, info);
  vdisk_close (d, NULL);
  return 0;
}

/* Free the strings of an info struct. */
void
vdisk_info_free (struct vdisk_info *info)
{
  for (int i = 0; i < info->chain_len; i++)
    free (info->chain[i]);
  for (int i = 0; i < info->n_extents; i++)
    free (info->extents[i]);
  info->chain_len = info->n_extents = 0;
}

/* Report helper with printf formatting. */
static void __attribute__ ((format (printf, 3, 4)))
reportf (vdisk_report_fn report, void *opaque, const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  if (report)
    report (opaque, buf);
}

/* Structural check of a disk: opening validates headers, chain and CIDs;
 * then each extent driver checks its metadata. */
int
vdisk_check (const char *path, bool repair, vdisk_report_fn report,
             void *opaque, struct vb_error *err)
{
  struct vdisk *d;
  int r = vdisk_open (path, repair ? VDISK_OPEN_RDWR | VDISK_OPEN_NOPARENT
                      : VDISK_OPEN_RDONLY, &d, err);
  if (r < 0)
    return r;
  int problems = 0;
  for (struct vdisk_layer *l = d->top; l; l = l->parent) {
    for (size_t i = 0; i < l->n_ext; i++) {
      struct vdisk_extent *e = &l->ext[i];
      if (!e->ops->check)
        continue;
      int n = e->ops->check (e, repair && l == d->top, report, opaque, err);
      if (n < 0) {
        vdisk_close (d, NULL);
        return n;
      }
      problems += n;
    }
    if (l->has_desc && l->desc.change_track_path && l == d->top) {
      struct ctk *c;
      struct vb_error e = { 0 };
      const char *why = NULL;
      if (layer_ctk_open_ro (l, &c, &e) < 0)
        reportf (report, opaque, "change tracking of '%s' unusable: %s", l->path, e.msg);
      else {
        if (!ctk_valid (c, &why))
          reportf (report, opaque, "note: change tracking of '%s' is invalid (%s); the next backup will be full",
                   l->path, why ? why : "?");
        ctk_close (c, l->desc.cid, NULL);
      }
    }
  }
  vdisk_close (d, NULL);
  return problems;
}

/* Point layer l at a tracker file (NAME-ctk.vmdk) when it has none;
 * *out gets the tracker's path (malloc'd). */
static int
layer_ensure_ctk_path (struct vdisk_layer *l, char **out, struct vb_error *err)
{
  if ((*out = layer_ctk_path (l)))
    return 0;
  char *p = ctk_default_path (l->path);
  const char *base = p ? strrchr (p, '/') : NULL;
  if (!p || vmdk_desc_set_str (&l->desc.change_track_path, base ? base + 1 : p) < 0) {
    free (p);
    return vb_errno (err, ENOMEM, "cannot track changes of '%s'", l->path);
  }
  int r = vdisk_layer_write_desc (l, err);
  if (r < 0) {
    free (p);
    return r;
  }
  *out = p;
  return 0;
}

/* Close a layer we wrote to; a failure to flush it on close (write or
 * fsync of its extents or tracker) becomes the result when r was fine. */
static int
close_written (struct vdisk_layer *l, int r, struct vb_error *err)
{
  struct vb_error ce = { 0 };
  vdisk_layer_close (l, &ce);
  if (r >= 0 && ce.code)
    return vb_err (err, ce.code, "%s", ce.msg);
  return r;
}

/* Turn change tracking on: a fresh tracker, then changeTrackPath=. */
int
vdisk_ctk_enable (const char *path, struct vb_error *err)
{
  struct vdisk_layer *l;
  int r = vdisk_layer_open (path, true, &l, err);
  if (r < 0)
    return r;
  if (!l->has_desc) {
    vdisk_layer_close (l, NULL);
    return vb_err (err, ENOTSUP,
                   "cannot track changes of '%s': change tracking needs a VMDK descriptor "
                   "(convert the disk to a .vmdk first)", path);
  }
  char *ctkp = NULL;
  r = layer_ensure_ctk_path (l, &ctkp, err);
  if (r == 0)
    r = ctk_create (ctkp, l->size, l->desc.cid, err);
  free (ctkp);
  return close_written (l, r, err);
}

/* Turn change tracking off: drop changeTrackPath=, remove the tracker. */
int
vdisk_ctk_disable (const char *path, struct vb_error *err)
{
  struct vdisk_layer *l;
  int r = vdisk_layer_open (path, true, &l, err);
  if (r < 0)
    return r;
  char *ctkp = layer_ctk_path (l);
  if (ctkp) {
    vmdk_desc_set_str (&l->desc.change_track_path, NULL);
    r = vdisk_layer_write_desc (l, err);
    if (r == 0 && unlink (ctkp) < 0 && errno != ENOENT)
      r = vb_errno (err, errno, "cannot remove '%s'", ctkp);
    free (ctkp);
  }
  return close_written (l, r, err);
}

/* Hand the tracking history of one layer to another (see vdisk.h). */
int
vdisk_ctk_copy (const char *from, const char *to, struct vb_error *err)
{
  struct vdisk_layer *f = NULL, *t = NULL;
  struct ctk *c = NULL;
  char *tp = NULL;
  int r = vdisk_layer_open (from, false, &f, err);
  if (r == 0)
    r = vdisk_layer_open (to, true, &t, err);
  if (r == 0 && !t->has_desc)
    r = vb_err (err, ENOTSUP, "cannot track changes of '%s': it has no descriptor", to);
  if (r == 0 && f->size != t->size)
    r = vb_err (err, EINVAL, "cannot copy change tracking from '%s' to '%s': "
                "the sizes differ", from, to);
  if (r == 0)
    r = layer_ctk_open_ro (f, &c, err);
  if (r < 0)
    goto out;
  if (!c) {                  /* nothing to hand over: tracking stays as it is */
    tp = layer_ctk_path (t);
    if (tp && unlink (tp) < 0 && errno != ENOENT)
      r = vb_errno (err, errno, "cannot remove '%s'", tp);
    goto out;
  }
  if ((r = layer_ensure_ctk_path (t, &tp, err)) < 0)
    goto out;
  if (ctk_valid (c, NULL)) {
    r = ctk_save_as (c, tp, t->desc.cid, err);
    if (r == 0)
      r = 1;
  } else if (unlink (tp) < 0 && errno != ENOENT) {
    r = vb_errno (err, errno, "cannot remove '%s'", tp);
  }
out:
  if (c)
    ctk_close (c, f->desc.cid, NULL);
  free (tp);
  vdisk_layer_close (f, NULL);
  return close_written (t, r, err);
}

/* Current changeId of a disk, or -ESTALE with the reason. */
int
vdisk_ctk_change_id (const char *path, char *buf, size_t len,
                     struct vb_error *err)
{
  struct vdisk_layer *l;
  int r = vdisk_layer_open (path, false, &l, err);
  if (r < 0)
    return r;
  struct ctk *c;
  r = layer_ctk_open_ro (l, &c, err);
  if (r == 0 && !c)
    r = vb_err (err, ENOENT, "change tracking is not enabled on '%s'", path);
  const char *why;
  if (r == 0 && !ctk_valid (c, &why))
    r = vb_err (err, ESTALE, "change tracking of '%s' is invalid: %s", path, why);
  if (r == 0)
    ctk_change_id (c, buf, len);
  if (c)
    ctk_close (c, l->desc.cid, NULL);
  vdisk_layer_close (l, NULL);
  return r;
}

/* QueryChangedDiskAreas. */
int
vdisk_query_changed (const char *path, const char *change_id, uint64_t start,
                     struct vdisk_extent_list *out, struct vb_error *err)
{
  if (strcmp (change_id, "*") == 0) {
    struct vdisk *d;
    int r = vdisk_open (path, VDISK_OPEN_RDONLY, &d, err);
    if (r < 0)
      return r;
    r = start > vdisk_size (d)
      ? vb_err (err, EINVAL, "start offset %llu is past the end of '%s'",
                (unsigned long long) start, path)
      : vdisk_map (d, start, out, err);
    vdisk_close (d, NULL);
    return r;
  }
  struct vdisk_layer *l;
  int r = vdisk_layer_open (path, false, &l, err);
  if (r < 0)
    return r;
  struct ctk *c;
  r = layer_ctk_open_ro (l, &c, err);
  if (r == 0 && !c)
    r = vb_err (err, ENOENT, "change tracking is not enabled on '%s'", path);
  if (r == 0 && start > l->size)
    r = vb_err (err, EINVAL, "start offset %llu is past the end of '%s'",
                (unsigned long long) start, path);
  if (r == 0) {
    r = ctk_query (c, change_id, start, out, err);
    if (r < 0)
      vb_err_prefix (err, "'%s'", path);
  }
  if (c)
    ctk_close (c, l->desc.cid, NULL);
  vdisk_layer_close (l, NULL);
  return r;
}
