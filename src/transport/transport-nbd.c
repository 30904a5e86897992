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
 * holes; answers are cached over a window ahead of the reads.  The backup
 * keeps a few reads in flight (read_start/read_wait), each reply received
 * straight into the buffer that is then hashed, so the server works on
 * the next chunks while this one is stored.
 *
 * Cipher: the server we start gets a GnuTLS configuration disabling
 * ChaCha20 where AES-GCM is the better choice (tls_conf; why in
 * transport.h, vb_tls_prefer_aes). */
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

struct nbdr {
  struct vb_reader r;        /* first */
  struct nbd_handle *h;
  bool has_status;           /* the server answers base:allocation */
  /* cached block status: extents from ext_start, in order */
  uint64_t ext_start;
  size_t n_ext;
  struct { uint64_t len; bool zero; } ext[MAX_EXTENTS];
  /* reads started by read_start and not yet waited for, oldest first */
  int64_t started[VB_READS_AHEAD];
  int first, n_started;
};

/* libnbd's message for the last failure, as an error. */
static int
nbd_fail (struct vb_error *err, const char *what)
{
  int code = nbd_get_errno ();
  const char *msg = nbd_get_error ();
  return vb_err (err, code > 0 ? code : EIO, "%s: %s", what, msg ? msg : "NBD error");
}

/* The "transport-read" failpoint: a read failing like a dying server. */
static int
injected (struct vb_reader *r, uint64_t off, struct vb_error *err)
{
  int code = vb_failpoint ("transport-read");
  return code ? vb_err (err, code, "%s: read at %llu: %s (injected)", r->mode,
                        (unsigned long long) off, strerror (code)) : 0;
}

/* Read over NBD, waiting for the reply. */
static int
nbdr_pread (struct vb_reader *r, void *buf, size_t count, uint64_t off, struct vb_error *err)
{
  struct nbdr *n = (struct nbdr *) r;
  int rc = injected (r, off, err);
  if (rc == 0 && nbd_pread (n->h, buf, count, off, 0) < 0)
    rc = nbd_fail (err, r->mode);
  return rc;
}

/* Send a read whose reply lands straight in buf (no copy), so that the
 * server works on the next reads while the caller uses this one. */
static int
nbdr_read_start (struct vb_reader *r, void *buf, size_t count, uint64_t off,
                 struct vb_error *err)
{
  struct nbdr *n = (struct nbdr *) r;
  if (n->n_started == VB_READS_AHEAD)
    return vb_err (err, EBUSY, "%s: too many reads in flight", r->mode);
  int rc = injected (r, off, err);
  if (rc < 0)
    return rc;
  int64_t c = nbd_aio_pread (n->h, buf, count, off, NBD_NULL_COMPLETION, 0);
  if (c < 0)
    return nbd_fail (err, r->mode);
  n->started[(n->first + n->n_started++) % VB_READS_AHEAD] = c;
  return 0;
}

/* Wait for the oldest read started. */
static int
nbdr_read_wait (struct vb_reader *r, struct vb_error *err)
{
  struct nbdr *n = (struct nbdr *) r;
  if (n->n_started == 0)
    return vb_err (err, EINVAL, "%s: no read in flight", r->mode);
  int64_t c = n->started[n->first];
  n->first = (n->first + 1) % VB_READS_AHEAD;
  n->n_started--;
  int done;
  while ((done = nbd_aio_command_completed (n->h, (uint64_t) c)) == 0)
    if (nbd_poll (n->h, -1) < 0)
      return nbd_fail (err, r->mode);
  return done == 1 ? 0 : nbd_fail (err, r->mode);
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
    nbd_shutdown (n->h, 0);
    nbd_close (n->h);
  }
  free (n);
}

static const struct vb_reader_ops nbd_reader = {
  .pread = nbdr_pread, .status = nbdr_status, .close = nbdr_close,
  .read_start = nbdr_read_start, .read_wait = nbdr_read_wait,
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

/* Write dir/gnutls.conf disabling ChaCha20 into conf when
 * vb_tls_prefer_aes(); conf stays empty otherwise, or if it cannot be
 * written (only speed is lost).  The server's GnuTLS reads it when it
 * starts, so it may go with the key after the handshake. */
static void
tls_conf (const char *dir, char *conf, size_t len)
{
  conf[0] = '\0';
  if (!vb_tls_prefer_aes ())
    return;
  snprintf (conf, len, "%s/gnutls.conf", dir);
  FILE *f = fopen (conf, "wx");
  bool ok = f && fputs (VB_TLS_NO_CHACHA, f) >= 0;
  if ((f && fclose (f) != 0) || !ok) {
    unlink (conf);
    conf[0] = '\0';
  }
}

/* Start nbdkit with our plugin on path, connected to n->h; with TLS, psk
 * is the key file; conf, when not empty, a GnuTLS configuration for it. */
static int
connect_export (struct nbdr *n, const char *path, const char *psk, const char *conf,
                struct vb_error *err)
{
  char *plugin = vb_nbdkit_plugin_path (PLUGIN, err);
  if (!plugin)
    return -ENOENT;
  const char *nbdkit = getenv ("VMBACK_NBDKIT");
  char file_arg[4200], psk_arg[4200], conf_arg[4200];
  snprintf (file_arg, sizeof file_arg, "file=%s", path);
  snprintf (psk_arg, sizeof psk_arg, "--tls-psk=%s", psk ? psk : "");
  char *argv[16];
  int a = 0;
  if (conf[0]) {
    snprintf (conf_arg, sizeof conf_arg, "GNUTLS_SYSTEM_PRIORITY_FILE=%s", conf);
    argv[a++] = (char *) "env";
    argv[a++] = conf_arg;
  }
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
  char dir[4096] = "", psk[4200] = "", conf[4200] = "";
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
    else
      tls_conf (dir, conf, sizeof conf);
  }
  if (rc == 0)
    rc = connect_export (n, path, tls ? psk : NULL, conf, err);
  if (psk[0]) {            /* the handshake is over (or failed) */
    unlink (psk);
    if (conf[0])
      unlink (conf);
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
