/* vmback vdisk internals: the extent driver contract.
 *
 * The core (vdisk.c) owns chains, bounds, alignment, copy on write, the
 * CID and change tracking.  An extent driver owns only the layout of one
 * extent file type: it maps extent-relative byte offsets to data in its
 * file, and never looks at parents.
 *
 * The core guarantees, before calling a driver:
 *  - offsets and counts lie inside the extent (0 <= off, off+count <= length);
 *  - pread is only called on ranges `status` reported as EXT_DATA;
 *  - pwrite of a range touching a grain that is not EXT_DATA in this
 *    extent covers that grain completely (the core completed it from the
 *    chain), so drivers never need to read a parent;
 *  - pwrite/zero are only called when the extent was opened writable.
 */
#ifndef VMBACK_VDISK_INT_H
#define VMBACK_VDISK_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/le.h"
#include "vmback/vdisk.h"
#include "vmdk-desc.h"

struct vdisk_extent;
struct ctk;

/* What status() reports for a range of an extent. */
enum ext_status {
  EXT_UNALLOC = 0,   /* not in this layer: read the parent (or zeros) */
  EXT_DATA = 1,      /* data stored in this extent */
  EXT_ZERO = 2,      /* reads as zeros in this layer (zeroed grain, ZERO extent) */
};

/* How to create an extent file. */
struct ext_create {
  uint64_t sectors;          /* capacity of this extent */
  uint32_t grain_sectors;    /* sparse formats: grain size (power of 2) */
  const char *embedded_desc; /* monolithicSparse/streamOptimized: descriptor text
                                to embed, NULL if none */
  bool stream;               /* SPARSE: streamOptimized (compressed) */
  int compress_level;
};

struct vdisk_extent_ops {
  const char *name;        /* driver name, e.g. "sparse" */
  enum vmdk_extent_kind kind;

  /* Score 0..100 how likely buf (the first len bytes of a file) is ours.
   * May be NULL. */
  int (*probe) (const uint8_t *buf, size_t len);

  /* Open ext->path; ext->fd is already open (O_RDWR or O_RDONLY per
   * ext->writable), ext->length, ext->file_offset set from the
   * descriptor.  Must validate every header field (all on-disk bytes are
   * hostile) and set ext->grain (allocation unit in bytes; 0 = none,
   * i.e. always allocated).  Store private state in ext->priv. */
  int (*open) (struct vdisk_extent *ext, struct vb_error *err);

  /* Free ext->priv (do not close ext->fd).  Flush pending metadata first
   * when writable; errors go to err but the extent is closed regardless. */
  int (*close) (struct vdisk_extent *ext, struct vb_error *err);

  /* Status of [off, off+len): return an enum ext_status and set *pnum to
   * the length of the run with that status (> 0, <= len).  NULL means
   * always EXT_DATA. */
  int (*status) (struct vdisk_extent *ext, uint64_t off, uint64_t len,
                 uint64_t *pnum, struct vb_error *err);

  int (*pread) (struct vdisk_extent *ext, void *buf, size_t count,
                uint64_t off, struct vb_error *err);
  /* NULL = read only format. */
  int (*pwrite) (struct vdisk_extent *ext, const void *buf, size_t count,
                 uint64_t off, struct vb_error *err);
  /* Make [off, off+count) read as zeros in this layer.  has_parent tells
   * whether unallocated grains would show a parent's data (then the
   * driver must mark them zeroed, not merely unallocated).  NULL = the core
   * writes zero buffers instead. */
  int (*zero) (struct vdisk_extent *ext, uint64_t off, uint64_t count,
               bool has_parent, struct vb_error *err);
  int (*flush) (struct vdisk_extent *ext, struct vb_error *err);

  /* Create a new extent file at path (must not exist). NULL = cannot create. */
  int (*create) (const char *path, const struct ext_create *c,
                 struct vb_error *err);

  /* For files that embed the descriptor (KDMV with descriptorOffset):
   * return the descriptor text (malloc'd, NUL-terminated) or NULL in *out
   * when there is none.  May be NULL. */
  int (*read_embedded_desc) (struct vdisk_extent *ext, char **out,
                             struct vb_error *err);
  /* Rewrite the embedded descriptor in place; -ENOSPC if it does not fit. */
  int (*write_embedded_desc) (struct vdisk_extent *ext, const char *text,
                              struct vb_error *err);

  /* Bytes of data stored in this extent (for info; flat files count the
   * blocks the host file really holds).  NULL = length. */
  uint64_t (*allocated) (struct vdisk_extent *ext);

  /* Structural check: call report for each problem, return their number
   * or a negative errno.  repair: fix what can be fixed safely (redundant
   * grain directory).  May be NULL (nothing to check). */
  int (*check) (struct vdisk_extent *ext, bool repair,
                vdisk_report_fn report, void *opaque, struct vb_error *err);

