/* vmback: the vmx connector -- a VMware-style VM directory, with vmback
 * as its snapshot manager (connector.h over vmx-vm.h). */
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connectors/connector.h"
#include "connectors/vmx-vm.h"

struct vmx_connector {
  struct vb_connector base;  /* first: the handle the engine holds */
  struct vmx_vm *vm;
};

/* Our state from the engine's handle. */
static struct vmx_vm *
vm_of (struct vb_connector *c)
{
  return ((struct vmx_connector *) c)->vm;
}

/* A path ending in .vmx. */
static bool
vmx_probe (const char *source)
{
  size_t n = strlen (source);
  return n > 4 && strcasecmp (source + n - 4, ".vmx") == 0;
}

/* Open the VM directory (takes its lock, finishes interrupted merges). */
static int
vmx_open (const char *source, struct vb_connector **out, struct vb_error *err)
{
  struct vmx_connector *c = calloc (1, sizeof *c);
  if (!c)
    return vb_errno (err, ENOMEM, "cannot open '%s'", source);
  c->base.ops = &vb_connector_vmx;
  int r = vmx_vm_open (source, &c->vm, err);
  if (r < 0) {
    free (c);
    return r;
  }
  *out = &c->base;
  return 0;
}

/* Close and unlock. */
static void
vmx_close (struct vb_connector *c)
{
  if (!c)
    return;
  vmx_vm_close (vm_of (c));
  free (c);
}

/* NAME of NAME.vmx. */
static const char *
vmx_vm_name (struct vb_connector *c)
{
  return vm_of (c)->name;
}

/* The .vmx text as it is now. */
static int
vmx_get_config (struct vb_connector *c, char **text, size_t *len, struct vb_error *err)
{
  if (!(*text = vmx_format (vm_of (c)->cfg, len)))
    return vb_errno (err, ENOMEM, "cannot read '%s'", vm_of (c)->vmx_path);
  return 0;
}

/* Powered on while the hypervisor holds NAME.vmx.lck (VMware's lock
 * directory next to the .vmx); suspended with a .vmss state file. */
static int
vmx_power_state (struct vb_connector *c, enum vb_power_state *st, struct vb_error *err)
{
  struct vmx_vm *vm = vm_of (c);
  char p[4096];
  struct stat sb;
  *st = VB_POWER_OFF;
  snprintf (p, sizeof p, "%s.lck", vm->vmx_path);
  if (stat (p, &sb) == 0) {
    *st = VB_POWER_ON;
    return 0;
  }
  snprintf (p, sizeof p, "%s/%s.vmss", vm->dir, vm->name);
  if (stat (p, &sb) == 0)
    *st = VB_POWER_SUSPENDED;
  return 0;
}

/* Free a disk list. */
void
vb_vm_disks_free (struct vb_vm_disk *d, size_t n)
{
  for (size_t i = 0; d && i < n; i++)
    free (d[i].file);
  free (d);
}

/* Disks of the .vmx with their capacity (each chain must open). */
static int
vmx_list_disks (struct vb_connector *c, struct vb_vm_disk **disks, size_t *n,
                struct vb_error *err)
{
  struct vmx_vm *vm = vm_of (c);
  struct vb_vm_disk *d = calloc (vm->n_disks ? vm->n_disks : 1, sizeof *d);
  if (!d)
    return vb_errno (err, ENOMEM, "cannot list disks of '%s'", vm->vmx_path);
  int r = 0;
  for (size_t i = 0; i < vm->n_disks && r == 0; i++) {
    struct vdisk_info in;
    snprintf (d[i].key, sizeof d[i].key, "%s", vm->disks[i].device);
    r = vmx_vm_disk_file (vm, 0, vm->disks[i].device, &d[i].file, err);
    if (r == 0 && (r = vdisk_get_info (d[i].file, &in, err)) == 0) {
      d[i].capacity = in.size;
      vdisk_info_free (&in);
    }
  }
  if (r < 0) {
    vb_vm_disks_free (d, vm->n_disks);
    return r;
  }
  *disks = d;
  *n = vm->n_disks;
  return 0;
}

