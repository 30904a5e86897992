/* vmback vdisk: ESXi 6.5+ seSparse delta extents (read only).
 *
 * Layout (docs/vdisk-sesparse.md): a 512-byte constant header at sector 0
 * (magic 0xcafebabe, version 0x200000001, capacity, grain size 8 sectors,
 * grain table size 64 sectors, then offset+size in sectors of each
 * region: volatile header, journal header, journal, grain directory,
 * grain tables, free bitmap, backmap, grains).  The grain directory holds
 * 64-bit entries 0x10000000_<table index>; a grain table holds 4096 64-bit
 * entries whose top nibble is the type: 0 unallocated, 1 unmapped, 2 zero,
 * 3 allocated (grain index in the remaining bits, see se_grain_index).
 *
 * The format is not documented by VMware; like QEMU we accept exactly the
 * values seen in the wild and reject anything else with a message. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk-int.h"

#define SE_CONST_MAGIC UINT64_C (0x00000000cafebabe)
#define SE_VOLATILE_MAGIC UINT64_C (0x00000000cafecafe)
#define SE_VERSION UINT64_C (0x0000000200000001)
#define SE_GRAIN_SECTORS 8u               /* 4 KiB grains */
#define SE_GRAIN_BYTES (SE_GRAIN_SECTORS * VDISK_SECTOR)
#define SE_GT_SECTORS 64u                 /* 32 KiB grain tables */
#define SE_GT_ENTRIES (SE_GT_SECTORS * VDISK_SECTOR / 8u)   /* 4096 */
#define SE_GT_BYTES (SE_GT_ENTRIES * 8u)
#define SE_GT_COVER ((uint64_t) SE_GT_ENTRIES * SE_GRAIN_SECTORS) /* sectors */
/* Offsets and sizes are in sectors; anything at or above 2^54 sectors
 * (8 EiB) cannot be a byte offset and is rejected. */
#define SE_MAX_SECTOR (UINT64_C (1) << 54)
#define SE_CACHE 32                       /* grain tables cached (1 MiB) */

#define SE_TYPE_MASK UINT64_C (0xf000000000000000)
#define SE_TYPE_UNALLOC UINT64_C (0x0000000000000000)
#define SE_TYPE_UNMAPPED UINT64_C (0x1000000000000000)
#define SE_TYPE_ZERO UINT64_C (0x2000000000000000)
#define SE_TYPE_ALLOC UINT64_C (0x3000000000000000)
#define SE_GDE_MASK UINT64_C (0xffffffff00000000)
#define SE_GDE_ALLOC UINT64_C (0x1000000000000000)

/* Const header field offsets (all 64-bit little endian). */
enum {
  C_MAGIC = 0, C_VERSION = 8, C_CAPACITY = 16, C_GRAIN = 24, C_GT_SIZE = 32,
  C_FLAGS = 40, C_RESERVED = 48,          /* 4 reserved fields */
  C_REGIONS = 80,                         /* 8 x (offset, size) */
  C_PAD = 208,                            /* 304 bytes of zeros */
};
/* Volatile header field offsets. */
enum {
  V_MAGIC = 0, V_FREE_GT = 8, V_NEXT_TXN = 16, V_REPLAY = 24, V_PAD = 32,
};

/* The regions in const header order. */
enum {
  R_VOLATILE, R_JOURNAL_HDR, R_JOURNAL, R_GD, R_GTS, R_FREE_BITMAP,
  R_BACKMAP, R_GRAINS, R__COUNT
};
static const char *const region_name[R__COUNT] = {
  "volatile header", "journal header", "journal", "grain directory",
  "grain tables", "free bitmap", "backmap", "grains",
};

struct se_gt {
  bool valid;
  uint32_t gd_index;
  uint64_t *e;                  /* SE_GT_ENTRIES, host order */
};

struct sesparse {
  uint64_t capacity;            /* sectors */
  uint64_t off[R__COUNT], size[R__COUNT];   /* sectors */
  uint64_t file_size;           /* bytes (the file does not change) */
  uint64_t gt_slots;            /* tables the grain table region holds */
  uint64_t grain_slots;         /* grains the grain region holds */
  uint32_t n_gd;                /* directory entries covering capacity */
  uint64_t *gd;                 /* n_gd entries, host order */
  struct se_gt cache[SE_CACHE];
};

