/* vmback transports "nbd" and "nbdssl": the snapshot's disk exported over
 * NBD and read with libnbd.
 *
 * The export side is nbdkit with our vdisk plugin (nbdkit-vmback-vdisk.so,
 * src/serve/nbdkit-vdisk.c), started by libnbd on a socket pair
 * (nbd_connect_command; nbdkit -s --exit-with-parent), so it lives exactly
 * as long as the connection.  nbdkit rather than a server of our own: it
 * already has TLS, block status and a well-tested protocol engine, and
 * the plugin is a thin shell over vdisk.  nbdssl requires TLS on both
 * sides with a fresh random pre-shared key per disk (written 0600 into a
 * private directory and removed once the handshake is done); a server
 * that offers no TLS is refused.  Block status (base:allocation) skips
 * holes; answers are cached over a window ahead of the reads.  Reads that
 * follow each other are prefetched (a few requests in flight), so the
 * server works on the next chunk while this one is hashed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>
#include <openssl/rand.h>

#include "transport.h"
#include "vmback/vdisk.h"

#define PLUGIN "nbdkit-vmback-vdisk.so"
#define PSK_USER "vmback"
#define STATUS_WINDOW (1ull << 30)   /* block status asked this far ahead */
#define MAX_EXTENTS 4096
#define PREFETCH 3                  /* reads in flight ahead of the reader */
#define PREFETCH_MAX (8u << 20)     /* largest read prefetched */

/* One read ahead: the range, its buffer, libnbd's cookie. */
struct ahead {
  uint64_t off;
  size_t len;
  uint8_t *buf;
  int64_t cookie;            /* 0: slot free */
};

struct nbdr {
  struct vb_reader r;        /* first */
  struct nbd_handle *h;
  bool has_status;           /* the server answers base:allocation */
  /* cached block status: extents from ext_start, in order */
  uint64_t ext_start;
  size_t n_ext;
  struct { uint64_t len; bool zero; } ext[MAX_EXTENTS];
  struct ahead ahead[PREFETCH];
  char lost[512];            /* why a prefetch failed ("" if none) */
  int lost_code;
};

/* libnbd's message for the last failure, as an error. */
static int
nbd_fail (struct vb_error *err, const char *what)
{
  int code = nbd_get_errno ();
  const char *msg = nbd_get_error ();
  return vb_err (err, code > 0 ? code : EIO, "%s: %s", what, msg ? msg : "NBD error");
}

/* Wait for prefetch a; 0 when its data is in a->buf, else -1 (the
 * caller reads synchronously and reports that error).  Frees the slot. */
static int
ahead_wait (struct nbdr *n, struct ahead *a)
{
  int done;
  while ((done = nbd_aio_command_completed (n->h, (uint64_t) a->cookie)) == 0)
    if (nbd_poll (n->h, -1) < 0) {
      done = -1;
      break;
    }
  a->cookie = 0;
  if (done != 1 && !n->lost[0]) {      /* keep the first reason */
    const char *m = nbd_get_error ();
    snprintf (n->lost, sizeof n->lost, "%s", m ? m : "read failed");
    n->lost_code = nbd_get_errno () > 0 ? nbd_get_errno () : EIO;
  }
  return done == 1 ? 0 : -1;
}

/* Start reading the ranges after [off, off+len) of the same length. */
static void
ahead_issue (struct nbdr *n, uint64_t off, size_t len)
{
  if (len > PREFETCH_MAX)
    return;
  uint64_t next = off + len;
  for (int k = 0; k < PREFETCH && next + len <= n->r.size; k++, next += len) {
    bool have = false;
    struct ahead *free_slot = NULL;
    for (int i = 0; i < PREFETCH; i++) {
      struct ahead *a = &n->ahead[i];
      if (a->cookie && a->off == next && a->len == len)
        have = true;
      else if (!a->cookie && !free_slot)
        free_slot = a;
    }
    if (have)
      continue;
    if (!free_slot)
      return;
    if (free_slot->len < len) {
      free (free_slot->buf);
      free_slot->len = 0;
      if (!(free_slot->buf = malloc (len)))
        return;
    }
    int64_t c = nbd_aio_pread (n->h, free_slot->buf, len, next, NBD_NULL_COMPLETION, 0);
    if (c < 0)
      return;                /* the synchronous read will report it */
    free_slot->cookie = c;
    free_slot->off = next;
    free_slot->len = len;
  }
}

/* Read over NBD: from a finished prefetch when there is one for exactly
 * this range, else synchronously; then read ahead. */
