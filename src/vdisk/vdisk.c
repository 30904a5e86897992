/* vmback vdisk core: open layers and chains, route I/O to extent drivers.
 *
 * The core owns everything that is not one extent's layout: bounds,
 * finding the extent of an offset, reading through parents, completing
 * partial grains from the chain before a driver sees them (copy on write),
 * bumping the CID on the first write of a session and feeding the change
 * tracker.  Drivers trust what the core hands them. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ctk.h"
#include "vdisk-int.h"

static const char *const type_names[VDISK_TYPE__COUNT] = {
  [VDISK_TYPE_RAW] = "raw",
  [VDISK_TYPE_MONOLITHIC_FLAT] = "monolithicFlat",
  [VDISK_TYPE_VMFS] = "vmfs",
  [VDISK_TYPE_TWOGB_FLAT] = "twoGbMaxExtentFlat",
  [VDISK_TYPE_MONOLITHIC_SPARSE] = "monolithicSparse",
  [VDISK_TYPE_TWOGB_SPARSE] = "twoGbMaxExtentSparse",
  [VDISK_TYPE_STREAM_OPTIMIZED] = "streamOptimized",
  [VDISK_TYPE_VMFS_SPARSE] = "vmfsSparse",
  [VDISK_TYPE_SE_SPARSE] = "seSparse",
};

/* createType string of a type. */
const char *
vdisk_type_name (enum vdisk_type t)
{
  return (unsigned) t < VDISK_TYPE__COUNT ? type_names[t] : "unknown";
}

/* Parse a createType (also ESXi's vmfs variants, which are flat). */
int
vdisk_type_from_name (const char *name)
{
  for (int i = 0; i < VDISK_TYPE__COUNT; i++)
    if (strcasecmp (name, type_names[i]) == 0)
      return i;
  if (strcasecmp (name, "vmfsThin") == 0 || strcasecmp (name, "vmfsPreallocated") == 0
      || strcasecmp (name, "vmfsEagerZeroedThick") == 0
      || strcasecmp (name, "vmfsRaw") == 0 || strcasecmp (name, "vmfsRDM") == 0
      || strcasecmp (name, "vmfsPassthroughRawDeviceMap") == 0)
    return VDISK_TYPE_VMFS;
  return -1;
}

/* Driver for an extent kind. */
const struct vdisk_extent_ops *
vdisk_extent_driver (enum vmdk_extent_kind k)
{
  switch (k) {
  case VMDK_EXT_FLAT: case VMDK_EXT_VMFS: case VMDK_EXT_VMFSRAW:
    return &vdisk_flat_ops;
  case VMDK_EXT_ZERO: return &vdisk_zero_ops;
  case VMDK_EXT_SPARSE: return &vdisk_sparse_ops;
  case VMDK_EXT_VMFSSPARSE: return &vdisk_cowd_ops;
  case VMDK_EXT_SESPARSE: return &vdisk_sesparse_ops;
  }
  return NULL;
}

uint64_t vdisk_size (const struct vdisk *d) { return d->top->size; }
enum vdisk_type vdisk_get_type (const struct vdisk *d) { return d->top->type; }
const char *vdisk_path (const struct vdisk *d) { return d->top->path; }

/* One flat extent, no parent (see vdisk.h). */
bool
vdisk_flat_extent (const struct vdisk *d, const char **file, uint64_t *offset)
{
  const struct vdisk_layer *l = d->top;
  if (l->parent || l->n_ext != 1 || l->ext[0].ops != &vdisk_flat_ops
      || l->ext[0].start != 0 || l->ext[0].length != l->size)
    return false;
  *file = l->ext[0].path;
  *offset = l->ext[0].file_offset;
  return true;
}

