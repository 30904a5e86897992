/* Tests of the .vmsd layer (vmsd.c): a realistic three-snapshot file with
 * a branch (tree, times, disks, MRU, unknown keys), write/re-read round
 * trips with renumbering in tree order, the model operations (add child,
 * remove with re-parenting, set current, lookups, current path, the
 * 32-snapshot limit), save/load, and every validation error. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "connectors/vmsd.h"
#include "connectors/vmx-config.h"

/* uid 1 (root) -> uid 2; uid 1 -> uid 3 (a branch made after reverting
 * to uid 1); the VM now runs on top of uid 3.  Indexes and keys in the
 * order VMware Workstation/ESXi write them, plus unknown keys. */
static const char three[] =
  ".encoding = \"UTF-8\"\n"
  "snapshot.lastUID = \"3\"\n"
  "snapshot.current = \"3\"\n"
  "snapshot0.uid = \"1\"\n"
  "snapshot0.filename = \"web01-Snapshot1.vmsn\"\n"
  "snapshot0.displayName = \"before upgrade\"\n"
  "snapshot0.description = \"kernel 5.15|0Aapt upgrade pending\"\n"
  "snapshot0.type = \"1\"\n"
  "snapshot0.createTimeHigh = \"399203\"\n"
  "snapshot0.createTimeLow = \"970658368\"\n"
  "snapshot0.numDisks = \"2\"\n"
  "snapshot0.disk0.fileName = \"web01.vmdk\"\n"
  "snapshot0.disk0.node = \"scsi0:0\"\n"
  "snapshot0.disk1.fileName = \"web01_1.vmdk\"\n"
  "snapshot0.disk1.node = \"scsi0:1\"\n"
  "snapshot0.disk1.mode = \"persistent\"\n"
  "snapshot.numSnapshots = \"3\"\n"
  "snapshot1.uid = \"2\"\n"
  "snapshot1.filename = \"web01-Snapshot2.vmsn\"\n"
  "snapshot1.parent = \"1\"\n"
  "snapshot1.displayName = \"upgrade done\"\n"
  "snapshot1.createTimeHigh = \"399220\"\n"
  "snapshot1.createTimeLow = \"-138752960\"\n"
  "snapshot1.numDisks = \"2\"\n"
  "snapshot1.disk0.fileName = \"web01-000001.vmdk\"\n"
  "snapshot1.disk0.node = \"scsi0:0\"\n"
  "snapshot1.disk1.fileName = \"web01_1-000001.vmdk\"\n"
  "snapshot1.disk1.node = \"scsi0:1\"\n"
  "snapshot1.quiesced = \"TRUE\"\n"
  "snapshot1.vmbackConsistency = \"filesystem\"\n"
  "snapshot2.uid = \"3\"\n"
  "snapshot2.filename = \"web01-Snapshot3.vmsn\"\n"
  "snapshot2.parent = \"1\"\n"
  "snapshot2.displayName = \"test |22branch|22\"\n"
  "snapshot2.createTimeHigh = \"399248\"\n"
  "snapshot2.createTimeLow = \"3297130048\"\n"   /* unsigned spelling */
  "snapshot2.numDisks = \"2\"\n"
  "snapshot2.disk0.fileName = \"web01-000003.vmdk\"\n"
  "snapshot2.disk0.node = \"scsi0:0\"\n"
  "snapshot2.disk1.fileName = \"web01_1-000003.vmdk\"\n"
  "snapshot2.disk1.node = \"scsi0:1\"\n"
  "snapshot2.quiesced = \"FALSE\"\n"
  "snapshot2.vmbackConsistency = \"crash\"\n"
  "snapshot2.ownerTag = \"nightly\"\n"
  "snapshot.mru0.uid = \"3\"\n"
  "snapshot.mru1.uid = \"1\"\n"
  "snapshot.mru2.uid = \"2\"\n"
  "snapshot.needConsolidate = \"FALSE\"\n";

/* Parse text, asserting success. */
static void
parse_ok (const char *text, struct vmsd *m)
{
  struct vb_error err = { 0 };
  int r = vmsd_parse (text, strlen (text), "t.vmsd", m, &err);
  if (r < 0)
    print_message ("parse failed: %s\n", err.msg);
  assert_int_equal (r, 0);
}

