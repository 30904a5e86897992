/* Unit tests of repository crypto (src/repo/crypto.c,
 * docs/FORMAT-chunks.md): keys, hex, ids, MACs and the key file.
 *
 * Known answers come from outside our code: the FIPS 180-2 SHA-256
 * vector, and HMACs computed by the `openssl dgst` command (skipped with
 * a message when it is not installed).  Key files are checked both by
 * reading them back and by parsing them with json-c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "repo/repo-int.h"

static const char pass[] = "correct horse battery staple";

/* Seconds since an arbitrary point. */
static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* True if all len bytes are zero. */
static bool
all_zero (const uint8_t *p, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (p[i])
      return false;
  return true;
}

/* A fixed encrypted key set (no randomness, for known answers). */
static void
fixed_keys (struct repo_keys *k, bool encrypted)
{
  memset (k, 0, sizeof *k);
  k->encrypted = encrypted;
  for (int i = 0; i < REPO_KEY_LEN; i++) {
    if (encrypted) {
      k->enc_key[i] = (uint8_t) (0x10 + i);
      k->id_key[i] = (uint8_t) (0x40 + i);
    }
    k->mac_key[i] = (uint8_t) (0x80 + i);
  }
}

/* --- keys, hex ------------------------------------------------------------- */

static void
test_keys_generate (void **state)
{
  struct repo_keys a, b, u;
  struct vb_error err = { 0 };
  assert_int_equal (crypto_keys_generate (&a, true, &err), 0);
  assert_int_equal (crypto_keys_generate (&b, true, &err), 0);
  assert_true (a.encrypted);
  assert_false (all_zero (a.enc_key, REPO_KEY_LEN));
  assert_false (all_zero (a.id_key, REPO_KEY_LEN));
  assert_false (all_zero (a.mac_key, REPO_KEY_LEN));
  assert_memory_not_equal (a.enc_key, a.id_key, REPO_KEY_LEN);
  assert_memory_not_equal (a.id_key, a.mac_key, REPO_KEY_LEN);
  assert_memory_not_equal (a.enc_key, b.enc_key, REPO_KEY_LEN);
  assert_int_equal (crypto_keys_generate (&u, false, &err), 0);
  assert_false (u.encrypted);
  assert_true (all_zero (u.enc_key, REPO_KEY_LEN));
  assert_true (all_zero (u.id_key, REPO_KEY_LEN));
  assert_false (all_zero (u.mac_key, REPO_KEY_LEN));
}

static void
test_hex (void **state)
{
  uint8_t in[5] = { 0x00, 0x01, 0xab, 0xf0, 0xff }, out[5];
  char hex[11];
  hex_encode (in, 5, hex);
  assert_string_equal (hex, "0001abf0ff");
  assert_int_equal (hex_decode (hex, out, 5), 0);
  assert_memory_equal (in, out, 5);
  assert_int_equal (hex_decode ("0001ABF0FF", out, 5), 0);
  assert_memory_equal (in, out, 5);
  hex_encode (in, 0, hex);
  assert_string_equal (hex, "");
  assert_int_equal (hex_decode ("", out, 0), 0);

  assert_int_equal (hex_decode ("0001abf0f", out, 5), -EINVAL);   /* odd */
  assert_int_equal (hex_decode ("0001abf0", out, 5), -EINVAL);    /* short */
  assert_int_equal (hex_decode ("0001abf0ff00", out, 5), -EINVAL);/* long */
  assert_int_equal (hex_decode ("0001abf0f", out, 4), -EINVAL);   /* +1 */
  assert_int_equal (hex_decode ("0001agf0ff", out, 5), -EINVAL);
  assert_int_equal (hex_decode ("0001 bf0ff", out, 5), -EINVAL);
  assert_int_equal (hex_decode ("-001abf0ff", out, 5), -EINVAL);
  assert_int_equal (hex_decode ("0x01abf0ff", out, 5), -EINVAL);
  assert_int_equal (hex_decode (NULL, out, 5), -EINVAL);
}

