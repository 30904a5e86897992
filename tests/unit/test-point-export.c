/* Unit tests of src/serve/point-export.c: a restore point's disk served
 * by reading chunks on demand (docs/serve.md).
 *
 * One repository (256 KiB chunks) holds a point of a raw disk of seven
 * chunks, the last one short: data, zero, data, data, zero, data, tail.
 * Tests read it back across chunk boundaries, check block status, the
 * cache bound, overlay writes, and that a damaged chunk gives EIO and
 * never a wrong byte. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine-int.h"
#include "serve/point-export.h"
#include "vmback/engine.h"

#define CS (256u << 10)
#define NCHUNKS 7
#define DISK_SIZE ((uint64_t) CS * (NCHUNKS - 1) + 1000)

static char tmpdir[64];
static char repo_dir[128], disk_path[128];
static uint8_t *orig;            /* the disk's bytes */
static struct repo *repo;
static struct manifest point;

/* Is chunk i one of the zero chunks? */
static bool
zero_chunk (int i)
{
  return i == 1 || i == 4;
}

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

/* Make the disk, the repository and one point of the disk. */
static int
group_setup (void **state)
{
  strcpy (tmpdir, "/tmp/vmback-test-pe-XXXXXX");
  if (!mkdtemp (tmpdir))
    return -1;
  snprintf (repo_dir, sizeof repo_dir, "%s/repo", tmpdir);
  snprintf (disk_path, sizeof disk_path, "%s/disk.raw", tmpdir);
  orig = calloc (1, DISK_SIZE);
  for (int i = 0; i < NCHUNKS; i++)
    if (!zero_chunk (i)) {
      uint64_t off = (uint64_t) i * CS;
      fill (orig + off, DISK_SIZE - off < CS ? DISK_SIZE - off : CS, (uint64_t) i + 1);
    }
  int fd = open (disk_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || pwrite (fd, orig, DISK_SIZE, 0) != (ssize_t) DISK_SIZE)
    return -1;
  close (fd);
  struct vb_error e = { 0 };
  struct repo_init_opts io = { .chunk_size = CS };
  struct engine_backup_opts bo = { .source_name = "pe", .threads = 2 };
  if (repo_init (repo_dir, &io, &e) < 0 || repo_open (repo_dir, NULL, NULL, &repo, &e) < 0
      || engine_backup_disk (repo, disk_path, &bo, &point, &e) < 0) {
    fprintf (stderr, "setup: %s\n", e.msg);
    return -1;
  }
  return 0;
}

static int
group_teardown (void **state)
{
  repo_close (repo);
  free (orig);
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system (cmd) == 0 ? 0 : -1;
}

/* Open the point with an optional overlay and cache size. */
static struct point_export *
open_pe (const char *overlay, uint64_t cache)
{
  struct vb_error e = { 0 };
  struct pe_opts o = { .overlay = overlay, .cache_bytes = cache };
  struct point_export *pe = NULL;
  int rc = pe_open (repo, "latest", &o, &pe, &e);
  if (rc < 0)
    fprintf (stderr, "pe_open: %s\n", e.msg);
  assert_int_equal (rc, 0);
  return pe;
}

/* Read [off, off+n) and compare with want. */
static void
check_read (struct point_export *pe, const uint8_t *want, uint64_t off, size_t n)
{
  uint8_t *buf = malloc (n ? n : 1);
  struct vb_error e = { 0 };
  assert_int_equal (pe_pread (pe, buf, n, off, &e), 0);
  assert_memory_equal (buf, want + off, n);
  free (buf);
}

/* ---- tests -------------------------------------------------------------- */

/* Whole disk, ranges across chunk boundaries, zero chunks, the short
 * tail, and a read past the end. */
