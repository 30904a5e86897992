/* vmback: the virtual disk library (our VixDiskLib).
 *
 * A disk is a chain of layers.  A layer is a raw image, or a VMDK
 * descriptor (separate or embedded in a hosted sparse file) with one or
 * more extents.  Reads go through the chain: a block not allocated in a
 * layer is read from its parent (parentFileNameHint), and from zeros below
 * the base.  Writes always go to the top layer; partial writes of grains
 * not yet allocated there are completed from the chain (copy on write).
 * When change tracking is enabled (changeTrackPath= in the descriptor),
 * every write is recorded in the -ctk.vmdk file (see docs/CTK.md).
 *
 * All functions return 0 (or a non-negative count) on success and a
 * negative errno on failure, with a one-line message in *err.
 */
#ifndef VMBACK_VDISK_H
#define VMBACK_VDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

#define VDISK_SECTOR 512u
#define VDISK_MAX_CHAIN 64          /* deepest parent chain we follow */
/* Largest virtual size accepted from a file or the user: 64 TiB (VMware's
 * limit is 62 TiB); anything larger in a header is treated as corrupt. */
#define VDISK_MAX_SIZE (UINT64_C (1) << 46)

/* The createType of a disk, plus raw. */
enum vdisk_type {
  VDISK_TYPE_RAW = 0,
  VDISK_TYPE_MONOLITHIC_FLAT,    /* "monolithicFlat"  NAME.vmdk + NAME-flat.vmdk */
  VDISK_TYPE_VMFS,               /* "vmfs"            ESXi NAME.vmdk + NAME-flat.vmdk */
  VDISK_TYPE_TWOGB_FLAT,         /* "twoGbMaxExtentFlat"   NAME-f001.vmdk ... */
  VDISK_TYPE_MONOLITHIC_SPARSE,  /* "monolithicSparse"     one KDMV file */
  VDISK_TYPE_TWOGB_SPARSE,       /* "twoGbMaxExtentSparse" NAME-s001.vmdk ... */
  VDISK_TYPE_STREAM_OPTIMIZED,   /* "streamOptimized"      one compressed KDMV file */
  VDISK_TYPE_VMFS_SPARSE,        /* "vmfsSparse"           ESXi COWD -delta.vmdk */
  VDISK_TYPE_SE_SPARSE,          /* "seSparse"             ESXi 6.5+ delta (read only) */
  VDISK_TYPE__COUNT
};

/* createType string of a type ("raw" for VDISK_TYPE_RAW). */
const char *vdisk_type_name (enum vdisk_type t);
/* Parse a createType string (case-insensitive); -1 when unknown. */
int vdisk_type_from_name (const char *name);

/* Options for vdisk_create and for the destination of vdisk_clone. */
struct vdisk_create_opts {
  enum vdisk_type type;
  uint64_t size;               /* virtual size in bytes (rounded up to 512) */
  const char *parent;          /* for a child (redo log): parent path, else NULL */
  const char *adapter_type;    /* ddb.adapterType, default "lsilogic" */
  uint32_t grain_sectors;      /* sparse grain size in sectors, 0 = 128 (64 KiB) */
  int compress_level;          /* streamOptimized deflate level, 0 = default (6) */
  bool ctk;                    /* enable change tracking on the new disk */
};

/* Flags for vdisk_open. */
#define VDISK_OPEN_RDONLY   0u
#define VDISK_OPEN_RDWR     1u
#define VDISK_OPEN_NOPARENT 2u    /* open the top layer alone (no chain) */
/* Writes keep the top layer's CID and bypass its change tracking.  Only
 * for merges into a layer whose children already hold every block
 * written (their view does not change, so their parentCID stays true). */
#define VDISK_OPEN_KEEPCID  4u

struct vdisk;

int vdisk_open (const char *path, unsigned flags, struct vdisk **out,
                struct vb_error *err);