/* Open the file of an extent and let its driver parse it. */
static int
extent_open (struct vdisk_layer *l, struct vdisk_extent *e,
             struct vb_error *err)
{
  e->fd = -1;
  if (e->ops->kind != VMDK_EXT_ZERO) {
    e->fd = open (e->path, (e->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (e->fd < 0)
      return vb_errno (err, errno, "cannot open extent '%s' of '%s'",
                       e->name, l->path);
  }
  int r = e->ops->open (e, err);
  if (r < 0) {
    if (e->fd >= 0)
      close (e->fd);
    e->fd = -1;
    e->ops = NULL;
  }
  return r;
}

/* Close one extent: driver first, then the file. */
static void
extent_close (struct vdisk_extent *e, struct vb_error *err)
{
  if (e->ops) {
    if (e->writable && e->ops->flush)
      e->ops->flush (e, err);
    e->ops->close (e, err);
  }
  if (e->fd >= 0)
    close (e->fd);
  free (e->path);
  free (e->name);
}

/* Free a layer (not its parent). */
static void
layer_free_one (struct vdisk_layer *l, struct vb_error *err)
{
  if (l->ctk) {
    ctk_close (l->ctk, l->desc.cid, err);
    l->ctk = NULL;
  }
  for (size_t i = 0; i < l->n_ext; i++)
    extent_close (&l->ext[i], err);
  free (l->ext);
  vmdk_desc_free (&l->desc);
  free (l->path);
  free (l->dir);
  free (l);
}

/* Close a layer and all its parents. */
void
vdisk_layer_close (struct vdisk_layer *l, struct vb_error *err)
{
  while (l) {
    struct vdisk_layer *p = l->parent;
    layer_free_one (l, err);
    l = p;
  }
}

/* Type of a layer from its createType, else from its first extent. */
static enum vdisk_type
layer_type (const struct vdisk_layer *l)
{
  int t = l->desc.create_type ? vdisk_type_from_name (l->desc.create_type) : -1;
  if (t >= 0)
    return (enum vdisk_type) t;
  switch (l->desc.ext[0].kind) {
  case VMDK_EXT_SPARSE: return VDISK_TYPE_MONOLITHIC_SPARSE;
  case VMDK_EXT_VMFSSPARSE: return VDISK_TYPE_VMFS_SPARSE;
  case VMDK_EXT_SESPARSE: return VDISK_TYPE_SE_SPARSE;
  case VMDK_EXT_VMFS: case VMDK_EXT_VMFSRAW: return VDISK_TYPE_VMFS;
  default: return VDISK_TYPE_MONOLITHIC_FLAT;
  }
}

/* Set up the extents of a layer from its parsed descriptor.  For an
 * embedded descriptor ext[0] is already open and reused. */
static int
layer_open_extents (struct vdisk_layer *l, struct vb_error *err)
{
  size_t first = l->embedded_desc ? 1 : 0;
  if (l->embedded_desc && l->desc.n_ext != 1)
    return vb_err (err, EINVAL, "embedded descriptor of '%s' must have one extent, has %zu",
                   l->path, l->desc.n_ext);
  struct vdisk_extent *ne = realloc (l->ext, l->desc.n_ext * sizeof *ne);
  if (!ne)
    return vb_errno (err, ENOMEM, "cannot open '%s'", l->path);
  l->ext = ne;
  memset (ne + first, 0, (l->desc.n_ext - first) * sizeof *ne);
  uint64_t start = 0;
  for (size_t i = 0; i < l->desc.n_ext; i++) {
    const struct vmdk_desc_extent *de = &l->desc.ext[i];
    struct vdisk_extent *e = &l->ext[i];
    if (i >= first) {
      e->fd = -1;
      e->layer = l;
      e->ops = vdisk_extent_driver (de->kind);
      e->writable = l->writable && de->access == VMDK_ACCESS_RW;
      e->file_offset = de->offset * VDISK_SECTOR;
      if (de->file) {
        e->name = strdup (de->file);
        e->path = vdisk_path_join (l->dir, de->file);
      } else {
        e->name = strdup ("ZERO");
        e->path = strdup ("");
      }
      if (!e->name || !e->path)
        return vb_errno (err, ENOMEM, "cannot open '%s'", l->path);
    }
    e->start = start;
    e->length = de->sectors * VDISK_SECTOR;
    l->n_ext = i + 1;
    if (de->access == VMDK_ACCESS_NOACCESS)
      return vb_err (err, EACCES, "extent '%s' of '%s' is NOACCESS",
                     e->name, l->path);
    if (i >= first) {
      int r = extent_open (l, e, err);
      if (r < 0)
        return r;
      if (e->length == 0 || e->length != de->sectors * VDISK_SECTOR)
        return vb_err (err, EINVAL, "extent '%s' of '%s' has %llu bytes, descriptor says %llu",
                       e->name, l->path, (unsigned long long) e->length,
                       (unsigned long long) (de->sectors * VDISK_SECTOR));
    }
    start += e->length;
  }
  l->size = start;
  return 0;
}

/* Open path as a single extent of a driver (embedded-descriptor files,
 * bare sparse extents, raw images). */
static int
layer_open_single (struct vdisk_layer *l, const struct vdisk_extent_ops *ops,
                   struct vb_error *err)
{
  l->ext = calloc (1, sizeof *l->ext);
  if (!l->ext)
    return vb_errno (err, ENOMEM, "cannot open '%s'", l->path);
  struct vdisk_extent *e = &l->ext[0];
  e->layer = l;
  e->ops = ops;
  e->writable = l->writable;
  e->path = strdup (l->path);
  const char *slash = strrchr (l->path, '/');
  e->name = strdup (slash ? slash + 1 : l->path);
  if (!e->path || !e->name)
    return vb_errno (err, ENOMEM, "cannot open '%s'", l->path);
  l->n_ext = 1;
  int r = extent_open (l, e, err);
  if (r < 0)
    return r;
  l->size = e->length;
  return 0;
}

/* A hosted sparse file: the descriptor, if any, is inside it. */
static int
layer_open_embedded (struct vdisk_layer *l, const struct vdisk_extent_ops *ops,
                     struct vb_error *err)
{
  int r = layer_open_single (l, ops, err);
  if (r < 0 || !ops->read_embedded_desc)
    return r;
  char *text = NULL;
  r = ops->read_embedded_desc (&l->ext[0], &text, err);
  if (r < 0 || text == NULL) {
    l->type = VDISK_TYPE_MONOLITHIC_SPARSE;
    return r;
  }
  r = vmdk_desc_parse (text, strlen (text), l->path, &l->desc, err);
  free (text);
  if (r < 0)
    return r;
  l->has_desc = l->embedded_desc = true;
  return layer_open_extents (l, err);
}

/* Read the start of a file to decide what it is. */
static int
sniff (const char *path, uint8_t *buf, size_t len, size_t *got,
       int64_t *fsize, struct vb_error *err)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vb_errno (err, errno, "cannot open '%s'", path);
  ssize_t n = pread (fd, buf, len, 0);
  int e = errno;
  *fsize = vio_size (fd);
  close (fd);
  if (n < 0)
    return vb_errno (err, e, "cannot read '%s'", path);
  *got = (size_t) n;
  return 0;
}

/* Open one layer: descriptor file, hosted sparse file or raw image. */
int
vdisk_layer_open (const char *path, bool writable, struct vdisk_layer **out,
                  struct vb_error *err)
{
  struct vdisk_layer *l = calloc (1, sizeof *l);
  if (!l)
    return vb_errno (err, ENOMEM, "cannot open '%s'", path);
  l->path = strdup (path);
  l->dir = vdisk_path_dir (path);
  l->writable = writable;
  int r;
  if (!l->path || !l->dir) {
    r = vb_errno (err, ENOMEM, "cannot open '%s'", path);
    goto fail;
  }
  uint8_t buf[4096];
  size_t got = 0;
  int64_t fsize = 0;
  if ((r = sniff (path, buf, sizeof buf, &got, &fsize, err)) < 0)
    goto fail;
  const struct vdisk_extent_ops *drivers[] = {
    &vdisk_sparse_ops, &vdisk_cowd_ops, &vdisk_sesparse_ops,
  };
  for (size_t i = 0; i < sizeof drivers / sizeof *drivers; i++) {
    if (drivers[i]->probe && drivers[i]->probe (buf, got) >= 50) {
      r = layer_open_embedded (l, drivers[i], err);
      if (r < 0)
        goto fail;
      if (!l->has_desc)
        l->type = drivers[i] == &vdisk_sparse_ops ? VDISK_TYPE_MONOLITHIC_SPARSE
          : drivers[i] == &vdisk_cowd_ops ? VDISK_TYPE_VMFS_SPARSE : VDISK_TYPE_SE_SPARSE;
      else
        l->type = layer_type (l);
      *out = l;
      return 0;
    }
  }
  if (vmdk_desc_probe ((const char *) buf, got)) {
    if (fsize > VMDK_DESC_MAX) {
      r = vb_err (err, EFBIG, "descriptor '%s' is too large (%lld bytes, at most %d)",
                  path, (long long) fsize, VMDK_DESC_MAX);
      goto fail;
    }
    char *text;
    size_t len;
    if ((r = vio_read_file (path, VMDK_DESC_MAX, &text, &len, err)) < 0)
      goto fail;
    r = vmdk_desc_parse (text, len, path, &l->desc, err);
    free (text);
    if (r < 0)
      goto fail;
    l->has_desc = true;
    l->type = layer_type (l);
    if ((r = layer_open_extents (l, err)) < 0)
      goto fail;
    *out = l;
    return 0;
  }
  l->type = VDISK_TYPE_RAW;
  if ((r = layer_open_single (l, &vdisk_flat_ops, err)) < 0)
    goto fail;
  *out = l;
  return 0;
fail:
  layer_free_one (l, NULL);
  return r;
}

/* Resolve a parent hint relative to the child's directory. */
static char *
parent_path (const struct vdisk_layer *l)
{
  return vdisk_path_join (l->dir, l->desc.parent_hint);
}

/* Open the parents of top, checking CIDs, missing files and loops. */
static int
open_chain (struct vdisk_layer *top, struct vb_error *err)
{
  char *seen[VDISK_MAX_CHAIN + 1];
  int n = 0, r = 0;
  seen[n] = realpath (top->path, NULL);
  if (!seen[n])
    return vb_errno (err, errno, "cannot resolve '%s'", top->path);
  n++;
  for (struct vdisk_layer *l = top; l->has_desc && l->desc.parent_hint; l = l->parent) {
    char *pp = parent_path (l);
    if (!pp) {
      r = vb_errno (err, ENOMEM, "cannot open parent of '%s'", l->path);
      break;
    }
    char *real = realpath (pp, NULL);
    if (!real) {
      r = vb_errno (err, errno, "cannot open parent '%s' of '%s'", l->desc.parent_hint, l->path);
      free (pp);
      break;
    }
    for (int i = 0; i < n && r == 0; i++)
      if (strcmp (seen[i], real) == 0)
        r = vb_err (err, ELOOP, "parent chain of '%s' loops back to '%s'", top->path, pp);
    if (r == 0 && n >= VDISK_MAX_CHAIN)
      r = vb_err (err, ELOOP, "parent chain of '%s' is longer than %d", top->path,
                  VDISK_MAX_CHAIN);
    if (r < 0) {
      free (real);
      free (pp);
      break;
    }
    seen[n++] = real;
    r = vdisk_layer_open (pp, false, &l->parent, err);
    if (r < 0) {
      vb_err_prefix (err, "cannot open parent of '%s'", l->path);
      free (pp);
      break;
    }
    struct vdisk_layer *p = l->parent;
    if (l->desc.parent_cid != VMDK_CID_NONE && p->has_desc
        && p->desc.cid != l->desc.parent_cid) {
      r = vb_err (err, EINVAL,
                  "CID mismatch: '%s' expects parent CID %08x but '%s' has %08x "
                  "(the parent was modified after the child was created)",
                  l->path, l->desc.parent_cid, pp, p->desc.cid);
      free (pp);
      break;
    }
    free (pp);
  }
  for (int i = 0; i < n; i++)
    free (seen[i]);
  return r;
}

/* Open the change tracker of a writable top layer, if it has one. */
static int
layer_open_ctk (struct vdisk_layer *l, struct vb_error *err)
{
  if (!l->has_desc || !l->desc.change_track_path || !l->writable)
    return 0;
  char *p = vdisk_path_join (l->dir, l->desc.change_track_path);
  if (!p)
    return vb_errno (err, ENOMEM, "cannot open change tracking of '%s'", l->path);
  int r = ctk_open (p, l->size, l->desc.cid, true, &l->ctk, err);
  free (p);
  return r;
}

/* Open a disk (with its chain unless VDISK_OPEN_NOPARENT). */
int
vdisk_open (const char *path, unsigned flags, struct vdisk **out,
            struct vb_error *err)
{
  struct vdisk *d = calloc (1, sizeof *d);
  if (!d)
    return vb_errno (err, ENOMEM, "cannot open '%s'", path);
  d->flags = flags;
  int r = vdisk_layer_open (path, flags & VDISK_OPEN_RDWR, &d->top, err);
  if (r == 0 && !(flags & VDISK_OPEN_NOPARENT))
    r = open_chain (d->top, err);
  if (r == 0 && (flags & VDISK_OPEN_KEEPCID))
    d->top->keep_cid = true;
  else if (r == 0)
    r = layer_open_ctk (d->top, err);
  if (r < 0) {
    if (d->top)
      vdisk_layer_close (d->top, NULL);
    free (d);
    return r;
  }
  *out = d;
  return 0;
}

/* Flush, stamp the tracker and free everything. */
int
vdisk_close (struct vdisk *d, struct vb_error *err)
{
  if (!d)
    return 0;
  struct vb_error local = { 0 };
  struct vb_error *e = err ? err : &local;
  int before = e->code;
  vdisk_layer_close (d->top, e);
  free (d);
  return e->code && !before ? -e->code : 0;
}

/* Index of the extent holding virtual offset off (binary search). */
static struct vdisk_extent *
find_extent (struct vdisk_layer *l, uint64_t off)
{
  size_t lo = 0, hi = l->n_ext;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    struct vdisk_extent *e = &l->ext[mid];
    if (off < e->start)
      hi = mid;
    else if (off >= e->start + e->length)
      lo = mid + 1;
    else
      return e;
  }
  return NULL;
}

