/* vmback vdisk: hosted sparse VMDK extents ("KDMV": monolithicSparse,
 * twoGbMaxExtentSparse -sNNN files, streamOptimized).
 *
 * This file owns the header, the grain directory / grain table mapping,
 * plain (uncompressed) grains, allocation, zeroing, the embedded
 * descriptor and check/repair.  Compressed grains, the stream footer and
 * the sequential stream writer live in vmdk-stream.c.  The on-disk layout
 * is described in docs/vdisk-sparse.md.
 *
 * Crash safety of writes: a new grain is appended at the end of the file
 * and its grain table entry is only changed in the in-memory table cache.
 * Dirty tables reach the disk (primary and redundant copy) only after an
 * fdatasync of the grain data (on flush, close, or cache eviction), so a
 * table entry on disk never points to data that is not durable. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmdk-sparse-int.h"

/* Name used in messages: the descriptor's name for the file, else path. */
static const char *
ext_name (const struct vdisk_extent *ext)
{
  if (ext->name && ext->name[0])
    return ext->name;
  return ext->path ? ext->path : "(sparse extent)";
}

/* Score a file's first bytes: the KDMV magic is unambiguous. */
static int
sparse_probe (const uint8_t *buf, size_t len)
{
  if (len >= 4 && le32_get (buf) == KDMV_MAGIC)
    return 100;
  return 0;
}

/* Parse and validate a header sector, each field with its own message.
 * Offsets are checked against file_size so nothing later reads past EOF
 * or allocates more than the file could hold. */
int
kdmv_header_parse (const uint8_t *b, const char *name, const char *what,
                   uint64_t file_size, bool writable, struct kdmv_header *h,
                   struct vb_error *err)
{
  bool footer = strcmp (what, "footer") == 0;
  uint64_t file_sectors = file_size / VDISK_SECTOR;

  if (le32_get (b + KDMV_OFF_MAGIC) != KDMV_MAGIC)
    return vb_err (err, EINVAL, "bad magic in %s of '%s': not a hosted "
                   "sparse VMDK extent", what, name);
  memset (h, 0, sizeof *h);
  h->version = le32_get (b + KDMV_OFF_VERSION);
  h->flags = le32_get (b + KDMV_OFF_FLAGS);
  h->capacity = le64_get (b + KDMV_OFF_CAPACITY);
  h->grain = le64_get (b + KDMV_OFF_GRAIN);
  h->desc_off = le64_get (b + KDMV_OFF_DESC_OFF);
  h->desc_size = le64_get (b + KDMV_OFF_DESC_SIZE);
  h->num_gtes = le32_get (b + KDMV_OFF_NUM_GTES);
  h->rgd_off = le64_get (b + KDMV_OFF_RGD);
  h->gd_off = le64_get (b + KDMV_OFF_GD);
  h->overhead = le64_get (b + KDMV_OFF_OVERHEAD);
  h->unclean = b[KDMV_OFF_UNCLEAN];
  h->compress = le16_get (b + KDMV_OFF_COMPRESS);

  if (h->version < 1 || h->version > 3)
    return vb_err (err, ENOTSUP, "unsupported sparse extent version %u in "
                   "%s of '%s'", h->version, what, name);
  if (h->flags & ~KDMV_FLAGS_KNOWN) {
    if (writable)
      return vb_err (err, ENOTSUP, "unsupported flags 0x%x in %s of '%s'",
                     h->flags & ~KDMV_FLAGS_KNOWN, what, name);
    vb_debug ("ignoring unknown flags 0x%x in %s of '%s' (read-only)",
              h->flags & ~KDMV_FLAGS_KNOWN, what, name);
  }
  if ((h->flags & KDMV_FLAG_NL_TEST)
      && memcmp (b + KDMV_OFF_NL_CHARS, "\n \r\n", 4) != 0)
    return vb_err (err, EINVAL, "newline check bytes in %s of '%s' are "
                   "corrupted (file transferred in text mode?)", what, name);
  if (h->compress != KDMV_COMPRESS_NONE && h->compress != KDMV_COMPRESS_DEFLATE)
    return vb_err (err, ENOTSUP, "unsupported compression algorithm %u in "
                   "%s of '%s'", h->compress, what, name);
  if ((h->flags & KDMV_FLAG_COMPRESSED) && h->compress == KDMV_COMPRESS_NONE)
    return vb_err (err, EINVAL, "%s of '%s' has the compressed-grains flag "
                   "but no compression algorithm", what, name);
  if ((h->flags & KDMV_FLAG_MARKERS) && h->compress == KDMV_COMPRESS_NONE)
    return vb_err (err, ENOTSUP, "%s of '%s' has the markers flag without "
                   "compression", what, name);

  if (h->grain == 0)
    return vb_err (err, EINVAL, "grain size in %s of '%s' is 0", what, name);
  if (h->grain & (h->grain - 1))
    return vb_err (err, EINVAL, "grain size %llu in %s of '%s' is not a "
                   "power of two", (unsigned long long) h->grain, what, name);
  if (h->grain > KDMV_MAX_GRAIN_SECTORS)
    return vb_err (err, EINVAL, "grain size %llu sectors in %s of '%s' is "
                   "too large (at most %u)", (unsigned long long) h->grain,
                   what, name, KDMV_MAX_GRAIN_SECTORS);
  if (h->num_gtes != KDMV_GTES)
    return vb_err (err, ENOTSUP, "unsupported number of grain table entries "
                   "%u in %s of '%s' (expected %u)", h->num_gtes, what, name,
                   KDMV_GTES);
  if (h->capacity > VDISK_MAX_SIZE / VDISK_SECTOR)
    return vb_err (err, EINVAL, "capacity %llu sectors in %s of '%s' is too "
                   "large", (unsigned long long) h->capacity, what, name);

  /* Embedded descriptor: both fields zero, or a bounded area in the file
   * after the header. */
  if ((h->desc_off == 0) != (h->desc_size == 0))
    return vb_err (err, EINVAL, "descriptor offset %llu and size %llu in %s "
                   "of '%s' are inconsistent",
                   (unsigned long long) h->desc_off,
                   (unsigned long long) h->desc_size, what, name);
  if (h->desc_size > KDMV_MAX_DESC_SECTORS)
    return vb_err (err, EINVAL, "embedded descriptor in %s of '%s' is too "
                   "large (%llu sectors, at most %u)", what, name,
                   (unsigned long long) h->desc_size,
                   (unsigned) KDMV_MAX_DESC_SECTORS);
  if (h->desc_off > file_sectors || h->desc_size > file_sectors - h->desc_off)
    return vb_err (err, EINVAL, "embedded descriptor in %s of '%s' lies past "
                   "the end of the file", what, name);

  if (h->overhead == 0 || h->overhead > file_sectors)
    return vb_err (err, EINVAL, "metadata size (overHead %llu sectors) in %s "
                   "of '%s' does not fit the file (%llu sectors)",
                   (unsigned long long) h->overhead, what, name,
                   (unsigned long long) file_sectors);

  /* Grain directory: n_grains = ceil(capacity / grain) <= 2^37 and
   * n_gd = ceil(n_grains / 512); capped below and by the file size. */
  uint64_t n_grains = kdmv_div_round_up (h->capacity, h->grain);
  uint64_t n_gd = kdmv_div_round_up (n_grains, KDMV_GTES);
  if (n_gd > KDMV_MAX_GD_ENTRIES)
    return vb_err (err, EINVAL, "grain directory in %s of '%s' is too large "
                   "(%llu entries)", what, name, (unsigned long long) n_gd);
  uint64_t gd_sectors = kdmv_div_round_up (n_gd * 4, VDISK_SECTOR);

