/* vmback vdisk: private state of the hosted sparse (KDMV) extent driver,
 * shared by vmdk-sparse.c (header, grain tables, plain grains, check) and
 * vmdk-stream.c (streamOptimized: compressed grains, footer, the
 * sequential stream writer).  See docs/vdisk-sparse.md for the layout. */
#ifndef VMBACK_VMDK_SPARSE_INT_H
#define VMBACK_VMDK_SPARSE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "vdisk-int.h"

/* --- on-disk constants (SparseExtentHeader, 512 bytes, little endian) -- */

#define KDMV_MAGIC            0x564d444bu  /* "KDMV" read as LE u32 */
#define KDMV_HDR_SIZE         512u

/* Byte offsets of the header fields. */
#define KDMV_OFF_MAGIC        0
#define KDMV_OFF_VERSION      4
#define KDMV_OFF_FLAGS        8
#define KDMV_OFF_CAPACITY     12
#define KDMV_OFF_GRAIN        20
#define KDMV_OFF_DESC_OFF     28
#define KDMV_OFF_DESC_SIZE    36
#define KDMV_OFF_NUM_GTES     44
#define KDMV_OFF_RGD          48
#define KDMV_OFF_GD           56
#define KDMV_OFF_OVERHEAD     64
#define KDMV_OFF_UNCLEAN      72
#define KDMV_OFF_NL_CHARS     73   /* '\n' ' ' '\r' '\n' */
#define KDMV_OFF_COMPRESS     77

#define KDMV_FLAG_NL_TEST     (1u << 0)
#define KDMV_FLAG_RGD         (1u << 1)
#define KDMV_FLAG_ZERO_GRAIN  (1u << 2)
#define KDMV_FLAG_COMPRESSED  (1u << 16)
#define KDMV_FLAG_MARKERS     (1u << 17)
#define KDMV_FLAGS_KNOWN      (KDMV_FLAG_NL_TEST | KDMV_FLAG_RGD | \
                               KDMV_FLAG_ZERO_GRAIN | KDMV_FLAG_COMPRESSED | \
                               KDMV_FLAG_MARKERS)

#define KDMV_COMPRESS_NONE    0
#define KDMV_COMPRESS_DEFLATE 1

#define KDMV_GD_AT_END        UINT64_C (0xffffffffffffffff)

/* Grain tables always hold 512 entries of 4 bytes = 4 sectors. */
#define KDMV_GTES             512u
#define KDMV_GT_BYTES         (KDMV_GTES * 4u)
#define KDMV_GT_SECTORS       (KDMV_GT_BYTES / VDISK_SECTOR)

/* Grain size limit: 4096 sectors = 2 MiB.  VMware and qemu-img only ever
 * write 128 sectors (64 KiB); the cap bounds the per-grain buffers we
 * allocate (plain and compressed grain, zero grain) to a few MiB. */
#define KDMV_MAX_GRAIN_SECTORS 4096u

/* Grain directory limit: 32 Mi entries = 128 MiB, as QEMU.  A GD entry
 * covers 512 grains, so even 1-sector grains reach 8 TiB; with the usual
 * 64 KiB grains 64 TiB (VDISK_MAX_SIZE) needs only 2 Mi entries.  The GD
 * must also lie inside the file, so a small hostile file cannot make us
 * allocate more than its own size. */
#define KDMV_MAX_GD_ENTRIES   (UINT32_C (32) * 1024 * 1024)

/* Embedded descriptor limit: VMDK_DESC_MAX bytes = 2048 sectors. */
#define KDMV_MAX_DESC_SECTORS (VMDK_DESC_MAX / VDISK_SECTOR)

/* Descriptor area reserved by create() (like VMware and qemu-img). */
#define KDMV_CREATE_DESC_SECTORS 20u

/* GTEs are 32-bit sector numbers: no grain can start at or beyond 2 TiB. */
#define KDMV_MAX_FILE_SECTORS UINT64_C (0xffffffff)

/* streamOptimized markers (one sector each except grain markers). */
#define KDMV_MARKER_EOS       0
#define KDMV_MARKER_GT        1
#define KDMV_MARKER_GD        2
#define KDMV_MARKER_FOOTER    3
#define KDMV_GRAIN_MARKER_SIZE 12u   /* u64 lba + u32 size, then data */

/* Grain table cache: 32 tables x 2 KiB; each table maps 512 grains
 * (32 MiB with 64 KiB grains), so the cache spans 1 GiB of a disk. */
#define KDMV_GT_CACHE         32

/* Parsed SparseExtentHeader. */
struct kdmv_header {
  uint32_t version;
  uint32_t flags;
  uint64_t capacity;        /* sectors */
  uint64_t grain;           /* sectors */
  uint64_t desc_off;        /* sectors */
  uint64_t desc_size;       /* sectors */
  uint32_t num_gtes;
  uint64_t rgd_off;         /* sectors */
  uint64_t gd_off;          /* sectors, or KDMV_GD_AT_END */
  uint64_t overhead;        /* sectors */
  uint8_t unclean;
  uint16_t compress;
};

