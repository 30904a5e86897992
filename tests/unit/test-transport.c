/* Unit tests of src/transport: every transport reads the same bytes and
 * the same allocation map of one disk.
 *
 * Two disks: a raw file (one flat extent: every transport can read it)
 * and a monolithicSparse VMDK (not a loop device candidate: hotadd must
 * say it is unavailable).  Each has data runs, a written zero run and
 * holes.  nbd/nbdssl need nbdkit and our plugin ($VMBACK_NBDKIT_PLUGIN,
 * set by the build's test environment); hotadd needs loop devices (root):
 * tests that cannot run here are skipped and say why. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/transport.h"
#include "vmback/vdisk.h"

#define MiB (1u << 20)
#define DISK_SIZE (8 * MiB)

static char tmpdir[64], raw_path[128], vmdk_path[128];
static uint8_t *orig;

/* Deterministic bytes (xorshift). */
static void
fill (uint8_t *p, size_t n, uint64_t seed)
{
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (uint8_t) x;
  }
}

/* Write the data runs into disk path (any vdisk). */
static void
write_runs (const char *path)
{
  struct vdisk *d;
  struct vb_error e = { 0 };
  assert_int_equal (vdisk_open (path, VDISK_OPEN_RDWR, &d, &e), 0);
  assert_int_equal (vdisk_pwrite (d, orig + MiB, MiB, MiB, &e), 0);
  assert_int_equal (vdisk_pwrite (d, orig + 5 * MiB + 4096, 100000, 5 * MiB + 4096, &e), 0);
  assert_int_equal (vdisk_pwrite (d, orig + DISK_SIZE - 512, 512, DISK_SIZE - 512, &e), 0);
  assert_int_equal (vdisk_close (d, &e), 0);
}

/* Make both disks. */
static int
group_setup (void **state)
{
  snprintf (tmpdir, sizeof tmpdir, "/tmp/vmback-transport.XXXXXX");
  assert_non_null (mkdtemp (tmpdir));
  orig = calloc (1, DISK_SIZE);
  assert_non_null (orig);
  fill (orig + MiB, MiB, 1);
  fill (orig + 5 * MiB + 4096, 100000, 2);
  fill (orig + DISK_SIZE - 512, 512, 3);
  snprintf (raw_path, sizeof raw_path, "%s/d.raw", tmpdir);
  snprintf (vmdk_path, sizeof vmdk_path, "%s/d.vmdk", tmpdir);
  struct vb_error e = { 0 };
  struct vdisk_create_opts o = { .type = VDISK_TYPE_RAW, .size = DISK_SIZE };
  assert_int_equal (vdisk_create (raw_path, &o, &e), 0);
  o.type = VDISK_TYPE_MONOLITHIC_SPARSE;
  assert_int_equal (vdisk_create (vmdk_path, &o, &e), 0);
  write_runs (raw_path);
  write_runs (vmdk_path);
  return 0;
}

static int
group_teardown (void **state)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system (cmd) != 0)
    return -1;
  free (orig);
  return 0;
}

/* Open path with mode, or skip the test when the transport cannot work
 * on this host (saying why); fails on any other error. */
static struct vb_reader *
open_or_skip (const char *mode, const char *path)
{
  struct vb_reader *r = NULL;
  struct vb_error e = { 0 };
  int rc = vb_transport_open (mode, path, 1, &r, &e);
  if (rc < 0 && strstr (e.msg, "unavailable") && strcmp (mode, "hotadd") == 0
      && !strstr (e.msg, "flat extent")) {
    fprintf (stderr, "SKIP: %s\n", e.msg);
    return NULL;
  }
  if (rc < 0 && (strcmp (mode, "nbd") == 0 || strcmp (mode, "nbdssl") == 0)
      && (strstr (e.msg, "plugin") || system ("command -v nbdkit >/dev/null") != 0)) {
    fprintf (stderr, "SKIP: %s\n", e.msg);
    return NULL;
  }
  if (rc < 0)
    fail_msg ("%s on %s: %s", mode, path, e.msg);
  assert_string_equal (r->mode, mode);
  assert_int_equal (r->size, DISK_SIZE);
  return r;
}

/* Every byte equals orig, read in 256 KiB pieces and across them. */
static void
check_bytes (struct vb_reader *r)
{
  uint8_t *buf = malloc (DISK_SIZE);
  struct vb_error e = { 0 };
  for (uint64_t off = 0; off < DISK_SIZE; off += 256 << 10)
    assert_int_equal (r->ops->pread (r, buf + off, 256 << 10, off, &e), 0);
  assert_memory_equal (buf, orig, DISK_SIZE);
  assert_int_equal (r->ops->pread (r, buf, 3000, MiB - 1000, &e), 0);
  assert_memory_equal (buf, orig + MiB - 1000, 3000);
  free (buf);
}

/* The map: data where written, zero in the untouched first MiB. */
static void
check_status (struct vb_reader *r)
{
  uint64_t pnum;
  struct vb_error e = { 0 };
  int s = r->ops->status (r, 0, MiB, &pnum, &e);
  assert_int_equal (s, VDISK_STATUS_ZERO);
  assert_true (pnum > 0 && pnum <= MiB);
  s = r->ops->status (r, MiB, MiB, &pnum, &e);
  assert_int_equal (s, VDISK_STATUS_DATA);
  assert_true (pnum > 0 && pnum <= MiB);
  /* walking the map covers the disk exactly, and every data byte is in
   * a data run */
  uint64_t off = 0;
  while (off < DISK_SIZE) {
    s = r->ops->status (r, off, DISK_SIZE - off, &pnum, &e);
    assert_true (s == VDISK_STATUS_DATA || s == VDISK_STATUS_ZERO);
    assert_true (pnum > 0 && off + pnum <= DISK_SIZE);
    if (s == VDISK_STATUS_ZERO)
      for (uint64_t i = off; i < off + pnum; i++)
        if (orig[i]) {
          fail_msg ("%s: byte %llu is data but reported zero", r->mode,
                    (unsigned long long) i);
        }
    off += pnum;
  }
}

