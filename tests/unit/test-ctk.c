/* Unit tests of change tracking (src/vdisk/ctk.c, docs/CTK.md).
 *
 * Every tracker file lives in a fresh directory under /tmp.  Damaged
 * files are made by patching bytes of a good one (and recomputing the
 * CRCs with zlib where the test wants to get past them). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "vdisk/ctk.h"
#include "vdisk/vdisk-int.h"

#define B ((uint64_t) VDISK_CTK_BLOCK)
#define HDR 4096u

static char tmpdir[64];
static char path[256];
static int test_no;

/* Fresh tracker path per test. */
static int
setup (void **state)
{
  snprintf (path, sizeof path, "%s/t%d-ctk.vmdk", tmpdir, ++test_no);
  return 0;
}

static int
group_setup (void **state)
{
  strcpy (tmpdir, "/tmp/vmback-test-ctk-XXXXXX");
  return mkdtemp (tmpdir) ? 0 : -1;
}

static int
group_teardown (void **state)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system (cmd) == 0 ? 0 : -1;
}

/* --- file helpers ------------------------------------------------------ */

static uint8_t *
slurp (const char *p, size_t *len)
{
  char *buf = NULL;
  struct vb_error e = { 0 };
  assert_int_equal (vio_read_file (p, (size_t) 1 << 30, &buf, len, &e), 0);
  return (uint8_t *) buf;
}

static void
spit (const char *p, const void *buf, size_t len)
{
  int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (vio_pwrite (fd, buf, len, 0), 0);
  close (fd);
}

/* Recompute the header CRC (all header bytes but the field at 72). */
static void
fix_header_crc (uint8_t *h)
{
  uLong crc = crc32 (0, Z_NULL, 0);
  crc = crc32 (crc, h, 72);
  crc = crc32 (crc, h + 76, HDR - 76);
  le32_put (h + 72, (uint32_t) crc);
}

/* Recompute the table CRC of a whole file image. */
static void
fix_table_crc (uint8_t *f, size_t len)
{
  uLong crc = crc32 (0, Z_NULL, 0);
  crc = crc32 (crc, f + HDR, (uInt) (len - HDR - 4));
  le32_put (f + len - 4, (uint32_t) crc);
}

/* Open read-only and return the reason it is invalid ("" if valid). */
static const char *
judge (uint64_t size, uint32_t cid)
{
  static char buf[256];
  struct ctk *c;
  struct vb_error e = { 0 };
  assert_int_equal (ctk_open (path, size, cid, false, &c, &e), 0);
  const char *why = NULL;
  if (ctk_valid (c, &why))
    buf[0] = '\0';
  else {
    assert_non_null (why);
    snprintf (buf, sizeof buf, "%s", why);
  }
  assert_int_equal (ctk_close (c, cid, &e), 0);
  return buf;
}

/* Current changeId of the tracker at path. */
static void
current_id (uint64_t size, uint32_t cid, char *id, size_t n)
{
  struct ctk *c;
  struct vb_error e = { 0 };
  assert_int_equal (ctk_open (path, size, cid, false, &c, &e), 0);
  assert_true (ctk_valid (c, NULL));
  ctk_change_id (c, id, n);
  assert_int_equal (ctk_close (c, cid, &e), 0);
}

/* One write session marking the given ranges (pairs off,len). */
static void
session (uint64_t size, uint32_t cid, uint32_t final_cid,
         const uint64_t *ranges, size_t n)
{
  struct ctk *c;
  struct vb_error e = { 0 };
  assert_int_equal (ctk_open (path, size, cid, true, &c, &e), 0);
  assert_true (ctk_valid (c, NULL));
  assert_int_equal (ctk_begin_write (c, &e), 0);
  for (size_t i = 0; i < n; i++)
    ctk_mark (c, ranges[2 * i], ranges[2 * i + 1]);
  assert_int_equal (ctk_close (c, final_cid, &e), 0);
}

/* Query through a read-only open; returns the errno result. */
static int
query (uint64_t size, uint32_t cid, const char *id, uint64_t start,
       struct vdisk_extent_list *l, struct vb_error *e)
{
  struct ctk *c;
  struct vb_error e2 = { 0 };
  assert_int_equal (ctk_open (path, size, cid, false, &c, &e2), 0);
  int r = ctk_query (c, id, start, l, e);
  assert_int_equal (ctk_close (c, cid, &e2), 0);
  return r;
}