/* Status of one extent range (drivers without status are all data). */
static int
ext_status (struct vdisk_extent *e, uint64_t off, uint64_t len, uint64_t *pnum,
            struct vb_error *err)
{
  if (!e->ops->status) {
    *pnum = len;
    return EXT_DATA;
  }
  int s = e->ops->status (e, off, len, pnum, err);
  if (s >= 0 && (*pnum == 0 || *pnum > len))
    return vb_err (err, EIO, "internal error: bad status length from '%s'", e->name);
  return s;
}

/* Read [off, off+count) of layer l, falling through to parents. */
int
vdisk_layer_read (struct vdisk_layer *l, void *buf, size_t count,
                  uint64_t off, struct vb_error *err)
{
  uint8_t *p = buf;
  while (count > 0) {
    if (off >= l->size) {       /* parent smaller than child: zeros */
      memset (p, 0, count);
      return 0;
    }
    struct vdisk_extent *e = find_extent (l, off);
    if (!e)
      return vb_err (err, EIO, "no extent at offset %llu of '%s'",
                     (unsigned long long) off, l->path);
    uint64_t eoff = off - e->start;
    uint64_t n = e->length - eoff;
    if (n > count)
      n = count;
    uint64_t pnum;
    int s = ext_status (e, eoff, n, &pnum, err);
    if (s < 0)
      return s;
    int r = 0;
    if (s == EXT_DATA)
      r = e->ops->pread (e, p, pnum, eoff, err);
    else if (s == EXT_UNALLOC && l->parent)
      r = vdisk_layer_read (l->parent, p, pnum, off, err);
    else
      memset (p, 0, pnum);
    if (r < 0)
      return r;
    p += pnum;
    off += pnum;
    count -= pnum;
  }
  return 0;
}

