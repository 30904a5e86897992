/* Tests of the small file helpers (src/common/vio.c): atomic whole-file
 * writes and deferred directory syncs. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vdisk/vdisk-int.h"

static char dir[] = "/tmp/vmback-test-vio.XXXXXX";

/* path = dir/name */
static void
join (char *path, size_t len, const char *name)
{
  snprintf (path, len, "%s/%s", dir, name);
}

/* An atomic write replaces the file whole and leaves no temporary. */
static void
test_write_atomic (void **state)
{
  char p[256], *text;
  size_t len;
  struct vb_error e = { 0 };
  join (p, sizeof p, "a.vmx");
  assert_int_equal (vio_write_file_atomic (p, "one\n", 4, &e), 0);
  assert_int_equal (vio_write_file_atomic (p, "second\n", 7, &e), 0);
  assert_int_equal (vio_read_file (p, 100, &text, &len, &e), 0);
  assert_int_equal (len, 7);
  assert_string_equal (text, "second\n");
  free (text);
  char q[300];
  snprintf (q, sizeof q, "ls -a '%s' | grep -q tmp", dir);
  assert_int_not_equal (system (q), 0);
}

/* Deferred directory syncs happen at the flush, once per directory; a
 * directory that vanished in between makes the flush fail; the flush
 * ends the deferred stretch. */
static void
test_dir_sync_defer (void **state)
{
  char p[256], sub[256];
  struct vb_error e = { 0 };
  join (sub, sizeof sub, "sub");
  assert_int_equal (mkdir (sub, 0700), 0);
  vio_dir_sync_defer ();
  for (int i = 0; i < 20; i++) {              /* more files than DEFER_MAX */
    snprintf (p, sizeof p, "%s/f%d", sub, i);
    assert_int_equal (vio_write_file_atomic (p, "x", 1, &e), 0);
    join (p, sizeof p, "top");
    assert_int_equal (vio_write_file_atomic (p, "y", 1, &e), 0);
  }
  assert_int_equal (vio_dir_sync_flush (), 0);
  assert_int_equal (vio_dir_sync_flush (), 0);  /* nothing left */

  /* the only remembered directory is gone by the flush */
  vio_dir_sync_defer ();
  snprintf (p, sizeof p, "%s/f0", sub);
  assert_int_equal (vio_fsync_dir (p), 0);      /* put off: succeeds */
  char cmd[300];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", sub);
  assert_int_equal (system (cmd), 0);
  assert_int_equal (vio_dir_sync_flush (), -ENOENT);
  /* no longer deferred: a missing directory fails at once */
  assert_int_equal (vio_fsync_dir (p), -ENOENT);
}

static int
setup (void **state)
{
  return mkdtemp (dir) ? 0 : -1;
}

static int
teardown (void **state)
{
  char cmd[300];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system (cmd) == 0 ? 0 : -1;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_write_atomic),
    cmocka_unit_test (test_dir_sync_defer),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
