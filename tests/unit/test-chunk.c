/* Unit tests of chunk blobs (src/repo/chunk.c, docs/FORMAT-chunks.md).
 *
 * Round trips over sizes and contents, with and without encryption;
 * every kind of damage (each header byte, payload bytes, truncation,
 * extension, lying lengths, zip bombs, wrong ids and keys) must give a
 * one-line error and no crash.  Damage meant to get past the CRC is made
 * by recomputing it with zlib (header bytes 0..15, the chunk id for a
 * version 2 blob, then the payload), which also checks that the CRC the
 * writer computes (with libdeflate) is zlib's.
 * Random data comes from a seeded generator; the seed is printed and
 * taken from CHUNK_TEST_SEED. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>
#include <zstd.h>

#include "common/le.h"
#include "repo/repo-int.h"

#define HDR 20u

static uint64_t seed;
static int same_count;                   /* harmless zstd bit flips */
static struct repo_keys kp, ke, ke2;     /* plain, encrypted, other key */

/* --- helpers ------------------------------------------------------------- */

/* xorshift64* step. */
static uint64_t
rnd (uint64_t *s)
{
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1Dull;
}

/* len random bytes. */
static uint8_t *
random_data (size_t len, uint64_t s)
{
  uint8_t *p = malloc (len ? len : 1);
  s = s * 2 + 1;
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t) (rnd (&s) >> 56);
  return p;
}

/* len bytes of text-like data (compresses about 3:1 with zstd -3). */
static uint8_t *
text_data (size_t len, uint64_t s)
{
  static const char *words[] = { "vmback ", "disk ", "chunk ", "backup ",
                                 "restore ", "snapshot ", "sector ",
                                 "grain ", "0x7f3a ", "\n", "index ",
                                 "manifest " };
  uint8_t *p = malloc (len ? len : 1);
  size_t i = 0;
  s = s * 2 + 1;
  while (i < len) {
    uint64_t x = rnd (&s);
    const char *w = words[x % 12];
    if (x >> 60 == 0) {           /* some noise */
      p[i++] = (uint8_t) (x >> 40);
      continue;
    }
    for (size_t j = 0; w[j] && i < len; j++)
      p[i++] = (uint8_t) w[j];
  }
  return p;
}

/* Seconds since an arbitrary point. */
static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The CRC of a blob of chunk id as docs/FORMAT-chunks.md defines it:
 * version 2 covers the id, version 1 does not. */
static uint32_t
zlib_crc (const uint8_t *b, size_t len, const uint8_t id[32])
{
  uLong c = crc32 (0L, Z_NULL, 0);
  c = crc32 (c, b, 16);
  if (b[4] == 2)
    c = crc32 (c, id, 32);
  c = crc32 (c, b + HDR, (uInt) (len - HDR));
  return (uint32_t) c;
}

/* Recompute the CRC of a (modified) blob so the damage gets past it. */
static void
fix_crc (uint8_t *b, size_t len, const uint8_t id[32])
{
  le32_put (b + 16, zlib_crc (b, len, id));
}

/* Encode data with keys k (asserting success), returning the blob. */
static uint8_t *
encode (const struct repo_keys *k, const uint8_t *data, size_t len,
        uint8_t id[32], size_t *blob_len)
{
  struct vb_error err = { 0 };
  uint8_t *blob;
  crypto_chunk_id (k, data, len, id);
  int r = chunk_encode (k, id, data, len, 3, &blob, blob_len, &err);
  if (r != 0)
    fail_msg ("chunk_encode: %s", err.msg);
  return blob;
}

