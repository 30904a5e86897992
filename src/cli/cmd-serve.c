/* vmback serve: export a restore point's disk over NBD (docs/serve.md).
 *
 * The command checks its arguments, opens the repository once to resolve
 * the point and the disk (so mistakes fail with one line here), then
 * execs nbdkit with our plugin (src/serve/nbdkit-vmback.c) in the
 * foreground.  The passphrase travels in $VMBACK_PASSPHRASE, never in
 * argv; the plugin prints the NBD URI once it serves. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "repo/repo-int.h"
#include "transport/transport.h"
#include "vmback/repo.h"

#define PLUGIN_NAME "nbdkit-vmback.so"
#define MAX_ARGS 40

struct serve_opts {
  const char *repo, *key_file, *disk, *unix_sock, *bind, *overlay;
  const char *tls_certs, *tls_psk;
  bool tls;
  uint64_t port, threads, cache;
};

/* The argv handed to nbdkit. */
struct argv_buf {
  char *v[MAX_ARGS + 1];
  int n;
};

/* Append a formatted argument (aborts the command on overflow or OOM). */
static void __attribute__ ((format (printf, 2, 3)))
arg_add (struct argv_buf *a, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *s = NULL;
  int rc = a->n >= MAX_ARGS ? -1 : vasprintf (&s, fmt, ap);
  va_end (ap);
  if (rc < 0) {
    fprintf (stderr, "vmback: serve: cannot build the nbdkit command line\n");
    exit (1);
  }
  a->v[a->n++] = s;
  a->v[a->n] = NULL;
}

/* Absolute form of a path whose parent directory exists (the file itself
 * need not); NULL with a message otherwise.  malloc'd. */
static char *
abs_path (const char *what, const char *p)
{
  char *d = strdup (p), *b = strdup (p), *out = NULL;
  char dir[PATH_MAX];
  if (d && b && realpath (dirname (d), dir)) {
    if (asprintf (&out, "%s/%s", strcmp (dir, "/") ? dir : "", basename (b)) < 0)
      out = NULL;
  } else
    fprintf (stderr, "vmback: serve: %s '%s': %s\n", what, p, strerror (errno));
  free (d);
  free (b);
  return out;
}

/* The plugin: $VMBACK_NBDKIT_PLUGIN (the file itself), else where the
 * nbd transports find theirs (vb_nbdkit_plugin_path). */
static char *
plugin_path (void)
{
  const char *env = getenv ("VMBACK_NBDKIT_PLUGIN");
  if (env && *env) {
    char *p = abs_path ("plugin", env);
    if (p && access (p, R_OK) < 0) {
      fprintf (stderr, "vmback: serve: plugin '%s' (VMBACK_NBDKIT_PLUGIN): %s\n", p,
               strerror (errno));
      free (p);
      p = NULL;
    }
    return p;
  }
  struct vb_error e = { 0 };
  char *p = vb_nbdkit_plugin_path (PLUGIN_NAME, &e);
  if (!p)
    fprintf (stderr, "vmback: serve: %s\n", e.msg);
  return p;
}

/* nbdkit leaves its socket file behind: remove one nobody listens on;
 * refuse one a live server answers, or a file that is not a socket.
 * 0 or -1 (message printed). */
static int
clear_stale_socket (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen (path) >= sizeof sa.sun_path) {
    fprintf (stderr, "vmback: serve: socket path '%s' is longer than %zu bytes\n", path,
             sizeof sa.sun_path - 1);
    return -1;
  }
  struct stat st;
  if (lstat (path, &st) < 0)
    return errno == ENOENT ? 0 : (fprintf (stderr, "vmback: serve: socket '%s': %s\n", path,
                                           strerror (errno)), -1);
  if (!S_ISSOCK (st.st_mode)) {
    fprintf (stderr, "vmback: serve: '%s' exists and is not a socket\n", path);
    return -1;
  }
  memcpy (sa.sun_path, path, strlen (path) + 1);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rc = fd < 0 ? -1 : connect (fd, (struct sockaddr *) &sa, sizeof sa);
  int e = errno;
  if (fd >= 0)
    close (fd);
  if (rc == 0) {
    fprintf (stderr, "vmback: serve: socket '%s' is in use by a running server\n", path);
    return -1;
  }
  if (e == ECONNREFUSED && unlink (path) == 0)
    return 0;
  fprintf (stderr, "vmback: serve: cannot reuse socket '%s': %s\n", path, strerror (e));
  return -1;
}