/* Assert l is well formed for a disk of size bytes queried from start:
 * sorted, disjoint, not adjacent, 64 KiB-aligned except a first extent
 * clipped to start and a last one clipped to the disk size. */
static void
assert_well_formed (const struct vdisk_extent_list *l, uint64_t size,
                    uint64_t start)
{
  for (size_t i = 0; i < l->n; i++) {
    uint64_t o = l->v[i].offset, n = l->v[i].length;
    assert_true (n > 0);
    assert_true (o >= start);
    assert_true (o + n <= size);
    if (o != start)
      assert_int_equal (o % B, 0);
    if (o + n != size)
      assert_int_equal ((o + n) % B, 0);
    if (i > 0)
      assert_true (o > l->v[i - 1].offset + l->v[i - 1].length);
  }
}

/* --- tests ------------------------------------------------------------- */

/* Random writes over several sessions: a query from each changeId returns
 * exactly the 64 KiB blocks written after it, no more, no less. */
static void
test_random_sessions (void **state)
{
  const uint64_t size = 300 * B + 12345;   /* odd tail block */
  const uint64_t nb = 301;
  unsigned seed = (unsigned) time (NULL) ^ (unsigned) getpid ();
  const char *env = getenv ("CTK_TEST_SEED");
  if (env)
    seed = (unsigned) strtoul (env, NULL, 0);
  printf ("test_random_sessions: seed %u (set CTK_TEST_SEED to repeat)\n",
          seed);
  srand (seed);

  struct vb_error e = { 0 };
  assert_int_equal (ctk_create (path, size, 0x1111, &e), 0);
  enum { SESS = 5 };
  char ids[SESS + 1][128];
  uint8_t written[SESS][301];   /* block written in session s */
  memset (written, 0, sizeof written);
  uint32_t cid = 0x1111;
  for (int s = 0; s < SESS; s++) {
    current_id (size, cid, ids[s], sizeof ids[s]);
    uint64_t r[2 * 40];
    size_t n = (size_t) (rand () % 40);
    for (size_t i = 0; i < n; i++) {
      uint64_t off = (uint64_t) rand () % size;
      uint64_t len = 1 + (uint64_t) rand () % (3 * B);
      if (len > size - off)
        len = size - off;
      r[2 * i] = off;
      r[2 * i + 1] = len;
      for (uint64_t b = off / B; b <= (off + len - 1) / B; b++)
        written[s][b] = 1;
    }
    session (size, cid, cid + 1, r, n);
    cid++;
  }
  current_id (size, cid, ids[SESS], sizeof ids[SESS]);

  for (int s = 0; s <= SESS; s++) {
    /* Expected: blocks written in sessions s .. SESS-1. */
    uint8_t want[301] = { 0 };
    for (int t = s; t < SESS; t++)
      for (uint64_t b = 0; b < nb; b++)
        want[b] |= written[t][b];
    struct vdisk_extent_list l = { 0 };
    assert_int_equal (query (size, cid, ids[s], 0, &l, &e), 0);
    assert_well_formed (&l, size, 0);
    uint8_t got[301] = { 0 };
    for (size_t i = 0; i < l.n; i++)
      for (uint64_t o = l.v[i].offset; o < l.v[i].offset + l.v[i].length;
           o += B)
        got[o / B] = 1;
    assert_memory_equal (got, want, sizeof want);
    vdisk_extent_list_free (&l);
  }
}

/* A changeId taken before writes sees them; one taken after does not; a
 * changeId taken during a session sees that session's writes. */
