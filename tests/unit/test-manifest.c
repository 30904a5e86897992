/* Unit tests of the manifest layer (src/repo/manifest.c,
 * docs/FORMAT-index-manifest.md).
 *
 * Hostile manifests are made by editing a good one (as a json-c object
 * or as text) and signing the result here with OpenSSL's HMAC() directly,
 * following the documented rule, so each check behind the HMAC is
 * reached on its own and the rule itself is proven by code that is not
 * manifest.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "vmback/vdisk.h"
#include "repo/repo-int.h"

#define TAIL_LEN 75        /* ,"hmac":"<64 hex>"} */

static struct repo_keys keys;
static struct manifest sample_m;   /* filled by group_setup */
static struct manifest got;        /* decode output (large: not on stack) */

/* A fixed MAC key and the sample manifest: unicode names, quotes,
 * backslash and a tab in a path, two disks. */
static int
group_setup (void **state)
{
  memset (&keys, 0, sizeof keys);
  for (int i = 0; i < REPO_KEY_LEN; i++)
    keys.mac_key[i] = (uint8_t) (0x11 * i + 3);

  struct manifest *m = &sample_m;
  memset (m, 0, sizeof *m);
  strcpy (m->id, "web-\xc3\xbc\xe6\x97\xa5\xe6\x9c\xac/20261125T200503Z");
  strcpy (m->source_name, "web-\xc3\xbc\xe6\x97\xa5\xe6\x9c\xac");
  strcpy (m->parent_id, "web-\xc3\xbc\xe6\x97\xa5\xe6\x9c\xac/20261124T200503Z");
  strcpy (m->kind, "disk");
  strcpy (m->consistency, "crash");
  strcpy (m->transport, "file");
  strcpy (m->tool_version, "0.1.0");
  m->started = 1795630000;
  m->finished = 1795630123;
  m->chunk_size = 1u << 20;
  m->n_disks = 2;
  struct manifest_disk *d = &m->disks[0];
  strcpy (d->key, "scsi0:0");
  strcpy (d->source, "/vmfs/volumes/ds1/w\xc3\xab" "b/web \"quoted\" \\ tab\t.vmdk");
  d->size = (UINT64_C (40) << 30) + 512;
  strcpy (d->index_key, "snapshots/web-\xc3\xbc\xe6\x97\xa5\xe6\x9c\xac/"
          "20261125T200503Z/scsi0:0.index");
  for (int i = 0; i < 32; i++)
    d->index_mac[i] = (uint8_t) (0xf0 - i);
  strcpy (d->change_id_used, "*");
  strcpy (d->change_id, "52 de ad be ef 00 11 22-33 44 55 66 77 88 99 aa/4");
  d->chunks_read = 40961;
  d->chunks_new = 5;
  d->chunks_reused = 30000;
  d->chunks_zero = 10956;
  d->bytes_read = (UINT64_C (40) << 30) + 512;
  d->bytes_new_stored = 1234567;
  d = &m->disks[1];
  strcpy (d->key, "scsi0:1");
  strcpy (d->source, "data.vmdk");
  d->size = 0;
  strcpy (d->index_key, "snapshots/x/scsi0:1.index");
  strcpy (d->change_id_used, "52 aa/3");
  strcpy (d->change_id, "");
  return 0;
}

/* --- helpers --------------------------------------------------------------- */

/* Encode the sample (or m); returns the malloc'd text. */
static char *
encode (const struct manifest *m, size_t *len)
{
  char *out;
  struct vb_error e = { 0 };
  int r = manifest_encode (&keys, m, &out, len, &e);
  if (r != 0)
    fail_msg ("encode: %s", e.msg);
  assert_int_equal (strlen (out), *len);
  return out;
}

/* Sign the text b of an object without "hmac" by the documented rule:
 * b minus its '}' + ,"hmac":"<hex HMAC-SHA-256(mac_key, b)>"} + "\n". */
static char *
sign_text (const char *b)
{
  size_t bl = strlen (b);
  assert_true (bl >= 2 && b[bl - 1] == '}');
  uint8_t mac[32];
  unsigned int ol = 32;
  assert_non_null (HMAC (EVP_sha256 (), keys.mac_key, 32, (const uint8_t *) b, bl, mac, &ol));
  char *out = malloc (bl + TAIL_LEN + 2);
  assert_non_null (out);
  memcpy (out, b, bl - 1);
  char *p = out + bl - 1;
  p += sprintf (p, ",\"hmac\":\"");
  for (int i = 0; i < 32; i++)
    p += sprintf (p, "%02x", mac[i]);
  strcpy (p, "\"}\n");
  return out;
}

