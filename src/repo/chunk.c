/* vmback chunk blobs: one chunk of disk data <-> one stored object
 * (byte layout in docs/FORMAT-chunks.md).
 *
 *   0  magic "VBC1"
 *   4  version (u8): 2 is written; 1 is still read
 *   5  flags (u8): 1 = zstd, 2 = AES-256-GCM
 *   6  reserved (u16, 0)
 *   8  plain length (u32 LE): bytes of the chunk
 *  12  payload length (u32 LE): bytes after the header
 *  16  CRC32 (u32 LE) of header bytes 0..15, the chunk id (version 2
 *      only), then the payload
 *  20  payload: body, or nonce(12) || AES-256-GCM(body) || tag(16)
 *      body = zstd frame of the chunk when smaller, else the chunk itself
 *      GCM associated data = header bytes 0..15 || chunk id (32)
 *
 * Version 2's CRC binds the blob to its id, so reading data can trust a
 * blob whose CRC matches without hashing its plaintext again (SHA-256
 * runs at ~1.2 GB/s here, the CRC at ~10 GB/s); verify still does both.
 *
 * encode and decode run in many threads at once: there is no shared
 * mutable state except the per-thread zstd contexts (pthread keys, freed
 * when a thread exits).  Encode writes into exactly one malloc'd buffer:
 * zstd compresses straight into it and GCM encrypts in place.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <libdeflate.h>
#include <zstd.h>

#include "common/le.h"
#include "repo-int.h"

#define CHUNK_MAGIC       "VBC1"
#define CHUNK_VERSION     2u         /* written; CRC covers the id */
#define CHUNK_VERSION_V1  1u         /* read; CRC without the id */
#define CHUNK_HDR_SIZE    20u
#define CHUNK_AAD_HDR     16u        /* header bytes bound by GCM and CRC */
#define CHUNK_F_ZSTD      1u
#define CHUNK_F_ENC       2u
#define CHUNK_F_KNOWN     (CHUNK_F_ZSTD | CHUNK_F_ENC)
#define CHUNK_NONCE_LEN   12u
#define CHUNK_TAG_LEN     16u
#define CHUNK_ENC_OVER    (CHUNK_NONCE_LEN + CHUNK_TAG_LEN)

#define OFF_MAGIC         0
#define OFF_VERSION       4
#define OFF_FLAGS         5
#define OFF_RESERVED      6
#define OFF_PLAIN_LEN     8
#define OFF_PAYLOAD_LEN   12
#define OFF_CRC           16

/* CRC32 (zlib's, computed by libdeflate with carry-less multiplies)
 * stored in a blob: header bytes 0..15, the id when id is not NULL
 * (version 2), then the payload. */
static uint32_t
blob_crc (const uint8_t *hdr, const uint8_t id[REPO_ID_LEN], const uint8_t *payload,
          size_t len)
{
  uint32_t c = libdeflate_crc32 (0, hdr, CHUNK_AAD_HDR);
  if (id != NULL)
    c = libdeflate_crc32 (c, id, REPO_ID_LEN);
  return libdeflate_crc32 (c, payload, len);
}

/* --- per-thread zstd contexts --------------------------------------------- */

/* Creating a compression context for every 1 MiB chunk costs more than a
 * megabyte of allocation and page faults each time, so each thread keeps
 * one of each kind.  Should the keys be unavailable, a context is made
 * per call instead (*owned tells the caller to free it). */
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static pthread_key_t cctx_key, dctx_key;
static bool tls_ok;

static void
free_cctx (void *p)
{
  ZSTD_freeCCtx (p);
}

static void
free_dctx (void *p)
{
  ZSTD_freeDCtx (p);
}

static void
tls_init (void)
{
  if (pthread_key_create (&cctx_key, free_cctx) != 0)
    return;
  if (pthread_key_create (&dctx_key, free_dctx) != 0) {
    pthread_key_delete (cctx_key);
    return;
  }
  tls_ok = true;
}

/* This thread's compression context (NULL when out of memory). */
static ZSTD_CCtx *
get_cctx (bool *owned)
{
  pthread_once (&tls_once, tls_init);
  *owned = !tls_ok;
  ZSTD_CCtx *c = tls_ok ? pthread_getspecific (cctx_key) : NULL;
  if (c == NULL) {
    c = ZSTD_createCCtx ();
    if (c != NULL && tls_ok && pthread_setspecific (cctx_key, c) != 0)
      *owned = true;
  }
  return c;
}

