/* vmback repository: config, init/open, info and restore points
 * (docs/FORMAT.md).
 *
 * Layout (object keys of the storage backend):
 *   config                               JSON: format, id, chunk size, ...
 *   keys/repokey                         key file (crypto_keyfile_write)
 *   chunks/ab/<64 hex>                   chunk blobs (chunk.c), format 1
 *   packs/ab/<64 hex>                    packs of chunk blobs, format 2
 *   packidx/<64 hex>                     where each chunk is (packidx.c)
 *   snapshots/<source>/<time>/manifest   a point's manifest (manifest.c)
 *   snapshots/<source>/<time>/<k>.index  a disk's index (index.c)
 *   locks/<shared|exclusive>-...         locks (lock.c)
 *
 * A repository exists once its config is durable (written last by
 * repo_init); a point exists once its manifest is durable (written last by
 * the engine, first thing deleted by repo_delete_point).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <uuid/uuid.h>

#include "vmback/repo.h"
#include "repo-int.h"
#include "common/module.h"
#include "vdisk/vdisk-int.h"

#define REPO_FORMAT 1          /* loose chunks */
#define REPO_FORMAT_PACKED 2   /* chunks in packs (chunkstore.c) */
#define CONFIG_KEY "config"
#define REPOKEY_KEY "keys/repokey"
#define CONFIG_MAX (64u << 10)       /* a config is ~200 bytes */
#define KEYFILE_MAX (64u << 10)      /* a key file is < 1 KiB */
#define MANIFEST_MAX (1u << 20)      /* as manifest.c: 64 disks * ~2 KiB, with room */
#define SECRET_FILE_MAX 4096u        /* --key-file contents */
#define SOURCE_MAX 100               /* longest source name */
#define POINT_SUFFIX_MAX 9999        /* "-2" .. "-9999" for one second */
#define ZSTD_LEVEL_MAX 22

struct repo {
  struct repo_backend *b;
  char *path;
  char id[64];
  int format;
  uint32_t chunk_size;
  uint32_t pack_size;          /* 0 = loose chunks (format 1) */
  int compress_level;
  bool encrypted;
  char kdf[64];
  struct repo_keys keys;
  struct chunkstore *cs;
  char lock_key[256];          /* own lock object, "" if none (lock.c) */
  struct repo_lock_state *lock_state;   /* its refresher (lock.c) */
};

/* Own lock slot for lock.c (256 bytes). */
char *
repo_lock_slot (struct repo *r)
{
  return r->lock_key;
}

/* Own lock state slot for lock.c. */
struct repo_lock_state **
repo_lock_state_slot (struct repo *r)
{
  return &r->lock_state;
}

/* --- small helpers -------------------------------------------------------- */

/* Parse exactly len bytes as one JSON object (only white space may follow);
 * NULL with an error naming `what` otherwise. */
static struct json_object *
parse_json_object (const char *buf, size_t len, const char *what,
                   struct vb_error *err)
{
  if (len > INT32_MAX) {
    vb_err (err, EFBIG, "%s is too large", what);
    return NULL;
  }
  struct json_tokener *tok = json_tokener_new ();
  if (!tok) {
    vb_errno (err, ENOMEM, "cannot parse %s", what);
    return NULL;
  }
  struct json_object *o = json_tokener_parse_ex (tok, buf, (int) len);
  enum json_tokener_error je = json_tokener_get_error (tok);
  size_t used = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  while (o && used < len && buf[used] != '\0' && strchr (" \t\r\n", buf[used]))
    used++;
  if (!o || je != json_tokener_success) {
    json_object_put (o);
    vb_err (err, EBADMSG, "%s is damaged: not valid JSON (%s)", what,
            je == json_tokener_success ? "empty" : json_tokener_error_desc (je));
    return NULL;
  }
  if (used != len) {
    json_object_put (o);
    vb_err (err, EBADMSG, "%s is damaged: data after the JSON object", what);
    return NULL;
  }
  if (!json_object_is_type (o, json_type_object)) {
    json_object_put (o);
    vb_err (err, EBADMSG, "%s is damaged: not a JSON object", what);
    return NULL;
  }
  return o;
}

/* Integer member `name` of o (must be a JSON integer). */
static int
json_int (struct json_object *o, const char *name, const char *what,
          int64_t *out, struct vb_error *err)
{
  struct json_object *v;
  if (!json_object_object_get_ex (o, name, &v)
      || !json_object_is_type (v, json_type_int))
    return vb_err (err, EBADMSG, "%s is damaged: '%s' is missing or not an "
                   "integer", what, name);
  *out = json_object_get_int64 (v);
  return 0;
}

/* String member `name` of o copied into out (cap bytes with the NUL). */
static int
json_str (struct json_object *o, const char *name, const char *what,
          char *out, size_t cap, struct vb_error *err)
{
  struct json_object *v;
  if (!json_object_object_get_ex (o, name, &v)
      || !json_object_is_type (v, json_type_string))
    return vb_err (err, EBADMSG, "%s is damaged: '%s' is missing or not a "
                   "string", what, name);
  size_t n = (size_t) json_object_get_string_len (v);
  const char *s = json_object_get_string (v);
  if (n >= cap || strlen (s) != n)
    return vb_err (err, EBADMSG, "%s is damaged: '%s' is too long or holds "
                   "a NUL", what, name);
  memcpy (out, s, n + 1);
  return 0;
}

