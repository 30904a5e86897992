/* vmback repository crypto: keys, the key file, chunk ids and MACs
 * (docs/FORMAT-chunks.md).
 *
 * The key file is JSON.  For an encrypted repository the three 32-byte
 * keys are wrapped with AES-256-GCM under a key derived with scrypt from
 * the passphrase (or from the bytes of a key file, which the caller passes
 * as the passphrase).  The scrypt parameters come from the file, so they
 * are hostile: each is capped, and so are the memory and work they imply.
 *
 * Secrets never appear in messages or logs, and every buffer that held one
 * is cleansed before it is released.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "repo-int.h"

/* --- key file parameters ------------------------------------------------- */

#define KF_FORMAT        1
#define KF_SALT_LEN      16       /* written; 16..64 accepted */
#define KF_SALT_MIN      16
#define KF_SALT_MAX      64
#define KF_NONCE_LEN     12
#define KF_TAG_LEN       16
#define KF_WRAPPED_LEN   (3 * REPO_KEY_LEN)   /* enc_key || id_key || mac_key */
#define KF_MAX_JSON      (64u << 10)          /* a key file is < 1 KiB */
#define KF_AAD           "vmback-repokey-v1"

/* scrypt parameters written by us: 128 * r * N = 32 MiB, ~0.1 s. */
#define KF_N_DEFAULT     (1ull << 15)
#define KF_R_DEFAULT     8ull
#define KF_P_DEFAULT     1ull

/* Limits for parameters read from a file.  Memory of scrypt is about
 * 128 * r * N bytes (OpenSSL: 128*r*(N+2) for V plus 128*r*p for B), its
 * work N * r * p.  Individually N <= 2^20, r <= 32, p <= 16 would still
 * allow 128 * 32 * 2^20 = 4 GiB and 2^29 work units, so the products are
 * capped too: memory 128*r*N <= 1 GiB (e.g. N=2^20 r=8), work
 * N*r*p <= 2^24 (64 times our default, a few seconds). */
#define KF_N_MAX         (1ull << 20)
#define KF_R_MAX         32ull
#define KF_P_MAX         16ull
#define KF_MEM_MAX       (1ull << 30)
#define KF_WORK_MAX      (1ull << 24)

/* A failure of a primitive that cannot fail on valid arguments except
 * when out of memory.  The void contracts (ids, MACs) have no way to
 * report it, and a wrong id would silently corrupt a backup, so stop. */
static void
crypto_fatal (const char *what)
{
  fprintf (stderr, "vmback: fatal: %s failed (out of memory?)\n", what);
  abort ();
}

/* Make fresh random keys; an unencrypted repository only gets a mac_key
 * (its enc_key and id_key stay zero, see struct repo_keys). */
int
crypto_keys_generate (struct repo_keys *k, bool encrypted, struct vb_error *err)
{
  memset (k, 0, sizeof *k);
  k->encrypted = encrypted;
  if (RAND_bytes (k->mac_key, REPO_KEY_LEN) != 1
      || (encrypted && (RAND_bytes (k->enc_key, REPO_KEY_LEN) != 1
                        || RAND_bytes (k->id_key, REPO_KEY_LEN) != 1))) {
    OPENSSL_cleanse (k, sizeof *k);
    return vb_err (err, EIO, "cannot generate repository keys: "
                   "random number generator failed");
  }
  return 0;
}

/* --- hex --------------------------------------------------------------- */

/* Lowercase hex of in[0..len) into out (2*len+1 bytes, NUL-terminated). */
void
hex_encode (const uint8_t *in, size_t len, char *out)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * len] = '\0';
}

/* Value of one hex digit, or -1. */
static int
hex_val (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decode exactly 2*len hex digits (then the string must end) into out;
 * -EINVAL for a bad character, an odd count or a wrong length.  out is
 * only fully written on success. */
int
hex_decode (const char *in, uint8_t *out, size_t len)
{
  if (in == NULL)
    return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    int hi = hex_val (in[2 * i]);
    if (hi < 0)
      return -EINVAL;        /* also catches a string that is too short */
    int lo = hex_val (in[2 * i + 1]);
    if (lo < 0)
      return -EINVAL;        /* bad char, or odd length ("abc") */
    out[i] = (uint8_t) (hi << 4 | lo);
  }
  return in[2 * len] == '\0' ? 0 : -EINVAL;
}