/* Decode expecting failure with -EBADMSG and a message naming the chunk. */
static void
expect_damaged (const struct repo_keys *k, const uint8_t id[32],
                const uint8_t *blob, size_t blob_len, size_t cap,
                const char *what)
{
  struct vb_error err = { 0 };
  char hex[65], want[128];
  /* A cap beyond CHUNK_MAX_SIZE only gets CHUNK_MAX_SIZE bytes behind it:
   * the decoder must never go past that limit anyway (ASan would see). */
  uint8_t *out = malloc (cap > CHUNK_MAX_SIZE ? CHUNK_MAX_SIZE : cap ? cap : 1);
  int r = chunk_decode (k, id, blob, blob_len, out, cap, &err);
  free (out);
  if (r != -EBADMSG)
    fail_msg ("%s: chunk_decode returned %d (%s), expected -EBADMSG", what,
              r, err.msg);
  if (getenv ("CHUNK_TEST_VERBOSE"))
    print_message ("%s: %s\n", what, err.msg);
  hex_encode (id, 32, hex);
  snprintf (want, sizeof want, "chunk %s is damaged: ", hex);
  if (strncmp (err.msg, want, strlen (want)) != 0 || strchr (err.msg, '\n'))
    fail_msg ("%s: bad message '%s'", what, err.msg);
}

/* Decode a blob whose payload was altered and its CRC recomputed.  An
 * unencrypted compressed blob may still decode to the very same chunk
 * (zstd has bits that do not matter), which the id check proves; any
 * other outcome must be a clean -EBADMSG. */
static void
expect_damaged_or_same (const struct repo_keys *k, const uint8_t id[32],
                        const uint8_t *blob, size_t blob_len,
                        const uint8_t *data, size_t len, const char *what)
{
  struct vb_error err = { 0 };
  uint8_t *out = malloc (len ? len : 1);
  int r = chunk_decode (k, id, blob, blob_len, out, len, &err);
  bool same = r == (int) len && memcmp (out, data, len) == 0;
  free (out);
  if (same && !k->encrypted && (blob[5] & 1)) {
    same_count++;
    return;
  }
  expect_damaged (k, id, blob, blob_len, len, what);
}

/* --- round trips ------------------------------------------------------------- */

/* Encode and decode data under k; check flags and result.  zstd: 1 =
 * must be compressed, 0 = must be raw, -1 = either. */
static void
roundtrip (const struct repo_keys *k, const uint8_t *data, size_t len,
           int zstd)
{
  struct vb_error err = { 0 };
  uint8_t id[32];
  size_t blen;
  uint8_t *blob = encode (k, data, len, id, &blen);
  assert_true (blen >= HDR);
  assert_memory_equal (blob, "VBC1", 4);
  assert_int_equal (blob[4], 2);
  assert_int_equal (le32_get (blob + 16), zlib_crc (blob, blen, id));
  bool expect_zstd = zstd < 0 ? (blob[5] & 1) != 0 : zstd == 1;
  assert_int_equal (blob[5], (expect_zstd ? 1 : 0) | (k->encrypted ? 2 : 0));
  assert_int_equal (le32_get (blob + 8), len);
  assert_int_equal (le32_get (blob + 12), blen - HDR);
  if (!expect_zstd)
    assert_int_equal (blen, HDR + len + (k->encrypted ? 28 : 0));
  else
    assert_true (blen < HDR + len + (k->encrypted ? 28 : 0));
  uint8_t *out = malloc (len + 1);
  int r = chunk_decode (k, id, blob, blen, out, len, &err);
  if (r < 0)
    fail_msg ("chunk_decode of %zu bytes: %s", len, err.msg);
  assert_int_equal (r, len);
  assert_memory_equal (out, data, len);
  /* a larger buffer is fine too */
  r = chunk_decode (k, id, blob, blen, out, len + 1, &err);
  assert_int_equal (r, len);
  /* a smaller one is refused */
  if (len > 0)
    expect_damaged (k, id, blob, blen, len - 1, "cap too small");
  free (out);
  free (blob);
}

static void
test_roundtrip_sizes (void **state)
{
  static const size_t sizes[] = { 0, 1, 2, 3, 15, 16, 100, 4095, 4096, 65537,
                                  CHUNK_MIN_SIZE, CHUNK_DEFAULT_SIZE - 1,
                                  CHUNK_DEFAULT_SIZE, 3000000,
                                  CHUNK_MAX_SIZE };
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t len = sizes[i];
    uint8_t *rd = random_data (len, seed + i);
    uint8_t *td = text_data (len, seed + i);
    uint8_t *zd = calloc (1, len ? len : 1);
    for (int e = 0; e < 2; e++) {
      const struct repo_keys *k = e ? &ke : &kp;
      roundtrip (k, rd, len, 0);                       /* random: raw */
      roundtrip (k, td, len, len >= 4096 ? 1 : -1);     /* text */
      roundtrip (k, zd, len, len >= 64 ? 1 : len < 4 ? 0 : -1);  /* zeros */
    }
    free (rd);
    free (td);
    free (zd);
  }
}