/* Check that [off, off+count) lies inside the disk. */
static int
check_range (struct vdisk *d, size_t count, uint64_t off, struct vb_error *err)
{
  if (off > d->top->size || count > d->top->size - off)
    return vb_err (err, EINVAL, "range %llu+%zu is outside '%s' (%llu bytes)",
                   (unsigned long long) off, count, d->top->path,
                   (unsigned long long) d->top->size);
  return 0;
}

/* Read through the chain. */
int
vdisk_pread (struct vdisk *d, void *buf, size_t count, uint64_t offset,
             struct vb_error *err)
{
  int r = check_range (d, count, offset, err);
  return r < 0 ? r : vdisk_layer_read (d->top, buf, count, offset, err);
}

/* Write a layer's descriptor where it lives. */
int
vdisk_layer_write_desc (struct vdisk_layer *l, struct vb_error *err)
{
  char *text = vmdk_desc_format (&l->desc);
  if (!text)
    return vb_errno (err, ENOMEM, "cannot write descriptor of '%s'", l->path);
  int r;
  if (l->embedded_desc) {
    struct vdisk_extent *e = &l->ext[0];
    r = e->ops->write_embedded_desc
      ? e->ops->write_embedded_desc (e, text, err)
      : vb_err (err, ENOTSUP, "cannot rewrite the descriptor embedded in '%s'", l->path);
    if (r == 0)
      r = vio_fsync (e->fd) < 0 ? vb_errno (err, errno, "cannot sync '%s'", l->path) : 0;
  } else {
    r = vio_write_file_atomic (l->path, text, strlen (text), err);
  }
  free (text);
  return r;
}

