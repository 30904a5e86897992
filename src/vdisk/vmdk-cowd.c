/* vmback vdisk: ESXi vmfsSparse (COWD) delta extents, read and write.
 *
 * Layout (docs/vdisk-cowd.md): a 2048-byte header at offset 0 (magic
 * "COWD", version 1, capacity, grain size, grain directory offset and
 * size, next free sector), a grain directory of 32-bit sector numbers of
 * grain tables, grain tables of 4096 32-bit sector numbers of grains.
 * Entry 0 = not allocated (read the parent), grain table entry 1 = grain
 * reads as zeros.  New grain tables and grains are appended at freeSector.
 *
 * Write order for crash safety: bump freeSector in the header (reserves
 * the space; a crash only leaks it), write the data, then link it with
 * the grain table entry (a crash before that leaves the old mapping). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vdisk-int.h"

#define COWD_MAGIC 0x44574f43u         /* "COWD" read as little endian */
#define COWD_HDR_SIZE 2048u            /* header bytes (4 sectors) */
#define COWD_HDR_SECTORS (COWD_HDR_SIZE / VDISK_SECTOR)
#define COWD_GT_ENTRIES 4096u          /* entries per grain table */
#define COWD_GT_BYTES (COWD_GT_ENTRIES * 4u)
#define COWD_GT_SECTORS (COWD_GT_BYTES / VDISK_SECTOR)  /* 32 */
#define COWD_KNOWN_FLAGS 0x3u          /* ESXi writes 3; other bits unknown */
#define COWD_MAX_GRAIN 2048u           /* grain at most 1 MiB (2048 sectors) */
#define COWD_DEFAULT_GRAIN 1u          /* ESXi deltas use 512-byte grains */
#define COWD_GTE_ZEROED 1u
/* numSectors is 32 bits, so with 1-sector grains at most
 * 2^32 / 4096 = 2^20 directory entries are ever needed (4 MiB). */
#define COWD_MAX_GD_ENTRIES (1u << 20)
#define COWD_CACHE 64                  /* grain tables cached (1 MiB) */

/* Header field offsets. */
#define H_MAGIC 0
#define H_VERSION 4
#define H_FLAGS 8
#define H_NUM_SECTORS 12
#define H_GRAIN 16
#define H_GD_OFFSET 20
#define H_NUM_GD 24
#define H_FREE_SECTOR 28
#define H_GENERATION 1060

struct cowd_gt {
  bool valid;
  uint32_t gd_index;
  uint32_t *e;                  /* COWD_GT_ENTRIES, host order */
};

struct cowd {
  uint32_t num_sectors;
  uint32_t grain_sectors;
  uint32_t gd_offset;           /* sectors */
  uint32_t n_gd;                /* entries in the directory */
  uint32_t n_gd_used;           /* entries covering num_sectors */
  uint32_t data_start;          /* first sector after header and directory */
  uint32_t free_sector;         /* next free sector (header freeSector) */
  uint32_t *gd;                 /* n_gd entries, host order */
  struct cowd_gt cache[COWD_CACHE];
};

/* Score the first bytes of a file: "COWD" magic. */
static int
cowd_probe (const uint8_t *buf, size_t len)
{
  if (len >= 4 && le32_get (buf) == COWD_MAGIC)
    return 100;
  return 0;
}

/* Free the private state. */
static void
cowd_free (struct cowd *c)
{
  if (c == NULL)
    return;
  for (int i = 0; i < COWD_CACHE; i++)
    free (c->cache[i].e);
  free (c->gd);
  free (c);
}