static void
test_encode_limits (void **state)
{
  struct vb_error err = { 0 };
  uint8_t id[32] = { 0 }, *blob = (uint8_t *) 1;
  size_t blen = 1;
  uint8_t *d = calloc (1, CHUNK_MAX_SIZE + 1);
  assert_int_equal (chunk_encode (&kp, id, d, CHUNK_MAX_SIZE + 1, 3, &blob,
                                  &blen, &err), -EINVAL);
  assert_null (blob);
  vb_err_clear (&err);
  assert_int_equal (chunk_encode (&kp, id, d, 100, 1000, &blob, &blen, &err),
                    -EINVAL);
  assert_non_null (strstr (err.msg, "compression level"));
  /* negative (fast) levels and the maximum work */
  for (int lvl = -5; lvl <= 19; lvl += 12) {
    uint8_t *td = text_data (200000, seed);
    crypto_chunk_id (&ke, td, 200000, id);
    assert_int_equal (chunk_encode (&ke, id, td, 200000, lvl, &blob, &blen,
                                    &err), 0);
    assert_int_equal (chunk_decode (&ke, id, blob, blen, d, 200000, &err),
                      200000);
    assert_memory_equal (d, td, 200000);
    free (blob);
    free (td);
  }
  free (d);
}

/* Ids: keyed when encrypted; same data gives the same id, but two
 * encryptions of it give different blobs (random nonce). */
static void
test_ids_and_nonces (void **state)
{
  uint8_t a[32], b[32], c[32];
  size_t l1, l2;
  uint8_t *d = text_data (100000, seed);
  uint8_t *b1 = encode (&ke, d, 100000, a, &l1);
  uint8_t *b2 = encode (&ke, d, 100000, b, &l2);
  assert_memory_equal (a, b, 32);
  assert_int_equal (l1, l2);
  assert_memory_not_equal (b1 + HDR, b2 + HDR, 12);       /* nonces */
  assert_memory_not_equal (b1 + HDR + 12, b2 + HDR + 12, 64);
  crypto_chunk_id (&kp, d, 100000, b);
  crypto_chunk_id (&ke2, d, 100000, c);
  assert_memory_not_equal (a, b, 32);
  assert_memory_not_equal (a, c, 32);
  /* unencrypted blobs are deterministic */
  free (b1);
  free (b2);
  b1 = encode (&kp, d, 100000, a, &l1);
  b2 = encode (&kp, d, 100000, b, &l2);
  assert_int_equal (l1, l2);
  assert_memory_equal (b1, b2, l1);
  free (b1);
  free (b2);
  free (d);
}

/* The plaintext never shows in an encrypted blob (and does in a plain
 * one, so the search would find it). */
static void
test_no_plaintext_leak (void **state)
{
  static const char pat[] = "TOP-SECRET-PAYROLL-0042";
  size_t len = 65536, blen;
  uint8_t id[32];
  for (int compressible = 0; compressible < 2; compressible++) {
    uint8_t *d = compressible ? text_data (len, seed) : random_data (len, seed);
    for (size_t off = 0; off + sizeof pat < len; off += 4000)
      memcpy (d + off, pat, sizeof pat - 1);
    uint8_t *b = encode (&kp, d, len, id, &blen);
    if (!compressible)
      assert_non_null (memmem (b, blen, pat, sizeof pat - 1));
    free (b);
    b = encode (&ke, d, len, id, &blen);
    assert_null (memmem (b, blen, pat, sizeof pat - 1));
    assert_null (memmem (b, blen, pat, 8));
    free (b);
    free (d);
  }
}

/* --- damage ----------------------------------------------------------------- */

/* Flip each header byte (several ways, with and without a fixed CRC),
 * payload bytes, truncate, extend: every case fails cleanly. */
