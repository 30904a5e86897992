/* vmback repository storage backend "s3": objects in an S3 bucket
 * (Ceph RGW, MinIO, AWS; docs/S3.md).
 *
 * A repository URL s3://BUCKET/PREFIX maps key "a/b" to the object
 * "PREFIX/a/b" of BUCKET.  Requests are signed by libcurl (SigV4,
 * CURLOPT_AWS_SIGV4) with our own x-amz-content-sha256 header (hex SHA-256
 * of the body, which S3 checks; "UNSIGNED-PAYLOAD" over https).  Listings
 * are ListObjectsV2 pages parsed with libxml2 (s3-util.c).
 *
 *   put         PUT; REPO_PUT_EXCL adds "If-None-Match: *" (412 = exists)
 *   put DEFER   queued for a few uploader threads (bounded memory);
 *               sync() waits for all and reports the first error
 *   get         GET, bounded by the caller's max (Content-Length checked
 *               before any allocation)
 *   exists      HEAD;  del  DELETE (missing is fine);  list  ListObjectsV2
 *
 * Every request is retried with exponential backoff and jitter on
 * timeouts, dropped connections, 5xx and SlowDown; nothing else is retried.
 * Easy handles are pooled so connections are reused.  S3 PUTs are atomic
 * and durable when answered, so an object is never seen half-written.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "vmback/repo.h"
#include "repo-int.h"
#include "s3-int.h"

#define MAX_ATTEMPTS 6            /* one try and five retries */
#define ERRBODY_MAX (64u << 10)   /* error bodies beyond this are cut */
#define LIST_BODY_MAX (16u << 20) /* one ListObjectsV2 page */
#define LIST_MAX_PAGES 10000000   /* a runaway server cannot loop forever */
#define POOL_MAX 16               /* idle easy handles kept */
#define UPLOADERS_DEFAULT 8       /* deferred puts in flight */
#define UPLOADERS_MAX 64
#define QUEUE_BYTES_MAX (64u << 20) /* deferred puts queued or running, in bytes */
#define CONNECT_TIMEOUT_S 10L
#define STALL_TIMEOUT_S 60L       /* no byte moved for this long: timeout */
#define CREDS_FILE_MAX (1u << 20)
#define DEFAULT_REGION "us-east-1"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A deferred put waiting for an uploader. */
struct job {
  char *key;
  uint8_t *data;
  size_t len;
  struct job *next;
};

struct s3_backend {
  struct repo_backend base;
  struct s3_url url;
  struct s3_endpoint ep;
  bool path_style;
  char region[64];
  char sigv4[128];               /* "aws:amz:REGION:s3" */
  struct s3_creds creds;
  char *ca_file;                 /* NULL = system store */
  char *token_header;            /* "x-amz-security-token: ..." or NULL */

  pthread_mutex_t mu;            /* guards everything below */
  CURL *idle[POOL_MAX];
  size_t nidle;
  /* deferred puts */
  pthread_cond_t cv;             /* queue changed / a job finished */
  struct job *head, *tail;
  size_t nqueued, nrunning;
  size_t qbytes;                 /* of the jobs queued and running */
  pthread_t th[UPLOADERS_MAX];
  int nthreads, want_threads;
  bool stopping;
  int drc;                       /* first error of a deferred put */
  struct vb_error derr;
  atomic_bool aborting;          /* close(): cut transfers short */
};

/* The S3 backend behind a generic handle. */
static struct s3_backend *
sb (struct repo_backend *b)
{
  return (struct s3_backend *) b;
}

/* --- set-up -------------------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

/* libcurl and libxml2 global state, once per process. */
static void
global_init (void)
{
  global_rc = curl_global_init (CURL_GLOBAL_DEFAULT);
  xmlInitParser ();
}

/* First non-empty environment variable of a and b (b may be NULL). */
static const char *
env2 (const char *a, const char *b)
{
  const char *v = getenv (a);
  if (v && *v)
    return v;
  v = b ? getenv (b) : NULL;
  return v && *v ? v : NULL;
}

/* Credentials: the environment, else the shared credentials file's
 * profile ($AWS_PROFILE or "default"). */
static int
load_creds (struct s3_creds *c, struct vb_error *err)
{
  const char *ak = getenv ("AWS_ACCESS_KEY_ID");
  const char *sk = getenv ("AWS_SECRET_ACCESS_KEY");
  if (ak && *ak && sk && *sk) {
    const char *tk = getenv ("AWS_SESSION_TOKEN");
    if (strlen (ak) >= sizeof c->access_key || strlen (sk) >= sizeof c->secret_key
        || (tk && strlen (tk) >= sizeof c->session_token))
      return vb_err (err, EINVAL, "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or "
                     "AWS_SESSION_TOKEN is too long");
    snprintf (c->access_key, sizeof c->access_key, "%s", ak);
    snprintf (c->secret_key, sizeof c->secret_key, "%s", sk);
    snprintf (c->session_token, sizeof c->session_token, "%s", tk ? tk : "");
    return 0;
  }
  char path[4096];
  const char *f = getenv ("AWS_SHARED_CREDENTIALS_FILE");
  const char *home = getenv ("HOME");
  if (f && *f)
    snprintf (path, sizeof path, "%s", f);
  else
    snprintf (path, sizeof path, "%s/.aws/credentials", home && *home ? home : "");
  const char *profile = env2 ("AWS_PROFILE", NULL);
  if (!profile)
    profile = "default";
  FILE *fp = fopen (path, "re");
  if (!fp)
    return vb_err (err, EACCES, "no S3 credentials: set AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY, or put profile '%s' into '%s'", profile,
                   path);
  char *buf = malloc (CREDS_FILE_MAX + 1);
  size_t n = buf ? fread (buf, 1, CREDS_FILE_MAX + 1, fp) : 0;
  bool bad = ferror (fp);
  fclose (fp);
  int rc;
  if (!buf)
    rc = vb_errno (err, ENOMEM, "cannot read '%s'", path);
  else if (bad)
    rc = vb_err (err, EIO, "cannot read '%s'", path);
  else if (n > CREDS_FILE_MAX)
    rc = vb_err (err, EFBIG, "'%s' is larger than %u bytes", path, CREDS_FILE_MAX);
  else {
    rc = s3_credentials_parse (buf, n, profile, path, c, err);
    if (rc == -ENOENT) {
      vb_err_prefix (err, "no S3 credentials (AWS_ACCESS_KEY_ID is not set)");
      rc = -EACCES;
      if (err)
        err->code = EACCES;
    }
  }
  if (buf) {
    OPENSSL_cleanse (buf, n < CREDS_FILE_MAX ? n : CREDS_FILE_MAX);
    free (buf);
  }
  return rc;
}