/* Check one header field after another; each failure says which. */
static int
cowd_check_header (struct vdisk_extent *ext, const uint8_t *h,
                   uint64_t file_size, struct cowd *c, struct vb_error *err)
{
  const char *n = ext->name;
  uint32_t v;

  if ((v = le32_get (h + H_MAGIC)) != COWD_MAGIC)
    return vb_err (err, EINVAL, "bad COWD magic 0x%08x in '%s'", v, n);
  if ((v = le32_get (h + H_VERSION)) != 1)
    return vb_err (err, ENOTSUP, "unsupported COWD version %u in '%s'", v, n);
  if ((v = le32_get (h + H_FLAGS)) & ~COWD_KNOWN_FLAGS)
    return vb_err (err, ENOTSUP, "unsupported COWD flags 0x%x in '%s'", v, n);

  c->num_sectors = le32_get (h + H_NUM_SECTORS);
  if (c->num_sectors == 0)
    return vb_err (err, EINVAL, "COWD capacity is 0 sectors in '%s'", n);
  if (ext->length > (uint64_t) c->num_sectors * VDISK_SECTOR)
    return vb_err (err, EINVAL,
                   "COWD capacity %u sectors of '%s' is smaller than its "
                   "extent (%llu sectors)", c->num_sectors, n,
                   (unsigned long long) (ext->length / VDISK_SECTOR));

  c->grain_sectors = le32_get (h + H_GRAIN);
  if (c->grain_sectors == 0 || c->grain_sectors > COWD_MAX_GRAIN
      || (c->grain_sectors & (c->grain_sectors - 1)) != 0)
    return vb_err (err, EINVAL, "bad COWD grain size %u sectors in '%s'",
                   c->grain_sectors, n);

  /* Entries needed: ceil (num_sectors / (4096 * grain)); the product is at
   * most 4096 * 2048 = 2^23, no overflow; the result is at most 2^20. */
  uint64_t cover = (uint64_t) COWD_GT_ENTRIES * c->grain_sectors;
  c->n_gd_used = (uint32_t) (((uint64_t) c->num_sectors + cover - 1) / cover);
  c->n_gd = le32_get (h + H_NUM_GD);
  if (c->n_gd < c->n_gd_used)
    return vb_err (err, EINVAL,
                   "COWD grain directory of '%s' has %u entries, %u needed",
                   n, c->n_gd, c->n_gd_used);
  if (c->n_gd > COWD_MAX_GD_ENTRIES)
    return vb_err (err, EINVAL,
                   "COWD grain directory of '%s' is too large (%u entries)",
                   n, c->n_gd);

  c->gd_offset = le32_get (h + H_GD_OFFSET);
  if (c->gd_offset < COWD_HDR_SECTORS)
    return vb_err (err, EINVAL,
                   "COWD grain directory of '%s' at sector %u overlaps the "
                   "header", n, c->gd_offset);
  /* gd_offset < 2^32 and n_gd * 4 <= 2^22 bytes: sums fit in 64 bits. */
  uint64_t gd_bytes = (uint64_t) c->n_gd * 4;
  uint64_t gd_end = (uint64_t) c->gd_offset * VDISK_SECTOR + gd_bytes;
  if (gd_end > file_size)
    return vb_err (err, EINVAL,
                   "COWD grain directory of '%s' (sector %u, %u entries) is "
                   "past the end of the file", n, c->gd_offset, c->n_gd);
  uint64_t ds = (gd_end + VDISK_SECTOR - 1) / VDISK_SECTOR;
  if (ds > UINT32_MAX)
    return vb_err (err, EINVAL, "COWD grain directory of '%s' is out of range",
                   n);
  c->data_start = (uint32_t) ds;

  c->free_sector = le32_get (h + H_FREE_SECTOR);
  uint64_t file_sectors = (file_size + VDISK_SECTOR - 1) / VDISK_SECTOR;
  if (c->free_sector < c->data_start)
    return vb_err (err, EINVAL,
                   "COWD free sector %u of '%s' is inside the metadata "
                   "(which ends at sector %u)", c->free_sector, n,
                   c->data_start);
  if (c->free_sector > file_sectors)
    return vb_err (err, EINVAL,
                   "COWD free sector %u of '%s' is past the end of the file "
                   "(%llu sectors)", c->free_sector, n,
                   (unsigned long long) file_sectors);
  return 0;
}

/* Is a grain directory entry valid (0, or a whole table below free)? */
static bool
cowd_gde_ok (const struct cowd *c, uint32_t gde)
{
  return gde == 0
    || (gde >= c->data_start
        && (uint64_t) gde + COWD_GT_SECTORS <= c->free_sector);
}

/* Is a grain table entry valid (0, zeroed, or a whole grain below free)? */
static bool
cowd_gte_ok (const struct cowd *c, uint32_t gte)
{
  return gte == 0 || gte == COWD_GTE_ZEROED
    || (gte >= c->data_start
        && (uint64_t) gte + c->grain_sectors <= c->free_sector);
}

