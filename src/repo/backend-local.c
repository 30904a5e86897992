/* vmback repository storage backend "local": a directory (docs/FORMAT.md).
 *
 * A key "a/b/c" is the file <root>/a/b/c.  Objects appear atomically and
 * durably: put() writes a temporary file ".tmp-<pid>-<rand>" in the target
 * directory, fsyncs it, moves it to its final name (rename(), or link() +
 * unlink() for REPO_PUT_EXCL, which fails atomically when the name exists)
 * and fsyncs the directory (not for REPO_PUT_VOLATILE).  Directories are
 * created 0700 as needed, files 0600.  Temporary files are invisible to
 * list(); names starting with ".tmp-" are therefore not valid key
 * components.
 *
 * Failpoints (error.h), each failing like the system call it guards:
 * "repo-write" (a put's data), "repo-fsync" (a put's fsync, and the
 * syncfs of a deferred batch), "repo-rename" (rename or link to the final
 * name, also in a batch), "repo-dirsync" (fsync of a directory),
 * "repo-read" (a get's data) and "repo-delete" (a del's unlink).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "repo-int.h"

#define KEY_MAX 1024          /* longest key accepted (bytes) */
#define LIST_MAX_DEPTH 16     /* deepest directory nesting list() walks */
#define PUT_RETRIES 5         /* mkdir/open races with a concurrent del() */
#define TMP_PREFIX ".tmp-"

/* A deferred put: written (not yet synced) under tmp, to become path. */
struct pending {
  char *tmp, *path;
};

#define PENDING_MAX 1024      /* deferred puts before an automatic sync */

struct local_backend {
  struct repo_backend base;
  char *root;                 /* directory path, no trailing '/' */
  pthread_mutex_t mu;         /* guards the pending list */
  struct pending *pend;
  size_t npend, cappend;
};

static int local_sync (struct repo_backend *b, struct vb_error *err);

/* The local backend behind a generic handle. */
static struct local_backend *
lb (struct repo_backend *b)
{
  return (struct local_backend *) b;
}

/* Check that key is a relative path of non-empty components, none of them
 * "." or "..", none a temporary-file name; prefix_ok allows an empty key
 * and a trailing '/' (list prefixes). */
static int
check_key (const char *key, bool prefix_ok, struct vb_error *err)
{
  size_t len = strnlen (key, KEY_MAX + 1);
  if (len > KEY_MAX)
    return vb_err (err, EINVAL, "invalid object key: longer than %u bytes",
                   KEY_MAX);
  if (len == 0) {
    if (prefix_ok)
      return 0;
    return vb_err (err, EINVAL, "invalid object key: empty");
  }
  if (key[0] == '/')
    return vb_err (err, EINVAL, "invalid object key '%s': absolute path", key);
  const char *p = key;
  while (*p) {
    const char *s = strchr (p, '/');
    size_t n = s ? (size_t) (s - p) : strlen (p);
    if (n == 0)
      return vb_err (err, EINVAL, "invalid object key '%s': empty component",
                     key);
    if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
      return vb_err (err, EINVAL, "invalid object key '%s': '.' or '..' "
                     "component", key);
    if (n >= strlen (TMP_PREFIX) && memcmp (p, TMP_PREFIX, strlen (TMP_PREFIX)) == 0)
      return vb_err (err, EINVAL, "invalid object key '%s': reserved name "
                     "'" TMP_PREFIX "...'", key);
    if (!s)
      break;
    p = s + 1;
    if (*p == '\0') {
      if (prefix_ok)
        break;
      return vb_err (err, EINVAL, "invalid object key '%s': trailing '/'",
                     key);
    }
  }
  return 0;
}

/* malloc'd "<root>/<key>" (or the root itself for an empty key). */
static char *
key_path (struct local_backend *l, const char *key)
{
  size_t n = strlen (l->root) + 1 + strlen (key) + 1;
  char *p = malloc (n);
  if (p)
    snprintf (p, n, "%s%s%s", l->root, *key ? "/" : "", key);
  return p;
}