static void
test_reads (void **state)
{
  struct point_export *pe = open_pe (NULL, 0);
  assert_int_equal (pe_size (pe), DISK_SIZE);
  assert_int_equal (pe_chunk_size (pe), CS);
  assert_false (pe_writable (pe));
  assert_string_equal (pe_disk_key (pe), point.disks[0].key);
  check_read (pe, orig, 0, DISK_SIZE);
  check_read (pe, orig, CS - 10, 20);                  /* data | zero */
  check_read (pe, orig, 2 * CS - 1, CS + 2);           /* zero | data | data */
  check_read (pe, orig, 4 * CS + 5, CS);               /* zero | data */
  check_read (pe, orig, DISK_SIZE - 1500, 1500);       /* into the short tail */
  check_read (pe, orig, DISK_SIZE, 0);
  uint64_t x = 42;
  for (int k = 0; k < 200; k++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t off = (x >> 11) % DISK_SIZE;
    size_t n = (size_t) ((x >> 40) % (3 * CS));
    if (n > DISK_SIZE - off)
      n = DISK_SIZE - off;
    check_read (pe, orig, off, n);
  }
  uint8_t b[16];
  struct vb_error e = { 0 };
  assert_int_equal (pe_pread (pe, b, 16, DISK_SIZE - 8, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "beyond the end"));
  vb_err_clear (&e);
  assert_int_equal (pe_pwrite (pe, b, 16, 0, &e), -EROFS);
  assert_non_null (strstr (e.msg, "read-only"));
  assert_int_equal (pe_close (pe, NULL), 0);
}

/* Collects extents. */
struct exts {
  int n;
  uint64_t off[32], len[32];
  bool zero[32];
};

static int
collect (void *opaque, uint64_t off, uint64_t len, bool zero)
{
  struct exts *x = opaque;
  assert_true (x->n < 32);
  x->off[x->n] = off;
  x->len[x->n] = len;
  x->zero[x->n++] = zero;
  return 0;
}

/* Zero chunks are holes; extents are merged and cover the range. */
static void
test_extents (void **state)
{
  struct point_export *pe = open_pe (NULL, 0);
  struct exts x = { 0 };
  struct vb_error e = { 0 };
  assert_int_equal (pe_extents (pe, 0, DISK_SIZE, collect, &x, &e), 0);
  assert_int_equal (x.n, 5);
  uint64_t want_off[] = { 0, CS, 2 * CS, 4 * CS, 5 * CS };
  bool want_zero[] = { false, true, false, true, false };
  for (int i = 0; i < 5; i++) {
    assert_int_equal (x.off[i], want_off[i]);
    assert_int_equal (x.zero[i], want_zero[i]);
  }
  assert_int_equal (x.off[4] + x.len[4], DISK_SIZE);
  memset (&x, 0, sizeof x);                           /* a range inside a hole */
  assert_int_equal (pe_extents (pe, CS + 100, 1000, collect, &x, &e), 0);
  assert_int_equal (x.n, 1);
  assert_true (x.zero[0]);
  assert_int_equal (x.off[0], CS + 100);
  assert_int_equal (x.len[0], 1000);
  assert_int_equal (pe_extents (pe, DISK_SIZE - 1, 2, collect, &x, &e), -EINVAL);
  pe_close (pe, NULL);
}

/* The cache never holds more chunks than its bound, and serves hits. */
static void
test_cache_bound (void **state)
{
  struct point_export *pe = open_pe (NULL, 2 * CS);
  struct pe_stats s;
  pe_get_stats (pe, &s);
  assert_int_equal (s.capacity, 2);
  for (int i = 0; i < NCHUNKS; i++) {
    uint64_t off = (uint64_t) i * CS;
    check_read (pe, orig, off, 100);
    pe_get_stats (pe, &s);
    assert_true (s.cached <= 2);
  }
  pe_get_stats (pe, &s);
  assert_int_equal (s.misses, 5);                      /* zero chunks never fetched */
  assert_int_equal (s.hits, 0);
  check_read (pe, orig, 6 * CS + 10, 10);             /* the newest two stay */
  check_read (pe, orig, 5 * CS + 10, 10);
  pe_get_stats (pe, &s);
  assert_int_equal (s.hits, 2);
  check_read (pe, orig, 0, 10);                        /* the oldest was evicted */
  pe_get_stats (pe, &s);
  assert_int_equal (s.misses, 6);
  assert_int_equal (s.cached, 2);
  pe_close (pe, NULL);
  pe = open_pe (NULL, 1);                              /* less than a chunk: one */
  pe_get_stats (pe, &s);
  assert_int_equal (s.capacity, 1);
  check_read (pe, orig, 0, DISK_SIZE);
  pe_close (pe, NULL);
}