  bool stream = h->compress == KDMV_COMPRESS_DEFLATE
                && (h->flags & KDMV_FLAG_MARKERS);
  if (h->gd_off == KDMV_GD_AT_END) {
    if (footer)
      return vb_err (err, EINVAL, "footer of '%s' has no grain directory "
                     "offset", name);
    if (!stream)
      return vb_err (err, EINVAL, "grain directory of '%s' is at the end but "
                     "the file is not streamOptimized", name);
  } else {
    if (h->gd_off == 0)
      return vb_err (err, EINVAL, "grain directory offset in %s of '%s' is 0",
                     what, name);
    if (h->gd_off > file_sectors || gd_sectors > file_sectors - h->gd_off)
      return vb_err (err, EINVAL, "grain directory in %s of '%s' lies past "
                     "the end of the file (sector %llu)", what, name,
                     (unsigned long long) h->gd_off);
  }
  if ((h->flags & KDMV_FLAG_RGD) && h->gd_off != KDMV_GD_AT_END) {
    if (h->rgd_off == 0)
      return vb_err (err, EINVAL, "redundant grain directory offset in %s of "
                     "'%s' is 0", what, name);
    if (h->rgd_off > file_sectors || gd_sectors > file_sectors - h->rgd_off)
      return vb_err (err, EINVAL, "redundant grain directory in %s of '%s' "
                     "lies past the end of the file (sector %llu)", what,
                     name, (unsigned long long) h->rgd_off);
  }
  return 0;
}

/* Serialize a header into a 512-byte sector. */
void
kdmv_header_format (const struct kdmv_header *h, uint8_t *b)
{
  memset (b, 0, KDMV_HDR_SIZE);
  le32_put (b + KDMV_OFF_MAGIC, KDMV_MAGIC);
  le32_put (b + KDMV_OFF_VERSION, h->version);
  le32_put (b + KDMV_OFF_FLAGS, h->flags);
  le64_put (b + KDMV_OFF_CAPACITY, h->capacity);
  le64_put (b + KDMV_OFF_GRAIN, h->grain);
  le64_put (b + KDMV_OFF_DESC_OFF, h->desc_off);
  le64_put (b + KDMV_OFF_DESC_SIZE, h->desc_size);
  le32_put (b + KDMV_OFF_NUM_GTES, h->num_gtes);
  le64_put (b + KDMV_OFF_RGD, h->rgd_off);
  le64_put (b + KDMV_OFF_GD, h->gd_off);
  le64_put (b + KDMV_OFF_OVERHEAD, h->overhead);
  b[KDMV_OFF_UNCLEAN] = h->unclean;
  memcpy (b + KDMV_OFF_NL_CHARS, "\n \r\n", 4);
  le16_put (b + KDMV_OFF_COMPRESS, h->compress);
}

/* Free the private state. */
static void
sparse_free (struct sparse *s)
{
  if (!s)
    return;
  if (s->w)
    stream_writer_free (s->w);
  free (s->gd);
  free (s->rgd);
  free (s->cache);
  free (s->zbuf);
  free (s->gbuf);
  free (s->cbuf);
  free (s);
}

/* Read a grain directory of n entries at sector off into host order. */
static int
read_gd (struct vdisk_extent *ext, uint64_t off, uint32_t n, uint32_t **out,
         const char *what, struct vb_error *err)
{
  /* n <= KDMV_MAX_GD_ENTRIES, so at most 128 MiB; +1 for n == 0. */
  uint32_t *gd = calloc ((size_t) n + 1, sizeof *gd);
  if (!gd)
    return vb_errno (err, ENOMEM, "cannot load %s of '%s'", what,
                     ext_name (ext));
  if (n > 0) {
    int r = vio_pread (ext->fd, gd, (size_t) n * 4, off * VDISK_SECTOR);
    if (r < 0) {
      free (gd);
      return vb_errno (err, -r, "cannot read %s of '%s'", what,
                       ext_name (ext));
    }
    for (uint32_t i = 0; i < n; i++)
      gd[i] = le32_get (&gd[i]);
  }
  *out = gd;
  return 0;
}

/* Open: read and validate the header (and the footer of a stream), load
 * the grain directories, set ext->grain and maybe ext->length. */
static int
sparse_open (struct vdisk_extent *ext, struct vb_error *err)
{
  const char *name = ext_name (ext);
  struct sparse *s = calloc (1, sizeof *s);
  int r;
  if (!s)
    return vb_errno (err, ENOMEM, "cannot open '%s'", name);
  s->name = name;
  s->writable = ext->writable;

  int64_t sz = vio_size (ext->fd);
  if (sz < 0) {
    r = vb_errno (err, (int) -sz, "cannot stat '%s'", name);
    goto fail;
  }
  s->file_size = (uint64_t) sz;
  if (s->file_size < KDMV_HDR_SIZE) {
    r = vb_err (err, EINVAL, "'%s' is too short for a sparse extent header "
                "(%llu bytes)", name, (unsigned long long) s->file_size);
    goto fail;
  }
  r = vio_pread (ext->fd, s->raw_header, KDMV_HDR_SIZE, 0);
  if (r < 0) {
    vb_errno (err, -r, "cannot read header of '%s'", name);
    goto fail;
  }
  r = kdmv_header_parse (s->raw_header, name, "header", s->file_size,
                         ext->writable, &s->h, err);
  if (r < 0)
    goto fail;
  if (s->h.unclean)
    vb_debug ("'%s' was not closed cleanly (uncleanShutdown set)", name);

  s->compressed = s->h.compress == KDMV_COMPRESS_DEFLATE;
  s->markers = (s->h.flags & KDMV_FLAG_MARKERS) != 0;
  if (s->h.version == 3 && !s->compressed && ext->writable) {
    /* Version 3 adds persistent change tracking data we do not keep up to
     * date (VMware KB 2064959); reading it as version 1 is safe. */
    r = vb_err (err, EROFS, "version 3 sparse extent '%s' can only be "
                "opened read-only", name);
    goto fail;
  }

  if (s->h.gd_off == KDMV_GD_AT_END) {
    if (s->file_size == s->h.overhead * VDISK_SECTOR) {
      /* A streamOptimized file as create() leaves it: no grain yet. */
      s->stream_empty = true;
    } else {
      r = stream_read_footer (ext, s, err);
      if (r < 0)
        goto fail;
    }
  }

  s->compressed = s->h.compress == KDMV_COMPRESS_DEFLATE;
  s->markers = (s->h.flags & KDMV_FLAG_MARKERS) != 0;
  s->zero_grain = (s->h.flags & KDMV_FLAG_ZERO_GRAIN) != 0;
  s->has_rgd = (s->h.flags & KDMV_FLAG_RGD) && s->h.rgd_off != 0
               && s->h.gd_off != KDMV_GD_AT_END;
  s->read_only_fmt = s->compressed;
  s->grain_bytes = (uint32_t) (s->h.grain * VDISK_SECTOR);
  s->n_grains = kdmv_div_round_up (s->h.capacity, s->h.grain);
  s->n_gd = (uint32_t) kdmv_div_round_up (s->n_grains, KDMV_GTES);

  uint64_t cap_bytes = s->h.capacity * VDISK_SECTOR;
  if (ext->length == 0)
    ext->length = cap_bytes;
  else if (ext->length > cap_bytes) {
    r = vb_err (err, EINVAL, "extent '%s' is %llu sectors in the descriptor "
                "but its header capacity is %llu sectors", name,
                (unsigned long long) (ext->length / VDISK_SECTOR),
                (unsigned long long) s->h.capacity);
    goto fail;
  }

  if (s->stream_empty) {
    s->gd = calloc ((size_t) s->n_gd + 1, sizeof *s->gd);
    if (!s->gd) {
      r = vb_errno (err, ENOMEM, "cannot open '%s'", name);
      goto fail;
    }
  } else {
    r = read_gd (ext, s->h.gd_off, s->n_gd, &s->gd, "grain directory", err);
    if (r < 0)
      goto fail;
    if (s->has_rgd) {
      r = read_gd (ext, s->h.rgd_off, s->n_gd, &s->rgd,
                   "redundant grain directory", err);
      if (r < 0)
        goto fail;
    }
  }
  s->cache = calloc (KDMV_GT_CACHE, sizeof *s->cache);
  if (!s->cache) {
    r = vb_errno (err, ENOMEM, "cannot open '%s'", name);
    goto fail;
  }
  ext->grain = s->grain_bytes;
  ext->priv = s;

  if (s->stream_empty && ext->writable) {
    r = stream_writer_start (ext, s, err);
    if (r < 0) {
      ext->priv = NULL;
      goto fail;
    }
  }
  return 0;

fail:
  sparse_free (s);
  return r;
}