/* Score the first bytes of a file: the const header magic and version. */
static int
se_probe (const uint8_t *buf, size_t len)
{
  if (len >= 16 && le64_get (buf + C_MAGIC) == SE_CONST_MAGIC
      && le64_get (buf + C_VERSION) == SE_VERSION)
    return 100;
  if (len >= 8 && le64_get (buf + C_MAGIC) == SE_CONST_MAGIC)
    return 50;
  return 0;
}

/* Free the private state. */
static void
se_free (struct sesparse *s)
{
  if (s == NULL)
    return;
  for (int i = 0; i < SE_CACHE; i++)
    free (s->cache[i].e);
  free (s->gd);
  free (s);
}

/* Do sector ranges [a, a+an) and [b, b+bn) overlap? */
static bool
se_overlap (uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
  return an > 0 && bn > 0 && a < b + bn && b < a + an;
}

/* Validate the const header, field by field, like QEMU's
 * check_se_sparse_const_header plus range checks of every region. */
static int
se_check_const (struct vdisk_extent *ext, const uint8_t *h,
                struct sesparse *s, struct vb_error *err)
{
  const char *n = ext->name;
  uint64_t v;

  if ((v = le64_get (h + C_MAGIC)) != SE_CONST_MAGIC)
    return vb_err (err, EINVAL, "bad seSparse const header magic 0x%016llx "
                   "in '%s'", (unsigned long long) v, n);
  if ((v = le64_get (h + C_VERSION)) != SE_VERSION)
    return vb_err (err, ENOTSUP, "unsupported seSparse version 0x%016llx in "
                   "'%s'", (unsigned long long) v, n);
  s->capacity = le64_get (h + C_CAPACITY);
  if (s->capacity == 0 || s->capacity > VDISK_MAX_SIZE / VDISK_SECTOR)
    return vb_err (err, EINVAL, "bad seSparse capacity %llu sectors in '%s'",
                   (unsigned long long) s->capacity, n);
  if (ext->length > s->capacity * VDISK_SECTOR)
    return vb_err (err, EINVAL, "seSparse capacity %llu sectors of '%s' is "
                   "smaller than its extent (%llu sectors)",
                   (unsigned long long) s->capacity, n,
                   (unsigned long long) (ext->length / VDISK_SECTOR));
  if ((v = le64_get (h + C_GRAIN)) != SE_GRAIN_SECTORS)
    return vb_err (err, ENOTSUP, "unsupported seSparse grain size %llu "
                   "sectors in '%s'", (unsigned long long) v, n);
  if ((v = le64_get (h + C_GT_SIZE)) != SE_GT_SECTORS)
    return vb_err (err, ENOTSUP, "unsupported seSparse grain table size %llu "
                   "sectors in '%s'", (unsigned long long) v, n);
  if ((v = le64_get (h + C_FLAGS)) != 0)
    return vb_err (err, ENOTSUP, "unsupported seSparse flags 0x%016llx in "
                   "'%s'", (unsigned long long) v, n);
  for (int i = 0; i < 4; i++)
    if ((v = le64_get (h + C_RESERVED + 8 * i)) != 0)
      return vb_err (err, ENOTSUP, "non-zero seSparse reserved field %d "
                     "(0x%016llx) in '%s'", i + 1, (unsigned long long) v, n);
  if (!vio_is_zero (h + C_PAD, VDISK_SECTOR - C_PAD))
    return vb_err (err, ENOTSUP, "non-zero seSparse const header padding in "
                   "'%s'", n);

  for (int r = 0; r < R__COUNT; r++) {
    s->off[r] = le64_get (h + C_REGIONS + 16 * r);
    s->size[r] = le64_get (h + C_REGIONS + 16 * r + 8);
    if (s->off[r] >= SE_MAX_SECTOR || s->size[r] >= SE_MAX_SECTOR)
      return vb_err (err, EINVAL, "seSparse %s of '%s' is out of range "
                     "(offset %llu, size %llu sectors)", region_name[r], n,
                     (unsigned long long) s->off[r],
                     (unsigned long long) s->size[r]);
    if (s->size[r] > 0 && s->off[r] == 0)
      return vb_err (err, EINVAL, "seSparse %s of '%s' overlaps the const "
                     "header", region_name[r], n);
  }