/* --- ids and MACs --------------------------------------------------------- */

/* HMAC-SHA-256 of data under key into out; fatal on internal failure. */
static void
hmac_sha256 (const uint8_t key[REPO_KEY_LEN], const void *data, size_t len,
             uint8_t out[32])
{
  unsigned int outlen = 0;
  static const uint8_t empty;
  if (HMAC (EVP_sha256 (), key, REPO_KEY_LEN, len ? data : &empty, len,
            out, &outlen) == NULL || outlen != 32)
    crypto_fatal ("HMAC-SHA-256");
}

/* Chunk id: SHA-256(data), or HMAC-SHA-256(id_key, data) when encrypted
 * (so the ids of an encrypted repository do not reveal which well-known
 * content it holds). */
void
crypto_chunk_id (const struct repo_keys *k, const void *data, size_t len,
                 uint8_t id[REPO_ID_LEN])
{
  if (k != NULL && k->encrypted) {
    hmac_sha256 (k->id_key, data, len, id);
    return;
  }
  static const uint8_t empty;
  if (SHA256 (len ? data : &empty, len, id) == NULL)
    crypto_fatal ("SHA-256");
}

/* HMAC-SHA-256(mac_key, data): authenticates indexes and manifests. */
void
crypto_mac (const struct repo_keys *k, const void *data, size_t len,
            uint8_t mac[32])
{
  hmac_sha256 (k->mac_key, data, len, mac);
}

/* Constant-time compare (MACs, ids, tags). */
bool
crypto_equal (const void *a, const void *b, size_t len)
{
  return CRYPTO_memcmp (a, b, len) == 0;
}

/* --- key wrapping ------------------------------------------------------- */

/* Check scrypt parameters taken from a key file against the limits above
 * (each on its own, then memory and work); -EBADMSG when out of range. */
static int
scrypt_params_check (int64_t n, int64_t r, int64_t p, struct vb_error *err)
{
  if (n < 2 || (uint64_t) n > KF_N_MAX || (n & (n - 1)) != 0
      || r < 1 || (uint64_t) r > KF_R_MAX || p < 1 || (uint64_t) p > KF_P_MAX)
    goto bad;
  /* n <= 2^20, r <= 32, p <= 16: the products fit easily in 64 bits. */
  if (128ull * (uint64_t) r * (uint64_t) n > KF_MEM_MAX
      || (uint64_t) n * (uint64_t) r * (uint64_t) p > KF_WORK_MAX)
    goto bad;
  return 0;
bad:
  return vb_err (err, EBADMSG, "key file has unacceptable scrypt parameters "
                 "N=%" PRId64 " r=%" PRId64 " p=%" PRId64 " (limits: N a "
                 "power of two <= 2^20, r <= 32, p <= 16, 128*r*N <= 1 GiB, "
                 "N*r*p <= 2^24)", n, r, p);
}

/* Derive the 32-byte wrapping key from the passphrase with scrypt.  The
 * parameters are already checked; maxmem is what OpenSSL needs for them:
 * 128*r*(N+2) + 128*r*p <= 1 GiB + 128*32*(2+16) bytes, plus slack. */
static int
scrypt_derive (const char *pass, const uint8_t *salt, size_t salt_len,
               uint64_t n, uint64_t r, uint64_t p, uint8_t key[32],
               struct vb_error *err)
{
  uint64_t maxmem = 128 * r * (n + 2) + 128 * r * p + (1u << 16);
  if (EVP_PBE_scrypt (pass, strlen (pass), salt, salt_len, n, r, p, maxmem,
                      key, 32) != 1)
    return vb_err (err, ENOMEM, "cannot derive the key-wrapping key with "
                   "scrypt N=%" PRIu64 " r=%" PRIu64 " p=%" PRIu64,
                   n, r, p);
  return 0;
}

/* AES-256-GCM over in[0..len) into out (same length) with the key file's
 * fixed AAD.  encrypt: writes tag; decrypt: checks it (returns 1 when the
 * tag does not match, 0 on success, <0 on internal failure). */