/* True if s is a valid source name: [A-Za-z0-9._-]+, at most SOURCE_MAX
 * characters, not starting with '.' (keeps ".", ".." and the backend's
 * ".tmp-" names out). */
static bool
source_name_ok (const char *s)
{
  size_t n = strnlen (s, SOURCE_MAX + 1);
  if (n == 0 || n > SOURCE_MAX || s[0] == '.')
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
          || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return false;
  }
  return true;
}

/* Error for an invalid source name. */
static int
bad_source (const char *s, struct vb_error *err)
{
  return vb_err (err, EINVAL, "invalid source name '%.*s': use 1 to %d "
                 "letters, digits, '.', '_' or '-', not starting with '.'",
                 SOURCE_MAX + 1, s, SOURCE_MAX);
}

/* Split a point id "<source>/<time>" (both valid names) into its source;
 * src must hold SOURCE_MAX + 1 bytes. */
static bool
point_id_ok (const char *id, char *src)
{
  const char *slash = strchr (id, '/');
  if (!slash || (size_t) (slash - id) > SOURCE_MAX)
    return false;
  char s[SOURCE_MAX + 1];
  memcpy (s, id, (size_t) (slash - id));
  s[slash - id] = '\0';
  if (!source_name_ok (s) || !source_name_ok (slash + 1))
    return false;
  if (src)
    strcpy (src, s);
  return true;
}

/* Read the secret of a --key-file: its bytes, at most SECRET_FILE_MAX, one
 * trailing "\n" or "\r\n" dropped, no NUL bytes (the passphrase is a C
 * string; a binary key would be silently cut at its first NUL). */
static int
read_secret_file (const char *path, char **out, struct vb_error *err)
{
  char *buf = NULL;
  size_t len = 0;
  *out = NULL;
  int r = vio_read_file (path, SECRET_FILE_MAX, &buf, &len, err);
  if (r < 0) {
    if (r == -EFBIG) {
      vb_err_clear (err);
      vb_err (err, EFBIG, "key file '%s' is larger than %u bytes", path,
              SECRET_FILE_MAX);
    }
    return r;
  }
  if (len > 0 && buf[len - 1] == '\n')
    len--;
  if (len > 0 && buf[len - 1] == '\r')
    len--;
  if (memchr (buf, '\0', len)) {
    OPENSSL_cleanse (buf, len);
    free (buf);
    return vb_err (err, EINVAL, "key file '%s' holds NUL bytes: use a text "
                   "secret (e.g. 'head -c 32 /dev/urandom | base64')", path);
  }
  if (len == 0) {
    free (buf);
    return vb_err (err, EINVAL, "key file '%s' is empty", path);
  }
  buf[len] = '\0';
  *out = buf;
  return 0;
}

/* Wipe and free a secret string. */
static void
free_secret (char *s)
{
  if (s) {
    OPENSSL_cleanse (s, strlen (s));
    free (s);
  }
}

/* The passphrase to use: the key file's secret if key_file is set (a
 * malloc'd copy in *owned), else passphrase. */
static int
pick_secret (const char *passphrase, const char *key_file, const char **pass,
             char **owned, struct vb_error *err)
{
  *owned = NULL;
  *pass = passphrase;
  if (key_file && *key_file) {
    int r = read_secret_file (key_file, owned, err);
    if (r < 0)
      return r;
    *pass = *owned;
  }
  return 0;
}

/* KDF summary for the config from a key file we just wrote. */
static void
kdf_summary (const char *keyfile, bool encrypted, char *out, size_t cap)
{
  snprintf (out, cap, "none");
  if (!encrypted)
    return;
  snprintf (out, cap, "scrypt");
  struct json_object *o = parse_json_object (keyfile, strlen (keyfile),
                                             "key file", NULL);
  if (!o)
    return;
  int64_t n, r, p;
  struct json_object *k;
  if (json_object_object_get_ex (o, "kdf", &k)
      && json_object_is_type (k, json_type_string)
      && strcmp (json_object_get_string (k), "scrypt") == 0
      && json_int (o, "n", "", &n, NULL) == 0
      && json_int (o, "r", "", &r, NULL) == 0
      && json_int (o, "p", "", &p, NULL) == 0)
    snprintf (out, cap, "scrypt N=%" PRId64 " r=%" PRId64 " p=%" PRId64,
              n, r, p);
  json_object_put (o);
}

/* --- init ---------------------------------------------------------------- */

/* Refuse a path that exists and is not an empty directory. */
static int
check_empty_dir (const char *path, struct vb_error *err)
{
  struct stat st;
  if (stat (path, &st) < 0) {
    if (errno == ENOENT)
      return 0;
    return vb_errno (err, errno, "cannot create repository in '%s'", path);
  }
  if (!S_ISDIR (st.st_mode))
    return vb_err (err, ENOTDIR, "cannot create repository in '%s': not a "
                   "directory", path);
  DIR *d = opendir (path);
  if (!d)
    return vb_errno (err, errno, "cannot create repository in '%s'", path);
  bool has_config = false, empty = true;
  struct dirent *de;
  while ((de = readdir (d))) {
    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    empty = false;
    if (strcmp (de->d_name, CONFIG_KEY) == 0)
      has_config = true;
  }
  closedir (d);
  if (has_config)
    return vb_err (err, EEXIST, "'%s' already holds a repository", path);
  if (!empty)
    return vb_err (err, EEXIST, "cannot create repository in '%s': the "
                   "directory is not empty", path);
  return 0;
}

