/* vmback vdisk: whole-file operations (the VixDiskLib analogs): create,
 * clone/convert, grow, shrink, defragment, rename, unlink, child, merge,
 * info, check, and the change tracking entry points.
 *
 * Everything here is written against the core API of vdisk.c and the
 * extent drivers' create/check ops; no format layout is known here. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctk.h"
#include "vdisk-int.h"

#define COPY_BUF (4u << 20)             /* bytes per read in clone/merge */
#define TWOGB_EXTENT_SECTORS 4192256u   /* 2 GiB - 1 MiB, as VMware splits */

/* Descriptor-level facts about a type. */
struct type_info {
  enum vmdk_extent_kind kind;
  bool embedded;          /* the descriptor lives in the single sparse file */
  bool split;             /* twoGbMaxExtent* */
  const char *suffix;     /* extent file suffix: "-flat", "-f%03d", "-s%03d", "-delta" */
};

/* Layout facts of each creatable type. */
static int
type_info (enum vdisk_type t, struct type_info *ti, struct vb_error *err)
{
  memset (ti, 0, sizeof *ti);
  switch (t) {
  case VDISK_TYPE_MONOLITHIC_FLAT: ti->kind = VMDK_EXT_FLAT; ti->suffix = "-flat"; return 0;
  case VDISK_TYPE_VMFS: ti->kind = VMDK_EXT_VMFS; ti->suffix = "-flat"; return 0;
  case VDISK_TYPE_TWOGB_FLAT:
    ti->kind = VMDK_EXT_FLAT; ti->split = true; ti->suffix = "-f%03zu"; return 0;
  case VDISK_TYPE_MONOLITHIC_SPARSE: ti->kind = VMDK_EXT_SPARSE; ti->embedded = true; return 0;
  case VDISK_TYPE_STREAM_OPTIMIZED: ti->kind = VMDK_EXT_SPARSE; ti->embedded = true; return 0;
  case VDISK_TYPE_TWOGB_SPARSE:
    ti->kind = VMDK_EXT_SPARSE; ti->split = true; ti->suffix = "-s%03zu"; return 0;
  case VDISK_TYPE_VMFS_SPARSE: ti->kind = VMDK_EXT_VMFSSPARSE; ti->suffix = "-delta"; return 0;
  case VDISK_TYPE_RAW: return 0;
  default:
    return vb_err (err, ENOTSUP, "cannot create disks of type '%s' (read only format)",
                   vdisk_type_name (t));
  }
}

/* Name of extent i (0-based) for a disk whose descriptor is `stem`.vmdk. */
static char *
extent_name (const char *stem, const struct type_info *ti, size_t i)
{
  char suffix[32], *name;
  snprintf (suffix, sizeof suffix, ti->suffix ? ti->suffix : "", i + 1);
  if (asprintf (&name, "%s%s.vmdk", stem, suffix) < 0)
    return NULL;
  return name;
}

/* Does a file exist? */
static bool
exists (const char *p)
{
  struct stat st;
  return lstat (p, &st) == 0;
}

/* Relative-or-absolute hint from child's directory to parent. */
static char *
parent_hint (const char *child, const char *parent)
{
  char *cd = vdisk_path_dir (child), *pd = vdisk_path_dir (parent);
  char *rc = cd ? realpath (cd, NULL) : NULL, *rp = pd ? realpath (pd, NULL) : NULL;
  char *hint = NULL;
  const char *base = strrchr (parent, '/');
  base = base ? base + 1 : parent;
  if (rc && rp && strcmp (rc, rp) == 0)
    hint = strdup (base);
  else if (rp && asprintf (&hint, "%s/%s", rp, base) < 0)
    hint = NULL;
  free (cd); free (pd); free (rc); free (rp);
  return hint;
}