/* Sign a json-c object (without "hmac"). */
static char *
sign_obj (json_object *o)
{
  return sign_text (json_object_to_json_string_ext
                    (o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* The sample as a json-c object without its "hmac", to edit. */
static json_object *
sample_obj (void)
{
  size_t len;
  char *t = encode (&sample_m, &len);
  json_object *o = json_tokener_parse (t);
  assert_non_null (o);
  free (t);
  assert_true (json_object_object_get_ex (o, "hmac", NULL));
  json_object_object_del (o, "hmac");
  return o;
}

/* Disk i of an object. */
static json_object *
disk_obj (json_object *o, size_t i)
{
  json_object *ds;
  assert_true (json_object_object_get_ex (o, "disks", &ds));
  return json_object_array_get_idx (ds, i);
}

/* Decode text; returns the result, message in e. */
static int
decode_text (const char *t, size_t len, struct vb_error *e)
{
  vb_err_clear (e);
  memset (&got, 0x5a, sizeof got);
  int r = manifest_decode (&keys, t, len, "m1", &got, e);
  if (r < 0) {
    assert_int_equal (e->code, -r);
    /* a failed decode leaves nothing half-filled */
    assert_int_equal (got.n_disks, 0);
    assert_int_equal (got.id[0], 0);
  }
  return r;
}

/* Sign o, decode, free o; returns the result. */
static int
decode_obj (json_object *o, struct vb_error *e)
{
  char *t = sign_obj (o);
  json_object_put (o);
  int r = decode_text (t, strlen (t), e);
  free (t);
  return r;
}

/* Replace the first occurrence of from by to in s (malloc'd result). */
static char *
replace (const char *s, const char *from, const char *to)
{
  const char *p = strstr (s, from);
  if (p == NULL)
    fail_msg ("'%s' not found", from);
  size_t a = (size_t) (p - s), fl = strlen (from), tl = strlen (to);
  char *r = malloc (strlen (s) - fl + tl + 1);
  assert_non_null (r);
  memcpy (r, s, a);
  memcpy (r + a, to, tl);
  strcpy (r + a + tl, p + fl);
  return r;
}

/* The text of the sample without its hmac member (b of the rule). */
static char *
sample_b (void)
{
  size_t len;
  char *t = encode (&sample_m, &len);
  assert_true (len > TAIL_LEN + 1);
  t[len - 1 - TAIL_LEN] = '}';
  t[len - TAIL_LEN] = '\0';
  return t;
}

/* --- round trip and layout ----------------------------------------------- */

/* Encode then decode gives the same struct, byte for byte. */
static void
test_round_trip (void **state)
{
  size_t len;
  char *t = encode (&sample_m, &len);
  struct vb_error e = { 0 };
  assert_int_equal (decode_text (t, len, &e), 0);
  assert_memory_equal (&got, &sample_m, sizeof got);
  assert_string_equal (got.source_name, "web-\xc3\xbc\xe6\x97\xa5\xe6\x9c\xac");
  assert_string_equal (got.disks[0].source, sample_m.disks[0].source);
  /* without the final newline it is the same manifest */
  assert_int_equal (decode_text (t, len - 1, &e), 0);
  assert_memory_equal (&got, &sample_m, sizeof got);
  free (t);

  /* no disks, every count at its largest legal value */
  struct manifest *m = calloc (1, sizeof *m);
  assert_non_null (m);
  memcpy (m, &sample_m, sizeof *m);
  m->n_disks = 1;
  memset (&m->disks[1], 0, sizeof m->disks[1]);
  m->disks[0].size = VDISK_MAX_SIZE;
  m->disks[0].chunks_read = VDISK_MAX_SIZE / CHUNK_MIN_SIZE;
  m->disks[0].bytes_new_stored = 2 * VDISK_MAX_SIZE;
  m->started = 0;
  m->finished = INT64_C (253402300799);
  m->chunk_size = CHUNK_MAX_SIZE;
  t = encode (m, &len);
  assert_int_equal (decode_text (t, len, &e), 0);
  assert_memory_equal (&got, m, sizeof got);
  free (t);
  m->n_disks = 0;
  t = encode (m, &len);
  assert_int_equal (decode_text (t, len, &e), 0);
  assert_int_equal (got.n_disks, 0);
  free (t);
  free (m);
}

/* The text is as documented: plain JSON, "format":1 first, the named
 * members, and an hmac we can verify ourselves. */
static void
test_layout (void **state)
{
  size_t len;
  char *t = encode (&sample_m, &len);
  assert_memory_equal (t, "{\"format\":1,\"id\":\"web-", 22);
  assert_memory_equal (t + len - 3, "\"}\n", 3);
  assert_memory_equal (t + len - 1 - TAIL_LEN, ",\"hmac\":\"", 9);
  char *b = sample_b ();
  char *again = sign_text (b);
  assert_string_equal (again, t);       /* our HMAC == theirs */
  free (again);
  free (b);
  assert_non_null (strstr (t, "\"source\":\"/vmfs/volumes/ds1/"));  /* no \/ */
  assert_non_null (strstr (t, "\"change_id_used\":\"*\""));
  assert_non_null (strstr (t, "\"index_mac\":\"f0efeeed"));
  assert_non_null (strstr (t, "\"size\":42949673472"));
  assert_non_null (strstr (t, "\"chunk_size\":1048576"));
  free (t);
}

/* --- tampering --------------------------------------------------------------- */

/* Decoding t must fail with exactly the tamper message. */
static void
expect_tampered (const char *t)
{
  struct vb_error e = { 0 };
  assert_int_equal (decode_text (t, strlen (t), &e), -EBADMSG);
  assert_string_equal (e.msg, "manifest 'm1' was tampered with or damaged");
}

/* Edits without a fresh HMAC: values, added members, a removed disk,
 * the hmac removed, re-cased, moved, pretty-printing, another point's
 * hmac, the wrong key. */
static void
test_tamper (void **state)
{
  size_t len;
  char *t = encode (&sample_m, &len);
  char *x;

  x = replace (t, "\"chunks_new\":5,", "\"chunks_new\":6,");
  expect_tampered (x);
  free (x);
  x = replace (t, "88 99 aa/4", "88 99 aa/5");
  expect_tampered (x);
  free (x);
  x = replace (t, "\"change_id_used\":\"*\"", "\"change_id_used\":\"52 aa/3\"");
  expect_tampered (x);
  free (x);
  /* an added member, anywhere, is covered */
  x = replace (t, "{\"format\"", "{\"extra\":1,\"format\"");
  expect_tampered (x);
  free (x);
  x = replace (t, ",\"hmac\"", ",\"extra\":1,\"hmac\"");
  expect_tampered (x);
  free (x);
  /* a removed disk */
  char *d1 = strstr (t, ",{\"key\":\"scsi0:1\"");
  assert_non_null (d1);
  char *b = malloc (len + 1);
  memcpy (b, t, (size_t) (d1 - t));
  strcpy (b + (d1 - t), strstr (t, "],\"hmac\""));
  expect_tampered (b);
  free (b);
  /* hmac removed / emptied / upper-cased / pretty-printed */
  b = sample_b ();
  expect_tampered (b);
  free (b);
  char *h = strstr (t, "\"hmac\":\"") + 8;
  char save = h[0];
  h[0] = (char) (save >= 'a' ? save - 32 : save == '0' ? '1' : '0');
  expect_tampered (t);
  h[0] = save;
  json_object *o = json_tokener_parse (t);
  assert_non_null (o);
  expect_tampered (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY));
  /* members reordered (hmac first): same content, not the bytes signed */
  json_object *o2 = json_object_new_object ();
  json_object *hv;
  assert_true (json_object_object_get_ex (o, "hmac", &hv));
  json_object_object_add (o2, "hmac", json_object_get (hv));
  json_object_object_foreach (o, key, val)
    if (strcmp (key, "hmac") != 0)
      json_object_object_add (o2, key, json_object_get (val));
  expect_tampered (json_object_to_json_string_ext (o2, JSON_C_TO_STRING_PLAIN
                                                   | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o2);
  json_object_put (o);

  /* the hmac of another manifest */
  struct manifest *m = calloc (1, sizeof *m);
  memcpy (m, &sample_m, sizeof *m);
  m->finished++;
  size_t l2;
  char *t2 = encode (m, &l2);
  memcpy (t + len - 1 - TAIL_LEN, t2 + l2 - 1 - TAIL_LEN, TAIL_LEN);
  expect_tampered (t);
  free (t2);
  free (m);

  /* the wrong key */
  free (t);
  t = encode (&sample_m, &len);
  struct repo_keys other = keys;
  other.mac_key[0] ^= 0x80;
  struct vb_error e = { 0 };
  assert_int_equal (manifest_decode (&other, t, len, "m1", &got, &e), -EBADMSG);
  assert_string_equal (e.msg, "manifest 'm1' was tampered with or damaged");
  free (t);
}

/* Every single-byte change is rejected. */
static void
test_every_byte_flip (void **state)
{
  size_t len;
  char *t = encode (&sample_m, &len);
  static const uint8_t pats[] = { 0x01, 0x20, 0x80 };
  struct vb_error e = { 0 };
  for (size_t i = 0; i < len; i++)
    for (size_t p = 0; p < sizeof pats; p++) {
      t[i] = (char) (t[i] ^ pats[p]);
      if (decode_text (t, len, &e) >= 0)
        fail_msg ("flip 0x%02x at byte %zu was not detected", pats[p], i);
      t[i] = (char) (t[i] ^ pats[p]);
    }
  assert_int_equal (decode_text (t, len, &e), 0);
  /* trailing bytes after the newline, or a second newline */
  char *x = malloc (len + 2);
  memcpy (x, t, len);
  memcpy (x + len, "\n", 2);
  assert_true (decode_text (x, len + 1, &e) < 0);
  x[len] = ' ';
  assert_true (decode_text (x, len + 1, &e) < 0);
  free (x);
  free (t);
}

/* --- forward compatibility ----------------------------------------------- */

/* Unknown members (top level and in disks) are accepted when signed. */
static void
test_unknown_keys (void **state)
{
  json_object *o = sample_obj ();
  json_object *f = json_tokener_parse ("{\"a\":[1,2,{\"b\":null}],\"c\":1.5}");
  json_object_object_add (o, "future", f);
  json_object_object_add (disk_obj (o, 1), "future_disk",
                          json_object_new_string ("x"));
  struct vb_error e = { 0 };
  assert_int_equal (decode_obj (o, &e), 0);
  assert_memory_equal (&got, &sample_m, sizeof got);
}

/* A newer format is "unsupported", not "tampered", even unsigned; a
 * format we do not know otherwise is refused. */
static void
test_format (void **state)
{
  size_t len;
  char *t = encode (&sample_m, &len);
  char *x = replace (t, "{\"format\":1,", "{\"format\":2,");
  struct vb_error e = { 0 };
  assert_int_equal (decode_text (x, strlen (x), &e), -ENOTSUP);
  assert_non_null (strstr (e.msg, "format 2"));
  free (x);
  free (t);

  json_object *o = sample_obj ();
  json_object_object_add (o, "format", json_object_new_int (0));
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  o = sample_obj ();
  json_object_object_add (o, "format", json_object_new_string ("1"));
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  o = sample_obj ();
  json_object_object_add (o, "format", json_object_new_double (1.0));
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  o = sample_obj ();
  json_object_object_del (o, "format");
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  assert_non_null (strstr (e.msg, "no field 'format'"));
}

/* --- limits ------------------------------------------------------------------ */

/* 64 disks fit; 65 do not (neither encoded nor decoded). */
static void
test_disk_count (void **state)
{
  struct manifest *m = calloc (1, sizeof *m);
  assert_non_null (m);
  memcpy (m, &sample_m, sizeof *m);
  for (size_t i = 0; i < MANIFEST_MAX_DISKS; i++) {
    m->disks[i] = sample_m.disks[0];
    snprintf (m->disks[i].key, sizeof m->disks[i].key, "scsi%zu:%zu", i / 16,
              i % 16);
  }
  m->n_disks = MANIFEST_MAX_DISKS;
  size_t len;
  char *t = encode (m, &len);
  struct vb_error e = { 0 };
  assert_int_equal (decode_text (t, len, &e), 0);
  assert_memory_equal (&got, m, sizeof got);

  /* a 65th disk, signed */
  json_object *o = json_tokener_parse (t);
  json_object_object_del (o, "hmac");
  json_object *ds;
  assert_true (json_object_object_get_ex (o, "disks", &ds));
  json_object *d = json_object_get (json_object_array_get_idx (ds, 0));
  json_object_object_add (d, "key", json_object_new_string ("scsi9:9"));
  json_object_array_add (ds, d);
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  assert_non_null (strstr (e.msg, "65 disks"));
  free (t);

  m->n_disks = MANIFEST_MAX_DISKS + 1;
  char *out = NULL;
  vb_err_clear (&e);
  assert_int_equal (manifest_encode (&keys, m, &out, &len, &e), -EINVAL);
  assert_null (out);
  m->n_disks = SIZE_MAX;
  vb_err_clear (&e);
  assert_int_equal (manifest_encode (&keys, m, &out, &len, &e), -EINVAL);
  free (m);

  /* a huge disks array in a small signed text (nothing is sized from it
   * before the count check) */
  char *b = malloc (30000);
  strcpy (b, "{\"format\":1,\"disks\":[");
  for (int i = 0; i < 10000; i++)
    strcat (b, i ? ",0" : "0");
  strcat (b, "]}");
  char *s = sign_text (b);
  assert_int_equal (decode_text (s, strlen (s), &e), -EBADMSG);
  free (s);
  free (b);
}

/* A string member and the size of its struct field. */
struct sfield {
  const char *name;
  size_t cap;
  bool disk;
};

static const struct sfield sfields[] = {
  { "id", 128, false },
  { "source_name", 128, false },
  { "parent_id", 128, false },
  { "kind", 16, false },
  { "consistency", 16, false },
  { "transport", 16, false },
  { "tool_version", 32, false },
  { "key", 64, true },
  { "source", 1024, true },
  { "index_key", 256, true },
  { "change_id_used", 128, true },
  { "change_id", 128, true },
};

/* The sample object with member f->name (of disk 0 for disk fields) set
 * to n copies of unit. */
static json_object *
with_string (const struct sfield *f, size_t n, const char *unit)
{
  json_object *o = sample_obj ();
  size_t ul = strlen (unit);
  char *s = malloc (n * ul + 1);
  for (size_t i = 0; i < n; i++)
    memcpy (s + i * ul, unit, ul);
  s[n * ul] = '\0';
  json_object_object_add (f->disk ? disk_obj (o, 0) : o, f->name,
                          json_object_new_string (s));
  free (s);
  return o;
}

/* The decoded string of field f. */
static const char *
got_field (const struct sfield *f)
{
  static const struct { const char *name; const char *p; } map[] = {
    { "id", got.id }, { "source_name", got.source_name },
    { "parent_id", got.parent_id }, { "kind", got.kind },
    { "consistency", got.consistency }, { "transport", got.transport },
    { "tool_version", got.tool_version }, { "key", got.disks[0].key },
    { "source", got.disks[0].source }, { "index_key", got.disks[0].index_key },
    { "change_id_used", got.disks[0].change_id_used },
    { "change_id", got.disks[0].change_id },
  };
  for (size_t i = 0; i < sizeof map / sizeof *map; i++)
    if (strcmp (map[i].name, f->name) == 0)
      return map[i].p;
  fail_msg ("no field %s", f->name);
  return NULL;
}

/* Strings that fill their field exactly pass; one byte more is an error,
 * never a truncation; lengths count bytes, not characters. */
static void
test_long_strings (void **state)
{
  struct vb_error e = { 0 };
  for (size_t i = 0; i < sizeof sfields / sizeof *sfields; i++) {
    const struct sfield *f = &sfields[i];
    if (decode_obj (with_string (f, f->cap - 1, "a"), &e) != 0)
      fail_msg ("%s of %zu bytes refused: %s", f->name, f->cap - 1, e.msg);
    assert_int_equal (strlen (got_field (f)), f->cap - 1);
    assert_int_equal (decode_obj (with_string (f, f->cap, "a"), &e), -EBADMSG);
    assert_non_null (strstr (e.msg, "too long"));
    assert_non_null (strstr (e.msg, f->name));
    assert_int_equal (decode_obj (with_string (f, 100000, "a"), &e), -EBADMSG);
  }
  /* 2-byte characters: 63 x "é" = 126 bytes fit in id[128]; 64 do not */
  const struct sfield *id = &sfields[0];
  assert_int_equal (decode_obj (with_string (id, 63, "\xc3\xa9"), &e), 0);
  assert_int_equal (strlen (got.id), 126);
  assert_int_equal (decode_obj (with_string (id, 64, "\xc3\xa9"), &e), -EBADMSG);
  /* 4-byte characters in a source path */
  const struct sfield *src = &sfields[8];
  assert_int_equal (decode_obj (with_string (src, 255, "\xf0\x9f\x92\xbe"), &e),
                    0);
  assert_int_equal (strlen (got.disks[0].source), 1020);
  assert_int_equal (decode_obj (with_string (src, 256, "\xf0\x9f\x92\xbe"), &e),
                    -EBADMSG);
  /* an embedded NUL would truncate: refused */
  json_object *o = sample_obj ();
  json_object_object_add (o, "kind", json_object_new_string_len ("di\0sk", 5));
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  assert_non_null (strstr (e.msg, "NUL"));

  /* encode refuses a field without its terminator */
  struct manifest *m = calloc (1, sizeof *m);
  memcpy (m, &sample_m, sizeof *m);
  memset (m->disks[1].change_id, 'x', sizeof m->disks[1].change_id);
  char *out = NULL;
  size_t len;
  vb_err_clear (&e);
  assert_int_equal (manifest_encode (&keys, m, &out, &len, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "change_id"));
  free (m);
}

/* Every member of the wrong type, and every member missing. */
static void
test_types_and_missing (void **state)
{
  static const char *top_str[] = { "id", "source_name", "parent_id", "kind",
                                   "consistency", "transport", "tool_version" };
  static const char *top_int[] = { "started", "finished", "chunk_size" };
  static const char *disk_str[] = { "key", "source", "index_key", "index_mac",
                                    "change_id_used", "change_id" };
  static const char *disk_int[] = { "size", "chunks_read", "chunks_new",
                                    "chunks_reused", "chunks_zero",
                                    "bytes_read", "bytes_new_stored" };
  static const char *not_str[] = { "5", "null", "[]", "{}", "true", "1.5" };
  static const char *not_int[] = { "\"5\"", "5.0", "5e0", "null", "true", "[]",
                                   "{}" };
  struct vb_error e = { 0 };
  for (int pass = 0; pass < 4; pass++) {
    const char **names = pass == 0 ? top_str : pass == 1 ? top_int
      : pass == 2 ? disk_str : disk_int;
    size_t nn = pass == 0 ? 7 : pass == 1 ? 3 : pass == 2 ? 6 : 7;
    const char **vals = pass % 2 == 0 ? not_str : not_int;
    size_t nv = pass % 2 == 0 ? 6 : 7;
    for (size_t i = 0; i < nn; i++) {
      for (size_t v = 0; v < nv; v++) {
        json_object *o = sample_obj ();
        json_object *where = pass >= 2 ? disk_obj (o, 1) : o;
        json_object_object_add (where, names[i], json_tokener_parse (vals[v]));
        if (decode_obj (o, &e) != -EBADMSG)
          fail_msg ("%s = %s accepted", names[i], vals[v]);
        assert_non_null (strstr (e.msg, names[i]));
        if (pass >= 2)
          assert_non_null (strstr (e.msg, "disks[1]."));
      }
      json_object *o = sample_obj ();
      json_object_object_del (pass >= 2 ? disk_obj (o, 1) : o, names[i]);
      assert_int_equal (decode_obj (o, &e), -EBADMSG);
      assert_non_null (strstr (e.msg, "has no field"));
    }
  }
  /* disks itself, and its elements */
  static const char *bad_disks[] = { "{}", "\"x\"", "null", "5", "[5]",
                                     "[[]]", "[null]", "[\"d\"]" };
  for (size_t i = 0; i < sizeof bad_disks / sizeof *bad_disks; i++) {
    json_object *o = sample_obj ();
    json_object_object_add (o, "disks", json_tokener_parse (bad_disks[i]));
    if (decode_obj (o, &e) != -EBADMSG)
      fail_msg ("disks = %s accepted", bad_disks[i]);
  }
  json_object *o = sample_obj ();
  json_object_object_del (o, "disks");
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  /* index_mac: not 64 hex digits */
  static const char *bad_mac[] = { "", "00", "zz", "f0efeeed" };
  for (size_t i = 0; i < 4; i++) {
    o = sample_obj ();
    json_object_object_add (disk_obj (o, 0), "index_mac",
                            json_object_new_string (bad_mac[i]));
    assert_int_equal (decode_obj (o, &e), -EBADMSG);
    assert_non_null (strstr (e.msg, "index_mac"));
  }
  char mac[66];
  memset (mac, 'a', 65);
  mac[65] = 0;
  o = sample_obj ();
  json_object_object_add (disk_obj (o, 0), "index_mac",
                          json_object_new_string (mac));
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  mac[63] = 'g';
  mac[64] = 0;
  o = sample_obj ();
  json_object_object_add (disk_obj (o, 0), "index_mac",
                          json_object_new_string (mac));
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
}

/* Numbers outside their ranges, including ones json-c saturates. */
static void
test_numbers_out_of_range (void **state)
{
  struct {
    const char *from, *to;
  } cases[] = {
    { "\"chunk_size\":1048576", "\"chunk_size\":0" },
    { "\"chunk_size\":1048576", "\"chunk_size\":3" },
    { "\"chunk_size\":1048576", "\"chunk_size\":131072" },
    { "\"chunk_size\":1048576", "\"chunk_size\":3145728" },
    { "\"chunk_size\":1048576", "\"chunk_size\":16777216" },
    { "\"chunk_size\":1048576", "\"chunk_size\":4294967297" },
    { "\"chunk_size\":1048576", "\"chunk_size\":-1048576" },
    { "\"size\":42949673472", "\"size\":70368744177665" },      /* 2^46+1 */
    { "\"size\":42949673472", "\"size\":18446744073709551615" },
    { "\"size\":42949673472", "\"size\":99999999999999999999999" },
    { "\"size\":42949673472", "\"size\":-1" },
    { "\"chunks_new\":5", "\"chunks_new\":-5" },
    { "\"chunks_new\":5", "\"chunks_new\":268435457" },          /* 2^28+1 */
    { "\"chunks_new\":5", "\"chunks_new\":18446744073709551616" },
    { "\"chunks_zero\":10956", "\"chunks_zero\":-9223372036854775809" },
    { "\"bytes_read\":42949673472", "\"bytes_read\":140737488355329" },
    { "\"bytes_new_stored\":1234567", "\"bytes_new_stored\":-1" },
    { "\"started\":1795630000", "\"started\":-1" },
    { "\"started\":1795630000", "\"started\":253402300800" },
    { "\"finished\":1795630123", "\"finished\":9223372036854775808" },
    { "\"finished\":1795630123", "\"finished\":-99999999999999999999" },
    { "\"format\":1", "\"format\":-1" },
  };
  char *b = sample_b ();
  struct vb_error e = { 0 };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *x = replace (b, cases[i].from, cases[i].to);
    char *s = sign_text (x);
    int r = decode_text (s, strlen (s), &e);
    if (r != -EBADMSG)
      fail_msg ("%s accepted (%d: %s)", cases[i].to, r, e.msg);
    free (s);
    free (x);
  }
  /* the boundaries themselves pass */
  const char *ok[][2] = {
    { "\"chunk_size\":1048576", "\"chunk_size\":262144" },
    { "\"chunk_size\":1048576", "\"chunk_size\":8388608" },
    { "\"size\":42949673472", "\"size\":70368744177664" },
    { "\"chunks_new\":5", "\"chunks_new\":268435456" },
    { "\"started\":1795630000", "\"started\":0" },
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    char *x = replace (b, ok[i][0], ok[i][1]);
    char *s = sign_text (x);
    if (decode_text (s, strlen (s), &e) != 0)
      fail_msg ("%s refused: %s", ok[i][1], e.msg);
    free (s);
    free (x);
  }
  free (b);

  /* encode refuses what decode would */
  struct manifest *m = calloc (1, sizeof *m);
  char *out = NULL;
  size_t len;
  memcpy (m, &sample_m, sizeof *m);
  m->chunk_size = 3;
  assert_int_equal (manifest_encode (&keys, m, &out, &len, &e), -EINVAL);
  memcpy (m, &sample_m, sizeof *m);
  m->disks[1].size = VDISK_MAX_SIZE + 1;
  assert_int_equal (manifest_encode (&keys, m, &out, &len, &e), -EINVAL);
  memcpy (m, &sample_m, sizeof *m);
  m->started = -1;
  assert_int_equal (manifest_encode (&keys, m, &out, &len, &e), -EINVAL);
  assert_null (out);
  free (m);
}

/* Keys that would escape the repository, duplicates, empties. */
static void
test_unsafe_names (void **state)
{
  static const char *bad_keys[] = { "", "/etc/passwd", "../../etc/passwd",
                                    "a/../../b", "a//b", "a/./b", "a/",
                                    "a\\b", "a\nb", "..", "." };
  struct vb_error e = { 0 };
  for (size_t i = 0; i < sizeof bad_keys / sizeof *bad_keys; i++) {
    json_object *o = sample_obj ();
    json_object_object_add (disk_obj (o, 0), "index_key",
                            json_object_new_string (bad_keys[i]));
    if (decode_obj (o, &e) != -EBADMSG)
      fail_msg ("index_key '%s' accepted", bad_keys[i]);
    o = sample_obj ();
    json_object_object_add (o, "id", json_object_new_string (bad_keys[i]));
    if (decode_obj (o, &e) != -EBADMSG)
      fail_msg ("id '%s' accepted", bad_keys[i]);
    o = sample_obj ();
    json_object_object_add (o, "source_name",
                            json_object_new_string (bad_keys[i]));
    if (decode_obj (o, &e) != -EBADMSG)
      fail_msg ("source_name '%s' accepted", bad_keys[i]);
  }
  json_object *o = sample_obj ();
  json_object_object_add (o, "source_name", json_object_new_string ("a/b"));
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  o = sample_obj ();
  json_object_object_add (disk_obj (o, 1), "key",
                          json_object_new_string ("scsi0:0"));
  assert_int_equal (decode_obj (o, &e), -EBADMSG);
  assert_non_null (strstr (e.msg, "twice"));
  o = sample_obj ();
  json_object_object_add (disk_obj (o, 1), "key", json_object_new_string (""));
  assert_int_equal (decode_obj (o, &e), -EBADMSG);

  struct manifest *m = calloc (1, sizeof *m);
  memcpy (m, &sample_m, sizeof *m);
  strcpy (m->disks[0].index_key, "../x");
  char *out = NULL;
  size_t len;
  vb_err_clear (&e);
  assert_int_equal (manifest_encode (&keys, m, &out, &len, &e), -EINVAL);
  free (m);
}

/* Anything that is not one JSON object of at most 1 MiB. */
static void
test_not_objects (void **state)
{
  static const char *bad[] = { "", "\n", "[]", "1", "\"x\"", "null", "true",
                               "{", "{}", "}", "\x01", "{\"a\":1}{}",
                               "{\"a\":}", "{'a':1}", "{\"a\":1,}" };
  struct vb_error e = { 0 };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (decode_text (bad[i], strlen (bad[i]), &e) >= 0)
      fail_msg ("'%s' accepted", bad[i]);
  /* a NUL byte inside */
  size_t len;
  char *t = encode (&sample_m, &len);
  t[10] = '\0';
  assert_int_equal (decode_text (t, len, &e), -EBADMSG);
  free (t);
  /* deep nesting */
  char *deep = malloc (20002);
  memset (deep, '[', 10000);
  memset (deep + 10000, ']', 10000);
  deep[20000] = 0;
  assert_int_equal (decode_text (deep, 20000, &e), -EBADMSG);
  /* over 1 MiB: refused on the length alone */
  size_t big = (1u << 20) + 1;
  char *huge = malloc (big);
  memset (huge, ' ', big);
  huge[0] = '{';
  huge[big - 1] = '}';
  assert_int_equal (decode_text (huge, big, &e), -EFBIG);
  free (huge);
  free (deep);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_layout),
    cmocka_unit_test (test_tamper),
    cmocka_unit_test (test_every_byte_flip),
    cmocka_unit_test (test_unknown_keys),
    cmocka_unit_test (test_format),
    cmocka_unit_test (test_disk_count),
    cmocka_unit_test (test_long_strings),
    cmocka_unit_test (test_types_and_missing),
    cmocka_unit_test (test_numbers_out_of_range),
    cmocka_unit_test (test_unsafe_names),
    cmocka_unit_test (test_not_objects),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