static int
gcm_wrap (bool encrypt, const uint8_t key[32], const uint8_t nonce[12],
          const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16])
{
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new ();
  int outl = 0, ok = 0, rc = -1;
  if (c == NULL)
    return -1;
  if (encrypt) {
    ok = EVP_EncryptInit_ex (c, EVP_aes_256_gcm (), NULL, key, nonce) == 1
      && EVP_EncryptUpdate (c, NULL, &outl, (const uint8_t *) KF_AAD,
                            (int) strlen (KF_AAD)) == 1
      && EVP_EncryptUpdate (c, out, &outl, in, (int) len) == 1
      && EVP_EncryptFinal_ex (c, out + outl, &outl) == 1
      && EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    rc = ok ? 0 : -1;
  } else {
    ok = EVP_DecryptInit_ex (c, EVP_aes_256_gcm (), NULL, key, nonce) == 1
      && EVP_DecryptUpdate (c, NULL, &outl, (const uint8_t *) KF_AAD,
                            (int) strlen (KF_AAD)) == 1
      && EVP_DecryptUpdate (c, out, &outl, in, (int) len) == 1
      && EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1;
    if (ok)
      rc = EVP_DecryptFinal_ex (c, out + outl, &outl) == 1 ? 0 : 1;
  }
  EVP_CIPHER_CTX_free (c);
  return rc;
}

/* Add a hex string member to a JSON object. */
static void
json_add_hex (struct json_object *o, const char *name, const uint8_t *b,
              size_t len)
{
  char hex[2 * KF_WRAPPED_LEN + 1];
  hex_encode (b, len, hex);
  json_object_object_add (o, name, json_object_new_string (hex));
  OPENSSL_cleanse (hex, sizeof hex);
}

/* Serialize keys into a key file (JSON, format 1).  Encrypted: the keys
 * are wrapped with AES-256-GCM under scrypt(passphrase, random salt) with
 * N=2^15 r=8 p=1; unencrypted: the mac_key in clear. */
int
crypto_keyfile_write (const struct repo_keys *k, const char *passphrase,
                      char **json_out, struct vb_error *err)
{
  uint8_t salt[KF_SALT_LEN], nonce[KF_NONCE_LEN], tag[KF_TAG_LEN];
  uint8_t plain[KF_WRAPPED_LEN], wrapped[KF_WRAPPED_LEN], wkey[32];
  int r = 0;

  *json_out = NULL;
  struct json_object *o = json_object_new_object ();
  if (o == NULL)
    return vb_err (err, ENOMEM, "cannot build key file: out of memory");
  json_object_object_add (o, "format", json_object_new_int (KF_FORMAT));
  json_object_object_add (o, "encrypted",
                          json_object_new_boolean (k->encrypted));
  if (!k->encrypted) {
    json_add_hex (o, "mac_key", k->mac_key, REPO_KEY_LEN);
  } else {
    if (passphrase == NULL || passphrase[0] == '\0') {
      r = vb_err (err, EINVAL, "cannot write key file: an encrypted "
                  "repository needs a non-empty passphrase or key file");
      goto out;
    }
    if (RAND_bytes (salt, sizeof salt) != 1
        || RAND_bytes (nonce, sizeof nonce) != 1) {
      r = vb_err (err, EIO, "cannot write key file: random number "
                  "generator failed");
      goto out;
    }
    r = scrypt_derive (passphrase, salt, sizeof salt, KF_N_DEFAULT,
                       KF_R_DEFAULT, KF_P_DEFAULT, wkey, err);
    if (r < 0)
      goto out;
    memcpy (plain, k->enc_key, REPO_KEY_LEN);
    memcpy (plain + REPO_KEY_LEN, k->id_key, REPO_KEY_LEN);
    memcpy (plain + 2 * REPO_KEY_LEN, k->mac_key, REPO_KEY_LEN);
    if (gcm_wrap (true, wkey, nonce, plain, sizeof plain, wrapped, tag) != 0) {
      r = vb_err (err, EIO, "cannot write key file: AES-256-GCM failed");
      goto out;
    }
    json_object_object_add (o, "kdf", json_object_new_string ("scrypt"));
    json_object_object_add (o, "n", json_object_new_int64 (KF_N_DEFAULT));
    json_object_object_add (o, "r", json_object_new_int64 (KF_R_DEFAULT));
    json_object_object_add (o, "p", json_object_new_int64 (KF_P_DEFAULT));
    json_add_hex (o, "salt", salt, sizeof salt);
    json_add_hex (o, "nonce", nonce, sizeof nonce);
    json_add_hex (o, "wrapped", wrapped, sizeof wrapped);
    json_add_hex (o, "tag", tag, sizeof tag);
  }
  const char *s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY
                                                  | JSON_C_TO_STRING_SPACED);
  if (s == NULL || (*json_out = malloc (strlen (s) + 2)) == NULL) {
    r = vb_err (err, ENOMEM, "cannot build key file: out of memory");
    goto out;
  }
  strcpy (*json_out, s);
  strcat (*json_out, "\n");
