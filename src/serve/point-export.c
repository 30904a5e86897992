/* vmback serve: one disk of a restore point as a block device.
 *
 * Reads split at chunk boundaries; each piece comes from the overlay when
 * its 64 KiB block was written, else from the point: a zero chunk is
 * zeros, any other chunk is fetched and decoded once and then served from
 * a cache of decoded chunks (lru.c: hashed lookups, segmented LRU).  A
 * read of parts of a cached chunk that were all read before, and not
 * where the previous read of it ended, is reuse: it protects the chunk
 * from being replaced by a scan (a first read of a chunk in pieces, even
 * sequential small reads, is not reuse).
 * A chunk is fetched by one thread at a time: others wanting it wait for
 * that load instead of decoding it again (multi-conn clients and parallel
 * requests often ask for pieces of one chunk at once).
 *
 * The overlay (docs/serve.md) is FILE, a sparse raw file of the disk's
 * size holding the written blocks at their offsets, and FILE.bitmap, a
 * header plus one bit per block.  Bits only go from 0 to 1, and a flush
 * syncs the data before the bitmap, so a set bit on disk always has its
 * block durable.
 *
 * Locking: `mu` guards the cache; `ov` (read-write) guards the overlay:
 * reads take it shared, writes and flushes exclusive (a partial write of a
 * new block is read-modify-write and must not interleave). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine-int.h"
#include "common/le.h"
#include "lru.h"
#include "point-export.h"

#define OV_MAGIC "VBOVERL1"
#define OV_HEADER 512u           /* bitmap starts here */

/* One decoded chunk in the cache: the contents of an lru slot. */
struct cache_entry {
  const uint8_t *data;           /* decoded bytes; NULL = free or loading */
  uint8_t *mem;                  /* the allocation data points into */
  uint64_t seen;                 /* parts (1/64 of the chunk each) read */
  uint32_t next;                 /* where the last read of it ended */
};

struct point_export {
  struct repo *r;
  struct manifest *m;
  int disk;
  struct repo_index ix;
  uint64_t size;
  uint32_t cs;                   /* chunk size */

  pthread_mutex_t mu;            /* cache */
  pthread_cond_t loaded;         /* a slot finished loading */
  struct lru *lru;               /* chunk number -> slot */
  struct cache_entry *cache;     /* by slot */
  uint64_t ncache, hits, misses;

  pthread_rwlock_t ov;           /* overlay */
  int ov_fd, map_fd;             /* -1 = read-only */
  char *ov_path;
  uint8_t *bitmap;
  uint64_t nblocks;
  bool dirty;                    /* bitmap changed since the last flush */
};

/* ---- small helpers --------------------------------------------------------- */

/* Plain length of chunk i (the last one may be short). */
static uint32_t
chunk_len (const struct point_export *pe, uint64_t i)
{
  uint64_t off = i * pe->cs;
  return pe->size - off < pe->cs ? (uint32_t) (pe->size - off) : pe->cs;
}

/* Length of overlay block b. */
static uint32_t
block_len (const struct point_export *pe, uint64_t b)
{
  uint64_t off = b * PE_OVERLAY_BLOCK;
  return pe->size - off < PE_OVERLAY_BLOCK ? (uint32_t) (pe->size - off) : PE_OVERLAY_BLOCK;
}

/* Is block b in the overlay? */
static bool
bit_get (const struct point_export *pe, uint64_t b)
{
  return pe->bitmap[b / 8] & (1u << (b % 8));
}

/* Mark block b as in the overlay (the caller persists it at flush). */
static void
bit_set (struct point_export *pe, uint64_t b)
{
  pe->bitmap[b / 8] |= (uint8_t) (1u << (b % 8));
}

/* The smaller of a and b. */
static uint64_t
min64 (uint64_t a, uint64_t b)
{
  return a < b ? a : b;
}

/* Reject ranges outside the disk. */
static int
check_range (const struct point_export *pe, uint64_t count, uint64_t off,
             const char *what, struct vb_error *err)
{
  if (off > pe->size || count > pe->size - off)
    return vb_err (err, EINVAL, "%s of %llu bytes at offset %llu is beyond the end "
                   "of disk %s of point %s (%llu bytes)", what, (unsigned long long) count,
                   (unsigned long long) off, pe_disk_key (pe), pe_point_id (pe),
                   (unsigned long long) pe->size);
  return 0;
}

/* ---- the decoded chunk cache ---------------------------------------------- */