/* Parsing must fail with -code and a one-line message naming the file
 * and holding frag; the model is left empty. */
static void
parse_bad_len (const char *text, size_t len, int code, const char *frag)
{
  struct vmsd m;
  struct vb_error err = { 0 };
  int r = vmsd_parse (text, len, "bad.vmsd", &m, &err);
  if (r != -code || !strstr (err.msg, frag))
    print_message ("expected -%d '%s', got %d '%s'\n", code, frag, r, err.msg);
  assert_int_equal (r, -code);
  assert_non_null (strstr (err.msg, frag));
  assert_non_null (strstr (err.msg, "bad.vmsd"));
  assert_null (strchr (err.msg, '\n'));
  assert_int_equal (m.n, 0);
  assert_null (m.extra);
  assert_null (m.encoding);
}

static void
parse_bad (const char *text, int code, const char *frag)
{
  parse_bad_len (text, strlen (text), code, frag);
}

static void
test_parse_three (void **state)
{
  struct vmsd m;
  parse_ok (three, &m);
  assert_int_equal (m.n, 3);
  assert_int_equal (m.last_uid, 3);
  assert_int_equal (m.current, 3);
  assert_string_equal (m.encoding, "UTF-8");
  struct vmsd_snapshot *s1 = vmsd_find (&m, 1), *s2 = vmsd_find (&m, 2),
    *s3 = vmsd_find (&m, 3);
  assert_non_null (s1);
  assert_non_null (s2);
  assert_non_null (s3);
  assert_null (vmsd_find (&m, 4));
  assert_int_equal (s1->parent, 0);
  assert_int_equal (s2->parent, 1);
  assert_int_equal (s3->parent, 1);
  assert_string_equal (s1->filename, "web01-Snapshot1.vmsn");
  assert_string_equal (s1->description, "kernel 5.15\napt upgrade pending");
  assert_string_equal (s3->display_name, "test \"branch\"");
  assert_true (s1->has_type);
  assert_int_equal (s1->type, 1);
  assert_false (s2->has_type);
  /* creation times: microseconds since 1970 */
  assert_true (s1->has_create_time);
  assert_int_equal (s1->create_time_us, 1714564800123456LL);  /* 2024-05-01 12:00:00.123456 UTC */
  assert_int_equal (s2->create_time_us, 1714641000123456LL);  /* negative low half */
  assert_int_equal (s3->create_time_us, 1714760400123456LL);  /* unsigned low half */
  /* disks */
  assert_int_equal (s1->n_disks, 2);
  assert_string_equal (s1->disks[0].file_name, "web01.vmdk");
  assert_string_equal (s1->disks[0].node, "scsi0:0");
  assert_string_equal (s1->disks[1].node, "scsi0:1");
  assert_int_equal (s1->disks[1].n_extra, 1);
  assert_string_equal (s1->disks[1].extra[0].key, "mode");
  assert_string_equal (s3->disks[0].file_name, "web01-000003.vmdk");
  /* quiescing and consistency */
  assert_true (s2->has_quiesced);
  assert_true (s2->quiesced);
  assert_true (s3->has_quiesced);
  assert_false (s3->quiesced);
  assert_false (s1->has_quiesced);
  assert_int_equal (s2->consistency, VMSD_CONSISTENCY_FILESYSTEM);
  assert_int_equal (s3->consistency, VMSD_CONSISTENCY_CRASH);
  assert_int_equal (s1->consistency, VMSD_CONSISTENCY_NONE);
  /* unknown keys */
  assert_int_equal (s3->n_extra, 1);
  assert_string_equal (s3->extra[0].key, "ownerTag");
  assert_string_equal (s3->extra[0].value, "nightly");
  assert_int_equal (m.n_extra, 1);
  assert_string_equal (m.extra[0].key, "snapshot.needConsolidate");
  /* MRU */
  assert_int_equal (m.n_mru, 3);
  assert_int_equal (m.mru[0], 3);
  assert_int_equal (m.mru[1], 1);
  assert_int_equal (m.mru[2], 2);
  /* tree queries */
  uint32_t out[VMSD_MAX_SNAPSHOTS];
  assert_int_equal (vmsd_children (&m, 0, out), 1);
  assert_int_equal (out[0], 1);
  assert_int_equal (vmsd_children (&m, 1, out), 2);
  assert_int_equal (out[0], 2);
  assert_int_equal (out[1], 3);
  assert_int_equal (vmsd_children (&m, 2, out), 0);
  assert_int_equal (vmsd_current_path (&m, out), 2);
  assert_int_equal (out[0], 1);
  assert_int_equal (out[1], 3);
  assert_true (vmsd_on_current_path (&m, 1));
  assert_true (vmsd_on_current_path (&m, 3));
  assert_false (vmsd_on_current_path (&m, 2));   /* the abandoned branch */
  assert_ptr_equal (vmsd_find_by_name (&m, "upgrade done"), s2);
  assert_null (vmsd_find_by_name (&m, "nope"));
  vmsd_free (&m);
}