/* Build the descriptor of a new disk (extents named after path's stem). */
static int
build_desc (const char *path, const struct vdisk_create_opts *o,
            const struct type_info *ti, uint64_t sectors, struct vmdk_desc *d,
            struct vb_error *err)
{
  if (vmdk_desc_init (d, vdisk_type_name (o->type), sectors, o->adapter_type) < 0)
    return vb_errno (err, ENOMEM, "cannot create '%s'", path);
  char *stem = vdisk_path_stem (path);
  size_t n = ti->split ? (size_t) ((sectors + TWOGB_EXTENT_SECTORS - 1) / TWOGB_EXTENT_SECTORS) : 1;
  d->ext = calloc (n, sizeof *d->ext);
  if (!stem || !d->ext) {
    free (stem);
    return vb_errno (err, ENOMEM, "cannot create '%s'", path);
  }
  for (size_t i = 0; i < n; i++) {
    struct vmdk_desc_extent *e = &d->ext[i];
    e->access = VMDK_ACCESS_RW;
    e->kind = ti->kind;
    e->sectors = ti->split && i + 1 < n ? TWOGB_EXTENT_SECTORS
      : sectors - (uint64_t) i * TWOGB_EXTENT_SECTORS;
    if (ti->embedded) {
      const char *base = strrchr (path, '/');
      e->file = strdup (base ? base + 1 : path);
    } else {
      e->file = extent_name (stem, ti, i);
    }
    d->n_ext = i + 1;
    if (!e->file) {
      free (stem);
      return vb_errno (err, ENOMEM, "cannot create '%s'", path);
    }
  }
  free (stem);
  return 0;
}

/* Remove the files a failed create made: the first `created` extents
 * (never a file that was there before). */
static void
undo_create (const char *path, const struct vmdk_desc *d, bool embedded,
             size_t created)
{
  if (embedded) {
    if (created)
      unlink (path);
    return;
  }
  char *dir = vdisk_path_dir (path);
  for (size_t i = 0; dir && i < created && i < d->n_ext; i++) {
    char *p = vdisk_path_join (dir, d->ext[i].file);
    if (p)
      unlink (p);
    free (p);
  }
  free (dir);
}

/* Give a single-file disk built at tmp its name: link (never replacing
 * a file), drop tmp, sync the directory.  On failure nothing is left at
 * path. */
static int
publish_file (const char *tmp, const char *path, struct vb_error *err)
{
  int r = link (tmp, path) < 0 ? -errno : 0;
  if (r == 0 && unlink (tmp) < 0)
    r = -errno;
  if (r == 0)
    r = vio_fsync_dir (path);
  if (r < 0 && r != -EEXIST)
    unlink (path);
  return r < 0 ? vb_errno (err, -r, "cannot create '%s'", path) : 0;
}

/* Create a disk: extent files first, the descriptor last (atomically).  A
 * single-file disk (descriptor embedded) is built under a temporary name
 * and linked into place when complete, so that a process killed while
 * creating it never leaves a partial disk under its name. */
static int
create_disk (const char *path, const struct vdisk_create_opts *o,
             const char *phint, uint32_t parent_cid, struct vb_error *err)
{
  struct type_info ti;
  int r = type_info (o->type, &ti, err);
  if (r < 0)
    return r;
  if (o->size == 0 || o->size > VDISK_MAX_SIZE)
    return vb_err (err, EINVAL, "bad size %llu for '%s' (1 byte to %llu bytes)",
                   (unsigned long long) o->size, path,
                   (unsigned long long) VDISK_MAX_SIZE);
  if (exists (path))
    return vb_err (err, EEXIST, "cannot create '%s': file exists", path);
  uint64_t sectors = (o->size + VDISK_SECTOR - 1) / VDISK_SECTOR;
  struct ext_create c = {
    .grain_sectors = o->grain_sectors ? o->grain_sectors : 128,
    .stream = o->type == VDISK_TYPE_STREAM_OPTIMIZED,
    .compress_level = o->compress_level,
  };
  if (o->type == VDISK_TYPE_VMFS_SPARSE && !o->grain_sectors)
    c.grain_sectors = 1;
  if (o->type == VDISK_TYPE_RAW) {
    c.sectors = sectors;
    return vdisk_flat_ops.create (path, &c, err);
  }
  struct vmdk_desc d;
  if ((r = build_desc (path, o, &ti, sectors, &d, err)) < 0)
    goto out;
  if (phint) {
    d.parent_cid = parent_cid;
    if (vmdk_desc_set_str (&d.parent_hint, phint) < 0) {
      r = vb_errno (err, ENOMEM, "cannot create '%s'", path);
      goto out;
    }
  }
  char *ctkp = NULL;
  if (o->ctk) {
    ctkp = ctk_default_path (path);
    const char *base = ctkp ? strrchr (ctkp, '/') : NULL;
    if (!ctkp || vmdk_desc_set_str (&d.change_track_path, base ? base + 1 : ctkp) < 0) {
      free (ctkp);
      r = vb_errno (err, ENOMEM, "cannot create '%s'", path);
      goto out;
    }
  }
  char *text = vmdk_desc_format (&d);
  char *dir = vdisk_path_dir (path);
  char *tmp = NULL;
  if (!text || !dir) {
    r = vb_errno (err, ENOMEM, "cannot create '%s'", path);
    goto out2;
  }
  if (ti.embedded && asprintf (&tmp, "%s.tmp.%ld", path, (long) getpid ()) < 0) {
    tmp = NULL;
    r = vb_errno (err, ENOMEM, "cannot create '%s'", path);
    goto out2;
  }
  const struct vdisk_extent_ops *ops = vdisk_extent_driver (ti.kind);
  size_t created = 0;
  bool ctk_made = false;
  for (size_t i = 0; i < d.n_ext && r == 0; i++) {
    c.sectors = d.ext[i].sectors;
    c.embedded_desc = ti.embedded ? text : NULL;
    char *p = ti.embedded ? strdup (tmp) : vdisk_path_join (dir, d.ext[i].file);
    if (!p)
      r = vb_errno (err, ENOMEM, "cannot create '%s'", path);
    else if (!ti.embedded && exists (p))
      r = vb_err (err, EEXIST, "cannot create extent '%s': file exists", p);
    else if ((r = ops->create (p, &c, err)) == 0)
      created++;
    free (p);
  }
  if (r == 0 && ctkp && exists (ctkp))
    r = vb_err (err, EEXIST, "cannot create change tracking file '%s': file exists", ctkp);
  else if (r == 0 && ctkp && (r = ctk_create (ctkp, sectors * VDISK_SECTOR, d.cid, err)) == 0)
    ctk_made = true;
  if (r == 0 && !ti.embedded)
    r = vio_write_file_atomic (path, text, strlen (text), err);
  if (r == 0 && ti.embedded)
    r = publish_file (tmp, path, err);
  if (r < 0) {
    undo_create (ti.embedded ? tmp : path, &d, ti.embedded, created);
    if (ctk_made)
      unlink (ctkp);
  }
out2:
  free (tmp);
  free (text);
  free (dir);
  free (ctkp);
out:
  vmdk_desc_free (&d);
  return r;
}

