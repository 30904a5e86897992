/* Regression tests for hostile inputs found by the fuzz targets and the
 * hostile-input end-to-end test: descriptors naming a change tracking file
 * outside the disk's directory, and writes into a hosted sparse file whose
 * last grain is cut short by the end of the file. */
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

#include "vmback/vdisk.h"
#include "vdisk/vmdk-desc.h"

static char dir[64];

/* Private temp directory for the group. */
static int
setup (void **state)
{
  (void) state;
  snprintf (dir, sizeof dir, "/tmp/vmback-test-hostile-XXXXXX");
  return mkdtemp (dir) ? 0 : -1;
}

/* Remove the temp directory. */
static int
teardown (void **state)
{
  (void) state;
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system (cmd) == 0 ? 0 : -1;
}

/* Parse a descriptor with the given changeTrackPath line. */
static int
parse_with_tracker (const char *line, struct vb_error *e)
{
  char text[1024];
  snprintf (text, sizeof text,
            "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
            "parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
            "RW 2048 FLAT \"a-flat.vmdk\" 0\n%s\n", line);
  struct vmdk_desc d;
  int r = vmdk_desc_parse (text, strlen (text), "t.vmdk", &d, e);
  if (r == 0)
    vmdk_desc_free (&d);
  return r;
}

/* A tracker is written and removed: '..', absolute and empty names are
 * refused with a message naming the line; a plain name is taken. */
static void
test_unsafe_tracker_names (void **state)
{
  (void) state;
  struct vb_error e = { 0 };
  assert_int_equal (parse_with_tracker ("changeTrackPath=\"a-ctk.vmdk\"", &e), 0);
  assert_int_equal (parse_with_tracker ("changeTrackPath=\"sub/a-ctk.vmdk\"", &e), 0);
  static const char *bad[] = {
    "changeTrackPath=\"../victim\"", "changeTrackPath=\"/etc/passwd\"",
    "changeTrackPath=\"a/../../victim\"", "changeTrackPath=\"..\"",
    "changeTrackPath=\"\"",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct vb_error e2 = { 0 };
    assert_int_equal (parse_with_tracker (bad[i], &e2), -EINVAL);
    assert_non_null (strstr (e2.msg, "unsafe change tracking file name"));
    assert_non_null (strstr (e2.msg, "line 7 of 't.vmdk'"));
  }
}

/* Fill buf with a pattern for seed. */
static void
pattern (uint8_t *buf, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    buf[i] = (uint8_t) (i * 31 + seed * 7 + (i >> 9));
}

/* Read n bytes at off and compare with want. */
static void
expect_bytes (struct vdisk *d, uint64_t off, const uint8_t *want, size_t n)
{
  uint8_t *got = malloc (n);
  assert_non_null (got);
  struct vb_error e = { 0 };
  assert_int_equal (vdisk_pread (d, got, n, off, &e), 0);
  assert_memory_equal (got, want, n);
  free (got);
}

/* A monolithicSparse file whose last grain is cut short: a write into
 * that grain's missing tail must read back, and a new grain allocated
 * after it must not overlap it (both stay intact after reopening). */
static void
test_sparse_truncated_last_grain (void **state)
{
  (void) state;
  char path[128];
  snprintf (path, sizeof path, "%s/cut.vmdk", dir);
  struct vdisk_create_opts o = { .type = VDISK_TYPE_MONOLITHIC_SPARSE,
                                 .size = 128 << 10 };
  struct vb_error e = { 0 };
  assert_int_equal (vdisk_create (path, &o, &e), 0);
  static uint8_t g1[64 << 10], a[4096], b[4096];
  pattern (g1, sizeof g1, 1);
  struct vdisk *d;
  assert_int_equal (vdisk_open (path, VDISK_OPEN_RDWR, &d, &e), 0);
  assert_int_equal (vdisk_pwrite (d, g1, sizeof g1, 64 << 10, &e), 0);
  assert_int_equal (vdisk_close (d, &e), 0);
  /* grain 1 is the last thing in the file: cut 8 KiB of it off */
  FILE *f = fopen (path, "rb");
  assert_non_null (f);
  fseek (f, 0, SEEK_END);
  long size = ftell (f);
  fclose (f);
  assert_int_equal (truncate (path, size - 8192), 0);

  pattern (a, sizeof a, 2);
  pattern (b, sizeof b, 3);
  assert_int_equal (vdisk_open (path, VDISK_OPEN_RDWR, &d, &e), 0);
  assert_int_equal (vdisk_pwrite (d, a, sizeof a, (128 << 10) - 4096, &e), 0);
  expect_bytes (d, (128 << 10) - 4096, a, sizeof a);
  assert_int_equal (vdisk_pwrite (d, b, sizeof b, 0, &e), 0);   /* new grain */
  expect_bytes (d, 0, b, sizeof b);
  expect_bytes (d, (128 << 10) - 4096, a, sizeof a);
  assert_int_equal (vdisk_close (d, &e), 0);

  assert_int_equal (vdisk_open (path, VDISK_OPEN_RDONLY, &d, &e), 0);
  expect_bytes (d, 0, b, sizeof b);
  expect_bytes (d, 64 << 10, g1, sizeof g1 - 8192);
  expect_bytes (d, (128 << 10) - 4096, a, sizeof a);
  assert_int_equal (vdisk_close (d, &e), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_unsafe_tracker_names),
    cmocka_unit_test (test_sparse_truncated_last_grain),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
