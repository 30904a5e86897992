/* vmback repository: the manifest of a restore point, JSON authenticated
 * with an HMAC (docs/FORMAT-index-manifest.md).
 *
 * An encoded manifest is
 *
 *   B without its final '}'  ,"hmac":"<64 lowercase hex>"}  '\n'
 *
 * where B is the JSON text of the object without "hmac" (written by us
 * with json-c, plain, members in the fixed order of manifest_encode) and
 * the hex is HMAC-SHA-256(mac_key, B).  The MAC input is thus the exact
 * bytes written, not a re-serialization: a reader strips the last member
 * textually and MACs what is left, so verification does not depend on
 * how any JSON library prints numbers or escapes strings.  Members we do
 * not know are allowed (forward compatibility), ignored, and covered by
 * the HMAC like the rest.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "vmback/vdisk.h"
#include "repo/repo-int.h"

#define MANIFEST_FORMAT   1
#define MANIFEST_MAX_LEN  (1u << 20)        /* whole encoded manifest */
#define MANIFEST_DEPTH    16                /* JSON nesting we parse */
#define HMAC_HEAD         ",\"hmac\":\""
#define HMAC_HEAD_LEN     9
#define HMAC_HEX_LEN      64
#define HMAC_TAIL_LEN     (HMAC_HEAD_LEN + HMAC_HEX_LEN + 2)   /* + "}  */
/* 9999-12-31T23:59:59Z: anything later (or before 1970) is damage. */
#define MANIFEST_MAX_TIME INT64_C (253402300799)
/* Per disk: at most VDISK_MAX_SIZE / CHUNK_MIN_SIZE = 2^28 chunks, and
 * byte counts at most twice the largest disk (blob overhead included). */
#define MAX_CHUNK_COUNT   (VDISK_MAX_SIZE / CHUNK_MIN_SIZE)
#define MAX_BYTE_COUNT    (2 * VDISK_MAX_SIZE)

/* --- checks shared by encode and decode ---------------------------------- */

/* Whether s is safe as (part of) an object key: no control characters
 * and no backslash; with slashes allowed, no leading '/' and no empty,
 * "." or ".." segment; without, no '/' at all and not "." or "..". */
static bool
key_safe (const char *s, bool slashes)
{
  if (*s == '\0')
    return false;
  const char *seg = s;
  for (const char *p = s;; p++) {
    unsigned char c = (unsigned char) *p;
    if (c == '/' || c == '\0') {
      size_t n = (size_t) (p - seg);
      if (n == 0 || (n == 1 && seg[0] == '.')
          || (n == 2 && seg[0] == '.' && seg[1] == '.'))
        return false;
      if (c == '\0')
        return true;
      if (!slashes)
        return false;
      seg = p + 1;
    }
    else if (c < 0x20 || c == 0x7f || c == '\\')
      return false;
  }
}

/* Whether cs is a chunk size the repository accepts. */
static bool
chunk_size_ok (uint32_t cs)
{
  return cs >= CHUNK_MIN_SIZE && cs <= CHUNK_MAX_SIZE && (cs & (cs - 1)) == 0;
}

/* Check the meaning of a complete manifest (ranges, key safety, unique
 * disk keys); what names the subject in messages, code is the errno to
 * fail with.  Strings must already be known to be terminated. */