  /* The volatile header is one sector we read. */
  if (s->size[R_VOLATILE] == 0 || s->off[R_VOLATILE] == 0)
    return vb_err (err, EINVAL, "seSparse volatile header of '%s' is missing",
                   n);
  if ((s->off[R_VOLATILE] + 1) * VDISK_SECTOR > s->file_size)
    return vb_err (err, EINVAL, "seSparse volatile header of '%s' (sector "
                   "%llu) is past the end of the file", n,
                   (unsigned long long) s->off[R_VOLATILE]);

  /* Grain directory: one 64-bit entry per 16 MiB of capacity; capacity
   * <= 2^37 sectors gives at most 2^22 entries (32 MiB). */
  uint64_t n_gd = (s->capacity + SE_GT_COVER - 1) / SE_GT_COVER;
  s->n_gd = (uint32_t) n_gd;
  if (s->size[R_GD] * (VDISK_SECTOR / 8) < n_gd)
    return vb_err (err, EINVAL, "seSparse grain directory of '%s' is too "
                   "small (%llu sectors for %llu entries)", n,
                   (unsigned long long) s->size[R_GD],
                   (unsigned long long) n_gd);
  if (s->off[R_GD] * VDISK_SECTOR + n_gd * 8 > s->file_size)
    return vb_err (err, EINVAL, "seSparse grain directory of '%s' (sector "
                   "%llu) is past the end of the file", n,
                   (unsigned long long) s->off[R_GD]);

  s->gt_slots = s->size[R_GTS] / SE_GT_SECTORS;
  s->grain_slots = s->size[R_GRAINS] / SE_GRAIN_SECTORS;
  if (s->off[R_GTS] == 0 && s->gt_slots > 0)
    return vb_err (err, EINVAL, "seSparse grain tables of '%s' overlap the "
                   "const header", n);
  if (s->off[R_GRAINS] == 0 && s->grain_slots > 0)
    return vb_err (err, EINVAL, "seSparse grains of '%s' overlap the const "
                   "header", n);

  /* The regions we follow must not overlap each other. */
  static const int used[] = { R_VOLATILE, R_GD, R_GTS, R_GRAINS };
  for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
    for (size_t j = i + 1; j < sizeof used / sizeof used[0]; j++) {
      int a = used[i], b = used[j];
      if (se_overlap (s->off[a], s->size[a], s->off[b], s->size[b]))
        return vb_err (err, EINVAL, "seSparse %s and %s of '%s' overlap",
                       region_name[a], region_name[b], n);
    }
  return 0;
}

/* Validate the volatile header: magic, clean journal, zero padding. */
static int
se_check_volatile (struct vdisk_extent *ext, const uint8_t *h,
                   struct vb_error *err)
{
  uint64_t v;
  if ((v = le64_get (h + V_MAGIC)) != SE_VOLATILE_MAGIC)
    return vb_err (err, EINVAL, "bad seSparse volatile header magic "
                   "0x%016llx in '%s'", (unsigned long long) v, ext->name);
  if ((v = le64_get (h + V_REPLAY)) != 0)
    return vb_err (err, ENOTSUP, "seSparse delta '%s' is dirty (its journal "
                   "must be replayed by ESXi first)", ext->name);
  if (!vio_is_zero (h + V_PAD, VDISK_SECTOR - V_PAD))
    return vb_err (err, ENOTSUP, "non-zero seSparse volatile header padding "
                   "in '%s'", ext->name);
  return 0;
}

