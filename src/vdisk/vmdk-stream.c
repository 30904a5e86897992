/* vmback vdisk: streamOptimized hosted sparse extents.
 *
 * Reading: compressed grains ({u64 lba, u32 size} marker + zlib data),
 * and the footer that holds the real grain directory offset when the
 * header says GD_AT_END.
 *
 * Writing: create() leaves a header (GD_AT_END) and the descriptor, with
 * the file ending exactly at overHead.  open() of such a file for writing
 * enters "stream writer" mode: writes must come in increasing offset
 * order; each finished non-zero grain is deflated and appended behind a
 * grain marker, each grain table is appended (behind a GT marker) when the
 * writer moves past it, and close() appends the grain directory, the
 * footer and the end-of-stream marker, as VMware does.  See
 * docs/vdisk-sparse.md. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "vmdk-sparse-int.h"

/* Name used in messages (same rule as vmdk-sparse.c). */
static const char *
sname (const struct vdisk_extent *ext)
{
  if (ext->name && ext->name[0])
    return ext->name;
  return ext->path ? ext->path : "(sparse extent)";
}

/* Largest compressed grain we accept: deflate never expands a grain by
 * more than compressBound's few bytes per 16 KiB; allow twice the grain
 * plus 4 KiB for other encoders.  With the 2 MiB grain cap: <= 4 MiB. */
static size_t
max_compressed (const struct sparse *s)
{
  return (size_t) s->grain_bytes * 2 + 4096;
}

/* Locate the footer of a GD_AT_END file: footer marker, footer (a copy of
 * the header with the real gdOffset), end-of-stream marker, in the last
 * three sectors.  The footer replaces s->h. */
int
stream_read_footer (struct vdisk_extent *ext, struct sparse *s,
                    struct vb_error *err)
{
  const char *name = sname (ext);
  uint64_t end = s->file_size / VDISK_SECTOR * VDISK_SECTOR;
  if (end < s->h.overhead * VDISK_SECTOR + 3 * VDISK_SECTOR)
    return vb_err (err, EINVAL, "streamOptimized extent '%s' has no footer "
                   "(file truncated or not finished)", name);
  uint8_t b[3 * VDISK_SECTOR];
  int r = vio_pread (ext->fd, b, sizeof b, end - sizeof b);
  if (r < 0)
    return vb_errno (err, -r, "cannot read footer of '%s'", name);
  const uint8_t *fm = b, *ft = b + VDISK_SECTOR, *eos = b + 2 * VDISK_SECTOR;
  if (le64_get (eos) != 0 || le32_get (eos + 8) != 0
      || le32_get (eos + 12) != KDMV_MARKER_EOS)
    return vb_err (err, EINVAL, "streamOptimized extent '%s' has no "
                   "end-of-stream marker (file truncated or not finished)",
                   name);
  if (le32_get (fm + 8) != 0 || le32_get (fm + 12) != KDMV_MARKER_FOOTER)
    return vb_err (err, EINVAL, "streamOptimized extent '%s' has no footer "
                   "marker", name);
  struct kdmv_header f;
  r = kdmv_header_parse (ft, name, "footer", s->file_size, ext->writable, &f,
                         err);
  if (r < 0)
    return r;
  if (f.capacity != s->h.capacity || f.grain != s->h.grain)
    return vb_err (err, EINVAL, "footer of '%s' disagrees with its header "
                   "(capacity %llu/%llu, grain %llu/%llu sectors)", name,
                   (unsigned long long) f.capacity,
                   (unsigned long long) s->h.capacity,
                   (unsigned long long) f.grain,
                   (unsigned long long) s->h.grain);
  if (f.compress != KDMV_COMPRESS_DEFLATE)
    return vb_err (err, EINVAL, "footer of '%s' does not describe compressed "
                   "grains", name);
  s->h = f;
  return 0;
}

/* Grow s->cbuf to at least n bytes. */
static int
cbuf_reserve (struct sparse *s, size_t n)
{
  if (s->cbuf_size >= n)
    return 0;
  void *p = realloc (s->cbuf, n);
  if (!p)
    return -ENOMEM;
  s->cbuf = p;
  s->cbuf_size = n;
  return 0;
}