static int
check_manifest (const struct manifest *m, const char *what, int code,
                struct vb_error *err)
{
  if (!key_safe (m->id, true))
    return vb_err (err, code, "%s: bad point id (empty, or not a safe "
                   "relative path)", what);
  if (!key_safe (m->source_name, false))
    return vb_err (err, code, "%s: bad source name (empty, '/', or "
                   "unsafe characters)", what);
  if (m->kind[0] == '\0')
    return vb_err (err, code, "%s: empty kind", what);
  if (m->started < 0 || m->started > MANIFEST_MAX_TIME
      || m->finished < 0 || m->finished > MANIFEST_MAX_TIME)
    return vb_err (err, code, "%s: times %" PRId64 "..%" PRId64
                   " out of range", what, m->started, m->finished);
  if (!chunk_size_ok (m->chunk_size))
    return vb_err (err, code, "%s: bad chunk size %" PRIu32, what,
                   m->chunk_size);
  if (m->config_key[0] != '\0' && !key_safe (m->config_key, true))
    return vb_err (err, code, "%s: bad config key (not a safe relative "
                   "path)", what);
  if (m->config_size > CHUNK_MAX_SIZE)
    return vb_err (err, code, "%s: config of %" PRIu64 " bytes, at most %u",
                   what, m->config_size, CHUNK_MAX_SIZE);
  if (m->n_disks > MANIFEST_MAX_DISKS)
    return vb_err (err, code, "%s: %zu disks, at most %d", what,
                   m->n_disks, MANIFEST_MAX_DISKS);
  for (size_t i = 0; i < m->n_disks; i++) {
    const struct manifest_disk *d = &m->disks[i];
    if (d->key[0] == '\0')
      return vb_err (err, code, "%s: disk %zu has an empty key", what, i);
    for (size_t j = 0; j < i; j++)
      if (strcmp (m->disks[j].key, d->key) == 0)
        return vb_err (err, code, "%s: disk key '%s' appears twice", what,
                       d->key);
    if (!key_safe (d->index_key, true))
      return vb_err (err, code, "%s: disk %zu has a bad index key (empty, or "
                     "not a safe relative path)", what, i);
    if (d->size > VDISK_MAX_SIZE)
      return vb_err (err, code, "%s: disk '%s' has size %" PRIu64
                     ", over the limit of %" PRIu64, what, d->key, d->size,
                     VDISK_MAX_SIZE);
    const uint64_t counts[] = { d->chunks_read, d->chunks_new,
                                d->chunks_reused, d->chunks_zero };
    for (size_t c = 0; c < 4; c++)
      if (counts[c] > MAX_CHUNK_COUNT)
        return vb_err (err, code, "%s: disk '%s' has a chunk count of %"
                       PRIu64 ", out of range", what, d->key, counts[c]);
    if (d->bytes_read > MAX_BYTE_COUNT || d->bytes_new_stored > MAX_BYTE_COUNT)
      return vb_err (err, code, "%s: disk '%s' has a byte count out of "
                     "range", what, d->key);
  }
  return 0;
}

/* --- encode ---------------------------------------------------------------- */

/* Whether the fixed-size string field f (of cap bytes) is terminated. */
#define TERMINATED(f) (strnlen ((f), sizeof (f)) < sizeof (f))

/* Check that every string of m fits its field, so encode never reads past
 * one; returns the name of the first bad field or NULL. */
static const char *
unterminated_field (const struct manifest *m)
{
  if (!TERMINATED (m->id)) return "id";
  if (!TERMINATED (m->source_name)) return "source_name";
  if (!TERMINATED (m->parent_id)) return "parent_id";
  if (!TERMINATED (m->kind)) return "kind";
  if (!TERMINATED (m->consistency)) return "consistency";
  if (!TERMINATED (m->transport)) return "transport";
  if (!TERMINATED (m->tool_version)) return "tool_version";
  if (!TERMINATED (m->config_key)) return "config_key";
  for (size_t i = 0; i < m->n_disks && i < MANIFEST_MAX_DISKS; i++) {
    const struct manifest_disk *d = &m->disks[i];
    if (!TERMINATED (d->key)) return "disks[].key";
    if (!TERMINATED (d->source)) return "disks[].source";
    if (!TERMINATED (d->index_key)) return "disks[].index_key";
    if (!TERMINATED (d->change_id_used)) return "disks[].change_id_used";
    if (!TERMINATED (d->change_id)) return "disks[].change_id";
  }
  return NULL;
}

/* Add a member; json_object_object_add takes ownership of v.  Returns
 * false when out of memory. */