/* true (errno set) if the failpoint name fires now. */
static bool
fail_now (const char *name)
{
  int e = vb_failpoint (name);
  if (e)
    errno = e;
  return e != 0;
}

/* fsync a directory so that a name created or removed in it is durable. */
static int
fsync_dir (const char *dir)
{
  if (fail_now ("repo-dirsync"))
    return -errno;
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int r = 0;
  if (fsync (fd) < 0 && errno != EINVAL && errno != EROFS)
    r = -errno;
  close (fd);
  return r;
}

/* fsync the directory holding path (path's last '/' splits it). */
static int
fsync_parent (const char *path)
{
  char *d = strdup (path);
  if (!d)
    return -ENOMEM;
  char *s = strrchr (d, '/');
  int r;
  if (s == d)
    r = fsync_dir ("/");
  else if (s) {
    *s = '\0';
    r = fsync_dir (d);
  } else
    r = fsync_dir (".");
  free (d);
  return r;
}

/* mkdir -p with mode 0700; each directory created is made durable by
 * fsyncing its parent.  dir is modified temporarily, restored on return. */
static int
mkdir_p (char *dir)
{
  struct stat st;
  if (stat (dir, &st) == 0)
    return S_ISDIR (st.st_mode) ? 0 : -ENOTDIR;
  if (errno != ENOENT)
    return -errno;
  char *s = strrchr (dir, '/');
  if (s && s != dir) {
    *s = '\0';
    int r = mkdir_p (dir);
    *s = '/';
    if (r < 0)
      return r;
  }
  if (mkdir (dir, 0700) < 0) {
    if (errno != EEXIST)
      return -errno;
    return 0;                 /* made concurrently */
  }
  return fsync_parent (dir);
}

/* Write all of buf to fd (retrying short writes and EINTR). */
static int
write_all (int fd, const void *buf, size_t len)
{
  if (fail_now ("repo-write"))
    return -errno;
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = write (fd, p, len > (1u << 30) ? (1u << 30) : len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      return -EIO;
    p += n;
    len -= (size_t) n;
  }
  return 0;
}

/* A random 64-bit value for temporary names (not a secret). */
static uint64_t
rand64 (void)
{
  uint64_t v;
  if (getrandom (&v, sizeof v, GRND_NONBLOCK) == (ssize_t) sizeof v)
    return v;
  static uint64_t ctr;
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ((uint64_t) ts.tv_nsec << 20) ^ (uint64_t) ts.tv_sec ^ ++ctr
         ^ ((uint64_t) getpid () << 40);
}

/* Open the backend: url is the repository directory. */
static int
local_open (const char *url, bool create, struct repo_backend **out,
            struct vb_error *err)
{
  *out = NULL;
  if (!url || !*url)
    return vb_err (err, EINVAL, "repository path is empty");
  struct local_backend *l = calloc (1, sizeof *l);
  if (!l || !(l->root = strdup (url))) {
    free (l);
    return vb_errno (err, ENOMEM, "cannot open repository '%s'", url);
  }
  l->base.ops = &repo_backend_local;
  pthread_mutex_init (&l->mu, NULL);
  size_t n = strlen (l->root);
  while (n > 1 && l->root[n - 1] == '/')
    l->root[--n] = '\0';
  struct stat st;
  if (stat (l->root, &st) < 0) {
    int e = errno;
    if (e == ENOENT && create) {
      int r = mkdir_p (l->root);
      if (r < 0) {
        vb_errno (err, -r, "cannot create repository directory '%s'", url);
        free (l->root);
        free (l);
        return r;
      }
    } else {
      if (e == ENOENT)
        vb_err (err, ENOENT, "repository '%s' does not exist", url);
      else
        vb_errno (err, e, "cannot open repository '%s'", url);
      free (l->root);
      free (l);
      return -e;
    }
  } else if (!S_ISDIR (st.st_mode)) {
    vb_err (err, ENOTDIR, "repository '%s' is not a directory", url);
    free (l->root);
    free (l);
    return -ENOTDIR;
  }
  *out = &l->base;
  return 0;
}

