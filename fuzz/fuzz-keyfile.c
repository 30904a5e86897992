/* Fuzz target: the key file reader (crypto_keyfile_read in crypto.c).
 * Every input is read without a passphrase; when its scrypt parameters
 * are cheap (N*r*p <= 2^12) it is read again with the passphrase "fuzz",
 * so the unwrap runs too.  An unencrypted key file that reads must write
 * and read back to the same keys. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "repo/repo-int.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Integer member of o, or def. */
static int64_t
member_int (json_object *o, const char *name, int64_t def)
{
  json_object *v;
  if (json_object_object_get_ex (o, name, &v)
      && json_object_is_type (v, json_type_int))
    return json_object_get_int64 (v);
  return def;
}

/* True when the input names scrypt parameters cheap enough to run on
 * every fuzz input. */
static bool
cheap_kdf (const uint8_t *data, size_t size)
{
  if (size > (64u << 10))
    return false;
  json_tokener *tok = json_tokener_new ();
  if (!tok)
    abort ();
  json_object *o = json_tokener_parse_ex (tok, (const char *) data, (int) size);
  json_tokener_free (tok);
  bool cheap = false;
  if (o && json_object_is_type (o, json_type_object)) {
    int64_t n = member_int (o, "n", 0), r = member_int (o, "r", 0),
      p = member_int (o, "p", 0);
    cheap = n > 0 && r > 0 && p > 0 && n <= 4096 && r <= 4096 && p <= 4096
      && n * r * p <= 4096;
  }
  json_object_put (o);
  return cheap;
}

/* Read without, then (when cheap) with a passphrase; round-trip plain
 * key files. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct repo_keys k;
  struct vb_error e = { 0 };
  int r = crypto_keyfile_read ((const char *) data, size, NULL, &k, &e);
  if (r == 0 && !k.encrypted) {
    char *json;
    struct vb_error e2 = { 0 };
    if (crypto_keyfile_write (&k, NULL, &json, &e2) < 0)
      abort ();
    struct repo_keys k2;
    if (crypto_keyfile_read (json, strlen (json), NULL, &k2, &e2) < 0
        || memcmp (&k, &k2, sizeof k) != 0)
      abort ();
    free (json);
  }
  if (cheap_kdf (data, size)) {
    struct vb_error e3 = { 0 };
    crypto_keyfile_read ((const char *) data, size, "fuzz", &k, &e3);
  }
  return 0;
}