static void
damage_all (const struct repo_keys *k, const uint8_t *data, size_t len)
{
  uint8_t id[32];
  size_t blen;
  uint8_t *blob = encode (k, data, len, id, &blen);
  uint8_t *m = malloc (blen + 4096);
  char what[64];

  for (size_t i = 0; i < HDR; i++)
    for (int f = 0; f < 4; f++) {
      static const uint8_t x[] = { 0x01, 0x80, 0xff, 0x10 };
      memcpy (m, blob, blen);
      m[i] ^= x[f];
      snprintf (what, sizeof what, "header byte %zu ^ 0x%02x", i, x[f]);
      expect_damaged (k, id, m, blen, CHUNK_MAX_SIZE, what);
      if (i < 16) {
        fix_crc (m, blen, id);
        snprintf (what, sizeof what, "header byte %zu ^ 0x%02x, CRC fixed",
                  i, x[f]);
        expect_damaged (k, id, m, blen, CHUNK_MAX_SIZE, what);
      }
    }
  /* payload bytes: all of a small blob, a sample of a big one (a smaller
   * sample with VMBACK_TEST_QUICK, set for the sanitizer builds) */
  size_t samples = getenv ("VMBACK_TEST_QUICK") ? 30 : 300;
  size_t step = blen - HDR > 4096 ? (blen - HDR) / samples + 1 : 1;
  for (size_t i = HDR; i < blen; i += step) {
    memcpy (m, blob, blen);
    m[i] ^= 0x01;
    snprintf (what, sizeof what, "payload byte %zu", i);
    expect_damaged (k, id, m, blen, CHUNK_MAX_SIZE, what);
    fix_crc (m, blen, id);
    snprintf (what, sizeof what, "payload byte %zu, CRC fixed", i);
    expect_damaged_or_same (k, id, m, blen, data, len, what);
  }
  /* truncation at every length (sampled for big blobs), with the
   * payload length patched to agree and the CRC fixed too */
  for (size_t l = 0; l < blen; l += (l < 64 || blen - l < 64) ? 1 : step) {
    memcpy (m, blob, blen);
    snprintf (what, sizeof what, "truncated to %zu", l);
    expect_damaged (k, id, m, l, CHUNK_MAX_SIZE, what);
    if (l >= HDR) {
      le32_put (m + 12, (uint32_t) (l - HDR));
      fix_crc (m, l, id);
      snprintf (what, sizeof what, "truncated to %zu, lengths fixed", l);
      expect_damaged (k, id, m, l, CHUNK_MAX_SIZE, what);
    }
  }
  /* extension by 1 and 4096 bytes, raw and with header and CRC fixed */
  for (size_t extra = 1; extra <= 4096; extra *= 4096) {
    memcpy (m, blob, blen);
    memset (m + blen, 0, extra);
    expect_damaged (k, id, m, blen + extra, CHUNK_MAX_SIZE, "extended");
    le32_put (m + 12, (uint32_t) (blen + extra - HDR));
    fix_crc (m, blen + extra, id);
    expect_damaged (k, id, m, blen + extra, CHUNK_MAX_SIZE,
                    "extended, lengths fixed");
  }
  /* huge plain length claims (CRC fixed: refused on the length alone) */
  static const uint32_t claims[] = { CHUNK_MAX_SIZE + 1, 0x7fffffff,
                                     0xffffffff };
  for (size_t i = 0; i < 3; i++) {
    memcpy (m, blob, blen);
    le32_put (m + 8, claims[i]);
    fix_crc (m, blen, id);
    expect_damaged (k, id, m, blen, (size_t) -1, "huge plain length");
  }
  /* another chunk's id */
  uint8_t other[32];
  memcpy (other, id, 32);
  other[31] ^= 1;
  expect_damaged (k, other, blob, blen, CHUNK_MAX_SIZE, "wrong id");
  free (m);
  free (blob);
}