/* Settings from command-line options (repo_s3_set_options). */
static struct repo_s3_options s3_opt;

/* Remember the command-line settings (copies; NULL members clear). */
void
repo_s3_set_options (const struct repo_s3_options *o)
{
  free ((char *) s3_opt.endpoint);
  free ((char *) s3_opt.ca_file);
  s3_opt.endpoint = o && o->endpoint ? strdup (o->endpoint) : NULL;
  s3_opt.ca_file = o && o->ca_file ? strdup (o->ca_file) : NULL;
  s3_opt.path_style = o && o->path_style;
}

/* The settings given to repo_s3_set_options (repo-int.h). */
const struct repo_s3_options *
repo_s3_options (void)
{
  return &s3_opt;
}

/* True if path names an S3 repository. */
bool
repo_is_s3_url (const char *path)
{
  return path && strncmp (path, "s3://", 5) == 0;
}

/* The storage backend for a repository path: S3 for an "s3://" URL (linked
 * in, or from the module vmback-s3.so), else the local directory backend.
 * Fails only when the S3 module cannot be loaded. */
static int
backend_for (const char *path, const struct repo_backend_ops **ops, struct vb_error *err)
{
  *ops = &repo_backend_local;
  if (!repo_is_s3_url (path))
    return 0;
  *ops = &repo_backend_s3;
  if (*ops)
    return 0;
  struct vb_error e = { 0 };
  *ops = vb_module_symbol ("s3", "repo_backend_s3", &e);
  if (!*ops)
    return vb_err (err, e.code, "%s: S3 repositories need the S3 module: %s", path, e.msg);
  return 0;
}

static int any_object (void *opaque, const char *key, uint64_t size);

/* Refuse a store (S3 prefix) that holds a config or any other object. */
static int
check_empty_store (struct repo_backend *b, const char *path,
                   struct vb_error *err)
{
  int r = b->ops->exists (b, CONFIG_KEY, err);
  if (r < 0)
    return r;
  if (r == 1)
    return vb_err (err, EEXIST, "'%s' already holds a repository", path);
  r = b->ops->list (b, "", any_object, NULL, err);
  if (r < 0)
    return r;
  if (r > 0)
    return vb_err (err, EEXIST, "cannot create repository in '%s': it already "
                   "holds objects", path);
  return 0;
}

/* Create a repository: check options and directory, write the key file,
 * then the config (last: the repository exists once it is durable). */
int
repo_init (const char *path, const struct repo_init_opts *o,
           struct vb_error *err)
{
  struct repo_init_opts def = { 0 };
  if (!o)
    o = &def;
  if (!path || !*path)
    return vb_err (err, EINVAL, "repository path is empty");
  uint32_t cs = o->chunk_size ? o->chunk_size : CHUNK_DEFAULT_SIZE;
  if (cs < CHUNK_MIN_SIZE || cs > CHUNK_MAX_SIZE || (cs & (cs - 1)) != 0)
    return vb_err (err, EINVAL, "invalid chunk size %" PRIu32 ": a power of "
                   "two from %u KiB to %u MiB", cs, CHUNK_MIN_SIZE >> 10,
                   CHUNK_MAX_SIZE >> 20);
  int level = o->compress_level ? o->compress_level : 1;   /* zstd -1: the speed of the floor users compare with */
  /* on an object store every object costs a request and server work: pack */
  uint32_t pack = o->pack_size_set ? o->pack_size
                  : repo_is_s3_url (path) ? REPO_PACK_DEFAULT : 0;
  if (pack != 0 && (pack < REPO_PACK_MIN || pack > REPO_PACK_MAX))
    return vb_err (err, EINVAL, "invalid pack size %" PRIu32 ": 0 (one object per "
                   "chunk) or %u KiB to %u MiB", pack, REPO_PACK_MIN >> 10,
                   REPO_PACK_MAX >> 20);
  if (level < 1 || level > ZSTD_LEVEL_MAX)
    return vb_err (err, EINVAL, "invalid compression level %d: 1 to %d",
                   level, ZSTD_LEVEL_MAX);

  const char *pass = NULL;
  char *owned = NULL;
  if (o->encrypt) {
    int r = pick_secret (o->passphrase, o->key_file, &pass, &owned, err);
    if (r < 0)
      return r;
    if (!pass || !*pass)
      return vb_err (err, EINVAL, "an encrypted repository needs a "
                     "passphrase: set VMBACK_PASSPHRASE or use --key-file");
  }

