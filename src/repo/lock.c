/* vmback repository locks (docs/FORMAT.md "Locks", docs/S3.md).
 *
 * A lock is an object "locks/<shared|exclusive>-<host>-<pid>-<rand>"
 * holding JSON {"pid", "host", "op", "time", "expires"}.  Only object
 * create, overwrite (of our own lock), list and delete are used, so the
 * scheme works on an object store:
 *
 *   shared:    fail if a live exclusive lock exists; create our own; list
 *              again and back off (remove ours, fail) if an exclusive lock
 *              appeared meanwhile.
 *   exclusive: create our own; back off if any other live lock exists.
 *
 * Two racing lockers may both back off; neither ever proceeds while the
 * other holds a conflicting lock.  A lock of a process on this host that
 * no longer exists (kill(pid, 0) == ESRCH) is stale and removed.  A lock
 * of another host is stale once its "expires" time has passed (a lock
 * without one never is): while we hold a lock, a thread rewrites it every
 * ttl/6 with expires = now + ttl.  We consider our own lock lost when it
 * was not refreshed for ttl/2 (on the boot-time clock, which counts
 * suspended time) or when it disappeared; repo_lock_check() reports that,
 * and writers call it before they publish (manifests, deletions).  The
 * margin of ttl/2 covers clock skew between hosts and request latency.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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
#define TTL_DEFAULT 600        /* seconds a lock lives unrefreshed */
#define TTL_MIN 6
#define TTL_MAX (7 * 86400)

/* Our held lock: what its body says, and its refresher thread. */
struct repo_lock_state {
  struct repo *r;
  char key[LOCK_SLOT];
  char host[HOST_MAX + 1];
  char op[OP_MAX + 1];
  int64_t pid, time;
  int ttl;
  pthread_mutex_t mu;
  pthread_cond_t cv;         /* CLOCK_MONOTONIC: wakes the refresher */
  pthread_t th;
  bool started, stop, lost;
  int64_t last_ok;           /* boot-time seconds of the last good write */
  char why[128];             /* how it was lost */
};

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
  int64_t expires;           /* unix seconds, 0 = never */
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
    if (json_object_object_get_ex (o, "expires", &v)
        && json_object_is_type (v, json_type_int))
      li->expires = json_object_get_int64 (v);
  }
  json_object_put (o);
  return 0;
}

/* True if the lock belongs to a process of this host that is gone, or to
 * another host and its expiry time has passed. */
static bool
lock_is_stale (const struct lock_info *li, const char *host)
{
  if (!li->readable)
    return false;
  if (strcmp (li->host, host) != 0)
    return li->expires > 0 && li->expires < (int64_t) time (NULL);
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
    vb_debug ("removing stale lock '%s' of %s pid %" PRId64 " on %s", key,
              strcmp (li.host, s->host) ? "expired" : "dead", li.pid, li.host);
    if (b->ops->del (b, key, &e) < 0)
      vb_debug ("cannot remove stale lock '%s': %s", key, e.msg);
    return 0;
  }
  s->found = li;
  s->conflict = true;
  return 1;
}

/* The pid in a lock's name ("locks/KIND-HOST-PID-RAND"; HOST may hold
 * '-'), or 0 when the name has none. */
static long
key_pid (const char *key)
{
  const char *end = strrchr (key, '-');
  if (!end || end == key)
    return 0;
  const char *p = end;
  while (p > key && p[-1] != '-')
    p--;
  if (p == end || p == key)
    return 0;
  long v = 0;
  for (const char *q = p; q < end; q++) {
    if (*q < '0' || *q > '9' || v > INT32_MAX / 10)
      return 0;
    v = v * 10 + (*q - '0');
  }
  return v;
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
  if (!s.found.readable) {
    long pid = key_pid (s.found.key);
    if (pid > 0)
      return vb_err (err, EBUSY, "repository is locked by pid %ld (unreadable "
                     "lock '%s': remove it if no vmback runs)", pid, s.found.key);
    return vb_err (err, EBUSY, "repository is locked by '%s' (unreadable "
                   "lock: remove it if no vmback runs)", s.found.key);
  }
  return vb_err (err, EBUSY, "repository is locked by pid %" PRId64 " on %s "
                 "(%s)", s.found.pid, s.found.host,
                 s.found.op[0] ? s.found.op : "unknown operation");
}

