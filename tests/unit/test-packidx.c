/* Unit tests of pack index objects and pack trailers (src/repo/packidx.c,
 * docs/FORMAT-packs.md).
 *
 * The layout is checked against the documented offsets, with the MAC
 * computed by OpenSSL's HMAC() and the trailer CRC by zlib's crc32(), not
 * by the code under test.  Hostile pack indexes are made by patching a
 * good one and re-MACing it (crypto_mac with the repository's key), so
 * each structural check behind the MAC is reached on its own; hostile
 * trailers get their CRC fixed for the same reason. */
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

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include "common/le.h"
#include "repo/repo-int.h"

#define HDR 24u            /* pack index header */
#define PID 32u            /* one pack id */
#define ENT 48u            /* one pack index entry */
#define MAC 32u
#define TENT 44u           /* one trailer entry */
#define FOOT 16u           /* trailer footer: count, CRC, magic */

static struct repo_keys keys;

/* --- helpers ----------------------------------------------------------- */

/* Recompute the trailing MAC of a pack index of len bytes with the
 * repository's own crypto_mac. */
static void
remac (uint8_t *b, size_t len)
{
  crypto_mac (&keys, b, len - MAC, b + len - MAC);
}

/* Fresh random repository keys (as repo_init makes them). */
static int
group_setup (void **state)
{
  (void) state;
  struct vb_error e = { 0 };
  return crypto_keys_generate (&keys, false, &e) == 0 ? 0 : -1;
}

/* A sample pack index: 3 packs, 7 entries with recognizable ids, lengths
 * and offsets (one at the largest blob, one ending at the largest
 * object). */
static void
make_sample (struct packidx *px)
{
  px->npacks = 3;
  px->packs = calloc (3, sizeof *px->packs);
  px->n = 7;
  px->v = calloc (7, sizeof *px->v);
  assert_non_null (px->packs);
  assert_non_null (px->v);
  for (uint32_t p = 0; p < 3; p++)
    for (int j = 0; j < REPO_ID_LEN; j++)
      px->packs[p][j] = (uint8_t) (0xa0 + p * 7 + (uint32_t) j);
  for (uint64_t i = 0; i < 7; i++) {
    struct packidx_entry *e = &px->v[i];
    for (int j = 0; j < REPO_ID_LEN; j++)
      e->id[j] = (uint8_t) (i * 31 + (uint64_t) j + 1);
    e->pack = (uint32_t) (i % 3);
    e->len = (uint32_t) (1000 + i * 77);
    e->off = i * 5000;
  }
  px->v[5].len = CHUNK_BLOB_MAX;
  px->v[5].off = 123;
  px->v[6].len = 4096;
  px->v[6].off = REPO_MAX_OBJECT - 4096;
}

/* Encode the sample; *px keeps the sample for comparisons. */
static void
encode_sample (struct packidx *px, uint8_t **buf, size_t *len)
{
  struct vb_error e = { 0 };
  make_sample (px);
  assert_int_equal (packidx_encode (&keys, px, buf, len, &e), 0);
  assert_int_equal (*len, HDR + 3 * PID + 7 * ENT + MAC);
}

/* Decode buf and expect failure with code, a message naming 'what', and
 * px left zeroed. */
static void
expect_reject (const uint8_t *buf, size_t len, int code, const char *needle)
{
  struct packidx px;
  struct vb_error e = { 0 };
  memset (&px, 0xaa, sizeof px);
  int r = packidx_decode (&keys, buf, len, "packidx/x", &px, &e);
  if (r != -code)
    fail_msg ("decode of %zu bytes gave %d (%s), expected %d", len, r, e.msg, -code);
  assert_int_equal (e.code, code);
  assert_non_null (strstr (e.msg, "'packidx/x'"));
  if (needle && !strstr (e.msg, needle))
    fail_msg ("message '%s' lacks '%s'", e.msg, needle);
  assert_null (px.packs);
  assert_null (px.v);
  assert_int_equal (px.n, 0);
  assert_int_equal (px.npacks, 0);
}

/* --- pack index: round trips and layout ---------------------------------- */