  struct repo_backend *b = NULL;
  struct repo_keys keys;
  char *keyfile = NULL;
  struct json_object *cfg = NULL;
  bool s3 = repo_is_s3_url (path);
  int r = s3 ? 0 : check_empty_dir (path, err);
  if (r < 0)
    goto out;
  const struct repo_backend_ops *ops;
  if ((r = backend_for (path, &ops, err)) < 0 || (r = ops->open (path, true, &b, err)) < 0)
    goto out;
  if (s3 && (r = check_empty_store (b, path, err)) < 0)
    goto out;
  r = crypto_keys_generate (&keys, o->encrypt, err);
  if (r < 0)
    goto out;
  r = crypto_keyfile_write (&keys, o->encrypt ? pass : NULL, &keyfile, err);
  OPENSSL_cleanse (&keys, sizeof keys);
  if (r < 0)
    goto out;
  r = b->ops->put (b, REPOKEY_KEY, keyfile, strlen (keyfile), REPO_PUT_EXCL,
                   err);
  if (r < 0) {
    vb_err_prefix (err, "cannot create repository in '%s'", path);
    goto out;
  }

  /* the usual directories, so the layout is visible from the start
   * (the backend creates them on demand anyway) */
  const char *const dirs[] = { pack ? "packs" : "chunks", "snapshots", "locks" };
  for (size_t i = 0; !s3 && i < sizeof dirs / sizeof dirs[0]; i++) {
    char d[4096];
    snprintf (d, sizeof d, "%s/%s", path, dirs[i]);
    if (mkdir (d, 0700) < 0 && errno != EEXIST) {
      r = vb_errno (err, errno, "cannot create '%s'", d);
      goto out;
    }
  }

  uuid_t u;
  char ustr[37];
  uuid_generate_random (u);
  uuid_unparse_lower (u, ustr);
  char kdf[64];
  kdf_summary (keyfile, o->encrypt, kdf, sizeof kdf);
  cfg = json_object_new_object ();
  if (!cfg) {
    r = vb_errno (err, ENOMEM, "cannot create repository in '%s'", path);
    goto out;
  }
  json_object_object_add (cfg, "format",
                          json_object_new_int (pack ? REPO_FORMAT_PACKED : REPO_FORMAT));
  json_object_object_add (cfg, "id", json_object_new_string (ustr));
  json_object_object_add (cfg, "chunk_size", json_object_new_int64 (cs));
  if (pack)
    json_object_object_add (cfg, "pack_size", json_object_new_int64 (pack));
  json_object_object_add (cfg, "compress_level", json_object_new_int (level));
  json_object_object_add (cfg, "encrypted",
                          json_object_new_boolean (o->encrypt));
  json_object_object_add (cfg, "kdf", json_object_new_string (kdf));
  const char *s = json_object_to_json_string_ext (cfg, JSON_C_TO_STRING_PRETTY
                                                  | JSON_C_TO_STRING_SPACED);
  char *text = s ? malloc (strlen (s) + 2) : NULL;
  if (!text) {
    r = vb_errno (err, ENOMEM, "cannot create repository in '%s'", path);
    goto out;
  }
  sprintf (text, "%s\n", s);
  r = b->ops->put (b, CONFIG_KEY, text, strlen (text), REPO_PUT_EXCL, err);
  free (text);
  if (r < 0)
    vb_err_prefix (err, "cannot create repository in '%s'", path);
out:
  json_object_put (cfg);
  if (keyfile) {
    OPENSSL_cleanse (keyfile, strlen (keyfile));
    free (keyfile);
  }
  free_secret (owned);
  if (b)
    b->ops->close (b);
  return r;
}

/* --- open ---------------------------------------------------------------- */

/* Parse and check the config into r. */
static int
parse_config (struct repo *r, const char *buf, size_t len,
              struct vb_error *err)
{
  char what[4200];
  snprintf (what, sizeof what, "config of repository '%s'", r->path);
  struct json_object *o = parse_json_object (buf, len, what, err);
  if (!o)
    return err ? -err->code : -EBADMSG;
  int64_t v = 0;
  int rc = json_int (o, "format", what, &v, err);
  if (rc < 0)
    goto out;
  if (v != REPO_FORMAT && v != REPO_FORMAT_PACKED) {
    rc = vb_err (err, EPROTONOSUPPORT, "repository '%s' has format %" PRId64
                 ", this vmback reads formats %d and %d only", r->path, v,
                 REPO_FORMAT, REPO_FORMAT_PACKED);
    goto out;
  }
  r->format = (int) v;
  if (r->format == REPO_FORMAT_PACKED) {
    if ((rc = json_int (o, "pack_size", what, &v, err)) < 0)
      goto out;
    if (v < REPO_PACK_MIN || v > REPO_PACK_MAX) {
      rc = vb_err (err, EBADMSG, "%s is damaged: pack size %" PRId64 " is not "
                   "%u to %u", what, v, REPO_PACK_MIN, REPO_PACK_MAX);
      goto out;
    }
    r->pack_size = (uint32_t) v;
  }
  if ((rc = json_str (o, "id", what, r->id, sizeof r->id, err)) < 0)
    goto out;
  uuid_t u;
  if (uuid_parse (r->id, u) < 0) {
    rc = vb_err (err, EBADMSG, "%s is damaged: 'id' is not a uuid", what);
    goto out;
  }
  if ((rc = json_int (o, "chunk_size", what, &v, err)) < 0)
    goto out;
  if (v < CHUNK_MIN_SIZE || v > CHUNK_MAX_SIZE || (v & (v - 1)) != 0) {
    rc = vb_err (err, EBADMSG, "%s is damaged: chunk size %" PRId64 " is not "
                 "a power of two from %u to %u", what, v, CHUNK_MIN_SIZE,
                 CHUNK_MAX_SIZE);
    goto out;
  }
  r->chunk_size = (uint32_t) v;
  if ((rc = json_int (o, "compress_level", what, &v, err)) < 0)
    goto out;
  if (v < 1 || v > ZSTD_LEVEL_MAX) {
    rc = vb_err (err, EBADMSG, "%s is damaged: compression level %" PRId64
                 " is not 1 to %d", what, v, ZSTD_LEVEL_MAX);
    goto out;
  }
  r->compress_level = (int) v;
  struct json_object *e;
  if (!json_object_object_get_ex (o, "encrypted", &e)
      || !json_object_is_type (e, json_type_boolean)) {
    rc = vb_err (err, EBADMSG, "%s is damaged: 'encrypted' is missing or not "
                 "a boolean", what);
    goto out;
  }
  r->encrypted = json_object_get_boolean (e);
  if ((rc = json_str (o, "kdf", what, r->kdf, sizeof r->kdf, err)) < 0)
    goto out;
out:
  json_object_put (o);
  return rc;
}

