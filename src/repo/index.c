/* vmback repository: a disk's index, the list of its chunk ids in one
 * point (docs/FORMAT-index-manifest.md).
 *
 * Encoded layout, all integers little-endian:
 *
 *   off  size
 *     0     4  magic "VBIX"
 *     4     4  version (1)
 *     8     4  chunk size (a power of two in [CHUNK_MIN_SIZE, CHUNK_MAX_SIZE])
 *    12     4  flags (0; any set bit is unsupported)
 *    16     8  disk size in bytes (<= VDISK_MAX_SIZE)
 *    24     8  n, the number of chunks = ceil(disk size / chunk size)
 *    32  32*n  chunk ids; 32 zero bytes = a zero chunk (never stored)
 *  32+32n  32  HMAC-SHA-256 (mac_key) of every byte before it
 *
 * Memory cap: a 64 TiB disk in 256 KiB chunks would need 2^28 ids, i.e.
 * 8 GiB of ids.  We refuse more than INDEX_MAX_CHUNKS = 2^23 chunks, i.e.
 * at most 2^23 * 32 B = 256 MiB of ids (an encoded index of at most
 * 256 MiB + 64 B).  That is 2 TiB at 256 KiB chunks, 8 TiB at 1 MiB and
 * the full 64 TiB at 8 MiB; bigger disks need a bigger chunk size.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vmback/vdisk.h"
#include "common/le.h"
#include "repo/repo-int.h"

#define INDEX_MAGIC        "VBIX"
#define INDEX_VERSION      1u
#define INDEX_HDR_SIZE     32u
#define INDEX_MAC_SIZE     32u
#define INDEX_FLAGS_KNOWN  0u
/* 2^23 ids * 32 B = 256 MiB, see the top of the file. */
#define INDEX_MAX_CHUNKS   (UINT64_C (1) << 23)

#define OFF_MAGIC       0
#define OFF_VERSION     4
#define OFF_CHUNK_SIZE  8
#define OFF_FLAGS       12
#define OFF_DISK_SIZE   16
#define OFF_N           24

/* True when cs is a chunk size the repository accepts. */
static bool
chunk_size_ok (uint32_t cs)
{
  return cs >= CHUNK_MIN_SIZE && cs <= CHUNK_MAX_SIZE && (cs & (cs - 1)) == 0;
}

/* Number of chunks of a disk; disk_size <= VDISK_MAX_SIZE and cs > 0, so
 * disk_size + cs - 1 cannot overflow. */
static uint64_t
chunk_count (uint64_t disk_size, uint32_t cs)
{
  return (disk_size + cs - 1) / cs;
}

/* Check a disk size / chunk size pair the way both index_alloc and
 * index_encode need it; what names the subject in messages. */
static int
check_geometry (uint64_t disk_size, uint32_t chunk_size, const char *what,
                struct vb_error *err)
{
  if (!chunk_size_ok (chunk_size))
    return vb_err (err, EINVAL,
                   "%s: chunk size %" PRIu32 " is not a power of two "
                   "between %u and %u", what, chunk_size,
                   CHUNK_MIN_SIZE, CHUNK_MAX_SIZE);
  if (disk_size > VDISK_MAX_SIZE)
    return vb_err (err, EFBIG, "%s: disk size %" PRIu64 " is over the limit "
                   "of %" PRIu64 " bytes", what, disk_size, VDISK_MAX_SIZE);
  uint64_t n = chunk_count (disk_size, chunk_size);
  if (n > INDEX_MAX_CHUNKS)
    return vb_err (err, EFBIG, "%s: a disk of %" PRIu64 " bytes has %" PRIu64
                   " chunks of %" PRIu32 " bytes, more than the index limit "
                   "of %" PRIu64 " (use a larger chunk size)", what,
                   disk_size, n, chunk_size, INDEX_MAX_CHUNKS);
  return 0;
}

/* Make an index of all-zero chunks for a disk of disk_size bytes.
 * A disk of 0 bytes has no chunks (ids NULL). */
int
index_alloc (struct repo_index *ix, uint64_t disk_size, uint32_t chunk_size,
             struct vb_error *err)
{
  memset (ix, 0, sizeof *ix);
  int r = check_geometry (disk_size, chunk_size, "cannot make index", err);
  if (r < 0)
    return r;
  uint64_t n = chunk_count (disk_size, chunk_size);
  if (n > 0) {
    /* n <= 2^23, so at most 256 MiB */
    ix->ids = calloc ((size_t) n, REPO_ID_LEN);
    if (ix->ids == NULL)
      return vb_errno (err, ENOMEM, "cannot allocate index of %" PRIu64
                       " chunks", n);
  }
  ix->disk_size = disk_size;
  ix->chunk_size = chunk_size;
  ix->n = n;
  return 0;
}

/* Release the ids of an index and zero it (safe on a zeroed index). */
void
index_free (struct repo_index *ix)
{
  if (ix == NULL)
    return;
  free (ix->ids);
  memset (ix, 0, sizeof *ix);
}

/* Whether chunk i is a zero chunk (all-zero id).  An index past the end
 * of the disk reads as zero, like the bytes past its end would. */
bool
index_is_zero (const struct repo_index *ix, uint64_t i)
{
  if (i >= ix->n || ix->ids == NULL)
    return true;
  static const uint8_t zero[REPO_ID_LEN];
  return memcmp (ix->ids[i], zero, REPO_ID_LEN) == 0;
}

/* Serialize an index (layout at the top of the file) and append the
 * HMAC of everything before it.  *out is malloc'd. */