/* Create a new disk (see vdisk.h). */
int
vdisk_create (const char *path, const struct vdisk_create_opts *o,
              struct vb_error *err)
{
  if (o->parent)
    return vdisk_create_child (o->parent, path, o->type, err);
  return create_disk (path, o, NULL, VMDK_CID_NONE, err);
}

/* Create a redo log on parent. */
int
vdisk_create_child (const char *parent, const char *child, enum vdisk_type type,
                    struct vb_error *err)
{
  struct vdisk *p;
  int r = vdisk_open (parent, VDISK_OPEN_RDONLY, &p, err);
  if (r < 0)
    return r;
  struct vdisk_create_opts o = { .size = vdisk_size (p) };
  enum vdisk_type pt = vdisk_get_type (p);
  uint32_t pcid = p->top->has_desc ? p->top->desc.cid : VMDK_CID_NONE;
  const char *adapter = p->top->has_desc ? vmdk_desc_ddb_get (&p->top->desc, "ddb.adapterType") : NULL;
  char *ad = adapter ? strdup (adapter) : NULL;
  vdisk_close (p, NULL);
  o.adapter_type = ad;
  if (type == VDISK_TYPE_RAW)
    type = pt == VDISK_TYPE_VMFS || pt == VDISK_TYPE_VMFS_SPARSE
      ? VDISK_TYPE_VMFS_SPARSE : VDISK_TYPE_MONOLITHIC_SPARSE;
  if (type == VDISK_TYPE_STREAM_OPTIMIZED || type == VDISK_TYPE_MONOLITHIC_FLAT
      || type == VDISK_TYPE_VMFS || type == VDISK_TYPE_TWOGB_FLAT) {
    free (ad);
    return vb_err (err, EINVAL, "a child disk must be a sparse type, not '%s'",
                   vdisk_type_name (type));
  }
  o.type = type;
  char *hint = parent_hint (child, parent);
  if (!hint) {
    free (ad);
    return vb_errno (err, errno ? errno : ENOMEM, "cannot resolve parent '%s'", parent);
  }
  r = create_disk (child, &o, hint, pcid, err);
  free (hint);
  free (ad);
  return r;
}

/* Copy [off, off+len) of src into dst, skipping all-zero grains when the
 * destination has no parent (it reads zeros there already). */