/* Open a repository: config, then key file, then unwrap the keys. */
int
repo_open (const char *path, const char *passphrase, const char *key_file,
           struct repo **out, struct vb_error *err)
{
  *out = NULL;
  if (!path || !*path)
    return vb_err (err, EINVAL, "repository path is empty");
  struct repo *r = calloc (1, sizeof *r);
  if (!r || !(r->path = strdup (path))) {
    free (r);
    return vb_errno (err, ENOMEM, "cannot open repository '%s'", path);
  }
  uint8_t *buf = NULL;
  size_t len = 0;
  char *owned = NULL;
  const struct repo_backend_ops *ops;
  int rc = backend_for (path, &ops, err);
  if (rc == 0)
    rc = ops->open (path, false, &r->b, err);
  if (rc < 0)
    goto fail;
  rc = r->b->ops->get (r->b, CONFIG_KEY, CONFIG_MAX, &buf, &len, err);
  if (rc == -ENOENT) {
    vb_err_clear (err);
    rc = vb_err (err, ENOENT, "'%s' is not a vmback repository (no config)",
                 path);
    goto fail;
  }
  if (rc < 0) {
    vb_err_prefix (err, "cannot open repository '%s'", path);
    goto fail;
  }
  rc = parse_config (r, (const char *) buf, len, err);
  free (buf);
  buf = NULL;
  if (rc < 0)
    goto fail;

  const char *pass = NULL;
  if (r->encrypted) {
    rc = pick_secret (passphrase, key_file, &pass, &owned, err);
    if (rc < 0)
      goto fail;
    if (!pass || !*pass) {
      /* ENOKEY lets an interactive caller prompt and retry */
      rc = vb_err (err, ENOKEY, "repository is encrypted: set "
                   "VMBACK_PASSPHRASE or use --key-file");
      goto fail;
    }
  }
  rc = r->b->ops->get (r->b, REPOKEY_KEY, KEYFILE_MAX, &buf, &len, err);
  if (rc < 0) {
    vb_err_prefix (err, "cannot open repository '%s'", path);
    goto fail;
  }
  rc = crypto_keyfile_read ((const char *) buf, len, pass, &r->keys, err);
  free (buf);
  buf = NULL;
  if (rc < 0) {
    if (rc != -EACCES)
      vb_err_prefix (err, "cannot open repository '%s'", path);
    goto fail;
  }
  if (r->keys.encrypted != r->encrypted) {
    rc = vb_err (err, EBADMSG, "repository '%s' is damaged: the key file "
                 "says %sencrypted, the config %sencrypted", path,
                 r->keys.encrypted ? "" : "not ", r->encrypted ? "" : "not ");
    goto fail;
  }
  if ((rc = chunkstore_open (r, r->pack_size, &r->cs, err)) < 0)
    goto fail;
  free_secret (owned);
  *out = r;
  return 0;
fail:
  free_secret (owned);
  free (buf);
  repo_close (r);
  return rc;
}

/* Release the lock (if held), wipe the keys, close the backend. */
void
repo_close (struct repo *r)
{
  if (!r)
    return;
  if (r->b) {
    if (r->lock_key[0])
      repo_unlock (r);
    r->b->ops->close (r->b);
  }
  chunkstore_close (r->cs);
  OPENSSL_cleanse (&r->keys, sizeof r->keys);
  free (r->path);
  free (r);
}

/* Accessors. */
struct chunkstore *
repo_chunks (struct repo *r)
{
  return r->cs;
}

struct repo_backend *
repo_backend (struct repo *r)
{
  return r->b;
}

const struct repo_keys *
repo_keys (struct repo *r)
{
  return &r->keys;
}

uint32_t
repo_chunk_size (const struct repo *r)
{
  return r->chunk_size;
}

int
repo_compress_level (const struct repo *r)
{
  return r->compress_level;
}

const char *
repo_path (const struct repo *r)
{
  return r->path;
}

const char *
repo_id (const struct repo *r)
{
  return r->id;
}

/* --- info ---------------------------------------------------------------- */

struct count {
  uint64_t n, bytes;
};

/* True if key is "snapshots/<source>/<time>/manifest". */
static bool
is_manifest_key (const char *key)
{
  const char *p = key + strlen ("snapshots/");
  const char *a = strchr (p, '/');
  const char *b = a ? strchr (a + 1, '/') : NULL;
  return b && a > p && b > a + 1 && strcmp (b + 1, "manifest") == 0;
}