/* The user name of the first key of an nbdkit PSK file ("user:hexkey"). */
static char *
psk_user (const char *file)
{
  FILE *f = fopen (file, "r");
  char line[512];
  if (!f || !fgets (line, sizeof line, f) || !strchr (line, ':')) {
    fprintf (stderr, "vmback: serve: cannot read a 'user:key' line from PSK file '%s'%s%s\n",
             file, f ? "" : ": ", f ? "" : strerror (errno));
    if (f)
      fclose (f);
    return NULL;
  }
  fclose (f);
  *strchr (line, ':') = '\0';
  char *u = strdup (line);
  explicit_bzero (line, sizeof line);
  return u;
}

/* The NBD URI a client connects to. */
static char *
make_uri (const struct serve_opts *o, const char *sock, const char *user)
{
  const char *scheme = o->tls ? "nbds" : "nbd";
  char at[300] = "", psk[PATH_MAX + 32] = "";
  if (user)
    snprintf (at, sizeof at, "%s@", user);
  char *u = NULL;
  int rc;
  if (sock) {
    if (o->tls_psk)
      snprintf (psk, sizeof psk, "&tls-psk-file=%s", o->tls_psk);
    rc = asprintf (&u, "%s+unix://%s/?socket=%s%s", scheme, at, sock, psk);
  } else {
    if (o->tls_psk)
      snprintf (psk, sizeof psk, "?tls-psk-file=%s", o->tls_psk);
    bool v6 = strchr (o->bind, ':') != NULL;
    rc = asprintf (&u, "%s://%s%s%s%s:%" PRIu64 "/%s", scheme, at, v6 ? "[" : "", o->bind,
                   v6 ? "]" : "", o->port, psk);
  }
  return rc < 0 ? NULL : u;
}

/* Open the repository as every command does; a passphrase typed at the
 * prompt is put into $VMBACK_PASSPHRASE for the plugin. */
static struct repo *
open_repo (const char *path, const char *key_file)
{
  struct repo *r = NULL;
  struct vb_error e = { 0 };
  const char *env = getenv ("VMBACK_PASSPHRASE");
  int rc = repo_open (path, env, key_file, &r, &e);
  if (rc == -ENOKEY && !env && !key_file && isatty (STDIN_FILENO)) {
    char *pw = cli_passphrase ("repository passphrase: ", false);
    vb_err_clear (&e);
    rc = pw ? repo_open (path, pw, NULL, &r, &e) : -ENOKEY;
    if (rc == 0 && setenv ("VMBACK_PASSPHRASE", pw, 1) < 0)
      rc = vb_errno (&e, errno, "cannot pass the passphrase on");
    if (pw) {
      explicit_bzero (pw, strlen (pw));
      free (pw);
    }
  }
  if (rc < 0) {
    cli_fail (&e);
    if (r)
      repo_close (r);
    return NULL;
  }
  return r;
}

/* Resolve POINT and the disk: the point's full id into id, the disk's key
 * into key, its size into *size.  Prints the error; 0 or -1. */
static int
check_point (const struct serve_opts *o, const char *repo_path, const char *spec,
             char *id, size_t idlen, char *key, size_t keylen, uint64_t *size)
{
  struct repo *r = open_repo (repo_path, o->key_file);
  if (!r)
    return -1;
  struct manifest *m = calloc (1, sizeof *m);
  struct vb_error e = { 0 };
  int rc = m ? repo_find_point (r, spec, m, &e) : vb_errno (&e, ENOMEM, "serve");
  size_t d = 0;
  while (rc == 0 && o->disk && d < m->n_disks && strcmp (m->disks[d].key, o->disk) != 0)
    d++;
  if (rc == 0 && d >= m->n_disks)
    rc = vb_err (&e, ENOENT, "point %s has no disk '%s'", m->id, o->disk ? o->disk : "");
  if (rc == 0) {
    snprintf (id, idlen, "%s", m->id);
    snprintf (key, keylen, "%s", m->disks[d].key);
    *size = m->disks[d].size;
  }
  free (m);
  repo_close (r);
  return rc < 0 ? (cli_fail (&e), -1) : 0;
}