/* Endpoint, region, path style, CA file: options, then the environment. */
static int
load_settings (struct s3_backend *s, struct vb_error *err)
{
  const struct repo_s3_options *opt = repo_s3_options ();
  const char *region = env2 ("AWS_REGION", "AWS_DEFAULT_REGION");
  if (!region)
    region = DEFAULT_REGION;
  if (strlen (region) >= sizeof s->region || strpbrk (region, ":/ \t\r\n"))
    return vb_err (err, EINVAL, "invalid AWS region '%.64s'", region);
  snprintf (s->region, sizeof s->region, "%s", region);
  snprintf (s->sigv4, sizeof s->sigv4, "aws:amz:%s:s3", s->region);
  const char *ep = opt->endpoint ? opt->endpoint
                                : env2 ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
  char def[128];
  if (!ep) {
    snprintf (def, sizeof def, "https://s3.%s.amazonaws.com", s->region);
    ep = def;
  }
  int rc = s3_endpoint_parse (ep, &s->ep, err);
  if (rc < 0)
    return rc;
  const char *ps = getenv ("VMBACK_S3_PATH_STYLE");
  /* a dotted bucket name breaks the TLS name check in virtual-host style */
  s->path_style = opt->path_style || (ps && strcmp (ps, "1") == 0) || s->ep.host_is_ip
                  || (s->ep.https && strchr (s->url.bucket, '.'));
  const char *ca = opt->ca_file ? opt->ca_file : env2 ("AWS_CA_BUNDLE", NULL);
  if (ca) {
    if (access (ca, R_OK) < 0)
      return vb_errno (err, errno, "cannot read CA file '%s'", ca);
    if (!(s->ca_file = strdup (ca)))
      return vb_errno (err, ENOMEM, "cannot open S3 repository");
  }
  const char *up = getenv ("VMBACK_S3_CONNECTIONS");
  s->want_threads = UPLOADERS_DEFAULT;
  if (up && *up) {
    char *end;
    long v = strtol (up, &end, 10);
    if (*end || v < 1 || v > UPLOADERS_MAX)
      return vb_err (err, EINVAL, "VMBACK_S3_CONNECTIONS must be 1 to %d",
                     UPLOADERS_MAX);
    s->want_threads = (int) v;
  }
  return 0;
}

/* --- one request --------------------------------------------------------- */

struct req {
  const char *method;            /* GET PUT HEAD DELETE */
  const char *key;               /* full object key, NULL = the bucket */
  const char *query;             /* canonical (sorted, encoded) or NULL */
  const void *body;
  size_t body_len;
  bool if_none_match;
  const char *range;             /* "bytes=A-B" or NULL */
  size_t max;                    /* largest 2xx body accepted */
};

struct resp {
  long status;
  uint8_t *body;
  size_t len, cap;
  size_t max;
  bool nobody;                   /* HEAD: Content-Length is the object's */
  bool too_big;
  uint64_t clen;                 /* Content-Length seen (too_big case) */
  char code[64];                 /* S3 error Code, "" if none */
  char msg[256];
};

struct upload {
  const uint8_t *p;
  size_t len, off;
};

/* Store received bytes: a 2xx body up to max (else too_big aborts), an
 * error body up to ERRBODY_MAX (the rest is dropped). */
static size_t
write_cb (char *ptr, size_t size, size_t nmemb, void *opaque)
{
  struct resp *r = opaque;
  size_t n = size * nmemb;
  bool ok = r->status >= 200 && r->status < 300;
  size_t limit = ok ? r->max : ERRBODY_MAX;
  if (r->len + n > limit) {
    if (ok) {
      r->too_big = true;
      return 0;
    }
    n = limit - r->len;
    if (n == 0)
      return size * nmemb;
  }
  if (r->len + n + 1 > r->cap) {
    size_t nc = r->cap ? r->cap : 16384;
    while (nc < r->len + n + 1)
      nc *= 2;
    if (nc > limit + 1)
      nc = limit + 1;
    uint8_t *nb = realloc (r->body, nc);
    if (!nb)
      return 0;
    r->body = nb;
    r->cap = nc;
  }
  memcpy (r->body + r->len, ptr, n);
  r->len += n;
  return size * nmemb;
}

/* Headers: the status line sets status; a 2xx Content-Length over max
 * aborts before the body arrives; otherwise it sizes the buffer. */
static size_t
header_cb (char *buf, size_t size, size_t nitems, void *opaque)
{
  struct resp *r = opaque;
  size_t n = size * nitems;
  if (n > 5 && memcmp (buf, "HTTP/", 5) == 0) {
    const char *sp = memchr (buf, ' ', n);
    r->status = sp ? strtol (sp + 1, NULL, 10) : 0;
    return n;
  }
  if (n > 15 && !r->nobody && strncasecmp (buf, "content-length:", 15) == 0
      && r->status >= 200 && r->status < 300) {
    char tmp[64];
    size_t k = n - 15 < sizeof tmp - 1 ? n - 15 : sizeof tmp - 1;
    memcpy (tmp, buf + 15, k);
    tmp[k] = '\0';
    char *end;
    unsigned long long v = strtoull (tmp, &end, 10);
    r->clen = v;
    if (v > r->max) {
      r->too_big = true;
      return 0;
    }
    if (v > 0 && !r->body && (r->body = malloc ((size_t) v + 1)))
      r->cap = (size_t) v + 1;
  }
  return n;
}