/* list callback: count manifests. */
static int
count_manifest (void *opaque, const char *key, uint64_t size)
{
  if (is_manifest_key (key))
    ((struct count *) opaque)->n++;
  return 0;
}

/* Fill info from the config and a walk of chunks/ and snapshots/. */
int
repo_get_info (struct repo *r, struct repo_info *info, struct vb_error *err)
{
  memset (info, 0, sizeof *info);
  snprintf (info->id, sizeof info->id, "%s", r->id);
  info->format = r->format;
  info->chunk_size = r->chunk_size;
  info->pack_size = r->pack_size;
  info->compress_level = r->compress_level;
  info->encrypted = r->encrypted;
  snprintf (info->kdf, sizeof info->kdf, "%s", r->kdf);
  struct count p = { 0 };
  int rc = chunkstore_usage (r->cs, &info->n_chunks, &info->n_objects,
                             &info->chunk_bytes, err);
  if (rc < 0)
    return rc;
  rc = r->b->ops->list (r->b, "snapshots/", count_manifest, &p, err);
  if (rc < 0)
    return rc;
  info->n_points = p.n;
  return 0;
}

/* --- points -------------------------------------------------------------- */

/* Read and authenticate the manifest of point id into m; -ENOENT if the
 * point does not exist.  The manifest must name the point it is stored
 * as (a manifest copied over another point is rejected). */
static int
load_manifest (struct repo *r, const char *id, struct manifest *m,
               struct vb_error *err)
{
  char key[512];
  snprintf (key, sizeof key, "snapshots/%s/manifest", id);
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = r->b->ops->get (r->b, key, MANIFEST_MAX, &buf, &len, err);
  if (rc < 0)
    return rc;
  rc = manifest_decode (&r->keys, (const char *) buf, len, key, m, err);
  free (buf);
  if (rc < 0)
    return rc;
  char src[SOURCE_MAX + 1];
  point_id_ok (id, src);
  if (strcmp (m->id, id) != 0 || strcmp (m->source_name, src) != 0)
    return vb_err (err, EBADMSG, "manifest '%s' belongs to point '%.128s' of "
                   "source '%.128s', not to '%s'", key, m->id, m->source_name,
                   id);
  return 0;
}

struct keylist {
  char **ids;                  /* point ids "<source>/<time>" */
  size_t n, cap;
  int rc;
};

/* list callback: collect the ids of manifests. */
static int
collect_point (void *opaque, const char *key, uint64_t size)
{
  struct keylist *kl = opaque;
  if (!is_manifest_key (key))
    return 0;
  const char *id = key + strlen ("snapshots/");
  size_t n = strlen (id) - strlen ("/manifest");
  char *s = strndup (id, n);
  if (!s || !point_id_ok (s, NULL)) {
    free (s);
    if (!s) {
      kl->rc = -ENOMEM;
      return 1;
    }
    vb_debug ("ignoring '%s': not a valid point id", key);
    return 0;
  }
  if (kl->n == kl->cap) {
    size_t nc = kl->cap ? kl->cap * 2 : 64;
    char **ni = nc < SIZE_MAX / sizeof *ni ? realloc (kl->ids, nc * sizeof *ni)
                                           : NULL;
    if (!ni) {
      free (s);
      kl->rc = -ENOMEM;
      return 1;
    }
    kl->ids = ni;
    kl->cap = nc;
  }
  kl->ids[kl->n++] = s;
  return 0;
}

struct order {
  int64_t finished;
  const char *id;
  size_t idx;
};

/* Oldest first: by finished time, then id. */
static int
cmp_order (const void *a, const void *b)
{
  const struct order *x = a, *y = b;
  if (x->finished != y->finished)
    return x->finished < y->finished ? -1 : 1;
  return strcmp (x->id, y->id);
}

/* List, authenticate and sort the points (of one source, or all). */
int
repo_list_points (struct repo *r, const char *source, struct manifest **out,
                  size_t *n, struct vb_error *err)
{
  return repo_list_points_tolerant (r, source, out, n, NULL, NULL, err);
}

/* repo_list_points, but with bad != NULL a manifest that cannot be read
 * or authenticated is reported through bad and skipped (verify). */