static bool
add (json_object *o, const char *key, json_object *v)
{
  if (v == NULL)
    return false;
  if (json_object_object_add (o, key, v) != 0) {
    json_object_put (v);
    return false;
  }
  return true;
}

/* Build the JSON object of one disk, members in their fixed order. */
static json_object *
disk_to_json (const struct manifest_disk *d)
{
  char mac_hex[2 * 32 + 1];
  hex_encode (d->index_mac, 32, mac_hex);
  json_object *o = json_object_new_object ();
  if (o == NULL)
    return NULL;
  bool ok = add (o, "key", json_object_new_string (d->key))
    && add (o, "source", json_object_new_string (d->source))
    && add (o, "size", json_object_new_uint64 (d->size))
    && add (o, "index_key", json_object_new_string (d->index_key))
    && add (o, "index_mac", json_object_new_string (mac_hex))
    && add (o, "change_id_used", json_object_new_string (d->change_id_used))
    && add (o, "change_id", json_object_new_string (d->change_id))
    && add (o, "chunks_read", json_object_new_uint64 (d->chunks_read))
    && add (o, "chunks_new", json_object_new_uint64 (d->chunks_new))
    && add (o, "chunks_reused", json_object_new_uint64 (d->chunks_reused))
    && add (o, "chunks_zero", json_object_new_uint64 (d->chunks_zero))
    && add (o, "bytes_read", json_object_new_uint64 (d->bytes_read))
    && add (o, "bytes_new_stored",
            json_object_new_uint64 (d->bytes_new_stored));
  if (!ok) {
    json_object_put (o);
    return NULL;
  }
  return o;
}

/* Build the JSON object of a manifest without "hmac", members in their
 * fixed order. */
static json_object *
manifest_to_json (const struct manifest *m)
{
  json_object *o = json_object_new_object ();
  json_object *disks = json_object_new_array ();
  if (o == NULL || disks == NULL) {
    json_object_put (o);
    json_object_put (disks);
    return NULL;
  }
  bool ok = add (o, "format", json_object_new_int (MANIFEST_FORMAT))
    && add (o, "id", json_object_new_string (m->id))
    && add (o, "source_name", json_object_new_string (m->source_name))
    && add (o, "parent_id", json_object_new_string (m->parent_id))
    && add (o, "kind", json_object_new_string (m->kind))
    && add (o, "consistency", json_object_new_string (m->consistency))
    && add (o, "transport", json_object_new_string (m->transport))
    && add (o, "tool_version", json_object_new_string (m->tool_version))
    && add (o, "started", json_object_new_int64 (m->started))
    && add (o, "finished", json_object_new_int64 (m->finished))
    && add (o, "chunk_size", json_object_new_int64 (m->chunk_size));
  if (ok && m->config_key[0] != '\0') {    /* absent for disk points */
    char id_hex[2 * 32 + 1];
    hex_encode (m->config_id, 32, id_hex);
    ok = add (o, "config_key", json_object_new_string (m->config_key))
      && add (o, "config_id", json_object_new_string (id_hex))
      && add (o, "config_size", json_object_new_uint64 (m->config_size));
  }
  for (size_t i = 0; ok && i < m->n_disks; i++) {
    json_object *d = disk_to_json (&m->disks[i]);
    ok = d != NULL && json_object_array_add (disks, d) == 0;
    if (!ok)
      json_object_put (d);
  }
  if (!ok || !add (o, "disks", disks)) {
    if (!ok)
      json_object_put (disks);
    json_object_put (o);
    return NULL;
  }
  return o;
}

/* Serialize m as JSON with a trailing "hmac" member over the rest (layout
 * at the top of the file).  *out is malloc'd and NUL-terminated; *len
 * does not count the NUL. */