/* Feed the request body. */
static size_t
read_cb (char *buf, size_t size, size_t nitems, void *opaque)
{
  struct upload *u = opaque;
  size_t n = size * nitems;
  if (n > u->len - u->off)
    n = u->len - u->off;
  memcpy (buf, u->p + u->off, n);
  u->off += n;
  return n;
}

/* Rewind the body (curl resends on a dead reused connection). */
static int
seek_cb (void *opaque, curl_off_t offset, int origin)
{
  struct upload *u = opaque;
  if (origin != SEEK_SET || offset < 0 || (uint64_t) offset > u->len)
    return CURL_SEEKFUNC_FAIL;
  u->off = (size_t) offset;
  return CURL_SEEKFUNC_OK;
}

/* Abort transfers when the backend is being closed. */
static int
progress_cb (void *opaque, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
  struct s3_backend *s = opaque;
  return atomic_load (&s->aborting) ? 1 : 0;
}

/* Hex SHA-256 of data into out (65 bytes). */
static void
sha256_hex (const void *data, size_t len, char out[65])
{
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_Digest (data, len, md, &mdlen, EVP_sha256 (), NULL);
  hex_encode (md, 32, out);
}

/* The request URL (malloc'd): path style https://HOST/BUCKET/KEY, else
 * https://BUCKET.HOST/KEY; the query appended. */
static char *
make_url (struct s3_backend *s, const char *key, const char *query)
{
  char *ek = s3_uri_encode (key ? key : "", true);
  if (!ek)
    return NULL;
  size_t n = strlen (s->ep.host) + strlen (s->url.bucket) + strlen (ek)
             + (query ? strlen (query) : 0) + 32;
  char *u = malloc (n);
  if (u) {
    const char *scheme = s->ep.https ? "https" : "http";
    if (s->path_style)
      snprintf (u, n, "%s://%s/%s%s%s%s%s", scheme, s->ep.host, s->url.bucket,
                key ? "/" : "", ek, query ? "?" : "", query ? query : "");
    else
      snprintf (u, n, "%s://%s.%s/%s%s%s", scheme, s->url.bucket, s->ep.host, ek,
                query ? "?" : "", query ? query : "");
  }
  free (ek);
  return u;
}

/* An easy handle from the pool (connections stay open in it). */
static CURL *
handle_get (struct s3_backend *s)
{
  pthread_mutex_lock (&s->mu);
  CURL *h = s->nidle ? s->idle[--s->nidle] : NULL;
  pthread_mutex_unlock (&s->mu);
  return h ? h : curl_easy_init ();
}

/* Return a handle to the pool. */
static void
handle_put (struct s3_backend *s, CURL *h)
{
  pthread_mutex_lock (&s->mu);
  if (s->nidle < POOL_MAX) {
    s->idle[s->nidle++] = h;
    h = NULL;
  }
  pthread_mutex_unlock (&s->mu);
  if (h)
    curl_easy_cleanup (h);
}