int
repo_list_points_tolerant (struct repo *r, const char *source,
                           struct manifest **out, size_t *n,
                           repo_bad_point_fn bad, void *opaque,
                           struct vb_error *err)
{
  *out = NULL;
  *n = 0;
  char prefix[SOURCE_MAX + 16];
  if (source) {
    if (!source_name_ok (source))
      return bad_source (source, err);
    snprintf (prefix, sizeof prefix, "snapshots/%s/", source);
  } else
    snprintf (prefix, sizeof prefix, "snapshots/");
  struct keylist kl = { 0 };
  int rc = r->b->ops->list (r->b, prefix, collect_point, &kl, err);
  if (rc > 0 || kl.rc < 0)
    rc = vb_errno (err, kl.rc < 0 ? -kl.rc : EIO, "cannot list points");
  struct manifest *m = NULL;
  struct order *ord = NULL;
  if (rc < 0 || kl.n == 0)
    goto out;
  /* each struct manifest is ~108 KiB: n * sizeof fits when the array
   * could be allocated at all, checked against SIZE_MAX anyway */
  if (kl.n > SIZE_MAX / sizeof *m
      || !(m = malloc (kl.n * sizeof *m))
      || !(ord = malloc (kl.n * sizeof *ord))) {
    rc = vb_errno (err, ENOMEM, "cannot list %zu points", kl.n);
    goto out;
  }
  for (size_t i = 0; i < kl.n; i++) {
    rc = load_manifest (r, kl.ids[i], &m[i], err);
    if (rc == -ENOENT || (rc < 0 && bad)) {
      if (rc != -ENOENT)            /* unreadable or tampered: report, skip */
        bad (opaque, kl.ids[i], err->msg);
      vb_err_clear (err);
      rc = 0;
      m[i].finished = INT64_MIN;
      m[i].id[0] = '\0';
      continue;
    }
    if (rc < 0)
      goto out;
  }
  size_t k = 0;
  for (size_t i = 0; i < kl.n; i++)
    if (m[i].id[0])
      ord[k++] = (struct order) { m[i].finished, m[i].id, i };
  qsort (ord, k, sizeof *ord, cmp_order);
  /* compact in sorted order into a fresh array (manifests are big; one
   * extra copy beats permuting in place) */
  struct manifest *sorted = k ? malloc (k * sizeof *sorted) : NULL;
  if (k && !sorted) {
    rc = vb_errno (err, ENOMEM, "cannot list %zu points", k);
    goto out;
  }
  for (size_t i = 0; i < k; i++)
    memcpy (&sorted[i], &m[ord[i].idx], sizeof *sorted);
  *out = sorted;
  *n = k;
out:
  for (size_t i = 0; i < kl.n; i++)
    free (kl.ids[i]);
  free (kl.ids);
  free (ord);
  free (m);
  return rc;
}

/* Newest point (of source, or of all when NULL) into out; -ENOENT with
 * a message when there is none. */
static int
newest_point (struct repo *r, const char *source, struct manifest *out,
              struct vb_error *err)
{
  struct manifest *all = NULL;
  size_t n = 0;
  int rc = repo_list_points (r, source, &all, &n, err);
  if (rc < 0)
    return rc;
  if (n > 0)
    memcpy (out, &all[n - 1], sizeof *out);
  free (all);
  if (n > 0)
    return 0;
  if (source)
    return vb_err (err, ENOENT, "source '%s' has no restore points", source);
  return vb_err (err, ENOENT, "repository has no restore points");
}

/* Resolve a point spec into its manifest, trying in turn: a full id
 * "<source>/<time>", "latest", "<source>@latest", "<source>", and an
 * unambiguous suffix of an id. */
int
repo_find_point (struct repo *r, const char *spec, struct manifest *out,
                 struct vb_error *err)
{
  if (!spec || !*spec || strlen (spec) > 2 * SOURCE_MAX + 2)
    return vb_err (err, EINVAL, "invalid restore point '%.*s'",
                   2 * SOURCE_MAX + 2, spec ? spec : "");
  if (point_id_ok (spec, NULL)) {
    int rc = load_manifest (r, spec, out, err);
    if (rc != -ENOENT)
      return rc;
    vb_err_clear (err);
  }
  if (strcmp (spec, "latest") == 0)
    return newest_point (r, NULL, out, err);
  const char *at = strchr (spec, '@');
  if (at) {
    char src[SOURCE_MAX + 1];
    if (strcmp (at, "@latest") != 0)
      return vb_err (err, EINVAL, "invalid restore point '%s': only "
                     "'SOURCE@latest' is understood after '@'", spec);
    size_t sl = (size_t) (at - spec);
    if (sl > SOURCE_MAX)
      return bad_source (spec, err);
    memcpy (src, spec, sl);
    src[sl] = '\0';
    if (!source_name_ok (src))
      return bad_source (src, err);
    return newest_point (r, src, out, err);
  }
  struct manifest *all = NULL;
  size_t n = 0;
  int rc;
  if (source_name_ok (spec)) {
    rc = repo_list_points (r, spec, &all, &n, err);
    if (rc < 0)
      return rc;
    if (n > 0)
      memcpy (out, &all[n - 1], sizeof *out);
    free (all);
    if (n > 0)
      return 0;
  }
  rc = repo_list_points (r, NULL, &all, &n, err);
  if (rc < 0)
    return rc;
  size_t sl = strlen (spec), found = 0, matches = 0;
  char list[512] = "";
  for (size_t i = 0; i < n; i++) {
    size_t il = strlen (all[i].id);
    if (il >= sl && strcmp (all[i].id + il - sl, spec) == 0) {
      if (matches < 3) {
        size_t ll = strlen (list);
        snprintf (list + ll, sizeof list - ll, "%s'%s'", ll ? ", " : "",
                  all[i].id);
      }
      matches++;
      found = i;
    }
  }
  if (matches == 1)
    memcpy (out, &all[found], sizeof *out);
  free (all);
  if (matches == 1)
    return 0;
  if (matches > 1)
    return vb_err (err, EINVAL, "restore point '%s' is ambiguous: it matches "
                   "%s%s", spec, list, matches > 3 ? ", ..." : "");
  return vb_err (err, ENOENT, "no restore point '%s'", spec);
}

