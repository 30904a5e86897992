/* vmback change tracking (CTK): the -ctk.vmdk file, see docs/CTK.md.
 *
 * The whole file is kept in memory as one buffer laid out exactly as on
 * disk (header, stamp table, table CRC): ctk_mark() stamps in place and
 * ctk_close() writes the buffer out as is, so a 2 TiB disk costs its
 * 128 MiB table once, not twice.
 *
 * Safety rule: the tracker must never answer too little.  Anything we
 * cannot prove (crash, foreign writer, resize, damage) makes it invalid,
 * and an invalid tracker only ever answers -ESTALE.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uuid/uuid.h>
#include <zlib.h>

#include "ctk.h"
#include "vdisk-int.h"

/* --- on-disk layout (all little-endian), docs/CTK.md ------------------- */

#define CTK_MAGIC        "VBCTK\r\n\x1a"
#define CTK_MAGIC_LEN    8
#define CTK_VERSION      1u
#define CTK_HDR_SIZE     4096u
#define CTK_FLAG_DIRTY   1u
#define CTK_FLAGS_KNOWN  CTK_FLAG_DIRTY

#define OFF_MAGIC        0    /* 8 bytes */
#define OFF_VERSION      8    /* u32 */
#define OFF_FLAGS        12   /* u32 */
#define OFF_BLOCK_SIZE   16   /* u32, = VDISK_CTK_BLOCK */
#define OFF_HDR_SIZE     20   /* u32, = CTK_HDR_SIZE (offset of the table) */
#define OFF_DISK_SIZE    24   /* u64 */
#define OFF_NBLOCKS      32   /* u64 */
#define OFF_SEQ          40   /* u64, <= UINT32_MAX */
#define OFF_CID          48   /* u32 */
#define OFF_RESERVED0    52   /* u32, 0 */
#define OFF_UUID         56   /* 16 bytes */
#define OFF_HDR_CRC      72   /* u32 */
#define OFF_RESERVED1    76   /* up to CTK_HDR_SIZE, all 0 */

/* Largest number of blocks: VDISK_MAX_SIZE / 64 KiB = 2^46 / 2^16 = 2^30,
 * i.e. a table of at most 4 GiB (and a real file of that size behind it:
 * the header must agree with the file size before we allocate). */
#define CTK_MAX_BLOCKS   (VDISK_MAX_SIZE / VDISK_CTK_BLOCK)

struct ctk {
  char *path;
  bool writable;
  bool valid;
  bool begun;              /* ctk_begin_write done in this session */
  bool unrecorded;         /* ctk_mark without ctk_begin_write (core bug) */
  char reason[256];        /* why invalid */

  /* Header fields (meaningful when valid). */
  uint32_t flags;
  uint64_t disk_size;
  uint64_t nblocks;
  uint64_t seq;
  uint32_t cid;
  uuid_t uuid;

  /* The file image: CTK_HDR_SIZE header bytes, 4 * nblocks stamp bytes,
   * 4 bytes of table CRC.  NULL when invalid. */
  uint8_t *img;
  size_t img_len;
};

/* Number of 64 KiB blocks of a disk of size bytes (size <= VDISK_MAX_SIZE,
 * so no overflow). */
static uint64_t
blocks_for (uint64_t size)
{
  return size / VDISK_CTK_BLOCK + (size % VDISK_CTK_BLOCK != 0);
}

/* Exact file size for nblocks: header + 4 per block + table CRC.  With
 * nblocks <= 2^30 this is <= 4 GiB + 4100, no overflow in 64 bits. */
static uint64_t
file_size_for (uint64_t nblocks)
{
  return (uint64_t) CTK_HDR_SIZE + 4 * nblocks + 4;
}

/* zlib crc32 over a buffer that may exceed uInt (4 GiB tables). */
static uint32_t
crc_buf (uint32_t crc, const uint8_t *p, size_t len)
{
  while (len > 0) {
    uInt n = len > (1u << 30) ? (1u << 30) : (uInt) len;
    crc = (uint32_t) crc32 (crc, p, n);
    p += n;
    len -= n;
  }
  return crc;
}