/* Encode then decode gives the same packs and entries. */
static void
test_round_trip (void **state)
{
  (void) state;
  struct packidx px, back;
  uint8_t *buf;
  size_t len;
  struct vb_error e = { 0 };
  encode_sample (&px, &buf, &len);
  assert_int_equal (packidx_decode (&keys, buf, len, "r", &back, &e), 0);
  assert_int_equal (back.npacks, 3);
  assert_int_equal (back.n, 7);
  assert_memory_equal (back.packs, px.packs, 3 * PID);
  for (uint64_t i = 0; i < 7; i++) {
    assert_memory_equal (back.v[i].id, px.v[i].id, REPO_ID_LEN);
    assert_int_equal (back.v[i].pack, px.v[i].pack);
    assert_int_equal (back.v[i].len, px.v[i].len);
    assert_int_equal (back.v[i].off, px.v[i].off);
  }
  packidx_free (&back);
  assert_null (back.packs);
  assert_null (back.v);
  packidx_free (&back);                          /* twice is harmless */
  packidx_free (&px);
  free (buf);
}

/* The bytes are exactly as documented; the MAC is HMAC-SHA-256 under
 * mac_key, checked with OpenSSL directly. */
static void
test_layout (void **state)
{
  (void) state;
  struct packidx px;
  uint8_t *buf;
  size_t len;
  encode_sample (&px, &buf, &len);
  assert_memory_equal (buf, "VMBPKIX1", 8);
  assert_int_equal (le32_get (buf + 8), 3);
  assert_int_equal (le32_get (buf + 12), 0);
  assert_int_equal (le64_get (buf + 16), 7);
  for (uint32_t p = 0; p < 3; p++)
    assert_memory_equal (buf + HDR + p * PID, px.packs[p], PID);
  for (uint64_t i = 0; i < 7; i++) {
    const uint8_t *q = buf + HDR + 3 * PID + i * ENT;
    assert_memory_equal (q, px.v[i].id, 32);
    assert_int_equal (le32_get (q + 32), px.v[i].pack);
    assert_int_equal (le32_get (q + 36), px.v[i].len);
    assert_int_equal (le64_get (q + 40), px.v[i].off);
  }
  uint8_t mac[32];
  unsigned int ml = 32;
  assert_non_null (HMAC (EVP_sha256 (), keys.mac_key, 32, buf, len - MAC, mac, &ml));
  assert_memory_equal (buf + len - MAC, mac, 32);
  packidx_free (&px);
  free (buf);
}

/* No packs and no entries: header and MAC only, and it decodes. */
static void
test_empty (void **state)
{
  (void) state;
  struct packidx px = { 0 }, back;
  uint8_t *buf;
  size_t len;
  struct vb_error e = { 0 };
  assert_int_equal (packidx_encode (&keys, &px, &buf, &len, &e), 0);
  assert_int_equal (len, HDR + MAC);
  assert_int_equal (packidx_decode (&keys, buf, len, "e", &back, &e), 0);
  assert_int_equal (back.npacks, 0);
  assert_int_equal (back.n, 0);
  packidx_free (&back);
  free (buf);
}

/* An index too large for one object is refused before anything is
 * allocated or written, also for counts whose byte size overflows. */
static void
test_encode_too_large (void **state)
{
  (void) state;
  static const uint64_t ns[] = { REPO_MAX_OBJECT / ENT, UINT64_C (1) << 32,
                                 UINT64_MAX / ENT + 1, UINT64_MAX / 3, UINT64_MAX };
  for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
    struct packidx px = { .npacks = 1, .n = ns[i] };   /* v is NULL: never read */
    uint8_t *buf = (uint8_t *) &px;
    size_t len = 0;
    struct vb_error e = { 0 };
    assert_int_equal (packidx_encode (&keys, &px, &buf, &len, &e), -EFBIG);
    assert_null (buf);
  }
}

/* --- pack index: damage -------------------------------------------------- */

/* Another magic is "not a pack index", even with a valid MAC. */
static void
test_wrong_magic (void **state)
{
  (void) state;
  struct packidx px;
  uint8_t *buf;
  size_t len;
  encode_sample (&px, &buf, &len);
  static const char *bad[] = { "VMBPKIX2", "VMBPACK1", "vmbpkix1", "VBIX\1\0\0\0" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memcpy (buf, bad[i], 8);
    remac (buf, len);
    expect_reject (buf, len, EBADMSG, "not a pack index");
  }
  packidx_free (&px);
  free (buf);
}