static int
copy_range (struct vdisk *src, struct vdisk *dst, uint8_t *buf, uint64_t off,
            uint64_t len, bool skip_zero, struct vb_error *err)
{
  const uint64_t Z = 65536;
  while (len > 0) {
    size_t n = len < COPY_BUF ? (size_t) len : COPY_BUF;
    int r = vdisk_pread (src, buf, n, off, err);
    if (r < 0)
      return r;
    size_t i = 0;
    while (i < n) {
      size_t k = n - i < Z ? n - i : Z;
      if (skip_zero && vio_is_zero (buf + i, k)) {
        i += k;
        continue;
      }
      size_t j = i + k;   /* extend the run of non-zero blocks */
      while (j < n) {
        size_t m = n - j < Z ? n - j : Z;
        if (skip_zero && vio_is_zero (buf + j, m))
          break;
        j += m;
      }
      if ((r = vdisk_pwrite (dst, buf + i, j - i, off + i, err)) < 0)
        return r;
      i = j;
    }
    off += n;
    len -= n;
  }
  return 0;
}

/* Copy all data of src (flattened chain) into an open dst. */
static int
copy_all (struct vdisk *src, struct vdisk *dst, vdisk_progress_fn progress,
          void *opaque, struct vb_error *err)
{
  uint8_t *buf = malloc (COPY_BUF);
  if (!buf)
    return vb_errno (err, ENOMEM, "cannot copy '%s'", vdisk_path (src));
  uint64_t size = vdisk_size (src), off = 0;
  int r = 0;
  while (off < size && r == 0) {
    uint64_t pnum;
    int s = vdisk_block_status (src, off, size - off, &pnum, err);
    if (s < 0) {
      r = s;
      break;
    }
    if (s == VDISK_STATUS_DATA) {
      for (uint64_t o = off; o < off + pnum && r == 0; o += COPY_BUF) {
        uint64_t n = off + pnum - o < COPY_BUF ? off + pnum - o : COPY_BUF;
        r = copy_range (src, dst, buf, o, n, true, err);
        if (progress)
          progress (opaque, o + n, size);
      }
    }
    off += pnum;
  }
  if (progress && r == 0)
    progress (opaque, size, size);
  free (buf);
  return r;
}

/* Clone with an explicit size (>= source size). */
static int
clone_sized (const char *src, const char *dst, const struct vdisk_create_opts *o,
             uint64_t size, vdisk_progress_fn progress, void *opaque,
             struct vb_error *err)
{
  struct vdisk *s, *d;
  int r = vdisk_open (src, VDISK_OPEN_RDONLY, &s, err);
  if (r < 0)
    return r;
  struct vdisk_create_opts co = *o;
  co.size = size ? size : vdisk_size (s);
  co.parent = NULL;
  if (!co.adapter_type && s->top->has_desc)
    co.adapter_type = vmdk_desc_ddb_get (&s->top->desc, "ddb.adapterType");
  if ((r = create_disk (dst, &co, NULL, VMDK_CID_NONE, err)) < 0)
    goto out;
  if ((r = vdisk_open (dst, VDISK_OPEN_RDWR, &d, err)) < 0)
    goto out_rm;
  r = copy_all (s, d, progress, opaque, err);
  int rc = vdisk_close (d, err);
  if (r == 0)
    r = rc;
out_rm:
  if (r < 0)
    vdisk_unlink (dst, NULL);
out:
  vdisk_close (s, NULL);
  return r;
}

/* Convert any readable disk into a new disk of another (writable) type. */
int
vdisk_clone (const char *src, const char *dst, const struct vdisk_create_opts *o,
             vdisk_progress_fn progress, void *opaque, struct vb_error *err)
{
  return clone_sized (src, dst, o, 0, progress, opaque, err);
}

/* Temporary sibling name for path: dir/.vmback-tmp-PID-stem.vmdk */
static char *
tmp_sibling (const char *path, const char *tag)
{
  char *dir = vdisk_path_dir (path), *stem = vdisk_path_stem (path), *p = NULL;
  if (dir && stem && asprintf (&p, "%s/%s-%s%ld.vmdk", dir, stem, tag, (long) getpid ()) < 0)
    p = NULL;
  free (dir);
  free (stem);
  return p;
}

/* Replace disk `path` by the disk at `tmp`: old -> .old, tmp -> path,
 * then remove .old.  A crash leaves one complete copy under some name. */
static int
swap_in (const char *path, const char *tmp, struct vb_error *err)
{
  char *old = tmp_sibling (path, "old");
  if (!old)
    return vb_errno (err, ENOMEM, "cannot replace '%s'", path);
  int r = vdisk_rename (path, old, err);
  if (r == 0) {
    r = vdisk_rename (tmp, path, err);
    if (r < 0)
      vdisk_rename (old, path, NULL);
    else
      r = vdisk_unlink (old, err);
  }
  free (old);
  return r;
}

