/* Fuzz target: the chunk blob decoder (chunk.c).  The input is a chunk id
 * (32 bytes) followed by a blob.  The blob is decoded as it is, strictly
 * and as data is read, with the plain and the encrypted fuzz keys; then with its length field and CRC
 * fixed; then, when it is an encrypted blob, with its body sealed under
 * the fuzz key (AES-256-GCM, a valid tag), so mutations reach the zstd
 * frame checks and the decompressor behind the CRC and the tag.  Last,
 * the blob bytes are encoded as a chunk and must decode to themselves. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "common/le.h"
#include "fuzz-repo.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define HDR 20u

/* Decode into a heap buffer of exactly cap bytes (64 KiB or the 8 MiB
 * maximum, each allocated once), so overruns trip ASan. */
static int
decode_one (const struct repo_keys *k, const uint8_t *id, const uint8_t *b,
            size_t len, size_t cap)
{
  static uint8_t *small, *large;
  if (!small && !(small = malloc (65536)))
    abort ();
  if (!large && !(large = malloc (CHUNK_MAX_SIZE)))
    abort ();
  uint8_t *out = cap == CHUNK_MAX_SIZE ? large : small;
  if (cap != CHUNK_MAX_SIZE && cap != 65536)
    abort ();
  struct vb_error e = { 0 };
  int r = chunk_decode (k, id, b, len, out, cap, &e);
  if (r > (int) cap)
    abort ();
  struct vb_error e2 = { 0 };
  int r2 = chunk_decode_data (k, id, b, len, out, cap, &e2);
  if (r2 > (int) cap || (r >= 0 && r2 != r))
    abort ();
  return r;
}

/* The blob's CRC field recomputed over header bytes 0..15, the id (for
 * version 2) and the payload. */
static void
fix_crc (uint8_t *b, size_t len, const uint8_t *id)
{
  uLong c = crc32 (0L, Z_NULL, 0);
  c = crc32 (c, b, 16);
  if (b[4] == 2)
    c = crc32 (c, id, REPO_ID_LEN);
  c = crc32_z (c, b + HDR, len - HDR);
  le32_put (b + 16, (uint32_t) c);
}

/* Encrypt the body of an encrypted blob in place under k's enc_key with
 * associated data header[0..16) || id, writing the tag (layout in
 * chunk.c).  False when the blob is too short. */
static bool
seal (const struct repo_keys *k, const uint8_t *id, uint8_t *b, size_t len)
{
  if (len < HDR + 28)
    return false;
  uint8_t *nonce = b + HDR, *body = nonce + 12;
  size_t blen = len - HDR - 28;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new ();
  int outl = 0;
  bool ok = c && EVP_EncryptInit_ex (c, EVP_aes_256_gcm (), NULL, k->enc_key,
                                     nonce) == 1
    && EVP_EncryptUpdate (c, NULL, &outl, b, 16) == 1
    && EVP_EncryptUpdate (c, NULL, &outl, id, REPO_ID_LEN) == 1
    && EVP_EncryptUpdate (c, body, &outl, body, (int) blen) == 1
    && EVP_EncryptFinal_ex (c, body + outl, &outl) == 1
    && EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_GET_TAG, 16, body + blen) == 1;
  EVP_CIPHER_CTX_free (c);
  if (!ok)
    abort ();
  return true;
}

/* Encode data as a chunk and decode it again: same length, same bytes. */
static void
round_trip (const struct repo_keys *k, const uint8_t *data, size_t len,
            int level)
{
  uint8_t id[REPO_ID_LEN], *blob;
  size_t blen;
  crypto_chunk_id (k, data, len, id);
  struct vb_error e = { 0 };
  if (chunk_encode (k, id, data, len, level, &blob, &blen, &e) < 0)
    abort ();
  uint8_t *out = malloc (len ? len : 1);
  if (!out)
    abort ();
  struct vb_error e2 = { 0 };
  int r = chunk_decode (k, id, blob, blen, out, len, &e2);
  if (r != (int) len || (len && memcmp (out, data, len) != 0))
    abort ();
  free (out);
  free (blob);
}

/* Run the decode variants and the round trip (see the top). */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct repo_keys plain, enc;
  fuzz_repo_keys (&plain, false);
  fuzz_repo_keys (&enc, true);
  if (size < REPO_ID_LEN)
    return 0;
  const uint8_t *id = data;
  const uint8_t *blob = data + REPO_ID_LEN;
  size_t len = size - REPO_ID_LEN;
  size_t cap = (id[0] & 1) ? CHUNK_MAX_SIZE : 65536;

  decode_one (&plain, id, blob, len, cap);
  decode_one (&enc, id, blob, len, cap);

  if (len >= HDR) {
    uint8_t *b = malloc (len);
    if (!b)
      abort ();
    memcpy (b, blob, len);
    le32_put (b + 12, (uint32_t) (len - HDR));
    bool is_enc = (b[5] & 2) != 0;
    fix_crc (b, len, id);
    decode_one (is_enc ? &enc : &plain, id, b, len, cap);
    if (is_enc && seal (&enc, id, b, len)) {
      fix_crc (b, len, id);
      decode_one (&enc, id, b, len, cap);
    }
    free (b);
  }

  size_t n = len < 65536 ? len : 65536;
  /* levels -3..4: the high ones cost milliseconds per input */
  round_trip ((id[1] & 1) ? &enc : &plain, blob, n, (int) (id[2] % 8) - 3);
  return 0;
}