/* Every truncation fails cleanly, and so does trailing garbage. */
static void
test_truncated (void **state)
{
  (void) state;
  struct packidx px;
  uint8_t *buf;
  size_t len;
  encode_sample (&px, &buf, &len);
  for (size_t l = 0; l < len; l++) {
    /* a copy of exactly l bytes, so ASan sees any read past it */
    uint8_t *t = malloc (l ? l : 1);
    assert_non_null (t);
    memcpy (t, buf, l);
    expect_reject (t, l, EBADMSG, NULL);
    free (t);
  }
  uint8_t *big = calloc (1, len + 48);
  assert_non_null (big);
  memcpy (big, buf, len);
  expect_reject (big, len + 1, EBADMSG, "authentication failed");
  expect_reject (big, len + 48, EBADMSG, "authentication failed");
  free (big);
  packidx_free (&px);
  free (buf);
}

/* Every single-byte change (three patterns per byte) fails the MAC or
 * the magic. */
static void
test_every_byte_flip (void **state)
{
  (void) state;
  struct packidx px, back;
  uint8_t *buf;
  size_t len;
  struct vb_error e = { 0 };
  encode_sample (&px, &buf, &len);
  static const uint8_t pats[] = { 0x01, 0x80, 0xff };
  for (size_t i = 0; i < len; i++)
    for (size_t p = 0; p < sizeof pats; p++) {
      buf[i] ^= pats[p];
      expect_reject (buf, len, EBADMSG, i < 8 ? "not a pack index" : "authentication");
      buf[i] ^= pats[p];
    }
  assert_int_equal (packidx_decode (&keys, buf, len, "f", &back, &e), 0);
  packidx_free (&back);
  packidx_free (&px);
  free (buf);
}

/* An index of another repository (another mac_key) is refused. */
static void
test_wrong_key (void **state)
{
  (void) state;
  struct packidx px, back;
  uint8_t *buf;
  size_t len;
  struct vb_error e = { 0 };
  encode_sample (&px, &buf, &len);
  struct repo_keys other;
  assert_int_equal (crypto_keys_generate (&other, false, &e), 0);
  assert_int_equal (packidx_decode (&other, buf, len, "packidx/x", &back, &e), -EBADMSG);
  assert_non_null (strstr (e.msg, "not of this repository"));
  assert_null (back.v);
  packidx_free (&px);
  free (buf);
}

/* Patch field f of entry i of the sample (f: 0 pack, 1 len, 2 off) to v,
 * re-MAC and expect the entry to be called impossible. */
static void
expect_bad_entry (uint64_t i, int f, uint64_t v)
{
  struct packidx px;
  uint8_t *buf;
  size_t len;
  encode_sample (&px, &buf, &len);
  uint8_t *q = buf + HDR + 3 * PID + i * ENT;
  if (f == 0)
    le32_put (q + 32, (uint32_t) v);
  else if (f == 1)
    le32_put (q + 36, (uint32_t) v);
  else
    le64_put (q + 40, v);
  remac (buf, len);
  char needle[32];
  snprintf (needle, sizeof needle, "entry %" PRIu64 " ", i);
  expect_reject (buf, len, EBADMSG, needle);
  packidx_free (&px);
  free (buf);
}

/* Each entry check on its own, behind a valid MAC. */
static void
test_bad_entries (void **state)
{
  (void) state;
  /* pack number out of range: npacks, beyond, the largest */
  expect_bad_entry (0, 0, 3);
  expect_bad_entry (4, 0, 4);
  expect_bad_entry (6, 0, UINT32_MAX);
  /* length 0 and over the largest blob */
  expect_bad_entry (1, 1, 0);
  expect_bad_entry (2, 1, CHUNK_BLOB_MAX + 1);
  expect_bad_entry (3, 1, UINT32_MAX);
  /* offset + length past the largest object, including wrap-around */
  expect_bad_entry (6, 2, REPO_MAX_OBJECT - 4096 + 1);
  expect_bad_entry (0, 2, REPO_MAX_OBJECT);
  expect_bad_entry (5, 2, REPO_MAX_OBJECT - CHUNK_BLOB_MAX + 1);
  expect_bad_entry (1, 2, UINT64_MAX);
  expect_bad_entry (2, 2, UINT64_MAX - 500);
  expect_bad_entry (3, 2, UINT64_C (1) << 63);
}

/* The sample with header fields np, reserved and n patched and the buffer
 * resized to len (zero-filled past the sample), re-MACed; expect it to be
 * refused as not filling its bytes. */