static void
test_damage (void **state)
{
  static const size_t sizes[] = { 1, 100, 5000, CHUNK_DEFAULT_SIZE };
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    uint8_t *rd = random_data (sizes[i], seed + i);
    uint8_t *td = text_data (sizes[i], seed + i);
    damage_all (&kp, rd, sizes[i]);
    damage_all (&kp, td, sizes[i]);
    damage_all (&ke, rd, sizes[i]);
    damage_all (&ke, td, sizes[i]);
    free (rd);
    free (td);
  }
  print_message ("%d payload bit flips left a compressed chunk intact "
                 "(verified by its id)\n", same_count);
}

/* Make an unencrypted version 2 blob a version 1 blob (CRC without id). */
static void
to_v1 (uint8_t *b, size_t len)
{
  b[4] = 1;
  fix_crc (b, len, NULL);
}

/* Expect chunk_decode_data to fail with "CRC mismatch" or, when mismatch
 * is NULL, with a message containing other. */
static void
expect_data_damaged (const struct repo_keys *k, const uint8_t id[32], const uint8_t *blob,
                     size_t blen, size_t n, const char *other)
{
  struct vb_error err = { 0 };
  uint8_t *out = malloc (n);
  assert_int_equal (chunk_decode_data (k, id, blob, blen, out, n, &err), -EBADMSG);
  free (out);
  if (!strstr (err.msg, other ? other : "CRC mismatch"))
    fail_msg ("expected '%s', got '%s'", other ? other : "CRC mismatch", err.msg);
}

/* chunk_decode_data.  Version 2: the CRC, which covers the id, is always
 * checked, so damage to the stored bytes, to the CRC field, or a blob
 * stored under another chunk's name all fail.  Version 1: a blob whose
 * CRC field alone is damaged still gives its chunk (its id proves the
 * content); damage to the stored bytes is a CRC mismatch; another
 * chunk's blob fails the id check. */
static void
test_decode_data (void **state)
{
  const struct repo_keys *keys[] = { &kp, &ke };
  for (int k = 0; k < 2; k++) {
    uint8_t id[32], other[32];
    size_t blen, n = 200000;
    uint8_t *d = text_data (n, seed + 7);
    uint8_t *blob = encode (keys[k], d, n, id, &blen);
    uint8_t *out = malloc (n);
    struct vb_error err = { 0 };
    memcpy (other, id, 32);
    other[0] ^= 0x40;
    assert_int_equal (chunk_decode_data (keys[k], id, blob, blen, out, n, &err), (int) n);
    assert_memory_equal (out, d, n);
    blob[16] ^= 1;                                  /* the CRC field */
    expect_data_damaged (keys[k], id, blob, blen, n, NULL);
    blob[16] ^= 1;
    blob[blen - 40] ^= 0x10;                        /* the stored payload */
    expect_data_damaged (keys[k], id, blob, blen, n, NULL);
    blob[blen - 40] ^= 0x10;
    expect_data_damaged (keys[k], other, blob, blen, n, NULL);

    if (keys[k]->encrypted) {    /* GCM binds the version byte: no v1 of it here */
      free (out);
      free (blob);
      free (d);
      continue;
    }
    to_v1 (blob, blen);
    assert_int_equal (chunk_decode_data (keys[k], id, blob, blen, out, n, &err), (int) n);
    assert_memory_equal (out, d, n);
    assert_int_equal (chunk_decode (keys[k], id, blob, blen, out, n, &err), (int) n);
    blob[16] ^= 1;
    assert_int_equal (chunk_decode_data (keys[k], id, blob, blen, out, n, &err), (int) n);
    assert_int_equal (chunk_decode (keys[k], id, blob, blen, out, n, &err), -EBADMSG);
    blob[16] ^= 1;
    blob[blen - 40] ^= 0x10;
    expect_data_damaged (keys[k], id, blob, blen, n, NULL);
    blob[blen - 40] ^= 0x10;
    expect_data_damaged (keys[k], other, blob, blen, n, "does not match its id");
    free (out);
    free (blob);
    free (d);
  }
}

/* chunk_decode_data_view: an unencrypted raw chunk is read in place
 * (the view points just past the 20-byte header), anything else is
 * decoded into out; both give the chunk, and damage still fails. */