/* Validate the marker of a compressed grain and compute where its data
 * start and end.  *data gets the offset of the zlib stream, *size its
 * length (an upper bound when the file has no markers). */
static int
grain_locate (struct vdisk_extent *ext, struct sparse *s, uint64_t grain,
              uint32_t gte, uint64_t *data, size_t *size, struct vb_error *err)
{
  const char *name = sname (ext);
  uint64_t off = (uint64_t) gte * VDISK_SECTOR;
  if (!s->markers) {
    uint64_t avail = s->file_size > off ? s->file_size - off : 0;
    *data = off;
    *size = (size_t) (avail < max_compressed (s) ? avail : max_compressed (s));
    if (*size == 0)
      return vb_err (err, EIO, "compressed grain %llu of '%s' lies past the "
                     "end of the file", (unsigned long long) grain, name);
    return 0;
  }
  if (off + KDMV_GRAIN_MARKER_SIZE > s->file_size)
    return vb_err (err, EIO, "grain marker of grain %llu in '%s' lies past "
                   "the end of the file", (unsigned long long) grain, name);
  uint8_t m[KDMV_GRAIN_MARKER_SIZE];
  int r = vio_pread (ext->fd, m, sizeof m, off);
  if (r < 0)
    return vb_errno (err, -r, "cannot read grain marker of '%s'", name);
  uint64_t lba = le64_get (m);
  uint32_t len = le32_get (m + 8);
  if (lba != grain * s->h.grain)
    return vb_err (err, EIO, "grain marker at sector %u of '%s' is for "
                   "sector %llu, expected %llu", gte, name,
                   (unsigned long long) lba,
                   (unsigned long long) (grain * s->h.grain));
  if (len == 0 || len > max_compressed (s))
    return vb_err (err, EIO, "grain marker at sector %u of '%s' has an "
                   "invalid size (%u bytes)", gte, name, len);
  if (off + KDMV_GRAIN_MARKER_SIZE + len > s->file_size)
    return vb_err (err, EIO, "compressed grain %llu of '%s' extends past the "
                   "end of the file", (unsigned long long) grain, name);
  *data = off + KDMV_GRAIN_MARKER_SIZE;
  *size = len;
  return 0;
}

/* Bounds of a compressed grain for check(). */
int
stream_grain_extent (struct vdisk_extent *ext, struct sparse *s,
                     uint64_t grain, uint32_t gte, uint64_t *end,
                     struct vb_error *err)
{
  uint64_t data = 0;
  size_t size = 0;
  int r = grain_locate (ext, s, grain, gte, &data, &size, err);
  if (r < 0)
    return r;
  *end = data + size;
  return 0;
}

/* Inflate grain (table entry gte) into s->gbuf, keeping the last one. */
int
stream_load_grain (struct vdisk_extent *ext, struct sparse *s, uint64_t grain,
                   uint32_t gte, struct vb_error *err)
{
  const char *name = sname (ext);
  if (s->gbuf_valid && s->gbuf_grain == grain)
    return 0;
  s->gbuf_valid = false;
  if (!s->gbuf) {
    s->gbuf = malloc (s->grain_bytes);
    if (!s->gbuf)
      return vb_errno (err, ENOMEM, "cannot read grain of '%s'", name);
  }
  uint64_t data = 0;
  size_t size = 0;
  int r = grain_locate (ext, s, grain, gte, &data, &size, err);
  if (r < 0)
    return r;
  if (cbuf_reserve (s, size) < 0)
    return vb_errno (err, ENOMEM, "cannot read grain of '%s'", name);
  r = vio_pread (ext->fd, s->cbuf, size, data);
  if (r < 0)
    return vb_errno (err, -r, "cannot read compressed grain of '%s'", name);
  uLongf dlen = s->grain_bytes;
  int z = uncompress (s->gbuf, &dlen, s->cbuf, (uLong) size);
  if (z != Z_OK)
    return vb_err (err, EIO, "cannot decompress grain %llu of '%s' (%s)",
                   (unsigned long long) grain, name,
                   z == Z_BUF_ERROR ? "data larger than a grain or truncated"
                   : z == Z_DATA_ERROR ? "corrupt data" : "zlib error");
  s->gbuf_len = (uint32_t) dlen;
  s->gbuf_grain = grain;
  s->gbuf_valid = true;
  return 0;
}