out:
  json_object_put (o);
  OPENSSL_cleanse (plain, sizeof plain);
  OPENSSL_cleanse (wkey, sizeof wkey);
  return r;
}

/* Member name of o as a string of exactly 2*len hex digits decoded into
 * out; -EBADMSG naming the member otherwise. */
static int
json_get_hex (struct json_object *o, const char *name, uint8_t *out,
              size_t len, struct vb_error *err)
{
  struct json_object *v;
  if (!json_object_object_get_ex (o, name, &v)
      || !json_object_is_type (v, json_type_string))
    return vb_err (err, EBADMSG, "key file is damaged: '%s' is missing or "
                   "not a string", name);
  if ((size_t) json_object_get_string_len (v) != 2 * len
      || hex_decode (json_object_get_string (v), out, len) < 0)
    return vb_err (err, EBADMSG, "key file is damaged: '%s' is not %zu "
                   "hex bytes", name, len);
  return 0;
}

/* Member name of o as a JSON integer. */
static int
json_get_int (struct json_object *o, const char *name, int64_t *out,
              struct vb_error *err)
{
  struct json_object *v;
  if (!json_object_object_get_ex (o, name, &v)
      || !json_object_is_type (v, json_type_int))
    return vb_err (err, EBADMSG, "key file is damaged: '%s' is missing or "
                   "not an integer", name);
  *out = json_object_get_int64 (v);
  return 0;
}

/* Parse a key file and, when encrypted, unwrap its keys with the
 * passphrase.  Every member is checked for type, length and range; the
 * scrypt parameters against the caps before any memory is spent.  A
 * wrong passphrase (GCM tag mismatch) is -EACCES. */
int
crypto_keyfile_read (const char *json, size_t len, const char *passphrase,
                     struct repo_keys *k, struct vb_error *err)
{
  uint8_t salt[KF_SALT_MAX], nonce[KF_NONCE_LEN], tag[KF_TAG_LEN];
  uint8_t wrapped[KF_WRAPPED_LEN], plain[KF_WRAPPED_LEN], wkey[32];
  struct json_object *o = NULL, *v;
  int64_t n = 0, rr = 0, p = 0;
  int r;

