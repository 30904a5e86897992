/* vmback serve: the nbdkit plugin (docs/serve.md).
 *
 *   nbdkit -f nbdkit-vmback.so repo=R point=P [disk=KEY] [overlay=FILE]
 *          [keyfile=F] [cache=SIZE] [ready=LINE]
 *
 * A thin shell over point-export.c: nbdkit speaks the protocol (TLS,
 * multi-conn, block status, FUA emulation through flush).  The
 * passphrase of an encrypted repository comes from $VMBACK_PASSPHRASE,
 * never from a parameter, and is removed from the environment once the
 * repository is open.  The repository is opened and the point checked
 * before the socket is bound; the shared lock is taken after nbdkit's
 * fork (its refresher is a thread) and released at shutdown. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "common/tune.h"
#include "point-export.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static char *cfg_repo, *point, *disk, *overlay, *key_file, *ready;
static int64_t cache_bytes;
static int ready_fd = -1;        /* our stdout: nbdkit points fd 1 at /dev/null */
static struct repo *repo;
static struct point_export *pe;

/* Report a library error to the client: the message in the log, and
 * EIO unless the errno is one NBD has a meaning for. */
static int
fail (const struct vb_error *e)
{
  nbdkit_error ("%s", e->msg[0] ? e->msg : strerror (e->code ? e->code : EIO));
  int code = e->code;
  nbdkit_set_error (code == EROFS || code == ENOSPC || code == EINVAL || code == ENOMEM
                    ? code : EIO);
  return -1;
}