/* Close the backend. */
static void
local_close (struct repo_backend *b)
{
  if (!b)
    return;
  struct local_backend *l = lb (b);
  for (size_t i = 0; i < l->npend; i++) {   /* never synced: not stored */
    unlink (l->pend[i].tmp);
    free (l->pend[i].tmp);
    free (l->pend[i].path);
  }
  free (l->pend);
  pthread_mutex_destroy (&l->mu);
  free (l->root);
  free (b);
}

/* Store an object durably and atomically (see the file comment). */
static int local_put_data (struct repo_backend *b, const char *key, const void *data,
                           size_t len, unsigned flags, struct vb_error *err);

/* Store an object; with REPO_PUT_TAKE, free data afterwards. */
static int
local_put (struct repo_backend *b, const char *key, const void *data,
           size_t len, unsigned flags, struct vb_error *err)
{
  int r = local_put_data (b, key, data, len, flags, err);
  if (flags & REPO_PUT_TAKE)
    free ((void *) data);
  return r;
}

/* Store an object (see the file comment). */
static int
local_put_data (struct repo_backend *b, const char *key, const void *data,
                size_t len, unsigned flags, struct vb_error *err)
{
  struct local_backend *l = lb (b);
  int r = check_key (key, false, err);
  if (r < 0)
    return r;
  if (len > REPO_MAX_OBJECT)
    return vb_err (err, EFBIG, "cannot store '%s': %zu bytes is larger than "
                   "the largest object (%u bytes)", key, len, REPO_MAX_OBJECT);
  char *path = key_path (l, key);
  size_t tn = path ? strlen (path) + 64 : 0;
  char *tmp = path ? malloc (tn) : NULL;
  if (!tmp) {
    free (path);
    return vb_errno (err, ENOMEM, "cannot store '%s'", key);
  }
  char *dir = strdup (path);
  if (!dir) {
    free (path);
    free (tmp);
    return vb_errno (err, ENOMEM, "cannot store '%s'", key);
  }
  *strrchr (dir, '/') = '\0';   /* path = root "/" key: always has one */

  int fd = -1;
  for (int attempt = 0; attempt < PUT_RETRIES && fd < 0; attempt++) {
    r = mkdir_p (dir);
    if (r < 0) {
      vb_errno (err, -r, "cannot create directory '%s'", dir);
      goto out;
    }
    snprintf (tmp, tn, "%s/" TMP_PREFIX "%ld-%016" PRIx64, dir,
              (long) getpid (), rand64 ());
    fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != ENOENT && errno != EEXIST) {
      r = vb_errno (err, errno, "cannot create '%s'", tmp);
      goto out;
    }
  }
  if (fd < 0) {
    r = vb_errno (err, errno, "cannot create '%s'", tmp);
    goto out;
  }
  r = write_all (fd, data, len);
  bool defer = (flags & REPO_PUT_DEFER) && !(flags & REPO_PUT_EXCL);
  if (r == 0 && !defer && (fail_now ("repo-fsync") || fsync (fd) < 0))
    r = -errno;
  /* deferred: start writeback now (no waiting), so the batch's syncfs
   * finds little left to do */
  if (r == 0 && defer)
    sync_file_range (fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  if (close (fd) < 0 && r == 0)
    r = -errno;
  if (r < 0) {
    vb_errno (err, -r, "cannot write '%s'", tmp);
    unlink (tmp);
    goto out;
  }

  if (defer) {
    /* made durable and visible together with others by local_sync */
    pthread_mutex_lock (&l->mu);
    if (l->npend == l->cappend) {
      size_t nc = l->cappend ? l->cappend * 2 : 256;
      struct pending *np = realloc (l->pend, nc * sizeof *np);
      if (np) {
        l->pend = np;
        l->cappend = nc;
      }
    }
    bool queued = l->npend < l->cappend;
    if (queued) {
      l->pend[l->npend++] = (struct pending) { .tmp = tmp, .path = path };
      tmp = path = NULL;
    }
    size_t n = l->npend;
    pthread_mutex_unlock (&l->mu);
    if (!queued) {
      r = vb_errno (err, ENOMEM, "cannot store '%s'", key);
      unlink (tmp);
    } else if (n >= PENDING_MAX)
      r = local_sync (b, err);
    goto out;
  }
  if (flags & REPO_PUT_EXCL) {
    if (fail_now ("repo-rename") || link (tmp, path) < 0) {
      int e = errno;
      if (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EMLINK
          || e == ENOSYS) {
        /* no hard links here: renameat2 NOREPLACE is just as atomic */
        if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
          goto placed;
        e = errno;
      }
      unlink (tmp);
      if (e == EEXIST)
        r = vb_err (err, EEXIST, "object '%s' already exists", key);
      else
        r = vb_errno (err, e, "cannot create '%s'", path);
      goto out;
    }
    unlink (tmp);
  } else if (fail_now ("repo-rename") || rename (tmp, path) < 0) {
    r = vb_errno (err, errno, "cannot rename '%s' to '%s'", tmp, path);
    unlink (tmp);
    goto out;
  }
placed:
  /* a volatile object's data is synced (a lock that survives a crash is
   * whole), its name need not be */
  r = flags & REPO_PUT_VOLATILE ? 0 : fsync_dir (dir);
  if (r < 0) {
    vb_errno (err, -r, "cannot sync directory '%s'", dir);
    /* a failed put must leave no object: callers undo the rest (a VM
     * backup deletes its indexes after a failed manifest, a locker gives
     * up), so an exclusive object, which did not exist before, goes too */
    if (flags & REPO_PUT_EXCL)
      unlink (path);
  }
out:
  free (dir);
  free (tmp);
  free (path);
  return r;
}

