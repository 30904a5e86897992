/* vmback serve: one disk of a restore point as a block device (docs/serve.md).
 *
 * Reads resolve the point's chunks on demand: fetched from the repository,
 * decoded (decrypted, decompressed, hash-checked) and kept in a small LRU
 * cache of decoded chunks.  Writes, when an overlay file is given, go to the
 * overlay (never into the repository).  No nbdkit types here: the nbdkit
 * plugin (nbdkit-vmback.c) is a thin shell over this, and unit tests drive
 * it directly.  Every call is thread-safe. */
#ifndef VMBACK_POINT_EXPORT_H
#define VMBACK_POINT_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"
#include "vmback/repo.h"

/* Overlay blocks: the unit of copy-on-write and of the bitmap. */
#define PE_OVERLAY_BLOCK (64u << 10)
/* Default size of the decoded-chunk cache. */
#define PE_DEFAULT_CACHE (64u << 20)

struct point_export;

struct pe_opts {
  const char *disk;          /* disk key; NULL = the point's first disk */
  const char *overlay;       /* writable overlay file; NULL = read-only */
  uint64_t cache_bytes;      /* decoded chunk cache; 0 = PE_DEFAULT_CACHE,
                                at least one chunk is always kept */
};

/* Open disk o->disk of point `point` (any form repo_find_point takes) of
 * the open repository r, which must outlive the export.  Loads and
 * authenticates the index; opens or creates the overlay.  Takes no lock:
 * the caller holds a shared one while serving. */
int pe_open (struct repo *r, const char *point, const struct pe_opts *o,
             struct point_export **out, struct vb_error *err);
/* Persist the overlay bitmap and free everything; 0 or -errno. */
int pe_close (struct point_export *pe, struct vb_error *err);

uint64_t pe_size (const struct point_export *pe);
uint32_t pe_chunk_size (const struct point_export *pe);
bool pe_writable (const struct point_export *pe);
const char *pe_point_id (const struct point_export *pe);
const char *pe_disk_key (const struct point_export *pe);

/* Read count bytes at off (within the disk).  A chunk that is missing or
 * fails decoding gives -EIO with a message naming the point, disk, offset
 * and chunk; buf then holds no data of that chunk. */
int pe_pread (struct point_export *pe, void *buf, size_t count, uint64_t off,
              struct vb_error *err);
/* Write into the overlay (-EROFS without one).  A partial write of a block
 * not yet in the overlay first copies the block from the point. */
int pe_pwrite (struct point_export *pe, const void *buf, size_t count,
               uint64_t off, struct vb_error *err);
/* Make overlay writes durable: data first, then the bitmap. */
int pe_flush (struct point_export *pe, struct vb_error *err);

/* Allocation map of [off, off+count): fn gets consecutive extents in
 * order, each either zero (a zero chunk the overlay did not touch: a
 * hole) or data; fn returning < 0 stops the walk and is returned. */
typedef int (*pe_extent_fn) (void *opaque, uint64_t off, uint64_t len, bool zero);
int pe_extents (struct point_export *pe, uint64_t off, uint64_t count,
                pe_extent_fn fn, void *opaque, struct vb_error *err);

struct pe_stats {
  uint64_t hits, misses;     /* cache lookups of non-zero chunks */
  uint64_t cached;           /* chunks held now */
  uint64_t reused;           /* of them, protected as reused */
  uint64_t capacity;         /* most chunks ever held */
};
void pe_get_stats (struct point_export *pe, struct pe_stats *s);

#endif