static void
expect_bad_counts (uint32_t np, uint32_t reserved, uint64_t n, size_t newlen)
{
  struct packidx px;
  uint8_t *buf;
  size_t len;
  encode_sample (&px, &buf, &len);
  uint8_t *b = calloc (1, newlen);
  assert_non_null (b);
  memcpy (b, buf, newlen < len - MAC ? newlen : len - MAC);
  le32_put (b + 8, np);
  le32_put (b + 12, reserved);
  le64_put (b + 16, n);
  remac (b, newlen);
  expect_reject (b, newlen, EBADMSG, "do not fill");
  free (b);
  packidx_free (&px);
  free (buf);
}

/* Counts that disagree with the length, behind a valid MAC. */
static void
test_bad_counts (void **state)
{
  (void) state;
  size_t len = HDR + 3 * PID + 7 * ENT + MAC;
  /* sanity: the unchanged counts pass through the same path */
  {
    struct packidx px, back;
    uint8_t *buf;
    size_t l;
    struct vb_error e = { 0 };
    encode_sample (&px, &buf, &l);
    remac (buf, l);
    assert_int_equal (packidx_decode (&keys, buf, l, "s", &back, &e), 0);
    packidx_free (&back);
    packidx_free (&px);
    free (buf);
  }
  expect_bad_counts (4, 0, 7, len);            /* one pack more */
  expect_bad_counts (2, 0, 7, len);            /* one pack less */
  expect_bad_counts (3, 0, 8, len);            /* one entry more */
  expect_bad_counts (3, 0, 6, len);            /* one entry less */
  expect_bad_counts (3, 0, 0, len);
  expect_bad_counts (0, 0, 0, len);
  expect_bad_counts (3, 1, 7, len);            /* reserved not 0 */
  expect_bad_counts (3, 0x80000000u, 7, len);
  /* high bits: 2^32 + 7 entries must not pass for 7 */
  expect_bad_counts (3, 0, (UINT64_C (1) << 32) + 7, len);
  expect_bad_counts (3, 0, UINT64_MAX, len);
  expect_bad_counts (UINT32_MAX, 0, 7, len);
  expect_bad_counts (UINT32_MAX, 0, UINT64_MAX, len);
  /* counts that multiply to wrap around 2^64 */
  expect_bad_counts (3, 0, UINT64_MAX / ENT + 1, len);
  /* 6 packs and 5 entries take as many bytes as 3 packs and 7 entries
   * (6 * 32 + 5 * 48 = 3 * 32 + 7 * 48): the length check cannot tell,
   * only the MAC binds the counts.  Here the 5 entries read are the
   * sample's entries 2 to 6, all valid, so it decodes -- as the format
   * says, a split consistent with the length is structurally sound */
  {
    struct packidx px, back;
    uint8_t *buf;
    size_t l;
    struct vb_error e = { 0 };
    encode_sample (&px, &buf, &l);
    le32_put (buf + 8, 6);
    le64_put (buf + 16, 5);
    remac (buf, l);
    assert_int_equal (packidx_decode (&keys, buf, l, "packidx/x", &back, &e), 0);
    assert_int_equal (back.npacks, 6);
    assert_int_equal (back.n, 5);
    for (uint64_t i = 0; i < 5; i++) {
      assert_memory_equal (back.v[i].id, px.v[i + 2].id, REPO_ID_LEN);
      assert_int_equal (back.v[i].off, px.v[i + 2].off);
    }
    packidx_free (&back);
    packidx_free (&px);
    free (buf);
  }
  /* a buffer of header + MAC claiming entries */
  expect_bad_counts (0, 0, 1, HDR + MAC);
  expect_bad_counts (1, 0, 0, HDR + MAC);
  /* header, one extra zero id and MAC, claiming nothing */
  expect_bad_counts (0, 0, 0, HDR + PID + MAC);
}

/* --- pack trailers ---------------------------------------------------------- */

/* A pack of n blobs of recognizable bytes, each entry's offset and length
 * in v (pack numbers set to 9 to check they are ignored), then the
 * trailer; *len is the pack's size. */
static uint8_t *
make_pack (size_t n, struct packidx_entry *v, size_t *len)
{
  size_t data = 0;
  for (size_t i = 0; i < n; i++) {
    for (int j = 0; j < REPO_ID_LEN; j++)
      v[i].id[j] = (uint8_t) (i * 13 + (size_t) j + 5);
    v[i].pack = 9;
    v[i].len = (uint32_t) (100 + i * 31);
    v[i].off = data;
    data += v[i].len;
  }
  *len = data + pack_trailer_size (n);
  uint8_t *p = malloc (*len);
  assert_non_null (p);
  for (size_t i = 0; i < data; i++)
    p[i] = (uint8_t) (i * 7);
  pack_trailer_write (v, n, p + data);
  return p;
}

