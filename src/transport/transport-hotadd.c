/* vmback transport "hotadd": attach the snapshot's disk to this host as a
 * local block device and read that, as a backup proxy VM reads a disk
 * hot-added to it.
 *
 * The device is a read-only loop device over the disk's one flat extent
 * (LO_FLAGS_AUTOCLEAR: the kernel detaches it when we close it, also when
 * the process is killed).  A disk that is not one flat extent (a sparse
 * layer, a chain) cannot be a loop device, and attaching needs
 * CAP_SYS_ADMIN: in those cases the transport is unavailable and says
 * why.  Holes are found in the extent file (SEEK_DATA), as the disk's
 * allocation map is. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "transport.h"
#include "vdisk/vdisk-int.h"

struct hotadd {
  struct vb_reader r;        /* first */
  int dev;                   /* the loop device */
  int file;                  /* the extent file (for the allocation map) */
  uint64_t file_offset;      /* the disk's first byte in it */
  char dev_name[32];
};

/* Read from the block device. */
static int
hot_pread (struct vb_reader *r, void *buf, size_t count, uint64_t off, struct vb_error *err)
{
  struct hotadd *h = (struct hotadd *) r;
  int rc = vio_pread (h->dev, buf, count, off);
  return rc < 0 ? vb_errno (err, -rc, "hotadd: read %s at %llu", h->dev_name,
                            (unsigned long long) off) : 0;
}

/* Data or hole at off, from the extent file's holes. */
static int
hot_status (struct vb_reader *r, uint64_t off, uint64_t len, uint64_t *pnum,
            struct vb_error *err)
{
  struct hotadd *h = (struct hotadd *) r;
  off_t at = (off_t) (h->file_offset + off), end = at + (off_t) len;
  off_t data = lseek (h->file, at, SEEK_DATA);
  if (data < 0 && errno != ENXIO) {       /* no SEEK_DATA here: all data */
    *pnum = len;
    return VDISK_STATUS_DATA;
  }
  if (data < 0 || data >= end) {          /* ENXIO: only a hole follows */
    *pnum = len;
    return VDISK_STATUS_ZERO;
  }
  if (data > at) {
    *pnum = (uint64_t) (data - at);
    return VDISK_STATUS_ZERO;
  }
  off_t hole = lseek (h->file, at, SEEK_HOLE);
  *pnum = hole < 0 || hole > end ? len : (uint64_t) (hole - at);
  if (*pnum == 0)
    *pnum = len;
  (void) err;
  return VDISK_STATUS_DATA;
}

/* Close the device (which detaches it) and the file. */
static void
hot_close (struct vb_reader *r)
{
  struct hotadd *h = (struct hotadd *) r;
  if (h->dev >= 0)
    close (h->dev);
  if (h->file >= 0)
    close (h->file);
  free (h);
}

static const struct vb_reader_ops hot_reader = {
  .pread = hot_pread, .status = hot_status, .close = hot_close,
};

/* Configure the free loop device fd over h->file; 0 or -errno. */
static int
configure (struct hotadd *h, int fd, const char *file, uint64_t size)
{
  struct loop_config cfg;
  memset (&cfg, 0, sizeof cfg);
  cfg.fd = (uint32_t) h->file;
  cfg.info.lo_offset = h->file_offset;
  cfg.info.lo_sizelimit = size;
  cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
  snprintf ((char *) cfg.info.lo_file_name, LO_NAME_SIZE, "%s", file);
  if (ioctl (fd, LOOP_CONFIGURE, &cfg) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOTTY)
    return -errno;
  /* kernels before 5.8: the two-step form */
  if (ioctl (fd, LOOP_SET_FD, h->file) < 0)
    return -errno;
  if (ioctl (fd, LOOP_SET_STATUS64, &cfg.info) < 0) {
    int e = errno;
    ioctl (fd, LOOP_CLR_FD, 0);
    return -e;
  }
  return 0;
}

/* Attach a free loop device over the extent; 0 or -errno with a reason. */
static int
attach (struct hotadd *h, const char *file, uint64_t size, struct vb_error *err)
{
  int ctl = open ("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0)
    return vb_errno (err, errno, "hotadd: unavailable: /dev/loop-control");
  int rc = -EBUSY;
  for (int tries = 0; tries < 8 && rc == -EBUSY; tries++) {
    int n = ioctl (ctl, LOOP_CTL_GET_FREE);
    if (n < 0) {
      rc = vb_errno (err, errno, "hotadd: unavailable: no free loop device");
      break;
    }
    snprintf (h->dev_name, sizeof h->dev_name, "/dev/loop%d", n);
    int fd = open (h->dev_name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      rc = vb_errno (err, errno, "hotadd: unavailable: %s", h->dev_name);
      break;
    }
    rc = configure (h, fd, file, size);
    if (rc == 0)
      h->dev = fd;
    else
      close (fd);
  }
  close (ctl);
  if (rc < 0 && err && err->code == 0)
    vb_errno (err, -rc, "hotadd: unavailable: cannot attach '%s' as a loop device%s", file,
              rc == -EPERM ? " (needs CAP_SYS_ADMIN)" : "");
  return rc;
}

/* The device must show exactly the disk. */
static int
check_size (struct hotadd *h, struct vb_error *err)
{
  uint64_t bytes = 0;
  if (ioctl (h->dev, BLKGETSIZE64, &bytes) < 0)
    return vb_errno (err, errno, "hotadd: size of %s", h->dev_name);
  if (bytes != h->r.size)
    return vb_err (err, EIO, "hotadd: %s shows %llu bytes, the disk has %llu", h->dev_name,
                   (unsigned long long) bytes, (unsigned long long) h->r.size);
  return 0;
}

/* Attach the disk at path when it is one flat extent. */
static int
hot_open (const char *path, struct vb_reader **out, struct vb_error *err)
{
  struct vdisk *d;
  int rc = vdisk_open (path, VDISK_OPEN_RDONLY, &d, err);
  if (rc < 0)
    return rc;
  struct hotadd *h = calloc (1, sizeof *h);
  const char *file;
  if (h)
    h->file = h->dev = -1;
  if (!h)
    rc = vb_errno (err, ENOMEM, "hotadd: '%s'", path);
  else if (!vdisk_flat_extent (d, &file, &h->file_offset))
    rc = vb_err (err, ENOTSUP, "hotadd: unavailable: '%s' is not one flat extent (a %s "
                 "layer or a chain); only a flat disk can be attached as a loop device",
                 path, vdisk_type_name (vdisk_get_type (d)));
  else if ((h->file = open (file, O_RDONLY | O_CLOEXEC)) < 0)
    rc = vb_errno (err, errno, "hotadd: '%s'", file);
  else {
    h->r.ops = &hot_reader;
    h->r.size = vdisk_size (d);
    if ((rc = attach (h, file, h->r.size, err)) == 0)
      rc = check_size (h, err);
  }
  vdisk_close (d, NULL);
  if (rc < 0 && h)
    hot_close (&h->r);
  else if (rc == 0)
    *out = &h->r;
  return rc;
}

const struct vb_transport_ops vb_transport_hotadd = {
  .name = "hotadd",
  .open = hot_open,
};