static void
test_before_after (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 10 * B;
  assert_int_equal (ctk_create (path, size, 7, &e), 0);
  char before[128], after[128], during[128];
  current_id (size, 7, before, sizeof before);

  struct ctk *c;
  assert_int_equal (ctk_open (path, size, 7, true, &c, &e), 0);
  assert_int_equal (ctk_begin_write (c, &e), 0);
  assert_int_equal (ctk_begin_write (c, &e), 0);   /* idempotent */
  ctk_mark (c, 3 * B + 10, 1);
  ctk_change_id (c, during, sizeof during);
  assert_string_equal (during, before);
  /* In session: the in-progress seq is not a state yet. */
  struct vdisk_extent_list l = { 0 };
  assert_int_equal (ctk_query (c, during, 0, &l, &e), 0);
  assert_int_equal (l.n, 1);
  vdisk_extent_list_free (&l);
  /* ...and asking from the in-progress session would miss its writes. */
  char inprog[128];
  snprintf (inprog, sizeof inprog, "%.36s/1", during);
  assert_int_equal (ctk_query (c, inprog, 0, &l, &e), -ESTALE);
  assert_non_null (strstr (e.msg, "newer"));
  assert_int_equal (ctk_close (c, 8, &e), 0);
  e = (struct vb_error) { 0 };

  current_id (size, 8, after, sizeof after);
  assert_string_not_equal (before, after);

  assert_int_equal (query (size, 8, before, 0, &l, &e), 0);
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, 3 * B);
  assert_int_equal (l.v[0].length, B);
  vdisk_extent_list_free (&l);

  assert_int_equal (query (size, 8, after, 0, &l, &e), 0);
  assert_int_equal (l.n, 0);
  vdisk_extent_list_free (&l);
}

/* A writer that crashes after begin_write leaves the tracker invalid;
 * a writable open then resets it to a new epoch. */
static void
test_crash_dirty (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 4 * B;
  assert_int_equal (ctk_create (path, size, 1, &e), 0);
  char old[128];
  current_id (size, 1, old, sizeof old);

  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0) {
    struct ctk *c;
    if (ctk_open (path, size, 1, true, &c, NULL) < 0
        || ctk_begin_write (c, NULL) < 0)
      _exit (1);
    ctk_mark (c, 0, B);
    _exit (0);   /* crash: no ctk_close */
  }
  int st;
  assert_int_equal (waitpid (pid, &st, 0), pid);
  assert_true (WIFEXITED (st) && WEXITSTATUS (st) == 0);

  /* Even with the CID unchanged (the descriptor update was lost too). */
  assert_string_equal (judge (size, 1),
                       "a writer did not close the disk cleanly");
  struct vdisk_extent_list l = { 0 };
  e = (struct vb_error) { 0 };
  assert_int_equal (query (size, 1, old, 0, &l, &e), -ESTALE);
  assert_non_null (strstr (e.msg, "a writer did not close the disk cleanly"));
  assert_non_null (strstr (e.msg, path));

  /* Writable open resets: valid again, old changeId refused. */
  struct ctk *c;
  assert_int_equal (ctk_open (path, size, 1, true, &c, &e), 0);
  assert_true (ctk_valid (c, NULL));
  assert_int_equal (ctk_close (c, 1, &e), 0);
  assert_string_equal (judge (size, 1), "");
  e = (struct vb_error) { 0 };
  assert_int_equal (query (size, 1, old, 0, &l, &e), -ESTALE);
  assert_non_null (strstr (e.msg, "earlier change tracking epoch"));
  char now[128];
  current_id (size, 1, now, sizeof now);
  assert_memory_not_equal (now, old, 36);
  assert_string_equal (now + 36, "/0");
  assert_int_equal (query (size, 1, now, 0, &l, &e), 0);
  assert_int_equal (l.n, 0);
}

/* CID or size changed behind our back -> invalid, with the reason. */
static void
test_cid_and_size_mismatch (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 4 * B;
  assert_int_equal (ctk_create (path, size, 0xabcdef01, &e), 0);
  assert_string_equal (judge (size, 0xabcdef01), "");
  assert_non_null (strstr (judge (size, 0xabcdef02),
                           "the disk was written without change tracking "
                           "(CID changed"));
  assert_non_null (strstr (judge (size + B, 0xabcdef01),
                           "the disk was resized"));
  assert_non_null (strstr (judge (size - 512, 0xabcdef01),
                           "the disk was resized"));
  /* Order: CID is reported before size. */
  assert_non_null (strstr (judge (size + B, 5), "CID changed"));
  /* A resize + writable open starts over with the new size. */
  struct ctk *c;
  assert_int_equal (ctk_open (path, size + B, 0xabcdef01, true, &c, &e), 0);
  assert_true (ctk_valid (c, NULL));
  assert_int_equal (ctk_close (c, 0xabcdef01, &e), 0);
  assert_string_equal (judge (size + B, 0xabcdef01), "");
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_size, HDR + 4 * 5 + 4);
}