static void
test_decode_view (void **state)
{
  const struct repo_keys *keys[] = { &kp, &ke };
  size_t n = 300000;
  uint8_t *rd = random_data (n, seed + 11), *td = text_data (n, seed + 11);
  uint8_t *out = malloc (n);
  for (int k = 0; k < 2; k++)
    for (int t = 0; t < 2; t++) {
      const uint8_t *d = t ? td : rd, *plain = NULL;
      uint8_t id[32];
      size_t blen;
      uint8_t *blob = encode (keys[k], d, n, id, &blen);
      struct vb_error err = { 0 };
      assert_int_equal (chunk_decode_data_view (keys[k], id, blob, blen, out, n, &plain, &err),
                        (int) n);
      assert_ptr_equal (plain, !keys[k]->encrypted && !t ? blob + HDR : out);
      assert_memory_equal (plain, d, n);
      blob[blen / 2] ^= 4;
      assert_int_equal (chunk_decode_data_view (keys[k], id, blob, blen, out, n, &plain, &err),
                        -EBADMSG);
      free (blob);
    }
  free (out);
  free (rd);
  free (td);
}

/* A wrong key, or a blob of the other kind of repository. */
static void
test_wrong_key (void **state)
{
  uint8_t id[32];
  size_t blen;
  uint8_t *d = text_data (300000, seed);
  uint8_t *blob = encode (&ke, d, 300000, id, &blen);
  uint8_t *out = malloc (300000);
  struct vb_error err = { 0 };
  expect_damaged (&ke2, id, blob, blen, 300000, "wrong key");
  assert_int_equal (chunk_decode (&ke2, id, blob, blen, out, 300000, &err),
                    -EBADMSG);
  assert_non_null (strstr (err.msg, "authentication failed"));
  expect_damaged (&kp, id, blob, blen, 300000, "encrypted blob, plain repo");
  free (blob);
  blob = encode (&kp, d, 300000, id, &blen);
  expect_damaged (&ke, id, blob, blen, 300000, "plain blob, encrypted repo");
  free (blob);
  free (out);
  free (d);
}

/* Build an unencrypted blob around an arbitrary body (flags as given). */
static uint8_t *
craft (uint8_t flags, uint32_t plain_len, const void *body, size_t body_len,
       size_t *blen)
{
  uint8_t *b = malloc (HDR + body_len);
  memcpy (b, "VBC1", 4);
  b[4] = 1;
  b[5] = flags;
  b[6] = b[7] = 0;
  le32_put (b + 8, plain_len);
  le32_put (b + 12, (uint32_t) body_len);
  memcpy (b + HDR, body, body_len);
  fix_crc (b, HDR + body_len, NULL);
  *blen = HDR + body_len;
  return b;
}

/* Zip bombs and lying frames, with a valid CRC: the decoder must stay
 * within the claimed length and fail cleanly. */