/* Read the header, validate it and load the grain directory. */
static int
cowd_open (struct vdisk_extent *ext, struct vb_error *err)
{
  uint8_t h[COWD_HDR_SIZE];
  int64_t sz = vio_size (ext->fd);
  if (sz < 0)
    return vb_errno (err, (int) -sz, "cannot stat '%s'", ext->name);
  if ((uint64_t) sz < COWD_HDR_SIZE)
    return vb_err (err, EINVAL,
                   "'%s' is too small for a COWD header (%lld bytes)",
                   ext->name, (long long) sz);
  int r = vio_pread (ext->fd, h, sizeof h, 0);
  if (r < 0)
    return vb_errno (err, -r, "cannot read COWD header of '%s'", ext->name);

  struct cowd *c = calloc (1, sizeof *c);
  if (c == NULL)
    return vb_errno (err, ENOMEM, "cannot open '%s'", ext->name);
  r = cowd_check_header (ext, h, (uint64_t) sz, c, err);
  if (r < 0)
    goto fail;

  /* n_gd <= 2^20, so at most 4 MiB. */
  c->gd = malloc ((size_t) c->n_gd * 4);
  if (c->gd == NULL) {
    r = vb_errno (err, ENOMEM, "cannot load grain directory of '%s'",
                  ext->name);
    goto fail;
  }
  r = vio_pread (ext->fd, c->gd, (size_t) c->n_gd * 4,
                 (uint64_t) c->gd_offset * VDISK_SECTOR);
  if (r < 0) {
    r = vb_errno (err, -r, "cannot read grain directory of '%s'", ext->name);
    goto fail;
  }
  for (uint32_t i = 0; i < c->n_gd; i++) {
    c->gd[i] = le32_get (&c->gd[i]);
    if (i < c->n_gd_used && !cowd_gde_ok (c, c->gd[i])) {
      r = vb_err (err, EINVAL,
                  "grain directory entry %u of '%s' points to sector %u, "
                  "outside the allocated area [%u, %u)", i, ext->name,
                  c->gd[i], c->data_start, c->free_sector);
      goto fail;
    }
  }

  if (ext->length == 0)
    ext->length = (uint64_t) c->num_sectors * VDISK_SECTOR;
  ext->grain = c->grain_sectors * VDISK_SECTOR;
  ext->priv = c;
  return 0;

fail:
  cowd_free (c);
  return r;
}

/* Free the state; all metadata is written through, nothing to flush. */
static int
cowd_close (struct vdisk_extent *ext, struct vb_error *err)
{
  cowd_free (ext->priv);
  ext->priv = NULL;
  return 0;
}

/* The grain table for directory entry gdi (cached), or NULL with err.
 * The directory entry must be non-zero. */
static uint32_t *
cowd_get_gt (struct vdisk_extent *ext, uint32_t gdi, struct vb_error *err)
{
  struct cowd *c = ext->priv;
  struct cowd_gt *slot = &c->cache[gdi % COWD_CACHE];
  if (slot->valid && slot->gd_index == gdi)
    return slot->e;
  if (slot->e == NULL) {
    slot->e = malloc (COWD_GT_BYTES);
    if (slot->e == NULL) {
      vb_errno (err, ENOMEM, "cannot load grain table of '%s'", ext->name);
      return NULL;
    }
  }
  slot->valid = false;
  int r = vio_pread (ext->fd, slot->e, COWD_GT_BYTES,
                     (uint64_t) c->gd[gdi] * VDISK_SECTOR);
  if (r < 0) {
    vb_errno (err, -r, "cannot read grain table %u of '%s'", gdi, ext->name);
    return NULL;
  }
  for (uint32_t i = 0; i < COWD_GT_ENTRIES; i++)
    slot->e[i] = le32_get (&slot->e[i]);
  slot->valid = true;
  slot->gd_index = gdi;
  return slot->e;
}

/* Grain table entry of grain g (0 when its table is not allocated), or a
 * negative errno when the table cannot be read or the entry is corrupt. */
static int64_t
cowd_lookup (struct vdisk_extent *ext, uint64_t g, struct vb_error *err)
{
  struct cowd *c = ext->priv;
  uint64_t gdi = g / COWD_GT_ENTRIES;
  if (gdi >= c->n_gd_used)
    return vb_err (err, EIO, "grain %llu is past the end of '%s'",
                   (unsigned long long) g, ext->name);
  if (c->gd[gdi] == 0)
    return 0;
  uint32_t *gt = cowd_get_gt (ext, (uint32_t) gdi, err);
  if (gt == NULL)
    return -EIO;
  uint32_t gte = gt[g % COWD_GT_ENTRIES];
  if (!cowd_gte_ok (c, gte))
    return vb_err (err, EIO,
                   "grain table entry %llu of '%s' points to sector %u, "
                   "outside the allocated area [%u, %u)",
                   (unsigned long long) g, ext->name, gte, c->data_start,
                   c->free_sector);
  return gte;
}