/* Format m, parse the text again, format again: both texts must match. */
static char *
reformat (const struct vmsd *m, struct vmsd *m2)
{
  size_t len;
  char *t = vmsd_format (m, &len);
  assert_non_null (t);
  assert_int_equal (strlen (t), len);
  parse_ok (t, m2);
  char *t2 = vmsd_format (m2, NULL);
  assert_string_equal (t, t2);
  free (t2);
  return t;
}

static void
test_round_trip (void **state)
{
  struct vmsd m, m2;
  parse_ok (three, &m);
  char *t = reformat (&m, &m2);
  /* everything survived: compare a few fields and the unknown keys */
  assert_int_equal (m2.n, 3);
  assert_int_equal (m2.current, 3);
  assert_int_equal (vmsd_find (&m2, 2)->create_time_us, 1714641000123456LL);
  assert_string_equal (vmsd_find (&m2, 1)->description,
                       "kernel 5.15\napt upgrade pending");
  assert_string_equal (vmsd_find (&m2, 1)->disks[1].extra[0].value, "persistent");
  assert_string_equal (vmsd_find (&m2, 3)->extra[0].value, "nightly");
  assert_int_equal (m2.n_mru, 3);
  assert_int_equal (m2.mru[2], 2);
  assert_string_equal (m2.extra[0].value, "FALSE");
  /* VMware's spellings: signed low half, escapes, key names */
  assert_non_null (strstr (t, "snapshot2.createTimeLow = \"-997837248\"\n"));
  assert_non_null (strstr (t, "snapshot2.displayName = \"test |22branch|22\"\n"));
  assert_non_null (strstr (t, "snapshot0.disk1.mode = \"persistent\"\n"));
  assert_non_null (strstr (t, "snapshot1.quiesced = \"TRUE\"\n"));
  assert_non_null (strstr (t, "snapshot.numSnapshots = \"3\"\n"));
  assert_true (strncmp (t, ".encoding = \"UTF-8\"\n", 20) == 0);
  free (t);
  vmsd_free (&m2);
  vmsd_free (&m);

  /* an empty file: no snapshots, nothing invented but the counters */
  parse_ok ("", &m);
  assert_int_equal (m.n, 0);
  assert_int_equal (m.current, 0);
  t = vmsd_format (&m, NULL);
  assert_string_equal (t, "snapshot.lastUID = \"0\"\nsnapshot.numSnapshots = \"0\"\n");
  free (t);
  vmsd_free (&m);
}

static void
test_renumber (void **state)
{
  /* file indexes out of order and sparse; tree 5 -> {7 -> 9, 8}, root 6 */
  const char *t =
    "snapshot.lastUID = \"9\"\nsnapshot.current = \"9\"\n"
    "snapshot.numSnapshots = \"5\"\n"
    "snapshot40.uid = \"9\"\nsnapshot40.parent = \"7\"\n"
    "snapshot3.uid = \"8\"\nsnapshot3.parent = \"5\"\n"
    "snapshot7.uid = \"6\"\n"
    "snapshot1.uid = \"7\"\nsnapshot1.parent = \"5\"\n"
    "snapshot9.uid = \"5\"\nsnapshot9.displayName = \"root\"\n";
  struct vmsd m, m2;
  parse_ok (t, &m);
  char *out = reformat (&m, &m2);
  /* depth first, children by uid: 5, 7, 9, 8, 6 */
  static const unsigned order[] = { 5, 7, 9, 8, 6 };
  for (size_t i = 0; i < 5; i++) {
    char want[64];
    snprintf (want, sizeof want, "snapshot%zu.uid = \"%u\"\n", i, order[i]);
    assert_non_null (strstr (out, want));
  }
  assert_null (strstr (out, "snapshot5."));
  assert_non_null (strstr (out, "snapshot0.displayName = \"root\"\n"));
  assert_non_null (strstr (out, "snapshot2.parent = \"7\"\n"));
  uint32_t path[VMSD_MAX_SNAPSHOTS];
  assert_int_equal (vmsd_current_path (&m2, path), 3);
  assert_int_equal (path[0], 5);
  assert_int_equal (path[2], 9);
  free (out);
  vmsd_free (&m2);
  vmsd_free (&m);
}