/* Read and check both headers, load and check the grain directory. */
static int
se_open (struct vdisk_extent *ext, struct vb_error *err)
{
  uint8_t h[VDISK_SECTOR];
  if (ext->writable)
    return vb_err (err, EROFS, "seSparse delta '%s' can only be opened read "
                   "only", ext->name);
  int64_t sz = vio_size (ext->fd);
  if (sz < 0)
    return vb_errno (err, (int) -sz, "cannot stat '%s'", ext->name);
  if ((uint64_t) sz < VDISK_SECTOR)
    return vb_err (err, EINVAL, "'%s' is too small for a seSparse header "
                   "(%lld bytes)", ext->name, (long long) sz);
  int r = vio_pread (ext->fd, h, sizeof h, 0);
  if (r < 0)
    return vb_errno (err, -r, "cannot read seSparse const header of '%s'",
                     ext->name);
  struct sesparse *s = calloc (1, sizeof *s);
  if (s == NULL)
    return vb_errno (err, ENOMEM, "cannot open '%s'", ext->name);
  s->file_size = (uint64_t) sz;
  if ((r = se_check_const (ext, h, s, err)) < 0)
    goto fail;

  r = vio_pread (ext->fd, h, sizeof h, s->off[R_VOLATILE] * VDISK_SECTOR);
  if (r < 0) {
    r = vb_errno (err, -r, "cannot read seSparse volatile header of '%s'",
                  ext->name);
    goto fail;
  }
  if ((r = se_check_volatile (ext, h, err)) < 0)
    goto fail;

  /* n_gd <= 2^22 entries: at most 32 MiB. */
  s->gd = malloc ((size_t) s->n_gd * 8);
  if (s->gd == NULL) {
    r = vb_errno (err, ENOMEM, "cannot load grain directory of '%s'",
                  ext->name);
    goto fail;
  }
  r = vio_pread (ext->fd, s->gd, (size_t) s->n_gd * 8,
                 s->off[R_GD] * VDISK_SECTOR);
  if (r < 0) {
    r = vb_errno (err, -r, "cannot read grain directory of '%s'", ext->name);
    goto fail;
  }
  for (uint32_t i = 0; i < s->n_gd; i++) {
    uint64_t e = le64_get (&s->gd[i]);
    s->gd[i] = e;
    if (e == 0)
      continue;
    if ((e & SE_GDE_MASK) != SE_GDE_ALLOC) {
      r = vb_err (err, EINVAL, "bad grain directory entry %u (0x%016llx) in "
                  "'%s'", i, (unsigned long long) e, ext->name);
      goto fail;
    }
    uint64_t t = e & ~SE_GDE_MASK;
    if (t >= s->gt_slots) {
      r = vb_err (err, EINVAL, "grain directory entry %u of '%s' names grain "
                  "table %llu, past the grain table region (%llu tables)", i,
                  ext->name, (unsigned long long) t,
                  (unsigned long long) s->gt_slots);
      goto fail;
    }
    /* t < 2^54 / 64 and off < 2^54: no overflow. */
    uint64_t end = (s->off[R_GTS] + t * SE_GT_SECTORS) * VDISK_SECTOR
      + SE_GT_BYTES;
    if (end > s->file_size) {
      r = vb_err (err, EINVAL, "grain table %llu of '%s' is past the end of "
                  "the file", (unsigned long long) t, ext->name);
      goto fail;
    }
  }

  if (ext->length == 0)
    ext->length = s->capacity * VDISK_SECTOR;
  ext->grain = SE_GRAIN_BYTES;
  ext->priv = s;
  return 0;

fail:
  se_free (s);
  return r;
}

/* Free the state. */
static int
se_close (struct vdisk_extent *ext, struct vb_error *err)
{
  se_free (ext->priv);
  ext->priv = NULL;
  return 0;
}

/* The grain table of directory entry gdi (non-zero entry), cached. */
static uint64_t *
se_get_gt (struct vdisk_extent *ext, uint32_t gdi, struct vb_error *err)
{
  struct sesparse *s = ext->priv;
  struct se_gt *slot = &s->cache[gdi % SE_CACHE];
  if (slot->valid && slot->gd_index == gdi)
    return slot->e;
  if (slot->e == NULL && (slot->e = malloc (SE_GT_BYTES)) == NULL) {
    vb_errno (err, ENOMEM, "cannot load grain table of '%s'", ext->name);
    return NULL;
  }
  slot->valid = false;
  uint64_t t = s->gd[gdi] & ~SE_GDE_MASK;
  int r = vio_pread (ext->fd, slot->e, SE_GT_BYTES,
                     (s->off[R_GTS] + t * SE_GT_SECTORS) * VDISK_SECTOR);
  if (r < 0) {
    vb_errno (err, -r, "cannot read grain table %llu of '%s'",
              (unsigned long long) t, ext->name);
    return NULL;
  }
  for (uint32_t i = 0; i < SE_GT_ENTRIES; i++)
    slot->e[i] = le64_get (&slot->e[i]);
  slot->valid = true;
  slot->gd_index = gdi;
  return slot->e;
}