/* Parse a snapshot id (decimal uid). */
static int
parse_id (struct vmx_vm *vm, const char *id, uint32_t *uid, struct vb_error *err)
{
  if (!id || !*id) {
    *uid = 0;                /* the current state */
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long v = strtoul (id, &end, 10);
  if (*end || errno || v == 0 || v > VMSD_MAX_UID)
    return vb_err (err, EINVAL, "'%s' is not a snapshot id of '%s'", id, vm->vmx_path);
  *uid = (uint32_t) v;
  return 0;
}

/* Take a snapshot, quiesced as asked. */
static int
vmx_snap_create (struct vb_connector *c, const char *name, const char *description,
                 enum quiesce_mode quiesce, struct vb_snapshot *out, struct vb_error *err)
{
  struct vmx_snapshot_opts o = { .name = name, .description = description, .quiesce = quiesce };
  struct vmx_snapshot_result res;
  int r = vmx_snapshot_create (vm_of (c), &o, &res, err);
  memset (out, 0, sizeof *out);
  snprintf (out->id, sizeof out->id, "%" PRIu32, res.uid);
  out->level = res.level;
  snprintf (out->warning, sizeof out->warning, "%s", res.warning);
  if (r == 0 && res.signal)
    r = vb_err (err, EINTR, "interrupted by signal %d while the VM was frozen", res.signal);
  return r;
}

/* Delete one snapshot (merging as docs/snapshots.md says). */
static int
vmx_snap_delete (struct vb_connector *c, const char *id, struct vb_error *err)
{
  uint32_t uid = 0;
  int r = parse_id (vm_of (c), id, &uid, err);
  return r < 0 ? r : vmx_snapshot_delete (vm_of (c), uid, NULL, NULL, err);
}

/* Delete every snapshot. */
static int
vmx_snap_delete_all (struct vb_connector *c, struct vb_error *err)
{
  return vmx_snapshot_delete_all (vm_of (c), NULL, NULL, err);
}

/* Revert to a snapshot. */
static int
vmx_snap_revert (struct vb_connector *c, const char *id, struct vb_error *err)
{
  uint32_t uid = 0;
  int r = parse_id (vm_of (c), id, &uid, err);
  return r < 0 ? r : vmx_snapshot_revert (vm_of (c), uid, err);
}

/* Merge and remove leftovers; how many delta files went. */
static int
vmx_consolidate (struct vb_connector *c, struct vb_error *err)
{
  size_t removed = 0;          /* merged layers are counted here too */
  int r = vmx_vm_consolidate (vm_of (c), NULL, NULL, NULL, &removed, err);
  return r < 0 ? r : removed > INT_MAX ? INT_MAX : (int) removed;
}

/* Snapshots of the .vmsd, by uid. */
static int
vmx_list_snapshots (struct vb_connector *c, struct vb_snapshot_info **out, size_t *n,
                    struct vb_error *err)
{
  const struct vmsd *sd = &vm_of (c)->sd;
  *out = NULL;
  *n = 0;
  if (sd->n == 0)
    return 0;
  struct vb_snapshot_info *v = calloc (sd->n, sizeof *v);
  if (!v)
    return vb_errno (err, ENOMEM, "cannot list snapshots of '%s'", vm_of (c)->vmx_path);
  for (size_t i = 0; i < sd->n; i++) {
    const struct vmsd_snapshot *s = &sd->snap[i];
    snprintf (v[i].id, sizeof v[i].id, "%" PRIu32, s->uid);
    snprintf (v[i].name, sizeof v[i].name, "%s", s->display_name ? s->display_name : "");
    snprintf (v[i].description, sizeof v[i].description, "%s",
              s->description ? s->description : "");
  }
  *out = v;
  *n = sd->n;
  return 0;
}

/* Save text as the .vmx, each disk device keeping its current file. */
static int
vmx_set_config (struct vb_connector *c, const char *text, size_t len,
                struct vb_error *err)
{
  struct vmx_vm *vm = vm_of (c);
  struct vmx_config *cfg;
  int r = vmx_parse (text, len, vm->vmx_path, &cfg, err);
  if (r < 0)
    return r;
  for (size_t i = 0; i < vm->n_disks && r == 0; i++)
    r = vmx_disk_set_file_name (cfg, vm->disks[i].device, vm->disks[i].file_name, err);
  if (r == 0)
    r = vmx_save (cfg, vm->vmx_path, err);
  vmx_free (cfg);
  int rl = vmx_vm_reload (vm, r < 0 ? NULL : err);   /* the files are the truth */
  return r < 0 ? r : rl;
}

/* QueryChangedDiskAreas as of a snapshot. */
static int
vmx_changed_areas (struct vb_connector *c, const char *snapshot, const char *disk,
                   const char *change_id, uint64_t start, struct vdisk_extent_list *out,
                   struct vb_error *err)
{
  uint32_t uid = 0;
  int r = parse_id (vm_of (c), snapshot, &uid, err);
  return r < 0 ? r : vmx_vm_changed_areas (vm_of (c), uid, disk, change_id, start, out, err);
}

/* The changeId as of a snapshot. */
static int
vmx_change_id (struct vb_connector *c, const char *snapshot, const char *disk,
               char *buf, size_t len, struct vb_error *err)
{
  uint32_t uid = 0;
  int r = parse_id (vm_of (c), snapshot, &uid, err);
  return r < 0 ? r : vmx_vm_change_id (vm_of (c), uid, disk, buf, len, err);
}

/* The layer a snapshot froze for a disk. */
static int
vmx_disk_path (struct vb_connector *c, const char *snapshot, const char *disk,
               char **path, struct vb_error *err)
{
  uint32_t uid = 0;
  int r = parse_id (vm_of (c), snapshot, &uid, err);
  return r < 0 ? r : vmx_vm_disk_file (vm_of (c), uid, disk, path, err);
}

const struct vb_connector_ops vb_connector_vmx = {
  .name = "vmx",
  .probe = vmx_probe,
  .open = vmx_open,
  .close = vmx_close,
  .vm_name = vmx_vm_name,
  .get_config = vmx_get_config,
  .power_state = vmx_power_state,
  .list_disks = vmx_list_disks,
  .snapshot_create = vmx_snap_create,
  .snapshot_delete = vmx_snap_delete,
  .snapshot_delete_all = vmx_snap_delete_all,
  .snapshot_revert = vmx_snap_revert,
  .consolidate = vmx_consolidate,
  .list_snapshots = vmx_list_snapshots,
  .set_config = vmx_set_config,
  .changed_areas = vmx_changed_areas,
  .change_id = vmx_change_id,
  .disk_path = vmx_disk_path,
};

/* Registered connectors, in probe order. */
static const struct vb_connector_ops *const connectors[] = { &vb_connector_vmx };

/* The connector claiming source. */
const struct vb_connector_ops *
vb_connector_find (const char *source)
{
  for (size_t i = 0; i < sizeof connectors / sizeof *connectors; i++)
    if (connectors[i]->probe (source))
      return connectors[i];
  return NULL;
}