/* Read a whole object of at most max bytes (capped at REPO_MAX_OBJECT)
 * into a malloc'd buffer, NUL-terminated for the convenience of text
 * parsers (the NUL is not counted in *len). */
static int
local_get (struct repo_backend *b, const char *key, size_t max,
           uint8_t **data, size_t *len, struct vb_error *err)
{
  *data = NULL;
  *len = 0;
  int r = check_key (key, false, err);
  if (r < 0)
    return r;
  if (max > REPO_MAX_OBJECT)
    max = REPO_MAX_OBJECT;
  char *path = key_path (lb (b), key);
  if (!path)
    return vb_errno (err, ENOMEM, "cannot read '%s'", key);
  uint8_t *buf = NULL;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      r = vb_err (err, ENOENT, "object '%s' does not exist", key);
    else
      r = vb_errno (err, errno, "cannot open '%s'", path);
    goto out;
  }
  struct stat st;
  if (fstat (fd, &st) < 0) {
    r = vb_errno (err, errno, "cannot stat '%s'", path);
    goto out;
  }
  if (!S_ISREG (st.st_mode)) {
    r = vb_err (err, EISDIR, "object '%s' is not a regular file", key);
    goto out;
  }
  if (st.st_size < 0 || (uint64_t) st.st_size > max) {
    r = vb_err (err, EFBIG, "object '%s' is too large (%" PRId64 " bytes, "
                "at most %zu expected)", key, (int64_t) st.st_size, max);
    goto out;
  }
  /* size <= max <= REPO_MAX_OBJECT (64 MiB): +1 for the growth probe and
   * the terminating NUL cannot overflow */
  size_t size = (size_t) st.st_size;
  buf = malloc (size + 1);
  if (!buf) {
    r = vb_errno (err, ENOMEM, "cannot read '%s'", key);
    goto out;
  }
  size_t got = 0;
  while (got < size + 1) {
    ssize_t n = fail_now ("repo-read") ? -1 : read (fd, buf + got, size + 1 - got);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      r = vb_errno (err, errno, "cannot read '%s'", path);
      goto out;
    }
    if (n == 0)
      break;
    got += (size_t) n;
  }
  if (got != size) {
    r = vb_err (err, EIO, "object '%s' changed size while being read", key);
    goto out;
  }
  buf[size] = '\0';
  *data = buf;
  *len = size;
  buf = NULL;