/* Map a grain table entry to an extent status. */
static int
cowd_gte_status (uint32_t gte)
{
  return gte == 0 ? EXT_UNALLOC : gte == COWD_GTE_ZEROED ? EXT_ZERO : EXT_DATA;
}

/* Status of a run of grains starting at off (stops at the first change). */
static int
cowd_status (struct vdisk_extent *ext, uint64_t off, uint64_t len,
             uint64_t *pnum, struct vb_error *err)
{
  struct cowd *c = ext->priv;
  uint64_t gb = (uint64_t) c->grain_sectors * VDISK_SECTOR;
  uint64_t done = 0;
  int st = -1;
  while (done < len) {
    uint64_t pos = off + done;
    uint64_t g = pos / gb;
    uint64_t run;             /* bytes from pos with the status of s */
    int s;
    if (g / COWD_GT_ENTRIES < c->n_gd_used && c->gd[g / COWD_GT_ENTRIES] == 0) {
      /* whole table unallocated: skip to the end of its coverage */
      s = EXT_UNALLOC;
      run = (g / COWD_GT_ENTRIES + 1) * COWD_GT_ENTRIES * gb - pos;
    } else {
      int64_t gte = cowd_lookup (ext, g, err);
      if (gte < 0)
        return (int) gte;
      s = cowd_gte_status ((uint32_t) gte);
      run = (g + 1) * gb - pos;
    }
    if (st >= 0 && s != st)
      break;
    st = s;
    done += run < len - done ? run : len - done;
  }
  *pnum = done;
  return st;
}

/* Read data grains; zeroed or unallocated grains read as zeros (the core
 * only asks for EXT_DATA ranges).  File-contiguous grains are read with
 * one call. */
static int
cowd_pread (struct vdisk_extent *ext, void *buf, size_t count, uint64_t off,
            struct vb_error *err)
{
  struct cowd *c = ext->priv;
  uint64_t gb = (uint64_t) c->grain_sectors * VDISK_SECTOR;
  uint8_t *p = buf;
  uint8_t *run_buf = NULL;     /* pending contiguous read */
  uint64_t run_foff = 0;
  size_t run_len = 0;
  while (count > 0) {
    uint64_t g = off / gb, in = off % gb;
    size_t n = (size_t) (gb - in < count ? gb - in : count);
    int64_t gte = cowd_lookup (ext, g, err);
    if (gte < 0)
      return (int) gte;
    if (gte <= COWD_GTE_ZEROED) {
      memset (p, 0, n);
    } else {
      uint64_t foff = (uint64_t) gte * VDISK_SECTOR + in;
      if (run_len > 0 && run_foff + run_len == foff && run_buf + run_len == p) {
        run_len += n;
      } else {
        if (run_len > 0) {
          int r = vio_pread (ext->fd, run_buf, run_len, run_foff);
          if (r < 0)
            return vb_errno (err, -r, "cannot read grain of '%s' at offset "
                             "%llu", ext->name, (unsigned long long) run_foff);
        }
        run_buf = p;
        run_foff = foff;
        run_len = n;
      }
    }
    p += n;
    off += n;
    count -= n;
  }
  if (run_len > 0) {
    int r = vio_pread (ext->fd, run_buf, run_len, run_foff);
    if (r < 0)
      return vb_errno (err, -r, "cannot read grain of '%s' at offset %llu",
                       ext->name, (unsigned long long) run_foff);
  }
  return 0;
}

/* Write the freeSector field of the header. */
static int
cowd_write_free (struct vdisk_extent *ext, uint32_t free_sector,
                 struct vb_error *err)
{
  uint8_t b[4];
  le32_put (b, free_sector);
  int r = vio_pwrite (ext->fd, b, 4, H_FREE_SECTOR);
  if (r < 0)
    return vb_errno (err, -r, "cannot update COWD header of '%s'", ext->name);
  return 0;
}

/* Allocate a zeroed grain table for directory entry gdi at sector s
 * (already reserved): write the table, then the directory entry. */