/* First write of a session: mark the tracker dirty, then give the disk a
 * new CID (so a writer that does not track is detectable, and children
 * notice that their parent changed). */
static int
begin_write (struct vdisk_layer *l, struct vb_error *err)
{
  if (l->cid_updated)
    return 0;
  if (!l->writable)
    return vb_err (err, EROFS, "'%s' is open read-only", l->path);
  if (l->keep_cid) {
    l->cid_updated = true;
    return 0;
  }
  int r;
  if (l->ctk && ctk_valid (l->ctk, NULL) && (r = ctk_begin_write (l->ctk, err)) < 0)
    return r;
  if (l->has_desc) {
    l->desc.cid = vmdk_random_cid ();
    if ((r = vdisk_layer_write_desc (l, err)) < 0)
      return r;
  }
  l->cid_updated = true;
  return 0;
}

/* Write to one grain-allocating extent, completing partial grains that
 * are not allocated in this layer from the chain. */
static int
write_grains (struct vdisk_layer *l, struct vdisk_extent *e, const uint8_t *p,
              uint64_t n, uint64_t eoff, struct vb_error *err)
{
  uint64_t G = e->grain;
  while (n > 0) {
    uint64_t g0 = eoff / G * G;
    uint64_t gend = g0 + G < e->length ? g0 + G : e->length;
    int r;
    if (eoff == g0 && eoff + n >= gend) {
      uint64_t end = eoff + n;
      if (end < e->length)
        end = end / G * G;
      if ((r = e->ops->pwrite (e, p, end - eoff, eoff, err)) < 0)
        return r;
      p += end - eoff;
      n -= end - eoff;
      eoff = end;
      continue;
    }
    uint64_t len = gend - eoff < n ? gend - eoff : n;
    uint64_t pnum;
    int s = ext_status (e, g0, gend - g0, &pnum, err);
    if (s < 0)
      return s;
    if (s == EXT_DATA && pnum == gend - g0) {
      r = e->ops->pwrite (e, p, len, eoff, err);
    } else {
      uint8_t *tmp = malloc (gend - g0);
      if (!tmp)
        return vb_errno (err, ENOMEM, "cannot write '%s'", l->path);
      r = vdisk_layer_read (l, tmp, gend - g0, e->start + g0, err);
      if (r == 0) {
        memcpy (tmp + (eoff - g0), p, len);
        r = e->ops->pwrite (e, tmp, gend - g0, g0, err);
      }
      free (tmp);
    }
    if (r < 0)
      return r;
    p += len;
    n -= len;
    eoff += len;
  }
  return 0;
}

