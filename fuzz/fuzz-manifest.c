/* Fuzz target: the manifest decoder (manifest.c).  Each input is decoded
 * as it is, then again with its "hmac" member recomputed with the fuzz key
 * (or appended when missing), so mutations of the JSON reach the field
 * checks behind the MAC.  A decoded manifest must encode and decode back
 * to the same struct. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-repo.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define HEAD ",\"hmac\":\""

/* Decode text; on success round-trip through encode. */
static void
decode_one (const struct repo_keys *k, const char *text, size_t len)
{
  static struct manifest m, m2;
  struct vb_error e = { 0 };
  if (manifest_decode (k, text, len, "fuzz", &m, &e) < 0)
    return;
  char *out;
  size_t olen;
  struct vb_error e2 = { 0 };
  int r = manifest_encode (k, &m, &out, &olen, &e2);
  if (r == -EFBIG)
    return;                         /* escaping may make it longer */
  if (r < 0)
    abort ();
  struct vb_error e3 = { 0 };
  if (manifest_decode (k, out, olen, "fuzz2", &m2, &e3) < 0)
    abort ();
  if (memcmp (&m, &m2, sizeof m) != 0)
    abort ();
  free (out);
}

/* The body B (text up to the hmac member, plus '}') MACed and written as
 * B without '}' + ,"hmac":"<hex>"} into a new buffer. */
static char *
remac (const struct repo_keys *k, const char *t, size_t len, size_t *olen)
{
  while (len > 0 && t[len - 1] == '\n')
    len--;
  size_t blen;                      /* bytes of B before its '}' */
  if (len >= 9 + 64 + 2 && memcmp (t + len - 75, HEAD, 9) == 0
      && memcmp (t + len - 2, "\"}", 2) == 0)
    blen = len - 75;
  else if (len >= 2 && t[len - 1] == '}')
    blen = len - 1;
  else
    return NULL;
  char *b = malloc (blen + 9 + 64 + 3);
  if (!b)
    abort ();
  memcpy (b, t, blen);
  b[blen] = '}';
  uint8_t mac[32];
  crypto_mac (k, b, blen + 1, mac);
  memcpy (b + blen, HEAD, 9);
  hex_encode (mac, 32, b + blen + 9);
  memcpy (b + blen + 9 + 64, "\"}\n", 3);
  *olen = blen + 9 + 64 + 3;
  return b;
}

/* Decode as is, then with the MAC fixed. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct repo_keys k;
  fuzz_repo_keys (&k, false);
  decode_one (&k, (const char *) data, size);
  size_t n;
  char *b = remac (&k, (const char *) data, size, &n);
  if (b) {
    decode_one (&k, b, n);
    free (b);
  }
  return 0;
}