/* --- ids and MACs ----------------------------------------------------------- */

/* HMAC-SHA-256 by the openssl command line tool, as hex; false if the
 * tool is unavailable. */
static bool
openssl_hmac (const uint8_t key[32], const char *data, char hex[65])
{
  char keyhex[65], path[] = "/tmp/vmback-test-crypto-XXXXXX", cmd[512];
  int fd = mkstemp (path);
  if (fd < 0)
    return false;
  FILE *f = fdopen (fd, "w");
  fputs (data, f);
  fclose (f);
  hex_encode (key, 32, keyhex);
  snprintf (cmd, sizeof cmd, "openssl dgst -sha256 -mac HMAC -macopt "
            "hexkey:%s -r '%s' 2>/dev/null", keyhex, path);
  FILE *p = popen (cmd, "r");
  bool ok = p != NULL && fscanf (p, "%64s", hex) == 1 && strlen (hex) == 64;
  if (p)
    pclose (p);
  remove (path);
  return ok;
}

static void
test_chunk_id_plain (void **state)
{
  struct repo_keys k;
  uint8_t id[32], want[32];
  fixed_keys (&k, false);
  /* FIPS 180-2 appendix B.1 */
  crypto_chunk_id (&k, "abc", 3, id);
  assert_int_equal (hex_decode ("ba7816bf8f01cfea414140de5dae2223"
                                "b00361a396177a9cb410ff61f20015ad", want, 32),
                    0);
  assert_memory_equal (id, want, 32);
  crypto_chunk_id (&k, "", 0, id);
  assert_int_equal (hex_decode ("e3b0c44298fc1c149afbf4c8996fb924"
                                "27ae41e4649b934ca495991b7852b855", want, 32),
                    0);
  assert_memory_equal (id, want, 32);
}

static void
test_chunk_id_keyed (void **state)
{
  struct repo_keys u, e, e2;
  uint8_t a[32], b[32], c[32];
  char hex[65], want[65];
  const char *msg = "the quick brown fox jumps over the lazy dog";
  fixed_keys (&u, false);
  fixed_keys (&e, true);
  fixed_keys (&e2, true);
  e2.id_key[0] ^= 1;
  crypto_chunk_id (&u, msg, strlen (msg), a);
  crypto_chunk_id (&e, msg, strlen (msg), b);
  crypto_chunk_id (&e2, msg, strlen (msg), c);
  assert_memory_not_equal (a, b, 32);    /* keyed differs from SHA-256 */
  assert_memory_not_equal (b, c, 32);    /* and depends on id_key */
  /* ... and not on the other keys */
  e2 = e;
  e2.enc_key[0] ^= 1;
  e2.mac_key[0] ^= 1;
  crypto_chunk_id (&e2, msg, strlen (msg), c);
  assert_memory_equal (b, c, 32);
  if (!openssl_hmac (e.id_key, msg, want)) {
    print_message ("openssl command not available: HMAC known answer "
                   "skipped\n");
    return;
  }
  hex_encode (b, 32, hex);
  assert_string_equal (hex, want);
}

static void
test_mac (void **state)
{
  struct repo_keys k;
  uint8_t m1[32], m2[32];
  char hex[65], want[65];
  const char *msg = "{\"manifest\": 1}";
  fixed_keys (&k, true);
  crypto_mac (&k, msg, strlen (msg), m1);
  crypto_mac (&k, msg, strlen (msg) - 1, m2);
  assert_memory_not_equal (m1, m2, 32);
  assert_true (crypto_equal (m1, m1, 32));
  assert_false (crypto_equal (m1, m2, 32));
  memcpy (m2, m1, 32);
  m2[31] ^= 0x80;
  assert_false (crypto_equal (m1, m2, 32));
  assert_true (crypto_equal (m1, m2, 31));
  if (!openssl_hmac (k.mac_key, msg, want)) {
    print_message ("openssl command not available: HMAC known answer "
                   "skipped\n");
    return;
  }
  hex_encode (m1, 32, hex);
  assert_string_equal (hex, want);
}