static int
cowd_alloc_gt (struct vdisk_extent *ext, uint32_t gdi, uint32_t s,
               struct vb_error *err)
{
  struct cowd *c = ext->priv;
  static const uint8_t zeros[COWD_GT_BYTES];
  int r = vio_pwrite (ext->fd, zeros, sizeof zeros,
                      (uint64_t) s * VDISK_SECTOR);
  if (r < 0)
    return vb_errno (err, -r, "cannot write grain table of '%s'", ext->name);
  uint8_t b[4];
  le32_put (b, s);
  r = vio_pwrite (ext->fd, b, 4,
                  (uint64_t) c->gd_offset * VDISK_SECTOR + (uint64_t) gdi * 4);
  if (r < 0)
    return vb_errno (err, -r, "cannot update grain directory of '%s'",
                     ext->name);
  c->gd[gdi] = s;
  /* a stale cached copy of an earlier table at this index is impossible
   * (the entry was 0), but drop the slot to be safe */
  struct cowd_gt *slot = &c->cache[gdi % COWD_CACHE];
  if (slot->valid && slot->gd_index == gdi)
    slot->valid = false;
  return 0;
}

/* Write [off, off+count) which lies inside grain table gdi: existing
 * grains in place, new grains at *next (already reserved), then link the
 * new grains with one write of the changed grain table entries. */
static int
cowd_write_in_gt (struct vdisk_extent *ext, const uint8_t *buf, size_t count,
                  uint64_t off, uint32_t *next, struct vb_error *err)
{
  struct cowd *c = ext->priv;
  uint64_t gb = (uint64_t) c->grain_sectors * VDISK_SECTOR;
  uint64_t g0 = off / gb, g1 = (off + count - 1) / gb;   /* inclusive */
  uint32_t gdi = (uint32_t) (g0 / COWD_GT_ENTRIES);
  uint32_t *gt = cowd_get_gt (ext, gdi, err);
  if (gt == NULL)
    return -EIO;
  uint32_t i0 = (uint32_t) (g0 % COWD_GT_ENTRIES);
  uint32_t i1 = (uint32_t) (g1 % COWD_GT_ENTRIES);
  /* new sector for each grain of the request, 0 = existing grain;
   * at most 4096 entries (16 KiB) */
  uint32_t *fresh = calloc (i1 - i0 + 1, sizeof *fresh);
  if (fresh == NULL)
    return vb_errno (err, ENOMEM, "cannot write '%s'", ext->name);
  int r = 0;
  const uint8_t *p = buf;
  const uint8_t *run_buf = NULL;
  uint64_t run_foff = 0;
  size_t run_len = 0;
  bool linked = false;
  for (uint32_t i = i0; i <= i1; i++) {
    uint64_t gpos = off - off % gb;     /* start of this grain */
    uint64_t in = off - gpos;
    size_t n = (size_t) (gb - in < count ? gb - in : count);
    uint32_t gte = gt[i];
    if (!cowd_gte_ok (c, gte)) {
      r = vb_err (err, EIO, "grain table entry %u of table %u of '%s' points "
                  "to sector %u, outside the allocated area", i, gdi,
                  ext->name, gte);
      goto out;
    }
    uint64_t foff;
    if (gte > COWD_GTE_ZEROED) {
      foff = (uint64_t) gte * VDISK_SECTOR + in;
    } else {
      fresh[i - i0] = *next;
      *next += c->grain_sectors;
      foff = (uint64_t) fresh[i - i0] * VDISK_SECTOR + in;
      if (n < gb) {
        /* Partial write of a new grain: the core promised whole grains;
         * if not, the rest reads as zeros (right for zeroed grains and
         * for deltas without a parent). */
        uint8_t *z = calloc (1, gb);
        if (z == NULL) {
          r = vb_errno (err, ENOMEM, "cannot write '%s'", ext->name);
          goto out;
        }
        r = vio_pwrite (ext->fd, z, gb, foff - in);
        free (z);
        if (r < 0) {
          r = vb_errno (err, -r, "cannot write grain of '%s'", ext->name);
          goto out;
        }
      }
    }
    if (run_len > 0 && run_foff + run_len == foff && run_buf + run_len == p) {
      run_len += n;
    } else {
      if (run_len > 0 && (r = vio_pwrite (ext->fd, run_buf, run_len,
                                          run_foff)) < 0) {
        r = vb_errno (err, -r, "cannot write grain of '%s' at offset %llu",
                      ext->name, (unsigned long long) run_foff);
        goto out;
      }
      run_buf = p;
      run_foff = foff;
      run_len = n;
    }
    p += n;
    off += n;
    count -= n;
  }
  if (run_len > 0 && (r = vio_pwrite (ext->fd, run_buf, run_len,
                                      run_foff)) < 0) {
    r = vb_errno (err, -r, "cannot write grain of '%s' at offset %llu",
                  ext->name, (unsigned long long) run_foff);
    goto out;
  }

  /* Link: update the cached table, then write the changed span. */
  uint32_t lo = UINT32_MAX, hi = 0;
  for (uint32_t i = i0; i <= i1; i++)
    if (fresh[i - i0] != 0) {
      gt[i] = fresh[i - i0];
      lo = i < lo ? i : lo;
      hi = i;
      linked = true;
    }
  if (linked) {
    uint8_t *le = malloc ((size_t) (hi - lo + 1) * 4);
    if (le == NULL) {
      r = vb_errno (err, ENOMEM, "cannot write '%s'", ext->name);
      goto out;
    }
    for (uint32_t i = lo; i <= hi; i++)
      le32_put (le + (size_t) (i - lo) * 4, gt[i]);
    r = vio_pwrite (ext->fd, le, (size_t) (hi - lo + 1) * 4,
                    (uint64_t) c->gd[gdi] * VDISK_SECTOR + (uint64_t) lo * 4);
    free (le);
    if (r < 0) {
      /* the cached table is now ahead of the file: drop it */
      c->cache[gdi % COWD_CACHE].valid = false;
      r = vb_errno (err, -r, "cannot write grain table of '%s'", ext->name);
      goto out;
    }
  }
out:
  free (fresh);
  return r;
}