/* Grain index of an allocated entry: the low 12 bits of the index sit in
 * bits 48..59, the high bits in bits 0..47 (as QEMU decodes it). */
static uint64_t
se_grain_index (uint64_t e)
{
  return ((e & UINT64_C (0x0fff000000000000)) >> 48)
    | ((e & UINT64_C (0x0000ffffffffffff)) << 12);
}

/* Look up grain g: set *status and, for data, *foff (byte offset of the
 * grain in the file).  Returns 0 or a negative errno on a corrupt entry. */
static int
se_lookup (struct vdisk_extent *ext, uint64_t g, int *status, uint64_t *foff,
           struct vb_error *err)
{
  struct sesparse *s = ext->priv;
  uint64_t gdi = g / SE_GT_ENTRIES;
  if (gdi >= s->n_gd)
    return vb_err (err, EIO, "grain %llu is past the end of '%s'",
                   (unsigned long long) g, ext->name);
  if (s->gd[gdi] == 0) {
    *status = EXT_UNALLOC;
    return 0;
  }
  uint64_t *gt = se_get_gt (ext, (uint32_t) gdi, err);
  if (gt == NULL)
    return -EIO;
  uint64_t e = gt[g % SE_GT_ENTRIES];
  switch (e & SE_TYPE_MASK) {
  case SE_TYPE_UNALLOC:
    if (e != 0)
      break;
    *status = EXT_UNALLOC;
    return 0;
  case SE_TYPE_UNMAPPED:
  case SE_TYPE_ZERO:
    *status = EXT_ZERO;
    return 0;
  case SE_TYPE_ALLOC: {
    uint64_t idx = se_grain_index (e);
    if (idx >= s->grain_slots)
      return vb_err (err, EIO, "grain %llu of '%s' is at grain slot %llu, "
                     "past the grain region (%llu slots)",
                     (unsigned long long) g, ext->name,
                     (unsigned long long) idx,
                     (unsigned long long) s->grain_slots);
    /* idx < 2^54 / 8, off < 2^54: the sector fits; bytes < 2^64. */
    uint64_t fo = (s->off[R_GRAINS] + idx * SE_GRAIN_SECTORS) * VDISK_SECTOR;
    if (fo + SE_GRAIN_BYTES > s->file_size)
      return vb_err (err, EIO, "grain %llu of '%s' (file offset %llu) is past "
                     "the end of the file", (unsigned long long) g, ext->name,
                     (unsigned long long) fo);
    *status = EXT_DATA;
    *foff = fo;
    return 0;
  }
  default:
    break;
  }
  return vb_err (err, EIO, "bad grain table entry 0x%016llx for grain %llu "
                 "of '%s'", (unsigned long long) e, (unsigned long long) g,
                 ext->name);
}

/* Status of a run of grains starting at off. */
static int
se_status (struct vdisk_extent *ext, uint64_t off, uint64_t len,
           uint64_t *pnum, struct vb_error *err)
{
  struct sesparse *s = ext->priv;
  uint64_t done = 0;
  int st = -1;
  while (done < len) {
    uint64_t pos = off + done, g = pos / SE_GRAIN_BYTES, run, foff;
    uint64_t gdi = g / SE_GT_ENTRIES;
    int cur;
    if (gdi < s->n_gd && s->gd[gdi] == 0) {
      cur = EXT_UNALLOC;
      run = (gdi + 1) * SE_GT_ENTRIES * SE_GRAIN_BYTES - pos;
    } else {
      int r = se_lookup (ext, g, &cur, &foff, err);
      if (r < 0)
        return r;
      run = (g + 1) * SE_GRAIN_BYTES - pos;
    }
    if (st >= 0 && cur != st)
      break;
    st = cur;
    done += run < len - done ? run : len - done;
  }
  *pnum = done;
  return st;
}

