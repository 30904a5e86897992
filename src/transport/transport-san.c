/* vmback transport "san": read the snapshot's chain directly with vdisk
 * (its extent files, or the block device they are on). */
#include <errno.h>
#include <stdlib.h>

#include "transport.h"
#include "vmback/vdisk.h"

struct san {
  struct vb_reader r;        /* first */
  struct vdisk *d;
};

/* Read through the chain. */
static int
san_pread (struct vb_reader *r, void *buf, size_t count, uint64_t off, struct vb_error *err)
{
  return vdisk_pread (((struct san *) r)->d, buf, count, off, err);
}

/* The chain's own allocation map. */
static int
san_status (struct vb_reader *r, uint64_t off, uint64_t len, uint64_t *pnum,
            struct vb_error *err)
{
  return vdisk_block_status (((struct san *) r)->d, off, len, pnum, err);
}

/* Close the chain. */
static void
san_close (struct vb_reader *r)
{
  struct san *s = (struct san *) r;
  vdisk_close (s->d, NULL);
  free (s);
}

static const struct vb_reader_ops san_reader = {
  .pread = san_pread, .status = san_status, .close = san_close,
};

/* Open the chain read-only. */
static int
san_open (const char *path, struct vb_reader **out, struct vb_error *err)
{
  struct san *s = calloc (1, sizeof *s);
  if (!s)
    return vb_errno (err, ENOMEM, "san: '%s'", path);
  int rc = vdisk_open (path, VDISK_OPEN_RDONLY, &s->d, err);
  if (rc < 0) {
    free (s);
    return rc;
  }
  s->r.ops = &san_reader;
  s->r.size = vdisk_size (s->d);
  *out = &s->r;
  return 0;
}

const struct vb_transport_ops vb_transport_san = {
  .name = "san",
  .open = san_open,
};
