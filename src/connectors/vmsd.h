/* VMware snapshot dictionary (.vmsd): parse, validate, write, and a model
 * of the snapshot tree with the operations a snapshot manager needs.
 * The syntax is the .vmx one (vmx-config.h); keys in docs/vmx-vmsd.md.
 *
 * The model only edits the tree; it never touches disks or .vmsn files.
 * Snapshot pointers returned by the functions below stay valid until the
 * next vmsd_add_child / vmsd_remove / vmsd_free. */
#ifndef VMBACK_VMSD_H
#define VMBACK_VMSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

#define VMSD_MAX_SNAPSHOTS 32      /* VMware's limit per VM */
#define VMSD_MAX_DISKS 512         /* snapshotN.numDisks */
#define VMSD_MAX_UID 2147483647u   /* uids are positive int32 */
#define VMSD_MAX_EXTRA 4096        /* unknown keys kept, whole file */

struct vmsd_kv {
  char *key;     /* global: the whole key; per snapshot: the part after
                    "snapshotN."; per disk: the part after "diskK." */
  char *value;   /* decoded */
};

struct vmsd_disk {
  char *file_name;   /* diskK.fileName: the disk as of this snapshot */
  char *node;        /* diskK.node: device key, e.g. "scsi0:0" */
  struct vmsd_kv *extra;
  size_t n_extra;
};

enum vmsd_consistency {
  VMSD_CONSISTENCY_NONE = 0,   /* key absent */
  VMSD_CONSISTENCY_CRASH,
  VMSD_CONSISTENCY_FILESYSTEM,
  VMSD_CONSISTENCY_APPLICATION,
};

struct vmsd_snapshot {
  uint32_t uid;              /* 1..VMSD_MAX_UID */
  uint32_t parent;           /* 0 = a root */
  char *filename;            /* the .vmsn (NULL if absent) */
  char *display_name;        /* NULL if absent */
  char *description;         /* NULL if absent */
  bool has_create_time;
  int64_t create_time_us;    /* microseconds since 1970 UTC (see docs) */
  struct vmsd_disk *disks;
  size_t n_disks;
  bool has_quiesced;
  bool quiesced;
  bool has_type;
  int32_t type;
  enum vmsd_consistency consistency;  /* .vmbackConsistency */
  struct vmsd_kv *extra;     /* unknown snapshotN.* keys, in file order */
  size_t n_extra;
};

struct vmsd {
  char *encoding;            /* .encoding, NULL if absent */
  uint32_t last_uid;         /* snapshot.lastUID */
  uint32_t current;          /* snapshot.current, 0 = none (base disks) */
  struct vmsd_snapshot snap[VMSD_MAX_SNAPSHOTS];  /* sorted by uid */
  size_t n;
  uint32_t mru[VMSD_MAX_SNAPSHOTS];  /* snapshot.mruK.uid, most recent first */
  size_t n_mru;
  struct vmsd_kv *extra;     /* unknown global keys, in file order */
  size_t n_extra;
};

/* An empty model (no snapshots, lastUID 0, encoding "UTF-8"). */
int vmsd_init (struct vmsd *m);
void vmsd_free (struct vmsd *m);

/* Parse and validate .vmsd text (an empty text is a VM without
 * snapshots).  On error *m is left empty (vmsd_free is harmless).
 * Errors (-EINVAL unless noted): syntax (as vmx_parse), bad numbers,
 * a snapshot without uid, duplicate uids, a parent uid that names no
 * snapshot, a loop in the parent links, snapshot.numSnapshots missing
 * or not matching, more than VMSD_MAX_SNAPSHOTS (-E2BIG), lastUID lower
 * than a uid, current naming no snapshot, disks without fileName/node,
 * numDisks over VMSD_MAX_DISKS or not matching, a bad quiesced or
 * vmbackConsistency value. */
int vmsd_parse (const char *text, size_t len, const char *name,
                struct vmsd *m, struct vb_error *err);
int vmsd_load (const char *path, struct vmsd *m, struct vb_error *err);
/* Write the model: globals, then the snapshots renumbered snapshot0..
 * in tree order (depth first, children by ascending uid), then the MRU
 * list.  malloc'd NUL-terminated text, NULL on ENOMEM. */
char *vmsd_format (const struct vmsd *m, size_t *len);
/* Validate, format and write atomically (temp file, fsync, rename). */
int vmsd_save (const struct vmsd *m, const char *path, struct vb_error *err);
/* Check the invariants vmsd_parse checks (used before saving). */
int vmsd_validate (const struct vmsd *m, const char *name,
                   struct vb_error *err);

/* Lookups.  find_by_name gives the match with the lowest uid. */
struct vmsd_snapshot *vmsd_find (const struct vmsd *m, uint32_t uid);
struct vmsd_snapshot *vmsd_find_by_name (const struct vmsd *m,
                                         const char *display_name);
/* Children of uid (0 = the roots) in ascending uid order into out
 * (room for VMSD_MAX_SNAPSHOTS); returns their number. */
size_t vmsd_children (const struct vmsd *m, uint32_t uid,
                      uint32_t out[VMSD_MAX_SNAPSHOTS]);
/* Uids from the root down to the current snapshot into out; returns
 * the count (0 when current is 0). */
size_t vmsd_current_path (const struct vmsd *m,
                          uint32_t out[VMSD_MAX_SNAPSHOTS]);
/* True when uid is the current snapshot or one of its ancestors (its
 * disks are part of the VM's current data path). */
bool vmsd_on_current_path (const struct vmsd *m, uint32_t uid);

/* Add a snapshot as child of the current one: uid = ++lastUID, it
 * becomes current and heads the MRU list.  display_name may be NULL.
 * -E2BIG beyond VMSD_MAX_SNAPSHOTS, -EOVERFLOW when lastUID is at
 * VMSD_MAX_UID.  *out (may be NULL) gets the new snapshot. */
int vmsd_add_child (struct vmsd *m, const char *display_name,
                    int64_t create_time_us, struct vmsd_snapshot **out,
                    struct vb_error *err);
/* Remove snapshot uid from the tree: its children get its parent, and if
 * it was current its parent becomes current.  -ENOENT if absent. */
int vmsd_remove (struct vmsd *m, uint32_t uid, struct vb_error *err);
/* Make uid (0 = none) current and head of the MRU list; -ENOENT if absent. */
int vmsd_set_current (struct vmsd *m, uint32_t uid, struct vb_error *err);

/* Edit a snapshot: replace a string field (strdup; NULL clears), append a
 * disk (file_name and node required). */
int vmsd_set_str (char **field, const char *value);
int vmsd_add_disk (struct vmsd_snapshot *s, const char *file_name,
                   const char *node, struct vb_error *err);

/* "crash" / "filesystem" / "application" (NULL for NONE), and back
 * (false if unknown). */
const char *vmsd_consistency_name (enum vmsd_consistency c);
bool vmsd_parse_consistency (const char *s, enum vmsd_consistency *out);

/* VMware's createTimeHigh/Low pair <-> microseconds since the epoch:
 * time = high * 2^32 + (uint32) low; low is written as a signed int32. */
int64_t vmsd_time_from_parts (int32_t high, int32_t low);
void vmsd_time_to_parts (int64_t us, int32_t *high, int32_t *low);

#endif