/* Write: reserve the space for new grain tables and grains in one header
 * update, then write table by table. */
static int
cowd_pwrite (struct vdisk_extent *ext, const void *buf, size_t count,
             uint64_t off, struct vb_error *err)
{
  struct cowd *c = ext->priv;
  uint64_t gb = (uint64_t) c->grain_sectors * VDISK_SECTOR;
  uint64_t tb = gb * COWD_GT_ENTRIES;            /* bytes per table */
  if (count == 0)
    return 0;

  /* Pass 1: how many sectors to reserve. */
  uint64_t need = 0;
  for (uint64_t g = off / gb; g <= (off + count - 1) / gb; g++) {
    uint64_t gdi = g / COWD_GT_ENTRIES;
    if (gdi >= c->n_gd_used)
      return vb_err (err, EIO, "write past the end of '%s'", ext->name);
    if (c->gd[gdi] == 0) {
      /* new table and all its grains in the request */
      uint64_t last = (off + count - 1) / gb;
      uint64_t end = (gdi + 1) * COWD_GT_ENTRIES - 1;
      if (end > last)
        end = last;
      need += COWD_GT_SECTORS + (end - g + 1) * c->grain_sectors;
      g = end;
      continue;
    }
    int64_t gte = cowd_lookup (ext, g, err);
    if (gte < 0)
      return (int) gte;
    if (gte <= COWD_GTE_ZEROED)
      need += c->grain_sectors;
  }
  uint32_t next = c->free_sector;
  int r;
  if (need > 0) {
    if ((uint64_t) c->free_sector + need > UINT32_MAX)
      return vb_err (err, ENOSPC, "COWD delta '%s' is full (sector numbers "
                     "are 32 bits)", ext->name);
    /* grow the file over the reservation before the header claims it: a
     * freeSector past the end of the file makes the delta unopenable, and
     * a grain write that fails (or a crash) after the header update must
     * leave it openable */
    uint64_t end = ((uint64_t) c->free_sector + need) * VDISK_SECTOR;
    int64_t sz = vio_size (ext->fd);
    if (sz < 0)
      return vb_errno (err, (int) -sz, "cannot stat '%s'", ext->name);
    if ((uint64_t) sz < end && ftruncate (ext->fd, (off_t) end) < 0)
      return vb_errno (err, errno, "cannot extend '%s'", ext->name);
    r = cowd_write_free (ext, (uint32_t) (c->free_sector + need), err);
    if (r < 0)
      return r;
    c->free_sector = (uint32_t) (c->free_sector + need);
  }

  /* Pass 2: table by table. */
  const uint8_t *p = buf;
  while (count > 0) {
    uint64_t gdi = off / tb;
    size_t n = (size_t) ((gdi + 1) * tb - off < count ? (gdi + 1) * tb - off
                         : count);
    if (c->gd[gdi] == 0) {
      r = cowd_alloc_gt (ext, (uint32_t) gdi, next, err);
      if (r < 0)
        return r;
      next += COWD_GT_SECTORS;
    }
    r = cowd_write_in_gt (ext, p, n, off, &next, err);
    if (r < 0)
      return r;
    p += n;
    off += n;
    count -= n;
  }
  return 0;
}