/* The line printed once serving: text or one JSON object. */
static char *
ready_line (const struct cli *c, const char *uri, const char *id, const char *key,
            uint64_t size, const char *overlay)
{
  char *s = NULL;
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "uri", json_object_new_string (uri));
    json_object_object_add (j, "point", json_object_new_string (id));
    json_object_object_add (j, "disk", json_object_new_string (key));
    json_object_object_add (j, "size", json_object_new_uint64 (size));
    json_object_object_add (j, "writable", json_object_new_boolean (overlay != NULL));
    if (overlay)
      json_object_object_add (j, "overlay", json_object_new_string (overlay));
    s = strdup (json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN
                                                | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put (j);
  } else if (asprintf (&s, "serving %s disk %s (%" PRIu64 " bytes, %s%s) at %s", id, key,
                       size, overlay ? "writes to " : "read-only", overlay ? overlay : "",
                       uri) < 0)
    s = NULL;
  return s;
}

/* Usage text. */
static void
serve_help (void)
{
  printf ("usage: vmback serve [--repo R] POINT [--disk KEY] (--unix SOCKET | --port P [--bind ADDR])\n"
          "                    [--tls [--tls-certificates DIR | --tls-psk FILE]]\n"
          "                    [--writable-overlay FILE] [--cache SIZE] [--threads N]\n"
          "Export one disk of a restore point as an NBD disk until SIGTERM/SIGINT.\n"
          "Reads fetch and check chunks on demand; writes go to the overlay FILE (and\n"
          "FILE.bitmap), never into the repository; without an overlay the export is\n"
          "read-only.  --port binds 127.0.0.1 unless --bind says otherwise.  --tls\n"
          "refuses plaintext clients.  Prints the NBD URI once serving.  Needs nbdkit.\n");
}

/* Parse the options; 0, or the exit status of a usage error / --help. */
static int
parse (int argc, char **argv, struct serve_opts *o, bool *help)
{
  static const struct option lo[] = {
    { "repo", required_argument, 0, 'r' }, { "key-file", required_argument, 0, 'k' },
    { "disk", required_argument, 0, 'd' }, { "unix", required_argument, 0, 'U' },
    { "port", required_argument, 0, 'p' }, { "bind", required_argument, 0, 'b' },
    { "tls", no_argument, 0, 'T' }, { "tls-certificates", required_argument, 0, 'C' },
    { "tls-psk", required_argument, 0, 'P' }, { "writable-overlay", required_argument, 0, 'o' },
    { "cache", required_argument, 0, 'c' }, { "threads", required_argument, 0, 't' },
    { "foreground", no_argument, 0, 'f' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
  };
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long (argc, argv, "h", lo, NULL)) != -1) {
    switch (ch) {
    case 'r': o->repo = optarg; break;
    case 'k': o->key_file = optarg; break;
    case 'd': o->disk = optarg; break;
    case 'U': o->unix_sock = optarg; break;
    case 'b': o->bind = optarg; break;
    case 'T': o->tls = true; break;
    case 'C': o->tls_certs = optarg; o->tls = true; break;
    case 'P': o->tls_psk = optarg; o->tls = true; break;
    case 'o': o->overlay = optarg; break;
    case 'f': break;                          /* always in the foreground */
    case 'p':
      if (cli_parse_u64 (optarg, &o->port) < 0 || o->port < 1 || o->port > 65535)
        return cli_usage_error ("serve: --port takes 1..65535");
      break;
    case 'c':
      if (cli_parse_size (optarg, &o->cache) < 0 || o->cache > (1ULL << 40))
        return cli_usage_error ("serve: bad --cache '%s'", optarg);
      break;
    case 't':
      if (cli_parse_u64 (optarg, &o->threads) < 0 || o->threads < 1 || o->threads > 256)
        return cli_usage_error ("serve: --threads takes 1..256");
      break;
    case 'h': *help = true; return 0;
    default:
      return cli_usage_error ("serve: unknown or incomplete option '%s'", argv[optind - 1]);
    }
  }
  if (argc - optind != 1)
    return cli_usage_error ("usage: vmback serve [--repo R] POINT (--unix SOCKET | --port P)");
  if (!o->unix_sock == !o->port)
    return cli_usage_error ("serve: give exactly one of --unix SOCKET and --port P");
  if (o->bind && o->unix_sock)
    return cli_usage_error ("serve: --bind goes with --port, not --unix");
  if (o->tls_certs && o->tls_psk)
    return cli_usage_error ("serve: give --tls-certificates or --tls-psk, not both");
  if (!o->bind)
    o->bind = "127.0.0.1";
  return 0;
}

