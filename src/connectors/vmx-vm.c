/* vmback: a VMware-style VM directory and its snapshot operations
 * (vmx-vm.h).  Merging and clean-up live in vmx-consolidate.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "connectors/vmx-vm.h"
#include "vdisk/vdisk-int.h"

/* --- paths ------------------------------------------------------------- */

/* Canonical form of a path whose last component may not exist yet: the
 * directory through realpath, the base name as is. */
static char *
canon (const char *path)
{
  char *d = strdup (path), *b = strdup (path), *out = NULL;
  if (d && b) {
    char *rd = realpath (dirname (d), NULL);
    const char *base = basename (b);
    if (rd && asprintf (&out, "%s/%s", strcmp (rd, "/") == 0 ? "" : rd, base) < 0)
      out = NULL;
    if (!rd)
      out = strdup (path);
    free (rd);
  }
  free (d);
  free (b);
  return out;
}

/* Resolve a .vmx/.vmsd file name against the VM directory. */
char *
vmx_vm_path (const struct vmx_vm *vm, const char *name)
{
  if (name[0] == '/')
    return canon (name);
  char *j = vdisk_path_join (vm->dir, name);
  char *c = j ? canon (j) : NULL;
  free (j);
  return c;
}

/* Name to store for path: base name inside the VM directory. */
char *
vmx_vm_ref (const struct vmx_vm *vm, const char *path)
{
  size_t n = strlen (vm->dir);
  if (strncmp (path, vm->dir, n) == 0 && path[n] == '/' && !strchr (path + n + 1, '/'))
    return strdup (path + n + 1);
  return strdup (path);
}

/* --- open / close ------------------------------------------------------ */

/* Drop the loaded files. */
static void
unload_files (struct vmx_vm *vm)
{
  vmx_disks_free (vm->disks, vm->n_disks);
  vm->disks = NULL;
  vm->n_disks = 0;
  vmsd_free (&vm->sd);
  vmx_free (vm->cfg);
  vm->cfg = NULL;
}

/* Load the .vmx, the .vmsd and the disk list into vm: all of them, or,
 * on any failure, none (cfg NULL), so that no half-loaded model (a .vmx
 * without its disks) is taken for the VM (graph_build refuses an
 * unloaded one). */
static int
load_files (struct vmx_vm *vm, struct vb_error *err)
{
  int r = vmx_load (vm->vmx_path, &vm->cfg, err);
  struct stat st;
  if (r == 0) {
    if (stat (vm->vmsd_path, &st) == 0)
      r = vmsd_load (vm->vmsd_path, &vm->sd, err);
    else if (errno != ENOENT)
      r = vb_errno (err, errno, "cannot read '%s'", vm->vmsd_path);
    else if ((r = vmsd_init (&vm->sd)) < 0)
      r = vb_errno (err, -r, "cannot read '%s'", vm->vmsd_path);
  }
  if (r == 0)
    r = vmx_disks (vm->cfg, &vm->disks, &vm->n_disks, err);
  if (r < 0)
    unload_files (vm);
  return r;
}

/* Re-read the .vmx and .vmsd. */
int
vmx_vm_reload (struct vmx_vm *vm, struct vb_error *err)
{
  unload_files (vm);
  return load_files (vm, err);
}

/* Take the VM's lock: NAME.vmback/lock, flock'ed exclusively.  (Not the
 * .vmx itself: it is replaced by rename on every save.) */