static void
test_zip_bomb (void **state)
{
  size_t big = 64u << 20, blen;
  uint8_t *zeros = calloc (1, big);
  size_t zcap = ZSTD_compressBound (big);
  uint8_t *z = malloc (zcap);
  uint8_t id[32], *b, *out = malloc (CHUNK_MAX_SIZE);
  struct vb_error err = { 0 };

  /* 64 MiB of zeros in ~2 KiB, the blob claiming 4000 bytes. */
  size_t zl = ZSTD_compress (z, zcap, zeros, big, 3);
  assert_false (ZSTD_isError (zl));
  print_message ("zip bomb: %zu bytes -> %zu\n", big, zl);
  crypto_chunk_id (&kp, zeros, 4000, id);
  b = craft (1, 4000, z, zl, &blen);
  expect_damaged (&kp, id, b, blen, CHUNK_MAX_SIZE, "bomb, announced size");
  free (b);

  /* the same without a content size in the frame (streaming style) */
  ZSTD_CCtx *cc = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (cc, ZSTD_c_contentSizeFlag, 0);
  zl = ZSTD_compress2 (cc, z, zcap, zeros, big);
  assert_false (ZSTD_isError (zl));
  assert_int_equal (ZSTD_getFrameContentSize (z, zl), ZSTD_CONTENTSIZE_UNKNOWN);
  b = craft (1, 4000, z, zl, &blen);
  expect_damaged (&kp, id, b, blen, CHUNK_MAX_SIZE, "bomb, unknown size");
  free (b);

  /* a frame announcing 4000 bytes that actually holds 100000: patch the
   * announced size (single-segment frame: 1 descriptor byte after the
   * magic, then the content size field) */
  ZSTD_CCtx_setParameter (cc, ZSTD_c_contentSizeFlag, 1);
  zl = ZSTD_compress2 (cc, z, zcap, zeros, 100000);
  assert_false (ZSTD_isError (zl));
  uint8_t fhd = z[4];
  size_t fcs_len = (size_t[]) { 1, 2, 4, 8 }[fhd >> 6];
  assert_true (fhd & 0x20);             /* single segment */
  assert_int_equal (fcs_len, 4);        /* 100000 needs 4 bytes */
  le32_put (z + 5, 4000);
  assert_int_equal (ZSTD_getFrameContentSize (z, zl), 4000);
  b = craft (1, 4000, z, zl, &blen);
  expect_damaged (&kp, id, b, blen, CHUNK_MAX_SIZE, "lying frame header");
  free (b);

  /* two frames: the first is the real chunk, the second extra */
  uint8_t *d = text_data (50000, seed);
  crypto_chunk_id (&kp, d, 50000, id);
  zl = ZSTD_compress (z, zcap, d, 50000, 3);
  size_t zl2 = ZSTD_compress (z + zl, zcap - zl, zeros, 1000, 3);
  b = craft (1, 50000, z, zl + zl2, &blen);
  expect_damaged (&kp, id, b, blen, CHUNK_MAX_SIZE, "two frames");
  free (b);
  /* the real frame alone decodes (sanity of craft) */
  b = craft (1, 50000, z, zl, &blen);
  assert_int_equal (chunk_decode (&kp, id, b, blen, out, 50000, &err), 50000);
  assert_memory_equal (out, d, 50000);
  free (b);
  /* a valid frame of other content with the right size: id mismatch */
  d[100] ^= 1;
  zl = ZSTD_compress (z, zcap, d, 50000, 3);
  b = craft (1, 50000, z, zl, &blen);
  vb_err_clear (&err);
  assert_int_equal (chunk_decode (&kp, id, b, blen, out, 50000, &err),
                    -EBADMSG);
  assert_non_null (strstr (err.msg, "does not match its id"));
  free (b);
  /* garbage claimed as zstd; a "compressed" body not smaller */
  b = craft (1, 50000, d, 1000, &blen);
  expect_damaged (&kp, id, b, blen, CHUNK_MAX_SIZE, "garbage frame");
  free (b);
  b = craft (1, 1000, z, zl, &blen);
  expect_damaged (&kp, id, b, blen, CHUNK_MAX_SIZE, "body not smaller");
  free (b);

  ZSTD_freeCCtx (cc);
  free (d);
  free (out);
  free (z);
  free (zeros);
}

static void
test_chunk_key (void **state)
{
  uint8_t id[32];
  char key[80], hex[65], want[100];
  for (int i = 0; i < 32; i++)
    id[i] = (uint8_t) (0xab + 7 * i);
  chunk_key (id, key, sizeof key);
  hex_encode (id, 32, hex);
  snprintf (want, sizeof want, "chunks/ab/%s", hex);
  assert_string_equal (key, want);
  assert_int_equal (strlen (key), 7 + 3 + 64);
}

/* --- threads and speed ---------------------------------------------------------- */

struct worker {
  const struct repo_keys *k;
  uint64_t seed;
  int failures;
};

/* Encode and decode chunks of mixed content, checking each. */
static void *
worker_main (void *arg)
{
  struct worker *w = arg;
  uint8_t *out = malloc (CHUNK_DEFAULT_SIZE);
  for (int i = 0; i < 12; i++) {
    size_t len = 100000 + (size_t) (w->seed % 7) * 100000;
    uint8_t *d = (i & 1) ? random_data (len, w->seed + (uint64_t) i)
                         : text_data (len, w->seed + (uint64_t) i);
    uint8_t id[32], *blob = NULL;
    size_t blen;
    struct vb_error err = { 0 };
    crypto_chunk_id (w->k, d, len, id);
    if (chunk_encode (w->k, id, d, len, 3, &blob, &blen, &err) != 0
        || chunk_decode (w->k, id, blob, blen, out, CHUNK_DEFAULT_SIZE,
                         &err) != (int) len
        || memcmp (out, d, len) != 0)
      w->failures++;
    free (blob);
    free (d);
  }
  free (out);
  return NULL;
}