/* Writes land in the overlay (partial blocks filled from the point), read
 * back, persist across a reopen, show in block status, and leave the
 * repository alone. */
static void
test_overlay (void **state)
{
  char ov[192], map[200];
  snprintf (ov, sizeof ov, "%s/overlay.raw", tmpdir);
  snprintf (map, sizeof map, "%s.bitmap", ov);
  uint8_t *want = malloc (DISK_SIZE);
  memcpy (want, orig, DISK_SIZE);
  struct point_export *pe = open_pe (ov, 0);
  assert_true (pe_writable (pe));
  struct vb_error e = { 0 };
  uint8_t patch[300];
  memset (patch, 0xab, sizeof patch);
  assert_int_equal (pe_pwrite (pe, patch, 300, CS - 100, &e), 0);   /* data | zero chunk */
  memcpy (want + CS - 100, patch, 300);
  uint8_t *blk = malloc (PE_OVERLAY_BLOCK);
  memset (blk, 0xcd, PE_OVERLAY_BLOCK);
  assert_int_equal (pe_pwrite (pe, blk, PE_OVERLAY_BLOCK, 3 * CS, &e), 0);   /* a whole block */
  memcpy (want + 3 * CS, blk, PE_OVERLAY_BLOCK);
  assert_int_equal (pe_pwrite (pe, patch, 7, DISK_SIZE - 7, &e), 0);         /* the last byte */
  memcpy (want + DISK_SIZE - 7, patch, 7);
  check_read (pe, want, 0, DISK_SIZE);
  check_read (pe, want, CS - 200, 1000);
  struct exts x = { 0 };
  assert_int_equal (pe_extents (pe, CS, CS, collect, &x, &e), 0);
  assert_int_equal (x.n, 2);                           /* written block, then the hole */
  assert_false (x.zero[0]);
  assert_int_equal (x.len[0], PE_OVERLAY_BLOCK);
  assert_true (x.zero[1]);
  assert_int_equal (pe_flush (pe, &e), 0);
  assert_int_equal (pe_close (pe, &e), 0);
  struct stat st;
  assert_int_equal (stat (ov, &st), 0);
  assert_int_equal (st.st_size, DISK_SIZE);
  assert_true ((uint64_t) st.st_blocks * 512 < DISK_SIZE);          /* sparse */
  pe = open_pe (ov, 0);                                /* reopened: writes persist */
  check_read (pe, want, 0, DISK_SIZE);
  struct point_export *pe2 = NULL;                     /* one user at a time */
  struct pe_opts o2 = { .overlay = ov };
  assert_int_equal (pe_open (repo, "latest", &o2, &pe2, &e), -EBUSY);
  assert_non_null (strstr (e.msg, "in use"));
  vb_err_clear (&e);
  pe_close (pe, NULL);
  pe = open_pe (NULL, 0);                              /* the point is unchanged */
  check_read (pe, orig, 0, DISK_SIZE);
  pe_close (pe, NULL);
  struct pe_opts o = { .overlay = disk_path };         /* a file that is no overlay */
  assert_int_equal (pe_open (repo, "latest", &o, &pe, &e), -EEXIST);
  assert_non_null (strstr (e.msg, "not a vmback overlay"));
  vb_err_clear (&e);
  assert_int_equal (truncate (map, 100), 0);           /* a damaged bitmap */
  o.overlay = ov;
  assert_int_equal (pe_open (repo, "latest", &o, &pe, &e), -EINVAL);
  unlink (ov);
  unlink (map);
  free (blk);
  free (want);
}

/* Parallel readers with a tiny cache get the right bytes. */
struct reader {
  struct point_export *pe;
  uint64_t seed;
  int bad;
};

static void *
reader_main (void *arg)
{
  struct reader *rd = arg;
  uint8_t *buf = malloc (2 * CS);
  uint64_t x = rd->seed;
  for (int k = 0; k < 150; k++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t off = (x >> 11) % DISK_SIZE;
    size_t n = (size_t) ((x >> 40) % (2 * CS));
    if (n > DISK_SIZE - off)
      n = DISK_SIZE - off;
    struct vb_error e = { 0 };
    if (pe_pread (rd->pe, buf, n, off, &e) < 0 || memcmp (buf, orig + off, n) != 0)
      rd->bad++;
  }
  free (buf);
  return NULL;
}