static int
nbdr_pread (struct vb_reader *r, void *buf, size_t count, uint64_t off, struct vb_error *err)
{
  struct nbdr *n = (struct nbdr *) r;
  int code = vb_failpoint ("transport-read");
  if (code)
    return vb_err (err, code, "%s: read at %llu: %s (injected)", r->mode,
                   (unsigned long long) off, strerror (code));
  bool got = false;
  for (int i = 0; i < PREFETCH; i++) {
    struct ahead *a = &n->ahead[i];
    if (!a->cookie)
      continue;
    if (a->off == off && a->len == count && ahead_wait (n, a) == 0) {
      memcpy (buf, a->buf, count);
      got = true;
    } else if (a->off + a->len <= off || a->off < off) {
      ahead_wait (n, a);     /* skipped over: drain it */
    }
  }
  if (!got && nbd_pread (n->h, buf, count, off, 0) < 0) {
    if (n->lost[0])          /* the connection broke under a prefetch */
      return vb_err (err, n->lost_code, "%s: %s", r->mode, n->lost);
    return nbd_fail (err, r->mode);
  }
  ahead_issue (n, off, count);
  return 0;
}

/* Extent callback: append the base:allocation entries to the cache. */
static int
take_extents (void *opaque, const char *ctx, uint64_t off, uint32_t *e, size_t n_e,
              int *error)
{
  struct nbdr *n = opaque;
  if (strcmp (ctx, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (size_t i = 0; i + 1 < n_e && n->n_ext < MAX_EXTENTS; i += 2) {
    if (e[i] == 0)
      break;
    n->ext[n->n_ext].len = e[i];
    n->ext[n->n_ext].zero = (e[i + 1] & LIBNBD_STATE_ZERO) != 0;
    n->n_ext++;
  }
  return 0;
}

/* Refill the cache with the status of a window starting at off. */
static int
refill (struct nbdr *n, uint64_t off, struct vb_error *err)
{
  uint64_t len = n->r.size - off < STATUS_WINDOW ? n->r.size - off : STATUS_WINDOW;
  n->ext_start = off;
  n->n_ext = 0;
  nbd_extent_callback cb = { .callback = take_extents, .user_data = n };
  if (nbd_block_status (n->h, len, off, cb, 0) < 0)
    return nbd_fail (err, n->r.mode);
  if (n->n_ext == 0)
    return vb_err (err, EPROTO, "%s: the server's block status at %llu is empty", n->r.mode,
                   (unsigned long long) off);
  return 0;
}

/* Status at off from the cache (refilled when off is outside it). */
static int
nbdr_status (struct vb_reader *r, uint64_t off, uint64_t len, uint64_t *pnum,
             struct vb_error *err)
{
  struct nbdr *n = (struct nbdr *) r;
  if (!n->has_status) {
    *pnum = len;
    return VDISK_STATUS_DATA;
  }
  for (int pass = 0; pass < 2; pass++) {
    uint64_t at = n->ext_start;
    for (size_t i = 0; i < n->n_ext; i++) {
      if (off >= at && off < at + n->ext[i].len) {
        uint64_t run = at + n->ext[i].len - off;
        *pnum = run < len ? run : len;
        return n->ext[i].zero ? VDISK_STATUS_ZERO : VDISK_STATUS_DATA;
      }
      at += n->ext[i].len;
    }
    int rc = refill (n, off, err);
    if (rc < 0)
      return rc;
  }
  return vb_err (err, EPROTO, "%s: block status does not cover offset %llu", r->mode,
                 (unsigned long long) off);
}

/* Disconnect (nbdkit exits with the connection). */
static void
nbdr_close (struct vb_reader *r)
{
  struct nbdr *n = (struct nbdr *) r;
  if (n->h) {
    for (int i = 0; i < PREFETCH; i++)
      if (n->ahead[i].cookie)
        ahead_wait (n, &n->ahead[i]);
    nbd_shutdown (n->h, 0);
    nbd_close (n->h);
  }
  for (int i = 0; i < PREFETCH; i++)
    free (n->ahead[i].buf);
  free (n);
}

static const struct vb_reader_ops nbd_reader = {
  .pread = nbdr_pread, .status = nbdr_status, .close = nbdr_close,
};

/* A private directory with a fresh PSK file "vmback:<64 hex>" (0600). */
static int
make_psk (char *dir, size_t dlen, char *file, size_t flen, struct vb_error *err)
{
  const char *tmp = getenv ("TMPDIR");
  snprintf (dir, dlen, "%s/vmback-psk.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp (dir))
    return vb_errno (err, errno, "cannot create a directory for the TLS key");
  snprintf (file, flen, "%s/psk", dir);
  unsigned char key[32];
  char hex[2 * sizeof key + 1];
  if (RAND_bytes (key, sizeof key) != 1) {
    rmdir (dir);
    return vb_err (err, EIO, "cannot generate a TLS key");
  }
  for (size_t i = 0; i < sizeof key; i++)
    snprintf (hex + 2 * i, 3, "%02x", key[i]);
  int rc = 0;
  FILE *f = fopen (file, "wx");
  if (!f || fprintf (f, "%s:%s\n", PSK_USER, hex) < 0 || fclose (f) != 0) {
    rc = vb_errno (err, errno, "write '%s'", file);
    unlink (file);
    rmdir (dir);
  }
  explicit_bzero (key, sizeof key);
  explicit_bzero (hex, sizeof hex);
  return rc;
}

/* Start nbdkit with our plugin on path, connected to n->h. */
static int
connect_export (struct nbdr *n, const char *path, const char *psk, struct vb_error *err)
{
  char *plugin = vb_nbdkit_plugin_path (PLUGIN, err);
  if (!plugin)
    return -ENOENT;
  const char *nbdkit = getenv ("VMBACK_NBDKIT");
  char file_arg[4200], psk_arg[4200];
  snprintf (file_arg, sizeof file_arg, "file=%s", path);
  snprintf (psk_arg, sizeof psk_arg, "--tls-psk=%s", psk ? psk : "");
  char *argv[12];
  int a = 0;
  argv[a++] = (char *) (nbdkit && *nbdkit ? nbdkit : "nbdkit");
  argv[a++] = (char *) "-s";
  argv[a++] = (char *) "--exit-with-parent";
  argv[a++] = (char *) "-r";
  if (psk) {
    argv[a++] = (char *) "--tls=require";
    argv[a++] = psk_arg;
  }
  argv[a++] = plugin;
  argv[a++] = file_arg;
  argv[a] = NULL;
  int rc = 0;
  if (nbd_connect_command (n->h, argv) < 0)
    rc = nbd_fail (err, "connect");
  free (plugin);
  return rc;
}

/* Connect to an export of path, with TLS when tls. */
static int
open_common (const char *path, bool tls, struct vb_reader **out, struct vb_error *err)
{
  struct nbdr *n = calloc (1, sizeof *n);
  if (!n)
    return vb_errno (err, ENOMEM, "nbd: '%s'", path);
  n->r.ops = &nbd_reader;
  n->r.mode = tls ? "nbdssl" : "nbd";
  char dir[4096] = "", psk[4200] = "";
  int rc = 0;
  if (!(n->h = nbd_create ()))
    rc = nbd_fail (err, "create handle");
  else if (nbd_add_meta_context (n->h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0)
    rc = nbd_fail (err, "meta context");
  else if (tls && (rc = make_psk (dir, sizeof dir, psk, sizeof psk, err)) == 0) {
    if (nbd_set_tls (n->h, LIBNBD_TLS_REQUIRE) < 0
        || nbd_set_tls_username (n->h, PSK_USER) < 0
        || nbd_set_tls_psk_file (n->h, psk) < 0)
      rc = nbd_fail (err, "TLS settings");
  }
  if (rc == 0)
    rc = connect_export (n, path, tls ? psk : NULL, err);
  if (psk[0]) {            /* the handshake is over (or failed) */
    unlink (psk);
    rmdir (dir);
  }
  if (rc == 0) {
    int64_t size = nbd_get_size (n->h);
    if (size < 0)
      rc = nbd_fail (err, n->r.mode);
    n->r.size = (uint64_t) size;
    n->has_status = nbd_can_meta_context (n->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  }
  if (rc < 0) {
    vb_err_prefix (err, "%s: '%s'", n->r.mode, path);
    nbdr_close (&n->r);
    return rc;
  }
  *out = &n->r;
  return 0;
}

/* Plain NBD. */
static int
nbd_open (const char *path, struct vb_reader **out, struct vb_error *err)
{
  return open_common (path, false, out, err);
}

/* NBD over TLS with a pre-shared key. */
static int
nbdssl_open (const char *path, struct vb_reader **out, struct vb_error *err)
{
  return open_common (path, true, out, err);
}

const struct vb_transport_ops vb_transport_nbd = { .name = "nbd", .open = nbd_open };
const struct vb_transport_ops vb_transport_nbdssl = { .name = "nbdssl", .open = nbdssl_open };