/* --- writer ------------------------------------------------------------ */

/* Release the writer state. */
void
stream_writer_free (struct stream_writer *w)
{
  if (!w)
    return;
  free (w->pend);
  free (w->cbuf);
  free (w);
}

/* Enter writer mode on a file that ends at overHead (create()'s output). */
int
stream_writer_start (struct vdisk_extent *ext, struct sparse *s,
                     struct vb_error *err)
{
  struct stream_writer *w = calloc (1, sizeof *w);
  if (!w)
    return vb_errno (err, ENOMEM, "cannot open '%s'", sname (ext));
  /* record = 12-byte marker + compressed grain, rounded to a sector */
  w->cbuf_size = (KDMV_GRAIN_MARKER_SIZE + compressBound (s->grain_bytes)
                  + VDISK_SECTOR - 1) / VDISK_SECTOR * VDISK_SECTOR;
  w->pend = calloc (1, s->grain_bytes);
  w->cbuf = malloc (w->cbuf_size);
  if (!w->pend || !w->cbuf) {
    stream_writer_free (w);
    return vb_errno (err, ENOMEM, "cannot open '%s'", sname (ext));
  }
  w->next = s->file_size;
  w->level = Z_DEFAULT_COMPRESSION;
  s->w = w;
  return 0;
}

/* Append buf at w->next (sector aligned records). */
static int
append (struct vdisk_extent *ext, struct sparse *s, const void *buf,
        size_t n, struct vb_error *err)
{
  struct stream_writer *w = s->w;
  if ((w->next + n) / VDISK_SECTOR > KDMV_MAX_FILE_SECTORS)
    return vb_err (err, EFBIG, "streamOptimized extent '%s' is full (grains "
                   "cannot start beyond 2 TiB)", sname (ext));
  int r = vio_pwrite (ext->fd, buf, n, w->next);
  if (r < 0)
    return vb_errno (err, -r, "cannot write '%s'", sname (ext));
  w->next += n;
  s->file_size = w->next;
  return 0;
}

/* Write a metadata marker sector: {u64 sectors, u32 0, u32 type}. */
static int
append_marker (struct vdisk_extent *ext, struct sparse *s, uint64_t sectors,
               uint32_t type, struct vb_error *err)
{
  uint8_t m[VDISK_SECTOR] = { 0 };
  le64_put (m, sectors);
  le32_put (m + 12, type);
  return append (ext, s, m, sizeof m, err);
}

/* Append the current grain table (if it maps anything) behind a GT
 * marker and record it in the grain directory. */
static int
flush_gt (struct vdisk_extent *ext, struct sparse *s, struct vb_error *err)
{
  struct stream_writer *w = s->w;
  if (!w->gt_used)
    return 0;
  int r = append_marker (ext, s, KDMV_GT_SECTORS, KDMV_MARKER_GT, err);
  if (r < 0)
    return r;
  uint8_t buf[KDMV_GT_BYTES];
  for (unsigned i = 0; i < KDMV_GTES; i++)
    le32_put (buf + 4 * i, w->gt[i]);
  uint64_t at = w->next;
  r = append (ext, s, buf, sizeof buf, err);
  if (r < 0)
    return r;
  s->gd[w->cur_gdi] = (uint32_t) (at / VDISK_SECTOR);
  memset (w->gt, 0, sizeof w->gt);
  w->gt_used = false;
  return 0;
}