/* Paths the server needs, made absolute (it may outlive our cwd's meaning
 * in the printed URI).  0 or -1 (message printed). */
static int
absolutize (struct serve_opts *o, char **repo_abs, char **sock, char **ov, char **kf, char **psk)
{
  const char *rp = o->repo ? o->repo : getenv ("VMBACK_REPO");
  if (!rp || !*rp) {
    cli_usage_error ("no repository: use --repo PATH or set VMBACK_REPO");
    return -1;
  }
  const char *k = o->key_file ? o->key_file : getenv ("VMBACK_KEY_FILE");
  *repo_abs = repo_is_s3_url (rp) ? strdup (rp) : realpath (rp, NULL);
  if (!*repo_abs) {
    fprintf (stderr, "vmback: serve: repository '%s': %s\n", rp, strerror (errno));
    return -1;
  }
  if ((o->unix_sock && !(*sock = abs_path ("socket", o->unix_sock)))
      || (o->overlay && !(*ov = abs_path ("overlay", o->overlay)))
      || (k && *k && !(*kf = abs_path ("key file", k)))
      || (o->tls_psk && !(*psk = abs_path ("PSK file", o->tls_psk))))
    return -1;
  o->key_file = *kf;
  o->tls_psk = *psk;
  o->overlay = *ov;
  return 0;
}

/* Build nbdkit's argv from the checked options. */
static void
nbdkit_args (struct argv_buf *a, const char *nbdkit, const struct serve_opts *o,
             const char *plugin, const char *repo_abs, const char *id, const char *key,
             const char *ready)
{
  arg_add (a, "%s", nbdkit);
  arg_add (a, "--foreground");
  arg_add (a, "--log=stderr");
  if (o->unix_sock)
    arg_add (a, "--unix=%s", o->unix_sock);
  else {
    arg_add (a, "--port=%" PRIu64, o->port);
    arg_add (a, "--ipaddr=%s", o->bind);
  }
  if (!o->overlay)
    arg_add (a, "--readonly");
  if (o->tls)
    arg_add (a, "--tls=require");
  if (o->tls_certs)
    arg_add (a, "--tls-certificates=%s", o->tls_certs);
  if (o->tls_psk)
    arg_add (a, "--tls-psk=%s", o->tls_psk);
  /* one thread per connection unless asked: nbdkit 1.32 (Debian 12) can
   * abort when a client drops a connection with requests in flight on
   * several threads; clients get parallelism from multi-conn */
  arg_add (a, "--threads=%" PRIu64, o->threads ? o->threads : 1);
  arg_add (a, "%s", plugin);
  arg_add (a, "repo=%s", repo_abs);
  arg_add (a, "point=%s", id);
  arg_add (a, "disk=%s", key);
  if (o->overlay)
    arg_add (a, "overlay=%s", o->overlay);
  if (o->key_file)
    arg_add (a, "keyfile=%s", o->key_file);
  if (o->cache)
    arg_add (a, "cache=%" PRIu64, o->cache);
  if (ready)
    arg_add (a, "ready=%s", ready);
}

/* With a pre-shared key, GnuTLS would settle on ChaCha20 (transport.h):
 * where AES-GCM is the better choice, hand nbdkit a GnuTLS configuration
 * disabling ChaCha20 in a memory file it inherits, named by
 * GNUTLS_SYSTEM_PRIORITY_FILE=/dev/fd/N (GnuTLS opens it again for each
 * connection; no file is left anywhere).  Only speed is at stake, so a
 * failure here is silent. */