/* Reserve bytes at the (sector aligned) end of the file for a grain or
 * table; GTEs are 32-bit sectors, so nothing may start past 2 TiB. */
static int
alloc_space (struct vdisk_extent *ext, struct sparse *s, uint64_t bytes,
             uint64_t *off, struct vb_error *err)
{
  uint64_t o = (s->file_size + VDISK_SECTOR - 1) / VDISK_SECTOR * VDISK_SECTOR;
  if ((o + bytes) / VDISK_SECTOR > KDMV_MAX_FILE_SECTORS)
    return vb_err (err, EFBIG, "sparse extent '%s' is full (grains cannot "
                   "start beyond 2 TiB)", ext_name (ext));
  *off = o;
  s->file_size = o + bytes;
  return 0;
}

/* Write a table slot back to its primary and redundant location, after
 * making every grain it may point to durable. */
static int
gt_writeout (struct vdisk_extent *ext, struct sparse *s, struct gt_slot *g,
             struct vb_error *err)
{
  int r;
  if (s->data_unsynced) {
    r = vio_fsync (ext->fd);
    if (r < 0)
      return vb_errno (err, -r, "cannot sync '%s'", ext_name (ext));
    s->data_unsynced = false;
  }
  uint8_t buf[KDMV_GT_BYTES];
  for (unsigned i = 0; i < KDMV_GTES; i++)
    le32_put (buf + 4 * i, g->e[i]);
  r = vio_pwrite (ext->fd, buf, sizeof buf,
                  (uint64_t) s->gd[g->gdi] * VDISK_SECTOR);
  if (r < 0)
    return vb_errno (err, -r, "cannot write grain table of '%s'",
                     ext_name (ext));
  if (s->has_rgd && s->rgd[g->gdi]) {
    r = vio_pwrite (ext->fd, buf, sizeof buf,
                    (uint64_t) s->rgd[g->gdi] * VDISK_SECTOR);
    if (r < 0)
      return vb_errno (err, -r, "cannot write redundant grain table of '%s'",
                       ext_name (ext));
  }
  g->dirty = false;
  return 0;
}

/* Append a zeroed grain table (and its redundant copy) for directory
 * entry gdi and point the directories at them. */
static int
alloc_gt (struct vdisk_extent *ext, struct sparse *s, uint32_t gdi,
          struct vb_error *err)
{
  static const uint8_t zeros[KDMV_GT_BYTES];
  uint64_t off = 0, roff = 0;
  int r = alloc_space (ext, s, KDMV_GT_BYTES, &off, err);
  if (r < 0)
    return r;
  r = vio_pwrite (ext->fd, zeros, sizeof zeros, off);
  if (r == 0 && s->has_rgd) {
    r = alloc_space (ext, s, KDMV_GT_BYTES, &roff, err);
    if (r < 0)
      return r;
    r = vio_pwrite (ext->fd, zeros, sizeof zeros, roff);
  }
  if (r == 0)
    r = vio_fsync (ext->fd);   /* tables durable before the GD points there */
  if (r < 0)
    return vb_errno (err, -r, "cannot allocate grain table in '%s'",
                     ext_name (ext));
  uint8_t e[4];
  le32_put (e, (uint32_t) (off / VDISK_SECTOR));
  r = vio_pwrite (ext->fd, e, 4, s->h.gd_off * VDISK_SECTOR + 4 * (uint64_t) gdi);
  if (r == 0 && s->has_rgd) {
    le32_put (e, (uint32_t) (roff / VDISK_SECTOR));
    r = vio_pwrite (ext->fd, e, 4,
                    s->h.rgd_off * VDISK_SECTOR + 4 * (uint64_t) gdi);
  }
  if (r < 0)
    return vb_errno (err, -r, "cannot write grain directory of '%s'",
                     ext_name (ext));
  s->gd[gdi] = (uint32_t) (off / VDISK_SECTOR);
  if (s->has_rgd)
    s->rgd[gdi] = (uint32_t) (roff / VDISK_SECTOR);
  s->data_unsynced = true;   /* the GD entries, before any GTE in them */
  return 0;
}

/* Get the cached grain table of directory entry gdi, loading it (and
 * evicting the least recently used one) if needed.  *out is NULL when the
 * directory entry is 0 and create is false. */
static int
gt_get (struct vdisk_extent *ext, struct sparse *s, uint32_t gdi, bool create,
        struct gt_slot **out, struct vb_error *err)
{
  int r;
  *out = NULL;
  if (gdi >= s->n_gd)
    return vb_err (err, EIO, "grain directory index %u out of range in '%s'",
                   gdi, ext_name (ext));
  struct gt_slot *victim = &s->cache[0];
  for (int i = 0; i < KDMV_GT_CACHE; i++) {
    struct gt_slot *g = &s->cache[i];
    if (g->valid && g->gdi == gdi) {
      g->tick = ++s->tick;
      *out = g;
      return 0;
    }
    if (!g->valid)
      victim = g;
    else if (victim->valid && g->tick < victim->tick)
      victim = g;
  }
  if (s->gd[gdi] == 0) {
    if (!create)
      return 0;
    r = alloc_gt (ext, s, gdi, err);
    if (r < 0)
      return r;
  }
  uint64_t off = (uint64_t) s->gd[gdi] * VDISK_SECTOR;
  if (off + KDMV_GT_BYTES > s->file_size)
    return vb_err (err, EIO, "grain table %u of '%s' lies past the end of the "
                   "file (sector %u)", gdi, ext_name (ext), s->gd[gdi]);
  if (victim->valid && victim->dirty) {
    r = gt_writeout (ext, s, victim, err);
    if (r < 0)
      return r;
  }
  victim->valid = false;
  uint8_t buf[KDMV_GT_BYTES];
  r = vio_pread (ext->fd, buf, sizeof buf, off);
  if (r < 0)
    return vb_errno (err, -r, "cannot read grain table of '%s'",
                     ext_name (ext));
  for (unsigned i = 0; i < KDMV_GTES; i++)
    victim->e[i] = le32_get (buf + 4 * i);
  victim->gdi = gdi;
  victim->valid = true;
  victim->dirty = false;
  victim->tick = ++s->tick;
  *out = victim;
  return 0;
}

/* Map grain to its status.  *gte gets the table entry (sector of the data
 * or marker) for EXT_DATA; *pending is set when the grain is still in the
 * stream writer's buffer.  Returns an enum ext_status or -errno. */
static int
sparse_lookup (struct vdisk_extent *ext, struct sparse *s, uint64_t grain,
               uint32_t *gte, bool *pending, struct vb_error *err)
{
  *gte = 0;
  *pending = false;
  if (s->w) {
    struct stream_writer *w = s->w;
    if (w->pend_used && grain == w->pend_grain) {
      *pending = true;
      return EXT_DATA;
    }
    if (grain / KDMV_GTES == w->cur_gdi) {
      *gte = w->gt[grain % KDMV_GTES];
      return *gte ? EXT_DATA : EXT_UNALLOC;
    }
  }
  if (s->stream_empty && !s->w)
    return EXT_UNALLOC;
  if (grain >= s->n_grains)
    return vb_err (err, EIO, "grain %llu is beyond the capacity of '%s'",
                   (unsigned long long) grain, ext_name (ext));
  struct gt_slot *g;
  int r = gt_get (ext, s, (uint32_t) (grain / KDMV_GTES), false, &g, err);
  if (r < 0)
    return r;
  if (!g)
    return EXT_UNALLOC;
  uint32_t e = g->e[grain % KDMV_GTES];
  if (e == 0)
    return EXT_UNALLOC;
  if (e == 1 && s->zero_grain)
    return EXT_ZERO;
  if (e < s->h.overhead)
    return vb_err (err, EIO, "grain table entry of grain %llu in '%s' points "
                   "into the metadata (sector %u)",
                   (unsigned long long) grain, ext_name (ext), e);
  if ((uint64_t) e * VDISK_SECTOR >= s->file_size)
    return vb_err (err, EIO, "grain table entry of grain %llu in '%s' points "
                   "past the end of the file (sector %u)",
                   (unsigned long long) grain, ext_name (ext), e);
  *gte = e;
  return EXT_DATA;
}