int
manifest_encode (const struct repo_keys *k, const struct manifest *m,
                 char **out, size_t *len, struct vb_error *err)
{
  *out = NULL;
  *len = 0;
  const char *bad = unterminated_field (m);
  if (bad != NULL)
    return vb_err (err, EINVAL, "cannot encode manifest: field '%s' is not "
                   "terminated", bad);
  int r = check_manifest (m, "cannot encode manifest", EINVAL, err);
  if (r < 0)
    return r;

  json_object *o = manifest_to_json (m);
  if (o == NULL)
    return vb_errno (err, ENOMEM, "cannot encode manifest '%s'", m->id);
  size_t blen = 0;
  const char *b = json_object_to_json_string_length
    (o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &blen);
  if (b == NULL || blen < 2 || b[blen - 1] != '}') {
    json_object_put (o);
    return vb_errno (err, ENOMEM, "cannot encode manifest '%s'", m->id);
  }
  /* B minus '}' + ,"hmac":" + hex + "} + \n */
  size_t total = blen - 1 + HMAC_TAIL_LEN + 1;
  if (total > MANIFEST_MAX_LEN) {
    json_object_put (o);
    return vb_err (err, EFBIG, "cannot encode manifest '%s': %zu bytes, more "
                   "than the limit of %u", m->id, total, MANIFEST_MAX_LEN);
  }
  char *buf = malloc (total + 1);
  if (buf == NULL) {
    json_object_put (o);
    return vb_errno (err, ENOMEM, "cannot encode manifest '%s'", m->id);
  }
  uint8_t mac[32];
  crypto_mac (k, b, blen, mac);
  memcpy (buf, b, blen - 1);
  json_object_put (o);
  char *p = buf + blen - 1;
  memcpy (p, HMAC_HEAD, HMAC_HEAD_LEN);
  hex_encode (mac, 32, p + HMAC_HEAD_LEN);
  memcpy (p + HMAC_HEAD_LEN + HMAC_HEX_LEN, "\"}\n", 4);
  *out = buf;
  *len = total;
  return 0;
}

/* --- decode ---------------------------------------------------------------- */

struct rd {
  const char *name;          /* manifest name for messages */
  struct vb_error *err;
};

/* Find member key of o (path names it in messages, e.g. "disks[2].size");
 * missing is an error. */
static int
member (struct rd *rd, json_object *o, const char *key, const char *path,
        json_object **v)
{
  if (!json_object_object_get_ex (o, key, v))
    return vb_err (rd->err, EBADMSG, "manifest '%s' has no field '%s'",
                   rd->name, path);
  return 0;
}

/* Read a string member into dst (cap bytes): it must be a string without
 * NUL bytes that fits with its terminator; never truncated. */
static int
get_str (struct rd *rd, json_object *o, const char *prefix, const char *key,
         char *dst, size_t cap)
{
  char path[64];
  snprintf (path, sizeof path, "%s%s", prefix, key);
  json_object *v;
  int r = member (rd, o, key, path, &v);
  if (r < 0)
    return r;
  if (!json_object_is_type (v, json_type_string))
    return vb_err (rd->err, EBADMSG, "manifest '%s': field '%s' is not a "
                   "string", rd->name, path);
  int n = json_object_get_string_len (v);
  const char *s = json_object_get_string (v);
  if (n < 0 || s == NULL)
    return vb_err (rd->err, EBADMSG, "manifest '%s': field '%s' is not a "
                   "string", rd->name, path);
  if ((size_t) n >= cap)
    return vb_err (rd->err, EBADMSG, "manifest '%s': field '%s' is too long "
                   "(%d bytes, at most %zu)", rd->name, path, n, cap - 1);
  if (memchr (s, '\0', (size_t) n) != NULL)
    return vb_err (rd->err, EBADMSG, "manifest '%s': field '%s' contains a "
                   "NUL character", rd->name, path);
  memcpy (dst, s, (size_t) n);
  dst[n] = '\0';
  return 0;
}

/* Read an integer member in [min, max].  Only JSON integers are taken
 * (1.0, 1e3, "1", true are not); json-c saturates integers beyond the
 * 64-bit ranges, which then land out of [min, max]. */