/* Read a pack's trailer and expect failure with code and needle, and no
 * entries returned. */
static void
expect_trailer_reject (const uint8_t *pack, size_t len, const char *needle)
{
  static struct packidx_entry dummy;
  struct packidx_entry *v = &dummy;     /* must come back NULL */
  size_t n = 77;
  struct vb_error e = { 0 };
  int r = pack_trailer_read (pack, len, "packs/ab/x", &v, &n, &e);
  if (r != -EBADMSG)
    fail_msg ("trailer of %zu bytes gave %d (%s)", len, r, e.msg);
  assert_non_null (strstr (e.msg, "'packs/ab/x'"));
  if (needle && !strstr (e.msg, needle))
    fail_msg ("message '%s' lacks '%s'", e.msg, needle);
  assert_null (v);
  assert_int_equal (n, 0);
}

/* Fix the CRC of a pack's trailer of n entries. */
static void
fix_crc (uint8_t *pack, size_t len, size_t n)
{
  uint8_t *f = pack + len - FOOT;
  le32_put (f + 4, (uint32_t) crc32 (0, f - n * TENT, (uInt) (n * TENT)));
}

/* Write then read back; the bytes are as documented. */
static void
test_trailer_round_trip (void **state)
{
  (void) state;
  struct packidx_entry v[5];
  size_t len;
  uint8_t *p = make_pack (5, v, &len);
  assert_int_equal (pack_trailer_size (5), 5 * TENT + FOOT);
  assert_int_equal (pack_trailer_size (0), FOOT);
  /* layout */
  const uint8_t *t = p + len - pack_trailer_size (5);
  for (size_t i = 0; i < 5; i++) {
    assert_memory_equal (t + i * TENT, v[i].id, 32);
    assert_int_equal (le64_get (t + i * TENT + 32), v[i].off);
    assert_int_equal (le32_get (t + i * TENT + 40), v[i].len);
  }
  const uint8_t *f = p + len - FOOT;
  assert_int_equal (le32_get (f), 5);
  assert_int_equal (le32_get (f + 4), (uint32_t) crc32 (0, t, 5 * TENT));
  assert_memory_equal (f + 8, "VMBPACK1", 8);
  /* read back */
  struct packidx_entry *back;
  size_t n;
  struct vb_error e = { 0 };
  assert_int_equal (pack_trailer_read (p, len, "p", &back, &n, &e), 0);
  assert_int_equal (n, 5);
  for (size_t i = 0; i < 5; i++) {
    assert_memory_equal (back[i].id, v[i].id, REPO_ID_LEN);
    assert_int_equal (back[i].off, v[i].off);
    assert_int_equal (back[i].len, v[i].len);
    assert_int_equal (back[i].pack, 0);
  }
  free (back);
  free (p);

  /* an empty pack: the footer alone */
  uint8_t empty[FOOT];
  pack_trailer_write (NULL, 0, empty);
  assert_int_equal (pack_trailer_read (empty, FOOT, "p", &back, &n, &e), 0);
  assert_int_equal (n, 0);
  free (back);
}

/* No magic, and every length from 0 to len - 1, fail cleanly. */
static void
test_trailer_no_magic (void **state)
{
  (void) state;
  struct packidx_entry v[3];
  size_t len;
  uint8_t *p = make_pack (3, v, &len);
  p[len - 1] ^= 1;
  expect_trailer_reject (p, len, "no pack trailer");
  p[len - 1] ^= 1;
  p[len - 8] = 'v';
  expect_trailer_reject (p, len, "no pack trailer");
  p[len - 8] = 'V';
  for (size_t l = 0; l < len; l++) {
    uint8_t *t = malloc (l ? l : 1);
    assert_non_null (t);
    memcpy (t, p, l);
    expect_trailer_reject (t, l, NULL);
    free (t);
  }
  free (p);
}

/* A changed entry or count is a CRC mismatch. */
static void
test_trailer_crc (void **state)
{
  (void) state;
  struct packidx_entry v[3];
  size_t len;
  uint8_t *p = make_pack (3, v, &len);
  size_t tstart = len - pack_trailer_size (3);
  for (size_t i = tstart; i < len - FOOT; i++) {
    p[i] ^= 0x10;
    expect_trailer_reject (p, len, "CRC mismatch");
    p[i] ^= 0x10;
  }
  /* the CRC itself */
  p[len - FOOT + 4] ^= 1;
  expect_trailer_reject (p, len, "CRC mismatch");
  p[len - FOOT + 4] ^= 1;
  /* one blob fewer or more claimed: the CRC covers other bytes */
  le32_put (p + len - FOOT, 2);
  expect_trailer_reject (p, len, "CRC mismatch");
  le32_put (p + len - FOOT, 4);
  expect_trailer_reject (p, len, "CRC mismatch");
  free (p);
}