/* Status of a run of grains starting at off. */
static int
sparse_status (struct vdisk_extent *ext, uint64_t off, uint64_t len,
               uint64_t *pnum, struct vb_error *err)
{
  struct sparse *s = ext->priv;
  uint64_t gb = s->grain_bytes, done = 0;
  int first = -1;
  while (done < len) {
    uint64_t o = off + done, g = o / gb;
    uint64_t n = gb - o % gb;
    if (n > len - done)
      n = len - done;
    uint32_t gte;
    bool pending;
    int st;
    uint64_t gdi = g / KDMV_GTES;
    if ((s->stream_empty && !s->w)
        || (gdi < s->n_gd && s->gd[gdi] == 0
            && !(s->w && (gdi == s->w->cur_gdi
                          || (s->w->pend_used
                              && s->w->pend_grain / KDMV_GTES == gdi))))) {
      /* No table at all: the whole span of the table is unallocated. */
      uint64_t span_end = (gdi + 1) * KDMV_GTES * gb;
      if (s->stream_empty && !s->w)
        span_end = off + len;
      n = span_end - o < len - done ? span_end - o : len - done;
      st = EXT_UNALLOC;
    } else {
      st = sparse_lookup (ext, s, g, &gte, &pending, err);
    }
    if (st < 0) {
      if (first >= 0)
        break;         /* report the good run; the error comes next call */
      return st;
    }
    if (first < 0)
      first = st;
    else if (st != first)
      break;
    done += n;
  }
  *pnum = done;
  return first;
}

/* Read from a plain grain; bytes past the end of the file read as zeros
 * (a truncated last grain; check() reports it). */
static int
read_plain (struct vdisk_extent *ext, struct sparse *s, uint8_t *buf,
            size_t n, uint64_t pos, struct vb_error *err)
{
  size_t avail = n;
  if (pos >= s->file_size)
    avail = 0;
  else if (s->file_size - pos < n)
    avail = (size_t) (s->file_size - pos);
  if (avail < n)
    memset (buf + avail, 0, n - avail);
  int r = avail ? vio_pread (ext->fd, buf, avail, pos) : 0;
  if (r < 0)
    return vb_errno (err, -r, "cannot read grain of '%s'", ext_name (ext));
  return 0;
}

/* Read bytes through the grain tables. */
static int
sparse_pread (struct vdisk_extent *ext, void *buf, size_t count, uint64_t off,
              struct vb_error *err)
{
  struct sparse *s = ext->priv;
  uint8_t *p = buf;
  uint64_t gb = s->grain_bytes;
  while (count > 0) {
    uint64_t g = off / gb, in = off % gb;
    size_t n = (size_t) (gb - in < count ? gb - in : count);
    uint32_t gte;
    bool pending;
    int st = sparse_lookup (ext, s, g, &gte, &pending, err);
    if (st < 0)
      return st;
    if (pending) {
      memcpy (p, s->w->pend + in, n);
    } else if (st != EXT_DATA) {
      memset (p, 0, n);
    } else if (s->compressed) {
      int r = stream_load_grain (ext, s, g, gte, err);
      if (r < 0)
        return r;
      if (in + n > s->gbuf_len)
        return vb_err (err, EIO, "compressed grain %llu of '%s' is too short "
                       "(%u bytes)", (unsigned long long) g, ext_name (ext),
                       s->gbuf_len);
      memcpy (p, s->gbuf + in, n);
    } else {
      /* grains that follow each other in the file too are read with one
       * pread (files written in order, by us or qemu-img, are mostly so) */
      uint64_t gs = gb / VDISK_SECTOR;
      uint32_t last = gte;
      while (n < count) {
        uint32_t ngte;
        bool npend;
        struct vb_error le = { 0 };   /* a failing look-ahead is retried next round */
        int nst = sparse_lookup (ext, s, g + 1, &ngte, &npend, &le);
        if (nst != EXT_DATA || npend || (uint64_t) ngte != last + gs)
          break;
        g++;
        last = ngte;
        n += (size_t) (gb < count - n ? gb : count - n);
      }
      int r = read_plain (ext, s, p, n, (uint64_t) gte * VDISK_SECTOR + in,
                          err);
      if (r < 0)
        return r;
    }
    p += n;
    off += n;
    count -= n;
  }
  return 0;
}

/* Set uncleanShutdown in the header before the first change of this
 * session (VMware does the same), durably, so a crash is visible. */
static int
mark_unclean (struct vdisk_extent *ext, struct sparse *s, struct vb_error *err)
{
  if (s->unclean_set)
    return 0;
  uint8_t one = 1;
  int r = vio_pwrite (ext->fd, &one, 1, KDMV_OFF_UNCLEAN);
  if (r == 0)
    r = vio_fsync (ext->fd);
  if (r < 0)
    return vb_errno (err, -r, "cannot write header of '%s'", ext_name (ext));
  s->raw_header[KDMV_OFF_UNCLEAN] = 1;
  s->unclean_set = true;
  return 0;
}

/* Point grain's table entry at val (in the cache; written on flush). */
static int
set_gte (struct vdisk_extent *ext, struct sparse *s, uint64_t grain,
         uint32_t val, struct vb_error *err)
{
  struct gt_slot *g;
  int r = gt_get (ext, s, (uint32_t) (grain / KDMV_GTES), true, &g, err);
  if (r < 0)
    return r;
  g->e[grain % KDMV_GTES] = val;
  g->dirty = true;
  s->gbuf_valid = false;
  return 0;
}

/* A buffer of one grain of zeros, allocated once. */
static const uint8_t *
zero_grain_buf (struct sparse *s)
{
  if (!s->zbuf)
    s->zbuf = calloc (1, s->grain_bytes);
  return s->zbuf;
}

/* Append a new grain holding data (n bytes at in, zeros elsewhere) and
 * point grain's entry at it. */
static int
write_new_grain (struct vdisk_extent *ext, struct sparse *s, uint64_t grain,
                 const uint8_t *data, size_t n, uint64_t in,
                 struct vb_error *err)
{
  uint64_t off = 0;
  int r = alloc_space (ext, s, s->grain_bytes, &off, err);
  if (r < 0)
    return r;
  if (in == 0 && n == s->grain_bytes) {
    r = vio_pwrite (ext->fd, data, n, off);
  } else {
    /* Partial grain (the extent's last grain, or a caller that did not
     * complete it): the rest reads as zeros. */
    uint8_t *tmp = calloc (1, s->grain_bytes);
    if (!tmp)
      return vb_errno (err, ENOMEM, "cannot write grain of '%s'",
                       ext_name (ext));
    memcpy (tmp + in, data, n);
    r = vio_pwrite (ext->fd, tmp, s->grain_bytes, off);
    free (tmp);
  }
  if (r < 0)
    return vb_errno (err, -r, "cannot write grain of '%s'", ext_name (ext));
  s->data_unsynced = true;
  return set_gte (ext, s, grain, (uint32_t) (off / VDISK_SECTOR), err);
}

/* Before writing into an allocated grain in place: a last grain cut
 * short by the end of the file is first completed with zeros, so the file
 * size new grains are allocated from lies past all of it (else the next
 * new grain would overlap it, and reads would miss what was written). */
static int
complete_grain (struct vdisk_extent *ext, struct sparse *s, uint32_t gte,
                struct vb_error *err)
{
  uint64_t end = (uint64_t) gte * VDISK_SECTOR + s->grain_bytes;
  if (end <= s->file_size)
    return 0;
  if (ftruncate (ext->fd, (off_t) end) < 0)
    return vb_errno (err, errno, "cannot complete the last grain of '%s'",
                     ext_name (ext));
  s->file_size = end;
  return 0;
}