int
index_encode (const struct repo_keys *k, const struct repo_index *ix,
              uint8_t **out, size_t *len, struct vb_error *err)
{
  *out = NULL;
  *len = 0;
  int r = check_geometry (ix->disk_size, ix->chunk_size, "cannot encode index",
                          err);
  if (r < 0)
    return r;
  if (ix->n != chunk_count (ix->disk_size, ix->chunk_size)
      || (ix->n > 0 && ix->ids == NULL))
    return vb_err (err, EINVAL, "cannot encode index: %" PRIu64 " chunks "
                   "listed for a disk of %" PRIu64 " bytes", ix->n,
                   ix->disk_size);

  /* n <= 2^23: at most 32 + 256 MiB + 32 bytes */
  size_t ids_len = (size_t) ix->n * REPO_ID_LEN;
  size_t total = INDEX_HDR_SIZE + ids_len + INDEX_MAC_SIZE;
  uint8_t *b = malloc (total);
  if (b == NULL)
    return vb_errno (err, ENOMEM, "cannot encode index of %" PRIu64 " chunks",
                     ix->n);
  memcpy (b + OFF_MAGIC, INDEX_MAGIC, 4);
  le32_put (b + OFF_VERSION, INDEX_VERSION);
  le32_put (b + OFF_CHUNK_SIZE, ix->chunk_size);
  le32_put (b + OFF_FLAGS, 0);
  le64_put (b + OFF_DISK_SIZE, ix->disk_size);
  le64_put (b + OFF_N, ix->n);
  if (ids_len > 0)
    memcpy (b + INDEX_HDR_SIZE, ix->ids, ids_len);
  crypto_mac (k, b, INDEX_HDR_SIZE + ids_len, b + INDEX_HDR_SIZE + ids_len);
  *out = b;
  *len = total;
  return 0;
}

/* Parse and authenticate an encoded index.  Every header field is checked
 * on its own, the length must be exactly what the header says and the
 * HMAC must match, all before the ids array is allocated.  On failure ix
 * is zeroed. */
int
index_decode (const struct repo_keys *k, const uint8_t *buf, size_t len,
              const char *name, struct repo_index *ix, struct vb_error *err)
{
  memset (ix, 0, sizeof *ix);
  if (len < INDEX_HDR_SIZE + INDEX_MAC_SIZE)
    return vb_err (err, EBADMSG, "index '%s' is truncated (%zu bytes)",
                   name, len);
  if (memcmp (buf + OFF_MAGIC, INDEX_MAGIC, 4) != 0)
    return vb_err (err, EBADMSG, "index '%s' is not an index (bad magic)",
                   name);
  uint32_t version = le32_get (buf + OFF_VERSION);
  if (version != INDEX_VERSION)
    return vb_err (err, ENOTSUP, "index '%s' has version %" PRIu32
                   ", this vmback reads version %u", name, version,
                   INDEX_VERSION);

  if (len > INDEX_HDR_SIZE + INDEX_MAX_CHUNKS * REPO_ID_LEN + INDEX_MAC_SIZE)
    return vb_err (err, EFBIG, "index '%s' is %zu bytes, more than any index "
                   "of at most %" PRIu64 " chunks", name, len, INDEX_MAX_CHUNKS);

  /* The HMAC covers everything but the last 32 bytes; checking it needs
   * no allocation, and any damage then reads as damage. */
  uint8_t mac[32];
  crypto_mac (k, buf, len - INDEX_MAC_SIZE, mac);
  if (!crypto_equal (mac, buf + len - INDEX_MAC_SIZE, INDEX_MAC_SIZE))
    return vb_err (err, EBADMSG, "index '%s' is damaged or was tampered with",
                   name);

  /* Authenticated, but a key holder (or a bug) may still have written
   * nonsense: check every field on its own anyway. */
  uint32_t flags = le32_get (buf + OFF_FLAGS);
  if (flags & ~INDEX_FLAGS_KNOWN)
    return vb_err (err, ENOTSUP, "index '%s' uses unsupported flags 0x%" PRIx32,
                   name, flags);
  uint32_t chunk_size = le32_get (buf + OFF_CHUNK_SIZE);
  if (!chunk_size_ok (chunk_size))
    return vb_err (err, EBADMSG, "index '%s' has a bad chunk size %" PRIu32,
                   name, chunk_size);
  uint64_t disk_size = le64_get (buf + OFF_DISK_SIZE);
  if (disk_size > VDISK_MAX_SIZE)
    return vb_err (err, EBADMSG, "index '%s' has a disk size of %" PRIu64
                   " bytes, over the limit of %" PRIu64, name, disk_size,
                   VDISK_MAX_SIZE);
  uint64_t n = le64_get (buf + OFF_N);
  if (n != chunk_count (disk_size, chunk_size))
    return vb_err (err, EBADMSG, "index '%s' lists %" PRIu64 " chunks for a "
                   "disk of %" PRIu64 " bytes in chunks of %" PRIu32, name, n,
                   disk_size, chunk_size);
  if (n > INDEX_MAX_CHUNKS)
    return vb_err (err, EFBIG, "index '%s' lists %" PRIu64 " chunks, more than "
                   "the limit of %" PRIu64, name, n, INDEX_MAX_CHUNKS);
  /* n <= 2^23: no overflow in 32 + 32 n + 32 */
  size_t want = INDEX_HDR_SIZE + (size_t) n * REPO_ID_LEN + INDEX_MAC_SIZE;
  if (len != want)
    return vb_err (err, EBADMSG, "index '%s' is %zu bytes, its header says %zu",
                   name, len, want);

  int r = index_alloc (ix, disk_size, chunk_size, err);
  if (r < 0)
    return r;
  if (n > 0)
    memcpy (ix->ids, buf + INDEX_HDR_SIZE, (size_t) n * REPO_ID_LEN);
  return 0;
}