/* --- key file ----------------------------------------------------------------- */

/* Parsed JSON of a key file (asserts it parses). */
static struct json_object *
parse (const char *s)
{
  struct json_object *o = json_tokener_parse (s);
  assert_non_null (o);
  return o;
}

/* String member of o. */
static const char *
member (struct json_object *o, const char *name)
{
  struct json_object *v;
  assert_true (json_object_object_get_ex (o, name, &v));
  return json_object_get_string (v);
}

static void
test_keyfile_encrypted_roundtrip (void **state)
{
  struct repo_keys k, r;
  struct vb_error err = { 0 };
  char *json;
  char hex[65];
  assert_int_equal (crypto_keys_generate (&k, true, &err), 0);
  double t0 = now ();
  assert_int_equal (crypto_keyfile_write (&k, pass, &json, &err), 0);
  double t1 = now ();
  assert_int_equal (crypto_keyfile_read (json, strlen (json), pass, &r, &err),
                    0);
  double t2 = now ();
  print_message ("scrypt N=2^15 r=8 p=1: write %.0f ms, read %.0f ms\n",
                 (t1 - t0) * 1e3, (t2 - t1) * 1e3);
  assert_true (r.encrypted);
  assert_memory_equal (k.enc_key, r.enc_key, 32);
  assert_memory_equal (k.id_key, r.id_key, 32);
  assert_memory_equal (k.mac_key, r.mac_key, 32);

  /* The documented members, and no key in clear. */
  struct json_object *o = parse (json);
  assert_string_equal (member (o, "format"), "1");
  assert_string_equal (member (o, "encrypted"), "true");
  assert_string_equal (member (o, "kdf"), "scrypt");
  assert_string_equal (member (o, "n"), "32768");
  assert_string_equal (member (o, "r"), "8");
  assert_string_equal (member (o, "p"), "1");
  assert_int_equal (strlen (member (o, "salt")), 32);
  assert_int_equal (strlen (member (o, "nonce")), 24);
  assert_int_equal (strlen (member (o, "wrapped")), 192);
  assert_int_equal (strlen (member (o, "tag")), 32);
  assert_false (json_object_object_get_ex (o, "mac_key", NULL));
  json_object_put (o);
  hex_encode (k.enc_key, 32, hex);
  assert_null (strstr (json, hex));
  hex_encode (k.mac_key, 32, hex);
  assert_null (strstr (json, hex));
  assert_null (strstr (json, pass));

  /* A second file of the same keys differs (salt, nonce). */
  char *json2;
  assert_int_equal (crypto_keyfile_write (&k, pass, &json2, &err), 0);
  assert_string_not_equal (json, json2);
  free (json2);
  free (json);
}

static void
test_keyfile_plain_roundtrip (void **state)
{
  struct repo_keys k, r;
  struct vb_error err = { 0 };
  char *json, hex[65];
  assert_int_equal (crypto_keys_generate (&k, false, &err), 0);
  assert_int_equal (crypto_keyfile_write (&k, NULL, &json, &err), 0);
  struct json_object *o = parse (json);
  assert_string_equal (member (o, "encrypted"), "false");
  hex_encode (k.mac_key, 32, hex);
  assert_string_equal (member (o, "mac_key"), hex);
  json_object_put (o);
  /* the passphrase does not matter for an unencrypted repository */
  assert_int_equal (crypto_keyfile_read (json, strlen (json), "whatever", &r,
                                         &err), 0);
  assert_false (r.encrypted);
  assert_memory_equal (k.mac_key, r.mac_key, 32);
  assert_true (all_zero (r.enc_key, 32));
  assert_true (all_zero (r.id_key, 32));
  free (json);

  const char *bad[] = {
    "{\"format\":1,\"encrypted\":false}",
    "{\"format\":1,\"encrypted\":false,\"mac_key\":\"00\"}",
    "{\"format\":1,\"encrypted\":false,\"mac_key\":17}",
    ("{\"format\":1,\"encrypted\":false,\"mac_key\":\"zz01020304050607080910"
     "111213141516171819202122232425262728293031\"}"),
    "{\"format\":1,\"encrypted\":\"no\",\"mac_key\":\"00\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    vb_err_clear (&err);
    assert_int_equal (crypto_keyfile_read (bad[i], strlen (bad[i]), NULL, &r,
                                           &err), -EBADMSG);
    assert_non_null (strstr (err.msg, "key file"));
  }
}