/* Write bytes: in place into allocated grains, new grains at the end of
 * the file for the others (the core completed those to whole grains). */
static int
sparse_pwrite (struct vdisk_extent *ext, const void *buf, size_t count,
               uint64_t off, struct vb_error *err)
{
  struct sparse *s = ext->priv;
  s->flushed = false;                 /* a change since the last flush */
  if (s->w)
    return stream_writer_pwrite (ext, s, buf, count, off, err);
  if (s->read_only_fmt)
    return vb_err (err, ENOTSUP, "cannot modify the finished "
                   "streamOptimized extent '%s'", ext_name (ext));
  if (!s->writable)
    return vb_err (err, EROFS, "'%s' is open read-only", ext_name (ext));
  int r = mark_unclean (ext, s, err);
  if (r < 0)
    return r;
  const uint8_t *p = buf;
  uint64_t gb = s->grain_bytes;
  while (count > 0) {
    uint64_t g = off / gb, in = off % gb;
    size_t n = (size_t) (gb - in < count ? gb - in : count);
    uint32_t gte;
    bool pending;
    int st = sparse_lookup (ext, s, g, &gte, &pending, err);
    if (st < 0)
      return st;
    if (st == EXT_DATA) {
      r = complete_grain (ext, s, gte, err);
      if (r < 0)
        return r;
      r = vio_pwrite (ext->fd, p, n, (uint64_t) gte * VDISK_SECTOR + in);
      if (r < 0)
        return vb_errno (err, -r, "cannot write grain of '%s'",
                         ext_name (ext));
      s->data_unsynced = true;
    } else {
      r = write_new_grain (ext, s, g, p, n, in, err);
      if (r < 0)
        return r;
    }
    p += n;
    off += n;
    count -= n;
  }
  return 0;
}

/* Make a range read as zeros: zeroed-grain entries for whole grains when
 * the file supports them, zeros written in place otherwise. */
static int
sparse_zero (struct vdisk_extent *ext, uint64_t off, uint64_t count,
             bool has_parent, struct vb_error *err)
{
  struct sparse *s = ext->priv;
  s->flushed = false;                 /* a change since the last flush */
  if (s->w)
    return stream_writer_zero (ext, s, off, count, err);
  if (s->read_only_fmt)
    return vb_err (err, ENOTSUP, "cannot modify the finished "
                   "streamOptimized extent '%s'", ext_name (ext));
  if (!s->writable)
    return vb_err (err, EROFS, "'%s' is open read-only", ext_name (ext));
  int r = mark_unclean (ext, s, err);
  if (r < 0)
    return r;
  const uint8_t *z = zero_grain_buf (s);
  if (!z)
    return vb_errno (err, ENOMEM, "cannot zero '%s'", ext_name (ext));
  uint64_t gb = s->grain_bytes;
  while (count > 0) {
    uint64_t g = off / gb, in = off % gb;
    uint64_t n = gb - in < count ? gb - in : count;
    /* The last grain of the extent is whole when it reaches the end. */
    bool whole = in == 0 && (n == gb || off + n >= ext->length);
    uint32_t gte;
    bool pending;
    int st = sparse_lookup (ext, s, g, &gte, &pending, err);
    if (st < 0)
      return st;
    if (st == EXT_ZERO || (st == EXT_UNALLOC && !has_parent)) {
      /* already reads as zeros in this layer */
    } else if (whole && s->zero_grain) {
      r = set_gte (ext, s, g, 1, err);
      if (r < 0)
        return r;
    } else if (st == EXT_DATA) {
      r = complete_grain (ext, s, gte, err);
      if (r < 0)
        return r;
      r = vio_pwrite (ext->fd, z, (size_t) n,
                      (uint64_t) gte * VDISK_SECTOR + in);
      if (r < 0)
        return vb_errno (err, -r, "cannot zero grain of '%s'",
                         ext_name (ext));
      s->data_unsynced = true;
    } else if (whole) {
      /* Unallocated over a parent, no zeroed-grain support: store zeros. */
      r = write_new_grain (ext, s, g, z, (size_t) n, 0, err);
      if (r < 0)
        return r;
    } else {
      return vb_err (err, ENOTSUP, "cannot zero part of grain %llu of '%s': "
                     "its data lives in the parent",
                     (unsigned long long) g, ext_name (ext));
    }
    off += n;
    count -= n;
  }
  return 0;
}

/* Write dirty grain tables (after syncing the grains), then fsync. */
static int
sparse_sync (struct vdisk_extent *ext, struct sparse *s, struct vb_error *err)
{
  for (int i = 0; i < KDMV_GT_CACHE; i++) {
    struct gt_slot *g = &s->cache[i];
    if (g->valid && g->dirty) {
      int r = gt_writeout (ext, s, g, err);
      if (r < 0)
        return r;
    }
  }
  int r = vio_fsync (ext->fd);
  if (r < 0)
    return vb_errno (err, -r, "cannot sync '%s'", ext_name (ext));
  s->data_unsynced = false;
  return 0;
}

/* Flush: make every completed write durable and visible to other readers. */
static int
sparse_flush (struct vdisk_extent *ext, struct vb_error *err)
{
  struct sparse *s = ext->priv;
  if (!s->writable)
    return 0;
  if (s->w) {
    int r = vio_fsync (ext->fd);
    return r < 0 ? vb_errno (err, -r, "cannot sync '%s'", ext_name (ext)) : 0;
  }
  int r = sparse_sync (ext, s, err);
  s->flushed = r == 0;
  return r;
}

/* Close: flush tables, clear uncleanShutdown, finish a stream; free. */
static int
sparse_close (struct vdisk_extent *ext, struct vb_error *err)
{
  struct sparse *s = ext->priv;
  int r = 0;
  if (!s)
    return 0;
  if (s->writable) {
    if (s->w) {
      r = stream_writer_finish (ext, s, err);
    } else {
      /* the vdisk core flushes every writable extent just before closing
       * it; a second fsync would find nothing to do */
      r = s->flushed ? 0 : sparse_sync (ext, s, err);
      if (r == 0 && s->unclean_set) {
        uint8_t zero = 0;
        r = vio_pwrite (ext->fd, &zero, 1, KDMV_OFF_UNCLEAN);
        if (r == 0)
          r = vio_fsync (ext->fd);
        if (r < 0)
          vb_errno (err, -r, "cannot write header of '%s'", ext_name (ext));
      }
    }
  }
  sparse_free (s);
  ext->priv = NULL;
  return r;
}

/* Write count bytes of b at *pos, advancing *pos. */
static int
put_at (int fd, const void *b, size_t count, uint64_t *pos)
{
  int r = vio_pwrite (fd, b, count, *pos);
  *pos += count;
  return r;
}

/* Write a grain directory of n entries at sector `at`, whose tables
 * follow it contiguously (4 sectors each), in 64 KiB pieces. */
static int
create_write_gd (int fd, uint64_t at, uint64_t n, uint64_t gd_sectors)
{
  uint8_t buf[65536];
  uint64_t pos = at * VDISK_SECTOR, first_gt = at + gd_sectors;
  for (uint64_t i = 0; i < n;) {
    size_t k = 0;
    for (; k < sizeof buf / 4 && i < n; k++, i++)
      le32_put (buf + 4 * k, (uint32_t) (first_gt + i * KDMV_GT_SECTORS));
    int r = put_at (fd, buf, 4 * k, &pos);
    if (r < 0)
      return r;
  }
  return 0;
}

/* Create a fresh hosted sparse file laid out like VMware and qemu-img do:
 * header, embedded descriptor, redundant GD + its tables, GD + its tables,
 * then grains from overHead (rounded to a grain).  All tables are
 * preallocated (zero, as holes), so writes never need a new table. */