static void
test_model_ops (void **state)
{
  struct vmsd m;
  struct vb_error err = { 0 };
  assert_int_equal (vmsd_init (&m), 0);
  struct vmsd_snapshot *s;
  /* a chain 1 -> 2 -> 3 */
  assert_int_equal (vmsd_add_child (&m, "one", 1000, &s, &err), 0);
  assert_int_equal (s->uid, 1);
  assert_int_equal (s->parent, 0);
  assert_int_equal (vmsd_set_str (&s->filename, "vm-Snapshot1.vmsn"), 0);
  assert_int_equal (vmsd_add_disk (s, "vm.vmdk", "scsi0:0", &err), 0);
  assert_int_equal (vmsd_add_disk (s, "", "scsi0:0", NULL), -EINVAL);
  assert_int_equal (vmsd_add_child (&m, "two", 2000, &s, &err), 0);
  assert_int_equal (s->uid, 2);
  assert_int_equal (s->parent, 1);
  assert_int_equal (vmsd_add_child (&m, "three", 3000, &s, &err), 0);
  assert_int_equal (s->parent, 2);
  assert_int_equal (m.current, 3);
  assert_int_equal (m.last_uid, 3);
  assert_int_equal (m.mru[0], 3);
  assert_int_equal (m.n_mru, 3);
  /* revert to 1, branch 4 off it */
  assert_int_equal (vmsd_set_current (&m, 1, &err), 0);
  assert_int_equal (m.mru[0], 1);
  assert_int_equal (m.n_mru, 3);
  assert_int_equal (vmsd_add_child (&m, "four", 4000, &s, &err), 0);
  assert_int_equal (s->uid, 4);
  assert_int_equal (s->parent, 1);
  assert_true (vmsd_on_current_path (&m, 1));
  assert_false (vmsd_on_current_path (&m, 2));
  assert_false (vmsd_on_current_path (&m, 3));
  /* remove 2 (off the current path): 3 moves up to 1 */
  assert_int_equal (vmsd_remove (&m, 2, &err), 0);
  assert_null (vmsd_find (&m, 2));
  assert_int_equal (vmsd_find (&m, 3)->parent, 1);
  for (size_t i = 0; i < m.n_mru; i++)
    assert_int_not_equal (m.mru[i], 2);
  /* remove the current snapshot: its parent becomes current */
  assert_int_equal (vmsd_remove (&m, 4, &err), 0);
  assert_int_equal (m.current, 1);
  /* remove the root: its children become roots */
  assert_int_equal (vmsd_remove (&m, 1, &err), 0);
  assert_int_equal (m.current, 0);
  assert_int_equal (vmsd_find (&m, 3)->parent, 0);
  uint32_t out[VMSD_MAX_SNAPSHOTS];
  assert_int_equal (vmsd_current_path (&m, out), 0);
  err = (struct vb_error) { 0 };
  assert_int_equal (vmsd_remove (&m, 1, &err), -ENOENT);
  assert_non_null (strstr (err.msg, "uid 1"));
  assert_int_equal (vmsd_set_current (&m, 42, NULL), -ENOENT);
  assert_int_equal (vmsd_validate (&m, "m", &err), 0);
  /* uids are never reused */
  assert_int_equal (vmsd_add_child (&m, NULL, 0, &s, &err), 0);
  assert_int_equal (s->uid, 5);
  assert_int_equal (s->parent, 0);
  assert_int_equal (m.n, 2);
  vmsd_free (&m);

  /* the 32-snapshot limit */
  assert_int_equal (vmsd_init (&m), 0);
  for (int i = 0; i < VMSD_MAX_SNAPSHOTS; i++)
    assert_int_equal (vmsd_add_child (&m, "s", i, NULL, NULL), 0);
  err = (struct vb_error) { 0 };
  assert_int_equal (vmsd_add_child (&m, "s", 0, NULL, &err), -E2BIG);
  assert_non_null (strstr (err.msg, "at most 32"));
  assert_int_equal (vmsd_current_path (&m, out), 32);
  assert_int_equal (out[31], 32);
  assert_int_equal (m.n_mru, 32);
  struct vmsd m2;
  char *t = reformat (&m, &m2);   /* 32 deep round-trips */
  free (t);
  vmsd_free (&m2);
  vmsd_free (&m);

  /* lastUID at its maximum */
  assert_int_equal (vmsd_init (&m), 0);
  m.last_uid = VMSD_MAX_UID;
  assert_int_equal (vmsd_add_child (&m, "s", 0, NULL, NULL), -EOVERFLOW);
  vmsd_free (&m);
}