/* Reads in flight (readers with read_start): VB_READS_AHEAD reads out
 * of order land in their own buffers, complete oldest first; one more
 * than that, or a wait with none in flight, is refused. */
static void
check_async (struct vb_reader *r)
{
  if (!r->ops->read_start)
    return;
  assert_non_null (r->ops->read_wait);
  static const uint64_t at[VB_READS_AHEAD] = { 5 * MiB, MiB, 7 * MiB + 4096, 3 * MiB };
  uint8_t *buf[VB_READS_AHEAD];
  struct vb_error e = { 0 };
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < VB_READS_AHEAD; i++) {
      buf[i] = calloc (1, MiB / 2);
      assert_int_equal (r->ops->read_start (r, buf[i], MiB / 2, at[i], &e), 0);
    }
    assert_int_equal (r->ops->read_start (r, buf[0], 512, 0, &e), -EBUSY);
    memset (&e, 0, sizeof e);
    for (int i = 0; i < VB_READS_AHEAD; i++) {
      assert_int_equal (r->ops->read_wait (r, &e), 0);
      assert_memory_equal (buf[i], orig + at[i], MiB / 2);
      free (buf[i]);
    }
  }
  assert_true (r->ops->read_wait (r, &e) < 0);
}

/* One transport over one disk. */
static void
run (const char *mode, const char *path)
{
  struct vb_reader *r = open_or_skip (mode, path);
  if (!r) {
    skip ();
    return;
  }
  check_bytes (r);
  check_status (r);
  check_async (r);
  r->ops->close (r);
}

static void test_san_raw (void **s) { run ("san", raw_path); }
static void test_san_vmdk (void **s) { run ("san", vmdk_path); }
static void test_nbd_raw (void **s) { run ("nbd", raw_path); }
static void test_nbd_vmdk (void **s) { run ("nbd", vmdk_path); }
static void test_nbdssl_vmdk (void **s) { run ("nbdssl", vmdk_path); }
static void test_hotadd_raw (void **s) { run ("hotadd", raw_path); }

/* hotadd refuses a sparse disk, saying why. */
static void
test_hotadd_sparse_unavailable (void **state)
{
  struct vb_reader *r = NULL;
  struct vb_error e = { 0 };
  assert_int_equal (vb_transport_open ("hotadd", vmdk_path, 1, &r, &e), -ENOTSUP);
  assert_non_null (strstr (e.msg, "hotadd: unavailable"));
  assert_non_null (strstr (e.msg, "not one flat extent"));
  assert_null (r);
}

/* auto picks san when it works. */
static void
test_auto_is_san (void **state)
{
  struct vb_reader *r = NULL;
  struct vb_error e = { 0 };
  assert_int_equal (vb_transport_open ("auto", vmdk_path, 1, &r, &e), 0);
  assert_string_equal (r->mode, "san");
  r->ops->close (r);
  assert_int_equal (vb_transport_open (NULL, vmdk_path, 1, &r, &e), 0);
  assert_string_equal (r->mode, "san");
  r->ops->close (r);
}

/* Names; unknown transports and missing disks are clear errors. */
static void
test_errors (void **state)
{
  assert_true (vb_transport_valid ("auto") && vb_transport_valid ("nbdssl"));
  assert_false (vb_transport_valid ("ssh") || vb_transport_valid (""));
  struct vb_reader *r = NULL;
  struct vb_error e = { 0 };
  assert_int_equal (vb_transport_open ("ssh", vmdk_path, 1, &r, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "unknown transport 'ssh'"));
  char missing[160];
  snprintf (missing, sizeof missing, "%s/none.vmdk", tmpdir);
  vb_err_clear (&e);
  assert_true (vb_transport_open ("auto", missing, 1, &r, &e) < 0);
  assert_non_null (strstr (e.msg, "no transport can read"));
  assert_null (r);
}

/* A plugin that is not there: the nbd transport says where it looked. */
static void
test_nbd_plugin_missing (void **state)
{
  const char *old = getenv ("VMBACK_NBDKIT_PLUGIN");
  char *keep = old ? strdup (old) : NULL;
  setenv ("VMBACK_NBDKIT_PLUGIN", "/nonexistent/dir/nbdkit-vmback.so", 1);
  struct vb_reader *r = NULL;
  struct vb_error e = { 0 };
  assert_true (vb_transport_open ("nbd", raw_path, 1, &r, &e) < 0);
  assert_non_null (strstr (e.msg, "/nonexistent/dir/nbdkit-vmback-vdisk.so"));
  if (keep)
    setenv ("VMBACK_NBDKIT_PLUGIN", keep, 1);
  else
    unsetenv ("VMBACK_NBDKIT_PLUGIN");
  free (keep);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_san_raw),
    cmocka_unit_test (test_san_vmdk),
    cmocka_unit_test (test_nbd_raw),
    cmocka_unit_test (test_nbd_vmdk),
    cmocka_unit_test (test_nbdssl_vmdk),
    cmocka_unit_test (test_hotadd_raw),
    cmocka_unit_test (test_hotadd_sparse_unavailable),
    cmocka_unit_test (test_auto_is_san),
    cmocka_unit_test (test_errors),
    cmocka_unit_test (test_nbd_plugin_missing),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