static void
test_threads (void **state)
{
  pthread_t t[8];
  struct worker w[8];
  for (int i = 0; i < 8; i++) {
    w[i] = (struct worker) { (i & 1) ? &ke : &kp, seed + 1000 * (uint64_t) i,
                             0 };
    assert_int_equal (pthread_create (&t[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join (t[i], NULL);
    assert_int_equal (w[i].failures, 0);
  }
}

/* MB/s of encode and decode of 1 MiB chunks, next to the bare costs of
 * SHA-256 and zstd -3 (a log line, not asserted). */
static void
test_speed (void **state)
{
  size_t len = CHUNK_DEFAULT_SIZE, blen;
  int n = 24;
  uint8_t *d = text_data (len, seed), *out = malloc (len), id[32], *blob;
  uint8_t *z = malloc (ZSTD_compressBound (len));
  struct vb_error err = { 0 };
  double t0 = now ();
  for (int i = 0; i < n; i++)
    crypto_chunk_id (&kp, d, len, id);
  double t_sha = now () - t0;
  ZSTD_CCtx *cc = ZSTD_createCCtx ();
  t0 = now ();
  size_t zl = 0;
  for (int i = 0; i < n; i++)
    zl = ZSTD_compressCCtx (cc, z, ZSTD_compressBound (len), d, len, 3);
  double t_zstd = now () - t0;
  ZSTD_freeCCtx (cc);
  for (int e = 0; e < 2; e++) {
    const struct repo_keys *k = e ? &ke : &kp;
    crypto_chunk_id (k, d, len, id);
    t0 = now ();
    for (int i = 0; i < n; i++) {
      assert_int_equal (chunk_encode (k, id, d, len, 3, &blob, &blen, &err),
                        0);
      if (i + 1 < n)
        free (blob);
    }
    double t_enc = now () - t0;
    t0 = now ();
    for (int i = 0; i < n; i++)
      assert_int_equal (chunk_decode (k, id, blob, blen, out, len, &err),
                        (int) len);
    double t_dec = now () - t0;
    free (blob);
    double mb = (double) n * (double) len / 1e6;
    print_message ("1 MiB text chunks (%s, %zu -> %zu bytes): id+encode "
                   "%.0f MB/s, decode+verify %.0f MB/s; bare SHA-256 "
                   "%.0f MB/s, bare zstd -3 %.0f MB/s\n",
                   e ? "encrypted" : "plain", len, blen,
                   mb / (t_enc + t_sha), mb / t_dec, mb / t_sha,
                   mb / t_zstd);
  }
  assert_true (zl < len);
  free (z);
  free (d);
  free (out);
}

static int
group_setup (void **state)
{
  struct vb_error err = { 0 };
  const char *s = getenv ("CHUNK_TEST_SEED");
  seed = s ? strtoull (s, NULL, 0) : (uint64_t) time (NULL);
  print_message ("CHUNK_TEST_SEED=%" PRIu64 "\n", seed);
  if (crypto_keys_generate (&kp, false, &err) != 0
      || crypto_keys_generate (&ke, true, &err) != 0
      || crypto_keys_generate (&ke2, true, &err) != 0)
    return -1;
  return 0;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_roundtrip_sizes),
    cmocka_unit_test (test_encode_limits),
    cmocka_unit_test (test_ids_and_nonces),
    cmocka_unit_test (test_no_plaintext_leak),
    cmocka_unit_test (test_damage),
    cmocka_unit_test (test_decode_data),
    cmocka_unit_test (test_decode_view),
    cmocka_unit_test (test_wrong_key),
    cmocka_unit_test (test_zip_bomb),
    cmocka_unit_test (test_chunk_key),
    cmocka_unit_test (test_threads),
    cmocka_unit_test (test_speed),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