/* Store a point's manifest (its indexes are already durable); never
 * overwrites an existing point. */
int
repo_put_manifest (struct repo *r, const struct manifest *m,
                   struct vb_error *err)
{
  char src[SOURCE_MAX + 1];
  if (!point_id_ok (m->id, src) || strcmp (src, m->source_name) != 0)
    return vb_err (err, EINVAL, "invalid point id '%.128s' for source "
                   "'%.128s'", m->id, m->source_name);
  /* the lock protects the chunks the point uses from gc: publish only
   * while it is certainly still held */
  int rc = repo_lock_check (r, err);
  if (rc < 0)
    return rc;
  char *json = NULL;
  size_t len = 0;
  rc = manifest_encode (&r->keys, m, &json, &len, err);
  if (rc < 0)
    return rc;
  char key[512];
  snprintf (key, sizeof key, "snapshots/%s/manifest", m->id);
  rc = r->b->ops->put (r->b, key, json, len, REPO_PUT_EXCL, err);
  free (json);
  if (rc == -EEXIST) {
    vb_err_clear (err);
    rc = vb_err (err, EEXIST, "restore point '%s' already exists", m->id);
  }
  return rc;
}

/* list callback: collect every key (for deleting a point's objects). */
static int
collect_any (void *opaque, const char *key, uint64_t size)
{
  struct keylist *kl = opaque;
  if (kl->n == kl->cap) {
    size_t nc = kl->cap ? kl->cap * 2 : 16;
    char **ni = nc < SIZE_MAX / sizeof *ni ? realloc (kl->ids, nc * sizeof *ni)
                                           : NULL;
    if (!ni) {
      kl->rc = -ENOMEM;
      return 1;
    }
    kl->ids = ni;
    kl->cap = nc;
  }
  if (!(kl->ids[kl->n] = strdup (key))) {
    kl->rc = -ENOMEM;
    return 1;
  }
  kl->n++;
  return 0;
}

/* Delete a point: its manifest first (the point stops existing at once),
 * then every other object under snapshots/<id>/ (indexes, VM config).
 * Works on a point whose manifest is damaged, too. */
int
repo_delete_point (struct repo *r, const char *id, struct vb_error *err)
{
  if (!point_id_ok (id, NULL))
    return vb_err (err, EINVAL, "invalid point id '%.256s'", id);
  char key[512];
  snprintf (key, sizeof key, "snapshots/%s/manifest", id);
  int rc = repo_lock_check (r, err);
  if (rc < 0)
    return rc;
  rc = r->b->ops->exists (r->b, key, err);
  if (rc < 0)
    return rc;
  if (rc == 0)
    return vb_err (err, ENOENT, "no restore point '%s'", id);
  rc = r->b->ops->del (r->b, key, err);
  if (rc < 0)
    return rc;
  char prefix[512];
  snprintf (prefix, sizeof prefix, "snapshots/%s/", id);
  struct keylist kl = { 0 };
  rc = r->b->ops->list (r->b, prefix, collect_any, &kl, err);
  if (rc > 0 || kl.rc < 0)
    rc = vb_errno (err, kl.rc < 0 ? -kl.rc : EIO, "cannot list '%s'", prefix);
  for (size_t i = 0; i < kl.n; i++) {
    if (rc == 0)
      rc = r->b->ops->del (r->b, kl.ids[i], err);
    free (kl.ids[i]);
  }
  free (kl.ids);
  if (rc < 0)
    vb_err_prefix (err, "restore point '%s' is deleted but not all of its "
                   "objects", id);
  return rc;
}

/* list callback: stop at the first object. */
static int
any_object (void *opaque, const char *key, uint64_t size)
{
  return 1;
}

/* A point id "<source>/<YYYYMMDDTHHMMSSZ>[-N]" not used by any object. */
int
repo_new_point_id (struct repo *r, const char *source, int64_t when,
                   char *buf, size_t len, struct vb_error *err)
{
  if (!source_name_ok (source))
    return bad_source (source, err);
  struct tm tm;
  time_t t = (time_t) when;
  if ((int64_t) t != when || !gmtime_r (&t, &tm) || tm.tm_year < 0
      || tm.tm_year + 1900 > 9999)
    return vb_err (err, EINVAL, "invalid point time %" PRId64, when);
  char stamp[32];
  strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  for (int i = 1; i <= POINT_SUFFIX_MAX; i++) {
    char id[SOURCE_MAX + 48], prefix[SOURCE_MAX + 64];
    if (i == 1)
      snprintf (id, sizeof id, "%s/%s", source, stamp);
    else
      snprintf (id, sizeof id, "%s/%s-%d", source, stamp, i);
    snprintf (prefix, sizeof prefix, "snapshots/%s/", id);
    int rc = r->b->ops->list (r->b, prefix, any_object, NULL, err);
    if (rc < 0)
      return rc;
    if (rc == 0) {
      if (strlen (id) >= len)
        return vb_err (err, ENAMETOOLONG, "point id '%s' does not fit in %zu "
                       "bytes", id, len);
      strcpy (buf, id);
      return 0;
    }
  }
  return vb_err (err, EEXIST, "cannot name a new point of '%s' at %s: "
                 "%d points exist for that second", source, stamp,
                 POINT_SUFFIX_MAX);
}