out:
  if (fd >= 0)
    close (fd);
  free (buf);
  free (path);
  return r;
}

/* Read [off, off+len) of an object (see repo-int.h). */
static int
local_get_range (struct repo_backend *b, const char *key, uint64_t off, size_t len,
                 uint8_t **data, struct vb_error *err)
{
  *data = NULL;
  int r = check_key (key, false, err);
  if (r < 0)
    return r;
  if (len > REPO_MAX_OBJECT || off > REPO_MAX_OBJECT)
    return vb_err (err, EFBIG, "cannot read %zu bytes at %" PRIu64 " of '%s': "
                   "past the largest object", len, off, key);
  char *path = key_path (lb (b), key);
  if (!path)
    return vb_errno (err, ENOMEM, "cannot read '%s'", key);
  uint8_t *buf = malloc (len ? len : 1);
  int fd = buf ? open (path, O_RDONLY | O_CLOEXEC) : -1;
  if (!buf)
    r = vb_errno (err, ENOMEM, "cannot read '%s'", key);
  else if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
    r = vb_err (err, ENOENT, "object '%s' does not exist", key);
  else if (fd < 0)
    r = vb_errno (err, errno, "cannot open '%s'", path);
  size_t got = 0;
  while (r == 0 && got < len) {
    ssize_t n = fail_now ("repo-read") ? -1
      : pread (fd, buf + got, len - got, (off_t) (off + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      r = vb_errno (err, errno, "cannot read '%s'", path);
    else if (n == 0)
      r = vb_err (err, EIO, "object '%s' ends before byte %" PRIu64 " (truncated?)",
                  key, off + len);
    got += n > 0 ? (size_t) n : 0;
  }
  if (fd >= 0)
    close (fd);
  free (path);
  if (r < 0)
    free (buf);
  else
    *data = buf;
  return r;
}

/* 1 if the object exists (a regular file), 0 if not, <0 on error. */
static int
local_exists (struct repo_backend *b, const char *key, struct vb_error *err)
{
  int r = check_key (key, false, err);
  if (r < 0)
    return r;
  char *path = key_path (lb (b), key);
  if (!path)
    return vb_errno (err, ENOMEM, "cannot look up '%s'", key);
  struct stat st;
  if (stat (path, &st) == 0)
    r = S_ISREG (st.st_mode) ? 1 : 0;
  else if (errno == ENOENT || errno == ENOTDIR)
    r = 0;
  else
    r = vb_errno (err, errno, "cannot stat '%s'", path);
  free (path);
  return r;
}

struct walk {
  const char *prefix;         /* string prefix every reported key has */
  repo_list_fn fn;
  void *opaque;
  struct vb_error *err;
  char key[KEY_MAX + 1];      /* key of the directory being walked */
};

/* Walk directory fs path `dir` whose key is w->key[0..klen), reporting
 * regular files whose key starts with w->prefix. */
static int
walk_dir (struct walk *w, const char *dir, size_t klen, int depth)
{
  if (depth > LIST_MAX_DEPTH)
    return vb_err (w->err, ELOOP, "cannot list '%s': directories nested "
                   "deeper than %d", dir, LIST_MAX_DEPTH);
  DIR *d = opendir (dir);
  if (!d) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    return vb_errno (w->err, errno, "cannot list '%s'", dir);
  }
  size_t plen = strlen (w->prefix);
  int r = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir (d);
    if (!de) {
      if (errno)
        r = vb_errno (w->err, errno, "cannot list '%s'", dir);
      break;
    }
    const char *nm = de->d_name;
    if (strcmp (nm, ".") == 0 || strcmp (nm, "..") == 0
        || strncmp (nm, TMP_PREFIX, strlen (TMP_PREFIX)) == 0)
      continue;
    size_t nl = strlen (nm);
    if (klen + (klen ? 1 : 0) + nl > KEY_MAX) {
      vb_debug ("list: skipping over-long name in '%s'", dir);
      continue;
    }
    size_t kl2 = klen;
    if (klen)
      w->key[kl2++] = '/';
    memcpy (w->key + kl2, nm, nl + 1);
    kl2 += nl;
    /* skip subtrees that cannot match the prefix */
    size_t cmp = kl2 < plen ? kl2 : plen;
    if (memcmp (w->key, w->prefix, cmp) != 0) {
      w->key[klen] = '\0';
      continue;
    }
    size_t dl = strlen (dir) + 1 + nl + 1;
    char *sub = malloc (dl);
    if (!sub) {
      r = vb_errno (w->err, ENOMEM, "cannot list '%s'", dir);
      break;
    }
    snprintf (sub, dl, "%s/%s", dir, nm);
    struct stat st;
    if (stat (sub, &st) < 0) {
      if (errno != ENOENT) {     /* removed meanwhile: not an error */
        r = vb_errno (w->err, errno, "cannot stat '%s'", sub);
        free (sub);
        break;
      }
    } else if (S_ISDIR (st.st_mode))
      r = walk_dir (w, sub, kl2, depth + 1);
    else if (S_ISREG (st.st_mode) && kl2 >= plen)
      r = w->fn (w->opaque, w->key, (uint64_t) st.st_size);
    free (sub);
    w->key[klen] = '\0';
    if (r != 0)
      break;
  }
  closedir (d);
  return r;
}