static int
take_lock (struct vmx_vm *vm, struct vb_error *err)
{
  if (mkdir (vm->state_dir, 0700) < 0 && errno != EEXIST)
    return vb_errno (err, errno, "cannot create '%s'", vm->state_dir);
  char *p = vdisk_path_join (vm->state_dir, "lock");
  if (!p)
    return vb_errno (err, ENOMEM, "cannot lock '%s'", vm->vmx_path);
  vm->lock_fd = open (p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  int r = 0;
  if (vm->lock_fd < 0)
    r = vb_errno (err, errno, "cannot open '%s'", p);
  else if (flock (vm->lock_fd, LOCK_EX | LOCK_NB) < 0)
    r = errno == EWOULDBLOCK
      ? vb_err (err, EBUSY, "VM '%s' is in use by another vmback process", vm->vmx_path)
      : vb_errno (err, errno, "cannot lock '%s'", p);
  free (p);
  return r;
}

/* Derive the VM's file names from the .vmx path. */
static int
vm_names (struct vmx_vm *vm, const char *vmx_path, struct vb_error *err)
{
  vm->vmx_path = strdup (vmx_path);
  char *c = canon (vmx_path);
  if (!vm->vmx_path || !c) {
    free (c);
    return vb_errno (err, ENOMEM, "cannot open '%s'", vmx_path);
  }
  char *slash = strrchr (c, '/');
  *slash = '\0';
  vm->dir = strdup (*c ? c : "/");
  const char *base = slash + 1;
  size_t n = strlen (base);
  if (n > 4 && strcasecmp (base + n - 4, ".vmx") == 0)
    n -= 4;
  vm->name = strndup (base, n);
  if (vm->dir && vm->name
      && asprintf (&vm->vmsd_path, "%s/%s.vmsd", vm->dir, vm->name) >= 0
      && asprintf (&vm->state_dir, "%s/%s.vmback", vm->dir, vm->name) >= 0) {
    free (c);
    return 0;
  }
  free (c);
  return vb_errno (err, ENOMEM, "cannot open '%s'", vmx_path);
}

/* The pid in a temporary file name "FILE.tmp.PID" (vio_write_file_atomic,
 * vdisk create) when FILE ends in one of the VM's file types, or any FILE
 * when any_file; 0 for other names. */
static long
tmp_owner (const char *name, bool any_file)
{
  static const char *const types[] = { ".vmx", ".vmsd", ".vmdk", ".vmsn", ".vmxf", ".nvram" };
  const char *t = NULL;
  for (const char *p = strstr (name, ".tmp."); p; p = strstr (p + 1, ".tmp."))
    t = p;
  if (!t || t == name || !t[5] || strlen (t + 5) > 10 || strspn (t + 5, "0123456789") != strlen (t + 5))
    return 0;
  bool typed = any_file;
  for (size_t i = 0; i < sizeof types / sizeof types[0] && !typed; i++) {
    size_t n = strlen (types[i]);
    typed = (size_t) (t - name) > n && strncasecmp (t - n, types[i], n) == 0;
  }
  return typed ? strtol (t + 5, NULL, 10) : 0;
}

/* Remove the temporary files of atomic writes whose process was killed
 * before the rename (FILE.tmp.PID, PID no longer running) from dir.  Only
 * called under the VM lock; best effort: what cannot be removed stays. */
static void
remove_stale_tmp (const char *dir, bool any_file)
{
  DIR *d = opendir (dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir (d))) {
    long pid = tmp_owner (e->d_name, any_file);
    struct stat st;
    if (pid <= 0 || pid == (long) getpid () || pid > INT_MAX
        || (kill ((pid_t) pid, 0) == 0 || errno != ESRCH)
        || fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0
        || !S_ISREG (st.st_mode))
      continue;
    unlinkat (dirfd (d), e->d_name, 0);
  }
  closedir (d);
}

/* Open a VM (see vmx-vm.h). */
int
vmx_vm_open (const char *vmx_path, struct vmx_vm **out, struct vb_error *err)
{
  struct vmx_vm *vm = calloc (1, sizeof *vm);
  if (!vm)
    return vb_errno (err, ENOMEM, "cannot open '%s'", vmx_path);
  vm->lock_fd = -1;
  struct stat st;
  int r = vm_names (vm, vmx_path, err);
  if (r == 0 && stat (vmx_path, &st) < 0)
    r = vb_errno (err, errno, "cannot open '%s'", vmx_path);
  if (r == 0)
    r = take_lock (vm, err);
  if (r == 0) {
    remove_stale_tmp (vm->dir, false);
    remove_stale_tmp (vm->state_dir, true);
    r = load_files (vm, err);
  }
  if (r == 0)
    r = vmx_vm_recover (vm, err);
  if (r < 0) {
    vmx_vm_close (vm);
    return r;
  }
  *out = vm;
  return 0;
}

/* Close a VM and release its lock. */
void
vmx_vm_close (struct vmx_vm *vm)
{
  if (!vm)
    return;
  unload_files (vm);
  if (vm->lock_fd >= 0)
    close (vm->lock_fd);
  free (vm->vmx_path);
  free (vm->dir);
  free (vm->name);
  free (vm->vmsd_path);
  free (vm->state_dir);
  free (vm);
}

/* Save the configuration. */
int
vmx_vm_save_vmx (struct vmx_vm *vm, struct vb_error *err)
{
  return vmx_save (vm->cfg, vm->vmx_path, err);
}

