/* vmback repository locks (docs/FORMAT.md "Locks").
 *
 * A lock is an object "locks/<shared|exclusive>-<host>-<pid>-<rand>"
 * holding JSON {"pid", "host", "op", "time"}.  Only object create, list
 * and delete are used, so the scheme works on an object store:
 *
 *   shared:    fail if a live exclusive lock exists; create our own; list
 *              again and back off (remove ours, fail) if an exclusive lock
 *              appeared meanwhile.
 *   exclusive: create our own; back off if any other live lock exists.
 *
 * Two racing lockers may both back off; neither ever proceeds while the
 * other holds a conflicting lock.  A lock of a process on this host that
 * no longer exists (kill(pid, 0) == ESRCH) is stale and removed.  Locks of
 * other hosts are never considered stale (we cannot tell).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vmback/repo.h"
#include "repo-int.h"

#define LOCK_MAX 4096          /* a lock object is ~100 bytes */
#define HOST_MAX 64
#define OP_MAX 32
#define LOCK_SLOT 256          /* size of repo_lock_slot() */

/* Defined in repo.c: the 256-byte buffer holding our lock key ("" = none). */

/* This host's name, reduced to [A-Za-z0-9._-] (it goes into a key). */
static void
host_name (char *out, size_t cap)
{
  char h[256] = "";
  if (gethostname (h, sizeof h - 1) < 0 || !h[0])
    snprintf (h, sizeof h, "unknown");
  h[sizeof h - 1] = '\0';
  size_t i;
  for (i = 0; h[i] && i + 1 < cap; i++) {
    char c = h[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    out[i] = ok ? c : '_';
  }
  out[i] = '\0';
}

struct lock_info {
  char key[LOCK_SLOT];
  bool exclusive;
  bool readable;             /* body parsed */
  int64_t pid;
  char host[HOST_MAX + 1];
  char op[OP_MAX + 1];
};

struct scan {
  struct repo *r;
  const char *own;           /* our key or NULL */
  const char *host;          /* this host */
  bool want_exclusive_only;  /* report only exclusive locks */
  struct lock_info found;    /* first live conflicting lock */
  bool conflict;
  struct vb_error *err;
  int rc;
};

/* Read and parse a lock object; readable=false if it cannot be parsed
 * (such a lock is treated as live: we cannot prove it is stale). */
static int
read_lock (struct repo *r, const char *key, struct lock_info *li,
           struct vb_error *err)
{
  struct repo_backend *b = repo_backend (r);
  memset (li, 0, sizeof *li);
  snprintf (li->key, sizeof li->key, "%s", key);
  const char *name = key + strlen ("locks/");
  /* unknown kinds are treated as exclusive: the safe side */
  li->exclusive = strncmp (name, "shared-", 7) != 0;
  uint8_t *buf = NULL;
  size_t len = 0;
  struct vb_error e = { 0 };
  int rc = b->ops->get (b, key, LOCK_MAX, &buf, &len, &e);
  if (rc == -ENOENT)
    return -ENOENT;          /* released meanwhile */
  if (rc < 0 && rc != -EFBIG)
    return vb_err (err, -rc, "%s", e.msg);
  if (rc < 0 || len > INT32_MAX) {
    free (buf);
    return 0;
  }
  struct json_tokener *tok = json_tokener_new ();
  struct json_object *o = tok ? json_tokener_parse_ex (tok, (char *) buf,
                                                       (int) len) : NULL;
  if (tok)
    json_tokener_free (tok);
  free (buf);
  struct json_object *v;
  if (o && json_object_is_type (o, json_type_object)
      && json_object_object_get_ex (o, "pid", &v)
      && json_object_is_type (v, json_type_int)) {
    li->pid = json_object_get_int64 (v);
    if (json_object_object_get_ex (o, "host", &v)
        && json_object_is_type (v, json_type_string)) {
      snprintf (li->host, sizeof li->host, "%s", json_object_get_string (v));
      li->readable = li->pid > 0 && li->pid <= INT32_MAX;
    }
    if (json_object_object_get_ex (o, "op", &v)
        && json_object_is_type (v, json_type_string))
      snprintf (li->op, sizeof li->op, "%s", json_object_get_string (v));
  }
  json_object_put (o);
  return 0;
}

/* True if the lock belongs to a process of this host that is gone. */
static bool
lock_is_stale (const struct lock_info *li, const char *host)
{
  if (!li->readable || strcmp (li->host, host) != 0)
    return false;
  if (kill ((pid_t) li->pid, 0) == 0)
    return false;
  return errno == ESRCH;
}

/* list callback: find the first live lock that conflicts; remove stale
 * ones on the way. */
static int
scan_lock (void *opaque, const char *key, uint64_t size)
{
  struct scan *s = opaque;
  if (s->own && strcmp (key, s->own) == 0)
    return 0;
  struct lock_info li;
  int rc = read_lock (s->r, key, &li, s->err);
  if (rc == -ENOENT)
    return 0;
  if (rc < 0) {
    s->rc = rc;
    return 1;
  }
  if (s->want_exclusive_only && !li.exclusive)
    return 0;
  if (lock_is_stale (&li, s->host)) {
    struct repo_backend *b = repo_backend (s->r);
    struct vb_error e = { 0 };
    vb_debug ("removing stale lock '%s' of dead pid %" PRId64 " on %s", key,
              li.pid, li.host);
    if (b->ops->del (b, key, &e) < 0)
      vb_debug ("cannot remove stale lock '%s': %s", key, e.msg);
    return 0;
  }
  s->found = li;
  s->conflict = true;
  return 1;
}

/* Look for a live conflicting lock: 0 none, -EBUSY (with the message),
 * or another error. */
static int
find_conflict (struct repo *r, const char *own, bool exclusive_only,
               const char *host, struct vb_error *err)
{
  struct repo_backend *b = repo_backend (r);
  struct scan s = { .r = r, .own = own, .host = host,
                    .want_exclusive_only = exclusive_only, .err = err };
  int rc = b->ops->list (b, "locks/", scan_lock, &s, err);
  if (s.rc < 0)
    return s.rc;
  if (rc < 0)
    return rc;
  if (!s.conflict)
    return 0;
  if (!s.found.readable)
    return vb_err (err, EBUSY, "repository is locked by '%s' (unreadable "
                   "lock: remove it if no vmback runs)", s.found.key);
  return vb_err (err, EBUSY, "repository is locked by pid %" PRId64 " on %s "
                 "(%s)", s.found.pid, s.found.host,
                 s.found.op[0] ? s.found.op : "unknown operation");
}

/* Take a shared or exclusive lock for op (see the file comment). */
int
repo_lock (struct repo *r, bool exclusive, const char *op,
           struct vb_error *err)
{
  char *slot = repo_lock_slot (r);
  if (slot[0])
    return vb_err (err, EALREADY, "repository '%s' is already locked by this "
                   "process (%s)", repo_path (r), slot);
  char host[HOST_MAX + 1];
  host_name (host, sizeof host);
  int rc;
  if (!exclusive) {
    rc = find_conflict (r, NULL, true, host, err);
    if (rc < 0)
      return rc;
  }
  uint32_t rnd = 0;
  if (getrandom (&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t) sizeof rnd)
    rnd = (uint32_t) time (NULL) ^ (uint32_t) clock ();
  char key[LOCK_SLOT];
  snprintf (key, sizeof key, "locks/%s-%s-%ld-%08" PRIx32,
            exclusive ? "exclusive" : "shared", host, (long) getpid (), rnd);

  struct json_object *o = json_object_new_object ();
  if (!o)
    return vb_errno (err, ENOMEM, "cannot lock repository '%s'", repo_path (r));
  char opbuf[OP_MAX + 1];
  snprintf (opbuf, sizeof opbuf, "%s", op ? op : "");
  json_object_object_add (o, "pid", json_object_new_int64 (getpid ()));
  json_object_object_add (o, "host", json_object_new_string (host));
  json_object_object_add (o, "op", json_object_new_string (opbuf));
  json_object_object_add (o, "time", json_object_new_int64 (time (NULL)));
  const char *body = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  struct repo_backend *b = repo_backend (r);
  rc = body ? b->ops->put (b, key, body, strlen (body), REPO_PUT_EXCL, err)
            : vb_errno (err, ENOMEM, "cannot lock repository");
  json_object_put (o);
  if (rc < 0) {
    vb_err_prefix (err, "cannot lock repository '%s'", repo_path (r));
    return rc;
  }
  /* re-check: an exclusive locker may have come in meanwhile (shared), or
   * anybody holds a lock (exclusive) */
  rc = find_conflict (r, key, !exclusive, host, err);
  if (rc < 0) {
    struct vb_error e = { 0 };
    b->ops->del (b, key, &e);
    return rc;
  }
  snprintf (slot, LOCK_SLOT, "%s", key);
  vb_debug ("locked repository '%s': %s", repo_path (r), key);
  return 0;
}

/* Release our lock, if any. */
void
repo_unlock (struct repo *r)
{
  char *slot = repo_lock_slot (r);
  if (!slot[0])
    return;
  struct repo_backend *b = repo_backend (r);
  struct vb_error e = { 0 };
  if (b->ops->del (b, slot, &e) < 0)
    vb_debug ("cannot remove lock '%s': %s", slot, e.msg);
  slot[0] = '\0';
}