/* Write through the top layer. */
int
vdisk_pwrite (struct vdisk *d, const void *buf, size_t count, uint64_t offset,
              struct vb_error *err)
{
  struct vdisk_layer *l = d->top;
  int r = check_range (d, count, offset, err);
  if (r < 0 || count == 0)
    return r;
  if ((r = begin_write (l, err)) < 0)
    return r;
  /* mark first: a write failing half way may still have changed blocks,
   * and the tracker must never answer too little */
  if (l->ctk)
    ctk_mark (l->ctk, offset, count);
  const uint8_t *p = buf;
  uint64_t off = offset, left = count;
  while (left > 0) {
    struct vdisk_extent *e = find_extent (l, off);
    if (!e)
      return vb_err (err, EIO, "no extent at offset %llu of '%s'",
                     (unsigned long long) off, l->path);
    if (!e->writable || !e->ops->pwrite)
      return vb_err (err, EROFS, "extent '%s' of '%s' is not writable",
                     e->name, l->path);
    uint64_t eoff = off - e->start;
    uint64_t n = e->length - eoff < left ? e->length - eoff : left;
    r = e->grain ? write_grains (l, e, p, n, eoff, err)
      : e->ops->pwrite (e, p, n, eoff, err);
    if (r < 0)
      return r;
    p += n;
    off += n;
    left -= n;
  }
  return 0;
}