static void
test_save_load (void **state)
{
  char dir[] = "/tmp/vmsd-test.XXXXXX";
  assert_non_null (mkdtemp (dir));
  char path[128];
  snprintf (path, sizeof path, "%s/web01.vmsd", dir);
  struct vmsd m, m2;
  struct vb_error err = { 0 };
  parse_ok (three, &m);
  assert_int_equal (vmsd_add_child (&m, "new", 1714800000000000LL, NULL, &err), 0);
  assert_int_equal (vmsd_save (&m, path, &err), 0);
  assert_int_equal (vmsd_load (path, &m2, &err), 0);
  assert_int_equal (m2.n, 4);
  assert_int_equal (m2.current, 4);
  assert_int_equal (vmsd_find (&m2, 4)->parent, 3);
  assert_int_equal (vmsd_find (&m2, 4)->create_time_us, 1714800000000000LL);
  vmsd_free (&m2);
  /* an invalid model is not written */
  vmsd_find (&m, 2)->parent = 77;
  err = (struct vb_error) { 0 };
  assert_int_equal (vmsd_save (&m, path, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "parent uid 77"));
  vmsd_free (&m);
  assert_int_equal (vmsd_load (path, &m2, &err), 0);   /* old file intact */
  assert_int_equal (m2.n, 4);
  vmsd_free (&m2);
  char cmd[200];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal (system (cmd), 0);
}

static void
test_time (void **state)
{
  int32_t hi, lo;
  vmsd_time_to_parts (1714641000123456LL, &hi, &lo);
  assert_int_equal (hi, 399220);
  assert_int_equal (lo, -138752960);
  assert_int_equal (vmsd_time_from_parts (hi, lo), 1714641000123456LL);
  vmsd_time_to_parts (0, &hi, &lo);
  assert_int_equal (hi, 0);
  assert_int_equal (lo, 0);
  assert_int_equal (vmsd_time_from_parts (0, -1), 4294967295LL);
}

/* A valid snapshot block for index i, uid u, parent p. */
static void
add_snap (char *buf, size_t cap, unsigned i, unsigned u, unsigned p)
{
  size_t n = strlen (buf);
  snprintf (buf + n, cap - n, "snapshot%u.uid = \"%u\"\nsnapshot%u.parent = "
            "\"%u\"\nsnapshot%u.numDisks = \"1\"\nsnapshot%u.disk0.fileName = "
            "\"d-%06u.vmdk\"\nsnapshot%u.disk0.node = \"scsi0:0\"\n",
            i, u, i, p, i, i, u, i);
}

