/* Fuzz target: the index decoder (index.c).  Each input is decoded as it
 * is, then again with its trailing HMAC recomputed with the fuzz key, so
 * mutations of the header and ids reach the checks behind the MAC.  A
 * decoded index must encode back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-repo.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Decode buf; on success re-encode and require the same bytes. */
static void
decode_one (const struct repo_keys *k, const uint8_t *buf, size_t len)
{
  struct repo_index ix;
  struct vb_error e = { 0 };
  if (index_decode (k, buf, len, "fuzz", &ix, &e) < 0) {
    if (ix.ids != NULL || ix.n != 0)
      abort ();                     /* failure must leave ix zeroed */
    return;
  }
  for (uint64_t i = 0; i < ix.n + 2; i++)
    index_is_zero (&ix, i);
  uint8_t *out;
  size_t olen;
  struct vb_error e2 = { 0 };
  if (index_encode (k, &ix, &out, &olen, &e2) < 0)
    abort ();
  if (olen != len || memcmp (out, buf, len) != 0)
    abort ();
  free (out);
  index_free (&ix);
}

/* Decode as is, then with the MAC fixed. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct repo_keys k;
  fuzz_repo_keys (&k, false);
  decode_one (&k, data, size);
  if (size < 32)
    return 0;
  uint8_t *b = malloc (size);
  if (!b)
    abort ();
  memcpy (b, data, size);
  crypto_mac (&k, b, size - 32, b + size - 32);
  decode_one (&k, b, size);
  free (b);
  return 0;
}