/* Flush and close; on an RDWR disk also stamps the change tracker clean.
 * Always frees d. */
int vdisk_close (struct vdisk *d, struct vb_error *err);

uint64_t vdisk_size (const struct vdisk *d);
enum vdisk_type vdisk_get_type (const struct vdisk *d);
const char *vdisk_path (const struct vdisk *d);

/* Is the whole disk one flat extent (a raw file, or a single FLAT/VMFS
 * extent and no parent)?  Then *file is that extent's path (owned by d)
 * and *offset the disk's first byte in it, and the result is true: the
 * bytes can be read, or attached as a loop device, without vdisk. */
bool vdisk_flat_extent (const struct vdisk *d, const char **file, uint64_t *offset);

/* Byte-granular I/O through the chain; ranges must lie inside the disk. */
int vdisk_pread (struct vdisk *d, void *buf, size_t count, uint64_t offset,
                 struct vb_error *err);
int vdisk_pwrite (struct vdisk *d, const void *buf, size_t count,
                  uint64_t offset, struct vb_error *err);
/* Make a range read as zeros (deallocating where the format can). */
int vdisk_zero (struct vdisk *d, size_t count, uint64_t offset,
                struct vb_error *err);
int vdisk_flush (struct vdisk *d, struct vb_error *err);

/* Block status over the whole chain. */
#define VDISK_STATUS_DATA   1   /* allocated somewhere in the chain */
#define VDISK_STATUS_ZERO   2   /* reads as zeros (hole or zeroed grain) */
/* Set *pnum to the length (>0, <= len) of the run starting at offset that
 * has the returned status (VDISK_STATUS_DATA or VDISK_STATUS_ZERO). */
int vdisk_block_status (struct vdisk *d, uint64_t offset, uint64_t len,
                        uint64_t *pnum, struct vb_error *err);
/* Same, for the top layer only: 0 = not allocated there (the parent
 * shows through), VDISK_STATUS_DATA or VDISK_STATUS_ZERO (zeroed in it). */
int vdisk_block_status_top (struct vdisk *d, uint64_t offset, uint64_t len,
                            uint64_t *pnum, struct vb_error *err);

/* Progress callback for long operations: done and total in bytes. */
typedef void (*vdisk_progress_fn) (void *opaque, uint64_t done, uint64_t total);

/* --- operations on files (VixDiskLib analogs) --------------------------- */

int vdisk_create (const char *path, const struct vdisk_create_opts *o,
                  struct vb_error *err);
/* Copy src (whole chain, flattened) to a new disk dst of type o->type,
 * size from src; zero grains are not written. */
int vdisk_clone (const char *src, const char *dst,
                 const struct vdisk_create_opts *o,
                 vdisk_progress_fn progress, void *opaque,
                 struct vb_error *err);
int vdisk_grow (const char *path, uint64_t new_size, struct vb_error *err);
/* Drop unused space of sparse files (all-zero allocated grains, free
 * space at the end); flat and raw files are left as they are. */
int vdisk_shrink (const char *path, struct vb_error *err);
/* Rewrite sparse extents so grains lie in virtual-offset order. */
int vdisk_defragment (const char *path, struct vb_error *err);
/* Rename all files of a disk and fix the descriptor's references. */
int vdisk_rename (const char *from, const char *to, struct vb_error *err);
/* Remove every file of a disk (top layer only; parents untouched). */
int vdisk_unlink (const char *path, struct vb_error *err);
/* Create a redo log `child` on `parent`; type 0 picks monolithicSparse
 * (vmfsSparse when the parent is a vmfs disk). */
int vdisk_create_child (const char *parent, const char *child,
                        enum vdisk_type type, struct vb_error *err);
/* Merge the data of child into its parent and remove the child's files. */
int vdisk_merge (const char *child, struct vb_error *err);
/* Copy what the layers above `base` in the chain of `top` hold into base,
 * in one pass (newest layer wins; zeroed grains become zeros), without
 * changing base's CID or change tracking (VDISK_OPEN_KEEPCID): every
 * disk reading through base and one of those layers reads the same bytes
 * before and after, so running it again after an interruption is safe.
 * No file is removed.  base must be in top's chain, below top. */
