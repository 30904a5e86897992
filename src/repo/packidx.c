/* vmback repository: pack index objects and pack trailers
 * (docs/FORMAT-packs.md).
 *
 * A packed repository keeps many chunk blobs in one object, a pack
 * ("packs/ab/<pack id>").  Pack index objects ("packidx/<hex>") say
 * where each chunk is: its pack, offset and length.  Every pack also ends
 * in a trailer listing its own blobs, so that the pack index could be
 * rebuilt from the packs alone.
 *
 * Pack index layout (little-endian):
 *   0   8  magic "VMBPKIX1"
 *   8   4  number of packs P
 *   12  4  0
 *   16  8  number of entries N
 *   24     P pack ids of 32 bytes
 *          N entries of 48 bytes: chunk id (32), pack number (4, < P),
 *          blob length (4), offset in the pack (8)
 *   end-32 HMAC-SHA-256 (mac_key) of everything before
 *
 * Pack trailer, after the blobs:
 *          N entries of 44 bytes: chunk id (32), offset (8), length (4)
 *          N (4), CRC-32 of the entries (4), magic "VMBPACK1" (8)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

#include "common/le.h"
#include "repo-int.h"

#define PIDX_MAGIC "VMBPKIX1"
#define PIDX_HEADER 24u
#define PIDX_ENTRY 48u
#define PIDX_MAC 32u
#define PACK_MAGIC "VMBPACK1"
#define PACK_TENTRY 44u
#define PACK_FOOTER 16u

/* Release a decoded or built pack index. */
void
packidx_free (struct packidx *px)
{
  free (px->packs);
  free (px->v);
  memset (px, 0, sizeof *px);
}

/* Serialize px with its trailing HMAC into a malloc'd buffer. */
int
packidx_encode (const struct repo_keys *k, const struct packidx *px, uint8_t **out,
                size_t *len, struct vb_error *err)
{
  *out = NULL;
  /* n bounded first: n * PIDX_ENTRY must not wrap around */
  uint64_t size = PIDX_HEADER + (uint64_t) px->npacks * REPO_ID_LEN
                  + (px->n > REPO_MAX_OBJECT ? REPO_MAX_OBJECT : px->n) * (uint64_t) PIDX_ENTRY
                  + PIDX_MAC;
  if (size > REPO_MAX_OBJECT)
    return vb_err (err, EFBIG, "pack index of %" PRIu64 " chunks is too large", px->n);
  uint8_t *b = malloc ((size_t) size);
  if (!b)
    return vb_errno (err, ENOMEM, "pack index");
  memcpy (b, PIDX_MAGIC, 8);
  le32_put (b + 8, px->npacks);
  le32_put (b + 12, 0);
  le64_put (b + 16, px->n);
  uint8_t *p = b + PIDX_HEADER;
  for (uint32_t i = 0; i < px->npacks; i++, p += REPO_ID_LEN)
    memcpy (p, px->packs[i], REPO_ID_LEN);
  for (uint64_t i = 0; i < px->n; i++, p += PIDX_ENTRY) {
    const struct packidx_entry *e = &px->v[i];
    memcpy (p, e->id, REPO_ID_LEN);
    le32_put (p + 32, e->pack);
    le32_put (p + 36, e->len);
    le64_put (p + 40, e->off);
  }
  crypto_mac (k, b, (size_t) size - PIDX_MAC, p);
  *out = b;
  *len = (size_t) size;
  return 0;
}