static void
prefer_aes_gcm (void)
{
  if (!vb_tls_prefer_aes ())
    return;
  int fd = memfd_create ("vmback-gnutls.conf", 0);     /* inherited by nbdkit */
  if (fd < 0)
    return;
  char env[64];
  snprintf (env, sizeof env, "/dev/fd/%d", fd);
  size_t n = strlen (VB_TLS_NO_CHACHA);
  if (write (fd, VB_TLS_NO_CHACHA, n) != (ssize_t) n
      || setenv ("GNUTLS_SYSTEM_PRIORITY_FILE", env, 1) < 0)
    close (fd);
}

/* The global S3 options (--s3-endpoint, --s3-ca, --s3-path-style) were
 * taken by this process; the plugin in nbdkit reads its S3 settings from
 * the environment, so hand them on there (they win over what the
 * environment said, as they do here).  Without this an endpoint given as
 * an option would be ignored by the server, which would then ask AWS. */
static int
export_s3_options (void)
{
  const struct repo_s3_options *o = repo_s3_options ();
  char *ca = o->ca_file ? realpath (o->ca_file, NULL) : NULL;
  int rc = 0;
  if (o->ca_file && !ca) {
    fprintf (stderr, "vmback: serve: cannot read CA file '%s': %s\n", o->ca_file,
             strerror (errno));
    return -1;
  }
  if ((o->endpoint && (setenv ("AWS_ENDPOINT_URL_S3", o->endpoint, 1) < 0
                       || setenv ("AWS_ENDPOINT_URL", o->endpoint, 1) < 0))
      || (ca && setenv ("AWS_CA_BUNDLE", ca, 1) < 0)
      || (o->path_style && setenv ("VMBACK_S3_PATH_STYLE", "1", 1) < 0)) {
    fprintf (stderr, "vmback: serve: cannot pass the S3 options on: %s\n", strerror (errno));
    rc = -1;
  }
  free (ca);
  return rc;
}

/* vmback serve: check, then become nbdkit. */
int
cmd_serve (struct cli *c, int argc, char **argv)
{
  struct serve_opts o = { 0 };
  bool help = false;
  int rc = parse (argc, argv, &o, &help);
  if (rc || help) {
    if (help)
      serve_help ();
    return rc;
  }
  const char *spec = argv[optind];
  char *repo_abs = NULL, *sock = NULL, *ov = NULL, *kf = NULL, *psk = NULL, *plugin = NULL;
  char *user = NULL, *uri = NULL, *ready = NULL;
  char id[128], key[64];
  uint64_t size = 0;
  rc = 1;
  if (absolutize (&o, &repo_abs, &sock, &ov, &kf, &psk) < 0
      || check_point (&o, repo_abs, spec, id, sizeof id, key, sizeof key, &size) < 0
      || !(plugin = plugin_path ()) || (psk && !(user = psk_user (psk)))
      || (sock && clear_stale_socket (sock) < 0))
    goto out;
  o.unix_sock = sock;
  if (!(uri = make_uri (&o, sock, user)) || !(ready = ready_line (c, uri, id, key, size, ov))) {
    fprintf (stderr, "vmback: serve: out of memory\n");
    goto out;
  }
  if (export_s3_options () < 0)
    goto out;
  const char *nbdkit = getenv ("VMBACK_NBDKIT");
  nbdkit = nbdkit && *nbdkit ? nbdkit : "nbdkit";
  struct argv_buf a = { .n = 0 };
  nbdkit_args (&a, nbdkit, &o, plugin, repo_abs, id, key, c->quiet ? NULL : ready);
  if (o.tls_psk)
    prefer_aes_gcm ();
  fflush (NULL);
  execvp (nbdkit, a.v);
  fprintf (stderr, "vmback: serve: cannot run '%s': %s%s\n", nbdkit, strerror (errno),
           errno == ENOENT ? " (install nbdkit)" : "");
  for (int i = 0; i < a.n; i++)
    free (a.v[i]);
out:
  free (repo_abs), free (sock), free (ov), free (kf), free (psk), free (plugin);
  free (user), free (uri), free (ready);
  return rc;
}
