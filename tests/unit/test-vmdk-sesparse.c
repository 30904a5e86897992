/* Unit tests of the seSparse extent driver (read only), driven through its
 * ops table directly.  Samples come from tests/data-gen/mk-sesparse.py;
 * qemu-img's reader of the same samples is the interop reference. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/vdisk-int.h"

static const struct vdisk_extent_ops *ops = &vdisk_sesparse_ops;
static char dir[64];
static char gen[4096];          /* path of mk-sesparse.py, "" if not found */

#define MB (1024 * 1024)

static const char *
tpath (const char *name)
{
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf (buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static int
sh (const char *fmt, ...)
{
  char cmd[4096];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (cmd, sizeof cmd, fmt, ap);
  va_end (ap);
  int r = system (cmd);
  return WIFEXITED (r) ? WEXITSTATUS (r) : -1;
}

static bool
have_qemu (void)
{
  return sh ("qemu-img --version >/dev/null 2>&1") == 0
    && sh ("qemu-io --version >/dev/null 2>&1") == 0;
}

/* Find the generator: $VMBACK_SRCDIR, then relative to this source file
 * (meson compiles it by a path relative to the build directory), then
 * the usual places relative to the working directory. */
static void
find_generator (void)
{
  const char *rel = "tests/data-gen/mk-sesparse.py";
  char cand[6][4096];
  int n = 0;
  const char *src = getenv ("VMBACK_SRCDIR");
  if (src)
    snprintf (cand[n++], sizeof cand[0], "%s/%s", src, rel);
  const char *f = __FILE__, *u = strstr (f, "tests/unit/");
  if (u)
    snprintf (cand[n++], sizeof cand[0], "%.*s%s", (int) (u - f), f, rel);
  snprintf (cand[n++], sizeof cand[0], "%s", rel);
  snprintf (cand[n++], sizeof cand[0], "../%s", rel);
  snprintf (cand[n++], sizeof cand[0], "../../%s", rel);
  for (int i = 0; i < n; i++)
    if (access (cand[i], R_OK) == 0) {
      if (realpath (cand[i], gen) == NULL)
        snprintf (gen, sizeof gen, "%s", cand[i]);
      return;
    }
  gen[0] = '\0';
}

static bool
have_gen (void)
{
  return gen[0] && sh ("python3 --version >/dev/null 2>&1") == 0;
}

#define REQUIRE_GEN()                                                   \
  do {                                                                  \
    if (!have_gen ()) {                                                 \
      printf ("note: python3 or %s missing, test skipped\n",           \
              "tests/data-gen/mk-sesparse.py");                         \
      skip ();                                                          \
    }                                                                   \
  } while (0)

static int
ext_open (struct vdisk_extent *x, const char *path, bool rw, uint64_t length,
          struct vb_error *err)
{
  memset (x, 0, sizeof *x);
  x->ops = ops;
  x->path = (char *) path;
  x->name = (char *) path;
  x->writable = rw;
  x->length = length;
  x->fd = open (path, O_RDONLY);
  if (x->fd < 0)
    return -errno;
  int r = ops->open (x, err);
  if (r < 0) {
    close (x->fd);
    x->fd = -1;
  }
  return r;
}

static void
ext_close (struct vdisk_extent *x)
{
  struct vb_error err = { 0 };
  assert_int_equal (ops->close (x, &err), 0);
  close (x->fd);
}

/* Read the extent like the core: data runs from the extent, zero runs as
 * zeros, unallocated runs from `parent` (NULL = zeros).  *st_out (if
 * non-NULL) gets the status of every 4 KiB grain. */
static uint8_t *
read_all (struct vdisk_extent *x, const uint8_t *parent, uint8_t *st_out)
{
  uint8_t *b = malloc (x->length);
  assert_non_null (b);
  uint64_t off = 0;
  while (off < x->length) {
    uint64_t pnum = 0;
    struct vb_error err = { 0 };
    int st = ops->status (x, off, x->length - off, &pnum, &err);
    if (st < 0)
      fail_msg ("status at %llu: %s", (unsigned long long) off, err.msg);
    assert_true (pnum > 0 && pnum <= x->length - off);
    if (st == EXT_DATA)
      assert_int_equal (ops->pread (x, b + off, pnum, off, &err), 0);
    else if (st == EXT_UNALLOC && parent)
      memcpy (b + off, parent + off, pnum);
    else
      memset (b + off, 0, pnum);
    if (st_out)
      for (uint64_t g = off / 4096; g < (off + pnum + 4095) / 4096; g++)
        st_out[g] = (uint8_t) st;
    off += pnum;
  }
  return b;
}

static int
setup (void **state)
{
  strcpy (dir, "/tmp/vmback-sesparse-XXXXXX");
  assert_non_null (mkdtemp (dir));
  find_generator ();
  return 0;
}

static int
teardown (void **state)
{
  sh ("rm -rf '%s'", dir);
  return 0;
}

static void
write_file (const char *p, const void *b, size_t n)
{
  int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (vio_pwrite (fd, b, n, 0), 0);
  close (fd);
}

static uint8_t *
read_file (const char *p, size_t n)
{
  uint8_t *b = malloc (n);
  assert_non_null (b);
  int fd = open (p, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (vio_pread (fd, b, n, 0), 0);
  close (fd);
  return b;
}

/* A raw image with holes, runs crossing grains and grain tables, single
 * bytes, and data in the last (partial) grain. */
static uint8_t *
make_raw (size_t len, unsigned seed)
{
  uint8_t *b = calloc (1, len);
  assert_non_null (b);
  srand (seed);
  for (int i = 0; i < 200; i++) {
    size_t off = (size_t) rand () % len, n = 1 + (size_t) rand () % 20000;
    if (off + n > len)
      n = len - off;
    memset (b + off, 1 + rand () % 255, n);
  }
  memset (b + 16 * MB - 5000, 0x5a, 10000);     /* across tables 0 and 1 */
  b[len - 1] = 0x77;
  return b;
}

/* Generator output read by us and by qemu-img equals the source. */
static void
test_generated_roundtrip (void **state)
{
  REQUIRE_GEN ();
  size_t len = 40 * MB + 3 * 512;               /* last grain partial */
  uint8_t *raw = make_raw (len, 1);
  write_file (tpath ("a.raw"), raw, len);
  assert_int_equal (sh ("python3 '%s' --shuffle 7 --slot-base 5000 '%s' '%s'",
                        gen, tpath ("a.raw"), tpath ("a.vmdk")), 0);

  struct vb_error err = { 0 };
  struct vdisk_extent x;
  assert_int_equal (ext_open (&x, tpath ("a-sesparse.vmdk"), false, len,
                              &err), 0);
  assert_int_equal (x.grain, 4096);
  uint8_t *st = calloc (len / 4096 + 1, 1);
  uint8_t *got = read_all (&x, NULL, st);
  assert_memory_equal (got, raw, len);
  /* exactly the non-zero grains are allocated */
  uint64_t n_data = 0;
  for (size_t g = 0; g * 4096 < len; g++) {
    size_t n = len - g * 4096 < 4096 ? len - g * 4096 : 4096;
    bool zero = vio_is_zero (raw + g * 4096, n);
    assert_int_equal (st[g], zero ? EXT_UNALLOC : EXT_DATA);
    n_data += !zero;
  }
  assert_int_equal (ops->check (&x, false, NULL, NULL, &err), 0);
  /* grains sit after 5000 unused slots: file bytes of the region = slots */
  assert_int_equal (ops->allocated (&x), (n_data + 5000) * 4096);
  /* unaligned read across grains */
  uint8_t buf[10000];
  assert_int_equal (ops->pread (&x, buf, sizeof buf, 16 * MB - 4999, &err),
                    0);
  assert_memory_equal (buf, raw + 16 * MB - 4999, sizeof buf);
  ext_close (&x);

  /* length 0: taken from the header capacity */
  assert_int_equal (ext_open (&x, tpath ("a-sesparse.vmdk"), false, 0, &err),
                    0);
  assert_int_equal (x.length, len);
  ext_close (&x);

  if (have_qemu ()) {
    assert_int_equal (sh ("qemu-img convert -O raw '%s' '%s'",
                          tpath ("a.vmdk"), tpath ("a-qemu.raw")), 0);
    uint8_t *q = read_file (tpath ("a-qemu.raw"), len);
    assert_memory_equal (q, raw, len);
    free (q);
  } else {
    printf ("note: qemu-img missing, interop check skipped\n");
  }
  free (got);
  free (st);
  free (raw);
}

/* Zero and unmapped grains hide the parent; unallocated ones show it. */
static void
test_zero_grains_over_parent (void **state)
{
  REQUIRE_GEN ();
  if (!have_qemu ()) {
    printf ("note: qemu-img missing, test skipped\n");
    skip ();
  }
  size_t len = 40 * MB;
  uint8_t *raw = calloc (1, len);
  memset (raw + 1 * MB, 0xab, 64 * 1024);       /* table 0 */
  memset (raw + 1 * MB + 128 * 1024, 0xcd, 4096);
  memset (raw + 33 * MB, 0xef, 8192);           /* table 2 */
  write_file (tpath ("z.raw"), raw, len);
  assert_int_equal (sh ("qemu-img create -q -f vmdk -o "
                        "subformat=monolithicFlat '%s' %zu",
                        tpath ("zp.vmdk"), len), 0);
  assert_int_equal (sh ("qemu-io -c 'write -P 0x11 0 %zu' '%s' >/dev/null",
                        len, tpath ("zp.vmdk")), 0);
  assert_int_equal (sh ("cd '%s' && python3 '%s' --zero-grains --parent "
                        "zp.vmdk z.raw z.vmdk", dir, gen), 0);
  uint8_t *parent = malloc (len);
  memset (parent, 0x11, len);

  /* expected: data where raw has data; zeros in tables 0 and 2 (zero
   * grains); parent in table 1 (no table) */
  uint8_t *want = malloc (len);
  memcpy (want, raw, len);
  memset (want + 16 * MB, 0x11, 16 * MB);

  struct vb_error err = { 0 };
  struct vdisk_extent x;
  assert_int_equal (ext_open (&x, tpath ("z-sesparse.vmdk"), false, len,
                              &err), 0);
  uint8_t *st = calloc (len / 4096, 1);
  uint8_t *got = read_all (&x, parent, st);
  assert_memory_equal (got, want, len);
  assert_int_equal (st[0], EXT_ZERO);
  assert_int_equal (st[1 * MB / 4096], EXT_DATA);
  assert_int_equal (st[1 * MB / 4096 + 16], EXT_ZERO);
  assert_int_equal (st[1 * MB / 4096 + 32], EXT_DATA);
  assert_int_equal (st[20 * MB / 4096], EXT_UNALLOC);
  assert_int_equal (st[33 * MB / 4096 + 2], EXT_ZERO);
  ext_close (&x);

  assert_int_equal (sh ("qemu-img convert -O raw '%s' '%s'",
                        tpath ("z.vmdk"), tpath ("z-qemu.raw")), 0);
  uint8_t *q = read_file (tpath ("z-qemu.raw"), len);
  assert_memory_equal (q, want, len);
  free (q);
  free (got);
  free (st);
  free (want);
  free (parent);
  free (raw);
}

/* The sample for the corruption tests: 20 MiB, grains in tables 0 and 1. */
static uint8_t *sample;
static size_t sample_len;

static const char *
make_sample (const char *name)
{
  const char *p = tpath (name);
  if (sample == NULL) {
    size_t len = 20 * MB;
    uint8_t *raw = make_raw (len, 2);
    write_file (tpath ("s.raw"), raw, len);
    free (raw);
    assert_int_equal (sh ("python3 '%s' --shuffle 1 --slot-base 4100 '%s' "
                          "'%s'", gen, tpath ("s.raw"), tpath ("s.vmdk")), 0);
    struct stat stt;
    assert_int_equal (stat (tpath ("s-sesparse.vmdk"), &stt), 0);
    sample_len = (size_t) stt.st_size;
    sample = read_file (tpath ("s-sesparse.vmdk"), sample_len);
  }
  write_file (p, sample, sample_len);
  return p;
}

static void
poke64 (const char *p, uint64_t off, uint64_t v)
{
  uint8_t b[8];
  le64_put (b, v);
  int fd = open (p, O_RDWR);
  assert_int_equal (vio_pwrite (fd, b, 8, off), 0);
  close (fd);
}

static uint64_t
peek64 (const char *p, uint64_t off)
{
  uint8_t b[8];
  int fd = open (p, O_RDONLY);
  assert_int_equal (vio_pread (fd, b, 8, off), 0);
  close (fd);
  return le64_get (b);
}

static void
expect_open_fail (const char *p, const char *want)
{
  struct vb_error err = { 0 };
  struct vdisk_extent x;
  int r = ext_open (&x, p, false, 0, &err);
  if (r == 0)
    fail_msg ("open of corrupt file succeeded (want '%s')", want);
  assert_true (err.code > 0);
  if (strstr (err.msg, want) == NULL)
    fail_msg ("message '%s' does not contain '%s'", err.msg, want);
}

/* Every const and volatile header field is checked on its own. */
static void
test_corrupt_headers (void **state)
{
  REQUIRE_GEN ();
  struct { uint64_t off, val; const char *msg; } cases[] = {
    { 0, 0xcafebabf, "bad seSparse const header magic" },
    { 8, 0x200000002, "unsupported seSparse version" },
    { 16, 0, "bad seSparse capacity 0" },
    { 16, UINT64_C (1) << 40, "bad seSparse capacity" },
    { 24, 0, "unsupported seSparse grain size 0" },
    { 24, 16, "unsupported seSparse grain size 16" },
    { 24, UINT64_MAX, "unsupported seSparse grain size" },
    { 32, 128, "unsupported seSparse grain table size 128" },
    { 40, 1, "unsupported seSparse flags" },
    { 48, 1, "reserved field 1" },
    { 72, 5, "reserved field 4" },
    { 300, 1, "const header padding" },
    { 80, 0, "volatile header of" },                 /* offset 0 */
    { 80, UINT64_C (1) << 40, "volatile header" },   /* past EOF */
    { 88, 0, "volatile header of" },
    { 128, UINT64_C (1) << 60, "grain directory of" },  /* out of range */
    { 128, 1000000, "grain directory of" },             /* past EOF */
    { 136, 0, "grain directory of" },                   /* too small */
    { 128, 0, "overlaps the const header" },
    { 144, 4096, "overlap" },                           /* GTs on GD */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *p = make_sample ("c-sesparse.vmdk");
    poke64 (p, cases[i].off, cases[i].val);
    expect_open_fail (p, cases[i].msg);
  }
  /* capacity smaller than the descriptor's extent */
  const char *p = make_sample ("c-sesparse.vmdk");
  struct vb_error err = { 0 };
  struct vdisk_extent x;
  assert_int_equal (ext_open (&x, p, false, 21 * MB, &err), -EINVAL);
  assert_non_null (strstr (err.msg, "smaller than its extent"));

  /* volatile header at sector 1 */
  struct { uint64_t off, val; const char *msg; } vcases[] = {
    { 512, 0xcafecaff, "bad seSparse volatile header magic" },
    { 512 + 24, 1, "dirty" },
    { 512 + 100, 3, "volatile header padding" },
  };
  for (size_t i = 0; i < sizeof vcases / sizeof vcases[0]; i++) {
    p = make_sample ("v-sesparse.vmdk");
    poke64 (p, vcases[i].off, vcases[i].val);
    expect_open_fail (p, vcases[i].msg);
  }
  /* truncated */
  p = make_sample ("t-sesparse.vmdk");
  assert_int_equal (truncate (p, 300), 0);
  expect_open_fail (p, "too small for a seSparse header");
  p = make_sample ("t2-sesparse.vmdk");
  assert_int_equal (truncate (p, 4096 * 512 + 8), 0);
  expect_open_fail (p, "grain directory of");
}

/* Bad directory and table entries. */
static void
test_corrupt_tables (void **state)
{
  REQUIRE_GEN ();
  const char *p = make_sample ("g-sesparse.vmdk");
  uint64_t gd = peek64 (p, 128) * 512, gts = peek64 (p, 144) * 512;
  uint64_t gde0 = peek64 (p, gd);
  assert_int_equal (gde0 >> 32, 0x10000000);

  poke64 (p, gd, 0x2000000000000000);
  expect_open_fail (p, "bad grain directory entry 0");
  p = make_sample ("g-sesparse.vmdk");
  poke64 (p, gd + 8, 0x1000000000000000 | 2);         /* 2 slots only */
  expect_open_fail (p, "past the grain table region");
  /* grain table 1 cut off by a truncation */
  p = make_sample ("g-sesparse.vmdk");
  assert_int_equal (truncate (p, (off_t) (gts + 32768 + 100)), 0);
  expect_open_fail (p, "grain table 1 of");

  /* table entries: found through the grain of table 0 at 16 MiB - 5000 */
  uint64_t t0 = gts + (gde0 & 0xffffffff) * 32768;
  uint64_t e_idx = (16 * MB - 5000) / 4096;            /* allocated */
  struct { uint64_t val; int want; const char *msg; } cases[] = {
    { 0x4000000000000000, -EIO, "bad grain table entry" },
    { 0x0000000000000005, -EIO, "bad grain table entry" },
    { 0x3000000000000000 | (UINT64_C (1) << 40), -EIO, "past the grain "
      "region" },
    { 0x1000000000000000, EXT_ZERO, NULL },
    { 0x2000000000000000, EXT_ZERO, NULL },
    { 0, EXT_UNALLOC, NULL },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    p = make_sample ("e-sesparse.vmdk");
    poke64 (p, t0 + e_idx * 8, cases[i].val);
    struct vb_error err = { 0 };
    struct vdisk_extent x;
    assert_int_equal (ext_open (&x, p, false, 0, &err), 0);
    uint64_t pnum;
    int r = ops->status (&x, e_idx * 4096, 4096, &pnum, &err);
    assert_int_equal (r, cases[i].want);
    if (cases[i].msg)
      assert_non_null (strstr (err.msg, cases[i].msg));
    uint8_t buf[4096];
    struct vb_error e2 = { 0 };
    r = ops->pread (&x, buf, sizeof buf, e_idx * 4096, &e2);
    assert_int_equal (r, cases[i].want < 0 ? cases[i].want : 0);
    if (cases[i].want == EXT_ZERO)
      assert_true (vio_is_zero (buf, sizeof buf));
    struct vb_error e3 = { 0 };
    int probs = ops->check (&x, false, NULL, NULL, &e3);
    assert_int_equal (probs, cases[i].want < 0 ? 1 : 0);
    ext_close (&x);
  }

  /* the file cut after the grain tables: grains are past EOF */
  p = make_sample ("cut-sesparse.vmdk");
  uint64_t grains = peek64 (p, 192) * 512;
  assert_int_equal (truncate (p, (off_t) grains + 4096 * 4100), 0);
  struct vb_error err = { 0 };
  struct vdisk_extent x;
  assert_int_equal (ext_open (&x, p, false, 0, &err), 0);
  uint64_t pnum;
  assert_int_equal (ops->status (&x, e_idx * 4096, 4096, &pnum, &err), -EIO);
  assert_non_null (strstr (err.msg, "past the end of the file"));
  ext_close (&x);

  /* two grains sharing one slot */
  p = make_sample ("dup-sesparse.vmdk");
  poke64 (p, t0 + (e_idx + 1) * 8, peek64 (p, t0 + e_idx * 8));
  assert_int_equal (ext_open (&x, p, false, 0, &err), 0);
  assert_int_equal (ops->check (&x, false, NULL, NULL, &err), 1);
  ext_close (&x);
}

/* Read only: a writable open is refused; probe recognises the magic. */
static void
test_readonly_probe (void **state)
{
  REQUIRE_GEN ();
  const char *p = make_sample ("ro-sesparse.vmdk");
  struct vb_error err = { 0 };
  struct vdisk_extent x;
  assert_int_equal (ext_open (&x, p, true, 0, &err), -EROFS);
  assert_non_null (strstr (err.msg, "read only"));
  assert_null (ops->pwrite);
  assert_int_equal (ops->probe (sample, 512), 100);
  assert_int_equal (ops->probe ((const uint8_t *) "COWD\1\0\0\0", 8), 0);
  assert_int_equal (ops->probe (sample, 4), 0);
}

/* Random damage never crashes. */
static void
test_fuzz (void **state)
{
  REQUIRE_GEN ();
  srand (99);
  make_sample ("f-sesparse.vmdk");
  uint64_t gd = le64_get (sample + 128) * 512;
  uint64_t gts = le64_get (sample + 144) * 512;
  for (int it = 0; it < 300; it++) {
    const char *p = make_sample ("f-sesparse.vmdk");
    int fd = open (p, O_RDWR);
    for (int k = 0; k < 1 + rand () % 4; k++) {
      uint64_t off;
      switch (rand () % 4) {
      case 0: off = (uint64_t) rand () % 512; break;
      case 1: off = 512 + (uint64_t) rand () % 512; break;
      case 2: off = gd + (uint64_t) rand () % 16; break;
      default: off = gts + (uint64_t) rand () % 65536; break;
      }
      uint8_t v = (uint8_t) rand ();
      assert_int_equal (vio_pwrite (fd, &v, 1, off), 0);
    }
    close (fd);
    struct vb_error err = { 0 };
    struct vdisk_extent x;
    if (ext_open (&x, p, false, 0, &err) < 0) {
      assert_true (err.code > 0 && err.msg[0] != '\0');
      continue;
    }
    uint8_t *b = malloc (1 << 16);
    uint64_t len = x.length < 64 * MB ? x.length : 64 * MB;
    for (uint64_t off = 0; off < len;) {
      uint64_t pnum = 0;
      struct vb_error e2 = { 0 };
      int st = ops->status (&x, off, len - off, &pnum, &e2);
      if (st < 0) {
        off += 4096;
        continue;
      }
      assert_true (pnum > 0 && pnum <= len - off);
      if (st == EXT_DATA)
        ops->pread (&x, b, pnum < (1 << 16) ? pnum : (1 << 16), off, &e2);
      off += pnum;
    }
    ops->check (&x, false, NULL, NULL, &err);
    ops->allocated (&x);
    free (b);
    ext_close (&x);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_generated_roundtrip),
    cmocka_unit_test (test_zero_grains_over_parent),
    cmocka_unit_test (test_corrupt_headers),
    cmocka_unit_test (test_corrupt_tables),
    cmocka_unit_test (test_readonly_probe),
    cmocka_unit_test (test_fuzz),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