/* Missing file: invalid read only, created by a writable open. */
static void
test_missing (void **state)
{
  assert_string_equal (judge (B, 1), "the change tracking file is missing");
  struct ctk *c;
  struct vb_error e = { 0 };
  assert_int_equal (ctk_open (path, B, 1, true, &c, &e), 0);
  assert_true (ctk_valid (c, NULL));
  assert_int_equal (ctk_close (c, 1, &e), 0);
  assert_string_equal (judge (B, 1), "");
}

/* A path that cannot be read (a directory: root ignores permissions):
 * invalid read only; a writable open fails with an error, no crash. */
static void
test_unreadable (void **state)
{
  assert_int_equal (mkdir (path, 0755), 0);
  assert_string_equal (judge (B, 1), "the change tracking file is "
                       "unreadable: Is a directory");
  struct ctk *c = NULL;
  struct vb_error e = { 0 };
  assert_true (ctk_open (path, B, 1, true, &c, &e) < 0);
  assert_null (c);
  assert_non_null (strstr (e.msg, path));
  assert_int_equal (rmdir (path), 0);
}

/* Files that are not ours or are damaged are invalid, never a crash. */
static void
test_damaged_files (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 20 * B + 512;   /* 21 blocks */
  assert_int_equal (ctk_create (path, size, 3, &e), 0);
  uint64_t r[] = { 5 * B, 1 };
  session (size, 3, 3, r, 1);
  size_t len;
  uint8_t *good = slurp (path, &len);
  assert_int_equal (len, HDR + 4 * 21 + 4);
  uint8_t *f = malloc (len);

  /* Garbage. */
  srand (42);
  for (size_t i = 0; i < len; i++)
    f[i] = (uint8_t) rand ();
  spit (path, f, len);
  assert_string_equal (judge (size, 3), "not a vmback change tracking file");
  /* Empty and tiny. */
  spit (path, f, 0);
  assert_string_equal (judge (size, 3), "not a vmback change tracking file");
  spit (path, good, 5);
  assert_string_equal (judge (size, 3), "not a vmback change tracking file");
  /* Wrong magic. */
  memcpy (f, good, len);
  f[7] ^= 0x20;
  spit (path, f, len);
  assert_string_equal (judge (size, 3), "not a vmback change tracking file");
  /* Truncated inside the header, inside the table, the CRC cut off. */
  size_t cuts[] = { 100, HDR - 1, HDR, HDR + 10, len - 1 };
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    spit (path, good, cuts[i]);
    assert_non_null (strstr (judge (size, 3), "corrupt file"));
  }
  /* Extra byte at the end. */
  memcpy (f, good, len);
  uint8_t *g = realloc (f, len + 1);
  assert_non_null (g);
  f = g;
  f[len] = 0;
  spit (path, f, len + 1);
  assert_non_null (strstr (judge (size, 3), "corrupt file"));
  /* Flipped bytes: every header field and a stamp, CRCs left as they are. */
  size_t flips[] = { 8, 12, 16, 20, 24, 32, 40, 48, 52, 56, 71, 72, 100,
                     4095 };
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    memcpy (f, good, len);
    f[flips[i]] ^= 0x01;
    spit (path, f, len);
    const char *why = judge (size, 3);
    if (flips[i] == 8)
      assert_non_null (strstr (why, "unsupported change tracking format "
                               "version 0"));
    else
      assert_string_equal (why, "header checksum mismatch (the file is "
                           "damaged)");
  }
  memcpy (f, good, len);
  f[HDR + 4 * 5] ^= 0x01;
  spit (path, f, len);
  assert_string_equal (judge (size, 3),
                       "block table checksum mismatch (the file is damaged)");
  memcpy (f, good, len);
  f[len - 2] ^= 0x80;
  spit (path, f, len);
  assert_string_equal (judge (size, 3),
                       "block table checksum mismatch (the file is damaged)");
  free (good);
  free (f);
}