/* Parse and authenticate a pack index (what names it in errors). */
int
packidx_decode (const struct repo_keys *k, const uint8_t *buf, size_t len,
                const char *what, struct packidx *px, struct vb_error *err)
{
  memset (px, 0, sizeof *px);
  if (len < PIDX_HEADER + PIDX_MAC || memcmp (buf, PIDX_MAGIC, 8) != 0)
    return vb_err (err, EBADMSG, "pack index '%s' is damaged: not a pack index", what);
  uint8_t mac[32];
  crypto_mac (k, buf, len - PIDX_MAC, mac);
  if (!crypto_equal (mac, buf + len - PIDX_MAC, PIDX_MAC))
    return vb_err (err, EBADMSG, "pack index '%s' is damaged or not of this "
                   "repository (authentication failed)", what);
  uint32_t np = le32_get (buf + 8);
  uint64_t n = le64_get (buf + 16);
  /* sizes from the object itself: checked against its length before use */
  if (le32_get (buf + 12) != 0 || n > len / PIDX_ENTRY || np > len / REPO_ID_LEN
      || PIDX_HEADER + (uint64_t) np * REPO_ID_LEN + n * PIDX_ENTRY + PIDX_MAC != len)
    return vb_err (err, EBADMSG, "pack index '%s' is damaged: %" PRIu32 " packs and "
                   "%" PRIu64 " entries do not fill its %zu bytes", what, np, n, len);
  px->packs = malloc ((np ? np : 1) * sizeof *px->packs);
  px->v = malloc ((n ? n : 1) * sizeof *px->v);
  if (!px->packs || !px->v) {
    packidx_free (px);
    return vb_errno (err, ENOMEM, "pack index '%s'", what);
  }
  px->npacks = np;
  px->n = n;
  const uint8_t *p = buf + PIDX_HEADER;
  for (uint32_t i = 0; i < np; i++, p += REPO_ID_LEN)
    memcpy (px->packs[i], p, REPO_ID_LEN);
  for (uint64_t i = 0; i < n; i++, p += PIDX_ENTRY) {
    struct packidx_entry *e = &px->v[i];
    memcpy (e->id, p, REPO_ID_LEN);
    e->pack = le32_get (p + 32);
    e->len = le32_get (p + 36);
    e->off = le64_get (p + 40);
    if (e->pack >= np || e->len == 0 || e->len > CHUNK_BLOB_MAX
        || e->off > REPO_MAX_OBJECT - e->len) {
      packidx_free (px);
      return vb_err (err, EBADMSG, "pack index '%s' is damaged: entry %" PRIu64
                     " (pack %" PRIu32 ", %" PRIu64 "+%" PRIu32 ") is impossible",
                     what, i, le32_get (p + 32), le64_get (p + 40), le32_get (p + 36));
    }
  }
  return 0;
}

/* Bytes the trailer of a pack of n blobs takes. */
size_t
pack_trailer_size (size_t n)
{
  return n * PACK_TENTRY + PACK_FOOTER;
}

/* Write the trailer of a pack's n entries (their pack numbers unused) at
 * out, which has pack_trailer_size (n) bytes. */
void
pack_trailer_write (const struct packidx_entry *v, size_t n, uint8_t *out)
{
  uint8_t *p = out;
  for (size_t i = 0; i < n; i++, p += PACK_TENTRY) {
    memcpy (p, v[i].id, REPO_ID_LEN);
    le64_put (p + 32, v[i].off);
    le32_put (p + 40, v[i].len);
  }
  le32_put (p, (uint32_t) n);
  le32_put (p + 4, (uint32_t) libdeflate_crc32 (0, out, n * PACK_TENTRY));
  memcpy (p + 8, PACK_MAGIC, 8);
}

/* Parse the trailer at the end of a whole pack of len bytes into a
 * malloc'd array of *n entries (pack numbers 0); every blob must lie in
 * the pack before the trailer. */
int
pack_trailer_read (const uint8_t *pack, size_t len, const char *what,
                   struct packidx_entry **out, size_t *n, struct vb_error *err)
{
  *out = NULL;
  *n = 0;
  if (len < PACK_FOOTER || memcmp (pack + len - 8, PACK_MAGIC, 8) != 0)
    return vb_err (err, EBADMSG, "pack '%s' is damaged: no pack trailer", what);
  const uint8_t *f = pack + len - PACK_FOOTER;
  uint64_t cnt = le32_get (f);
  if (cnt > (len - PACK_FOOTER) / PACK_TENTRY)
    return vb_err (err, EBADMSG, "pack '%s' is damaged: its trailer claims %" PRIu64
                   " blobs", what, cnt);
  size_t tsize = (size_t) cnt * PACK_TENTRY;
  const uint8_t *t = f - tsize;
  if ((uint32_t) libdeflate_crc32 (0, t, tsize) != le32_get (f + 4))
    return vb_err (err, EBADMSG, "pack '%s' is damaged: trailer CRC mismatch", what);
  struct packidx_entry *v = malloc ((cnt ? cnt : 1) * sizeof *v);
  if (!v)
    return vb_errno (err, ENOMEM, "pack '%s'", what);
  uint64_t data_end = len - pack_trailer_size ((size_t) cnt);
  for (size_t i = 0; i < cnt; i++, t += PACK_TENTRY) {
    memcpy (v[i].id, t, REPO_ID_LEN);
    v[i].off = le64_get (t + 32);
    v[i].len = le32_get (t + 40);
    v[i].pack = 0;
    if (v[i].len == 0 || v[i].len > CHUNK_BLOB_MAX || v[i].off > data_end
        || v[i].len > data_end - v[i].off) {
      free (v);
      return vb_err (err, EBADMSG, "pack '%s' is damaged: blob %zu of its trailer "
                     "lies outside the pack", what, i);
    }
  }
  *out = v;
  *n = (size_t) cnt;
  return 0;
}