/* Report every object whose key starts with prefix. */
static int
local_list (struct repo_backend *b, const char *prefix, repo_list_fn fn,
            void *opaque, struct vb_error *err)
{
  struct local_backend *l = lb (b);
  if (!prefix)
    prefix = "";
  int r = check_key (prefix, true, err);
  if (r < 0)
    return r;
  struct walk *w = calloc (1, sizeof *w);
  if (!w)
    return vb_errno (err, ENOMEM, "cannot list '%s'", prefix);
  w->prefix = prefix;
  w->fn = fn;
  w->opaque = opaque;
  w->err = err;
  /* start at the deepest directory the prefix names completely */
  const char *slash = strrchr (prefix, '/');
  size_t klen = slash ? (size_t) (slash - prefix) : 0;
  memcpy (w->key, prefix, klen);
  w->key[klen] = '\0';
  char *dir = key_path (l, w->key);
  if (!dir) {
    free (w);
    return vb_errno (err, ENOMEM, "cannot list '%s'", prefix);
  }
  r = walk_dir (w, dir, klen, 0);
  free (dir);
  free (w);
  return r;
}

/* Remove an object (missing is fine), then the directories it leaves
 * empty below the top level ("chunks/ab", "snapshots/web/<time>"). */
static int
local_del (struct repo_backend *b, const char *key, struct vb_error *err)
{
  struct local_backend *l = lb (b);
  int r = check_key (key, false, err);
  if (r < 0)
    return r;
  char *path = key_path (l, key);
  if (!path)
    return vb_errno (err, ENOMEM, "cannot remove '%s'", key);
  if (fail_now ("repo-delete") || unlink (path) < 0) {
    if (errno != ENOENT && errno != ENOTDIR)
      r = vb_errno (err, errno, "cannot remove '%s'", path);
    free (path);
    return r;
  }
  r = fsync_parent (path);
  if (r < 0)
    vb_errno (err, -r, "cannot sync directory of '%s'", path);
  /* tidy up: rmdir fails harmlessly on a non-empty directory, and put()
   * retries when a directory vanishes under it */
  size_t rootlen = strlen (l->root);
  char *s;
  while ((s = strrchr (path, '/')) && (size_t) (s - path) > rootlen) {
    *s = '\0';
    if (!strchr (path + rootlen + 1, '/'))
      break;                    /* keep top-level directories */
    if (rmdir (path) < 0)
      break;
  }
  free (path);
  return r;
}