static void
test_keyfile_wrong_passphrase (void **state)
{
  struct repo_keys k, r;
  struct vb_error err = { 0 };
  char *json;
  assert_int_equal (crypto_keys_generate (&k, true, &err), 0);
  assert_int_equal (crypto_keyfile_write (&k, pass, &json, &err), 0);
  const char *wrong[] = { "correct horse battery stapl",
                          "correct horse battery staple ",
                          "Correct horse battery staple", "x" };
  for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
    vb_err_clear (&err);
    memset (&r, 0x55, sizeof r);
    assert_int_equal (crypto_keyfile_read (json, strlen (json), wrong[i], &r,
                                           &err), -EACCES);
    assert_string_equal (err.msg, "wrong passphrase or key file");
    assert_true (all_zero (r.enc_key, 32));      /* nothing half-unwrapped */
    assert_true (all_zero (r.mac_key, 32));
  }
  /* no passphrase at all */
  vb_err_clear (&err);
  assert_int_equal (crypto_keyfile_read (json, strlen (json), NULL, &r, &err),
                    -EACCES);
  vb_err_clear (&err);
  assert_int_equal (crypto_keyfile_read (json, strlen (json), "", &r, &err),
                    -EACCES);
  free (json);
  /* writing an encrypted key file needs a passphrase */
  vb_err_clear (&err);
  assert_int_equal (crypto_keyfile_write (&k, "", &json, &err), -EINVAL);
  assert_null (json);
}

/* A key-file secret: arbitrary bytes except NUL, as from a file. */
static void
test_keyfile_binary_secret (void **state)
{
  struct repo_keys k, r;
  struct vb_error err = { 0 };
  char secret[256], *json;
  for (int i = 0; i < 255; i++)
    secret[i] = (char) (i + 1);
  secret[255] = '\0';
  assert_int_equal (crypto_keys_generate (&k, true, &err), 0);
  assert_int_equal (crypto_keyfile_write (&k, secret, &json, &err), 0);
  assert_int_equal (crypto_keyfile_read (json, strlen (json), secret, &r,
                                         &err), 0);
  assert_memory_equal (k.id_key, r.id_key, 32);
  secret[254] = 'x';
  assert_int_equal (crypto_keyfile_read (json, strlen (json), secret, &r,
                                         &err), -EACCES);
  free (json);
}

/* Replace the value of member name in a JSON text (a copy). */
static char *
with_member (const char *json, const char *name, struct json_object *val)
{
  struct json_object *o = parse (json);
  json_object_object_add (o, name, val);
  char *s = strdup (json_object_to_json_string (o));
  json_object_put (o);
  return s;
}

/* Tampering with any wrapped field is a wrong key (-EACCES); changing
 * the parameters within range too (the derived key changes). */
static void
test_keyfile_tampered (void **state)
{
  struct repo_keys k, r;
  struct vb_error err = { 0 };
  char *json;
  assert_int_equal (crypto_keys_generate (&k, true, &err), 0);
  assert_int_equal (crypto_keyfile_write (&k, pass, &json, &err), 0);
  struct json_object *o = parse (json);
  const char *fields[] = { "salt", "nonce", "wrapped", "tag" };
  for (size_t i = 0; i < 4; i++) {
    char *v = strdup (member (o, fields[i]));
    v[3] = v[3] == '0' ? '1' : '0';
    char *t = with_member (json, fields[i], json_object_new_string (v));
    vb_err_clear (&err);
    assert_int_equal (crypto_keyfile_read (t, strlen (t), pass, &r, &err),
                      -EACCES);
    free (t);
    free (v);
  }
  json_object_put (o);
  char *t = with_member (json, "n", json_object_new_int64 (16384));
  assert_int_equal (crypto_keyfile_read (t, strlen (t), pass, &r, &err),
                    -EACCES);
  free (t);
  free (json);
}