/* Save the snapshot tree. */
int
vmx_vm_save_vmsd (struct vmx_vm *vm, struct vb_error *err)
{
  return vmsd_save (&vm->sd, vm->vmsd_path, err);
}

/* --- lookups ----------------------------------------------------------- */

/* The disk a device reads now (uid 0) or in a snapshot. */
int
vmx_vm_disk_file (const struct vmx_vm *vm, uint32_t uid, const char *device,
                  char **out, struct vb_error *err)
{
  const char *name = NULL;
  if (uid == 0) {
    for (size_t i = 0; i < vm->n_disks && !name; i++)
      if (strcasecmp (vm->disks[i].device, device) == 0)
        name = vm->disks[i].file_name;
  } else {
    const struct vmsd_snapshot *s = vmsd_find (&vm->sd, uid);
    if (!s)
      return vb_err (err, ENOENT, "VM '%s' has no snapshot with uid %" PRIu32,
                     vm->vmx_path, uid);
    for (size_t k = 0; k < s->n_disks && !name; k++)
      if (strcasecmp (s->disks[k].node, device) == 0)
        name = s->disks[k].file_name;
  }
  if (!name)
    return vb_err (err, ENOENT, "VM '%s' has no disk '%s'%s", vm->vmx_path, device,
                   uid ? " in that snapshot" : "");
  if (!(*out = vmx_vm_path (vm, name)))
    return vb_errno (err, ENOMEM, "cannot resolve '%s'", name);
  return 0;
}

/* Snapshot by display name, or by uid ("#7" or "7" when no name matches). */
int
vmx_vm_find_snapshot (const struct vmx_vm *vm, const char *name, uint32_t *uid,
                      struct vb_error *err)
{
  const struct vmsd_snapshot *s = vmsd_find_by_name (&vm->sd, name);
  if (!s) {
    const char *p = name[0] == '#' ? name + 1 : name;
    char *end;
    errno = 0;
    unsigned long v = strtoul (p, &end, 10);
    if (*p && !*end && !errno && v > 0 && v <= VMSD_MAX_UID)
      s = vmsd_find (&vm->sd, (uint32_t) v);
  }
  if (!s)
    return vb_err (err, ENOENT, "VM '%s' has no snapshot '%s'", vm->vmx_path, name);
  *uid = s->uid;
  return 0;
}

/* --- change tracking --------------------------------------------------- */

/* QueryChangedDiskAreas of a device as of a snapshot. */
int
vmx_vm_changed_areas (const struct vmx_vm *vm, uint32_t uid, const char *device,
                      const char *change_id, uint64_t start,
                      struct vdisk_extent_list *out, struct vb_error *err)
{
  char *p;
  int r = vmx_vm_disk_file (vm, uid, device, &p, err);
  if (r == 0)
    r = vdisk_query_changed (p, change_id, start, out, err);
  free (p);
  return r < 0 ? r : 0;
}

/* The changeId of a device's disk as of a snapshot. */
int
vmx_vm_change_id (const struct vmx_vm *vm, uint32_t uid, const char *device,
                  char *buf, size_t len, struct vb_error *err)
{
  char *p;
  int r = vmx_vm_disk_file (vm, uid, device, &p, err);
  if (r == 0)
    r = vdisk_ctk_change_id (p, buf, len, err);
  free (p);
  return r;
}

/* --- new child layers -------------------------------------------------- */

/* Stem for the children of a layer: "disk0" for disk0.vmdk and for
 * disk0-000003.vmdk. */
static char *
child_stem (const char *layer)
{
  char *s = vdisk_path_stem (layer);
  size_t n = s ? strlen (s) : 0;
  if (n > 7 && s[n - 7] == '-' && strspn (s + n - 6, "0123456789") == 6)
    s[n - 7] = '\0';
  return s;
}

/* Does any file of a would-be child "DIR/STEM-NNNNNN" exist? */
static bool
child_taken (const char *dir, const char *stem, unsigned n)
{
  static const char *const sfx[] = { "", "-delta", "-ctk", "-s001", "-flat" };
  for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
    char p[PATH_MAX];
    snprintf (p, sizeof p, "%s/%s-%06u%s.vmdk", dir, stem, n, sfx[i]);
    if (access (p, F_OK) == 0)
      return true;
  }
  return false;
}