/* CRC of a header: every byte of the 4096 except the CRC field itself. */
static uint32_t
header_crc (const uint8_t *h)
{
  uint32_t crc = (uint32_t) crc32 (0, Z_NULL, 0);
  crc = crc_buf (crc, h, OFF_HDR_CRC);
  return crc_buf (crc, h + OFF_HDR_CRC + 4, CTK_HDR_SIZE - OFF_HDR_CRC - 4);
}

/* CRC of the stamp table of an image. */
static uint32_t
table_crc (const struct ctk *c)
{
  return crc_buf ((uint32_t) crc32 (0, Z_NULL, 0), c->img + CTK_HDR_SIZE,
                  (size_t) (4 * c->nblocks));
}

/* Serialize the header fields of c into the first CTK_HDR_SIZE bytes of
 * its image, CRC included. */
static void
header_encode (struct ctk *c)
{
  uint8_t *h = c->img;
  memset (h, 0, CTK_HDR_SIZE);
  memcpy (h + OFF_MAGIC, CTK_MAGIC, CTK_MAGIC_LEN);
  le32_put (h + OFF_VERSION, CTK_VERSION);
  le32_put (h + OFF_FLAGS, c->flags);
  le32_put (h + OFF_BLOCK_SIZE, VDISK_CTK_BLOCK);
  le32_put (h + OFF_HDR_SIZE, CTK_HDR_SIZE);
  le64_put (h + OFF_DISK_SIZE, c->disk_size);
  le64_put (h + OFF_NBLOCKS, c->nblocks);
  le64_put (h + OFF_SEQ, c->seq);
  le32_put (h + OFF_CID, c->cid);
  memcpy (h + OFF_UUID, c->uuid, 16);
  le32_put (h + OFF_HDR_CRC, header_crc (h));
}

/* Fill in the table CRC at the end of the image (the header must have
 * been encoded separately). */
static void
trailer_encode (struct ctk *c)
{
  le32_put (c->img + CTK_HDR_SIZE + 4 * c->nblocks, table_crc (c));
}

/* Allocate a zeroed image for disk_size bytes (all stamps 0).  The size
 * is bounded: disk_size <= VDISK_MAX_SIZE gives <= 4 GiB + 4100 bytes. */
static int
img_alloc (struct ctk *c, uint64_t disk_size)
{
  uint64_t nb = blocks_for (disk_size);
  uint64_t len = file_size_for (nb);
  if (nb > CTK_MAX_BLOCKS)   /* callers check disk_size; belt and braces */
    return -EFBIG;
  if (len > SIZE_MAX)
    return -ENOMEM;
  uint8_t *img = calloc (1, (size_t) len);
  if (!img)
    return -ENOMEM;
  free (c->img);
  c->img = img;
  c->img_len = (size_t) len;
  c->disk_size = disk_size;
  c->nblocks = nb;
  return 0;
}

/* Make c a fresh tracker in memory: new uuid (a new epoch), seq 0, every
 * stamp 0, not dirty, recorded CID = cid. */
static int
reset_mem (struct ctk *c, uint64_t disk_size, uint32_t cid)
{
  int r = img_alloc (c, disk_size);
  if (r < 0)
    return r;
  uuid_generate (c->uuid);
  c->flags = 0;
  c->seq = 0;
  c->cid = cid;
  c->valid = true;
  c->reason[0] = '\0';
  return 0;
}

/* Write the whole image of c to its path atomically (temp file, fsync,
 * rename, fsync of the directory). */
static int
write_image (struct ctk *c, struct vb_error *err)
{
  header_encode (c);
  trailer_encode (c);
  int r = vio_write_file_atomic (c->path, c->img, c->img_len, err);
  if (r < 0)
    vb_err_prefix (err, "cannot write change tracking file");
  return r;
}