static int
sparse_create (const char *path, const struct ext_create *c,
               struct vb_error *err)
{
  uint64_t grain = c->grain_sectors ? c->grain_sectors : 128;
  if (grain < 8 || grain > KDMV_MAX_GRAIN_SECTORS || (grain & (grain - 1)))
    return vb_err (err, EINVAL, "invalid grain size %llu sectors for '%s' "
                   "(a power of two from 8 to %u)",
                   (unsigned long long) grain, path, KDMV_MAX_GRAIN_SECTORS);
  if (c->sectors > VDISK_MAX_SIZE / VDISK_SECTOR)
    return vb_err (err, EINVAL, "size of '%s' is too large (%llu sectors)",
                   path, (unsigned long long) c->sectors);
  size_t dlen = c->embedded_desc ? strlen (c->embedded_desc) : 0;
  uint64_t desc_sectors = c->embedded_desc ? KDMV_CREATE_DESC_SECTORS : 0;
  if (dlen > desc_sectors * VDISK_SECTOR)
    return vb_err (err, ENOSPC, "descriptor (%zu bytes) does not fit in the "
                   "%llu-sector area of '%s'", dlen,
                   (unsigned long long) desc_sectors, path);
  if (c->stream)
    return stream_create (path, c, grain, desc_sectors, err);

  /* n_gt <= 2^37 / 8 / 512 = 2^25 = KDMV_MAX_GD_ENTRIES with grain >= 8. */
  uint64_t n_grains = kdmv_div_round_up (c->sectors, grain);
  uint64_t n_gt = kdmv_div_round_up (n_grains, KDMV_GTES);
  uint64_t gd_sectors = kdmv_div_round_up (n_gt * 4, VDISK_SECTOR);
  struct kdmv_header h = {
    .version = 2,   /* zeroed-grain GTEs, as qemu-img -o zeroed_grain=on */
    .flags = KDMV_FLAG_NL_TEST | KDMV_FLAG_RGD | KDMV_FLAG_ZERO_GRAIN,
    .capacity = c->sectors,
    .grain = grain,
    .desc_off = desc_sectors ? 1 : 0,
    .desc_size = desc_sectors,
    .num_gtes = KDMV_GTES,
    .compress = KDMV_COMPRESS_NONE,
  };
  h.rgd_off = 1 + desc_sectors;
  h.gd_off = h.rgd_off + gd_sectors + n_gt * KDMV_GT_SECTORS;
  uint64_t meta_end = h.gd_off + gd_sectors + n_gt * KDMV_GT_SECTORS;
  h.overhead = kdmv_div_round_up (meta_end, grain) * grain;

  int fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return vb_errno (err, errno, "cannot create '%s'", path);
  uint8_t hdr[KDMV_HDR_SIZE];
  kdmv_header_format (&h, hdr);
  int r = vio_pwrite (fd, hdr, sizeof hdr, 0);
  if (r == 0 && dlen)
    r = vio_pwrite (fd, c->embedded_desc, dlen, VDISK_SECTOR);
  if (r == 0)
    r = create_write_gd (fd, h.rgd_off, n_gt, gd_sectors);
  if (r == 0)
    r = create_write_gd (fd, h.gd_off, n_gt, gd_sectors);
  if (r == 0 && ftruncate (fd, (off_t) (h.overhead * VDISK_SECTOR)) < 0)
    r = -errno;
  if (r == 0)
    r = vio_fsync (fd);
  close (fd);
  if (r < 0) {
    unlink (path);
    return vb_errno (err, -r, "cannot write '%s'", path);
  }
  return 0;
}

/* Return the embedded descriptor text, or NULL when there is none. */
static int
sparse_read_embedded_desc (struct vdisk_extent *ext, char **out,
                           struct vb_error *err)
{
  struct sparse *s = ext->priv;
  *out = NULL;
  if (s->h.desc_off == 0 || s->h.desc_size == 0)
    return 0;
  /* desc_size <= KDMV_MAX_DESC_SECTORS: at most 1 MiB. */
  size_t n = (size_t) (s->h.desc_size * VDISK_SECTOR);
  char *buf = malloc (n + 1);
  if (!buf)
    return vb_errno (err, ENOMEM, "cannot read descriptor of '%s'",
                     ext_name (ext));
  int r = vio_pread (ext->fd, buf, n, s->h.desc_off * VDISK_SECTOR);
  if (r < 0) {
    free (buf);
    return vb_errno (err, -r, "cannot read descriptor of '%s'",
                     ext_name (ext));
  }
  buf[n] = '\0';
  if (buf[0] == '\0') {
    /* An empty area (qemu-img reserves one in split extents too). */
    free (buf);
    return 0;
  }
  char *t = strdup (buf);   /* up to the first NUL: the padding */
  free (buf);
  if (!t)
    return vb_errno (err, ENOMEM, "cannot read descriptor of '%s'",
                     ext_name (ext));
  *out = t;
  return 0;
}

/* Rewrite the embedded descriptor in place, zero padded. */
static int
sparse_write_embedded_desc (struct vdisk_extent *ext, const char *text,
                            struct vb_error *err)
{
  struct sparse *s = ext->priv;
  s->flushed = false;                 /* a change since the last flush */
  if (!s->writable)
    return vb_err (err, EROFS, "'%s' is open read-only", ext_name (ext));
  size_t len = strlen (text);
  size_t n = (size_t) (s->h.desc_size * VDISK_SECTOR);
  if (s->h.desc_off == 0 || len > n)
    return vb_err (err, ENOSPC, "descriptor (%zu bytes) does not fit in the "
                   "%llu-sector area of '%s'", len,
                   (unsigned long long) s->h.desc_size, ext_name (ext));
  char *buf = calloc (1, n);
  if (!buf)
    return vb_errno (err, ENOMEM, "cannot write descriptor of '%s'",
                     ext_name (ext));
  memcpy (buf, text, len);
  int r = vio_pwrite (ext->fd, buf, n, s->h.desc_off * VDISK_SECTOR);
  free (buf);
  if (r == 0)
    r = vio_fsync (ext->fd);
  if (r < 0)
    return vb_errno (err, -r, "cannot write descriptor of '%s'",
                     ext_name (ext));
  return 0;
}

/* Count data entries of one table (grains below n_grains only). */
static uint64_t
count_data (const struct sparse *s, uint32_t gdi, const uint32_t *e)
{
  uint64_t c = 0;
  for (unsigned i = 0; i < KDMV_GTES; i++) {
    uint64_t grain = (uint64_t) gdi * KDMV_GTES + i;
    if (grain >= s->n_grains)
      break;
    if (e[i] >= 2 || (e[i] == 1 && !s->zero_grain))
      c++;
  }
  return c;
}

/* Bytes of allocated grains (uncompressed size for streams). */
static uint64_t
sparse_allocated (struct vdisk_extent *ext)
{
  struct sparse *s = ext->priv;
  struct vb_error e = { 0 };
  uint64_t grains = 0;
  if (s->stream_empty && !s->w)
    return 0;
  for (uint32_t gdi = 0; gdi < s->n_gd; gdi++) {
    if (s->w && gdi == s->w->cur_gdi) {
      grains += count_data (s, gdi, s->w->gt);
      continue;
    }
    if (s->gd[gdi] == 0)
      continue;
    struct gt_slot *g;
    if (gt_get (ext, s, gdi, false, &g, &e) < 0) {
      vb_debug ("allocated: %s", e.msg);
      break;
    }
    if (g)
      grains += count_data (s, gdi, g->e);
  }
  if (s->w && s->w->pend_used && !vio_is_zero (s->w->pend, s->grain_bytes))
    grains++;
  uint64_t bytes = grains * s->grain_bytes;
  return bytes > ext->length ? ext->length : bytes;
}

/* --- check / repair ------------------------------------------------------ */

#define CHECK_MAX_REPORTS 1000

struct checker {
  struct vdisk_extent *ext;
  struct sparse *s;
  vdisk_report_fn report;
  void *opaque;
  int problems;
  int unrepaired;
  /* plain grains in use (sector numbers), for overlap detection */
  uint32_t *grains;
  size_t n_grains, cap_grains;
  bool grains_overflow;
  /* metadata areas */
  struct area { uint64_t start, len; const char *what; uint32_t idx; } *meta;
  size_t n_meta, cap_meta;
};