/* Header fields that pass the CRC but disagree with each other. */
static void
test_inconsistent_header (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 8 * B;
  assert_int_equal (ctk_create (path, size, 3, &e), 0);
  size_t len;
  uint8_t *good = slurp (path, &len);
  uint8_t *f = malloc (len);
  struct { size_t off; int width; uint64_t v; const char *why; } cases[] = {
    { 8, 4, 2, "unsupported change tracking format version 2" },
    { 12, 4, 2, "unknown flags" },
    { 16, 4, 4096, "block size" },
    { 20, 4, 8192, "header size" },
    { 24, 8, size + B, "8 blocks for a disk of 589824 bytes (expected 9)" },
    { 24, 8, UINT64_MAX, "exceeds the limit" },
    { 24, 8, VDISK_MAX_SIZE + 1, "exceeds the limit" },
    { 32, 8, 9, "9 blocks for a disk" },
    { 32, 8, UINT64_MAX / 4, "blocks for a disk" },
    { 40, 8, (uint64_t) UINT32_MAX + 1, "sequence number" },
    { 52, 4, 1, "reserved bytes" },
    { 200, 4, 1, "reserved bytes" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memcpy (f, good, len);
    if (cases[i].width == 4)
      le32_put (f + cases[i].off, (uint32_t) cases[i].v);
    else
      le64_put (f + cases[i].off, cases[i].v);
    fix_header_crc (f);
    spit (path, f, len);
    const char *why = judge (size, 3);
    if (!strstr (why, cases[i].why))
      fail_msg ("case %zu: '%s' lacks '%s'", i, why, cases[i].why);
  }
  /* Consistent header describing a bigger disk than the file holds. */
  memcpy (f, good, len);
  le64_put (f + 24, 9 * B);
  le64_put (f + 32, 9);
  fix_header_crc (f);
  spit (path, f, len);
  assert_non_null (strstr (judge (9 * B, 3), "corrupt file"));
  /* A stamp from the future (table CRC fixed up). */
  memcpy (f, good, len);
  le32_put (f + HDR + 4 * 2, 1);   /* seq is 0 */
  fix_table_crc (f, len);
  spit (path, f, len);
  assert_non_null (strstr (judge (size, 3), "corrupt block table"));
  free (good);
  free (f);
}

/* Writable open of a damaged tracker resets it to a new epoch. */
static void
test_reset_on_writable_open (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 8 * B;
  assert_int_equal (ctk_create (path, size, 3, &e), 0);
  char old[128];
  current_id (size, 3, old, sizeof old);
  uint64_t r[] = { 0, 8 * B };
  session (size, 3, 3, r, 1);
  size_t len;
  uint8_t *f = slurp (path, &len);
  f[HDR + 1] ^= 0xff;
  spit (path, f, len);
  free (f);
  assert_non_null (strstr (judge (size, 3), "checksum"));
  struct ctk *c;
  assert_int_equal (ctk_open (path, size, 3, true, &c, &e), 0);
  assert_true (ctk_valid (c, NULL));
  struct vdisk_extent_list l = { 0 };
  assert_int_equal (ctk_query (c, old, 0, &l, &e), -ESTALE);
  assert_non_null (strstr (e.msg, "belongs to an earlier change tracking "
                           "epoch of this disk"));
  assert_int_equal (ctk_close (c, 3, &e), 0);
  assert_string_equal (judge (size, 3), "");
}

/* Read-only opens, and writable opens without writes, change nothing. */
static void
test_no_write_without_session (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 8 * B;
  assert_int_equal (ctk_create (path, size, 3, &e), 0);
  size_t len1, len2;
  uint8_t *a = slurp (path, &len1);
  struct stat st1, st2;
  assert_int_equal (stat (path, &st1), 0);
  struct ctk *c;
  assert_int_equal (ctk_open (path, size, 3, false, &c, &e), 0);
  ctk_mark (c, 0, B);   /* ignored: read only */
  assert_int_equal (ctk_begin_write (c, &e), -EROFS);
  assert_int_equal (ctk_close (c, 99, &e), 0);
  e = (struct vb_error) { 0 };
  assert_int_equal (ctk_open (path, size, 3, true, &c, &e), 0);
  assert_int_equal (ctk_close (c, 3, &e), 0);
  assert_int_equal (stat (path, &st2), 0);
  assert_int_equal (st1.st_ino, st2.st_ino);
  uint8_t *b = slurp (path, &len2);
  assert_int_equal (len1, len2);
  assert_memory_equal (a, b, len1);
  free (a);
  free (b);
}

/* ctk_mark without ctk_begin_write (a core bug) must not leave a valid
 * tracker that missed the write. */
static void
test_mark_without_begin (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 8 * B;
  assert_int_equal (ctk_create (path, size, 3, &e), 0);
  struct ctk *c;
  assert_int_equal (ctk_open (path, size, 3, true, &c, &e), 0);
  ctk_mark (c, B, 1);
  assert_int_equal (ctk_close (c, 3, &e), 0);
  assert_string_not_equal (judge (size, 3), "");
}

/* Stamps are u32: at seq UINT32_MAX a new session starts a new epoch. */
static void
test_seq_overflow (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 8 * B;
  assert_int_equal (ctk_create (path, size, 3, &e), 0);
  size_t len;
  uint8_t *f = slurp (path, &len);
  le64_put (f + 40, UINT32_MAX);
  le32_put (f + HDR + 4, UINT32_MAX);   /* block 1 written last session */
  fix_header_crc (f);
  fix_table_crc (f, len);
  spit (path, f, len);
  free (f);
  char old[128], prev[128];
  current_id (size, 3, old, sizeof old);
  assert_non_null (strstr (old, "/4294967295"));
  snprintf (prev, sizeof prev, "%.36s/4294967294", old);
  struct vdisk_extent_list l = { 0 };
  assert_int_equal (query (size, 3, prev, 0, &l, &e), 0);
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, B);
  vdisk_extent_list_free (&l);

  uint64_t r[] = { 2 * B, 1 };
  session (size, 3, 3, r, 1);
  char now[128];
  current_id (size, 3, now, sizeof now);
  assert_memory_not_equal (now, old, 36);
  assert_string_equal (now + 36, "/1");
  e = (struct vb_error) { 0 };
  assert_int_equal (query (size, 3, old, 0, &l, &e), -ESTALE);
  assert_non_null (strstr (e.msg, "earlier change tracking epoch"));
  snprintf (prev, sizeof prev, "%.36s/0", now);
  assert_int_equal (query (size, 3, prev, 0, &l, &e), 0);
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, 2 * B);
  vdisk_extent_list_free (&l);
}