/* fsync the file. */
static int
cowd_flush (struct vdisk_extent *ext, struct vb_error *err)
{
  int r = vio_fsync (ext->fd);
  return r < 0 ? vb_errno (err, -r, "cannot sync '%s'", ext->name) : 0;
}

/* Create an empty delta: header, zeroed directory, nothing allocated; the
 * file is rounded up to 4 KiB as ESXi does (a 12 GiB disk gives the
 * familiar 28672-byte fresh delta). */
static int
cowd_create (const char *path, const struct ext_create *cr,
             struct vb_error *err)
{
  uint32_t grain = cr->grain_sectors ? cr->grain_sectors : COWD_DEFAULT_GRAIN;
  if (cr->sectors == 0 || cr->sectors > UINT32_MAX)
    return vb_err (err, EINVAL, "cannot create '%s': a COWD delta holds 1 to "
                   "%u sectors, not %llu", path, UINT32_MAX,
                   (unsigned long long) cr->sectors);
  if (grain > COWD_MAX_GRAIN || (grain & (grain - 1)) != 0)
    return vb_err (err, EINVAL, "cannot create '%s': bad grain size %u "
                   "sectors", path, grain);
  uint64_t cover = (uint64_t) COWD_GT_ENTRIES * grain;
  uint32_t n_gd = (uint32_t) ((cr->sectors + cover - 1) / cover);
  /* n_gd <= 2^20: header + directory < 4 MiB + 2 KiB */
  uint64_t meta = COWD_HDR_SIZE + (uint64_t) n_gd * 4;
  uint64_t fsize = (meta + 4095) / 4096 * 4096;

  uint8_t *b = calloc (1, (size_t) fsize);
  if (b == NULL)
    return vb_errno (err, ENOMEM, "cannot create '%s'", path);
  le32_put (b + H_MAGIC, COWD_MAGIC);
  le32_put (b + H_VERSION, 1);
  le32_put (b + H_FLAGS, 3);
  le32_put (b + H_NUM_SECTORS, (uint32_t) cr->sectors);
  le32_put (b + H_GRAIN, grain);
  le32_put (b + H_GD_OFFSET, COWD_HDR_SECTORS);
  le32_put (b + H_NUM_GD, n_gd);
  le32_put (b + H_FREE_SECTOR, (uint32_t) (fsize / VDISK_SECTOR));
  le32_put (b + H_GENERATION, 1);

  int r = 0;
  int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    r = vb_errno (err, errno, "cannot create '%s'", path);
    free (b);
    return r;
  }
  if ((r = vio_pwrite (fd, b, (size_t) fsize, 0)) < 0)
    r = vb_errno (err, -r, "cannot write '%s'", path);
  else if ((r = vio_fsync (fd)) < 0)
    r = vb_errno (err, -r, "cannot sync '%s'", path);
  close (fd);
  free (b);
  if (r < 0)
    unlink (path);
  return r;
}

/* Bytes of allocated grains, counted in the grain tables (16 KiB read per
 * allocated table, about 0.8% of the data it maps at 512-byte grains).
 * If a table cannot be read, estimate from freeSector instead. */
static uint64_t
cowd_allocated (struct vdisk_extent *ext)
{
  struct cowd *c = ext->priv;
  uint64_t grains = 0, tables = 0;
  for (uint32_t d = 0; d < c->n_gd_used; d++) {
    if (c->gd[d] == 0)
      continue;
    tables++;
    uint32_t *gt = cowd_get_gt (ext, d, NULL);
    if (gt == NULL) {
      uint64_t used = c->free_sector - c->data_start;
      tables *= COWD_GT_SECTORS;
      return used > tables ? (used - tables) * VDISK_SECTOR : 0;
    }
    for (uint32_t i = 0; i < COWD_GT_ENTRIES; i++)
      grains += gt[i] > COWD_GTE_ZEROED;
  }
  return grains * c->grain_sectors * VDISK_SECTOR;
}