/* A free name DIR/STEM-NNNNNN.vmdk for a child of layer, skipping the
 * names in taken[0..nt) (chosen earlier in the same operation). */
static char *
child_name (const struct vmx_vm *vm, const char *layer, char **taken, size_t nt)
{
  char *stem = child_stem (layer), *out = NULL;
  for (unsigned n = 1; stem && n < 1000000 && !out; n++) {
    if (child_taken (vm->dir, stem, n))
      continue;
    if (asprintf (&out, "%s/%s-%06u.vmdk", vm->dir, stem, n) < 0)
      out = NULL;
    for (size_t i = 0; out && i < nt; i++)
      if (taken[i] && strcmp (taken[i], out) == 0) {
        free (out);
        out = NULL;
      }
  }
  free (stem);
  return out;
}

/* Layers created by an operation, removed again if it fails. */
struct new_layers {
  char **path;               /* child per disk (NULL = none yet) */
  char **parent;             /* the layer each child sits on */
  size_t n;
};

/* Free the list; with undo, remove the children's files first. */
static void
new_layers_free (struct new_layers *nl, bool undo)
{
  for (size_t i = 0; i < nl->n; i++) {
    if (undo && nl->path[i] && access (nl->path[i], F_OK) == 0)
      vdisk_unlink (nl->path[i], NULL);
    free (nl->path[i]);
    free (nl->parent[i]);
  }
  free (nl->path);
  free (nl->parent);
}

/* Check that every disk opens through its whole chain (a broken chain is
 * reported before anything is changed), and pick child names. */
static int
plan_children (struct vmx_vm *vm, const char *const *layers, size_t n,
               struct new_layers *nl, struct vb_error *err)
{
  nl->n = n;
  nl->path = calloc (n ? n : 1, sizeof *nl->path);
  nl->parent = calloc (n ? n : 1, sizeof *nl->parent);
  if (!nl->path || !nl->parent)
    return vb_errno (err, ENOMEM, "cannot plan snapshot of '%s'", vm->vmx_path);
  for (size_t i = 0; i < n; i++) {
    struct vdisk_info in;
    nl->parent[i] = vmx_vm_path (vm, layers[i]);
    if (!nl->parent[i])
      return vb_errno (err, ENOMEM, "cannot resolve '%s'", layers[i]);
    int r = vdisk_get_info (nl->parent[i], &in, err);
    if (r < 0) {
      vb_err_prefix (err, "disk '%s' of '%s'", layers[i], vm->vmx_path);
      return r;
    }
    vdisk_info_free (&in);
    nl->path[i] = child_name (vm, nl->parent[i], nl->path, i);
    if (!nl->path[i])
      return vb_err (err, EEXIST, "no free delta file name for '%s'", layers[i]);
  }
  return 0;
}

/* Create the planned children.  carry_ctk: the child continues the
 * parent's change tracking (a snapshot); else it starts a new epoch when
 * the parent tracks changes (a revert). */
static int
make_children (struct new_layers *nl, bool carry_ctk, struct vb_error *err)
{
  for (size_t i = 0; i < nl->n; i++) {
    int r = vdisk_create_child (nl->parent[i], nl->path[i], VDISK_TYPE_RAW, err);
    if (r < 0)
      return r;
    vb_crashpoint ("snapshot-child");
    struct vdisk_info in;
    if ((r = vdisk_get_info (nl->parent[i], &in, err)) < 0)
      return r;
    bool tracked = in.ctk_path[0] != '\0';
    vdisk_info_free (&in);
    if (tracked)
      r = carry_ctk ? vdisk_ctk_copy (nl->parent[i], nl->path[i], err)
        : vdisk_ctk_enable (nl->path[i], err);
    if (r < 0)
      return r;
  }
  return 0;
}

/* Point every device of the plan at its new child in the .vmx. */
static int
repoint_vmx (struct vmx_vm *vm, struct vmx_config *cfg, const char *const *devices,
             const struct new_layers *nl, struct vb_error *err)
{
  for (size_t i = 0; i < nl->n; i++) {
    char *ref = vmx_vm_ref (vm, nl->path[i]);
    int r = ref ? vmx_disk_set_file_name (cfg, devices[i], ref, err)
      : vb_errno (err, ENOMEM, "cannot update '%s'", vm->vmx_path);
    free (ref);
    if (r < 0)
      return r;
  }
  return 0;
}

/* --- create ------------------------------------------------------------ */