/* Malformed, foreign and future changeIds. */
static void
test_change_id_parsing (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 8 * B;
  assert_int_equal (ctk_create (path, size, 3, &e), 0);
  char id[128];
  current_id (size, 3, id, sizeof id);
  assert_int_equal (strlen (id), 38);
  char u[37];
  uint64_t seq = 99;
  assert_int_equal (ctk_parse_change_id (id, u, &seq), 0);
  assert_int_equal (seq, 0);
  assert_memory_equal (u, id, 36);

  /* Uppercase uuid is the same changeId. */
  char up[128];
  for (size_t i = 0; i <= strlen (id); i++)
    up[i] = (char) (id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
  struct vdisk_extent_list l = { 0 };
  assert_int_equal (query (size, 3, up, 0, &l, &e), 0);

  char bad[16][128];
  int n = 0;
  snprintf (bad[n++], 128, "%s", "");
  snprintf (bad[n++], 128, "%s", "*");
  snprintf (bad[n++], 128, "%s", "hello");
  snprintf (bad[n++], 128, "%.36s", id);            /* no seq */
  snprintf (bad[n++], 128, "%.36s/", id);
  snprintf (bad[n++], 128, "%.36s/-1", id);
  snprintf (bad[n++], 128, "%.36s/+1", id);
  snprintf (bad[n++], 128, "%.36s/ 1", id);
  snprintf (bad[n++], 128, "%.36s/1x", id);
  snprintf (bad[n++], 128, "%.36s/18446744073709551616", id);
  snprintf (bad[n++], 128, "%.36s/1/2", id);
  snprintf (bad[n++], 128, "%.35s/0", id);          /* short uuid */
  snprintf (bad[n++], 128, "%.35sg/0", id);         /* non-hex */
  snprintf (bad[n++], 128, "%.8sx%.27s/0", id, id + 9);  /* dash missing */
  snprintf (bad[n++], 128, "{%.36s}/0", id);
  for (int i = 0; i < n; i++) {
    e = (struct vb_error) { 0 };
    if (query (size, 3, bad[i], 0, &l, &e) != -EINVAL)
      fail_msg ("changeId '%s' not rejected as malformed", bad[i]);
  }
  assert_int_equal (ctk_parse_change_id (NULL, u, &seq), -EINVAL);
  snprintf (bad[0], 128, "%.36s/18446744073709551615", id);
  assert_int_equal (ctk_parse_change_id (bad[0], u, &seq), 0);
  assert_true (seq == UINT64_MAX);

  /* Well formed but not ours: other uuid, future seq. */
  e = (struct vb_error) { 0 };
  assert_int_equal (query (size, 3, "00000000-0000-0000-0000-000000000000/0",
                           0, &l, &e), -ESTALE);
  assert_non_null (strstr (e.msg, "earlier change tracking epoch"));
  snprintf (bad[0], 128, "%.36s/1", id);
  e = (struct vb_error) { 0 };
  assert_int_equal (query (size, 3, bad[0], 0, &l, &e), -ESTALE);
  assert_non_null (strstr (e.msg, "newer"));
  assert_int_equal (l.n, 0);
}

/* start offset: extents start at the block containing start, the first
 * clipped to start, the last to the disk size. */
static void
test_start_offset (void **state)
{
  struct vb_error e = { 0 };
  const uint64_t size = 10 * B + 1000;   /* block 10 holds 1000 bytes */
  assert_int_equal (ctk_create (path, size, 3, &e), 0);
  char id[128];
  current_id (size, 3, id, sizeof id);
  uint64_t r[] = { 2 * B + 5, 2 * B, 7 * B, 1, size - 1, 1 };
  session (size, 3, 3, r, 3);   /* blocks 2,3,4  7  10 */

  struct vdisk_extent_list l = { 0 };
  assert_int_equal (query (size, 3, id, 0, &l, &e), 0);
  assert_int_equal (l.n, 3);
  assert_int_equal (l.v[0].offset, 2 * B);
  assert_int_equal (l.v[0].length, 3 * B);
  assert_int_equal (l.v[1].offset, 7 * B);
  assert_int_equal (l.v[1].length, B);
  assert_int_equal (l.v[2].offset, 10 * B);
  assert_int_equal (l.v[2].length, 1000);
  vdisk_extent_list_free (&l);

  assert_int_equal (query (size, 3, id, 3 * B + 100, &l, &e), 0);
  assert_int_equal (l.n, 3);
  assert_int_equal (l.v[0].offset, 3 * B + 100);
  assert_int_equal (l.v[0].length, 2 * B - 100);
  vdisk_extent_list_free (&l);

  assert_int_equal (query (size, 3, id, 5 * B, &l, &e), 0);
  assert_int_equal (l.n, 2);
  assert_int_equal (l.v[0].offset, 7 * B);
  vdisk_extent_list_free (&l);

  assert_int_equal (query (size, 3, id, size - 10, &l, &e), 0);
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, size - 10);
  assert_int_equal (l.v[0].length, 10);
  vdisk_extent_list_free (&l);

  assert_int_equal (query (size, 3, id, size, &l, &e), 0);
  assert_int_equal (l.n, 0);
  assert_int_equal (query (size, 3, id, size + 1, &l, &e), -EINVAL);

  /* Marks past the end are clipped, not a crash. */
  uint64_t r2[] = { size - 1, UINT64_MAX, size + 5 * B, B };
  char id2[128];
  current_id (size, 3, id2, sizeof id2);
  session (size, 3, 3, r2, 2);
  assert_int_equal (query (size, 3, id2, 0, &l, &e), 0);
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, 10 * B);
  assert_int_equal (l.v[0].length, 1000);
  vdisk_extent_list_free (&l);
}