/* This thread's decompression context (NULL when out of memory). */
static ZSTD_DCtx *
get_dctx (bool *owned)
{
  pthread_once (&tls_once, tls_init);
  *owned = !tls_ok;
  ZSTD_DCtx *d = tls_ok ? pthread_getspecific (dctx_key) : NULL;
  if (d == NULL) {
    d = ZSTD_createDCtx ();
    if (d != NULL && tls_ok && pthread_setspecific (dctx_key, d) != 0)
      *owned = true;
  }
  return d;
}

/* --- AES-256-GCM ---------------------------------------------------------- */

/* AES-256-GCM of in[0..len) into out (in == out allowed) with AAD
 * hdr[0..16) || id.  Encrypt writes tag; decrypt checks it.  Returns 0,
 * 1 when the tag does not match, -1 on internal failure. */
static int
chunk_gcm (bool encrypt, const uint8_t key[REPO_KEY_LEN],
           const uint8_t nonce[CHUNK_NONCE_LEN], const uint8_t *hdr,
           const uint8_t id[REPO_ID_LEN], const uint8_t *in, size_t len,
           uint8_t *out, uint8_t tag[CHUNK_TAG_LEN])
{
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new ();
  int outl = 0, fin = 0, rc = -1;
  if (c == NULL)
    return -1;
  /* len <= CHUNK_MAX_SIZE (8 MiB): fits an int. */
  if (encrypt) {
    if (EVP_EncryptInit_ex (c, EVP_aes_256_gcm (), NULL, key, nonce) == 1
        && EVP_EncryptUpdate (c, NULL, &outl, hdr, CHUNK_AAD_HDR) == 1
        && EVP_EncryptUpdate (c, NULL, &outl, id, REPO_ID_LEN) == 1
        && EVP_EncryptUpdate (c, out, &outl, in, (int) len) == 1
        && EVP_EncryptFinal_ex (c, out + outl, &fin) == 1
        && EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_GET_TAG, CHUNK_TAG_LEN,
                                tag) == 1)
      rc = 0;
  } else {
    if (EVP_DecryptInit_ex (c, EVP_aes_256_gcm (), NULL, key, nonce) == 1
        && EVP_DecryptUpdate (c, NULL, &outl, hdr, CHUNK_AAD_HDR) == 1
        && EVP_DecryptUpdate (c, NULL, &outl, id, REPO_ID_LEN) == 1
        && EVP_DecryptUpdate (c, out, &outl, in, (int) len) == 1
        && EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_SET_TAG, CHUNK_TAG_LEN,
                                tag) == 1)
      rc = EVP_DecryptFinal_ex (c, out + outl, &fin) == 1 ? 0 : 1;
  }
  EVP_CIPHER_CTX_free (c);
  return rc;
}

/* --- encode --------------------------------------------------------------- */

/* Encode one chunk into a blob (layout above).  level is as zstd takes
 * it (0 = zstd's default 3, negative = faster).  The output buffer is
 * allocated once at its largest possible size, header + 28 + len (zstd
 * is only given len - 1 bytes of room, so it either comes out smaller or
 * fails and the chunk is stored raw), and shrunk at the end. */