/* Fetch and decode chunk i into e: e->data points at its bytes, in
 * e->mem (a buffer of pe->cs bytes, or the fetched blob of a raw chunk,
 * which is then not copied).  Any failure is EIO naming the point, the
 * disk and the offset, and leaves e empty. */
static int
fetch_chunk (struct point_export *pe, uint64_t i, struct cache_entry *e, struct vb_error *err)
{
  struct vb_error fe = { 0 };
  uint32_t want = chunk_len (pe, i);
  uint8_t *buf = malloc (pe->cs), *blob = NULL;
  int got = buf ? engine_fetch_chunk_view (pe->r, pe->ix.ids[i], buf, pe->cs, &blob,
                                           &e->data, &fe)
    : vb_errno (&fe, ENOMEM, "no memory for a chunk");
  if (got >= 0 && (uint32_t) got != want)
    got = vb_err (&fe, EBADMSG, "chunk holds %d bytes, expected %u", got, want);
  if (got < 0) {
    free (buf);
    free (blob);
    e->data = NULL;
    return vb_err (err, EIO, "cannot read disk %s of point %s at offset %llu (chunk %llu): %s",
                   pe_disk_key (pe), pe_point_id (pe), (unsigned long long) (i * pe->cs),
                   (unsigned long long) i, fe.msg[0] ? fe.msg : "unknown error");
  }
  if (blob) {                    /* the chunk is inside its blob */
    free (buf);
    e->mem = blob;
  } else {
    e->mem = buf;
  }
  return 0;
}

/* The parts (1/64 of a chunk each) that [a, a+n) of a chunk touches. */
static uint64_t
parts_of (const struct point_export *pe, uint32_t a, uint32_t n)
{
  uint32_t unit = (pe->cs + 63) / 64;
  unsigned lo = a / unit, hi = (a + n - 1) / unit;
  uint64_t upto = hi >= 63 ? UINT64_MAX : (UINT64_C (1) << (hi + 1)) - 1;
  return upto & ~((UINT64_C (1) << lo) - 1);
}

/* Copy [a, a+n) of non-zero chunk i into out: from the cache, else
 * fetched once (threads wanting a chunk being loaded wait for it) and
 * kept in the cache. */
static int
chunk_read (struct point_export *pe, uint64_t i, uint32_t a, uint32_t n, uint8_t *out,
            struct vb_error *err)
{
  uint64_t parts = parts_of (pe, a, n);
  pthread_mutex_lock (&pe->mu);
  uint32_t s;
  while ((s = lru_find (pe->lru, i)) != LRU_NONE && lru_taken (pe->lru, s))
    pthread_cond_wait (&pe->loaded, &pe->mu);
  if (s != LRU_NONE) {
    struct cache_entry *e = &pe->cache[s];
    memcpy (out, e->data + a, n);
    bool reuse = (e->seen & parts) == parts && a != e->next;
    e->seen |= parts;
    e->next = a + n;
    lru_touch (pe->lru, s, reuse);
    pe->hits++;
    pthread_mutex_unlock (&pe->mu);
    return 0;
  }
  pe->misses++;
  bool evicted;
  s = lru_take (pe->lru, i, &evicted);   /* LRU_NONE: every slot is loading */
  if (evicted) {
    free (pe->cache[s].mem);
    pe->cache[s] = (struct cache_entry) { 0 };
  }
  pthread_mutex_unlock (&pe->mu);

  /* loaded into a private entry, published into slot (if any) under mu */
  struct cache_entry got = { 0 };
  int rc = fetch_chunk (pe, i, &got, err);
  if (rc == 0)
    memcpy (out, got.data + a, n);
  pthread_mutex_lock (&pe->mu);
  if (s != LRU_NONE) {
    if (rc == 0) {
      got.seen = parts;
      got.next = a + n;
      pe->cache[s] = got;
      got.mem = NULL;
    }
    lru_release (pe->lru, s, rc == 0);
    pthread_cond_broadcast (&pe->loaded);
  }
  pthread_mutex_unlock (&pe->mu);
  free (got.mem);
  return rc;
}