/* Microseconds since the epoch. */
static int64_t
now_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Record the new snapshot in the model: name, time, disks (the current
 * leaves), its .vmsn, the consistency reached. */
static int
add_to_tree (struct vmx_vm *vm, const struct vmx_snapshot_opts *o,
             enum quiesce_level level, struct vmsd_snapshot **out,
             struct vb_error *err)
{
  struct vmsd_snapshot *s;
  int r = vmsd_add_child (&vm->sd, o->name, now_us (), &s, err);
  if (r < 0)
    return r;
  char vmsn[PATH_MAX];
  snprintf (vmsn, sizeof vmsn, "%s-Snapshot%" PRIu32 ".vmsn", vm->name, s->uid);
  if (vmsd_set_str (&s->filename, vmsn) < 0
      || (o->description && vmsd_set_str (&s->description, o->description) < 0))
    return vb_errno (err, ENOMEM, "cannot add snapshot to '%s'", vm->vmsd_path);
  for (size_t i = 0; i < vm->n_disks; i++)
    if ((r = vmsd_add_disk (s, vm->disks[i].file_name, vm->disks[i].device, err)) < 0)
      return r;
  s->has_quiesced = true;
  s->quiesced = level != QUIESCE_LEVEL_CRASH;
  s->consistency = level == QUIESCE_LEVEL_APPLICATION ? VMSD_CONSISTENCY_APPLICATION
    : level == QUIESCE_LEVEL_FILESYSTEM ? VMSD_CONSISTENCY_FILESYSTEM
    : VMSD_CONSISTENCY_CRASH;
  *out = s;
  return 0;
}

/* Write the snapshot's state file: the configuration at snapshot time. */
static int
write_vmsn (struct vmx_vm *vm, const struct vmsd_snapshot *s, struct vb_error *err)
{
  char *p = vmx_vm_path (vm, s->filename);
  size_t len;
  char *text = vmx_format (vm->cfg, &len);
  int r = p && text ? vio_write_file_atomic (p, text, len, err)
    : vb_errno (err, ENOMEM, "cannot write '%s'", s->filename);
  free (text);
  free (p);
  return r;
}

/* Children, snapshot model, .vmsn, .vmx then .vmsd (see vmx-vm.h).  The
 * .vmx goes first: a crash before the .vmsd is saved leaves children no
 * snapshot explains, which consolidate merges back (the data the VM
 * reads is the same either way). */
static int
create_frozen (struct vmx_vm *vm, const struct vmx_snapshot_opts *o,
               struct new_layers *nl, struct quiesce_state *q,
               struct vmx_snapshot_result *res, struct vb_error *err)
{
  const char **dev = calloc (vm->n_disks ? vm->n_disks : 1, sizeof *dev);
  if (!dev)
    return vb_errno (err, ENOMEM, "cannot snapshot '%s'", vm->vmx_path);
  for (size_t i = 0; i < vm->n_disks; i++)
    dev[i] = vm->disks[i].device;
  struct vmsd_snapshot *s = NULL;
  /* the children, their trackers and the .vmsn are new files nothing
   * names yet: their directory is synced once, before the .vmx names
   * them, instead of after each */
  vio_dir_sync_defer ();
  int r = make_children (nl, true, err);
  if (r == 0 && q)
    r = quiesce_mark_snapshot (q, err);
  if (r == 0)
    r = add_to_tree (vm, o, q ? quiesce_level (q) : QUIESCE_LEVEL_CRASH, &s, err);
  if (r == 0)
    r = write_vmsn (vm, s, err);
  int fr = vio_dir_sync_flush ();
  if (r == 0 && fr < 0)
    r = vb_errno (err, -fr, "cannot sync the directory of '%s'", vm->vmx_path);
  if (r == 0)
    r = repoint_vmx (vm, vm->cfg, dev, nl, err);
  if (r == 0)
    r = vmx_vm_save_vmx (vm, err);
  if (r == 0) {
    vb_crashpoint ("snapshot-create-vmx");
    res->uid = s->uid;
    r = vmx_vm_save_vmsd (vm, err);
    if (r < 0)
      r = 1;                 /* the .vmx already names the children: keep them */
  } else if (s) {
    char *p = vmx_vm_path (vm, s->filename);
    if (p)
      unlink (p);
    free (p);
  }
  free (dev);
  return r;
}