/* Hostile scrypt parameters are refused before any work is done. */
static void
test_keyfile_hostile_params (void **state)
{
  struct repo_keys k, r;
  struct vb_error err = { 0 };
  char *json;
  assert_int_equal (crypto_keys_generate (&k, true, &err), 0);
  assert_int_equal (crypto_keyfile_write (&k, pass, &json, &err), 0);
  struct {
    const char *name;
    int64_t v;
  } bad[] = {
    { "n", 1ll << 40 }, { "n", 1ll << 21 }, { "n", 0 }, { "n", 1 },
    { "n", -32768 }, { "n", 32767 }, { "n", INT64_MAX }, { "n", INT64_MIN },
    { "r", 0 }, { "r", 33 }, { "r", 1ll << 32 }, { "r", -8 },
    { "p", 0 }, { "p", 17 }, { "p", 1ll << 31 }, { "p", -1 },
  };
  double t0 = now ();
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *t = with_member (json, bad[i].name, json_object_new_int64 (bad[i].v));
    vb_err_clear (&err);
    assert_int_equal (crypto_keyfile_read (t, strlen (t), pass, &r, &err),
                      -EBADMSG);
    assert_non_null (strstr (err.msg, "scrypt parameters"));
    free (t);
  }
  /* Each within its own cap, but the products are too much:
   * N=2^20 r=32 is 4 GiB; N=2^20 r=8 p=16 is 2^27 work. */
  struct json_object *o = parse (json);
  json_object_object_add (o, "n", json_object_new_int64 (1 << 20));
  json_object_object_add (o, "r", json_object_new_int64 (32));
  const char *s = json_object_to_json_string (o);
  assert_int_equal (crypto_keyfile_read (s, strlen (s), pass, &r, &err),
                    -EBADMSG);
  json_object_object_add (o, "r", json_object_new_int64 (8));
  json_object_object_add (o, "p", json_object_new_int64 (16));
  s = json_object_to_json_string (o);
  assert_int_equal (crypto_keyfile_read (s, strlen (s), pass, &r, &err),
                    -EBADMSG);
  json_object_put (o);
  /* Wrong types. */
  struct json_object *vals[] = {
    json_object_new_string ("32768"), json_object_new_double (32768.0),
    json_object_new_double (1e300), json_object_new_boolean (1),
    json_object_new_array (), json_object_new_null (),
  };
  for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
    char *t = with_member (json, "n", vals[i]);
    vb_err_clear (&err);
    assert_int_equal (crypto_keyfile_read (t, strlen (t), pass, &r, &err),
                      -EBADMSG);
    free (t);
  }
  /* A number too big for int64 in the text itself. */
  const char *nk = strstr (json, "\"n\": 32768");
  assert_non_null (nk);
  char *big = malloc (strlen (json) + 64);
  if (big == NULL)
    abort ();
  size_t pre = (size_t) (nk - json);
  memcpy (big, json, pre);
  sprintf (big + pre, "\"n\": 1180591620717411303424%s", nk + 10);
  assert_int_equal (crypto_keyfile_read (big, strlen (big), pass, &r, &err),
                    -EBADMSG);
  free (big);
  double dt = now () - t0;
  print_message ("%zu hostile key files refused in %.1f ms\n",
                 sizeof bad / sizeof *bad + 9, dt * 1e3);
  assert_true (dt < 0.5);    /* no scrypt was run */
  free (json);
}