static void
test_errors (void **state)
{
  /* tree structure */
  parse_bad ("snapshot.lastUID = \"2\"\nsnapshot.numSnapshots = \"1\"\n"
             "snapshot0.uid = \"2\"\nsnapshot0.parent = \"1\"\n", EINVAL,
             "snapshot uid 2 has parent uid 1, which does not exist");
  parse_bad ("snapshot.lastUID = \"2\"\nsnapshot.numSnapshots = \"2\"\n"
             "snapshot0.uid = \"1\"\nsnapshot0.parent = \"2\"\n"
             "snapshot1.uid = \"2\"\nsnapshot1.parent = \"1\"\n", EINVAL,
             "loop in the snapshot tree");
  parse_bad ("snapshot.lastUID = \"1\"\nsnapshot.numSnapshots = \"1\"\n"
             "snapshot0.uid = \"1\"\nsnapshot0.parent = \"1\"\n", EINVAL,
             "loop in the snapshot tree (uid 1 is its own parent)");
  parse_bad ("snapshot.lastUID = \"3\"\nsnapshot.numSnapshots = \"3\"\n"
             "snapshot0.uid = \"1\"\nsnapshot0.parent = \"3\"\n"
             "snapshot1.uid = \"2\"\nsnapshot1.parent = \"1\"\n"
             "snapshot2.uid = \"3\"\nsnapshot2.parent = \"2\"\n", EINVAL,
             "loop in the snapshot tree");
  parse_bad ("snapshot.lastUID = \"2\"\nsnapshot.numSnapshots = \"2\"\n"
             "snapshot0.uid = \"2\"\nsnapshot1.uid = \"2\"\n", EINVAL,
             "duplicate snapshot uid 2");
  parse_bad ("snapshot.lastUID = \"2\"\nsnapshot.numSnapshots = \"1\"\n"
             "snapshot0.parent = \"0\"\n", EINVAL, "snapshot0 (line 3) has no uid");
  parse_bad ("snapshot.lastUID = \"1\"\nsnapshot.current = \"5\"\n"
             "snapshot.numSnapshots = \"1\"\nsnapshot0.uid = \"1\"\n", EINVAL,
             "snapshot.current 5 names no snapshot");
  parse_bad ("snapshot.lastUID = \"1\"\nsnapshot.numSnapshots = \"1\"\n"
             "snapshot0.uid = \"4\"\n", EINVAL,
             "snapshot.lastUID 1 is lower than snapshot uid 4");

  /* counts */
  parse_bad ("snapshot.lastUID = \"1\"\nsnapshot.numSnapshots = \"2\"\n"
             "snapshot0.uid = \"1\"\n", EINVAL,
             "snapshot.numSnapshots is 2 but 1 snapshots are listed");
  parse_bad ("snapshot.lastUID = \"1\"\nsnapshot0.uid = \"1\"\n", EINVAL,
             "snapshot.numSnapshots is missing");
  parse_bad ("snapshot.numSnapshots = \"40\"\n", E2BIG, "at most 32");
  char *big = calloc (1, 65536);
  strcpy (big, "snapshot.lastUID = \"33\"\nsnapshot.numSnapshots = \"32\"\n");
  for (unsigned i = 0; i < 32; i++)
    add_snap (big, 65536, i, i + 1, i);
  struct vmsd m;
  parse_ok (big, &m);   /* 32 in a chain is fine */
  assert_int_equal (m.n, 32);
  vmsd_free (&m);
  strcpy (big, "snapshot.lastUID = \"33\"\nsnapshot.numSnapshots = \"33\"\n");
  for (unsigned i = 0; i < 33; i++)
    add_snap (big, 65536, i, i + 1, i);
  /* the 33rd snapshot starts on line 2 + 32 x 5 + 1 */
  parse_bad (big, E2BIG, "more than 32 snapshots (line 163), VMware allows at most 32");
  free (big);

  /* numbers */
  parse_bad ("snapshot.lastUID = \"abc\"\n", EINVAL,
             "line 1: invalid uid for 'snapshot.lastUID'");
  parse_bad ("snapshot.lastUID = \"4294967296\"\n", EINVAL, "invalid uid");
  parse_bad ("snapshot.numSnapshots = \"-1\"\n", EINVAL, "invalid snapshot count");
  parse_bad ("\n\nsnapshot0.uid = \"0\"\n", EINVAL,
             "line 3: invalid uid for 'snapshot0.uid'");
  parse_bad ("snapshot0.uid = \"1 \"\n", EINVAL, "invalid uid");
  parse_bad ("snapshot0.parent = \"x\"\n", EINVAL, "invalid parent uid");
  parse_bad ("snapshot0.createTimeHigh = \"2147483648\"\n", EINVAL, "invalid number");
  parse_bad ("snapshot0.createTimeLow = \"4294967296\"\n", EINVAL, "invalid number");
  parse_bad ("snapshot0.createTimeLow = \"\"\n", EINVAL, "invalid number");
  parse_bad ("snapshot0.numDisks = \"513\"\n", EINVAL, "invalid disk count");
  parse_bad ("snapshot0.type = \"99999999999\"\n", EINVAL, "invalid number");
  parse_bad ("snapshot0.quiesced = \"perhaps\"\n", EINVAL, "invalid boolean");
  parse_bad ("snapshot0.vmbackConsistency = \"app\"\n", EINVAL,
             "invalid consistency");
  parse_bad ("snapshot.mru0.uid = \"-3\"\n", EINVAL, "invalid uid");
  parse_bad ("snapshot12345.uid = \"1\"\n", EINVAL, "invalid snapshot key");
  parse_bad ("snapshot0uid = \"1\"\n", EINVAL, "invalid snapshot key");

  /* per-snapshot consistency */
  const char *hdr = "snapshot.lastUID = \"1\"\nsnapshot.numSnapshots = \"1\"\n"
    "snapshot0.uid = \"1\"\n";
  char t[512];
  snprintf (t, sizeof t, "%ssnapshot0.createTimeHigh = \"1\"\n", hdr);
  parse_bad (t, EINVAL, "only half of createTimeHigh/createTimeLow");
  snprintf (t, sizeof t, "%ssnapshot0.disk0.fileName = \"a.vmdk\"\n"
            "snapshot0.disk0.node = \"scsi0:0\"\n", hdr);
  parse_bad (t, EINVAL, "lists disks but has no numDisks");
  snprintf (t, sizeof t, "%ssnapshot0.numDisks = \"1\"\n"
            "snapshot0.disk0.fileName = \"a.vmdk\"\n", hdr);
  parse_bad (t, EINVAL, "snapshot uid 1 disk0 has no node");
  snprintf (t, sizeof t, "%ssnapshot0.numDisks = \"2\"\n"
            "snapshot0.disk0.fileName = \"a.vmdk\"\n"
            "snapshot0.disk0.node = \"scsi0:0\"\n", hdr);
  parse_bad (t, EINVAL, "has numDisks 2 but no disk1");
  snprintf (t, sizeof t, "%ssnapshot0.numDisks = \"1\"\n"
            "snapshot0.disk0.fileName = \"a.vmdk\"\nsnapshot0.disk0.node = \"s\"\n"
            "snapshot0.disk3.node = \"scsi0:3\"\n", hdr);
  parse_bad (t, EINVAL, "has disk3 but numDisks is 1");
  snprintf (t, sizeof t, "%ssnapshot0.disk600.node = \"x\"\n", hdr);
  parse_bad (t, E2BIG, "disk index 600");

  /* syntax and size limits come from the .vmx layer */
  parse_bad ("snapshot.lastUID = \"1\"\nsnapshot0.uid\n", EINVAL,
             "line 2: missing '='");
  size_t n = 70000;
  char *longl = malloc (n + 1);
  memset (longl, 'a', n);
  memcpy (longl, "x = \"", 5);
  longl[n - 1] = '"';
  longl[n] = '\0';
  parse_bad (longl, EINVAL, "line 1: line is longer than 65536 bytes");
  free (longl);
}

static void
test_mru_cleanup (void **state)
{
  /* MRU entries naming missing snapshots or repeats are dropped */
  const char *t = "snapshot.lastUID = \"2\"\nsnapshot.numSnapshots = \"2\"\n"
    "snapshot0.uid = \"1\"\nsnapshot1.uid = \"2\"\nsnapshot1.parent = \"1\"\n"
    "snapshot.mru3.uid = \"1\"\nsnapshot.mru0.uid = \"9\"\n"
    "snapshot.mru1.uid = \"2\"\nsnapshot.mru2.uid = \"2\"\n";
  struct vmsd m;
  parse_ok (t, &m);
  assert_int_equal (m.n_mru, 2);
  assert_int_equal (m.mru[0], 2);
  assert_int_equal (m.mru[1], 1);
  assert_int_equal (m.current, 0);   /* absent: the VM runs on its base */
  vmsd_free (&m);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_three),
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_renumber),
    cmocka_unit_test (test_model_ops),
    cmocka_unit_test (test_save_load),
    cmocka_unit_test (test_time),
    cmocka_unit_test (test_errors),
    cmocka_unit_test (test_mru_cleanup),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