struct gt_slot {
  bool valid;
  bool dirty;
  uint32_t gdi;             /* grain directory index of this table */
  uint64_t tick;            /* last use, for LRU eviction */
  uint32_t e[KDMV_GTES];    /* entries, host order */
};

/* State of a streamOptimized file being written (see vmdk-stream.c). */
struct stream_writer {
  uint64_t cursor;          /* bytes: every write must start at or after */
  uint64_t pend_grain;      /* grain index held in pend (if pend_used) */
  bool pend_used;
  uint8_t *pend;            /* grain_bytes, zero padded */
  uint32_t cur_gdi;         /* grain table being filled */
  uint32_t gt[KDMV_GTES];   /* its entries (sector of each grain marker) */
  bool gt_used;
  uint64_t next;            /* byte offset where the next record goes */
  uint8_t *cbuf;            /* compression output */
  size_t cbuf_size;
  int level;                /* zlib level */
  bool finished;
};

struct sparse {
  const char *name;         /* for messages: ext->name or ext->path */
  struct kdmv_header h;     /* effective header (the footer for streams) */
  uint8_t raw_header[KDMV_HDR_SIZE];  /* header sector 0 as read/written */
  bool compressed, markers, zero_grain, has_rgd;
  bool writable;
  bool read_only_fmt;       /* writes refused (version 3 plain, stream) */
  uint32_t grain_bytes;
  uint64_t n_grains;        /* grains covering the capacity */
  uint32_t n_gd;            /* grain directory entries */
  uint32_t *gd;             /* primary GD (host order) */
  uint32_t *rgd;            /* redundant GD, NULL if none */
  uint64_t file_size;       /* bytes, kept up to date as we append */
  struct gt_slot *cache;    /* KDMV_GT_CACHE slots */
  uint64_t tick;
  bool data_unsynced;       /* grains written since the last fdatasync */
  bool unclean_set;         /* we set uncleanShutdown in this session */
  bool flushed;             /* flush() succeeded and was the last call:
                             * close() need not sync again */
  uint8_t *zbuf;            /* grain_bytes of zeros, allocated on demand */
  /* Last decompressed grain (compressed extents). */
  uint8_t *gbuf;
  uint64_t gbuf_grain;
  uint32_t gbuf_len;
  bool gbuf_valid;
  uint8_t *cbuf;
  size_t cbuf_size;
  /* streamOptimized with the GD at the end and no data yet. */
  bool stream_empty;
  struct stream_writer *w;  /* non-NULL: sequential stream writer mode */
};

/* --- vmdk-sparse.c ------------------------------------------------------ */

/* Parse and validate one 512-byte header (the one at sector 0 or the
 * footer copy).  file_size bounds every offset.  what is "header" or
 * "footer" for messages. */
int kdmv_header_parse (const uint8_t *buf, const char *name,
                       const char *what, uint64_t file_size, bool writable,
                       struct kdmv_header *h, struct vb_error *err);
/* Serialize h into a 512-byte sector (newline check chars included). */
void kdmv_header_format (const struct kdmv_header *h, uint8_t *buf);

/* --- vmdk-stream.c ------------------------------------------------------ */

/* Locate and validate the footer of a GD_AT_END file; replaces s->h. */
int stream_read_footer (struct vdisk_extent *ext, struct sparse *s,
                        struct vb_error *err);
/* Read grain `grain` (compressed, its GTE is gte) into s->gbuf. */
int stream_load_grain (struct vdisk_extent *ext, struct sparse *s,
                       uint64_t grain, uint32_t gte, struct vb_error *err);
/* Validate the marker of a compressed grain without inflating it;
 * *end gets the byte offset just past its data. */
int stream_grain_extent (struct vdisk_extent *ext, struct sparse *s,
                         uint64_t grain, uint32_t gte, uint64_t *end,
                         struct vb_error *err);
/* Writer mode. */
int stream_writer_start (struct vdisk_extent *ext, struct sparse *s,
                         struct vb_error *err);
int stream_writer_pwrite (struct vdisk_extent *ext, struct sparse *s,
                          const uint8_t *buf, size_t count, uint64_t off,
                          struct vb_error *err);
int stream_writer_zero (struct vdisk_extent *ext, struct sparse *s,
                        uint64_t off, uint64_t count, struct vb_error *err);
/* GTE of `grain` while writing: 0 unallocated, 1 pending in memory,
 * else the sector of its marker. */
uint32_t stream_writer_gte (struct sparse *s, uint64_t grain, bool *pending);
int stream_writer_finish (struct vdisk_extent *ext, struct sparse *s,
                          struct vb_error *err);
void stream_writer_free (struct stream_writer *w);
/* Create a fresh streamOptimized file (header + descriptor only);
 * sparse_create has checked grain, size and descriptor fit. */
int stream_create (const char *path, const struct ext_create *c, uint64_t grain,
                   uint64_t desc_sectors, struct vb_error *err);

/* Small helpers shared by both files. */
static inline uint64_t
kdmv_div_round_up (uint64_t a, uint64_t b)
{
  return a / b + (a % b != 0);
}

#endif
