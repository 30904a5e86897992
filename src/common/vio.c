/* vmback: small file I/O helpers shared by every driver.
 *
 * All reads and writes of on-disk structures go through these so that
 * short I/O, EINTR and EOF are handled in one place.  They carry the
 * failpoints (error.h) of disk I/O: "disk-read", "disk-write" and
 * "disk-fsync" (vio_pread, vio_pwrite, vio_fsync: extents, headers,
 * tables, trackers), and "meta-write", "meta-fsync", "meta-rename" (the
 * steps of vio_write_file_atomic: descriptors, .vmx, .vmsd, journals).
 * An injected failure sets errno and returns like the real call. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/vdisk-int.h"

/* -errno (errno set) if the failpoint name fires now, else 0. */
static int
fail_now (const char *name)
{
  int e = vb_failpoint (name);
  if (e)
    errno = e;
  return -e;
}

/* Read exactly count bytes at off; EOF before that is -EIO. */
int
vio_pread (int fd, void *buf, size_t count, uint64_t off)
{
  int fe = fail_now ("disk-read");
  if (fe)
    return fe;
  uint8_t *p = buf;
  while (count > 0) {
    ssize_t r = pread (fd, p, count, (off_t) off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return -EIO;
    p += r;
    count -= (size_t) r;
    off += (uint64_t) r;
  }
  return 0;
}

/* Write exactly count bytes at off (no failpoint). */
static int
pwrite_all (int fd, const void *buf, size_t count, uint64_t off)
{
  const uint8_t *p = buf;
  while (count > 0) {
    ssize_t r = pwrite (fd, p, count, (off_t) off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (r == 0)
      return -EIO;
    p += r;
    count -= (size_t) r;
    off += (uint64_t) r;
  }
  return 0;
}

/* Write exactly count bytes at off. */
int
vio_pwrite (int fd, const void *buf, size_t count, uint64_t off)
{
  int fe = fail_now ("disk-write");
  return fe ? fe : pwrite_all (fd, buf, count, off);
}

/* fsync, reporting -errno. */
int
vio_fsync (int fd)
{
  int fe = fail_now ("disk-fsync");
  if (fe)
    return fe;
  return fsync (fd) < 0 ? -errno : 0;
}

/* Size of an open file in bytes, or -errno. */
int64_t
vio_size (int fd)
{
  struct stat st;
  if (fstat (fd, &st) < 0)
    return -errno;
  return (int64_t) st.st_size;
}

/* fsync a directory. */
static int
sync_dir (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int r = fsync (fd) < 0 ? -errno : 0;
  close (fd);
  return r;
}

/* Directories whose fsync is put off until vio_dir_sync_flush (this
 * thread, between vio_dir_sync_defer and vio_dir_sync_flush). */
#define DEFER_MAX 8
static _Thread_local struct {
  bool on;
  size_t n;
  char *dir[DEFER_MAX];
} deferred;

/* fsync the directory holding path, so a rename in it is durable; in a
 * deferred stretch, only remember the directory. */
int
vio_fsync_dir (const char *path)
{
  char *dir = vdisk_path_dir (path);
  if (!dir)
    return -ENOMEM;
  if (deferred.on) {
    for (size_t i = 0; i < deferred.n; i++)
      if (strcmp (deferred.dir[i], dir) == 0) {
        free (dir);
        return 0;
      }
    if (deferred.n < DEFER_MAX) {
      deferred.dir[deferred.n++] = dir;
      return 0;
    }
  }
  int r = sync_dir (dir);
  free (dir);
  return r;
}

/* Put off directory fsyncs (see vdisk-int.h). */
void
vio_dir_sync_defer (void)
{
  deferred.on = true;
}

/* fsync every directory put off, end the deferred stretch; 0 or the
 * first -errno. */
int
vio_dir_sync_flush (void)
{
  int r = 0;
  for (size_t i = 0; i < deferred.n; i++) {
    int ri = sync_dir (deferred.dir[i]);
    if (r == 0)
      r = ri;
    free (deferred.dir[i]);
  }
  deferred.n = 0;
  deferred.on = false;
  return r;
}

/* Replace path with buf atomically: temp file, fsync, rename, fsync dir. */
int
vio_write_file_atomic (const char *path, const void *buf, size_t len,
                       struct vb_error *err)
{
  size_t n = strlen (path) + 32;
  char *tmp = malloc (n);
  if (!tmp)
    return vb_errno (err, ENOMEM, "cannot write '%s'", path);
  snprintf (tmp, n, "%s.tmp.%ld", path, (long) getpid ());
  int r = 0;
  int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    r = vb_errno (err, errno, "cannot create '%s'", tmp);
    goto out;
  }
  r = fail_now ("meta-write");
  if (r == 0)
    r = pwrite_all (fd, buf, len, 0);
  if (r == 0)
    r = fail_now ("meta-fsync");
  if (r == 0 && fsync (fd) < 0)
    r = -errno;
  if (close (fd) < 0 && r == 0)
    r = -errno;
  if (r < 0) {
    vb_errno (err, -r, "cannot write '%s'", tmp);
    unlink (tmp);
    goto out;
  }
  if (fail_now ("meta-rename") < 0 || rename (tmp, path) < 0) {
    r = vb_errno (err, errno, "cannot rename '%s' to '%s'", tmp, path);
    unlink (tmp);
    goto out;
  }
  r = vio_fsync_dir (path);
  if (r < 0)
    vb_errno (err, -r, "cannot sync directory of '%s'", path);
out:
  free (tmp);
  return r;
}

/* Read a whole file of at most max bytes into a NUL-terminated buffer. */
int
vio_read_file (const char *path, size_t max, char **out, size_t *len,
               struct vb_error *err)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vb_errno (err, errno, "cannot open '%s'", path);
  int64_t sz = vio_size (fd);
  int r;
  if (sz < 0) {
    r = vb_errno (err, (int) -sz, "cannot stat '%s'", path);
    goto out;
  }
  if ((uint64_t) sz > max) {
    r = vb_err (err, EFBIG, "'%s' is too large (%lld bytes, at most %zu)",
                path, (long long) sz, max);
    goto out;
  }
  char *buf = malloc ((size_t) sz + 1);
  if (!buf) {
    r = vb_errno (err, ENOMEM, "cannot read '%s'", path);
    goto out;
  }
  r = vio_pread (fd, buf, (size_t) sz, 0);
  if (r < 0) {
    free (buf);
    vb_errno (err, -r, "cannot read '%s'", path);
    goto out;
  }
  buf[sz] = '\0';
  *out = buf;
  if (len)
    *len = (size_t) sz;
out:
  close (fd);
  return r;
}

/* true if all len bytes are zero (fast word-wise scan). */
bool
vio_is_zero (const void *buf, size_t len)
{
  const uint8_t *p = buf;
  size_t i = 0;
  for (; i < len && ((uintptr_t) (p + i) & 7); i++)
    if (p[i])
      return false;
  for (; i + 32 <= len; i += 32) {
    uint64_t a, b, c, d;
    memcpy (&a, p + i, 8);
    memcpy (&b, p + i + 8, 8);
    memcpy (&c, p + i + 16, 8);
    memcpy (&d, p + i + 24, 8);
    if (a | b | c | d)
      return false;
  }
  for (; i < len; i++)
    if (p[i])
      return false;
  return true;
}