/* Seconds on the boot-time clock (monotonic, counts suspend). */
static int64_t
boot_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_BOOTTIME, &ts);
  return (int64_t) ts.tv_sec;
}

/* Lock lifetime: $VMBACK_LOCK_TTL seconds, else TTL_DEFAULT. */
static int
lock_ttl (void)
{
  const char *e = getenv ("VMBACK_LOCK_TTL");
  if (!e || !*e)
    return TTL_DEFAULT;
  char *end;
  long v = strtol (e, &end, 10);
  if (*end || v < TTL_MIN || v > TTL_MAX) {
    vb_debug ("ignoring VMBACK_LOCK_TTL='%s' (%d to %d)", e, TTL_MIN, TTL_MAX);
    return TTL_DEFAULT;
  }
  return (int) v;
}

/* The lock object's body (malloc'd JSON), expiring ttl from now. */
static char *
lock_body (const struct repo_lock_state *st)
{
  struct json_object *o = json_object_new_object ();
  if (!o)
    return NULL;
  json_object_object_add (o, "pid", json_object_new_int64 (st->pid));
  json_object_object_add (o, "host", json_object_new_string (st->host));
  json_object_object_add (o, "op", json_object_new_string (st->op));
  json_object_object_add (o, "time", json_object_new_int64 (st->time));
  json_object_object_add (o, "expires",
                          json_object_new_int64 ((int64_t) time (NULL) + st->ttl));
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  char *out = s ? strdup (s) : NULL;
  json_object_put (o);
  return out;
}

/* One refresh: our lock must still exist; then rewrite it with a new
 * expiry.  Sets lost when it is gone or was not refreshed in time. */
static void
refresh_once (struct repo_lock_state *st)
{
  struct repo_backend *b = repo_backend (st->r);
  int64_t t0 = boot_seconds ();
  pthread_mutex_lock (&st->mu);
  bool late = t0 - st->last_ok > st->ttl / 2;
  if (late && !st->lost) {
    st->lost = true;
    snprintf (st->why, sizeof st->why, "not refreshed for %" PRId64 " s",
              t0 - st->last_ok);
  }
  bool lost = st->lost;
  pthread_mutex_unlock (&st->mu);
  if (lost)
    return;                       /* never resurrect a lock others may have seen expire */
  struct vb_error e = { 0 };
  int rc = b->ops->exists (b, st->key, &e);
  if (rc == 0) {
    pthread_mutex_lock (&st->mu);
    st->lost = true;
    snprintf (st->why, sizeof st->why, "removed by another process");
    pthread_mutex_unlock (&st->mu);
    return;
  }
  char *body = rc == 1 ? lock_body (st) : NULL;
  if (body)
    rc = b->ops->put (b, st->key, body, strlen (body), REPO_PUT_VOLATILE, &e);
  free (body);
  if (rc < 0) {
    vb_debug ("cannot refresh lock '%s' (will retry): %s", st->key, e.msg);
    return;
  }
  pthread_mutex_lock (&st->mu);
  st->last_ok = t0;
  pthread_mutex_unlock (&st->mu);
}

/* Refresher thread: refresh every ttl/6 until told to stop or lost. */
static void *
refresher (void *opaque)
{
  struct repo_lock_state *st = opaque;
  int period = st->ttl / 6 > 0 ? st->ttl / 6 : 1;
  pthread_mutex_lock (&st->mu);
  while (!st->stop && !st->lost) {
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    ts.tv_sec += period;
    while (!st->stop && pthread_cond_timedwait (&st->cv, &st->mu, &ts) != ETIMEDOUT)
      ;
    if (st->stop)
      break;
    pthread_mutex_unlock (&st->mu);
    refresh_once (st);
    pthread_mutex_lock (&st->mu);
  }
  pthread_mutex_unlock (&st->mu);
  return NULL;
}

/* Free a lock state, stopping its refresher first. */
static void
state_free (struct repo_lock_state *st)
{
  if (!st)
    return;
  if (st->started) {
    pthread_mutex_lock (&st->mu);
    st->stop = true;
    pthread_cond_broadcast (&st->cv);
    pthread_mutex_unlock (&st->mu);
    pthread_join (st->th, NULL);
  }
  pthread_cond_destroy (&st->cv);
  pthread_mutex_destroy (&st->mu);
  free (st);
}