/* An empty disk and a big one (memory is exactly the table). */
static void
test_sizes (void **state)
{
  struct vb_error e = { 0 };
  assert_int_equal (ctk_create (path, 0, 1, &e), 0);
  assert_string_equal (judge (0, 1), "");
  char id[128];
  current_id (0, 1, id, sizeof id);
  struct vdisk_extent_list l = { 0 };
  assert_int_equal (query (0, 1, id, 0, &l, &e), 0);
  assert_int_equal (l.n, 0);

  const uint64_t big = (uint64_t) 64 << 30;   /* 1 Mi blocks, 4 MiB table */
  assert_int_equal (ctk_create (path, big, 1, &e), 0);
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_size, HDR + 4 * (big / B) + 4);
  current_id (big, 1, id, sizeof id);
  uint64_t r[] = { big - 1, 1, 0, 1 };
  session (big, 1, 1, r, 2);
  assert_int_equal (query (big, 1, id, 0, &l, &e), 0);
  assert_int_equal (l.n, 2);
  assert_int_equal (l.v[1].offset, big - B);
  vdisk_extent_list_free (&l);

  e = (struct vb_error) { 0 };
  assert_int_equal (ctk_create (path, VDISK_MAX_SIZE + 1, 1, &e), -EFBIG);
  assert_non_null (strstr (e.msg, path));
  struct ctk *c = (struct ctk *) &e;
  assert_int_equal (ctk_open (path, VDISK_MAX_SIZE + 1, 1, true, &c, NULL),
                    -EFBIG);
  assert_null (c);
}