/* Bytes of the point (not the overlay) at [off, off+count). */
static int
read_base (struct point_export *pe, uint8_t *out, uint64_t count, uint64_t off,
           struct vb_error *err)
{
  while (count > 0) {
    uint64_t i = off / pe->cs;
    uint32_t a = (uint32_t) (off % pe->cs);
    uint32_t n = (uint32_t) min64 (chunk_len (pe, i) - a, count);
    int rc = 0;
    if (index_is_zero (&pe->ix, i))
      memset (out, 0, n);
    else
      rc = chunk_read (pe, i, a, n, out, err);
    if (rc < 0)
      return rc;
    out += n;
    off += n;
    count -= n;
  }
  return 0;
}

/* ---- the overlay ----------------------------------------------------------- */

/* The bitmap header this export expects (docs/serve.md). */
static void
map_header (const struct point_export *pe, uint8_t h[OV_HEADER])
{
  memset (h, 0, OV_HEADER);
  memcpy (h, OV_MAGIC, 8);
  le32_put (h + 8, PE_OVERLAY_BLOCK);
  le32_put (h + 12, OV_HEADER);
  le64_put (h + 16, pe->size);
  le64_put (h + 24, pe->nblocks);
  snprintf ((char *) h + 32, 128, "%s", pe_point_id (pe));
  snprintf ((char *) h + 160, 64, "%s", pe_disk_key (pe));
}