/* Give the rewritten disk at path the identity of the old descriptor
 * text: its CID (children keep matching their parentCID), ddb keys
 * (uuid, adapter, hardware version, ...; geometry stays the new one),
 * unknown header keys and encoding. */
static int
restore_identity (const char *path, const char *old_text, struct vb_error *err)
{
  struct vmdk_desc old;
  int r = vmdk_desc_parse (old_text, strlen (old_text), path, &old, err);
  if (r < 0)
    return r;
  struct vdisk_layer *w;
  if ((r = vdisk_layer_open (path, true, &w, err)) < 0) {
    vmdk_desc_free (&old);
    return r;
  }
  w->desc.cid = old.cid;
  for (size_t i = 0; i < old.n_ddb && r == 0; i++)
    if (strncmp (old.ddb[i].key, "ddb.geometry.", 13) != 0)
      r = vmdk_desc_ddb_set (&w->desc, old.ddb[i].key, old.ddb[i].value);
  if (r == 0 && old.n_other) {
    struct vmdk_kv *t = w->desc.other;
    size_t n = w->desc.n_other;
    w->desc.other = old.other;
    w->desc.n_other = old.n_other;
    old.other = t;
    old.n_other = n;
  }
  if (r == 0 && old.encoding)
    r = vmdk_desc_set_str (&w->desc.encoding, old.encoding);
  if (r < 0)
    r = vb_errno (err, ENOMEM, "cannot rewrite '%s'", path);
  else
    r = vdisk_layer_write_desc (w, err);
  vdisk_layer_close (w, r ? NULL : err);
  vmdk_desc_free (&old);
  return r;
}

/* Rewrite a base disk through clone-and-swap (same type and grain, maybe
 * bigger); the descriptor keeps its CID and ddb (restore_identity). */
static int
rewrite_disk (const char *path, uint64_t new_size, struct vb_error *err)
{
  struct vdisk *d;
  int r = vdisk_open (path, VDISK_OPEN_RDONLY | VDISK_OPEN_NOPARENT, &d, err);
  if (r < 0)
    return r;
  struct vdisk_create_opts o = { .type = vdisk_get_type (d) };
  bool child = d->top->has_desc && d->top->desc.parent_hint;
  bool ctk = d->top->has_desc && d->top->desc.change_track_path;
  if (d->top->ext[0].grain)
    o.grain_sectors = d->top->ext[0].grain / VDISK_SECTOR;
  char *old_text = d->top->has_desc ? vmdk_desc_format (&d->top->desc) : NULL;
  bool oom = d->top->has_desc && !old_text;
  vdisk_close (d, NULL);
  if (child || oom) {
    free (old_text);
    return child ? vb_err (err, ENOTSUP, "'%s' is a child disk; merge it first", path)
      : vb_errno (err, ENOMEM, "cannot rewrite '%s'", path);
  }
  if (ctk)
    vdisk_ctk_disable (path, NULL);    /* rewritten disk: tracking restarts */
  char *tmp = tmp_sibling (path, "new");
  if (!tmp)
    r = vb_errno (err, ENOMEM, "cannot rewrite '%s'", path);
  else
    r = clone_sized (path, tmp, &o, new_size, NULL, NULL, err);
  if (r == 0)
    r = swap_in (path, tmp, err);
  if (r == 0 && old_text)
    r = restore_identity (path, old_text, err);
  if (ctk) {                           /* also after a failure: keep tracking on */
    int rc = vdisk_ctk_enable (path, r ? NULL : err);
    if (r == 0)
      r = rc;
  }
  free (tmp);
  free (old_text);
  return r;
}

/* Grow the virtual size. */
int
vdisk_grow (const char *path, uint64_t new_size, struct vb_error *err)
{
  struct vdisk *d;
  int r = vdisk_open (path, VDISK_OPEN_RDWR | VDISK_OPEN_NOPARENT, &d, err);
  if (r < 0)
    return r;
  struct vdisk_layer *l = d->top;
  new_size = (new_size + VDISK_SECTOR - 1) / VDISK_SECTOR * VDISK_SECTOR;
  if (new_size > VDISK_MAX_SIZE || new_size < l->size) {
    r = vb_err (err, EINVAL, "cannot grow '%s' from %llu to %llu bytes%s", path,
                (unsigned long long) l->size, (unsigned long long) new_size,
                new_size < l->size ? " (shrinking the virtual size is not supported)" : "");
    vdisk_close (d, NULL);
    return r;
  }
  if (new_size == l->size)
    return vdisk_close (d, err);
  struct vdisk_extent *last = &l->ext[l->n_ext - 1];
  bool simple = last->ops->resize && (l->type == VDISK_TYPE_RAW
                                      || l->type == VDISK_TYPE_MONOLITHIC_FLAT
                                      || l->type == VDISK_TYPE_VMFS);
  if (!simple) {
    vdisk_close (d, NULL);
    return rewrite_disk (path, new_size, err);
  }
  r = last->ops->resize (last, last->length + (new_size - l->size), err);
  if (r == 0 && l->has_desc) {
    l->desc.ext[l->n_ext - 1].sectors = last->length / VDISK_SECTOR;
    l->cid_updated = true;      /* keep the CID: tracking notices the size */
    r = vdisk_layer_write_desc (l, err);
  }
  int rc = vdisk_close (d, err);
  return r ? r : rc;
}

