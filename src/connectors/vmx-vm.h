/* vmback: a VMware-style VM directory and its snapshot manager
 * (docs/snapshots.md).
 *
 * A VM is NAME.vmx (configuration, current disk leaves), NAME.vmsd (the
 * snapshot tree; each snapshot names the disk layer it froze), one .vmdk
 * chain per disk, and NAME-SnapshotN.vmsn per snapshot (here: a copy of
 * the .vmx at snapshot time, restored by revert).
 *
 * Every operation keeps what the VM and each remaining snapshot read
 * byte-identical.  Deletes are two steps, as in VMware: the snapshot leaves
 * the .vmsd first; then vmx_vm_consolidate() merges the layers nobody
 * references any more.  Each merge is journalled in NAME.vmback/journal
 * so that a process killed at any point leaves a VM that opens with the
 * right data, and the next snapshot operation (or `consolidate`)
 * finishes the job.
 */
#ifndef VMBACK_VMX_VM_H
#define VMBACK_VMX_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"
#include "vmback/vdisk.h"
#include "connectors/quiesce.h"
#include "connectors/vmsd.h"
#include "connectors/vmx-config.h"

struct vmx_vm {
  char *vmx_path;            /* as given */
  char *dir;                 /* canonical directory of the .vmx */
  char *name;                /* NAME of NAME.vmx */
  char *vmsd_path;           /* DIR/NAME.vmsd */
  char *state_dir;           /* DIR/NAME.vmback (hooks, journal) */
  struct vmx_config *cfg;
  struct vmsd sd;
  struct vmx_disk *disks;    /* from cfg */
  size_t n_disks;
  int lock_fd;               /* flock on the .vmx while open */
};

/* Progress of long operations (merges): bytes done and total of the
 * current step, and what it is ("merge disk0-000001.vmdk into disk0.vmdk"). */
typedef void (*vmx_progress_fn) (void *opaque, const char *what, uint64_t done,
                                 uint64_t total);

/* Open a VM: parse the .vmx and the .vmsd (absent = no snapshots), take
 * an exclusive lock (-EBUSY "in use by another vmback process"), and
 * finish an interrupted merge if the journal says so. */
int vmx_vm_open (const char *vmx_path, struct vmx_vm **out, struct vb_error *err);
void vmx_vm_close (struct vmx_vm *vm);

/* Resolve a file name from the .vmx/.vmsd to a canonical path (relative
 * names are relative to the VM directory).  malloc'd; NULL on error. */
char *vmx_vm_path (const struct vmx_vm *vm, const char *name);
/* The name to store for a path: its base name when it lies in the VM
 * directory, else the path itself. */
char *vmx_vm_ref (const struct vmx_vm *vm, const char *path);

/* The disk file a device reads in the current state (uid 0) or in
 * snapshot uid: malloc'd canonical path in *out.  -ENOENT when the
 * snapshot or the device does not exist. */
int vmx_vm_disk_file (const struct vmx_vm *vm, uint32_t uid, const char *device,
                      char **out, struct vb_error *err);

/* Snapshot by display name or "#uid"/uid number; -ENOENT if none. */
int vmx_vm_find_snapshot (const struct vmx_vm *vm, const char *name,
                          uint32_t *uid, struct vb_error *err);

struct vmx_snapshot_opts {
  const char *name;          /* display name (required) */
  const char *description;   /* may be NULL */
  enum quiesce_mode quiesce;
  const char *hooks_dir;     /* NULL = NAME.vmback/freeze.d */
  unsigned freeze_timeout_ms;/* 0 = default (60 s) */
};

/* Result of a snapshot create. */
struct vmx_snapshot_result {
  uint32_t uid;
  enum quiesce_level level;
  char warning[512];         /* quiescing fell back to crash: why ("" if not) */
  int signal;                /* a signal caught while frozen (exit 128+sig) */
};

/* Create a snapshot: each disk gets a child layer (vmfsSparse on
 * ESXi-style disks, monolithicSparse otherwise; change tracking carried
 * over), the .vmx points at the children, the .vmsd gains the snapshot
 * as a child of the current one.  At most VMSD_MAX_SNAPSHOTS (-E2BIG).
 * With quiescing, the freeze hooks run before and the thaw hooks after. */