/* Create a snapshot (see vmx-vm.h). */
int
vmx_snapshot_create (struct vmx_vm *vm, const struct vmx_snapshot_opts *o,
                     struct vmx_snapshot_result *res, struct vb_error *err)
{
  memset (res, 0, sizeof *res);
  if (!o->name || !*o->name)
    return vb_err (err, EINVAL, "a snapshot needs a name");
  if (vm->sd.n >= VMSD_MAX_SNAPSHOTS)
    return vb_err (err, E2BIG, "VM '%s' already has %d snapshots, the most a VM can "
                   "have; delete one first", vm->vmx_path, VMSD_MAX_SNAPSHOTS);
  if (vm->n_disks == 0)
    return vb_err (err, EINVAL, "VM '%s' has no disks to snapshot", vm->vmx_path);
  const char **names = calloc (vm->n_disks, sizeof *names);
  if (!names)
    return vb_errno (err, ENOMEM, "cannot snapshot '%s'", vm->vmx_path);
  for (size_t i = 0; i < vm->n_disks; i++)
    names[i] = vm->disks[i].file_name;
  struct new_layers nl = { 0 };
  int r = vmx_vm_check (vm, err);
  if (r == 0)
    r = plan_children (vm, names, vm->n_disks, &nl, err);
  free (names);
  struct quiesce_state *q = NULL;
  if (r == 0 && o->quiesce != QUIESCE_OFF) {
    struct quiesce_opts qo = {
      .mode = o->quiesce, .vmx_path = vm->vmx_path, .hooks_dir = o->hooks_dir,
      .snapshot_name = o->name, .freeze_timeout_ms = o->freeze_timeout_ms,
      .catch_signals = true,
    };
    r = quiesce_freeze (&qo, &q, err);
  }
  if (r == 0)
    r = create_frozen (vm, o, &nl, q, res, err);
  if (q) {
    struct vb_error terr = { 0 };
    int t = quiesce_thaw (q, &terr);
    res->level = quiesce_level (q);
    const char *w = quiesce_warning (q);
    snprintf (res->warning, sizeof res->warning, "%s", w ? w : "");
    res->signal = quiesce_signal (q);
    quiesce_free (q);
    if (r == 0 && t < 0)
      r = vb_err (err, -t, "%s", terr.msg);
  }
  if (r == 1) {                /* .vmx saved, .vmsd not: consolidate repairs */
    new_layers_free (&nl, false);
    vmx_vm_reload (vm, NULL);
    return -(err && err->code ? err->code : EIO);
  }
  new_layers_free (&nl, r < 0);
  int rl = vmx_vm_reload (vm, r < 0 ? NULL : err);   /* the files are the truth */
  return r < 0 ? r : rl;
}

/* --- delete, delete-all ------------------------------------------------- */

/* Remove a snapshot's .vmsn (missing is fine). */
static void
remove_vmsn (struct vmx_vm *vm, const char *filename)
{
  char *p = filename ? vmx_vm_path (vm, filename) : NULL;
  if (p)
    unlink (p);
  free (p);
}

/* Check every chain, drop one snapshot from the tree, save, consolidate. */
int
vmx_snapshot_delete (struct vmx_vm *vm, uint32_t uid, vmx_progress_fn progress,
                     void *opaque, struct vb_error *err)
{
  struct vmsd_snapshot *s = vmsd_find (&vm->sd, uid);
  if (!s)
    return vb_err (err, ENOENT, "VM '%s' has no snapshot with uid %" PRIu32,
                   vm->vmx_path, uid);
  int r = vmx_vm_consolidate (vm, NULL, NULL, NULL, NULL, err);  /* checks chains too */
  if (r < 0)
    return r;
  s = vmsd_find (&vm->sd, uid);
  char *vmsn = s && s->filename ? strdup (s->filename) : NULL;
  if ((r = vmsd_remove (&vm->sd, uid, err)) == 0)
    r = vmx_vm_save_vmsd (vm, err);
  if (r < 0) {
    free (vmsn);
    vmx_vm_reload (vm, NULL);
    return r;
  }
  vb_crashpoint ("snapshot-delete-vmsd");
  remove_vmsn (vm, vmsn);
  free (vmsn);
  return vmx_vm_consolidate (vm, progress, opaque, NULL, NULL, err);
}