  /* Change the capacity to new_length bytes (grow only; the core rejects
   * shrinking the virtual size).  NULL = not supported. */
  int (*resize) (struct vdisk_extent *ext, uint64_t new_length,
                 struct vb_error *err);

  /* Reclaim space: drop all-zero grains, compact, truncate.  NULL = no-op. */
  int (*shrink) (struct vdisk_extent *ext, struct vb_error *err);
};

struct vdisk_layer;

struct vdisk_extent {
  const struct vdisk_extent_ops *ops;
  struct vdisk_layer *layer;
  char *path;              /* resolved path of the extent file */
  char *name;              /* as written in the descriptor */
  int fd;                  /* -1 for ZERO */
  bool writable;
  uint64_t start;          /* virtual byte offset of this extent in the layer */
  uint64_t length;         /* bytes */
  uint64_t file_offset;    /* FLAT/VMFS: byte offset in the file */
  uint32_t grain;          /* allocation unit in bytes, 0 = none */
  void *priv;
};

struct vdisk_layer {
  char *path;              /* descriptor (or raw/sparse file) path */
  char *dir;               /* directory of path, for relative names */
  enum vdisk_type type;
  struct vmdk_desc desc;   /* empty for raw */
  bool has_desc;
  bool embedded_desc;      /* descriptor lives inside ext[0] */
  struct vdisk_extent *ext;
  size_t n_ext;
  uint64_t size;           /* bytes */
  bool writable;
  bool cid_updated;        /* CID already bumped in this session */
  bool keep_cid;           /* VDISK_OPEN_KEEPCID: never bump, never track */
  struct vdisk_layer *parent;
  struct ctk *ctk;         /* change tracker of this layer, NULL if off */
};

struct vdisk {
  struct vdisk_layer *top;
  unsigned flags;
};

/* Registered extent drivers (by kind); NULL if none. */
const struct vdisk_extent_ops *vdisk_extent_driver (enum vmdk_extent_kind k);

extern const struct vdisk_extent_ops vdisk_flat_ops;     /* extent-flat.c */
extern const struct vdisk_extent_ops vdisk_zero_ops;     /* extent-flat.c */
extern const struct vdisk_extent_ops vdisk_sparse_ops;   /* vmdk-sparse.c */
extern const struct vdisk_extent_ops vdisk_cowd_ops;     /* vmdk-cowd.c */
extern const struct vdisk_extent_ops vdisk_sesparse_ops; /* vmdk-sesparse.c */

/* --- helpers shared by drivers (vio.c) --------------------------------- */

/* Full pread/pwrite (retry on short I/O and EINTR).  Return 0 or -errno;
 * a short read at EOF is -EIO ("unexpected end of file"). */
int vio_pread (int fd, void *buf, size_t count, uint64_t off);
int vio_pwrite (int fd, const void *buf, size_t count, uint64_t off);
int vio_fsync (int fd);
/* fsync the directory holding path (a rename or link in it is durable). */
int vio_fsync_dir (const char *path);
/* Put off this thread's directory fsyncs until vio_dir_sync_flush, which
 * does each directory once: for a run of new files that nothing names
 * until a later step, whose own atomic write then follows the flush. */
void vio_dir_sync_defer (void);
int vio_dir_sync_flush (void);
/* File size via fstat, or -errno. */
int64_t vio_size (int fd);
/* Write a whole file atomically: tmp in same dir, fsync, rename, fsync dir. */
int vio_write_file_atomic (const char *path, const void *buf, size_t len,
                           struct vb_error *err);
/* Read a whole small file (at most max bytes, else -EFBIG). */
int vio_read_file (const char *path, size_t max, char **out, size_t *len,
                   struct vb_error *err);
bool vio_is_zero (const void *buf, size_t len);

/* Little-endian accessors for on-disk structures: common/le.h. */

/* --- core internals used by ops (vdisk.c) ------------------------------ */

/* Open one layer (no parent). */
int vdisk_layer_open (const char *path, bool writable,
                      struct vdisk_layer **out, struct vb_error *err);
void vdisk_layer_close (struct vdisk_layer *l, struct vb_error *err);
/* Read through layer l and its parents. */
int vdisk_layer_read (struct vdisk_layer *l, void *buf, size_t count,
                      uint64_t off, struct vb_error *err);
/* Status of [off, off+len) in layer l alone: an enum ext_status, *pnum
 * the length of the run (off beyond the layer's size: EXT_UNALLOC). */
int vdisk_layer_status (struct vdisk_layer *l, uint64_t off, uint64_t len,
                        uint64_t *pnum, struct vb_error *err);
/* Write the layer's descriptor (separate file atomically, or embedded). */
int vdisk_layer_write_desc (struct vdisk_layer *l, struct vb_error *err);

/* Path helpers. */
char *vdisk_path_dir (const char *path);
char *vdisk_path_join (const char *dir, const char *name);
/* Base name without a trailing ".vmdk". */
char *vdisk_path_stem (const char *path);

#endif