/* Report one problem through the callback. */
static void
cowd_report (vdisk_report_fn report, void *opaque, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
static void
cowd_report (vdisk_report_fn report, void *opaque, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (report)
    report (opaque, msg);
}

/* Mark sectors [s, s+n) used; report overlaps.  Returns 1 on overlap. */
static int
cowd_mark (uint8_t *bm, uint32_t s, uint32_t n)
{
  int dup = 0;
  for (uint32_t i = s; i < s + n; i++) {
    if (bm[i / 8] & (1u << (i % 8)))
      dup = 1;
    bm[i / 8] |= (uint8_t) (1u << (i % 8));
  }
  return dup;
}

/* Walk every table and entry: out-of-range pointers, tables or grains
 * sharing sectors.  Nothing is repairable (there is no redundant copy). */
static int
cowd_check (struct vdisk_extent *ext, bool repair, vdisk_report_fn report,
            void *opaque, struct vb_error *err)
{
  struct cowd *c = ext->priv;
  int problems = 0;
  /* Overlap bitmap: one bit per sector below freeSector, at most
   * 2^32 / 8 = 512 MiB; only built up to 64 MiB (32 GiB deltas). */
  uint8_t *bm = NULL;
  if (c->free_sector / 8 + 1 <= 64u << 20)
    bm = calloc (1, c->free_sector / 8 + 1);
  int64_t fsz = vio_size (ext->fd);
  if (fsz >= 0 && (uint64_t) c->free_sector * VDISK_SECTOR > (uint64_t) fsz) {
    cowd_report (report, opaque, "'%s': free sector %u is past the end of "
                 "the file", ext->name, c->free_sector);
    problems++;
  }
  for (uint32_t i = c->n_gd_used; i < c->n_gd; i++)
    if (c->gd[i] != 0) {
      cowd_report (report, opaque, "'%s': grain directory entry %u is set "
                   "but beyond the capacity", ext->name, i);
      problems++;
    }
  for (uint32_t d = 0; d < c->n_gd_used; d++) {
    if (c->gd[d] == 0)
      continue;
    if (bm && cowd_mark (bm, c->gd[d], COWD_GT_SECTORS)) {
      cowd_report (report, opaque, "'%s': grain table %u at sector %u "
                   "overlaps other data", ext->name, d, c->gd[d]);
      problems++;
    }
    struct vb_error e2 = { 0 };
    uint32_t *gt = cowd_get_gt (ext, d, &e2);
    if (gt == NULL) {
      cowd_report (report, opaque, "%s", e2.msg);
      problems++;
      continue;
    }
    for (uint32_t i = 0; i < COWD_GT_ENTRIES; i++) {
      uint32_t gte = gt[i];
      uint64_t g = (uint64_t) d * COWD_GT_ENTRIES + i;
      if (gte == 0 || gte == COWD_GTE_ZEROED)
        continue;
      if (g * c->grain_sectors >= c->num_sectors) {
        cowd_report (report, opaque, "'%s': grain %llu is allocated but "
                     "beyond the capacity", ext->name, (unsigned long long) g);
        problems++;
      }
      if (!cowd_gte_ok (c, gte)) {
        cowd_report (report, opaque, "'%s': grain %llu points to sector %u, "
                     "outside the allocated area [%u, %u)", ext->name,
                     (unsigned long long) g, gte, c->data_start,
                     c->free_sector);
        problems++;
        continue;
      }
      if (bm && cowd_mark (bm, gte, c->grain_sectors)) {
        cowd_report (report, opaque, "'%s': grain %llu at sector %u overlaps "
                     "other data", ext->name, (unsigned long long) g, gte);
        problems++;
      }
    }
  }
  free (bm);
  return problems;
}

const struct vdisk_extent_ops vdisk_cowd_ops = {
  .name      = "vmfsSparse",
  .kind      = VMDK_EXT_VMFSSPARSE,
  .probe     = cowd_probe,
  .open      = cowd_open,
  .close     = cowd_close,
  .status    = cowd_status,
  .pread     = cowd_pread,
  .pwrite    = cowd_pwrite,
  .zero      = NULL,        /* the core writes zero buffers */
  .flush     = cowd_flush,
  .create    = cowd_create,
  .allocated = cowd_allocated,
  .check     = cowd_check,
};