/* Record why c is invalid and drop its table. */
static void
set_invalid (struct ctk *c, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
static void
set_invalid (struct ctk *c, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (c->reason, sizeof c->reason, fmt, ap);
  va_end (ap);
  c->valid = false;
  free (c->img);
  c->img = NULL;
  c->img_len = 0;
}

/* Allocate an empty tracker object for path. */
static struct ctk *
ctk_new (const char *path, bool writable)
{
  struct ctk *c = calloc (1, sizeof *c);
  if (!c)
    return NULL;
  c->path = strdup (path);
  if (!c->path) {
    free (c);
    return NULL;
  }
  c->writable = writable;
  return c;
}

/* Free a tracker object without writing anything. */
static void
ctk_free (struct ctk *c)
{
  if (!c)
    return;
  free (c->img);
  free (c->path);
  free (c);
}

/* Create (or overwrite) a fresh valid tracker file. */
int
ctk_create (const char *path, uint64_t disk_size, uint32_t cid,
            struct vb_error *err)
{
  if (disk_size > VDISK_MAX_SIZE)
    return vb_err (err, EFBIG, "cannot create change tracking file '%s': "
                   "disk size %" PRIu64 " exceeds the limit of %" PRIu64,
                   path, disk_size, (uint64_t) VDISK_MAX_SIZE);
  struct ctk *c = ctk_new (path, true);
  if (!c)
    return vb_errno (err, ENOMEM, "cannot create change tracking file '%s'",
                     path);
  int r = reset_mem (c, disk_size, cid);
  if (r < 0)
    r = vb_errno (err, -r, "cannot create change tracking file '%s'", path);
  else
    r = write_image (c, err);
  ctk_free (c);
  return r;
}

/* Check the header in h (CTK_HDR_SIZE bytes) of a file of fsize bytes and
 * load its fields into c.  Returns true if the header is sound; else sets
 * the reason (c stays invalid).  Does not look at dirty/CID/size. */
static bool
header_decode (struct ctk *c, const uint8_t *h, uint64_t fsize)
{
  uint32_t version = le32_get (h + OFF_VERSION);
  if (version != CTK_VERSION) {
    set_invalid (c, "unsupported change tracking format version %" PRIu32
                 " (this vmback reads version %u)", version, CTK_VERSION);
    return false;
  }
  if (le32_get (h + OFF_HDR_CRC) != header_crc (h)) {
    set_invalid (c, "header checksum mismatch (the file is damaged)");
    return false;
  }
  /* Each field on its own, then against each other and the file size. */
  uint32_t flags = le32_get (h + OFF_FLAGS);
  uint32_t bsize = le32_get (h + OFF_BLOCK_SIZE);
  uint32_t hsize = le32_get (h + OFF_HDR_SIZE);
  uint64_t dsize = le64_get (h + OFF_DISK_SIZE);
  uint64_t nb = le64_get (h + OFF_NBLOCKS);
  uint64_t seq = le64_get (h + OFF_SEQ);
  if (flags & ~CTK_FLAGS_KNOWN) {
    set_invalid (c, "corrupt header: unknown flags 0x%" PRIx32, flags);
    return false;
  }
  if (bsize != VDISK_CTK_BLOCK) {
    set_invalid (c, "corrupt header: block size %" PRIu32 " (expected %u)",
                 bsize, VDISK_CTK_BLOCK);
    return false;
  }
  if (hsize != CTK_HDR_SIZE) {
    set_invalid (c, "corrupt header: header size %" PRIu32 " (expected %u)",
                 hsize, CTK_HDR_SIZE);
    return false;
  }
  if (dsize > VDISK_MAX_SIZE) {
    set_invalid (c, "corrupt header: disk size %" PRIu64 " exceeds the "
                 "limit of %" PRIu64, dsize, (uint64_t) VDISK_MAX_SIZE);
    return false;
  }
  if (nb != blocks_for (dsize)) {
    set_invalid (c, "corrupt header: %" PRIu64 " blocks for a disk of %"
                 PRIu64 " bytes (expected %" PRIu64 ")", nb, dsize,
                 blocks_for (dsize));
    return false;
  }
  if (seq > UINT32_MAX) {
    set_invalid (c, "corrupt header: sequence number %" PRIu64
                 " out of range", seq);
    return false;
  }
  if (le32_get (h + OFF_RESERVED0) != 0
      || !vio_is_zero (h + OFF_RESERVED1, CTK_HDR_SIZE - OFF_RESERVED1)) {
    set_invalid (c, "corrupt header: reserved bytes are not zero");
    return false;
  }
  if (fsize != file_size_for (nb)) {
    set_invalid (c, "corrupt file: %" PRIu64 " bytes, the header describes %"
                 PRIu64, fsize, file_size_for (nb));
    return false;
  }
  c->flags = flags;
  c->disk_size = dsize;
  c->nblocks = nb;
  c->seq = seq;
  c->cid = le32_get (h + OFF_CID);
  memcpy (c->uuid, h + OFF_UUID, 16);
  return true;
}

/* Load and judge the tracker file at c->path for a disk of disk_size bytes
 * with CID cid.  Sets c->valid / c->reason.  Returns a negative errno only
 * for failures that prevent judging (out of memory). */
static int
load (struct ctk *c, uint64_t disk_size, uint32_t cid)
{
  uint8_t *h = NULL;
  int r = 0;
  int fd = open (c->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      set_invalid (c, "the change tracking file is missing");
    else
      set_invalid (c, "the change tracking file is unreadable: %s",
                   strerror (errno));
    return 0;
  }
  int64_t fsize = vio_size (fd);
  if (fsize < 0) {
    set_invalid (c, "the change tracking file is unreadable: %s",
                 strerror ((int) -fsize));
    goto out;
  }
  h = calloc (1, CTK_HDR_SIZE);
  if (!h) {
    r = -ENOMEM;
    goto out;
  }
  /* Magic first: a short or foreign file is "not ours". */
  size_t want = (uint64_t) fsize < CTK_HDR_SIZE ? (size_t) fsize
                                                 : CTK_HDR_SIZE;
  int rr = vio_pread (fd, h, want, 0);
  if (rr < 0) {
    set_invalid (c, "the change tracking file is unreadable: %s",
                 strerror (-rr));
    goto out;
  }
  if (want < CTK_MAGIC_LEN || memcmp (h, CTK_MAGIC, CTK_MAGIC_LEN) != 0) {
    set_invalid (c, "not a vmback change tracking file");
    goto out;
  }
  if (want < CTK_HDR_SIZE) {
    set_invalid (c, "corrupt file: truncated to %" PRId64 " bytes", fsize);
    goto out;
  }
  if (!header_decode (c, h, (uint64_t) fsize))
    goto out;
  if (c->flags & CTK_FLAG_DIRTY) {
    set_invalid (c, "a writer did not close the disk cleanly");
    goto out;
  }
  if (c->cid != cid) {
    set_invalid (c, "the disk was written without change tracking "
                 "(CID changed from %08" PRIx32 " to %08" PRIx32 ")",
                 c->cid, cid);
    goto out;
  }
  if (c->disk_size != disk_size) {
    set_invalid (c, "the disk was resized (tracked %" PRIu64 " bytes, the "
                 "disk has %" PRIu64 ")", c->disk_size, disk_size);
    goto out;
  }
  /* The table: its size is exactly fsize (checked against the header),
   * which is at most 4 GiB + 4100 bytes (nblocks <= 2^30). */
  if ((uint64_t) fsize > SIZE_MAX) {
    r = -ENOMEM;
    goto out;
  }
  c->img_len = (size_t) fsize;
  c->img = malloc (c->img_len);
  if (!c->img) {
    c->img_len = 0;
    r = -ENOMEM;
    goto out;
  }
  memcpy (c->img, h, CTK_HDR_SIZE);
  rr = vio_pread (fd, c->img + CTK_HDR_SIZE, c->img_len - CTK_HDR_SIZE,
                  CTK_HDR_SIZE);
  if (rr < 0) {
    set_invalid (c, "the change tracking file is unreadable: %s",
                 strerror (-rr));
    goto out;
  }
  if (le32_get (c->img + CTK_HDR_SIZE + 4 * c->nblocks) != table_crc (c)) {
    set_invalid (c, "block table checksum mismatch (the file is damaged)");
    goto out;
  }
  for (uint64_t b = 0; b < c->nblocks; b++) {
    uint32_t s = le32_get (c->img + CTK_HDR_SIZE + 4 * b);
    if (s > c->seq) {
      set_invalid (c, "corrupt block table: block %" PRIu64 " stamped with "
                   "session %" PRIu32 " after the last session %" PRIu64,
                   b, s, c->seq);
      goto out;
    }
  }
  c->valid = true;
out:
  free (h);
  close (fd);
  return r;
}

/* Open a tracker; see ctk.h.  Invalid is a state, not an error. */
int
ctk_open (const char *path, uint64_t disk_size, uint32_t cid,
          bool writable, struct ctk **out, struct vb_error *err)
{
  *out = NULL;
  if (disk_size > VDISK_MAX_SIZE)
    return vb_err (err, EFBIG, "cannot open change tracking file '%s': "
                   "disk size %" PRIu64 " exceeds the limit of %" PRIu64,
                   path, disk_size, (uint64_t) VDISK_MAX_SIZE);
  struct ctk *c = ctk_new (path, writable);
  if (!c)
    return vb_errno (err, ENOMEM, "cannot open change tracking file '%s'",
                     path);
  int r = load (c, disk_size, cid);
  if (r < 0) {
    ctk_free (c);
    return vb_errno (err, -r, "cannot open change tracking file '%s'", path);
  }
  if (!c->valid && writable) {
    /* Start a new epoch: every changeId handed out before is refused from
     * now on (other uuid), and the current disk content is the baseline. */
    vb_debug ("change tracking of '%s' reset: %s", path, c->reason);
    r = reset_mem (c, disk_size, cid);
    if (r < 0) {
      ctk_free (c);
      return vb_errno (err, -r, "cannot reset change tracking file '%s'",
                       path);
    }
    r = write_image (c, err);
    if (r < 0) {
      ctk_free (c);
      return r;
    }
  }
  *out = c;
  return 0;
}

/* true if the tracker can answer queries; else why not. */
bool
ctk_valid (const struct ctk *c, const char **reason)
{
  if (!c->valid && reason)
    *reason = c->reason;
  return c->valid;
}

/* Start a write session: new seq, dirty flag on disk, fsync.  From the
 * moment this returns, a crash leaves the file dirty (hence invalid).
 * Calling it again in the same session does nothing. */
int
ctk_begin_write (struct ctk *c, struct vb_error *err)
{
  if (c->begun)
    return 0;
  if (!c->writable)
    return vb_err (err, EROFS, "cannot record writes in change tracking "
                   "file '%s': opened read only", c->path);
  if (!c->valid)   /* cannot happen: writable opens reset */
    return vb_err (err, ESTALE, "cannot record writes in change tracking "
                   "file '%s': %s", c->path, c->reason);
  if (c->seq >= UINT32_MAX) {
    /* Stamps are u32: rather than wrap (which would make old blocks look
     * new and, worse, new blocks look old), start a new epoch. */
    int r = reset_mem (c, c->disk_size, c->cid);
    if (r < 0)
      return vb_errno (err, -r, "cannot reset change tracking file '%s'",
                       c->path);
  }
  c->seq++;
  c->flags |= CTK_FLAG_DIRTY;
  header_encode (c);

  int fd = open (c->path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    c->seq--;
    c->flags &= ~CTK_FLAG_DIRTY;
    return vb_errno (err, e, "cannot open change tracking file '%s'",
                     c->path);
  }
  int r = vio_pwrite (fd, c->img, CTK_HDR_SIZE, 0);
  if (r == 0)
    r = vio_fsync (fd);
  if (close (fd) < 0 && r == 0)
    r = -errno;
  if (r < 0) {
    /* The header on disk is now old, dirty or torn: the first is still
     * true (the core fails the write, nothing was written), the others
     * read as invalid.  Either way safe; stay not begun. */
    c->seq--;
    c->flags &= ~CTK_FLAG_DIRTY;
    return vb_errno (err, -r, "cannot write change tracking file '%s'",
                     c->path);
  }
  c->begun = true;
  return 0;
}

/* Stamp every block touched by [off, off+len) with the current seq:
 * O(blocks touched), in memory only. */
void
ctk_mark (struct ctk *c, uint64_t off, uint64_t len)
{
  if (!c || !c->valid || !c->writable || len == 0)
    return;
  if (!c->begun) {
    /* A write we cannot stamp safely: poison the tracker at close. */
    c->unrecorded = true;
    return;
  }
  if (off >= c->disk_size)
    return;
  uint64_t end = len > c->disk_size - off ? c->disk_size : off + len;
  uint64_t b0 = off / VDISK_CTK_BLOCK;
  uint64_t b1 = (end - 1) / VDISK_CTK_BLOCK;
  uint8_t *t = c->img + CTK_HDR_SIZE;
  for (uint64_t b = b0; b <= b1; b++)
    le32_put (t + 4 * b, (uint32_t) c->seq);
}

/* Leave the file dirty on disk (it will read as invalid), used when
 * writes happened that the tracker could not record. */
static int
poison (struct ctk *c, struct vb_error *err)
{
  int fd = open (c->path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    /* Removing the file invalidates just as well ("missing"). */
    if (unlink (c->path) < 0 && errno != ENOENT)
      return vb_errno (err, errno, "cannot invalidate change tracking file "
                       "'%s'", c->path);
    return 0;
  }
  c->flags |= CTK_FLAG_DIRTY;
  header_encode (c);
  int r = vio_pwrite (fd, c->img, CTK_HDR_SIZE, 0);
  if (r == 0)
    r = vio_fsync (fd);
  close (fd);
  if (r < 0 && unlink (c->path) < 0 && errno != ENOENT)
    return vb_errno (err, -r, "cannot invalidate change tracking file '%s'",
                     c->path);
  return 0;
}

/* Persist a write session (clean flag, final CID, table) and free. */
int
ctk_close (struct ctk *c, uint32_t final_cid, struct vb_error *err)
{
  if (!c)
    return 0;
  int r = 0;
  if (c->valid && c->writable && c->unrecorded && !c->begun)
    r = poison (c, err);
  else if (c->valid && c->begun) {
    c->flags &= ~CTK_FLAG_DIRTY;
    c->cid = final_cid;
    r = write_image (c, err);
  }
  ctk_free (c);
  return r;
}

/* Copy a valid tracker to path with another CID (see ctk.h). */
int
ctk_save_as (const struct ctk *c, const char *path, uint32_t cid,
             struct vb_error *err)
{
  if (!c->valid)
    return vb_err (err, ESTALE, "change tracking file '%s' is invalid: %s",
                   c->path, c->reason);
  struct ctk *t = ctk_new (path, true);
  uint8_t *img = malloc (c->img_len);
  if (!t || !img) {
    free (img);
    ctk_free (t);
    return vb_errno (err, ENOMEM, "cannot write change tracking file '%s'", path);
  }
  memcpy (img, c->img, c->img_len);
  t->img = img;
  t->img_len = c->img_len;
  t->valid = true;
  t->flags = c->flags & ~CTK_FLAG_DIRTY;
  t->disk_size = c->disk_size;
  t->nblocks = c->nblocks;
  t->seq = c->seq;
  t->cid = cid;
  memcpy (t->uuid, c->uuid, sizeof t->uuid);
  int r = write_image (t, err);
  ctk_free (t);
  return r;
}

/* Format the changeId of the current state.  During a write session the
 * state after the session in progress does not exist yet, so we return
 * the previous one: queries from it include this session's blocks.  An
 * invalid tracker has no changeId: "". */
void
ctk_change_id (const struct ctk *c, char *buf, size_t len)
{
  if (len == 0)
    return;
  if (!c->valid) {
    buf[0] = '\0';
    return;
  }
  char u[37];
  uuid_unparse_lower (c->uuid, u);
  uint64_t seq = c->begun ? c->seq - 1 : c->seq;
  snprintf (buf, len, "%s/%" PRIu64, u, seq);
}

/* Parse "<uuid>/<seq>": uuid 8-4-4-4-12 hex digits of either case (stored
 * lowercase in uuid), seq 1..20 decimal digits fitting in 64 bits. */
int
ctk_parse_change_id (const char *change_id, char uuid[37], uint64_t *seq)
{
  if (!change_id)
    return -EINVAL;
  for (int i = 0; i < 36; i++) {
    char ch = change_id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (ch != '-')
        return -EINVAL;
    } else if (ch >= '0' && ch <= '9')
      ;
    else if ((ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))
      ch = (char) (ch | 0x20);
    else
      return -EINVAL;   /* also catches the NUL of a short string */
    uuid[i] = ch;
  }
  uuid[36] = '\0';
  const char *p = change_id + 36;
  if (*p++ != '/')
    return -EINVAL;
  uint64_t v = 0;
  int digits = 0;
  for (; *p; p++, digits++) {
    if (*p < '0' || *p > '9' || digits >= 20)
      return -EINVAL;
    uint64_t d = (uint64_t) (*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -EINVAL;
    v = v * 10 + d;
  }
  if (digits == 0)
    return -EINVAL;
  *seq = v;
  return 0;
}

/* Areas changed after change_id from start; see ctk.h. */
int
ctk_query (const struct ctk *c, const char *change_id, uint64_t start,
           struct vdisk_extent_list *out, struct vb_error *err)
{
  char u[37];
  uint64_t since;
  if (change_id && strcmp (change_id, "*") == 0)
    return vb_err (err, EINVAL, "changeId '*' is answered from the disk's "
                   "allocation, not by the change tracker");
  if (ctk_parse_change_id (change_id, u, &since) < 0)
    return vb_err (err, EINVAL, "malformed changeId '%s' (expected "
                   "'<uuid>/<sequence>')", change_id ? change_id : "");
  if (!c->valid)
    return vb_err (err, ESTALE, "change tracking of '%s' is invalid: %s",
                   c->path, c->reason);
  char mine[37];
  uuid_unparse_lower (c->uuid, mine);
  if (strcmp (u, mine) != 0)
    return vb_err (err, ESTALE, "changeId '%s' belongs to an earlier change "
                   "tracking epoch of this disk (or to another disk)",
                   change_id);
  /* In a write session, seq is not a finished state yet. */
  uint64_t last = c->begun ? c->seq - 1 : c->seq;
  if (since > last)
    return vb_err (err, ESTALE, "changeId '%s' is newer than the disk's "
                   "change tracking (last sequence %" PRIu64 ")",
                   change_id, last);
  if (start > c->disk_size)
    return vb_err (err, EINVAL, "start offset %" PRIu64 " is beyond the end "
                   "of the disk (%" PRIu64 " bytes)", start, c->disk_size);

  const uint8_t *t = c->img + CTK_HDR_SIZE;
  uint64_t b = start / VDISK_CTK_BLOCK;
  while (b < c->nblocks) {
    if (le32_get (t + 4 * b) <= since) {
      b++;
      continue;
    }
    uint64_t e = b + 1;
    while (e < c->nblocks && le32_get (t + 4 * e) > since)
      e++;
    uint64_t off = b * VDISK_CTK_BLOCK;
    uint64_t end = e * VDISK_CTK_BLOCK;
    if (off < start)
      off = start;
    if (end > c->disk_size)
      end = c->disk_size;
    if (end > off && vdisk_extent_list_add (out, off, end - off) < 0)
      return vb_errno (err, ENOMEM, "cannot query changed areas of '%s'",
                       c->path);
    b = e;
  }
  return 0;
}

/* "dir/NAME.vmdk" -> "dir/NAME-ctk.vmdk"; other names get "-ctk.vmdk"
 * appended.  malloc'd, NULL when out of memory. */
char *
ctk_default_path (const char *desc_path)
{
  size_t n = strlen (desc_path);
  const char *base = strrchr (desc_path, '/');
  base = base ? base + 1 : desc_path;
  size_t bn = strlen (base);
  if (bn > 5 && strcasecmp (base + bn - 5, ".vmdk") == 0)
    n -= 5;
  char *p = malloc (n + sizeof "-ctk.vmdk");
  if (p) {
    memcpy (p, desc_path, n);
    memcpy (p + n, "-ctk.vmdk", sizeof "-ctk.vmdk");
  }
  return p;
}

/* --- extent lists (vmback/vdisk.h) ------------------------------------- */

/* Free the array and empty the list. */
void
vdisk_extent_list_free (struct vdisk_extent_list *l)
{
  if (!l)
    return;
  free (l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

/* Append [off, off+len), merging with the last element when the two
 * touch or overlap; the array grows geometrically (amortized O(1)). */
int
vdisk_extent_list_add (struct vdisk_extent_list *l, uint64_t off,
                       uint64_t len)
{
  if (len == 0)
    return 0;
  if (off > UINT64_MAX - len)
    return -EOVERFLOW;
  if (l->n > 0) {
    uint64_t lo = l->v[l->n - 1].offset;
    uint64_t hi = lo + l->v[l->n - 1].length;
    if (off <= hi && off + len >= lo) {
      uint64_t nlo = off < lo ? off : lo;
      uint64_t nhi = off + len > hi ? off + len : hi;
      l->v[l->n - 1].offset = nlo;
      l->v[l->n - 1].length = nhi - nlo;
      return 0;
    }
  }
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 16;
    if (ncap < l->cap || ncap > SIZE_MAX / sizeof *l->v)
      return -ENOMEM;
    void *nv = realloc (l->v, ncap * sizeof *l->v);
    if (!nv)
      return -ENOMEM;
    l->v = nv;
    l->cap = ncap;
  }
  l->v[l->n].offset = off;
  l->v[l->n].length = len;
  l->n++;
  return 0;
}