int vmx_snapshot_create (struct vmx_vm *vm, const struct vmx_snapshot_opts *o,
                         struct vmx_snapshot_result *res, struct vb_error *err);

/* Delete a snapshot: drop it from the .vmsd, then consolidate (the three
 * cases of docs/snapshots.md all follow from "merge layers nobody references"). */
int vmx_snapshot_delete (struct vmx_vm *vm, uint32_t uid, vmx_progress_fn progress,
                         void *opaque, struct vb_error *err);

/* Delete every snapshot; the current chain of each disk is merged into
 * its base in one pass. */
int vmx_snapshot_delete_all (struct vmx_vm *vm, vmx_progress_fn progress,
                             void *opaque, struct vb_error *err);

/* Go back to snapshot uid: every disk gets a new child of the layer the
 * snapshot froze (with a fresh change tracking epoch, so no changeId from
 * before can be used on it), the configuration saved with the snapshot is
 * restored, the snapshot becomes current, and the discarded layers are
 * removed. */
int vmx_snapshot_revert (struct vmx_vm *vm, uint32_t uid, struct vb_error *err);

/* Finish interrupted work and merge or remove every layer no longer
 * needed, judged from the .vmx and .vmsd (re-read first when a failed
 * read left the model unloaded: an empty model would make every delta
 * file look unused).  *merged / *removed (may be NULL) count layers
 * merged and files removed. */
int vmx_vm_consolidate (struct vmx_vm *vm, vmx_progress_fn progress, void *opaque,
                        size_t *merged, size_t *removed, struct vb_error *err);

/* May the delta-named descriptor desc (DIR/NAME-NNNNNN.vmdk), which no
 * disk or snapshot uses, go with its companions?  Yes when it is gone
 * (companions left) or is a child disk; a file that does not open as a
 * disk, or a base disk named like a delta, is kept.  consolidate removes
 * exactly these; `vm info` reports them as "consolidation needed". */
bool vmx_delta_removable (const char *desc);

/* Visit the delta-looking files of directory dir (NAME-NNNNNN.vmdk and
 * its -delta, -sesparse, -ctk, -flat, -sNNN, -fNNN companions), in name
 * order: fn gets each one's descriptor path (DIR/NAME-NNNNNN.vmdk) and
 * its base name; a non-zero return stops the scan and is returned. */
typedef int (*vmx_delta_fn) (void *opaque, const char *desc, const char *file);
int vmx_scan_deltas (const char *dir, vmx_delta_fn fn, void *opaque, struct vb_error *err);

/* Delta files (NAME-NNNNNN.vmdk and their companions) in the VM
 * directory that no disk or snapshot uses: malloc'd array of base names
 * in *names (free each, then the array). */
int vmx_vm_stray_files (const struct vmx_vm *vm, char ***names, size_t *n,
                        struct vb_error *err);

/* Change tracking of a device's disk as of snapshot uid (0 = current):
 * QueryChangedDiskAreas and the changeId (docs/CTK.md: the interval ends at the
 * snapshot). */
int vmx_vm_changed_areas (const struct vmx_vm *vm, uint32_t uid, const char *device,
                          const char *change_id, uint64_t start,
                          struct vdisk_extent_list *out, struct vb_error *err);
int vmx_vm_change_id (const struct vmx_vm *vm, uint32_t uid, const char *device,
                      char *buf, size_t len, struct vb_error *err);

/* Re-read the .vmx and .vmsd from disk (after an operation failed half
 * way, the files are the truth). */
int vmx_vm_reload (struct vmx_vm *vm, struct vb_error *err);

/* Save the in-memory .vmx / .vmsd atomically. */
int vmx_vm_save_vmx (struct vmx_vm *vm, struct vb_error *err);
int vmx_vm_save_vmsd (struct vmx_vm *vm, struct vb_error *err);

/* Check that every disk chain the .vmx and the .vmsd name opens (a
 * missing file, a broken or looping chain is an error naming it). */
int vmx_vm_check (const struct vmx_vm *vm, struct vb_error *err);

/* Internal to the vmx connector (vmx-consolidate.c): finish a merge the
 * journal records (no-op without journal). */
int vmx_vm_recover (struct vmx_vm *vm, struct vb_error *err);

#endif