static int
get_int (struct rd *rd, json_object *o, const char *prefix, const char *key,
         int64_t min, uint64_t max, int64_t *sv, uint64_t *uv)
{
  char path[64];
  snprintf (path, sizeof path, "%s%s", prefix, key);
  json_object *v;
  int r = member (rd, o, key, path, &v);
  if (r < 0)
    return r;
  if (!json_object_is_type (v, json_type_int))
    return vb_err (rd->err, EBADMSG, "manifest '%s': field '%s' is not an "
                   "integer", rd->name, path);
  int64_t s = json_object_get_int64 (v);
  uint64_t u = json_object_get_uint64 (v);
  bool ok = s < 0 ? s >= min : u <= max;
  if (!ok)
    return vb_err (rd->err, EBADMSG, "manifest '%s': field '%s' is out of "
                   "range", rd->name, path);
  if (sv)
    *sv = s;
  if (uv)
    *uv = u;
  return 0;
}

/* Read an unsigned member in [0, max]. */
static int
get_u64 (struct rd *rd, json_object *o, const char *prefix, const char *key,
         uint64_t max, uint64_t *out)
{
  return get_int (rd, o, prefix, key, 0, max, NULL, out);
}

/* Read one disk object. */
static int
get_disk (struct rd *rd, json_object *o, size_t i, struct manifest_disk *d)
{
  char p[32];
  snprintf (p, sizeof p, "disks[%zu].", i);
  if (!json_object_is_type (o, json_type_object))
    return vb_err (rd->err, EBADMSG, "manifest '%s': disks[%zu] is not an "
                   "object", rd->name, i);
  char mac_hex[2 * 32 + 1];
  int r;
  if ((r = get_str (rd, o, p, "key", d->key, sizeof d->key)) < 0
      || (r = get_str (rd, o, p, "source", d->source, sizeof d->source)) < 0
      || (r = get_u64 (rd, o, p, "size", VDISK_MAX_SIZE, &d->size)) < 0
      || (r = get_str (rd, o, p, "index_key", d->index_key,
                       sizeof d->index_key)) < 0
      || (r = get_str (rd, o, p, "index_mac", mac_hex, sizeof mac_hex)) < 0
      || (r = get_str (rd, o, p, "change_id_used", d->change_id_used,
                       sizeof d->change_id_used)) < 0
      || (r = get_str (rd, o, p, "change_id", d->change_id,
                       sizeof d->change_id)) < 0
      || (r = get_u64 (rd, o, p, "chunks_read", MAX_CHUNK_COUNT,
                       &d->chunks_read)) < 0
      || (r = get_u64 (rd, o, p, "chunks_new", MAX_CHUNK_COUNT,
                       &d->chunks_new)) < 0
      || (r = get_u64 (rd, o, p, "chunks_reused", MAX_CHUNK_COUNT,
                       &d->chunks_reused)) < 0
      || (r = get_u64 (rd, o, p, "chunks_zero", MAX_CHUNK_COUNT,
                       &d->chunks_zero)) < 0
      || (r = get_u64 (rd, o, p, "bytes_read", MAX_BYTE_COUNT,
                       &d->bytes_read)) < 0
      || (r = get_u64 (rd, o, p, "bytes_new_stored", MAX_BYTE_COUNT,
                       &d->bytes_new_stored)) < 0)
    return r;
  if (strlen (mac_hex) != HMAC_HEX_LEN
      || hex_decode (mac_hex, d->index_mac, 32) < 0)
    return vb_err (rd->err, EBADMSG, "manifest '%s': field '%sindex_mac' is "
                   "not 64 hex digits", rd->name, p);
  return 0;
}

/* Read the optional config members (all three or none; manifests of
 * disk points and older ones have none). */
