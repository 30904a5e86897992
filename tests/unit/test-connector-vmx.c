/* Tests of the vmx connector through the connector ops table
 * (connector-vmx.c over vmx-vm.c and vmx-consolidate.c): probe, open and
 * its lock, disks and capacities, power state, snapshot create / delete
 * / revert / delete-all with the data each view reads, change tracking
 * as of a snapshot, the journal replay of an interrupted merge, and
 * errors for bad ids. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "connectors/connector.h"
#include "connectors/vmx-vm.h"

#define MiB (1024 * 1024)

static char dir[256];
static char vmx[300];

/* Path of a file in the VM directory (static buffer rotation). */
static const char *
in_vm (const char *name)
{
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf (buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

/* A VM: an ESXi-style vmfs disk with tracking and a hosted sparse disk. */
static int
setup (void **state)
{
  snprintf (dir, sizeof dir, "/tmp/vmback-test-conn.XXXXXX");
  assert_non_null (mkdtemp (dir));
  snprintf (vmx, sizeof vmx, "%s/vm.vmx", dir);
  struct vb_error e = { 0 };
  struct vdisk_create_opts a = { .type = VDISK_TYPE_VMFS, .size = 4 * MiB, .ctk = true };
  struct vdisk_create_opts b = { .type = VDISK_TYPE_MONOLITHIC_SPARSE, .size = 2 * MiB };
  assert_int_equal (vdisk_create (in_vm ("vm.vmdk"), &a, &e), 0);
  assert_int_equal (vdisk_create (in_vm ("vm_1.vmdk"), &b, &e), 0);
  FILE *f = fopen (vmx, "w");
  assert_non_null (f);
  fputs (".encoding = \"UTF-8\"\nconfig.version = \"8\"\ndisplayName = \"vm\"\n"
         "scsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\n"
         "scsi0:0.fileName = \"vm.vmdk\"\nscsi0:1.present = \"TRUE\"\n"
         "scsi0:1.fileName = \"vm_1.vmdk\"\n", f);
  fclose (f);
  *state = NULL;
  return 0;
}

/* Remove the VM directory. */
static int
teardown (void **state)
{
  char cmd[400];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system (cmd) == 0 ? 0 : -1;
}

/* Write a byte pattern to a disk file. */
static void
put (const char *path, uint64_t off, uint8_t v, size_t len)
{
  struct vb_error e = { 0 };
  struct vdisk *d;
  uint8_t *buf = malloc (len);
  memset (buf, v, len);
  assert_int_equal (vdisk_open (path, VDISK_OPEN_RDWR, &d, &e), 0);
  assert_int_equal (vdisk_pwrite (d, buf, len, off, &e), 0);
  assert_int_equal (vdisk_close (d, &e), 0);
  free (buf);
}

/* First byte at off through a disk's chain. */
static uint8_t
get (const char *path, uint64_t off)
{
  struct vb_error e = { 0 };
  struct vdisk *d;
  uint8_t b = 0xee;
  assert_int_equal (vdisk_open (path, VDISK_OPEN_RDONLY, &d, &e), 0);
  assert_int_equal (vdisk_pread (d, &b, 1, off, &e), 0);
  vdisk_close (d, NULL);
  return b;
}

/* The file the connector says a disk reads in a snapshot ("" = now). */
static char *
path_of (struct vb_connector *c, const char *snap, const char *disk)
{
  struct vb_error e = { 0 };
  char *p = NULL;
  assert_int_equal (c->ops->disk_path (c, snap, disk, &p, &e), 0);
  return p;
}

static void
test_probe_open_disks (void **state)
{
  assert_ptr_equal (vb_connector_find (vmx), &vb_connector_vmx);
  assert_null (vb_connector_find ("/tmp/disk.vmdk"));
  struct vb_error e = { 0 };
  struct vb_connector *c, *c2;
  assert_int_equal (vb_connector_vmx.open (vmx, &c, &e), 0);
  assert_string_equal (c->ops->vm_name (c), "vm");
  /* one snapshot manager per VM at a time */
  assert_int_equal (vb_connector_vmx.open (vmx, &c2, &e), -EBUSY);
  assert_non_null (strstr (e.msg, "in use"));
  struct vb_vm_disk *d;
  size_t n;
  assert_int_equal (c->ops->list_disks (c, &d, &n, &e), 0);
  assert_int_equal (n, 2);
  assert_string_equal (d[0].key, "scsi0:0");
  assert_int_equal (d[0].capacity, 4 * MiB);
  assert_int_equal (d[1].capacity, 2 * MiB);
  vb_vm_disks_free (d, n);
  enum vb_power_state st;
  assert_int_equal (c->ops->power_state (c, &st, &e), 0);
  assert_int_equal (st, VB_POWER_OFF);
  assert_int_equal (mkdir (in_vm ("vm.vmx.lck"), 0700), 0);
  assert_int_equal (c->ops->power_state (c, &st, &e), 0);
  assert_int_equal (st, VB_POWER_ON);
  rmdir (in_vm ("vm.vmx.lck"));
  char *cfg;
  size_t len;
  assert_int_equal (c->ops->get_config (c, &cfg, &len, &e), 0);
  assert_non_null (strstr (cfg, "scsi0:1.fileName = \"vm_1.vmdk\""));
  free (cfg);
  c->ops->close (c);
}

static void
test_snapshot_lifecycle (void **state)
{
  struct vb_error e = { 0 };
  struct vb_connector *c;
  put (in_vm ("vm.vmdk"), 0, 0x11, 65536);
  assert_int_equal (vb_connector_vmx.open (vmx, &c, &e), 0);
  char cid0[128], cid1[128];
  assert_int_equal (c->ops->change_id (c, NULL, "scsi0:0", cid0, sizeof cid0, &e), 0);

  struct vb_snapshot s;
  assert_int_equal (c->ops->snapshot_create (c, "one", "first", QUIESCE_OFF, &s, &e), 0);
  assert_string_equal (s.id, "1");
  assert_int_equal (s.level, QUIESCE_LEVEL_CRASH);
  char *snap = path_of (c, "1", "scsi0:0"), *cur = path_of (c, NULL, "scsi0:0");
  assert_string_equal (snap, in_vm ("vm.vmdk"));
  assert_string_equal (cur, in_vm ("vm-000001.vmdk"));
  /* the child continues the tracking history */
  assert_int_equal (c->ops->change_id (c, "", "scsi0:0", cid1, sizeof cid1, &e), 0);
  assert_string_equal (cid0, cid1);
  put (cur, MiB, 0x22, 65536);
  struct vdisk_extent_list l = { 0 };
  assert_int_equal (c->ops->changed_areas (c, NULL, "scsi0:0", cid0, 0, &l, &e), 0);
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, MiB);
  vdisk_extent_list_free (&l);
  /* as of the snapshot, nothing changed after its own changeId */
  assert_int_equal (c->ops->changed_areas (c, "1", "scsi0:0", cid0, 0, &l, &e), 0);
  assert_int_equal (l.n, 0);
  vdisk_extent_list_free (&l);
  assert_int_equal (get (snap, MiB), 0);
  assert_int_equal (get (cur, MiB), 0x22);

  /* delete: the child is merged into the base, which the VM uses again */
  assert_int_equal (c->ops->snapshot_delete (c, "1", &e), 0);
  char *after = path_of (c, NULL, "scsi0:0");
  assert_string_equal (after, in_vm ("vm.vmdk"));
  assert_int_equal (get (after, 0), 0x11);
  assert_int_equal (get (after, MiB), 0x22);
  assert_int_equal (access (in_vm ("vm-000001.vmdk"), F_OK), -1);
  assert_int_equal (access (in_vm ("vm-000001-delta.vmdk"), F_OK), -1);
  assert_int_equal (c->ops->changed_areas (c, NULL, "scsi0:0", cid0, 0, &l, &e), 0);
  assert_int_equal (l.n, 1);
  vdisk_extent_list_free (&l);
  free (snap);
  free (cur);
  free (after);

  /* revert discards what came after, with a new tracking epoch */
  assert_int_equal (c->ops->snapshot_create (c, "two", NULL, QUIESCE_OFF, &s, &e), 0);
  cur = path_of (c, NULL, "scsi0:0");
  put (cur, 0, 0x33, 512);
  assert_int_equal (c->ops->change_id (c, NULL, "scsi0:0", cid1, sizeof cid1, &e), 0);
  assert_int_equal (c->ops->snapshot_revert (c, s.id, &e), 0);
  free (cur);
  cur = path_of (c, NULL, "scsi0:0");
  assert_int_equal (get (cur, 0), 0x11);
  assert_int_equal (c->ops->changed_areas (c, NULL, "scsi0:0", cid1, 0, &l, &e), -ESTALE);
  free (cur);
  assert_int_equal (c->ops->snapshot_delete_all (c, &e), 0);
  cur = path_of (c, NULL, "scsi0:0");
  assert_string_equal (cur, in_vm ("vm.vmdk"));
  free (cur);

  /* bad ids */
  assert_int_equal (c->ops->snapshot_delete (c, "abc", &e), -EINVAL);
  e = (struct vb_error) { 0 };
  assert_int_equal (c->ops->snapshot_delete (c, "9", &e), -ENOENT);
  c->ops->close (c);
}

/* A journal left by a killed merge is replayed when the VM is opened. */
static void
test_journal_replay (void **state)
{
  struct vb_error e = { 0 };
  struct vmx_vm *vm;
  assert_int_equal (vmx_vm_open (vmx, &vm, &e), 0);
  struct vmx_snapshot_opts o = { .name = "j" };
  struct vmx_snapshot_result res;
  assert_int_equal (vmx_snapshot_create (vm, &o, &res, &e), 0);
  vmx_vm_close (vm);
  put (in_vm ("vm-000001.vmdk"), 2 * MiB, 0x44, 4096);
  /* the snapshot leaves the .vmsd, the merge is journalled but not run */
  FILE *f = fopen (in_vm ("vm.vmsd"), "w");
  fputs (".encoding = \"UTF-8\"\nsnapshot.lastUID = \"1\"\nsnapshot.numSnapshots = \"0\"\n", f);
  fclose (f);
  f = fopen (in_vm ("vm.vmback/journal"), "w");
  fprintf (f, "{ \"version\": 1, \"op\": \"merge\", \"base\": \"%s\", \"top\": \"%s\", "
           "\"layers\": [ \"%s\" ], \"children\": [ ] }", in_vm ("vm.vmdk"),
           in_vm ("vm-000001.vmdk"), in_vm ("vm-000001.vmdk"));
  fclose (f);
  assert_int_equal (vmx_vm_open (vmx, &vm, &e), 0);
  assert_int_equal (access (in_vm ("vm.vmback/journal"), F_OK), -1);
  char *p;
  assert_int_equal (vmx_vm_disk_file (vm, 0, "scsi0:0", &p, &e), 0);
  assert_string_equal (p, in_vm ("vm.vmdk"));
  assert_int_equal (get (p, 2 * MiB), 0x44);
  free (p);
  /* scsi0:1 was not in the journal: consolidate merges it now */
  size_t merged = 0, removed = 0;
  assert_int_equal (vmx_vm_consolidate (vm, NULL, NULL, &merged, &removed, &e), 0);
  assert_int_equal (merged, 1);
  assert_int_equal (vmx_vm_disk_file (vm, 0, "scsi0:1", &p, &e), 0);
  assert_string_equal (p, in_vm ("vm_1.vmdk"));
  free (p);
  vmx_vm_close (vm);
  /* a journal naming files outside the VM directory is refused */
  f = fopen (in_vm ("vm.vmback/journal"), "w");
  fputs ("{ \"base\": \"/etc/passwd\", \"top\": \"/tmp/x.vmdk\", \"layers\": [], "
         "\"children\": [] }", f);
  fclose (f);
  e = (struct vb_error) { 0 };
  assert_int_equal (vmx_vm_open (vmx, &vm, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "outside"));
  unlink (in_vm ("vm.vmback/journal"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_probe_open_disks, setup, teardown),
    cmocka_unit_test_setup_teardown (test_snapshot_lifecycle, setup, teardown),
    cmocka_unit_test_setup_teardown (test_journal_replay, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