/* Compact a sparse disk by rewriting it (zero grains dropped). */
int
vdisk_shrink (const char *path, struct vb_error *err)
{
  struct vdisk *d;
  int r = vdisk_open (path, VDISK_OPEN_RDONLY | VDISK_OPEN_NOPARENT, &d, err);
  if (r < 0)
    return r;
  enum vdisk_type t = vdisk_get_type (d);
  vdisk_close (d, NULL);
  if (t != VDISK_TYPE_MONOLITHIC_SPARSE && t != VDISK_TYPE_TWOGB_SPARSE
      && t != VDISK_TYPE_STREAM_OPTIMIZED)
    return 0;            /* flat and raw files: nothing to drop */
  return rewrite_disk (path, 0, err);
}

/* Defragment: same rewrite, grains come out in virtual order. */
int
vdisk_defragment (const char *path, struct vb_error *err)
{
  return vdisk_shrink (path, err);
}

/* Collect the files of a disk's top layer: descriptor, extents, ctk. */
static int
layer_files (const char *path, char ***out, size_t *n, struct vb_error *err)
{
  struct vdisk_layer *l;
  int r = vdisk_layer_open (path, false, &l, err);
  if (r < 0)
    return r;
  char **v = calloc (l->n_ext + 3, sizeof *v);
  size_t k = 0;
  if (!v) {
    vdisk_layer_close (l, NULL);
    return vb_errno (err, ENOMEM, "cannot list files of '%s'", path);
  }
  for (size_t i = 0; i < l->n_ext; i++)
    if (l->ext[i].ops->kind != VMDK_EXT_ZERO && strcmp (l->ext[i].path, path) != 0)
      v[k++] = strdup (l->ext[i].path);
  if (l->has_desc && l->desc.change_track_path)
    v[k++] = vdisk_path_join (l->dir, l->desc.change_track_path);
  v[k++] = strdup (path);
  vdisk_layer_close (l, NULL);
  *out = v;
  *n = k;
  return 0;
}

/* Remove all files of a disk's top layer. */
int
vdisk_unlink (const char *path, struct vb_error *err)
{
  char **v = NULL;
  size_t n = 0;
  int r = layer_files (path, &v, &n, err);
  if (r < 0)
    return r;
  for (size_t i = 0; i < n; i++) {
    if (v[i] && unlink (v[i]) < 0 && errno != ENOENT && r == 0)
      r = vb_errno (err, errno, "cannot remove '%s'", v[i]);
    free (v[i]);
  }
  free (v);
  return r;
}

/* New name for a file that belonged to disk old_stem, now new_stem. */
static char *
renamed (const char *name, const char *old_stem, const char *new_stem)
{
  size_t n = strlen (old_stem);
  char *out;
  if (strncmp (name, old_stem, n) == 0) {
    if (asprintf (&out, "%s%s", new_stem, name + n) < 0)
      return NULL;
    return out;
  }
  return strdup (name);
}