/* Make every deferred put durable, then visible: one syncfs for all their
 * data, the renames, and one more syncfs for the directory entries.  A
 * crash before the renames leaves only temp files, never an object whose
 * name promises content that is not on disk. */
static int
local_sync (struct repo_backend *b, struct vb_error *err)
{
  struct local_backend *l = lb (b);
  pthread_mutex_lock (&l->mu);
  struct pending *p = l->pend;
  size_t n = l->npend;
  l->pend = NULL;
  l->npend = l->cappend = 0;
  pthread_mutex_unlock (&l->mu);
  if (n == 0)
    return 0;
  int r = 0;
  int fd = open (l->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fail_now ("repo-fsync") || syncfs (fd) < 0)
    r = vb_errno (err, errno, "cannot sync repository '%s'", l->root);
  for (size_t i = 0; i < n; i++) {
    if (r == 0 && (fail_now ("repo-rename") || rename (p[i].tmp, p[i].path) < 0))
      r = vb_errno (err, errno, "cannot rename '%s' to '%s'", p[i].tmp, p[i].path);
    if (r < 0)
      unlink (p[i].tmp);
    free (p[i].tmp);
    free (p[i].path);
  }
  free (p);
  if (r == 0 && (fail_now ("repo-fsync") || syncfs (fd) < 0))
    r = vb_errno (err, errno, "cannot sync repository '%s'", l->root);
  if (fd >= 0)
    close (fd);
  return r;
}

/* Remove (or count) the ".tmp-" files under dir, recursively. */
static int
sweep_tmp_dir (const char *dir, int depth, bool dry_run, uint64_t *n,
               uint64_t *bytes, struct vb_error *err)
{
  if (depth > LIST_MAX_DEPTH)
    return 0;
  DIR *d = opendir (dir);
  if (!d)
    return errno == ENOENT || errno == ENOTDIR ? 0
           : vb_errno (err, errno, "cannot list '%s'", dir);
  int r = 0;
  struct dirent *de;
  while (r == 0 && (de = readdir (d))) {
    const char *nm = de->d_name;
    struct stat st;
    if (strcmp (nm, ".") == 0 || strcmp (nm, "..") == 0
        || fstatat (dirfd (d), nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    if (S_ISDIR (st.st_mode)) {
      char *sub;
      if (asprintf (&sub, "%s/%s", dir, nm) < 0)
        r = vb_errno (err, ENOMEM, "cannot list '%s'", dir);
      else {
        r = sweep_tmp_dir (sub, depth + 1, dry_run, n, bytes, err);
        free (sub);
      }
    } else if (S_ISREG (st.st_mode) && strncmp (nm, TMP_PREFIX, strlen (TMP_PREFIX)) == 0) {
      if (!dry_run && unlinkat (dirfd (d), nm, 0) < 0 && errno != ENOENT)
        r = vb_errno (err, errno, "cannot delete '%s/%s'", dir, nm);
      else {
        (*n)++;
        *bytes += (uint64_t) st.st_size;
      }
    }
  }
  closedir (d);
  return r;
}

/* Temporary files of interrupted puts (see repo-int.h). */
static int
local_sweep_tmp (struct repo_backend *b, bool dry_run, uint64_t *n, uint64_t *bytes,
                 struct vb_error *err)
{
  return sweep_tmp_dir (lb (b)->root, 0, dry_run, n, bytes, err);
}

const struct repo_backend_ops repo_backend_local = {
  .name = "local",
  .open = local_open,
  .close = local_close,
  .put = local_put,
  .get = local_get,
  .get_range = local_get_range,
  .exists = local_exists,
  .list = local_list,
  .del = local_del,
  .sync = local_sync,
  .sweep_tmp = local_sweep_tmp,
};