/* Compress and append the pending grain unless it is all zeros. */
static int
flush_pending (struct vdisk_extent *ext, struct sparse *s,
               struct vb_error *err)
{
  struct stream_writer *w = s->w;
  if (!w->pend_used)
    return 0;
  w->pend_used = false;
  uint64_t g = w->pend_grain;
  if (vio_is_zero (w->pend, s->grain_bytes))
    return 0;
  uint32_t gdi = (uint32_t) (g / KDMV_GTES);
  int r;
  if (gdi != w->cur_gdi) {
    r = flush_gt (ext, s, err);
    if (r < 0)
      return r;
    w->cur_gdi = gdi;
  }
  /* The last grain of a disk whose size is not a multiple of the grain
   * is compressed whole, zero padded, so any reader can inflate it into
   * a grain-sized buffer. */
  uLongf clen = w->cbuf_size - KDMV_GRAIN_MARKER_SIZE;
  int z = compress2 (w->cbuf + KDMV_GRAIN_MARKER_SIZE, &clen, w->pend,
                     s->grain_bytes, w->level);
  if (z != Z_OK)
    return vb_err (err, EIO, "cannot compress grain %llu of '%s' (zlib error "
                   "%d)", (unsigned long long) g, sname (ext), z);
  le64_put (w->cbuf, g * s->h.grain);
  le32_put (w->cbuf + 8, (uint32_t) clen);
  size_t rec = KDMV_GRAIN_MARKER_SIZE + clen;
  size_t padded = (rec + VDISK_SECTOR - 1) / VDISK_SECTOR * VDISK_SECTOR;
  memset (w->cbuf + rec, 0, padded - rec);
  uint64_t at = w->next;
  r = append (ext, s, w->cbuf, padded, err);
  if (r < 0)
    return r;
  w->gt[g % KDMV_GTES] = (uint32_t) (at / VDISK_SECTOR);
  w->gt_used = true;
  return 0;
}

/* Sequential write: bytes go into the pending grain, which is compressed
 * and appended when a later grain is started (or at close).  A write may
 * start anywhere at or after the end of the previous one, or inside the
 * pending grain (the core completes a partial grain to a whole one and
 * then writes the rest of it). */
int
stream_writer_pwrite (struct vdisk_extent *ext, struct sparse *s,
                      const uint8_t *buf, size_t count, uint64_t off,
                      struct vb_error *err)
{
  struct stream_writer *w = s->w;
  uint64_t gb = s->grain_bytes;
  if (w->finished)
    return vb_err (err, EIO, "streamOptimized extent '%s' is already "
                   "finished", sname (ext));
  bool in_pending = w->pend_used && off / gb == w->pend_grain;
  if (off < w->cursor && !in_pending)
    return vb_err (err, ENOTSUP, "streamOptimized extents can only be "
                   "written sequentially: write at offset %llu of '%s' after "
                   "offset %llu", (unsigned long long) off, sname (ext),
                   (unsigned long long) w->cursor);
  while (count > 0) {
    uint64_t g = off / gb, in = off % gb;
    size_t n = (size_t) (gb - in < count ? gb - in : count);
    if (!w->pend_used || w->pend_grain != g) {
      int r = flush_pending (ext, s, err);
      if (r < 0)
        return r;
      memset (w->pend, 0, gb);
      w->pend_grain = g;
      w->pend_used = true;
    }
    memcpy (w->pend + in, buf, n);
    buf += n;
    off += n;
    count -= n;
    if (off > w->cursor)
      w->cursor = off;
  }
  s->gbuf_valid = false;
  return 0;
}

/* Zeroing ahead of the writer is a no-op: unwritten grains read as zeros
 * (a streamOptimized extent has no parent); inside the pending grain the
 * buffer is cleared.  Behind it, refuse. */