/* Rename every file of a disk and rewrite the descriptor's references. */
int
vdisk_rename (const char *from, const char *to, struct vb_error *err)
{
  if (exists (to))
    return vb_err (err, EEXIST, "cannot rename '%s' to '%s': target exists", from, to);
  struct vdisk_layer *l;
  int r = vdisk_layer_open (from, false, &l, err);
  if (r < 0)
    return r;
  if (!l->has_desc) {
    vdisk_layer_close (l, NULL);
    if (rename (from, to) < 0)
      return vb_errno (err, errno, "cannot rename '%s' to '%s'", from, to);
    return 0;
  }
  char *os = vdisk_path_stem (from), *ns = vdisk_path_stem (to);
  char *todir = vdisk_path_dir (to);
  if (!os || !ns || !todir) {
    r = vb_errno (err, ENOMEM, "cannot rename '%s'", from);
    goto out;
  }
  /* extents and tracker first; the new descriptor is written last */
  for (size_t i = 0; i < l->desc.n_ext && r == 0; i++) {
    struct vmdk_desc_extent *e = &l->desc.ext[i];
    if (!e->file || l->embedded_desc)
      continue;
    char *nn = renamed (e->file, os, ns);
    char *src = vdisk_path_join (l->dir, e->file), *dst = nn ? vdisk_path_join (todir, nn) : NULL;
    if (!dst)
      r = vb_errno (err, ENOMEM, "cannot rename '%s'", from);
    else if (exists (dst))
      r = vb_err (err, EEXIST, "cannot rename extent to '%s': target exists", dst);
    else if (rename (src, dst) < 0)
      r = vb_errno (err, errno, "cannot rename '%s' to '%s'", src, dst);
    else {
      free (e->file);
      e->file = nn;
      nn = NULL;
    }
    free (nn); free (src); free (dst);
  }
  if (r == 0 && l->desc.change_track_path) {
    char *nn = renamed (l->desc.change_track_path, os, ns);
    char *src = vdisk_path_join (l->dir, l->desc.change_track_path);
    char *dst = nn ? vdisk_path_join (todir, nn) : NULL;
    if (dst && rename (src, dst) == 0) {
      free (l->desc.change_track_path);
      l->desc.change_track_path = nn;
      nn = NULL;
    }
    free (nn); free (src); free (dst);
  }
  if (r == 0 && l->desc.parent_hint && l->desc.parent_hint[0] != '/') {
    /* a relative parent hint is relative to the descriptor's directory:
     * recompute it from the new place */
    char *pp = vdisk_path_join (l->dir, l->desc.parent_hint);
    char *nh = pp ? parent_hint (to, pp) : NULL;   /* NULL: keep the old one */
    if (!pp || (nh && vmdk_desc_set_str (&l->desc.parent_hint, nh) < 0))
      r = vb_errno (err, ENOMEM, "cannot rename '%s'", from);
    free (pp);
    free (nh);
  }
  if (r == 0 && l->embedded_desc) {
    const char *base = strrchr (to, '/');
    vmdk_desc_set_str (&l->desc.ext[0].file, base ? base + 1 : to);
    /* rewrite the embedded descriptor through a writable handle, with our
     * descriptor (w re-read the old text; ours has the renamed
     * changeTrackPath and the new parent hint) */
    struct vdisk_layer *w;
    r = vdisk_layer_open (from, true, &w, err);
    if (r == 0) {
      vmdk_desc_free (&w->desc);
      w->desc = l->desc;
      memset (&l->desc, 0, sizeof l->desc);
      r = vdisk_layer_write_desc (w, err);
      vdisk_layer_close (w, r ? NULL : err);
    }
    if (r == 0 && rename (from, to) < 0)
      r = vb_errno (err, errno, "cannot rename '%s' to '%s'", from, to);
  } else if (r == 0) {
    free (l->path);
    l->path = strdup (to);
    r = l->path ? vdisk_layer_write_desc (l, err) : -ENOMEM;
    if (r == 0 && unlink (from) < 0)
      r = vb_errno (err, errno, "cannot remove old descriptor '%s'", from);
  }
out:
  free (os); free (ns); free (todir);
  vdisk_layer_close (l, NULL);
  return r;
}

/* Status of [off, off+len) in the layers from top down to (not
 * including) stop: that of the newest layer holding it (EXT_UNALLOC when
 * none does), *pnum the length over which the answer holds. */
static int
layers_status (struct vdisk_layer *top, struct vdisk_layer *stop, uint64_t off,
               uint64_t len, uint64_t *pnum, struct vb_error *err)
{
  for (struct vdisk_layer *l = top; l && l != stop; l = l->parent) {
    int s = vdisk_layer_status (l, off, len, pnum, err);
    if (s != EXT_UNALLOC)
      return s;
    len = *pnum;            /* unallocated here: ask the next layer about this run */
  }
  *pnum = len;
  return EXT_UNALLOC;
}

/* Copy into dst what the layers of src above stop hold: data as data,
 * zeroed grains as zeros.  Reads go through src's chain, so the newest
 * layer wins. */