/* Write zero bytes over [from, to) of extent e (through copy on write
 * for grain extents). */
static int
write_zeros (struct vdisk_layer *l, struct vdisk_extent *e, uint64_t from,
             uint64_t to, struct vb_error *err)
{
  static const uint8_t zeros[65536];
  int r = 0;
  for (uint64_t o = from; o < to && r == 0; o += sizeof zeros) {
    uint64_t k = to - o < sizeof zeros ? to - o : sizeof zeros;
    r = e->grain ? write_grains (l, e, zeros, k, o, err)
      : e->ops->pwrite (e, zeros, k, o, err);
  }
  return r;
}

/* Make a range read as zeros: drivers deallocate whole grains, partial
 * grains get zero bytes written. */
int
vdisk_zero (struct vdisk *d, size_t count, uint64_t offset,
            struct vb_error *err)
{
  struct vdisk_layer *l = d->top;
  int r = check_range (d, count, offset, err);
  if (r < 0 || count == 0)
    return r;
  if ((r = begin_write (l, err)) < 0)
    return r;
  if (l->ctk)                   /* first, as in vdisk_pwrite */
    ctk_mark (l->ctk, offset, count);
  uint64_t off = offset, left = count;
  while (left > 0) {
    struct vdisk_extent *e = find_extent (l, off);
    if (!e)
      return vb_err (err, EIO, "no extent at offset %llu of '%s'",
                     (unsigned long long) off, l->path);
    uint64_t eoff = off - e->start;
    uint64_t n = e->length - eoff < left ? e->length - eoff : left;
    uint64_t G = e->grain ? e->grain : 1;
    uint64_t a = (eoff + G - 1) / G * G, b = (eoff + n) / G * G;
    if (eoff + n == e->length)
      b = e->length;
    if (!e->writable || !e->ops->pwrite)
      return vb_err (err, EROFS, "extent '%s' of '%s' is not writable", e->name, l->path);
    if (e->ops->zero && a < b) {
      /* head and tail partial grains as data, the middle deallocated */
      r = write_zeros (l, e, eoff, a, err);
      if (r == 0)
        r = e->ops->zero (e, a, b - a, l->parent != NULL, err);
      if (r == 0)
        r = write_zeros (l, e, b, eoff + n, err);
    } else {
      r = write_zeros (l, e, eoff, eoff + n, err);
    }
    if (r < 0)
      return r;
    off += n;
    left -= n;
  }
  return 0;
}