/* vdisk_extent_list_add merges with the last element only. */
static void
test_extent_list (void **state)
{
  struct vdisk_extent_list l = { 0 };
  assert_int_equal (vdisk_extent_list_add (&l, 100, 0), 0);   /* no-op */
  assert_int_equal (l.n, 0);
  assert_int_equal (vdisk_extent_list_add (&l, 0, 10), 0);
  assert_int_equal (vdisk_extent_list_add (&l, 10, 5), 0);    /* adjacent */
  assert_int_equal (vdisk_extent_list_add (&l, 12, 10), 0);   /* overlap */
  assert_int_equal (vdisk_extent_list_add (&l, 3, 2), 0);     /* inside */
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, 0);
  assert_int_equal (l.v[0].length, 22);
  assert_int_equal (vdisk_extent_list_add (&l, 23, 1), 0);    /* gap of 1 */
  assert_int_equal (l.n, 2);
  assert_int_equal (vdisk_extent_list_add (&l, 20, 3), 0);    /* bridges? */
  /* merges with the last only: [20,23) touches [23,24) */
  assert_int_equal (l.n, 2);
  assert_int_equal (l.v[1].offset, 20);
  assert_int_equal (l.v[1].length, 4);
  assert_int_equal (vdisk_extent_list_add (&l, UINT64_MAX, 2), -EOVERFLOW);
  vdisk_extent_list_free (&l);
  assert_null (l.v);
  assert_int_equal (l.n, 0);

  /* Growth: many disjoint extents, capacity stays geometric. */
  for (uint64_t i = 0; i < 100000; i++)
    assert_int_equal (vdisk_extent_list_add (&l, i * 10, 5), 0);
  assert_int_equal (l.n, 100000);
  assert_true (l.cap >= l.n && l.cap < 2 * l.n + 16);
  for (size_t i = 0; i < l.n; i++)
    if (l.v[i].offset != i * 10 || l.v[i].length != 5)
      fail_msg ("element %zu wrong", i);
  vdisk_extent_list_free (&l);
  vdisk_extent_list_free (&l);   /* twice is fine */
}

static void
test_default_path (void **state)
{
  struct { const char *in, *out; } t[] = {
    { "dir/NAME.vmdk", "dir/NAME-ctk.vmdk" },
    { "/a/b/disk-000001.vmdk", "/a/b/disk-000001-ctk.vmdk" },
    { "x.VMDK", "x-ctk.vmdk" },
    { "disk.img", "disk.img-ctk.vmdk" },
    { "noext", "noext-ctk.vmdk" },
    { "d.vmdk/file", "d.vmdk/file-ctk.vmdk" },
    { ".vmdk", ".vmdk-ctk.vmdk" },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char *p = ctk_default_path (t[i].in);
    assert_string_equal (p, t[i].out);
    free (p);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup (test_random_sessions, setup),
    cmocka_unit_test_setup (test_before_after, setup),
    cmocka_unit_test_setup (test_crash_dirty, setup),
    cmocka_unit_test_setup (test_cid_and_size_mismatch, setup),
    cmocka_unit_test_setup (test_missing, setup),
    cmocka_unit_test_setup (test_unreadable, setup),
    cmocka_unit_test_setup (test_damaged_files, setup),
    cmocka_unit_test_setup (test_inconsistent_header, setup),
    cmocka_unit_test_setup (test_reset_on_writable_open, setup),
    cmocka_unit_test_setup (test_no_write_without_session, setup),
    cmocka_unit_test_setup (test_mark_without_begin, setup),
    cmocka_unit_test_setup (test_seq_overflow, setup),
    cmocka_unit_test_setup (test_change_id_parsing, setup),
    cmocka_unit_test_setup (test_start_offset, setup),
    cmocka_unit_test_setup (test_sizes, setup),
    cmocka_unit_test (test_extent_list),
    cmocka_unit_test (test_default_path),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