/* Create FILE (sparse, the disk's size) and FILE.bitmap (all clear). */
static int
overlay_create (struct point_export *pe, const char *map, struct vb_error *err)
{
  pe->ov_fd = open (pe->ov_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (pe->ov_fd < 0)
    return vb_errno (err, errno, "cannot create overlay '%s'", pe->ov_path);
  if (ftruncate (pe->ov_fd, (off_t) pe->size) < 0) {
    int e = errno;
    unlink (pe->ov_path);
    return vb_errno (err, e, "cannot size overlay '%s'", pe->ov_path);
  }
  size_t blen = (size_t) ((pe->nblocks + 7) / 8);
  uint8_t *buf = calloc (1, OV_HEADER + blen);
  if (!buf) {
    unlink (pe->ov_path);
    return vb_errno (err, ENOMEM, "cannot create overlay '%s'", pe->ov_path);
  }
  map_header (pe, buf);
  int rc = vio_write_file_atomic (map, buf, OV_HEADER + blen, err);
  free (buf);
  if (rc == 0 && chmod (map, 0600) < 0)
    rc = vb_errno (err, errno, "cannot set the mode of '%s'", map);
  if (rc < 0)
    unlink (pe->ov_path);
  return rc;
}

/* Check an existing FILE.bitmap against this point and load the bits. */
static int
overlay_load_map (struct point_export *pe, const char *map, struct vb_error *err)
{
  uint8_t want[OV_HEADER], got[OV_HEADER];
  map_header (pe, want);
  size_t blen = (size_t) ((pe->nblocks + 7) / 8);
  int64_t sz = vio_size (pe->map_fd);
  if (sz != (int64_t) (OV_HEADER + blen) || vio_pread (pe->map_fd, got, OV_HEADER, 0) < 0
      || memcmp (got, OV_MAGIC, 8) != 0)
    return vb_err (err, EINVAL, "'%s' is not a vmback overlay bitmap", map);
  if (memcmp (got, want, OV_HEADER) != 0)
    return vb_err (err, EINVAL, "overlay '%s' belongs to disk %.64s of point %.128s "
                   "(%llu bytes), not to disk %s of point %s", pe->ov_path,
                   (const char *) got + 160, (const char *) got + 32,
                   (unsigned long long) le64_get (got + 16), pe_disk_key (pe),
                   pe_point_id (pe));
  int rc = vio_pread (pe->map_fd, pe->bitmap, blen, OV_HEADER);
  if (rc < 0)
    return vb_errno (err, -rc, "cannot read overlay bitmap '%s'", map);
  return 0;
}

/* Open FILE and FILE.bitmap, creating both when FILE does not exist. */
static int
overlay_open (struct point_export *pe, const char *path, struct vb_error *err)
{
  pe->nblocks = (pe->size + PE_OVERLAY_BLOCK - 1) / PE_OVERLAY_BLOCK;
  pe->bitmap = calloc (1, (size_t) ((pe->nblocks + 7) / 8) + 1);
  pe->ov_path = strdup (path);
  char *map = NULL;
  if (!pe->bitmap || !pe->ov_path || asprintf (&map, "%s.bitmap", path) < 0)
    return vb_errno (err, ENOMEM, "cannot open overlay '%s'", path);
  struct stat st;
  int rc = 0;
  bool have_data = stat (path, &st) == 0, have_map = stat (map, &st) == 0;
  if (!have_data && !have_map)
    rc = overlay_create (pe, map, err);
  else if (!have_map)
    rc = vb_err (err, EEXIST, "'%s' exists but is not a vmback overlay (no '%s')", path, map);
  else if (!have_data)
    rc = vb_err (err, ENOENT, "overlay data file '%s' is missing (its bitmap '%s' exists)",
                 path, map);
  else if ((pe->ov_fd = open (path, O_RDWR | O_CLOEXEC)) < 0)
    rc = vb_errno (err, errno, "cannot open overlay '%s'", path);
  else if (vio_size (pe->ov_fd) != (int64_t) pe->size)
    rc = vb_err (err, EINVAL, "overlay '%s' is not %llu bytes long", path,
                 (unsigned long long) pe->size);
  if (rc == 0 && flock (pe->ov_fd, LOCK_EX | LOCK_NB) < 0)
    rc = errno == EWOULDBLOCK
      ? vb_err (err, EBUSY, "overlay '%s' is in use by another server", path)
      : vb_errno (err, errno, "cannot lock overlay '%s'", path);
  if (rc == 0 && (pe->map_fd = open (map, O_RDWR | O_CLOEXEC)) < 0)
    rc = vb_errno (err, errno, "cannot open overlay bitmap '%s'", map);
  if (rc == 0 && have_map)
    rc = overlay_load_map (pe, map, err);
  free (map);
  return rc;
}

/* ---- open / close ---------------------------------------------------------- */

/* Index of the disk named key (NULL = first) in pe->m, or an error. */
static int
pick_disk (struct point_export *pe, const char *key, struct vb_error *err)
{
  if (pe->m->n_disks == 0)
    return vb_err (err, ENOENT, "point %s has no disks", pe->m->id);
  if (!key)
    return 0;
  char names[512] = "";
  for (size_t i = 0; i < pe->m->n_disks; i++) {
    if (strcmp (pe->m->disks[i].key, key) == 0)
      return (int) i;
    size_t l = strlen (names);
    snprintf (names + l, sizeof names - l, "%s%s", i ? ", " : "", pe->m->disks[i].key);
  }
  return vb_err (err, ENOENT, "point %s has no disk '%s' (it has: %s)", pe->m->id, key, names);
}

/* Allocate the cache: cache_bytes / chunk size slots, at least one and at
 * most LRU_MAX_SLOTS (4 TiB of the smallest chunks). */
static int
cache_alloc (struct point_export *pe, uint64_t bytes, struct vb_error *err)
{
  uint64_t n = (bytes ? bytes : PE_DEFAULT_CACHE) / pe->cs;
  pe->ncache = n < 1 ? 1 : n > LRU_MAX_SLOTS ? LRU_MAX_SLOTS : n;
  pe->cache = calloc (pe->ncache, sizeof *pe->cache);
  pe->lru = lru_new ((uint32_t) pe->ncache);
  if (!pe->cache || !pe->lru)
    return vb_errno (err, ENOMEM, "cannot allocate the chunk cache");
  return 0;
}

/* Open a point's disk for serving. */
int
pe_open (struct repo *r, const char *point, const struct pe_opts *o,
         struct point_export **out, struct vb_error *err)
{
  *out = NULL;
  struct point_export *pe = calloc (1, sizeof *pe);
  if (!pe || !(pe->m = calloc (1, sizeof *pe->m))) {
    free (pe);
    return vb_errno (err, ENOMEM, "cannot open point %s", point);
  }
  pe->r = r;
  pe->ov_fd = pe->map_fd = -1;
  pthread_mutex_init (&pe->mu, NULL);
  pthread_cond_init (&pe->loaded, NULL);
  pthread_rwlock_init (&pe->ov, NULL);
  int rc = repo_find_point (r, point, pe->m, err);
  if (rc == 0 && (rc = pick_disk (pe, o->disk, err)) >= 0) {
    pe->disk = rc;
    rc = engine_load_index (r, pe->m, pe->disk, &pe->ix, err);
  }
  if (rc == 0) {
    pe->size = pe->ix.disk_size;
    pe->cs = pe->ix.chunk_size;
    rc = cache_alloc (pe, o->cache_bytes, err);
  }
  if (rc == 0 && o->overlay)
    rc = overlay_open (pe, o->overlay, err);
  if (rc < 0) {
    pe_close (pe, NULL);
    return rc;
  }
  *out = pe;
  return 0;
}

/* Flush the overlay and release everything. */
int
pe_close (struct point_export *pe, struct vb_error *err)
{
  if (!pe)
    return 0;
  int rc = pe->ov_fd >= 0 && pe->map_fd >= 0 ? pe_flush (pe, err) : 0;
  if (pe->ov_fd >= 0)
    close (pe->ov_fd);
  if (pe->map_fd >= 0)
    close (pe->map_fd);
  for (uint64_t k = 0; pe->cache && k < pe->ncache; k++)
    free (pe->cache[k].mem);
  free (pe->cache);
  lru_free (pe->lru);
  free (pe->bitmap);
  free (pe->ov_path);
  index_free (&pe->ix);
  free (pe->m);
  pthread_mutex_destroy (&pe->mu);
  pthread_cond_destroy (&pe->loaded);
  pthread_rwlock_destroy (&pe->ov);
  free (pe);
  return rc;
}

/* Accessors. */
uint64_t pe_size (const struct point_export *pe) { return pe->size; }
uint32_t pe_chunk_size (const struct point_export *pe) { return pe->cs; }
bool pe_writable (const struct point_export *pe) { return pe->ov_fd >= 0; }
const char *pe_point_id (const struct point_export *pe) { return pe->m->id; }
const char *pe_disk_key (const struct point_export *pe) { return pe->m->disks[pe->disk].key; }

/* ---- I/O ------------------------------------------------------------------- */

/* Read, taking each run of blocks from the overlay or from the point. */
int
pe_pread (struct point_export *pe, void *buf, size_t count, uint64_t off,
          struct vb_error *err)
{
  int rc = check_range (pe, count, off, "read", err);
  if (rc < 0 || count == 0)
    return rc;
  if (pe->ov_fd < 0)
    return read_base (pe, buf, count, off, err);
  uint8_t *out = buf;
  uint64_t end = off + count;
  pthread_rwlock_rdlock (&pe->ov);
  while (off < end && rc == 0) {
    uint64_t b = off / PE_OVERLAY_BLOCK;
    bool in_ov = bit_get (pe, b);
    uint64_t stop = min64 ((b + 1) * PE_OVERLAY_BLOCK, end);
    while (stop < end && bit_get (pe, stop / PE_OVERLAY_BLOCK) == in_ov)
      stop = min64 (stop + PE_OVERLAY_BLOCK, end);
    if (in_ov && (rc = vio_pread (pe->ov_fd, out, stop - off, off)) < 0)
      vb_errno (err, -rc, "cannot read overlay '%s' at offset %llu", pe->ov_path,
                (unsigned long long) off);
    else if (!in_ov)
      rc = read_base (pe, out, stop - off, off, err);
    out += stop - off;
    off = stop;
  }
  pthread_rwlock_unlock (&pe->ov);
  return rc;
}

/* Write the part [off, off+n) of block b; a new block not wholly
 * covered is first filled from the point. */
static int
write_block (struct point_export *pe, uint64_t b, const uint8_t *src, uint64_t n,
             uint64_t off, uint8_t *tmp, struct vb_error *err)
{
  uint64_t boff = b * PE_OVERLAY_BLOCK;
  uint32_t blen = block_len (pe, b);
  int rc;
  if (bit_get (pe, b) || n == blen)
    rc = vio_pwrite (pe->ov_fd, src, n, off);
  else {
    if ((rc = read_base (pe, tmp, blen, boff, err)) < 0)
      return rc;
    memcpy (tmp + (off - boff), src, n);
    rc = vio_pwrite (pe->ov_fd, tmp, blen, boff);
  }
  if (rc < 0)
    return vb_errno (err, -rc, "cannot write overlay '%s' at offset %llu", pe->ov_path,
                     (unsigned long long) off);
  if (!bit_get (pe, b)) {
    bit_set (pe, b);
    pe->dirty = true;
  }
  return 0;
}

/* Write into the overlay, block by block. */
int
pe_pwrite (struct point_export *pe, const void *buf, size_t count, uint64_t off,
           struct vb_error *err)
{
  if (pe->ov_fd < 0)
    return vb_err (err, EROFS, "disk %s of point %s is served read-only "
                   "(no writable overlay)", pe_disk_key (pe), pe_point_id (pe));
  int rc = check_range (pe, count, off, "write", err);
  if (rc < 0 || count == 0)
    return rc;
  uint8_t *tmp = malloc (PE_OVERLAY_BLOCK);
  if (!tmp)
    return vb_errno (err, ENOMEM, "cannot write overlay '%s'", pe->ov_path);
  const uint8_t *src = buf;
  uint64_t end = off + count;
  pthread_rwlock_wrlock (&pe->ov);
  while (off < end && rc == 0) {
    uint64_t b = off / PE_OVERLAY_BLOCK;
    uint64_t n = min64 ((b + 1) * PE_OVERLAY_BLOCK, end) - off;
    rc = write_block (pe, b, src, n, off, tmp, err);
    src += n;
    off += n;
  }
  pthread_rwlock_unlock (&pe->ov);
  free (tmp);
  return rc;
}

/* Sync the overlay data, then the bitmap. */
int
pe_flush (struct point_export *pe, struct vb_error *err)
{
  if (pe->ov_fd < 0)
    return 0;
  int rc = 0;
  pthread_rwlock_wrlock (&pe->ov);
  if (pe->dirty) {
    size_t blen = (size_t) ((pe->nblocks + 7) / 8);
    if ((rc = vio_fsync (pe->ov_fd)) < 0)
      vb_errno (err, -rc, "cannot flush overlay '%s'", pe->ov_path);
    else if ((rc = vio_pwrite (pe->map_fd, pe->bitmap, blen, OV_HEADER)) < 0
             || (rc = vio_fsync (pe->map_fd)) < 0)
      vb_errno (err, -rc, "cannot write the bitmap of overlay '%s'", pe->ov_path);
    else
      pe->dirty = false;
  }
  pthread_rwlock_unlock (&pe->ov);
  return rc;
}

/* ---- block status ---------------------------------------------------------- */

/* Extents being merged before they are passed on. */
struct ext_acc {
  pe_extent_fn fn;
  void *opaque;
  uint64_t off, len;
  bool zero;
};

/* Add [off, off+len) of kind zero, passing on the previous run when the
 * kind changes. */
static int
ext_add (struct ext_acc *a, uint64_t off, uint64_t len, bool zero)
{
  if (a->len && a->zero == zero) {
    a->len += len;
    return 0;
  }
  int rc = a->len ? a->fn (a->opaque, a->off, a->len, a->zero) : 0;
  a->off = off;
  a->len = len;
  a->zero = zero;
  return rc;
}

/* Zero chunks are holes unless a block of them is in the overlay. */
int
pe_extents (struct point_export *pe, uint64_t off, uint64_t count,
            pe_extent_fn fn, void *opaque, struct vb_error *err)
{
  int rc = check_range (pe, count, off, "block status", err);
  if (rc < 0 || count == 0)
    return rc;
  struct ext_acc a = { .fn = fn, .opaque = opaque };
  uint64_t end = off + count;
  if (pe->ov_fd >= 0)
    pthread_rwlock_rdlock (&pe->ov);
  while (off < end && rc == 0) {
    uint64_t i = off / pe->cs;
    uint64_t cend = min64 (i * pe->cs + chunk_len (pe, i), end);
    bool zero = index_is_zero (&pe->ix, i);
    while (pe->ov_fd >= 0 && zero && off < cend && rc == 0) {
      uint64_t b = off / PE_OVERLAY_BLOCK;
      uint64_t bend = min64 ((b + 1) * PE_OVERLAY_BLOCK, cend);
      rc = ext_add (&a, off, bend - off, !bit_get (pe, b));
      off = bend;
    }
    if (off < cend && rc == 0)
      rc = ext_add (&a, off, cend - off, zero);
    off = cend;
  }
  if (pe->ov_fd >= 0)
    pthread_rwlock_unlock (&pe->ov);
  if (rc == 0 && a.len)
    rc = fn (opaque, a.off, a.len, a.zero);
  if (rc < 0 && err && err->code == 0)
    vb_err (err, -rc, "block status of disk %s of point %s failed", pe_disk_key (pe),
            pe_point_id (pe));
  return rc;
}

/* Cache counters. */
void
pe_get_stats (struct point_export *pe, struct pe_stats *s)
{
  pthread_mutex_lock (&pe->mu);
  s->hits = pe->hits;
  s->misses = pe->misses;
  s->capacity = pe->ncache;
  s->reused = lru_protected (pe->lru);
  s->cached = 0;
  for (uint64_t k = 0; k < pe->ncache; k++)
    s->cached += pe->cache[k].data != NULL;
  pthread_mutex_unlock (&pe->mu);
}