/* Drop every snapshot, save, consolidate (one merge per disk chain). */
int
vmx_snapshot_delete_all (struct vmx_vm *vm, vmx_progress_fn progress, void *opaque,
                         struct vb_error *err)
{
  int r = vmx_vm_consolidate (vm, NULL, NULL, NULL, NULL, err);
  if (r < 0)
    return r;
  size_t n = vm->sd.n;
  char **vmsn = calloc (n ? n : 1, sizeof *vmsn);
  if (!vmsn)
    return vb_errno (err, ENOMEM, "cannot delete snapshots of '%s'", vm->vmx_path);
  for (size_t i = 0; i < n; i++)
    vmsn[i] = vm->sd.snap[i].filename ? strdup (vm->sd.snap[i].filename) : NULL;
  while (r == 0 && vm->sd.n > 0)
    r = vmsd_remove (&vm->sd, vm->sd.snap[0].uid, err);
  if (r == 0)
    r = vmx_vm_save_vmsd (vm, err);
  if (r == 0) {
    vb_crashpoint ("snapshot-delete-all-vmsd");
    for (size_t i = 0; i < n; i++)
      remove_vmsn (vm, vmsn[i]);
  }
  for (size_t i = 0; i < n; i++)
    free (vmsn[i]);
  free (vmsn);
  if (r < 0) {
    vmx_vm_reload (vm, NULL);
    return r;
  }
  return vmx_vm_consolidate (vm, progress, opaque, NULL, NULL, err);
}

/* --- revert ------------------------------------------------------------ */

/* The configuration to go back to: the snapshot's .vmsn when it holds a
 * readable config, else the current one (a copy). */
static int
revert_config (struct vmx_vm *vm, const struct vmsd_snapshot *s,
               struct vmx_config **out, struct vb_error *err)
{
  char *p = s->filename ? vmx_vm_path (vm, s->filename) : NULL;
  struct vb_error e = { 0 };
  int r = p ? vmx_load (p, out, &e) : -ENOENT;
  free (p);
  if (r == 0)
    return 0;
  vb_debug ("revert: keeping the current configuration (%s)", e.msg);
  size_t len;
  char *text = vmx_format (vm->cfg, &len);
  r = text ? vmx_parse (text, len, vm->vmx_path, out, err)
    : vb_errno (err, ENOMEM, "cannot revert '%s'", vm->vmx_path);
  free (text);
  return r;
}

/* Revert to a snapshot (see vmx-vm.h). */
int
vmx_snapshot_revert (struct vmx_vm *vm, uint32_t uid, struct vb_error *err)
{
  struct vmsd_snapshot *s = vmsd_find (&vm->sd, uid);
  if (!s)
    return vb_err (err, ENOENT, "VM '%s' has no snapshot with uid %" PRIu32,
                   vm->vmx_path, uid);
  int r = vmx_vm_consolidate (vm, NULL, NULL, NULL, NULL, err);
  if (r < 0)
    return r;
  s = vmsd_find (&vm->sd, uid);
  const char **names = calloc (s->n_disks ? s->n_disks : 1, sizeof *names);
  const char **dev = calloc (s->n_disks ? s->n_disks : 1, sizeof *dev);
  if (!names || !dev) {
    free (names);
    free (dev);
    return vb_errno (err, ENOMEM, "cannot revert '%s'", vm->vmx_path);
  }
  for (size_t i = 0; i < s->n_disks; i++) {
    names[i] = s->disks[i].file_name;
    dev[i] = s->disks[i].node;
  }
  struct new_layers nl = { 0 };
  struct vmx_config *cfg = NULL;
  r = plan_children (vm, names, s->n_disks, &nl, err);
  if (r == 0)
    r = revert_config (vm, s, &cfg, err);
  if (r == 0)
    r = make_children (&nl, false, err);
  if (r == 0)
    r = repoint_vmx (vm, cfg, dev, &nl, err);
  if (r == 0)
    r = vmx_save (cfg, vm->vmx_path, err);
  bool saved = r == 0;
  if (r == 0) {
    vb_crashpoint ("snapshot-revert-vmx");
    r = vmsd_set_current (&vm->sd, uid, err);
  }
  if (r == 0)
    r = vmx_vm_save_vmsd (vm, err);
  vmx_free (cfg);
  free (names);
  free (dev);
  new_layers_free (&nl, r < 0 && !saved);
  int rl = vmx_vm_reload (vm, r < 0 ? NULL : err);
  if (r == 0)
    r = rl;
  if (r == 0)                  /* the discarded layers go now */
    r = vmx_vm_consolidate (vm, NULL, NULL, NULL, NULL, err);
  return r;
}