static int
get_config (struct rd *rd, json_object *o, struct manifest *m)
{
  json_object *v;
  if (!json_object_object_get_ex (o, "config_key", &v))
    return 0;
  char id_hex[2 * 32 + 1];
  int r;
  if ((r = get_str (rd, o, "", "config_key", m->config_key,
                    sizeof m->config_key)) < 0
      || (r = get_str (rd, o, "", "config_id", id_hex, sizeof id_hex)) < 0
      || (r = get_u64 (rd, o, "", "config_size", CHUNK_MAX_SIZE,
                       &m->config_size)) < 0)
    return r;
  if (m->config_key[0] == '\0')
    return vb_err (rd->err, EBADMSG, "manifest '%s': field 'config_key' is "
                   "empty", rd->name);
  if (strlen (id_hex) != HMAC_HEX_LEN || hex_decode (id_hex, m->config_id, 32) < 0)
    return vb_err (rd->err, EBADMSG, "manifest '%s': field 'config_id' is not "
                   "64 hex digits", rd->name);
  return 0;
}

/* Read every field of an authenticated manifest object into m. */
static int
get_manifest (struct rd *rd, json_object *o, struct manifest *m)
{
  int64_t format = 0, started = 0, finished = 0;
  uint64_t chunk_size = 0;
  int r;
  if ((r = get_int (rd, o, "", "format", 0, INT64_MAX, &format, NULL)) < 0)
    return r;
  if (format != MANIFEST_FORMAT)
    return vb_err (rd->err, EBADMSG, "manifest '%s' has format %" PRId64
                   ", this vmback reads format %d", rd->name, format,
                   MANIFEST_FORMAT);
  if ((r = get_str (rd, o, "", "id", m->id, sizeof m->id)) < 0
      || (r = get_str (rd, o, "", "source_name", m->source_name,
                       sizeof m->source_name)) < 0
      || (r = get_str (rd, o, "", "parent_id", m->parent_id,
                       sizeof m->parent_id)) < 0
      || (r = get_str (rd, o, "", "kind", m->kind, sizeof m->kind)) < 0
      || (r = get_str (rd, o, "", "consistency", m->consistency,
                       sizeof m->consistency)) < 0
      || (r = get_str (rd, o, "", "transport", m->transport,
                       sizeof m->transport)) < 0
      || (r = get_str (rd, o, "", "tool_version", m->tool_version,
                       sizeof m->tool_version)) < 0
      || (r = get_int (rd, o, "", "started", 0, MANIFEST_MAX_TIME,
                       &started, NULL)) < 0
      || (r = get_int (rd, o, "", "finished", 0, MANIFEST_MAX_TIME,
                       &finished, NULL)) < 0
      || (r = get_u64 (rd, o, "", "chunk_size", CHUNK_MAX_SIZE,
                       &chunk_size)) < 0)
    return r;
  m->started = started;
  m->finished = finished;
  m->chunk_size = (uint32_t) chunk_size;      /* <= CHUNK_MAX_SIZE */
  if ((r = get_config (rd, o, m)) < 0)
    return r;

  json_object *disks;
  if ((r = member (rd, o, "disks", "disks", &disks)) < 0)
    return r;
  if (!json_object_is_type (disks, json_type_array))
    return vb_err (rd->err, EBADMSG, "manifest '%s': field 'disks' is not an "
                   "array", rd->name);
  size_t n = json_object_array_length (disks);
  if (n > MANIFEST_MAX_DISKS)
    return vb_err (rd->err, EBADMSG, "manifest '%s' lists %zu disks, at most "
                   "%d", rd->name, n, MANIFEST_MAX_DISKS);
  for (size_t i = 0; i < n; i++)
    if ((r = get_disk (rd, json_object_array_get_idx (disks, i), i,
                       &m->disks[i])) < 0)
      return r;
  m->n_disks = n;
  return 0;
}

/* Check the "hmac" member: the text must end with ,"hmac":"<hex>"} and
 * hex must be the lowercase HMAC of the text before it plus '}'. */