/* Report one problem (the first CHECK_MAX_REPORTS are printed). */
static void
problem (struct checker *k, bool repaired, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* (definition) */
static void
problem (struct checker *k, bool repaired, const char *fmt, ...)
{
  k->problems++;
  if (!repaired)
    k->unrepaired++;
  if (k->problems > CHECK_MAX_REPORTS || !k->report)
    return;
  char msg[VB_ERROR_MAX];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (repaired && n > 0 && (size_t) n < sizeof msg)
    snprintf (msg + n, sizeof msg - (size_t) n, " (repaired)");
  k->report (k->opaque, msg);
}

/* Remember a metadata area. */
static int
add_meta (struct checker *k, uint64_t start, uint64_t len, const char *what,
          uint32_t idx)
{
  if (len == 0)
    return 0;
  if (k->n_meta == k->cap_meta) {
    size_t nc = k->cap_meta ? k->cap_meta * 2 : 64;
    void *p = realloc (k->meta, nc * sizeof *k->meta);
    if (!p)
      return -ENOMEM;
    k->meta = p;
    k->cap_meta = nc;
  }
  k->meta[k->n_meta++] = (struct area) { start, len, what, idx };
  return 0;
}

/* Remember a plain grain's sector.  A valid file cannot hold more grains
 * than file_size / grain_bytes, so beyond that some must overlap and we
 * stop collecting (this caps the array at file_size / 16384 bytes for
 * 64 KiB grains). */
static int
add_grain (struct checker *k, uint32_t sector)
{
  if (k->grains_overflow)
    return 0;
  if (k->n_grains >= k->s->file_size / k->s->grain_bytes + 1) {
    k->grains_overflow = true;
    return 0;
  }
  if (k->n_grains == k->cap_grains) {
    size_t nc = k->cap_grains ? k->cap_grains * 2 : 1024;
    void *p = realloc (k->grains, nc * sizeof *k->grains);
    if (!p)
      return -ENOMEM;
    k->grains = p;
    k->cap_grains = nc;
  }
  k->grains[k->n_grains++] = sector;
  return 0;
}

/* Is a GD entry a usable table location? */
static bool
gt_loc_ok (const struct sparse *s, uint32_t e)
{
  return e >= 1 && (uint64_t) e * VDISK_SECTOR + KDMV_GT_BYTES <= s->file_size;
}

/* Check one table entry; returns true when it is valid. */
static bool
gte_ok (struct checker *k, uint64_t grain, uint32_t e, bool report_it,
        const char *copy)
{
  struct sparse *s = k->s;
  const char *name = ext_name (k->ext);
  if (e == 0 || (e == 1 && s->zero_grain))
    return true;
  if (e < s->h.overhead) {
    if (report_it)
      problem (k, false, "%sgrain table entry of grain %llu in '%s' points "
               "into the metadata (sector %u)", copy,
               (unsigned long long) grain, name, e);
    return false;
  }
  if ((uint64_t) e * VDISK_SECTOR >= s->file_size) {
    if (report_it)
      problem (k, false, "%sgrain table entry of grain %llu in '%s' points "
               "past the end of the file (sector %u)", copy,
               (unsigned long long) grain, name, e);
    return false;
  }
  uint64_t end = (uint64_t) e * VDISK_SECTOR + s->grain_bytes;
  if (s->compressed) {
    struct vb_error ge = { 0 };
    if (stream_grain_extent (k->ext, s, grain, e, &end, &ge) < 0) {
      if (report_it)
        problem (k, false, "%s%s", copy, ge.msg);
      return false;
    }
    return true;
  }
  if (end > s->file_size) {
    if (report_it)
      problem (k, false, "%sgrain %llu of '%s' at sector %u extends past the "
               "end of the file", copy, (unsigned long long) grain, name, e);
    return false;
  }
  return true;
}

/* Read a table from disk into host order. */
static int
read_gt_raw (struct vdisk_extent *ext, uint32_t sector, uint32_t *e)
{
  uint8_t buf[KDMV_GT_BYTES];
  int r = vio_pread (ext->fd, buf, sizeof buf, (uint64_t) sector * VDISK_SECTOR);
  if (r < 0)
    return r;
  for (unsigned i = 0; i < KDMV_GTES; i++)
    e[i] = le32_get (buf + 4 * i);
  return 0;
}

/* Write a table (host order) to sector. */
static int
write_gt_raw (struct vdisk_extent *ext, uint32_t sector, const uint32_t *e)
{
  uint8_t buf[KDMV_GT_BYTES];
  for (unsigned i = 0; i < KDMV_GTES; i++)
    le32_put (buf + 4 * i, e[i]);
  return vio_pwrite (ext->fd, buf, sizeof buf, (uint64_t) sector * VDISK_SECTOR);
}

/* Give directory entry gdi of the primary (or redundant) GD a fresh table
 * at the end of the file holding e. */
static int
repair_relocate (struct checker *k, uint32_t gdi, bool redundant,
                 const uint32_t *e, struct vb_error *err)
{
  struct sparse *s = k->s;
  uint64_t off = 0;
  int r = alloc_space (k->ext, s, KDMV_GT_BYTES, &off, err);
  if (r < 0)
    return r;
  uint32_t sec = (uint32_t) (off / VDISK_SECTOR);
  r = write_gt_raw (k->ext, sec, e);
  if (r == 0)
    r = vio_fsync (k->ext->fd);
  uint8_t le[4];
  le32_put (le, sec);
  uint64_t dir = redundant ? s->h.rgd_off : s->h.gd_off;
  if (r == 0)
    r = vio_pwrite (k->ext->fd, le, 4, dir * VDISK_SECTOR + 4 * (uint64_t) gdi);
  if (r < 0)
    return vb_errno (err, -r, "cannot repair grain directory of '%s'",
                     ext_name (k->ext));
  if (redundant)
    s->rgd[gdi] = sec;
  else
    s->gd[gdi] = sec;
  return 0;
}

/* Check (and maybe repair) the tables of directory entry gdi. */
static int
check_gt (struct checker *k, uint32_t gdi, bool repair, uint32_t *pgt,
          uint32_t *rgt, struct vb_error *err)
{
  struct sparse *s = k->s;
  struct vdisk_extent *ext = k->ext;
  const char *name = ext_name (ext);
  uint32_t pe = s->gd[gdi], re = s->rgd ? s->rgd[gdi] : 0;
  bool p_has = false, r_has = false, p_ok = true, r_ok = true;
  int rr;

  if (pe != 0) {
    if (!gt_loc_ok (s, pe)) {
      problem (k, false, "grain directory entry %u of '%s' points past the "
               "end of the file (sector %u)", gdi, name, pe);
      p_ok = false;
    } else if ((rr = read_gt_raw (ext, pe, pgt)) < 0) {
      return vb_errno (err, -rr, "cannot read grain table of '%s'", name);
    } else {
      p_has = true;
    }
  }
  if (s->rgd && re != 0) {
    if (!gt_loc_ok (s, re)) {
      problem (k, false, "redundant grain directory entry %u of '%s' points "
               "past the end of the file (sector %u)", gdi, name, re);
      r_ok = false;
    } else if ((rr = read_gt_raw (ext, re, rgt)) < 0) {
      return vb_errno (err, -rr, "cannot read redundant grain table of '%s'",
                       name);
    } else {
      r_has = true;
    }
  }
  if (p_has) {
    for (unsigned i = 0; i < KDMV_GTES; i++)
      if (!gte_ok (k, (uint64_t) gdi * KDMV_GTES + i, pgt[i], true, ""))
        p_ok = false;
  }
  if (r_has) {
    for (unsigned i = 0; i < KDMV_GTES; i++)
      if (!gte_ok (k, (uint64_t) gdi * KDMV_GTES + i, rgt[i], true,
                   "redundant "))
        r_ok = false;
  }
  if (p_has)
    add_meta (k, pe, KDMV_GT_SECTORS, "grain table", gdi);
  if (r_has)
    add_meta (k, re, KDMV_GT_SECTORS, "redundant grain table", gdi);

  /* Compare the two copies. */
  if (s->rgd) {
    bool differ;
    if (p_has && r_has)
      differ = memcmp (pgt, rgt, KDMV_GT_BYTES) != 0;
    else
      differ = (pe != 0) != (re != 0) || !p_ok || !r_ok;
    if (differ && (pe != 0 || re != 0)) {
      /* The intact copy wins; if both are intact the primary does (we and
       * VMware write it first, so it is the newer one after a crash). */
      bool use_p = p_has && p_ok, use_r = r_has && r_ok;
      bool fixed = false;
      if (repair && (use_p || use_r)) {
        const uint32_t *src = use_p ? pgt : rgt;
        bool to_red = use_p;
        uint32_t dst = to_red ? re : pe;
        if (gt_loc_ok (s, dst) && dst != (to_red ? pe : re)) {
          rr = write_gt_raw (ext, dst, src);
          if (rr < 0)
            return vb_errno (err, -rr, "cannot repair grain table of '%s'",
                             name);
        } else {
          rr = repair_relocate (k, gdi, to_red, src, err);
          if (rr < 0)
            return rr;
        }
        fixed = true;
      }
      if (p_has && r_has && p_ok && r_ok)
        problem (k, fixed, "grain table %u of '%s' differs from its redundant "
                 "copy", gdi, name);
      else if (!use_p && !use_r)
        problem (k, false, "cannot repair grain table %u of '%s': both copies "
                 "are damaged", gdi, name);
      else
        problem (k, fixed, "%s grain table %u of '%s' is damaged or missing",
                 use_p ? "redundant" : "primary", gdi, name);
    }
  }

  /* Collect the grains of the copy we trust, for overlap checks. */
  const uint32_t *use = (p_has && (p_ok || !r_has || !r_ok)) ? pgt
                        : r_has ? rgt : NULL;
  if (use && !s->compressed) {
    for (unsigned i = 0; i < KDMV_GTES; i++)
      if (gte_ok (k, (uint64_t) gdi * KDMV_GTES + i, use[i], false, "")
          && use[i] >= 2 && add_grain (k, use[i]) < 0)
        return vb_errno (err, ENOMEM, "cannot check '%s'", name);
  }
  return 0;
}

/* qsort order of sector numbers. */
static int
cmp_u32 (const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
  return x < y ? -1 : x > y;
}

/* qsort order of metadata areas by start. */
static int
cmp_area (const void *a, const void *b)
{
  const struct area *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* Find overlaps between metadata areas, between grains, and between
 * grains and metadata allocated after overHead (grain tables added later). */
static void
check_overlaps (struct checker *k)
{
  const char *name = ext_name (k->ext);
  uint64_t gs = k->s->h.grain;
  if (k->n_meta > 1)
    qsort (k->meta, k->n_meta, sizeof *k->meta, cmp_area);
  for (size_t i = 1; i < k->n_meta; i++) {
    struct area *a = &k->meta[i - 1], *b = &k->meta[i];
    if (b->start < a->start + a->len)
      problem (k, false, "%s %u and %s %u of '%s' overlap at sector %llu",
               a->what, a->idx, b->what, b->idx, name,
               (unsigned long long) b->start);
  }
  if (k->grains_overflow)
    problem (k, false, "'%s' has more grains than fit in the file: grains "
             "overlap", name);
  if (k->n_grains > 1)
    qsort (k->grains, k->n_grains, sizeof *k->grains, cmp_u32);
  for (size_t i = 1; i < k->n_grains; i++)
    if (k->grains[i] < k->grains[i - 1] + gs)
      problem (k, false, "two grains of '%s' overlap at sector %u", name,
               k->grains[i]);
  /* Merge walk: grains vs metadata, both sorted by start. */
  size_t m = 0;
  for (size_t i = 0; i < k->n_grains; i++) {
    uint64_t gsec = k->grains[i];
    while (m < k->n_meta && k->meta[m].start + k->meta[m].len <= gsec)
      m++;
    for (size_t j = m; j < k->n_meta && k->meta[j].start < gsec + gs; j++)
      problem (k, false, "grain at sector %llu of '%s' overlaps %s %u",
               (unsigned long long) gsec, name, k->meta[j].what,
               k->meta[j].idx);
  }
}

/* Structural check of the extent; see the contract in vdisk-int.h. */
static int
sparse_check (struct vdisk_extent *ext, bool repair, vdisk_report_fn report,
              void *opaque, struct vb_error *err)
{
  struct sparse *s = ext->priv;
  s->flushed = false;                 /* a change since the last flush */
  const char *name = ext_name (ext);
  if (s->w || s->stream_empty)
    return 0;   /* nothing on disk to check yet */
  if (repair && !s->writable)
    return vb_err (err, EROFS, "cannot repair '%s': opened read-only", name);
  if (repair && s->compressed)
    repair = false;   /* streams have no redundant copy to repair from */
  int r;
  if (s->writable && !s->compressed) {
    r = sparse_sync (ext, s, err);   /* the disk must show our tables */
    if (r < 0)
      return r;
  }
  struct checker k = { .ext = ext, .s = s, .report = report,
                       .opaque = opaque };
  uint32_t *pgt = malloc (KDMV_GT_BYTES), *rgt = malloc (KDMV_GT_BYTES);
  if (!pgt || !rgt) {
    r = vb_errno (err, ENOMEM, "cannot check '%s'", name);
    goto out;
  }
  uint64_t gd_sectors = kdmv_div_round_up ((uint64_t) s->n_gd * 4,
                                           VDISK_SECTOR);
  if (add_meta (&k, 0, 1, "header", 0) < 0
      || add_meta (&k, s->h.desc_off, s->h.desc_size, "descriptor", 0) < 0
      || add_meta (&k, s->h.gd_off, gd_sectors, "grain directory", 0) < 0
      || (s->rgd && add_meta (&k, s->h.rgd_off, gd_sectors,
                              "redundant grain directory", 0) < 0)) {
    r = vb_errno (err, ENOMEM, "cannot check '%s'", name);
    goto out;
  }
  for (uint32_t gdi = 0; gdi < s->n_gd; gdi++) {
    r = check_gt (&k, gdi, repair, pgt, rgt, err);
    if (r < 0)
      goto out;
  }
  check_overlaps (&k);
  if (repair && k.problems > 0) {
    /* Tables may have moved or changed: drop the cache. */
    for (int i = 0; i < KDMV_GT_CACHE; i++)
      s->cache[i].valid = false;
    s->gbuf_valid = false;
    r = vio_fsync (ext->fd);
    if (r < 0) {
      vb_errno (err, -r, "cannot sync '%s'", name);
      goto out;
    }
  }
  if (s->h.unclean && !s->unclean_set) {
    /* Clear the flag only when everything else is sound now. */
    bool fix = repair && k.unrepaired == 0;
    if (fix) {
      uint8_t zero = 0;
      r = vio_pwrite (ext->fd, &zero, 1, KDMV_OFF_UNCLEAN);
      if (r == 0)
        r = vio_fsync (ext->fd);
      if (r < 0) {
        vb_errno (err, -r, "cannot write header of '%s'", name);
        goto out;
      }
      s->h.unclean = 0;
      s->raw_header[KDMV_OFF_UNCLEAN] = 0;
    }
    problem (&k, fix, "'%s' was not closed cleanly (uncleanShutdown is set)",
             name);
  }
  r = k.problems;
out:
  free (pgt);
  free (rgt);
  free (k.grains);
  free (k.meta);
  return r;
}

const struct vdisk_extent_ops vdisk_sparse_ops = {
  .name               = "sparse",
  .kind               = VMDK_EXT_SPARSE,
  .probe              = sparse_probe,
  .open               = sparse_open,
  .close              = sparse_close,
  .status             = sparse_status,
  .pread              = sparse_pread,
  .pwrite             = sparse_pwrite,
  .zero               = sparse_zero,
  .flush              = sparse_flush,
  .create             = sparse_create,
  .read_embedded_desc = sparse_read_embedded_desc,
  .write_embedded_desc = sparse_write_embedded_desc,
  .allocated          = sparse_allocated,
  .check              = sparse_check,
  .resize             = NULL,
  .shrink             = NULL,
};
