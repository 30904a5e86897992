/* vmback vdisk: flat extents (raw images, FLAT, VMFS, VMFSRAW) and ZERO.
 *
 * A flat extent is plain bytes at file_offset in a file.  Holes in the
 * host file (SEEK_HOLE) are reported as zero so converts and the "*" query
 * skip them; bytes past the end of a short file read as zeros. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk-int.h"

/* Flat extents need no header; every byte is data. */
static int
flat_open (struct vdisk_extent *ext, struct vb_error *err)
{
  ext->grain = 0;
  if (ext->length == 0) {
    struct stat st;
    if (fstat (ext->fd, &st) < 0)
      return vb_errno (err, errno, "cannot stat '%s'", ext->name);
    uint64_t sz = (uint64_t) st.st_size;
    /* a block device (restore target, hotadd) reports its size by ioctl */
    if (S_ISBLK (st.st_mode) && ioctl (ext->fd, BLKGETSIZE64, &sz) < 0)
      return vb_errno (err, errno, "cannot get the size of device '%s'", ext->name);
    ext->length = sz;
  }
  return 0;
}

/* Nothing to free. */
static int
flat_close (struct vdisk_extent *ext, struct vb_error *err)
{
  return 0;
}

/* Data or hole, using SEEK_DATA/SEEK_HOLE on the host file. */
static int
flat_status (struct vdisk_extent *ext, uint64_t off, uint64_t len,
             uint64_t *pnum, struct vb_error *err)
{
  uint64_t foff = ext->file_offset + off;
  off_t d = lseek (ext->fd, (off_t) foff, SEEK_DATA);
  if (d < 0) {
    if (errno == ENXIO) {          /* nothing but hole (or EOF) from here */
      *pnum = len;
      return EXT_ZERO;
    }
    *pnum = len;                   /* no SEEK_DATA support: all data */
    return EXT_DATA;
  }
  if ((uint64_t) d > foff) {
    uint64_t n = (uint64_t) d - foff;
    *pnum = n < len ? n : len;
    return EXT_ZERO;
  }
  off_t h = lseek (ext->fd, (off_t) foff, SEEK_HOLE);
  uint64_t n = h < 0 ? len : (uint64_t) h - foff;
  if (n == 0)
    n = len;
  *pnum = n < len ? n : len;
  return EXT_DATA;
}

/* Read bytes; past EOF of a short file reads zeros. */
static int
flat_pread (struct vdisk_extent *ext, void *buf, size_t count, uint64_t off,
            struct vb_error *err)
{
  uint8_t *p = buf;
  uint64_t foff = ext->file_offset + off;
  while (count > 0) {
    ssize_t r = pread (ext->fd, p, count, (off_t) foff);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return vb_errno (err, errno, "cannot read '%s' at offset %llu",
                       ext->name, (unsigned long long) foff);
    }
    if (r == 0) {
      memset (p, 0, count);
      return 0;
    }
    p += r;
    count -= (size_t) r;
    foff += (uint64_t) r;
  }
  return 0;
}

/* Write bytes in place. */
static int
flat_pwrite (struct vdisk_extent *ext, const void *buf, size_t count,
             uint64_t off, struct vb_error *err)
{
  int r = vio_pwrite (ext->fd, buf, count, ext->file_offset + off);
  if (r < 0)
    return vb_errno (err, -r, "cannot write '%s' at offset %llu", ext->name,
                     (unsigned long long) (ext->file_offset + off));
  return 0;
}

/* Punch a hole (keeps the file size); fall back to writing zeros. */
static int
flat_zero (struct vdisk_extent *ext, uint64_t off, uint64_t count,
           bool has_parent, struct vb_error *err)
{
  if (fallocate (ext->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 (off_t) (ext->file_offset + off), (off_t) count) == 0)
    return 0;
  static const uint8_t zeros[65536];
  while (count > 0) {
    size_t n = count < sizeof zeros ? (size_t) count : sizeof zeros;
    int r = flat_pwrite (ext, zeros, n, off, err);
    if (r < 0)
      return r;
    off += n;
    count -= n;
  }
  return 0;
}

/* fsync the file. */
static int
flat_flush (struct vdisk_extent *ext, struct vb_error *err)
{
  int r = vio_fsync (ext->fd);
  return r < 0 ? vb_errno (err, -r, "cannot sync '%s'", ext->name) : 0;
}

/* Create a sparse file of the extent's size. */
static int
flat_create (const char *path, const struct ext_create *c,
             struct vb_error *err)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return vb_errno (err, errno, "cannot create '%s'", path);
  int r = 0;
  if (ftruncate (fd, (off_t) (c->sectors * VDISK_SECTOR)) < 0)
    r = vb_errno (err, errno, "cannot size '%s'", path);
  if (r == 0 && fsync (fd) < 0)
    r = vb_errno (err, errno, "cannot sync '%s'", path);
  close (fd);
  if (r < 0)
    unlink (path);
  return r;
}

/* Bytes the file really holds (allocated blocks). */
static uint64_t
flat_allocated (struct vdisk_extent *ext)
{
  uint64_t total = 0, off = 0, pnum;
  while (off < ext->length) {
    int s = flat_status (ext, off, ext->length - off, &pnum, NULL);
    if (s == EXT_DATA)
      total += pnum;
    off += pnum;
  }
  return total;
}

/* Grow the file to hold new_length bytes after file_offset. */
static int
flat_resize (struct vdisk_extent *ext, uint64_t new_length,
             struct vb_error *err)
{
  if (ftruncate (ext->fd, (off_t) (ext->file_offset + new_length)) < 0)
    return vb_errno (err, errno, "cannot resize '%s'", ext->name);
  ext->length = new_length;
  return 0;
}

const struct vdisk_extent_ops vdisk_flat_ops = {
  .name      = "flat",
  .kind      = VMDK_EXT_FLAT,
  .open      = flat_open,
  .close     = flat_close,
  .status    = flat_status,
  .pread     = flat_pread,
  .pwrite    = flat_pwrite,
  .zero      = flat_zero,
  .flush     = flat_flush,
  .create    = flat_create,
  .allocated = flat_allocated,
  .resize    = flat_resize,
};

/* ZERO extents have no file. */
static int
zero_open (struct vdisk_extent *ext, struct vb_error *err)
{
  ext->grain = 0;
  return 0;
}

/* Always zeros. */
static int
zero_status (struct vdisk_extent *ext, uint64_t off, uint64_t len,
             uint64_t *pnum, struct vb_error *err)
{
  *pnum = len;
  return EXT_ZERO;
}

/* Never called with data ranges, but be safe. */
static int
zero_pread (struct vdisk_extent *ext, void *buf, size_t count, uint64_t off,
            struct vb_error *err)
{
  memset (buf, 0, count);
  return 0;
}

/* Nothing allocated. */
static uint64_t
zero_allocated (struct vdisk_extent *ext)
{
  return 0;
}

const struct vdisk_extent_ops vdisk_zero_ops = {
  .name      = "zero",
  .kind      = VMDK_EXT_ZERO,
  .open      = zero_open,
  .close     = flat_close,
  .status    = zero_status,
  .pread     = zero_pread,
  .allocated = zero_allocated,
};