int
chunk_encode (const struct repo_keys *k, const uint8_t id[REPO_ID_LEN],
              const void *data, size_t len, int level,
              uint8_t **blob, size_t *blob_len, struct vb_error *err)
{
  char hex[2 * REPO_ID_LEN + 1];
  bool enc = k->encrypted;

  *blob = NULL;
  *blob_len = 0;
  hex_encode (id, REPO_ID_LEN, hex);
  if (len > CHUNK_MAX_SIZE)
    return vb_err (err, EINVAL, "cannot store chunk %s: %zu bytes, more "
                   "than the %u a chunk may have", hex, len, CHUNK_MAX_SIZE);
  if (level < ZSTD_minCLevel () || level > ZSTD_maxCLevel ())
    return vb_err (err, EINVAL, "cannot store chunk %s: compression level "
                   "%d is out of range (%d to %d)", hex, level,
                   ZSTD_minCLevel (), ZSTD_maxCLevel ());

  /* At most 20 + 28 + 8 MiB: no overflow. */
  size_t cap = CHUNK_HDR_SIZE + (enc ? CHUNK_ENC_OVER : 0) + len;
  uint8_t *b = malloc (cap);
  if (b == NULL)
    return vb_errno (err, ENOMEM, "cannot store chunk %s", hex);
  uint8_t *payload = b + CHUNK_HDR_SIZE;
  uint8_t *body = payload + (enc ? CHUNK_NONCE_LEN : 0);

  /* Compress straight into the blob when it comes out smaller. */
  uint8_t flags = enc ? CHUNK_F_ENC : 0;
  size_t body_len = len;
  if (len > 1) {
    bool owned;
    ZSTD_CCtx *cc = get_cctx (&owned);
    if (cc == NULL) {
      free (b);
      return vb_err (err, ENOMEM, "cannot compress chunk %s: out of memory",
                     hex);
    }
    size_t z = ZSTD_compressCCtx (cc, body, len - 1, data, len, level);
    if (owned)
      ZSTD_freeCCtx (cc);
    if (!ZSTD_isError (z)) {
      flags |= CHUNK_F_ZSTD;
      body_len = z;
    }
    /* else: not smaller (dstSize_tooSmall) or failed: store raw */
  }
  const uint8_t *src = (flags & CHUNK_F_ZSTD) ? body : data;
  if (!enc && !(flags & CHUNK_F_ZSTD) && len > 0)
    memcpy (body, data, len);

  size_t payload_len = body_len + (enc ? CHUNK_ENC_OVER : 0);
  memcpy (b + OFF_MAGIC, CHUNK_MAGIC, 4);
  b[OFF_VERSION] = CHUNK_VERSION;
  b[OFF_FLAGS] = flags;
  b[OFF_RESERVED] = b[OFF_RESERVED + 1] = 0;
  le32_put (b + OFF_PLAIN_LEN, (uint32_t) len);
  le32_put (b + OFF_PAYLOAD_LEN, (uint32_t) payload_len);

  if (enc) {
    if (RAND_bytes (payload, CHUNK_NONCE_LEN) != 1) {
      free (b);
      return vb_err (err, EIO, "cannot encrypt chunk %s: random number "
                     "generator failed", hex);
    }
    /* In place when compressed (src == body), else from the caller's data. */
    if (chunk_gcm (true, k->enc_key, payload, b, id, src, body_len, body,
                   body + body_len) != 0) {
      free (b);
      return vb_err (err, EIO, "cannot encrypt chunk %s: AES-256-GCM failed",
                     hex);
    }
  }
  le32_put (b + OFF_CRC, blob_crc (b, id, payload, payload_len));

  size_t total = CHUNK_HDR_SIZE + payload_len;
  if (total + 4096 < cap) {
    uint8_t *nb = realloc (b, total);    /* shrinking: keeps b if it fails */
    if (nb != NULL)
      b = nb;
  }
  *blob = b;
  *blob_len = total;
  return 0;
}

/* --- decode --------------------------------------------------------------- */

/* Record "chunk <hex> is damaged: <what>" and return -EBADMSG. */
static int damaged (struct vb_error *err, const char *hex, const char *fmt,
                    ...) __attribute__ ((format (printf, 3, 4)));
static int
damaged (struct vb_error *err, const char *hex, const char *fmt, ...)
{
  char what[256];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (what, sizeof what, fmt, ap);
  va_end (ap);
  return vb_err (err, EBADMSG, "chunk %s is damaged: %s", hex, what);
}

/* Is the CRC of a blob (its header checked, payload_len bytes of
 * payload) right for chunk id? */
static bool
crc_ok (const uint8_t id[REPO_ID_LEN], const uint8_t *blob, uint32_t payload_len)
{
  bool v2 = blob[OFF_VERSION] == CHUNK_VERSION;
  return blob_crc (blob, v2 ? id : NULL, blob + CHUNK_HDR_SIZE, payload_len)
    == le32_get (blob + OFF_CRC);
}

/* Record that a blob failed to decode: "CRC mismatch" when its stored
 * bytes changed (the diagnosis that matters), else what decoding found. */
static int damaged_blob (struct vb_error *err, const char *hex, const uint8_t id[REPO_ID_LEN],
                         const uint8_t *blob, uint32_t payload_len,
                         const char *fmt, ...) __attribute__ ((format (printf, 6, 7)));
static int
damaged_blob (struct vb_error *err, const char *hex, const uint8_t id[REPO_ID_LEN],
              const uint8_t *blob, uint32_t payload_len, const char *fmt, ...)
{
  if (!crc_ok (id, blob, payload_len))
    return damaged (err, hex, "CRC mismatch");
  char what[256];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (what, sizeof what, fmt, ap);
  va_end (ap);
  return damaged (err, hex, "%s", what);
}

/* Decode a blob into out[0..cap): every header field is checked on its
 * own, the claimed plain length against cap and CHUNK_MAX_SIZE before
 * anything is allocated or decompressed, then the CRC, the GCM tag, the
 * decompressed size, and last the id of the result.  With strict false
 * (reading data) a version 2 blob whose CRC, which covers its id,
 * matches is not hashed again; a version 1 blob's CRC is computed only
 * once something failed, since a blob that decrypts, decompresses and
 * hashes to its id is intact whatever its CRC field says. */