int
stream_writer_zero (struct vdisk_extent *ext, struct sparse *s, uint64_t off,
                    uint64_t count, struct vb_error *err)
{
  struct stream_writer *w = s->w;
  uint64_t gb = s->grain_bytes;
  bool in_pending = w->pend_used && off / gb == w->pend_grain;
  if (w->finished || (off < w->cursor && !in_pending))
    return vb_err (err, ENOTSUP, "streamOptimized extents can only be "
                   "written sequentially: zero at offset %llu of '%s' after "
                   "offset %llu", (unsigned long long) off, sname (ext),
                   (unsigned long long) w->cursor);
  if (in_pending) {
    uint64_t in = off % gb;
    uint64_t n = gb - in < count ? gb - in : count;
    memset (w->pend + in, 0, (size_t) n);
  }
  return 0;
}

/* Finish the stream: last grain, last table, GD, footer, end marker. */
int
stream_writer_finish (struct vdisk_extent *ext, struct sparse *s,
                      struct vb_error *err)
{
  struct stream_writer *w = s->w;
  if (w->finished)
    return 0;
  int r = flush_pending (ext, s, err);
  if (r == 0)
    r = flush_gt (ext, s, err);
  if (r < 0)
    return r;

  uint64_t gd_sectors = kdmv_div_round_up ((uint64_t) s->n_gd * 4,
                                           VDISK_SECTOR);
  if (gd_sectors == 0)
    gd_sectors = 1;
  /* n_gd <= KDMV_MAX_GD_ENTRIES: at most 128 MiB. */
  uint8_t *gd = calloc (gd_sectors, VDISK_SECTOR);
  if (!gd)
    return vb_errno (err, ENOMEM, "cannot finish '%s'", sname (ext));
  for (uint32_t i = 0; i < s->n_gd; i++)
    le32_put (gd + 4 * (size_t) i, s->gd[i]);
  r = append_marker (ext, s, gd_sectors, KDMV_MARKER_GD, err);
  uint64_t gd_at = w->next;
  if (r == 0)
    r = append (ext, s, gd, gd_sectors * VDISK_SECTOR, err);
  free (gd);
  if (r < 0)
    return r;

  struct kdmv_header f = s->h;
  f.gd_off = gd_at / VDISK_SECTOR;
  uint8_t sec[VDISK_SECTOR];
  kdmv_header_format (&f, sec);
  r = append_marker (ext, s, 1, KDMV_MARKER_FOOTER, err);
  if (r == 0)
    r = append (ext, s, sec, sizeof sec, err);
  if (r == 0)
    r = append_marker (ext, s, 0, KDMV_MARKER_EOS, err);
  if (r < 0)
    return r;
  if (ftruncate (ext->fd, (off_t) w->next) < 0)
    return vb_errno (err, errno, "cannot truncate '%s'", sname (ext));
  r = vio_fsync (ext->fd);
  if (r < 0)
    return vb_errno (err, -r, "cannot sync '%s'", sname (ext));
  w->finished = true;
  return 0;
}

/* Create an empty streamOptimized file: header (GD_AT_END), descriptor,
 * and nothing else; the file ends at overHead, which open() recognizes. */
int
stream_create (const char *path, const struct ext_create *c, uint64_t grain,
               uint64_t desc_sectors, struct vb_error *err)
{
  size_t dlen = c->embedded_desc ? strlen (c->embedded_desc) : 0;
  struct kdmv_header h = {
    .version = 3,
    .flags = KDMV_FLAG_NL_TEST | KDMV_FLAG_COMPRESSED | KDMV_FLAG_MARKERS,
    .capacity = c->sectors,
    .grain = grain,
    .desc_off = desc_sectors ? 1 : 0,
    .desc_size = desc_sectors,
    .num_gtes = KDMV_GTES,
    .rgd_off = 0,
    .gd_off = KDMV_GD_AT_END,
    .compress = KDMV_COMPRESS_DEFLATE,
  };
  h.overhead = kdmv_div_round_up (1 + desc_sectors, grain) * grain;

  int fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return vb_errno (err, errno, "cannot create '%s'", path);
  uint8_t hdr[KDMV_HDR_SIZE];
  kdmv_header_format (&h, hdr);
  int r = vio_pwrite (fd, hdr, sizeof hdr, 0);
  if (r == 0 && dlen)
    r = vio_pwrite (fd, c->embedded_desc, dlen, VDISK_SECTOR);
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