static bool
hmac_ok (const struct repo_keys *k, const char *text, size_t len)
{
  if (len < HMAC_TAIL_LEN + 2)
    return false;
  const char *tail = text + len - HMAC_TAIL_LEN;
  if (memcmp (tail, HMAC_HEAD, HMAC_HEAD_LEN) != 0
      || memcmp (tail + HMAC_HEAD_LEN + HMAC_HEX_LEN, "\"}", 2) != 0)
    return false;
  size_t blen = len - HMAC_TAIL_LEN + 1;         /* <= 1 MiB */
  char *b = malloc (blen);
  if (b == NULL)
    return false;
  memcpy (b, text, blen - 1);
  b[blen - 1] = '}';
  uint8_t mac[32];
  char hex[2 * 32 + 1];
  crypto_mac (k, b, blen, mac);
  free (b);
  hex_encode (mac, 32, hex);
  return crypto_equal (hex, tail + HMAC_HEAD_LEN, HMAC_HEX_LEN);
}

/* Parse and authenticate a manifest (layout at the top of the file),
 * then read and check every field.  On failure m is zeroed. */
int
manifest_decode (const struct repo_keys *k, const char *json, size_t len,
                 const char *name, struct manifest *m, struct vb_error *err)
{
  memset (m, 0, sizeof *m);
  if (len > MANIFEST_MAX_LEN)
    return vb_err (err, EFBIG, "manifest '%s' is %zu bytes, more than the "
                   "limit of %u", name, len, MANIFEST_MAX_LEN);
  if (memchr (json, '\0', len) != NULL)
    return vb_err (err, EBADMSG, "manifest '%s' is not valid JSON (NUL byte)",
                   name);
  size_t tlen = len;                     /* the text without its newline */
  if (tlen > 0 && json[tlen - 1] == '\n')
    tlen--;

  json_tokener *tok = json_tokener_new_ex (MANIFEST_DEPTH);
  if (tok == NULL)
    return vb_errno (err, ENOMEM, "cannot parse manifest '%s'", name);
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT);
  /* tlen <= 1 MiB fits an int */
  json_object *o = json_tokener_parse_ex (tok, json, (int) tlen);
  enum json_tokener_error jerr = json_tokener_get_error (tok);
  size_t end = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  if (o == NULL || jerr != json_tokener_success || end != tlen) {
    json_object_put (o);
    return vb_err (err, EBADMSG, "manifest '%s' is not valid JSON: %s", name,
                   o == NULL && jerr != json_tokener_success
                   ? json_tokener_error_desc (jerr)
                   : o == NULL ? "incomplete" : "trailing data");
  }
  int r;
  struct rd rd = { name, err };
  if (!json_object_is_type (o, json_type_object)) {
    r = vb_err (err, EBADMSG, "manifest '%s' is not a JSON object", name);
    goto out;
  }
  /* A newer format may authenticate differently: say so rather than
   * "tampered" (a forged number only ever makes us refuse). */
  json_object *fv;
  if (json_object_object_get_ex (o, "format", &fv)
      && json_object_is_type (fv, json_type_int)
      && json_object_get_int64 (fv) > MANIFEST_FORMAT) {
    r = vb_err (err, ENOTSUP, "manifest '%s' has format %" PRId64 ", newer "
                "than this vmback reads (%d)", name,
                json_object_get_int64 (fv), MANIFEST_FORMAT);
    goto out;
  }
  if (!hmac_ok (k, json, tlen)) {
    r = vb_err (err, EBADMSG, "manifest '%s' was tampered with or damaged",
                name);
    goto out;
  }
  r = get_manifest (&rd, o, m);
  if (r == 0) {
    char what[256];
    snprintf (what, sizeof what, "manifest '%s'", name);
    r = check_manifest (m, what, EBADMSG, err);
  }
out:
  json_object_put (o);
  if (r < 0)
    memset (m, 0, sizeof *m);
  return r;
}