static void
test_parallel_reads (void **state)
{
  struct point_export *pe = open_pe (NULL, 2 * CS);
  pthread_t th[4];
  struct reader rd[4];
  for (int i = 0; i < 4; i++) {
    rd[i] = (struct reader) { .pe = pe, .seed = (uint64_t) i + 7 };
    assert_int_equal (pthread_create (&th[i], NULL, reader_main, &rd[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join (th[i], NULL);
    assert_int_equal (rd[i].bad, 0);
  }
  pe_close (pe, NULL);
}

/* Path of the blob of chunk i of the point. */
static void
chunk_file (int i, char *buf, size_t len)
{
  struct repo_index ix = { 0 };
  struct vb_error e = { 0 };
  assert_int_equal (engine_load_index (repo, &point, 0, &ix, &e), 0);
  char key[128];
  chunk_key (ix.ids[i], key, sizeof key);
  snprintf (buf, len, "%s/%s", repo_dir, key);
  index_free (&ix);
}

/* A damaged chunk is EIO naming the chunk; its bytes never reach the
 * caller; other chunks still read.  A missing chunk likewise. */
static void
test_corrupt_chunk (void **state)
{
  char path[512];
  chunk_file (2, path, sizeof path);
  int fd = open (path, O_RDWR);
  assert_true (fd >= 0);
  uint8_t saved[64], b;
  off_t at = (off_t) (lseek (fd, 0, SEEK_END) / 2);
  assert_int_equal (pread (fd, saved, sizeof saved, at), (ssize_t) sizeof saved);
  b = saved[0] ^ 0x40;
  assert_int_equal (pwrite (fd, &b, 1, at), 1);
  struct point_export *pe = open_pe (NULL, 0);
  uint8_t *buf = malloc (3 * CS);
  memset (buf, 0x5a, 3 * CS);
  struct vb_error e = { 0 };
  assert_int_equal (pe_pread (pe, buf, 3 * CS, CS, &e), -EIO);   /* zero | bad | good */
  assert_non_null (strstr (e.msg, "chunk 2"));
  assert_non_null (strstr (e.msg, point.id));
  for (size_t k = CS; k < 2 * CS; k++)                 /* nothing of chunk 2 was copied */
    assert_int_equal (buf[k], 0x5a);
  vb_err_clear (&e);
  assert_int_equal (pe_pread (pe, buf, 10, 2 * CS + 5, &e), -EIO);   /* not cached */
  check_read (pe, orig, 3 * CS, CS);
  assert_int_equal (pwrite (fd, saved, 1, at), 1);      /* repaired: reads again */
  close (fd);
  check_read (pe, orig, 2 * CS, CS);
  pe_close (pe, NULL);

  chunk_file (5, path, sizeof path);                    /* a missing chunk */
  char moved[520];
  snprintf (moved, sizeof moved, "%s.away", path);
  assert_int_equal (rename (path, moved), 0);
  pe = open_pe (NULL, 0);
  vb_err_clear (&e);
  assert_int_equal (pe_pread (pe, buf, 100, 5 * CS, &e), -EIO);
  assert_non_null (strstr (e.msg, "missing"));
  assert_int_equal (rename (moved, path), 0);
  check_read (pe, orig, 5 * CS, 100);
  pe_close (pe, NULL);
  free (buf);
}

/* Unknown points and disks are one-line errors. */
static void
test_open_errors (void **state)
{
  struct point_export *pe = NULL;
  struct vb_error e = { 0 };
  struct pe_opts o = { .disk = "nosuch" };
  assert_true (pe_open (repo, "latest", &o, &pe, &e) < 0);
  assert_non_null (strstr (e.msg, "no disk 'nosuch'"));
  assert_null (pe);
  vb_err_clear (&e);
  o.disk = NULL;
  assert_true (pe_open (repo, "nosuch/point", &o, &pe, &e) < 0);
  assert_null (pe);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_reads),
    cmocka_unit_test (test_extents),
    cmocka_unit_test (test_cache_bound),
    cmocka_unit_test (test_overlay),
    cmocka_unit_test (test_parallel_reads),
    cmocka_unit_test (test_corrupt_chunk),
    cmocka_unit_test (test_open_errors),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