  memset (k, 0, sizeof *k);
  if (len > KF_MAX_JSON)
    return vb_err (err, EBADMSG, "key file is damaged: %zu bytes, more "
                   "than the %u a key file may have", len, KF_MAX_JSON);
  struct json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return vb_err (err, ENOMEM, "cannot parse key file: out of memory");
  o = json_tokener_parse_ex (tok, json, (int) len);
  enum json_tokener_error jerr = json_tokener_get_error (tok);
  size_t used = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  /* Only white space may follow the object. */
  while (o != NULL && used < len && strchr (" \t\r\n", json[used]) != NULL
         && json[used] != '\0')
    used++;
  if (o != NULL && used != len) {
    json_object_put (o);
    return vb_err (err, EBADMSG, "key file is damaged: data after the JSON "
                   "object");
  }
  if (o == NULL || jerr != json_tokener_success) {
    json_object_put (o);
    return vb_err (err, EBADMSG, "key file is damaged: not valid JSON (%s)",
                   o == NULL && jerr == json_tokener_success ? "empty"
                   : json_tokener_error_desc (jerr));
  }
  if (!json_object_is_type (o, json_type_object)) {
    r = vb_err (err, EBADMSG, "key file is damaged: not a JSON object");
    goto out;
  }
  int64_t format = 0;
  if ((r = json_get_int (o, "format", &format, err)) < 0)
    goto out;
  if (format != KF_FORMAT) {
    r = vb_err (err, EBADMSG, "key file has unsupported format %" PRId64
                " (this vmback reads format %d)", format, KF_FORMAT);
    goto out;
  }
  if (!json_object_object_get_ex (o, "encrypted", &v)
      || !json_object_is_type (v, json_type_boolean)) {
    r = vb_err (err, EBADMSG, "key file is damaged: 'encrypted' is missing "
                "or not a boolean");
    goto out;
  }
  if (!json_object_get_boolean (v)) {
    r = json_get_hex (o, "mac_key", k->mac_key, REPO_KEY_LEN, err);
    goto out;
  }

  k->encrypted = true;
  if (!json_object_object_get_ex (o, "kdf", &v)
      || !json_object_is_type (v, json_type_string)
      || strcmp (json_object_get_string (v), "scrypt") != 0) {
    r = vb_err (err, EBADMSG, "key file is damaged: 'kdf' is not \"scrypt\"");
    goto out;
  }
  if ((r = json_get_int (o, "n", &n, err)) < 0
      || (r = json_get_int (o, "r", &rr, err)) < 0
      || (r = json_get_int (o, "p", &p, err)) < 0
      || (r = scrypt_params_check (n, rr, p, err)) < 0)
    goto out;
  if (!json_object_object_get_ex (o, "salt", &v)
      || !json_object_is_type (v, json_type_string)) {
    r = vb_err (err, EBADMSG, "key file is damaged: 'salt' is missing or "
                "not a string");
    goto out;
  }
  size_t salt_hex = (size_t) json_object_get_string_len (v);
  if (salt_hex % 2 != 0 || salt_hex < 2 * KF_SALT_MIN
      || salt_hex > 2 * KF_SALT_MAX) {
    r = vb_err (err, EBADMSG, "key file is damaged: 'salt' is not %d to %d "
                "hex bytes", KF_SALT_MIN, KF_SALT_MAX);
    goto out;
  }
  size_t salt_len = salt_hex / 2;
  if ((r = json_get_hex (o, "salt", salt, salt_len, err)) < 0
      || (r = json_get_hex (o, "nonce", nonce, sizeof nonce, err)) < 0
      || (r = json_get_hex (o, "wrapped", wrapped, sizeof wrapped, err)) < 0
      || (r = json_get_hex (o, "tag", tag, sizeof tag, err)) < 0)
    goto out;
  if (passphrase == NULL || passphrase[0] == '\0') {
    r = vb_err (err, EACCES, "the repository is encrypted: a passphrase or "
                "key file is needed");
    goto out;
  }
  r = scrypt_derive (passphrase, salt, salt_len, (uint64_t) n, (uint64_t) rr,
                     (uint64_t) p, wkey, err);
  if (r < 0)
    goto out;
  int g = gcm_wrap (false, wkey, nonce, wrapped, sizeof wrapped, plain, tag);
  if (g < 0) {
    r = vb_err (err, EIO, "cannot unwrap repository keys: AES-256-GCM failed");
    goto out;
  }
  if (g > 0) {
    r = vb_err (err, EACCES, "wrong passphrase or key file");
    goto out;
  }
  memcpy (k->enc_key, plain, REPO_KEY_LEN);
  memcpy (k->id_key, plain + REPO_KEY_LEN, REPO_KEY_LEN);
  memcpy (k->mac_key, plain + 2 * REPO_KEY_LEN, REPO_KEY_LEN);
  r = 0;
out:
  json_object_put (o);
  OPENSSL_cleanse (plain, sizeof plain);
  OPENSSL_cleanse (wkey, sizeof wkey);
  if (r < 0)
    OPENSSL_cleanse (k, sizeof *k);
  return r;
}