/* A new lock state for key (refresher not started). */
static struct repo_lock_state *
state_new (struct repo *r, const char *key, const char *host, const char *op)
{
  struct repo_lock_state *st = calloc (1, sizeof *st);
  if (!st)
    return NULL;
  st->r = r;
  snprintf (st->key, sizeof st->key, "%s", key);
  snprintf (st->host, sizeof st->host, "%s", host);
  snprintf (st->op, sizeof st->op, "%s", op ? op : "");
  st->pid = getpid ();
  st->time = time (NULL);
  st->ttl = lock_ttl ();
  st->last_ok = boot_seconds ();
  pthread_mutex_init (&st->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&st->cv, &ca);
  pthread_condattr_destroy (&ca);
  return st;
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

  struct repo_lock_state *st = state_new (r, key, host, op);
  char *body = st ? lock_body (st) : NULL;
  if (!body) {
    state_free (st);
    return vb_errno (err, ENOMEM, "cannot lock repository '%s'", repo_path (r));
  }
  struct repo_backend *b = repo_backend (r);
  st->last_ok = boot_seconds ();
  rc = b->ops->put (b, key, body, strlen (body), REPO_PUT_EXCL | REPO_PUT_VOLATILE, err);
  free (body);
  if (rc < 0) {
    state_free (st);
    vb_err_prefix (err, "cannot lock repository '%s'", repo_path (r));
    return rc;
  }
  /* re-check: an exclusive locker may have come in meanwhile (shared), or
   * anybody holds a lock (exclusive) */
  rc = find_conflict (r, key, !exclusive, host, err);
  if (rc < 0) {
    struct vb_error e = { 0 };
    b->ops->del (b, key, &e);
    state_free (st);
    return rc;
  }
  st->started = pthread_create (&st->th, NULL, refresher, st) == 0;
  if (!st->started)
    vb_debug ("cannot start the lock refresher: the lock of '%s' expires after "
              "%d s", repo_path (r), st->ttl);
  *repo_lock_state_slot (r) = st;
  snprintf (slot, LOCK_SLOT, "%s", key);
  vb_debug ("locked repository '%s': %s (expires after %d s unless refreshed)",
            repo_path (r), key, st->ttl);
  return 0;
}

/* Is our lock still held and fresh?  (See repo.h.) */
int
repo_lock_check (struct repo *r, struct vb_error *err)
{
  struct repo_lock_state *st = *repo_lock_state_slot (r);
  if (!st)
    return 0;
  pthread_mutex_lock (&st->mu);
  int64_t age = boot_seconds () - st->last_ok;
  if (!st->lost && age > st->ttl / 2) {
    st->lost = true;
    snprintf (st->why, sizeof st->why, "not refreshed for %" PRId64 " s", age);
  }
  bool lost = st->lost;
  char why[sizeof st->why];
  snprintf (why, sizeof why, "%s", st->why);
  pthread_mutex_unlock (&st->mu);
  if (!lost)
    return 0;
  return vb_err (err, ESTALE, "lost the lock '%s' of repository '%s' (%s): "
                 "stopping before anything else is written", st->key,
                 repo_path (r), why);
}

/* Do we hold a lock? */
bool
repo_locked (struct repo *r)
{
  return repo_lock_slot (r)[0] != '\0';
}

/* Release our lock, if any. */
void
repo_unlock (struct repo *r)
{
  char *slot = repo_lock_slot (r);
  struct repo_lock_state **stp = repo_lock_state_slot (r);
  state_free (*stp);              /* the refresher stops before the delete */
  *stp = NULL;
  if (!slot[0])
    return;
  struct repo_backend *b = repo_backend (r);
  struct vb_error e = { 0 };
  /* the command's work is done; a lock left behind is noticed as stale
   * (at once on this host, after its expiry elsewhere) */
  if (b->ops->del (b, slot, &e) < 0)
    fprintf (stderr, "vmback: warning: releasing the lock '%s' of repository '%s': %s\n",
             slot, repo_path (r), e.msg);
  slot[0] = '\0';
}