static int
decode (const struct repo_keys *k, const uint8_t id[REPO_ID_LEN],
        const uint8_t *blob, size_t blob_len, uint8_t *out, size_t cap,
        bool strict, const uint8_t **view, struct vb_error *err)
{
  char hex[2 * REPO_ID_LEN + 1];
  uint8_t *tmp = NULL;
  const uint8_t *res = out;         /* where the chunk ends up */
  int r;

  hex_encode (id, REPO_ID_LEN, hex);

  if (blob_len < CHUNK_HDR_SIZE)
    return damaged (err, hex, "%zu bytes, shorter than a blob header",
                    blob_len);
  if (memcmp (blob + OFF_MAGIC, CHUNK_MAGIC, 4) != 0)
    return damaged (err, hex, "bad magic");
  uint8_t version = blob[OFF_VERSION];
  if (version != CHUNK_VERSION && version != CHUNK_VERSION_V1)
    return damaged (err, hex, "unsupported blob version %u", version);
  uint8_t flags = blob[OFF_FLAGS];
  if (flags & ~CHUNK_F_KNOWN)
    return damaged (err, hex, "unknown flags 0x%02x", flags);
  if (blob[OFF_RESERVED] != 0 || blob[OFF_RESERVED + 1] != 0)
    return damaged (err, hex, "reserved header bytes are not zero");
  bool enc = (flags & CHUNK_F_ENC) != 0, zst = (flags & CHUNK_F_ZSTD) != 0;
  if (enc != k->encrypted)
    return damaged (err, hex, "%s blob in an %s repository",
                    enc ? "encrypted" : "unencrypted",
                    k->encrypted ? "encrypted" : "unencrypted");
  uint32_t plain_len = le32_get (blob + OFF_PLAIN_LEN);
  if (plain_len > CHUNK_MAX_SIZE || plain_len > cap)
    return damaged (err, hex, "claims %" PRIu32 " bytes, more than the "
                    "%zu expected", plain_len, cap < CHUNK_MAX_SIZE ? cap
                    : (size_t) CHUNK_MAX_SIZE);
  uint32_t payload_len = le32_get (blob + OFF_PAYLOAD_LEN);
  if (payload_len != blob_len - CHUNK_HDR_SIZE)
    return damaged (err, hex, "payload of %" PRIu32 " bytes but the "
                    "blob holds %zu", payload_len, blob_len - CHUNK_HDR_SIZE);
  if (enc && payload_len < CHUNK_ENC_OVER)
    return damaged (err, hex, "encrypted payload of %" PRIu32 " bytes "
                    "is too short", payload_len);
  /* body_len: payload minus nonce and tag (payload_len >= 28 if enc). */
  size_t body_len = payload_len - (enc ? CHUNK_ENC_OVER : 0);
  /* Raw bodies are the chunk itself; compressed ones are only stored when
   * smaller, which also bounds the decryption buffer below by 8 MiB. */
  if (!zst && body_len != plain_len)
    return damaged (err, hex, "raw body of %zu bytes for a chunk of %" PRIu32,
                    body_len, plain_len);
  if (zst && (body_len == 0 || body_len >= plain_len))
    return damaged (err, hex, "compressed body of %zu bytes for a chunk "
                    "of %" PRIu32, body_len, plain_len);
  const uint8_t *payload = blob + CHUNK_HDR_SIZE;
  bool crc_binds_id = version == CHUNK_VERSION;
  if ((strict || crc_binds_id) && !crc_ok (id, blob, payload_len))
    return damaged (err, hex, "CRC mismatch");

  const uint8_t *body = payload + (enc ? CHUNK_NONCE_LEN : 0);
  if (enc) {
    /* Raw: decrypt straight into out (plain_len <= cap).  Compressed:
     * into a buffer of body_len < plain_len <= 8 MiB bytes. */
    uint8_t *dst = out;
    if (zst && (dst = tmp = malloc (body_len)) == NULL)
      return vb_errno (err, ENOMEM, "cannot decrypt chunk %s", hex);
    uint8_t tag[CHUNK_TAG_LEN];
    memcpy (tag, body + body_len, CHUNK_TAG_LEN);
    int g = chunk_gcm (false, k->enc_key, payload, blob, id, body, body_len,
                       dst, tag);
    if (g != 0) {
      OPENSSL_cleanse (dst, body_len);    /* never leave unauthenticated data */
      if (g < 0)
        r = vb_err (err, EIO, "cannot decrypt chunk %s: AES-256-GCM failed",
                    hex);
      else
        r = damaged_blob (err, hex, id, blob, payload_len, "authentication "
                          "failed (wrong key, or the blob was altered)");
      goto out;
    }
    body = dst;
  }

  if (zst) {
    /* The frame must announce exactly plain_len bytes, be the whole body,
     * and decompress into exactly plain_len bytes of out: a frame that
     * would produce more hits the bound and fails. */
    unsigned long long fcs = ZSTD_getFrameContentSize (body, body_len);
    if (fcs != plain_len) {
      r = damaged_blob (err, hex, id, blob, payload_len,
                        "compressed frame announces %s, not %" PRIu32
                        " bytes", fcs == ZSTD_CONTENTSIZE_ERROR ? "garbage"
                        : fcs == ZSTD_CONTENTSIZE_UNKNOWN ? "no size"
                        : "another size", plain_len);
      goto out;
    }
    size_t fl = ZSTD_findFrameCompressedSize (body, body_len);
    if (ZSTD_isError (fl) || fl != body_len) {
      r = damaged_blob (err, hex, id, blob, payload_len,
                        "compressed body is not one whole zstd frame");
      goto out;
    }
    bool owned;
    ZSTD_DCtx *dc = get_dctx (&owned);
    if (dc == NULL) {
      r = vb_err (err, ENOMEM, "cannot decompress chunk %s: out of memory",
                  hex);
      goto out;
    }
    size_t z = ZSTD_decompressDCtx (dc, out, plain_len, body, body_len);
    if (owned)
      ZSTD_freeDCtx (dc);
    if (ZSTD_isError (z) || z != plain_len) {
      if (ZSTD_isError (z))
        r = damaged_blob (err, hex, id, blob, payload_len,
                          "cannot decompress: %s", ZSTD_getErrorName (z));
      else
        r = damaged_blob (err, hex, id, blob, payload_len,
                          "decompressed to %zu bytes, not %" PRIu32, z, plain_len);
      goto out;
    }
  } else if (!enc && view != NULL) {
    res = body;                   /* raw: the chunk is the body */
  } else if (!enc && plain_len > 0) {
    memcpy (out, body, plain_len);
  }

  uint8_t got[REPO_ID_LEN];
  if (!strict && crc_binds_id) {
    r = (int) plain_len;
    goto out;
  }
  crypto_chunk_id (k, res, plain_len, got);
  if (!crypto_equal (got, id, REPO_ID_LEN)) {
    r = damaged_blob (err, hex, id, blob, payload_len,
                      "its content does not match its id");
    goto out;
  }
  r = (int) plain_len;
out:
  if (view != NULL)
    *view = res;
  if (tmp != NULL) {
    OPENSSL_cleanse (tmp, body_len);
    free (tmp);
  }
  return r;
}