static int
merge_layers (struct vdisk *src, struct vdisk_layer *stop, struct vdisk *dst,
              vdisk_progress_fn progress, void *opaque, struct vb_error *err)
{
  uint64_t size = vdisk_size (src), off = 0;
  if (vdisk_size (dst) < size)
    return vb_err (err, ENOTSUP, "'%s' is larger than '%s'; grow the parent first",
                   vdisk_path (src), vdisk_path (dst));
  uint8_t *buf = malloc (COPY_BUF);
  if (!buf)
    return vb_errno (err, ENOMEM, "cannot merge '%s'", vdisk_path (src));
  int r = 0;
  while (off < size && r == 0) {
    uint64_t pnum;
    int s = layers_status (src->top, stop, off, size - off, &pnum, err);
    if (s < 0) {
      r = s;
      break;
    }
    if (s == EXT_ZERO)
      r = vdisk_zero (dst, pnum, off, err);
    else if (s == EXT_DATA)
      r = copy_range (src, dst, buf, off, pnum, false, err);
    off += pnum;
    if (progress && s != EXT_UNALLOC)
      progress (opaque, off, size);
  }
  free (buf);
  if (r == 0)
    r = vdisk_flush (dst, err);
  return r;
}

/* Merge the child's own data into its parent, then remove the child. */
int
vdisk_merge (const char *child, struct vb_error *err)
{
  struct vdisk *c, *p = NULL;
  int r = vdisk_open (child, VDISK_OPEN_RDONLY, &c, err);
  if (r < 0)
    return r;
  if (!c->top->parent) {
    vdisk_close (c, NULL);
    return vb_err (err, EINVAL, "'%s' has no parent to merge into", child);
  }
  r = vdisk_open (c->top->parent->path, VDISK_OPEN_RDWR, &p, err);
  if (r == 0)
    r = merge_layers (c, c->top->parent, p, NULL, NULL, err);
  if (p) {
    int rc = vdisk_close (p, r < 0 ? NULL : err);
    if (r == 0)
      r = rc;
  }
  vdisk_close (c, NULL);
  if (r == 0)
    r = vdisk_unlink (child, err);
  return r;
}

/* The layer of d's chain (below the top) whose file is base, or NULL. */
static struct vdisk_layer *
find_layer (struct vdisk *d, const char *base)
{
  char *want = realpath (base, NULL);
  struct vdisk_layer *found = NULL;
  for (struct vdisk_layer *l = want ? d->top->parent : NULL; l && !found; l = l->parent) {
    char *have = realpath (l->path, NULL);
    if (have && strcmp (have, want) == 0)
      found = l;
    free (have);
  }
  free (want);
  return found;
}

/* Merge every layer above base in top's chain into base (see vdisk.h). */
int
vdisk_merge_into (const char *top, const char *base, vdisk_progress_fn progress,
                  void *opaque, struct vb_error *err)
{
  struct vdisk *t, *b = NULL;
  int r = vdisk_open (top, VDISK_OPEN_RDONLY, &t, err);
  if (r < 0)
    return r;
  struct vdisk_layer *stop = find_layer (t, base);
  if (!stop)
    r = vb_err (err, EINVAL, "'%s' is not below '%s' in its chain", base, top);
  if (r == 0)
    r = vdisk_open (base, VDISK_OPEN_RDWR | VDISK_OPEN_KEEPCID, &b, err);
  if (r == 0)
    r = merge_layers (t, stop, b, progress, opaque, err);
  if (b) {
    int rc = vdisk_close (b, r < 0 ? NULL : err);
    if (r == 0)
      r = rc;
  }
  vdisk_close (t, NULL);
  return r;
}

/* Re-point a child at another parent (see vdisk.h). */
int
vdisk_set_parent (const char *child, const char *parent, struct vb_error *err)
{
  struct vdisk_layer *c = NULL, *p = NULL;
  int r = vdisk_layer_open (parent, false, &p, err);
  if (r == 0)
    r = vdisk_layer_open (child, true, &c, err);
  if (r == 0 && !c->has_desc)
    r = vb_err (err, EINVAL, "'%s' has no descriptor to name a parent in", child);
  char *hint = r == 0 ? parent_hint (child, parent) : NULL;
  if (r == 0 && !hint)
    r = vb_errno (err, errno ? errno : ENOMEM, "cannot resolve parent '%s'", parent);
  if (r == 0 && vmdk_desc_set_str (&c->desc.parent_hint, hint) < 0)
    r = vb_errno (err, ENOMEM, "cannot re-point '%s'", child);
  if (r == 0) {
    c->desc.parent_cid = p->has_desc ? p->desc.cid : VMDK_CID_NONE;
    r = vdisk_layer_write_desc (c, err);
  }
  free (hint);
  vdisk_layer_close (c, NULL);
  vdisk_layer_close (p, NULL);
  return r;
}
