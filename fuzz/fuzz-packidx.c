/* Fuzz target: pack index objects and pack trailers (packidx.c).  Each
 * input is decoded as a pack index as it is, then again with its trailing
 * HMAC recomputed with the fuzz key, so mutations of the counts and
 * entries reach the checks behind the MAC; a decoded index must satisfy
 * every documented bound and encode back to the same bytes.  The same
 * input is read as a whole pack, as it is and with its trailer's magic
 * and CRC fixed; every blob a trailer yields must lie in the data area, and
 * writing the entries again must give the same trailer bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

#include "fuzz-repo.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Decode buf as a pack index; check and round-trip what decodes. */
static void
index_one (const struct repo_keys *k, const uint8_t *buf, size_t len)
{
  struct packidx px;
  struct vb_error e = { 0 };
  if (packidx_decode (k, buf, len, "fuzz", &px, &e) < 0) {
    if (px.packs != NULL || px.v != NULL || px.n != 0 || px.npacks != 0 || e.code == 0)
      abort ();                     /* failure must leave px zeroed */
    return;
  }
  for (uint64_t i = 0; i < px.n; i++) {
    const struct packidx_entry *x = &px.v[i];
    if (x->pack >= px.npacks || x->len == 0 || x->len > CHUNK_BLOB_MAX
        || x->off + x->len > REPO_MAX_OBJECT)
      abort ();
  }
  uint8_t *out;
  size_t olen;
  struct vb_error e2 = { 0 };
  if (packidx_encode (k, &px, &out, &olen, &e2) < 0)
    abort ();
  if (olen != len || memcmp (out, buf, len) != 0)
    abort ();
  free (out);
  packidx_free (&px);
}

/* Read buf as a whole pack; check and rewrite the trailer it yields. */
static void
pack_one (const uint8_t *buf, size_t len)
{
  struct packidx_entry *v;
  size_t n;
  struct vb_error e = { 0 };
  if (pack_trailer_read (buf, len, "fuzz", &v, &n, &e) < 0) {
    if (v != NULL || n != 0 || e.code == 0)
      abort ();
    return;
  }
  size_t ts = pack_trailer_size (n);
  if (ts > len)
    abort ();
  uint64_t data_end = len - ts;
  for (size_t i = 0; i < n; i++)
    if (v[i].pack != 0 || v[i].len == 0 || v[i].len > CHUNK_BLOB_MAX
        || v[i].off > data_end || v[i].len > data_end - v[i].off)
      abort ();
  uint8_t *t = malloc (ts);
  if (!t)
    abort ();
  pack_trailer_write (v, n, t);
  if (memcmp (t, buf + data_end, ts) != 0)
    abort ();
  free (t);
  free (v);
}

/* Decode as is, then with the MAC (index) or the CRC (pack) fixed. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct repo_keys k;
  fuzz_repo_keys (&k, false);
  index_one (&k, data, size);
  pack_one (data, size);
  if (size < 32)
    return 0;
  uint8_t *b = malloc (size);
  if (!b)
    abort ();
  memcpy (b, data, size);
  crypto_mac (&k, b, size - 32, b + size - 32);
  index_one (&k, b, size);
  /* the trailer's magic forced and its CRC over the entries its count
   * claims, when they fit */
  memcpy (b, data, size);
  memcpy (b + size - 8, "VMBPACK1", 8);
  uint8_t *f = b + size - 16;
  uint64_t cnt = (uint64_t) f[0] | (uint64_t) f[1] << 8 | (uint64_t) f[2] << 16
                 | (uint64_t) f[3] << 24;
  if (cnt <= (size - 16) / 44) {
    uint32_t crc = (uint32_t) libdeflate_crc32 (0, f - cnt * 44, (size_t) cnt * 44);
    for (int i = 0; i < 4; i++)
      f[4 + i] = (uint8_t) (crc >> (8 * i));
    pack_one (b, size);
  }
  free (b);
  return 0;
}