/* Decode, checking every byte of the blob (chunk.h). */
int
chunk_decode (const struct repo_keys *k, const uint8_t id[REPO_ID_LEN],
              const uint8_t *blob, size_t blob_len, uint8_t *out,
              size_t cap, struct vb_error *err)
{
  return decode (k, id, blob, blob_len, out, cap, true, NULL, err);
}

/* Decode for reading data: version 2 trusted on its CRC (chunk.h). */
int
chunk_decode_data (const struct repo_keys *k, const uint8_t id[REPO_ID_LEN],
                   const uint8_t *blob, size_t blob_len, uint8_t *out,
                   size_t cap, struct vb_error *err)
{
  return decode (k, id, blob, blob_len, out, cap, false, NULL, err);
}

/* chunk_decode_data without copying a raw body (chunk.h). */
int
chunk_decode_data_view (const struct repo_keys *k, const uint8_t id[REPO_ID_LEN],
                        const uint8_t *blob, size_t blob_len, uint8_t *out, size_t cap,
                        const uint8_t **plain, struct vb_error *err)
{
  return decode (k, id, blob, blob_len, out, cap, false, plain, err);
}

/* Key of a chunk: "chunks/<first 2 hex>/<64 hex>". */
void
chunk_key (const uint8_t id[REPO_ID_LEN], char *buf, size_t len)
{
  char hex[2 * REPO_ID_LEN + 1];
  hex_encode (id, REPO_ID_LEN, hex);
  snprintf (buf, len, "chunks/%.2s/%s", hex, hex);
}

/* The id of a chunk key (the inverse of chunk_key); -1 for any other key. */
int
chunk_key_parse (const char *key, uint8_t id[REPO_ID_LEN])
{
  if (strncmp (key, "chunks/", 7) != 0 || strlen (key) != 7 + 3 + 64)
    return -1;
  return hex_decode (key + 10, id, REPO_ID_LEN) < 0 ? -1 : 0;
}