int vdisk_merge_into (const char *top, const char *base,
                      vdisk_progress_fn progress, void *opaque,
                      struct vb_error *err);
/* Point a child layer at a new parent: parentFileNameHint (relative when
 * in the same directory) and parentCID = the parent's CID. */
int vdisk_set_parent (const char *child, const char *parent,
                      struct vb_error *err);

/* Everything `vmback disk info` prints. */
struct vdisk_info {
  enum vdisk_type type;
  uint64_t size;                /* virtual size in bytes */
  uint64_t allocated;           /* bytes of data allocated in the top layer */
  uint64_t file_bytes;          /* bytes the layer's files take on disk */
  uint32_t cid, parent_cid;     /* 0xffffffff = none */
  char uuid[64];                /* ddb.uuid, "" if none */
  char adapter[32];
  int chain_len;                /* number of layers */
  char *chain[VDISK_MAX_CHAIN]; /* layer paths, top first (malloc'd) */
  char *extents[256];           /* top layer extent files (malloc'd) */
  int n_extents;
  int ctk_state;                /* 0 off, 1 valid, -1 invalid (see ctk.h) */
  char ctk_path[4096];
  char change_id[128];          /* current changeId when valid */
  char ctk_reason[256];         /* why invalid */
};
int vdisk_get_info (const char *path, struct vdisk_info *info,
                    struct vb_error *err);
void vdisk_info_free (struct vdisk_info *info);

/* Structural check; `report` gets one line per problem found.  Returns the
 * number of problems (0 = clean) or a negative errno.  With repair, a
 * damaged redundant grain directory is rewritten from the primary (or the
 * reverse) where one of them is intact. */
typedef void (*vdisk_report_fn) (void *opaque, const char *msg);
int vdisk_check (const char *path, bool repair, vdisk_report_fn report,
                 void *opaque, struct vb_error *err);

/* --- change tracking --------------------------------------------------- */

#define VDISK_CTK_BLOCK 65536u  /* tracking granularity */

int vdisk_ctk_enable (const char *path, struct vb_error *err);
int vdisk_ctk_disable (const char *path, struct vb_error *err);
/* Give layer `to` the change tracking history of layer `from` (same
 * uuid, sequence and block stamps), bound to `to`'s CID, so changeIds of
 * `from` stay valid on `to`.  `to` gets changeTrackPath= (NAME-ctk.vmdk)
 * when it has none.  Returns 1 when copied, 0 when `from` has no valid
 * tracker (then `to`'s tracker file is removed, which makes it invalid:
 * the next backup reads everything), or a negative errno. */
int vdisk_ctk_copy (const char *from, const char *to, struct vb_error *err);
/* Current changeId "<uuid>/<seq>" into buf. */
int vdisk_ctk_change_id (const char *path, char *buf, size_t len,
                         struct vb_error *err);

struct vdisk_extent_list {
  size_t n, cap;
  struct { uint64_t offset, length; } *v;
};
void vdisk_extent_list_free (struct vdisk_extent_list *l);
int vdisk_extent_list_add (struct vdisk_extent_list *l, uint64_t off,
                           uint64_t len);

/* QueryChangedDiskAreas: areas changed after change_id, from start.
 * change_id "*" = every allocated area of the disk (chain).  An invalid
 * or unknown changeId fails with -ESTALE and a message saying why. */
int vdisk_query_changed (const char *path, const char *change_id,
                         uint64_t start, struct vdisk_extent_list *out,
                         struct vb_error *err);
/* Allocated areas of the chain (merged, sorted). */
int vdisk_map (struct vdisk *d, uint64_t start, struct vdisk_extent_list *out,
               struct vb_error *err);

#endif
