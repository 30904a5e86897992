/* vmback: an nbdkit plugin that exports a virtual disk read-only.
 *
 *   nbdkit nbdkit-vmback-vdisk.so file=DISK
 *
 * DISK is anything vdisk opens: raw, every VMDK variant, a snapshot
 * layer with its parents.  The nbd and nbdssl transports run it to serve a
 * snapshot's disk (src/transport/transport-nbd.c); it also works alone.
 * Each connection opens the chain itself; requests of a connection are
 * serialized, connections run in parallel.  Block status comes from the
 * chain's allocation map. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "vmback/vdisk.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS

static char *file;

/* Report a library error to the client. */
static int
fail (const struct vb_error *e)
{
  nbdkit_error ("%s", e->msg[0] ? e->msg : strerror (e->code ? e->code : EIO));
  nbdkit_set_error (e->code == EINVAL || e->code == ENOMEM ? e->code : EIO);
  return -1;
}

/* Free the parameter. */
static void
vd_unload (void)
{
  free (file);
}

/* file=DISK, the only parameter. */
static int
vd_config (const char *key, const char *value)
{
  if (strcmp (key, "file") != 0) {
    nbdkit_error ("unknown parameter '%s'", key);
    return -1;
  }
  free (file);
  file = nbdkit_realpath (value);
  return file ? 0 : -1;
}

/* file= is required. */
static int
vd_config_complete (void)
{
  if (!file) {
    nbdkit_error ("the file= parameter is required");
    return -1;
  }
  return 0;
}

/* Open the chain once before serving, so a bad disk fails at start. */
static int
vd_get_ready (void)
{
  struct vdisk *d;
  struct vb_error e = { 0 };
  if (vdisk_open (file, VDISK_OPEN_RDONLY, &d, &e) < 0)
    return fail (&e);
  vdisk_close (d, NULL);
  return 0;
}

/* A connection: its own open chain. */
static void *
vd_open (int readonly)
{
  struct vdisk *d;
  struct vb_error e = { 0 };
  if (vdisk_open (file, VDISK_OPEN_RDONLY, &d, &e) < 0) {
    fail (&e);
    return NULL;
  }
  return d;
}

static void
vd_close (void *h)
{
  vdisk_close (h, NULL);
}

static int64_t
vd_get_size (void *h)
{
  return (int64_t) vdisk_size (h);
}

/* Read-only, the chain never changes under us: multi-conn is safe. */
static int
vd_can_true (void *h)
{
  return 1;
}

static int
vd_pread (void *h, void *buf, uint32_t count, uint64_t off, uint32_t flags)
{
  struct vb_error e = { 0 };
  return vdisk_pread (h, buf, count, off, &e) < 0 ? fail (&e) : 0;
}

/* Runs of data and zeros over [off, off+count). */
static int
vd_extents (void *h, uint32_t count, uint64_t off, uint32_t flags,
            struct nbdkit_extents *exts)
{
  uint64_t end = off + count;
  while (off < end) {
    uint64_t pnum;
    struct vb_error e = { 0 };
    int s = vdisk_block_status (h, off, end - off, &pnum, &e);
    if (s < 0)
      return fail (&e);
    uint32_t type = s == VDISK_STATUS_ZERO ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;
    if (nbdkit_add_extent (exts, off, pnum, type) < 0)
      return -1;
    off += pnum;
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "vmback-vdisk",
  .longname = "vmback virtual disk export",
  .version = "1",
  .description = "serve a virtual disk (raw, VMDK, snapshot chains) read-only",
  .config_help = "file=DISK      the disk (top layer of a chain), required",
  .unload = vd_unload,
  .config = vd_config,
  .config_complete = vd_config_complete,
  .get_ready = vd_get_ready,
  .open = vd_open,
  .close = vd_close,
  .get_size = vd_get_size,
  .can_multi_conn = vd_can_true,
  .can_extents = vd_can_true,
  .pread = vd_pread,
  .extents = vd_extents,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)