/* Keep a copy of stdout for the ready line before nbdkit redirects it. */
static void
vb_load (void)
{
  ready_fd = fcntl (STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  vb_malloc_tune ();
}

/* Free the parameters. */
static void
vb_unload (void)
{
  if (ready_fd >= 0)
    close (ready_fd);
  free (cfg_repo);
  free (point);
  free (disk);
  free (overlay);
  free (key_file);
  free (ready);
}

/* Keep one key=value parameter. */
static int
vb_config (const char *key, const char *value)
{
  char **slot = strcmp (key, "repo") == 0 ? &cfg_repo
    : strcmp (key, "point") == 0 ? &point
    : strcmp (key, "disk") == 0 ? &disk
    : strcmp (key, "overlay") == 0 ? &overlay
    : strcmp (key, "keyfile") == 0 ? &key_file
    : strcmp (key, "ready") == 0 ? &ready : NULL;
  if (strcmp (key, "cache") == 0) {
    cache_bytes = nbdkit_parse_size (value);
    return cache_bytes < 0 ? -1 : 0;
  }
  if (!slot) {
    nbdkit_error ("unknown parameter '%s'", key);
    return -1;
  }
  free (*slot);
  if (!(*slot = strdup (value))) {
    nbdkit_error ("out of memory");
    return -1;
  }
  return 0;
}

/* repo and point are required. */
static int
vb_config_complete (void)
{
  if (!cfg_repo || !point) {
    nbdkit_error ("the repo= and point= parameters are required");
    return -1;
  }
  return 0;
}

/* A copy of $VMBACK_PASSPHRASE (NULL if unset); the variable is wiped in
 * place (so /proc/PID/environ no longer shows it) and removed. */
static char *
take_passphrase (void)
{
  char *env = getenv ("VMBACK_PASSPHRASE");
  char *pw = env ? strdup (env) : NULL;
  if (env)
    explicit_bzero (env, strlen (env));
  unsetenv ("VMBACK_PASSPHRASE");
  return pw;
}

/* Open the repository and the point's disk (before the socket is bound,
 * so a bad point fails at once). */
static int
vb_get_ready (void)
{
  struct vb_error e = { 0 };
  char *pw = take_passphrase ();
  int rc = repo_open (cfg_repo, pw, key_file, &repo, &e);
  if (pw) {
    explicit_bzero (pw, strlen (pw));
    free (pw);
  }
  if (rc < 0)
    return fail (&e);
  struct pe_opts o = { .disk = disk, .overlay = overlay, .cache_bytes = (uint64_t) cache_bytes };
  if (pe_open (repo, point, &o, &pe, &e) < 0)
    return fail (&e);
  nbdkit_debug ("serving disk %s of point %s: %llu bytes, %s", pe_disk_key (pe),
                pe_point_id (pe), (unsigned long long) pe_size (pe),
                pe_writable (pe) ? "writable overlay" : "read-only");
  return 0;
}

/* Take the shared repository lock, then say we are ready. */
static int
vb_after_fork (void)
{
  struct vb_error e = { 0 };
  if (repo_lock (repo, false, "serve", &e) < 0)
    return fail (&e);
  if (ready && ready_fd >= 0 && dprintf (ready_fd, "%s\n", ready) < 0)
    nbdkit_debug ("cannot print the ready line: %m");
  if (ready_fd >= 0)
    close (ready_fd);              /* a reader of our stdout sees its end */
  ready_fd = -1;
  return 0;
}

/* At shutdown, unless quiet (no ready line asked for): how the cache did,
 * one line on stderr, so that --cache can be sized from a real run. */
static void
print_cache_stats (void)
{
  struct pe_stats st;
  if (!pe || !ready)
    return;
  pe_get_stats (pe, &st);
  uint64_t reads = st.hits + st.misses;
  fprintf (stderr, "vmback: serve: %" PRIu64 " chunk reads, %" PRIu64 " from the cache "
           "(%.0f%%), %" PRIu64 " decoded; cache of %" PRIu64 " chunks, %" PRIu64 " held, "
           "%" PRIu64 " reused\n",
           reads, st.hits, reads ? 100.0 * (double) st.hits / (double) reads : 0.0,
           st.misses, st.capacity, st.cached, st.reused);
}

/* Shutdown: flush the overlay, release the lock, close the repository. */
static void
vb_cleanup (void)
{
  struct vb_error e = { 0 };
  print_cache_stats ();
  if (pe_close (pe, &e) < 0)
    nbdkit_error ("%s", e.msg);
  pe = NULL;
  if (repo) {
    repo_unlock (repo);
    repo_close (repo);
    repo = NULL;
  }
}

/* Every connection shares the one export. */
static void *
vb_open (int readonly)
{
  return pe;
}

/* The export's properties: the disk's size; writable with an overlay;
 * flush, multi-conn and block status always. */
static int64_t
vb_get_size (void *h)
{
  return (int64_t) pe_size (h);
}

static int
vb_can_write (void *h)
{
  return pe_writable (h);
}

static int
vb_can_true (void *h)
{
  return 1;
}

/* Hint clients at the chunk size. */
static int
vb_block_size (void *h, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  uint32_t cs = pe_chunk_size (h);
  *minimum = 1;
  *preferred = cs < 4096 ? 4096 : cs > (32u << 20) ? (32u << 20) : cs;
  *maximum = 0xffffffff;
  return 0;
}

/* "vmback point ID disk KEY", shown by nbdinfo. */
static const char *
vb_export_description (void *h)
{
  return nbdkit_printf_intern ("vmback point %s disk %s", pe_point_id (h), pe_disk_key (h));
}

/* Requests: each a call into point-export, errors reported by fail(). */
static int
vb_pread (void *h, void *buf, uint32_t count, uint64_t off, uint32_t flags)
{
  struct vb_error e = { 0 };
  return pe_pread (h, buf, count, off, &e) < 0 ? fail (&e) : 0;
}

static int
vb_pwrite (void *h, const void *buf, uint32_t count, uint64_t off, uint32_t flags)
{
  struct vb_error e = { 0 };
  return pe_pwrite (h, buf, count, off, &e) < 0 ? fail (&e) : 0;
}

static int
vb_flush (void *h, uint32_t flags)
{
  struct vb_error e = { 0 };
  return pe_flush (h, &e) < 0 ? fail (&e) : 0;
}

/* One extent to nbdkit. */
static int
add_extent (void *opaque, uint64_t off, uint64_t len, bool zero)
{
  return nbdkit_add_extent (opaque, off, len,
                            zero ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0) < 0
    ? -EIO : 0;
}

static int
vb_extents (void *h, uint32_t count, uint64_t off, uint32_t flags,
            struct nbdkit_extents *exts)
{
  struct vb_error e = { 0 };
  return pe_extents (h, off, count, add_extent, exts, &e) < 0 ? fail (&e) : 0;
}

static struct nbdkit_plugin plugin = {
  .name = "vmback",
  .longname = "vmback restore point export",
  .version = "1",
  .description = "serve one disk of a vmback restore point",
  .config_help =
    "repo=PATH      repository (directory or s3://BUCKET/PREFIX), required\n"
    "point=POINT    restore point (id, SOURCE@latest, latest), required\n"
    "disk=KEY       disk of the point (default: the first)\n"
    "overlay=FILE   writable overlay (FILE and FILE.bitmap); default read-only\n"
    "keyfile=FILE   key file of an encrypted repository\n"
    "cache=SIZE     decoded chunk cache (default 64M)\n"
    "ready=LINE     printed on stdout once serving\n"
    "The passphrase of an encrypted repository is read from $VMBACK_PASSPHRASE.",
  .load = vb_load,
  .unload = vb_unload,
  .config = vb_config,
  .config_complete = vb_config_complete,
  .get_ready = vb_get_ready,
  .after_fork = vb_after_fork,
  .cleanup = vb_cleanup,
  .open = vb_open,
  .get_size = vb_get_size,
  .can_write = vb_can_write,
  .can_flush = vb_can_true,
  .can_multi_conn = vb_can_true,
  .can_extents = vb_can_true,
  .block_size = vb_block_size,
  .export_description = vb_export_description,
  .pread = vb_pread,
  .pwrite = vb_pwrite,
  .flush = vb_flush,
  .extents = vb_extents,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)