/* Perform one attempt of rq on h into rs; returns the curl code. */
static CURLcode
perform (struct s3_backend *s, CURL *h, const struct req *rq, const char *url,
         const char *sha, struct resp *rs, char *cerr)
{
  curl_easy_reset (h);
  struct upload up = { .p = rq->body, .len = rq->body_len };
  char shah[128];
  snprintf (shah, sizeof shah, "x-amz-content-sha256: %s", sha);
  struct curl_slist *hd = NULL, *t;
  /* (no "Expect:" to suppress 100-continue: curl would sign the empty
   * header without sending it) */
  bool ok = (t = curl_slist_append (hd, shah)) && (hd = t);
  if (ok && rq->if_none_match)
    ok = (t = curl_slist_append (hd, "If-None-Match: *")) && (hd = t);
  char rangeh[96];
  snprintf (rangeh, sizeof rangeh, "Range: %s", rq->range ? rq->range : "");
  if (ok && rq->range)
    ok = (t = curl_slist_append (hd, rangeh)) && (hd = t);
  if (ok && s->token_header)
    ok = (t = curl_slist_append (hd, s->token_header)) && (hd = t);
  if (!ok) {
    curl_slist_free_all (hd);
    return CURLE_OUT_OF_MEMORY;
  }
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt (h, CURLOPT_AWS_SIGV4, s->sigv4);
  curl_easy_setopt (h, CURLOPT_USERNAME, s->creds.access_key);
  curl_easy_setopt (h, CURLOPT_PASSWORD, s->creds.secret_key);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
  curl_easy_setopt (h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, s->ep.https ? "https" : "http");
  curl_easy_setopt (h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt (h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (s->ca_file)
    curl_easy_setopt (h, CURLOPT_CAINFO, s->ca_file);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, rs);
  curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt (h, CURLOPT_HEADERDATA, rs);
  curl_easy_setopt (h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (h, CURLOPT_XFERINFOFUNCTION, progress_cb);
  curl_easy_setopt (h, CURLOPT_XFERINFODATA, s);
  if (strcmp (rq->method, "PUT") == 0) {
    curl_easy_setopt (h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt (h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt (h, CURLOPT_READDATA, &up);
    curl_easy_setopt (h, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt (h, CURLOPT_SEEKDATA, &up);
    curl_easy_setopt (h, CURLOPT_INFILESIZE_LARGE, (curl_off_t) rq->body_len);
  } else if (strcmp (rq->method, "HEAD") == 0)
    curl_easy_setopt (h, CURLOPT_NOBODY, 1L);
  else if (strcmp (rq->method, "DELETE") == 0)
    curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, "DELETE");
  else
    curl_easy_setopt (h, CURLOPT_HTTPGET, 1L);
  CURLcode cc = curl_easy_perform (h);
  long st = 0;
  if (curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &st) == CURLE_OK && st)
    rs->status = st;
  /* the handle goes back to the pool: no pointers into this frame */
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, NULL);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all (hd);
  return cc;
}

/* True for curl failures worth retrying: timeouts and dropped connections. */
static bool
curl_retryable (CURLcode cc)
{
  return cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_SEND_ERROR
         || cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING
         || cc == CURLE_PARTIAL_FILE;
}

/* True for S3 answers worth retrying: 5xx, SlowDown, RequestTimeout. */
static bool
status_retryable (const struct resp *rs)
{
  return rs->status >= 500 || strcmp (rs->code, "SlowDown") == 0
         || strcmp (rs->code, "RequestTimeout") == 0;
}

/* Sleep ms milliseconds, waking early when the backend is closing. */
static void
backoff_sleep (struct s3_backend *s, unsigned ms)
{
  while (ms > 0 && !atomic_load (&s->aborting)) {
    unsigned step = ms > 50 ? 50 : ms;
    struct timespec ts = { 0, (long) step * 1000000L };
    nanosleep (&ts, NULL);
    ms -= step;
  }
}

/* errno for a failed curl transfer. */
static int
curl_errno (CURLcode cc)
{
  switch (cc) {
  case CURLE_OPERATION_TIMEDOUT: return ETIMEDOUT;
  case CURLE_COULDNT_RESOLVE_HOST: return EHOSTUNREACH;
  case CURLE_COULDNT_CONNECT: return ECONNREFUSED;
  case CURLE_OUT_OF_MEMORY: return ENOMEM;
  case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CACERT_BADFILE: return EPROTO;
  case CURLE_ABORTED_BY_CALLBACK: return ECANCELED;
  default: return EIO;
  }
}

/* errno for an S3 error answer. */
static int
status_errno (const struct resp *rs)
{
  if (rs->status == 404)
    return ENOENT;
  if (rs->status == 403 || rs->status == 401)
    return EACCES;
  if (rs->status == 409 || rs->status == 412)
    return EEXIST;
  if (rs->status == 400 || rs->status == 411 || rs->status == 413)
    return EINVAL;
  return EIO;
}

/* Test hooks (failpoints, error.h) standing in for a busy or stalled
 * server: "s3-503" answers 503 SlowDown, "s3-timeout" times out, both
 * without sending the request.  CURLE_OK with rs->status 0 otherwise. */
static CURLcode
injected (struct resp *rs, char *cerr)
{
  if (vb_failpoint ("s3-503")) {
    rs->status = 503;
    snprintf (rs->code, sizeof rs->code, "SlowDown");
    snprintf (rs->msg, sizeof rs->msg, "Please reduce your request rate (injected)");
    return CURLE_OK;
  }
  if (vb_failpoint ("s3-timeout")) {
    snprintf (cerr, CURL_ERROR_SIZE, "Operation timed out (injected)");
    return CURLE_OPERATION_TIMEDOUT;
  }
  return CURLE_OK;
}

/* Run rq with retries; 0 when an HTTP answer arrived (any status, in
 * rs), else a negative errno with the error naming what/the object. */
static int
request (struct s3_backend *s, const struct req *rq, struct resp *rs,
         const char *what, struct vb_error *err)
{
  /* The body's hash lets the server refuse a body damaged on the way; over
   * https TLS already does (its AEAD records), so the body goes unsigned
   * there, as the AWS SDKs send it, and neither side hashes it. */
  char sha[65];
  if (rq->body_len && s->ep.https)
    snprintf (sha, sizeof sha, "UNSIGNED-PAYLOAD");
  else if (rq->body_len)
    sha256_hex (rq->body, rq->body_len, sha);
  else
    snprintf (sha, sizeof sha, "%s", EMPTY_SHA256);
  char *url = make_url (s, rq->key, rq->query);
  CURL *h = url ? handle_get (s) : NULL;
  if (!h) {
    free (url);
    return vb_errno (err, ENOMEM, "cannot %s", what);
  }
  int rc = 0;
  for (unsigned attempt = 1;; attempt++) {
    free (rs->body);
    memset (rs, 0, sizeof *rs);
    rs->max = rq->max;
    rs->nobody = strcmp (rq->method, "HEAD") == 0;
    char cerr[CURL_ERROR_SIZE] = "";
    CURLcode cc = injected (rs, cerr);
    if (cc == CURLE_OK && rs->status == 0)
      cc = perform (s, h, rq, url, sha, rs, cerr);
    if (cc == CURLE_OK && !(rs->status >= 200 && rs->status < 300) && rs->body)
      s3_error_parse (rs->body, rs->len, rs->code, sizeof rs->code, rs->msg,
                      sizeof rs->msg);
    if (cc == CURLE_WRITE_ERROR && rs->too_big)
      cc = CURLE_OK;              /* the caller reports -EFBIG */
    bool again = cc == CURLE_OK ? status_retryable (rs)
                                : curl_retryable (cc);
    if (!again || attempt >= MAX_ATTEMPTS || atomic_load (&s->aborting)) {
      char hint[PATH_MAX + 128] = "";
      if (cc == CURLE_PEER_FAILED_VERIFICATION)
        snprintf (hint, sizeof hint, " (checked against %s%s%s; --s3-ca FILE or "
                  "$AWS_CA_BUNDLE names the CA to trust)", s->ca_file ? "'" : "",
                  s->ca_file ? s->ca_file : "the system's CAs", s->ca_file ? "'" : "");
      if (cc != CURLE_OK)
        rc = vb_err (err, curl_errno (cc), "cannot %s: %s%s%s", what,
                     cerr[0] ? cerr : curl_easy_strerror (cc),
                     attempt > 1 ? " (after retries)" : "", hint);
      break;
    }
    uint32_t rnd = 0;
    if (getrandom (&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t) sizeof rnd)
      rnd = (uint32_t) clock ();
    unsigned ms = s3_backoff_ms (attempt, rnd);
    vb_debug ("s3: %s: %s, retrying in %u ms", what,
              cc != CURLE_OK ? curl_easy_strerror (cc) : rs->code[0] ? rs->code : "5xx",
              ms);
    backoff_sleep (s, ms);
  }
  handle_put (s, h);
  free (url);
  if (rc < 0) {
    free (rs->body);
    rs->body = NULL;
  }
  return rc;
}

/* The one-line error for an unexpected answer: object, S3's Code and
 * Message, HTTP status. */
static int
s3_fail (struct s3_backend *s, const char *what, const char *key,
         const struct resp *rs, struct vb_error *err)
{
  return vb_err (err, status_errno (rs), "cannot %s 's3://%s%s%s': %s%s%s "
                 "(HTTP %ld)", what, s->url.bucket, key ? "/" : "", key ? key : "",
                 rs->code[0] ? rs->code : rs->status == 403 ? "access denied"
                 : rs->status == 404 ? "not found" : "error",
                 rs->msg[0] ? ": " : "", rs->msg, rs->status);
}

/* --- keys ---------------------------------------------------------------- */

/* Check a repository key as the local backend does (relative, no empty,
 * "." or ".." components, no ".tmp-" names, at most S3_KEY_MAX bytes);
 * prefix_ok allows "" and a trailing '/'. */
static int
check_key (const char *key, bool prefix_ok, struct vb_error *err)
{
  size_t len = strnlen (key, S3_KEY_MAX + 1);
  if (len > S3_KEY_MAX)
    return vb_err (err, EINVAL, "invalid object key: longer than %u bytes",
                   S3_KEY_MAX);
  if (len == 0)
    return prefix_ok ? 0 : vb_err (err, EINVAL, "invalid object key: empty");
  if (key[0] == '/')
    return vb_err (err, EINVAL, "invalid object key '%s': absolute path", key);
  for (const char *p = key; *p;) {
    const char *sl = strchr (p, '/');
    size_t n = sl ? (size_t) (sl - p) : strlen (p);
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')
        || (n >= 5 && memcmp (p, ".tmp-", 5) == 0))
      return vb_err (err, EINVAL, "invalid object key '%s': empty, '.', '..' "
                     "or reserved component", key);
    if (!sl)
      break;
    p = sl + 1;
    if (*p == '\0' && !prefix_ok)
      return vb_err (err, EINVAL, "invalid object key '%s': trailing '/'", key);
  }
  return 0;
}

/* Full object key "PREFIX/key" (malloc'd). */
static char *
full_key (struct s3_backend *s, const char *key)
{
  size_t n = strlen (s->url.prefix) + strlen (key) + 2;
  char *k = malloc (n);
  if (k)
    snprintf (k, n, "%s%s%s", s->url.prefix, s->url.prefix[0] ? "/" : "", key);
  return k;
}

/* --- operations ---------------------------------------------------------- */

/* Create the bucket (when create) or check that it exists. */
static int
ensure_bucket (struct s3_backend *s, bool create, struct vb_error *err)
{
  struct resp rs = { 0 };
  char what[128];
  snprintf (what, sizeof what, "reach bucket '%s'", s->url.bucket);
  struct req rq = { .method = "HEAD", .max = 0 };
  int rc = request (s, &rq, &rs, what, err);
  if (rc < 0)
    return rc;
  long st = rs.status;
  free (rs.body);
  if (st >= 200 && st < 300)
    return 0;
  if (st != 404) {
    rs.body = NULL;
    return s3_fail (s, "reach bucket", NULL, &rs, err);
  }
  if (!create)
    return vb_err (err, ENOENT, "bucket '%s' does not exist", s->url.bucket);
  char body[256] = "";
  if (strcmp (s->region, DEFAULT_REGION) != 0)
    snprintf (body, sizeof body, "<CreateBucketConfiguration xmlns=\"http://s3."
              "amazonaws.com/doc/2006-03-01/\"><LocationConstraint>%s"
              "</LocationConstraint></CreateBucketConfiguration>", s->region);
  struct req cr = { .method = "PUT", .body = body, .body_len = strlen (body),
                    .max = ERRBODY_MAX };
  memset (&rs, 0, sizeof rs);
  snprintf (what, sizeof what, "create bucket '%s'", s->url.bucket);
  rc = request (s, &cr, &rs, what, err);
  if (rc == 0 && !(rs.status >= 200 && rs.status < 300)
      && strcmp (rs.code, "BucketAlreadyOwnedByYou") != 0)
    rc = s3_fail (s, "create bucket", NULL, &rs, err);
  free (rs.body);
  if (rc == 0)
    vb_debug ("s3: created bucket '%s'", s->url.bucket);
  return rc;
}

static void s3_close (struct repo_backend *b);

/* Open the backend at an s3:// URL. */
static int
s3_open (const char *url, bool create, struct repo_backend **out,
         struct vb_error *err)
{
  *out = NULL;
  pthread_once (&global_once, global_init);
  if (global_rc != CURLE_OK)
    return vb_err (err, EIO, "cannot initialize libcurl: %s",
                   curl_easy_strerror (global_rc));
  struct s3_backend *s = calloc (1, sizeof *s);
  if (!s)
    return vb_errno (err, ENOMEM, "cannot open repository '%s'", url);
  s->base.ops = &repo_backend_s3;
  pthread_mutex_init (&s->mu, NULL);
  pthread_cond_init (&s->cv, NULL);
  atomic_init (&s->aborting, false);
  int rc = s3_url_parse (url, &s->url, err);
  if (rc == 0)
    rc = load_settings (s, err);
  if (rc == 0)
    rc = load_creds (&s->creds, err);
  if (rc == 0 && s->creds.session_token[0]) {
    size_t n = strlen (s->creds.session_token) + 32;
    if ((s->token_header = malloc (n)))
      snprintf (s->token_header, n, "x-amz-security-token: %s", s->creds.session_token);
    else
      rc = vb_errno (err, ENOMEM, "cannot open repository '%s'", url);
  }
  if (rc == 0)
    rc = ensure_bucket (s, create, err);
  if (rc < 0) {
    s3_close (&s->base);
    return rc;
  }
  vb_debug ("s3: %s -> %s://%s (%s style, region %s)", url,
            s->ep.https ? "https" : "http", s->ep.host,
            s->path_style ? "path" : "virtual-host", s->region);
  *out = &s->base;
  return 0;
}

/* Stop the uploaders: queued puts are dropped, running ones cut short. */
static void
stop_uploaders (struct s3_backend *s)
{
  pthread_mutex_lock (&s->mu);
  s->stopping = true;
  struct job *j = s->head;
  s->head = s->tail = NULL;
  s->nqueued = 0;
  for (struct job *q = j; q; q = q->next)
    s->qbytes -= q->len;
  pthread_cond_broadcast (&s->cv);
  int n = s->nthreads;
  pthread_mutex_unlock (&s->mu);
  while (j) {
    struct job *nx = j->next;
    free (j->key);
    free (j->data);
    free (j);
    j = nx;
  }
  atomic_store (&s->aborting, true);
  for (int i = 0; i < n; i++)
    pthread_join (s->th[i], NULL);
}

/* Close: deferred puts not synced are dropped (never referenced). */
static void
s3_close (struct repo_backend *b)
{
  if (!b)
    return;
  struct s3_backend *s = sb (b);
  stop_uploaders (s);
  for (size_t i = 0; i < s->nidle; i++)
    curl_easy_cleanup (s->idle[i]);
  pthread_cond_destroy (&s->cv);
  pthread_mutex_destroy (&s->mu);
  OPENSSL_cleanse (&s->creds, sizeof s->creds);
  if (s->token_header) {
    OPENSSL_cleanse (s->token_header, strlen (s->token_header));
    free (s->token_header);
  }
  free (s->ca_file);
  free (s);
}

/* Is an object with key (full) and exactly these bytes already there?
 * (A retried create-only PUT whose first answer was lost meets itself.) */
static bool
same_object (struct s3_backend *s, const char *fkey, const void *data, size_t len)
{
  struct resp rs = { 0 };
  struct req rq = { .method = "GET", .key = fkey, .max = len };
  struct vb_error e = { 0 };
  bool same = request (s, &rq, &rs, "re-read", &e) == 0 && rs.status == 200
              && !rs.too_big && rs.len == len && memcmp (rs.body, data, len) == 0;
  free (rs.body);
  return same;
}

/* Store an object now (the synchronous part of put). */
static int
put_now (struct s3_backend *s, const char *key, const void *data, size_t len,
         unsigned flags, struct vb_error *err)
{
  char *fk = full_key (s, key);
  if (!fk)
    return vb_errno (err, ENOMEM, "cannot store '%s'", key);
  char what[S3_KEY_MAX + 700];
  snprintf (what, sizeof what, "store 's3://%s/%s'", s->url.bucket, fk);
  struct resp rs = { 0 };
  bool excl = flags & REPO_PUT_EXCL;
  struct req rq = { .method = "PUT", .key = fk, .body = data, .body_len = len,
                    .if_none_match = excl, .max = ERRBODY_MAX };
  int rc = request (s, &rq, &rs, what, err);
  if (rc == 0 && rs.status == 412 && excl) {
    if (same_object (s, fk, data, len))
      rc = 0;
    else
      rc = vb_err (err, EEXIST, "object '%s' already exists", key);
  } else if (rc == 0 && !(rs.status >= 200 && rs.status < 300))
    rc = s3_fail (s, "store", fk, &rs, err);
  free (rs.body);
  free (fk);
  return rc;
}

/* Uploader thread: run queued puts until stopped. */
static void *
uploader (void *opaque)
{
  struct s3_backend *s = opaque;
  pthread_mutex_lock (&s->mu);
  for (;;) {
    while (!s->head && !s->stopping)
      pthread_cond_wait (&s->cv, &s->mu);
    if (!s->head)
      break;
    struct job *j = s->head;
    s->head = j->next;
    if (!s->head)
      s->tail = NULL;
    s->nqueued--;
    s->nrunning++;
    pthread_cond_broadcast (&s->cv);       /* room in the queue */
    pthread_mutex_unlock (&s->mu);
    struct vb_error e = { 0 };
    int rc = put_now (s, j->key, j->data, j->len, 0, &e);
    size_t done = j->len;
    free (j->key);
    free (j->data);
    free (j);
    pthread_mutex_lock (&s->mu);
    s->nrunning--;
    s->qbytes -= done;
    if (rc < 0 && s->drc == 0) {
      s->drc = rc;
      s->derr = e;
    }
    pthread_cond_broadcast (&s->cv);
  }
  pthread_mutex_unlock (&s->mu);
  return NULL;
}

/* Queue a deferred put (a copy of data); waits while the queue is full;
 * fails early with the first error of an earlier deferred put. */
static int
put_deferred (struct s3_backend *s, const char *key, const void *data, size_t len,
              bool take, struct vb_error *err)
{
  struct job *j = calloc (1, sizeof *j);
  if (j) {
    j->key = strdup (key);
    j->data = take ? (uint8_t *) data : malloc (len ? len : 1);
    j->len = len;
  }
  if (!j || !j->key || !j->data) {
    if (j) {
      free (j->key);
      free (j->data);
    }
    free (j);
    if (take && !j)
      free ((void *) data);
    return vb_errno (err, ENOMEM, "cannot store '%s'", key);
  }
  if (!take)
    memcpy (j->data, data, len);
  pthread_mutex_lock (&s->mu);
  size_t qmax = 2 * (size_t) s->want_threads;
  while (s->drc == 0 && !s->stopping
         && (s->nqueued >= qmax || (s->qbytes > 0 && s->qbytes + len > QUEUE_BYTES_MAX)))
    pthread_cond_wait (&s->cv, &s->mu);
  int rc = s->drc;
  if (rc < 0 && err && err->code == 0)
    *err = s->derr;
  if (rc == 0 && s->nthreads < s->want_threads
      && s->nqueued + s->nrunning >= (size_t) s->nthreads) {
    if (pthread_create (&s->th[s->nthreads], NULL, uploader, s) == 0)
      s->nthreads++;
    else if (s->nthreads == 0)
      rc = vb_errno (err, EAGAIN, "cannot start an upload thread");
  }
  if (rc == 0) {
    if (s->tail)
      s->tail->next = j;
    else
      s->head = j;
    s->tail = j;
    s->nqueued++;
    s->qbytes += len;
    j = NULL;
    pthread_cond_broadcast (&s->cv);
  }
  pthread_mutex_unlock (&s->mu);
  if (j) {
    free (j->key);
    free (j->data);
    free (j);
  }
  return rc;
}

/* Store an object (see the file comment). */
static int
s3_put (struct repo_backend *b, const char *key, const void *data, size_t len,
        unsigned flags, struct vb_error *err)
{
  struct s3_backend *s = sb (b);
  bool take = flags & REPO_PUT_TAKE;
  int rc = check_key (key, false, err);
  if (rc == 0 && len > REPO_MAX_OBJECT)
    rc = vb_err (err, EFBIG, "cannot store '%s': %zu bytes is larger than "
                 "the largest object (%u bytes)", key, len, REPO_MAX_OBJECT);
  if (rc == 0 && (flags & REPO_PUT_DEFER) && !(flags & REPO_PUT_EXCL))
    return put_deferred (s, key, data, len, take, err);   /* takes data */
  if (rc == 0)
    rc = put_now (s, key, data, len, flags, err);
  if (take)
    free ((void *) data);
  return rc;
}

/* Wait for every deferred put; the first error of any is returned (once). */
static int
s3_sync (struct repo_backend *b, struct vb_error *err)
{
  struct s3_backend *s = sb (b);
  pthread_mutex_lock (&s->mu);
  while (s->nqueued > 0 || s->nrunning > 0)
    pthread_cond_wait (&s->cv, &s->mu);
  int rc = s->drc;
  if (rc < 0 && err && err->code == 0)
    *err = s->derr;
  s->drc = 0;
  memset (&s->derr, 0, sizeof s->derr);
  pthread_mutex_unlock (&s->mu);
  return rc;
}

/* Read a whole object of at most max bytes, NUL-terminated (not counted). */
static int
s3_get (struct repo_backend *b, const char *key, size_t max, uint8_t **data,
        size_t *len, struct vb_error *err)
{
  struct s3_backend *s = sb (b);
  *data = NULL;
  *len = 0;
  int rc = check_key (key, false, err);
  if (rc < 0)
    return rc;
  if (max > REPO_MAX_OBJECT)
    max = REPO_MAX_OBJECT;
  char *fk = full_key (s, key);
  if (!fk)
    return vb_errno (err, ENOMEM, "cannot read '%s'", key);
  char what[S3_KEY_MAX + 700];
  snprintf (what, sizeof what, "read 's3://%s/%s'", s->url.bucket, fk);
  struct resp rs = { 0 };
  struct req rq = { .method = "GET", .key = fk, .max = max };
  rc = request (s, &rq, &rs, what, err);
  if (rc == 0) {
    if (rs.too_big)
      rc = vb_err (err, EFBIG, "object '%s' is too large (%" PRIu64 " bytes, at "
                   "most %zu expected)", key, rs.clen > max ? rs.clen : (uint64_t) max + 1,
                   max);
    else if (rs.status == 404 && strcmp (rs.code, "NoSuchBucket") != 0)
      rc = vb_err (err, ENOENT, "object '%s' does not exist", key);
    else if (rs.status != 200)
      rc = s3_fail (s, "read", fk, &rs, err);
  }
  if (rc == 0) {
    if (!rs.body && !(rs.body = malloc (1)))
      rc = vb_errno (err, ENOMEM, "cannot read '%s'", key);
    else {
      rs.body[rs.len] = '\0';   /* write_cb always leaves room for it */
      *data = rs.body;
      *len = rs.len;
      rs.body = NULL;
    }
  }
  free (rs.body);
  free (fk);
  return rc;
}

/* Read [off, off+len) of an object with a ranged GET (206; a server
 * that ignores Range answers 200 with the whole object, accepted when
 * that is exactly the range). */
static int
s3_get_range (struct repo_backend *b, const char *key, uint64_t off, size_t len,
              uint8_t **data, struct vb_error *err)
{
  struct s3_backend *s = sb (b);
  *data = NULL;
  int rc = check_key (key, false, err);
  if (rc < 0)
    return rc;
  if (len == 0 || len > REPO_MAX_OBJECT || off > REPO_MAX_OBJECT)
    return vb_err (err, EINVAL, "cannot read %zu bytes at %" PRIu64 " of '%s'", len,
                   off, key);
  char *fk = full_key (s, key);
  if (!fk)
    return vb_errno (err, ENOMEM, "cannot read '%s'", key);
  char what[S3_KEY_MAX + 700], range[64];
  snprintf (what, sizeof what, "read 's3://%s/%s'", s->url.bucket, fk);
  snprintf (range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
  struct resp rs = { 0 };
  struct req rq = { .method = "GET", .key = fk, .range = range, .max = len };
  rc = request (s, &rq, &rs, what, err);
  if (rc == 0) {
    if (rs.too_big && rs.status == 200)
      rc = vb_err (err, EIO, "cannot read part of '%s': the server does not "
                   "answer ranged GETs", key);
    else if (rs.status == 404 && strcmp (rs.code, "NoSuchBucket") != 0)
      rc = vb_err (err, ENOENT, "object '%s' does not exist", key);
    else if (rs.status == 416)
      rc = vb_err (err, EIO, "object '%s' ends before byte %" PRIu64 " (truncated?)",
                   key, off + len);
    else if (rs.status != 206 && !(rs.status == 200 && off == 0))
      rc = s3_fail (s, "read", fk, &rs, err);
    else if (rs.len != len || rs.too_big)
      rc = vb_err (err, EIO, "object '%s' ends before byte %" PRIu64 " (truncated?)",
                   key, off + len);
  }
  if (rc == 0) {
    *data = rs.body;
    rs.body = NULL;
  }
  free (rs.body);
  free (fk);
  return rc;
}

/* 1 if the object exists, 0 if not, <0 on error. */
static int
s3_exists (struct repo_backend *b, const char *key, struct vb_error *err)
{
  struct s3_backend *s = sb (b);
  int rc = check_key (key, false, err);
  if (rc < 0)
    return rc;
  char *fk = full_key (s, key);
  if (!fk)
    return vb_errno (err, ENOMEM, "cannot look up '%s'", key);
  char what[S3_KEY_MAX + 700];
  snprintf (what, sizeof what, "look up 's3://%s/%s'", s->url.bucket, fk);
  struct resp rs = { 0 };
  struct req rq = { .method = "HEAD", .key = fk, .max = 0 };
  rc = request (s, &rq, &rs, what, err);
  if (rc == 0) {
    if (rs.status >= 200 && rs.status < 300)
      rc = 1;
    else if (rs.status != 404)
      rc = s3_fail (s, "look up", fk, &rs, err);
  }
  free (rs.body);
  free (fk);
  return rc;
}

/* Remove an object; missing is not an error. */
static int
s3_del (struct repo_backend *b, const char *key, struct vb_error *err)
{
  struct s3_backend *s = sb (b);
  int rc = check_key (key, false, err);
  if (rc < 0)
    return rc;
  char *fk = full_key (s, key);
  if (!fk)
    return vb_errno (err, ENOMEM, "cannot remove '%s'", key);
  char what[S3_KEY_MAX + 700];
  snprintf (what, sizeof what, "remove 's3://%s/%s'", s->url.bucket, fk);
  struct resp rs = { 0 };
  struct req rq = { .method = "DELETE", .key = fk, .max = ERRBODY_MAX };
  rc = request (s, &rq, &rs, what, err);
  if (rc == 0 && !(rs.status >= 200 && rs.status < 300) && rs.status != 404)
    rc = s3_fail (s, "remove", fk, &rs, err);
  free (rs.body);
  free (fk);
  return rc;
}

/* The canonical ListObjectsV2 query (parameters sorted, values encoded). */
static char *
list_query (const char *prefix, const char *token)
{
  char *ep = s3_uri_encode (prefix, false);
  char *et = token ? s3_uri_encode (token, false) : NULL;
  char *q = NULL;
  if (ep && (!token || et)) {
    size_t n = strlen (ep) + (et ? strlen (et) : 0) + 64;
    if ((q = malloc (n)))
      snprintf (q, n, "%s%s%slist-type=2&prefix=%s", et ? "continuation-token=" : "",
                et ? et : "", et ? "&" : "", ep);
  }
  free (ep);
  free (et);
  return q;
}

/* Report the entries of one page that lie under our prefix, relative to
 * it; keys that are not valid repository keys are skipped. */
static int
report_page (struct s3_backend *s, const struct s3_list_page *pg, size_t strip,
             repo_list_fn fn, void *opaque)
{
  for (size_t i = 0; i < pg->n; i++) {
    const char *k = pg->v[i].key;
    if (strlen (k) <= strip || (strip && k[strip - 1] != '/')
        || strncmp (k, s->url.prefix, strlen (s->url.prefix)) != 0) {
      vb_debug ("s3: list: skipping '%.300s' (outside the repository)", k);
      continue;
    }
    if (check_key (k + strip, false, NULL) < 0) {
      vb_debug ("s3: list: skipping '%.300s' (not a valid key)", k);
      continue;
    }
    int r = fn (opaque, k + strip, pg->v[i].size);
    if (r != 0)
      return r;
  }
  return 0;
}

/* Report every object whose key starts with prefix (all pages). */
static int
s3_list (struct repo_backend *b, const char *prefix, repo_list_fn fn,
         void *opaque, struct vb_error *err)
{
  struct s3_backend *s = sb (b);
  if (!prefix)
    prefix = "";
  int rc = check_key (prefix, true, err);
  if (rc < 0)
    return rc;
  char *fp = full_key (s, prefix);
  if (!fp)
    return vb_errno (err, ENOMEM, "cannot list '%s'", prefix);
  /* "PREFIX/" + "" lists PREFIX/ (not PREFIXother/) */
  size_t strip = s->url.prefix[0] ? strlen (s->url.prefix) + 1 : 0;
  char what[S3_KEY_MAX + 700];
  snprintf (what, sizeof what, "list 's3://%s/%s'", s->url.bucket, fp);
  char *token = NULL;
  for (long page = 0; rc == 0; page++) {
    if (page >= LIST_MAX_PAGES) {
      rc = vb_err (err, ELOOP, "cannot %s: more than %d pages", what, LIST_MAX_PAGES);
      break;
    }
    char *q = list_query (fp, token);
    if (!q) {
      rc = vb_errno (err, ENOMEM, "cannot %s", what);
      break;
    }
    struct resp rs = { 0 };
    struct req rq = { .method = "GET", .query = q, .max = LIST_BODY_MAX };
    rc = request (s, &rq, &rs, what, err);
    free (q);
    if (rc == 0 && rs.too_big)
      rc = vb_err (err, EFBIG, "cannot %s: a listing page is larger than %u "
                   "bytes", what, LIST_BODY_MAX);
    else if (rc == 0 && rs.status != 200)
      rc = s3_fail (s, "list", fp, &rs, err);
    struct s3_list_page pg = { 0 };
    if (rc == 0 && (rc = s3_list_parse (rs.body, rs.len, &pg, err)) < 0)
      vb_err_prefix (err, "cannot %s", what);
    free (rs.body);
    if (rc < 0)
      break;
    rc = report_page (s, &pg, strip, fn, opaque);
    if (rc == 0 && pg.truncated) {
      if (token && strcmp (token, pg.next_token) == 0)
        rc = vb_err (err, ELOOP, "cannot %s: the server repeats its "
                     "continuation token", what);
      free (token);
      token = pg.next_token;
      pg.next_token = NULL;
    }
    bool more = pg.truncated;
    s3_list_page_free (&pg);
    if (!more)
      break;
  }
  free (token);
  free (fp);
  return rc;
}

const struct repo_backend_ops repo_backend_s3 = {
  .name = "s3",
  .open = s3_open,
  .close = s3_close,
  .put = s3_put,
  .get = s3_get,
  .get_range = s3_get_range,
  .exists = s3_exists,
  .list = s3_list,
  .del = s3_del,
  .sync = s3_sync,
  .costly_exists = true,
};