/* Malformed files: every prefix, garbage, wrong types, wrong lengths. */
static void
test_keyfile_malformed (void **state)
{
  struct repo_keys k, r;
  struct vb_error err = { 0 };
  char *json;
  assert_int_equal (crypto_keys_generate (&k, true, &err), 0);
  assert_int_equal (crypto_keyfile_write (&k, pass, &json, &err), 0);
  size_t len = strlen (json);
  /* Every strict prefix is incomplete JSON (the text ends in "}\n"). */
  for (size_t i = 0; i + 1 < len; i++) {
    vb_err_clear (&err);
    assert_int_equal (crypto_keyfile_read (json, i, pass, &r, &err),
                      -EBADMSG);
  }
  /* Trailing garbage; trailing white space is fine. */
  char *t = malloc (len + 8);
  if (t == NULL)
    abort ();
  sprintf (t, "%s x", json);
  assert_int_equal (crypto_keyfile_read (t, strlen (t), pass, &r, &err),
                    -EBADMSG);
  sprintf (t, "%s \n\t ", json);
  assert_int_equal (crypto_keyfile_read (t, strlen (t), pass, &r, &err), 0);
  free (t);
  /* Not an object, empty, huge. */
  const char *bad[] = { "[]", "42", "\"x\"", "null", "", "{}",
                        "{\"format\":2,\"encrypted\":false}",
                        "{\"format\":\"1\",\"encrypted\":false}" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    vb_err_clear (&err);
    assert_int_equal (crypto_keyfile_read (bad[i], strlen (bad[i]), pass, &r,
                                           &err), -EBADMSG);
  }
  size_t hl = 1 << 20;
  char *huge = malloc (hl);
  memset (huge, ' ', hl);
  memcpy (huge, json, len);
  assert_int_equal (crypto_keyfile_read (huge, hl, pass, &r, &err), -EBADMSG);
  free (huge);
  /* Wrong lengths and types of each hex member, and the kdf. */
  struct { const char *name; const char *val; } m[] = {
    { "salt", "00" }, { "salt", "" }, { "salt", "0102030405060708090a0b0c0d0e0f" },
    { "nonce", "000102030405060708090a" }, { "nonce", "000102030405060708090a0b0c" },
    { "wrapped", "00" }, { "tag", "000102030405060708090a0b0c0d0e" },
    { "tag", "000102030405060708090a0b0c0d0e0g" }, { "kdf", "argon2id" },
  };
  for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
    t = with_member (json, m[i].name, json_object_new_string (m[i].val));
    vb_err_clear (&err);
    assert_int_equal (crypto_keyfile_read (t, strlen (t), pass, &r, &err),
                      -EBADMSG);
    assert_non_null (strstr (err.msg, "key file"));
    free (t);
  }
  const char *drop[] = { "salt", "nonce", "wrapped", "tag", "kdf", "n", "r",
                         "p", "encrypted", "format" };
  for (size_t i = 0; i < sizeof drop / sizeof *drop; i++) {
    struct json_object *o = parse (json);
    json_object_object_del (o, drop[i]);
    const char *s = json_object_to_json_string (o);
    vb_err_clear (&err);
    assert_int_equal (crypto_keyfile_read (s, strlen (s), pass, &r, &err),
                      -EBADMSG);
    json_object_put (o);
  }
  free (json);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_keys_generate),
    cmocka_unit_test (test_hex),
    cmocka_unit_test (test_chunk_id_plain),
    cmocka_unit_test (test_chunk_id_keyed),
    cmocka_unit_test (test_mac),
    cmocka_unit_test (test_keyfile_encrypted_roundtrip),
    cmocka_unit_test (test_keyfile_plain_roundtrip),
    cmocka_unit_test (test_keyfile_wrong_passphrase),
    cmocka_unit_test (test_keyfile_binary_secret),
    cmocka_unit_test (test_keyfile_tampered),
    cmocka_unit_test (test_keyfile_hostile_params),
    cmocka_unit_test (test_keyfile_malformed),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