/* Read grains, merging file-contiguous ones; non-data grains read zeros. */
static int
se_pread (struct vdisk_extent *ext, void *buf, size_t count, uint64_t off,
          struct vb_error *err)
{
  uint8_t *p = buf, *run_buf = NULL;
  uint64_t run_foff = 0;
  size_t run_len = 0;
  while (count > 0) {
    uint64_t g = off / SE_GRAIN_BYTES, in = off % SE_GRAIN_BYTES, foff = 0;
    size_t n = (size_t) (SE_GRAIN_BYTES - in < count ? SE_GRAIN_BYTES - in
                         : count);
    int st;
    int r = se_lookup (ext, g, &st, &foff, err);
    if (r < 0)
      return r;
    if (st != EXT_DATA) {
      memset (p, 0, n);
    } else if (run_len > 0 && run_foff + run_len == foff + in
               && run_buf + run_len == p) {
      run_len += n;
    } else {
      if (run_len > 0 && (r = vio_pread (ext->fd, run_buf, run_len,
                                         run_foff)) < 0)
        return vb_errno (err, -r, "cannot read grain of '%s' at offset %llu",
                         ext->name, (unsigned long long) run_foff);
      run_buf = p;
      run_foff = foff + in;
      run_len = n;
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

/* Allocated bytes: the grains stored in the file (file size past the grain
 * region start, an upper bound that is exact for files ESXi trims). */
static uint64_t
se_allocated (struct vdisk_extent *ext)
{
  struct sesparse *s = ext->priv;
  uint64_t start = s->off[R_GRAINS] * VDISK_SECTOR;
  uint64_t bytes = s->file_size > start ? s->file_size - start : 0;
  uint64_t max = s->grain_slots * SE_GRAIN_BYTES;
  return bytes < max ? bytes : max;
}

/* Report one problem. */
static void
se_report (vdisk_report_fn report, void *opaque, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
static void
se_report (vdisk_report_fn report, void *opaque, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (report)
    report (opaque, msg);
}

/* Walk every grain table: bad entries, grains past the end of the file,
 * grains shared by two virtual grains.  Nothing is repaired. */
static int
se_check (struct vdisk_extent *ext, bool repair, vdisk_report_fn report,
          void *opaque, struct vb_error *err)
{
  struct sesparse *s = ext->priv;
  int problems = 0;
  /* One bit per grain slot present in the file: file size / 4 KiB / 8,
   * built only up to 64 MiB (2 TiB of grains). */
  uint64_t slots_in_file = se_allocated (ext) / SE_GRAIN_BYTES;
  uint8_t *bm = NULL;
  if (slots_in_file / 8 + 1 <= (64u << 20))
    bm = calloc (1, (size_t) (slots_in_file / 8 + 1));
  for (uint32_t d = 0; d < s->n_gd; d++) {
    if (s->gd[d] == 0)
      continue;
    for (uint32_t i = 0; i < SE_GT_ENTRIES; i++) {
      uint64_t g = (uint64_t) d * SE_GT_ENTRIES + i, foff = 0;
      int st;
      struct vb_error e2 = { 0 };
      if (se_lookup (ext, g, &st, &foff, &e2) < 0) {
        se_report (report, opaque, "%s", e2.msg);
        problems++;
        if (e2.code == ENOMEM)
          break;
        continue;
      }
      if (st == EXT_UNALLOC)
        continue;
      if (g * SE_GRAIN_SECTORS >= s->capacity) {
        se_report (report, opaque, "'%s': grain %llu is set but beyond the "
                   "capacity", ext->name, (unsigned long long) g);
        problems++;
      }
      if (st != EXT_DATA || bm == NULL)
        continue;
      uint64_t slot = (foff / VDISK_SECTOR - s->off[R_GRAINS])
        / SE_GRAIN_SECTORS;
      if (slot < slots_in_file) {
        if (bm[slot / 8] & (1u << (slot % 8))) {
          se_report (report, opaque, "'%s': grain slot %llu is used twice "
                     "(again by grain %llu)", ext->name,
                     (unsigned long long) slot, (unsigned long long) g);
          problems++;
        }
        bm[slot / 8] |= (uint8_t) (1u << (slot % 8));
      }
    }
  }
  free (bm);
  return problems;
}

const struct vdisk_extent_ops vdisk_sesparse_ops = {
  .name      = "seSparse",
  .kind      = VMDK_EXT_SESPARSE,
  .probe     = se_probe,
  .open      = se_open,
  .close     = se_close,
  .status    = se_status,
  .pread     = se_pread,
  .pwrite    = NULL,        /* read only */
  .allocated = se_allocated,
  .check     = se_check,
};