/* Counts larger than the pack could hold are refused before the CRC is
 * computed (which would read before the buffer). */
static void
test_trailer_count_too_large (void **state)
{
  (void) state;
  struct packidx_entry v[3];
  size_t len;
  uint8_t *p = make_pack (3, v, &len);
  uint32_t most = (uint32_t) ((len - FOOT) / TENT);
  static const uint32_t extra[] = { 1, 2, 1000, 1u << 28 };
  for (size_t i = 0; i < sizeof extra / sizeof *extra; i++) {
    le32_put (p + len - FOOT, most + extra[i]);
    expect_trailer_reject (p, len, "claims");
  }
  le32_put (p + len - FOOT, UINT32_MAX);
  expect_trailer_reject (p, len, "claims");
  /* a footer alone claiming one blob */
  uint8_t f[FOOT];
  pack_trailer_write (NULL, 0, f);
  le32_put (f, 1);
  expect_trailer_reject (f, FOOT, "claims");
  free (p);
}

/* Patch field f of trailer entry i (0 off, 1 len) to val, fix the CRC,
 * expect "lies outside the pack". */
static void
expect_bad_blob (size_t i, int f, uint64_t val)
{
  struct packidx_entry v[3];
  size_t len;
  uint8_t *p = make_pack (3, v, &len);
  uint8_t *q = p + len - pack_trailer_size (3) + i * TENT;
  if (f == 0)
    le64_put (q + 32, val);
  else
    le32_put (q + 40, (uint32_t) val);
  fix_crc (p, len, 3);
  expect_trailer_reject (p, len, "lies outside the pack");
  free (p);
}

/* Blobs outside the data area (or of impossible length) are refused. */
static void
test_trailer_blob_outside (void **state)
{
  (void) state;
  struct packidx_entry v[3];
  size_t len;
  uint8_t *p = make_pack (3, v, &len);
  uint64_t data_end = len - pack_trailer_size (3);
  free (p);
  /* the last blob, one byte into the trailer */
  expect_bad_blob (2, 1, v[2].len + 1);
  expect_bad_blob (2, 0, v[2].off + 1);
  /* starting at or past the trailer */
  expect_bad_blob (0, 0, data_end);
  expect_bad_blob (0, 0, data_end + 1);
  expect_bad_blob (1, 0, len);
  /* offsets that wrap around */
  expect_bad_blob (1, 0, UINT64_MAX);
  expect_bad_blob (1, 0, UINT64_MAX - 50);
  /* lengths: 0, over the largest blob, over the data */
  expect_bad_blob (0, 1, 0);
  expect_bad_blob (0, 1, CHUNK_BLOB_MAX + 1);
  expect_bad_blob (0, 1, UINT32_MAX);
  expect_bad_blob (0, 1, data_end + 1);
  /* sanity: a blob ending exactly at the trailer is fine */
  p = make_pack (3, v, &len);
  uint8_t *q = p + len - pack_trailer_size (3);
  le64_put (q + 32, 0);
  le32_put (q + 40, (uint32_t) data_end);
  fix_crc (p, len, 3);
  struct packidx_entry *back;
  size_t n;
  struct vb_error e = { 0 };
  assert_int_equal (pack_trailer_read (p, len, "p", &back, &n, &e), 0);
  assert_int_equal (back[0].len, data_end);
  free (back);
  free (p);
}

/* Run every test with one set of repository keys. */
int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_layout),
    cmocka_unit_test (test_empty),
    cmocka_unit_test (test_encode_too_large),
    cmocka_unit_test (test_wrong_magic),
    cmocka_unit_test (test_truncated),
    cmocka_unit_test (test_every_byte_flip),
    cmocka_unit_test (test_wrong_key),
    cmocka_unit_test (test_bad_entries),
    cmocka_unit_test (test_bad_counts),
    cmocka_unit_test (test_trailer_round_trip),
    cmocka_unit_test (test_trailer_no_magic),
    cmocka_unit_test (test_trailer_crc),
    cmocka_unit_test (test_trailer_count_too_large),
    cmocka_unit_test (test_trailer_blob_outside),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