/* fsync every writable extent of the top layer. */
int
vdisk_flush (struct vdisk *d, struct vb_error *err)
{
  struct vdisk_layer *l = d->top;
  for (size_t i = 0; i < l->n_ext; i++) {
    struct vdisk_extent *e = &l->ext[i];
    if (e->writable && e->ops->flush) {
      int r = e->ops->flush (e, err);
      if (r < 0)
        return r;
    }
  }
  return 0;
}

/* Status of a range in one layer: EXT_DATA/EXT_ZERO/EXT_UNALLOC. */
static int
layer_status (struct vdisk_layer *l, uint64_t off, uint64_t len,
              uint64_t *pnum, struct vb_error *err)
{
  if (off >= l->size) {
    *pnum = len;
    return EXT_UNALLOC;
  }
  struct vdisk_extent *e = find_extent (l, off);
  if (!e)
    return vb_err (err, EIO, "no extent at offset %llu of '%s'",
                   (unsigned long long) off, l->path);
  uint64_t eoff = off - e->start;
  uint64_t n = e->length - eoff < len ? e->length - eoff : len;
  return ext_status (e, eoff, n, pnum, err);
}

/* Exported for whole-file operations (vdisk-ops.c). */
int
vdisk_layer_status (struct vdisk_layer *l, uint64_t off, uint64_t len,
                    uint64_t *pnum, struct vb_error *err)
{
  return layer_status (l, off, len, pnum, err);
}

/* Status over the chain: data anywhere, or zeros. */
int
vdisk_block_status (struct vdisk *d, uint64_t offset, uint64_t len,
                    uint64_t *pnum, struct vb_error *err)
{
  if (offset >= d->top->size || len == 0)
    return vb_err (err, EINVAL, "block status outside '%s'", d->top->path);
  if (len > d->top->size - offset)
    len = d->top->size - offset;
  for (struct vdisk_layer *l = d->top; l; l = l->parent) {
    int s = layer_status (l, offset, len, pnum, err);
    if (s < 0)
      return s;
    if (s == EXT_DATA)
      return VDISK_STATUS_DATA;
    if (s == EXT_ZERO)
      return VDISK_STATUS_ZERO;
    len = *pnum;          /* unallocated here: ask the parent about this run */
  }
  return VDISK_STATUS_ZERO;
}

/* Status of the top layer alone (0 = unallocated, parent shows through). */
int
vdisk_block_status_top (struct vdisk *d, uint64_t offset, uint64_t len,
                        uint64_t *pnum, struct vb_error *err)
{
  if (offset >= d->top->size || len == 0)
    return vb_err (err, EINVAL, "block status outside '%s'", d->top->path);
  if (len > d->top->size - offset)
    len = d->top->size - offset;
  int s = layer_status (d->top, offset, len, pnum, err);
  if (s < 0)
    return s;
  return s == EXT_DATA ? VDISK_STATUS_DATA : s == EXT_ZERO ? VDISK_STATUS_ZERO : 0;
}

/* Allocated (data) areas of the chain from start, merged and sorted. */
int
vdisk_map (struct vdisk *d, uint64_t start, struct vdisk_extent_list *out,
           struct vb_error *err)
{
  uint64_t off = start, size = d->top->size;
  while (off < size) {
    uint64_t pnum;
    int s = vdisk_block_status (d, off, size - off, &pnum, err);
    if (s < 0)
      return s;
    if (s == VDISK_STATUS_DATA && vdisk_extent_list_add (out, off, pnum) < 0)
      return vb_errno (err, ENOMEM, "cannot map '%s'", d->top->path);
    off += pnum;
  }
  return 0;
}
