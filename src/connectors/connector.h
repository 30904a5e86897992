/* vmback connectors: where VMs live, behind one ops table
 * (docs/snapshots.md, DESIGN "connectors").
 *
 * The backup and restore engine drives every hypervisor through this
 * table and nothing else: open a VM, read its configuration and disks,
 * take and remove snapshots, ask its change tracking what changed, and
 * find the file (or export) that holds a snapshot's disk for a
 * transport.  Snapshot ids are strings so that each connector can use
 * its own (the vmx connector: the .vmsd uid in decimal).
 *
 * All functions return 0 or a negative errno with a one-line message.
 */
#ifndef VMBACK_CONNECTOR_H
#define VMBACK_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"
#include "vmback/vdisk.h"
#include "connectors/quiesce.h"

struct vb_connector;

enum vb_power_state { VB_POWER_OFF = 0, VB_POWER_ON, VB_POWER_SUSPENDED };

/* A disk of a VM. */
struct vb_vm_disk {
  char key[32];              /* device key: "scsi0:0", "sata0:1" ... */
  uint64_t capacity;         /* bytes */
  char *file;                /* current top layer (malloc'd) */
};

/* A snapshot taken by snapshot_create. */
struct vb_snapshot {
  char id[32];               /* connector's id of the snapshot */
  enum quiesce_level level;  /* consistency reached */
  char warning[512];         /* why quiescing fell back ("" if it did not) */
};

/* A snapshot as list_snapshots reports it. */
struct vb_snapshot_info {
  char id[32];               /* as snapshot_create's id */
  char name[256];            /* display name ("" if none) */
  char description[256];     /* "" if none */
};

struct vb_connector_ops {
  const char *name;                          /* "vmx" */
  /* Is source (a path or URL from the command line) one of ours? */
  bool (*probe) (const char *source);
  int (*open) (const char *source, struct vb_connector **out, struct vb_error *err);
  void (*close) (struct vb_connector *c);
  /* The VM's name (for restore point ids) and configuration (the .vmx
   * text for the vmx connector; saved with each point). */
  const char *(*vm_name) (struct vb_connector *c);
  int (*get_config) (struct vb_connector *c, char **text, size_t *len,
                     struct vb_error *err);
  int (*power_state) (struct vb_connector *c, enum vb_power_state *st,
                      struct vb_error *err);
  /* Disks of the current state; free with vb_vm_disks_free. */
  int (*list_disks) (struct vb_connector *c, struct vb_vm_disk **disks, size_t *n,
                     struct vb_error *err);
  /* Snapshots (docs/snapshots.md): create with a quiescing mode, delete one
   * (by id), delete all, revert, consolidate leftovers (merge layers no
   * snapshot explains, remove files nothing uses; returns how many delta
   * files went, 0 when the VM needed nothing). */
  int (*snapshot_create) (struct vb_connector *c, const char *name,
                          const char *description, enum quiesce_mode quiesce,
                          struct vb_snapshot *out, struct vb_error *err);
  int (*snapshot_delete) (struct vb_connector *c, const char *id, struct vb_error *err);
  int (*snapshot_delete_all) (struct vb_connector *c, struct vb_error *err);
  int (*snapshot_revert) (struct vb_connector *c, const char *id, struct vb_error *err);
  int (*consolidate) (struct vb_connector *c, struct vb_error *err);
  /* Every snapshot of the VM, oldest first (*out malloc'd, NULL when
   * none). */
  int (*list_snapshots) (struct vb_connector *c, struct vb_snapshot_info **out,
                         size_t *n, struct vb_error *err);
  /* Replace the VM's configuration with text (as get_config gives it),
   * keeping the disk files the VM uses now: every disk device of the VM
   * must be in text (-ENOENT otherwise) and keeps its current file. */
  int (*set_config) (struct vb_connector *c, const char *text, size_t len,
                     struct vb_error *err);
  /* Change tracking as of a snapshot (docs/CTK.md): areas changed after change_id
   * ("*" = all allocated areas) from start, and the snapshot's changeId. */
  int (*changed_areas) (struct vb_connector *c, const char *snapshot, const char *disk,
                        const char *change_id, uint64_t start,
                        struct vdisk_extent_list *out, struct vb_error *err);
  int (*change_id) (struct vb_connector *c, const char *snapshot, const char *disk,
                    char *buf, size_t len, struct vb_error *err);
  /* Where a snapshot's disk can be read (the san transport opens it with
   * vdisk; nbd exports it): a malloc'd path in *path. */
  int (*disk_path) (struct vb_connector *c, const char *snapshot, const char *disk,
                    char **path, struct vb_error *err);
};

struct vb_connector {
  const struct vb_connector_ops *ops;
};

extern const struct vb_connector_ops vb_connector_vmx;

/* The connector that claims source, or NULL. */
const struct vb_connector_ops *vb_connector_find (const char *source);

void vb_vm_disks_free (struct vb_vm_disk *d, size_t n);

#endif
