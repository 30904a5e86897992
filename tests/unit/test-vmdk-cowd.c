/* Unit tests of the vmfsSparse (COWD) extent driver, driven through its
 * ops table directly (no core), plus interop with qemu-img's reader. */
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

static const struct vdisk_extent_ops *ops = &vdisk_cowd_ops;
static char dir[64];

/* Path of a file in the test directory (static buffer rotation). */
static const char *
tpath (const char *name)
{
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf (buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static bool
have_qemu (void)
{
  return system ("qemu-img --version >/dev/null 2>&1") == 0
    && system ("qemu-io --version >/dev/null 2>&1") == 0;
}

/* Run a shell command, return its exit status. */
static int
sh (const char *fmt, ...)
{
  char cmd[2048];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (cmd, sizeof cmd, fmt, ap);
  va_end (ap);
  int r = system (cmd);
  return WIFEXITED (r) ? WEXITSTATUS (r) : -1;
}

/* Open extent file `path` with our driver; length 0 = from the header. */
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
  x->fd = open (path, rw ? O_RDWR : O_RDONLY);
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

/* Read the whole extent the way the core does (status, then pread on data
 * runs; zeros elsewhere).  Returns malloc'd bytes. */
static uint8_t *
read_all (struct vdisk_extent *x)
{
  uint8_t *b = malloc (x->length);
  assert_non_null (b);
  uint64_t off = 0;
  while (off < x->length) {
    uint64_t pnum = 0;
    struct vb_error err = { 0 };
    int st = ops->status (x, off, x->length - off, &pnum, &err);
    assert_true (st >= 0);
    assert_true (pnum > 0 && pnum <= x->length - off);
    if (st == EXT_DATA)
      assert_int_equal (ops->pread (x, b + off, pnum, off, &err), 0);
    else
      memset (b + off, 0, pnum);
    off += pnum;
  }
  return b;
}

static int
setup (void **state)
{
  strcpy (dir, "/tmp/vmback-cowd-XXXXXX");
  assert_non_null (mkdtemp (dir));
  return 0;
}

static int
teardown (void **state)
{
  sh ("rm -rf '%s'", dir);
  return 0;
}

static void
fill (uint8_t *b, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    b[i] = (uint8_t) ((i * 131 + seed * 7 + (i >> 9)) % 251 + 1);
}

static uint64_t
file_size (const char *p)
{
  struct stat st;
  assert_int_equal (stat (p, &st), 0);
  return (uint64_t) st.st_size;
}

static void
write_desc (const char *desc, const char *extent, uint64_t sectors,
            const char *parent)
{
  char cid[32] = "ffffffff";
  if (parent) {
    /* qemu checks parentCID against the parent's CID */
    char cmd[512];
    snprintf (cmd, sizeof cmd,
              "grep -a '^CID=' '%s' | cut -d= -f2 | tr -d ' \\0\\n'",
              tpath (parent));
    FILE *f = popen (cmd, "r");
    assert_non_null (f);
    assert_non_null (fgets (cid, sizeof cid, f));
    pclose (f);
  }
  FILE *f = fopen (tpath (desc), "w");
  assert_non_null (f);
  fprintf (f, "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\n"
           "CID=12345678\nparentCID=%s\n", cid);
  if (parent)
    fprintf (f, "parentFileNameHint=\"%s\"\n", parent);
  fprintf (f, "createType=\"vmfsSparse\"\n\n# Extent description\n"
           "RW %llu VMFSSPARSE \"%s\"\n\n# The Disk Data Base\n#DDB\n\n"
           "ddb.virtualHWVersion = \"14\"\n", (unsigned long long) sectors,
           extent);
  fclose (f);
}

/* Compare a qemu-img convert of desc with expected bytes. */
static void
qemu_compare (const char *desc, const uint8_t *want, size_t len)
{
  assert_int_equal (sh ("qemu-img convert -O raw '%s' '%s'", tpath (desc),
                        tpath ("qemu-out.raw")), 0);
  assert_int_equal (file_size (tpath ("qemu-out.raw")), len);
  FILE *f = fopen (tpath ("qemu-out.raw"), "rb");
  uint8_t *got = malloc (len);
  assert_non_null (got);
  assert_int_equal (fread (got, 1, len, f), len);
  fclose (f);
  assert_memory_equal (got, want, len);
  free (got);
  unlink (tpath ("qemu-out.raw"));
}

/* A fresh delta of a 12 GiB disk is the 28672 bytes ESXi makes, and
 * reads as entirely unallocated. */
static void
test_create_fresh (void **state)
{
  struct vb_error err = { 0 };
  struct ext_create c = { .sectors = 12ull << 21 };
  const char *p = tpath ("fresh-delta.vmdk");
  assert_int_equal (ops->create (p, &c, &err), 0);
  assert_int_equal (file_size (p), 28672);
  /* must not overwrite */
  struct vb_error e2 = { 0 };
  assert_int_equal (ops->create (p, &c, &e2), -EEXIST);

  struct vdisk_extent x;
  assert_int_equal (ext_open (&x, p, false, 0, &err), 0);
  assert_int_equal (x.length, 12ull << 30);
  assert_int_equal (x.grain, 512);
  uint64_t pnum = 0;
  assert_int_equal (ops->status (&x, 0, x.length, &pnum, &err), EXT_UNALLOC);
  assert_int_equal (pnum, x.length);
  assert_int_equal (ops->allocated (&x), 0);
  assert_int_equal (ops->check (&x, false, NULL, NULL, &err), 0);
  ext_close (&x);

  uint8_t h[512];
  int fd = open (p, O_RDONLY);
  assert_int_equal (vio_pread (fd, h, 512, 0), 0);
  close (fd);
  assert_memory_equal (h, "COWD", 4);
  assert_int_equal (le32_get (h + 4), 1);                 /* version */
  assert_int_equal (le32_get (h + 16), 1);                /* grain */
  assert_int_equal (le32_get (h + 20), 4);                /* gdOffset */
  assert_int_equal (le32_get (h + 24), 6144);             /* GD entries */
  assert_int_equal (le32_get (h + 28), 28672 / 512);      /* freeSector */

  /* too large for 32-bit sector numbers */
  c.sectors = 1ull << 32;
  assert_int_equal (ops->create (tpath ("big-delta.vmdk"), &c, &e2), -EINVAL);
  assert_int_equal (ops->probe (h, 512), 100);
  assert_int_equal (ops->probe ((const uint8_t *) "KDMV", 4), 0);
}

/* Write a pattern of holes, partial and whole grains, a span across two
 * grain tables, the last sector, and overwrites; check reads, status,
 * reopen, freeSector, qemu-img's view (alone and over a flat parent). */
static void
roundtrip (uint32_t grain, uint64_t sectors, const char *name,
           bool with_qemu)
{
  struct vb_error err = { 0 };
  struct ext_create c = { .sectors = sectors, .grain_sectors = grain };
  char ename[64], dname[64];
  snprintf (ename, sizeof ename, "%s-delta.vmdk", name);
  snprintf (dname, sizeof dname, "%s.vmdk", name);
  const char *p = tpath (ename);
  assert_int_equal (ops->create (p, &c, &err), 0);

  uint64_t len = sectors * 512, gb = (uint64_t) grain * 512;
  uint8_t *ref = calloc (1, len), *buf = malloc (4 << 20);
  bool *alloc = calloc (len / 512, 1);     /* per sector: written */
  assert_non_null (ref);
  assert_non_null (buf);

  struct vdisk_extent x;
  assert_int_equal (ext_open (&x, p, true, len, &err), 0);
  assert_int_equal (x.grain, gb);

  /* writes must cover whole grains where not yet allocated (core rule) */
  struct { uint64_t off, n; } w[] = {
    { 0, gb },                                   /* first grain */
    { 1 << 20, 64 << 10 },                       /* 64 KiB at 1 MiB */
    { (4096 * gb) - 3 * gb, 8 * gb },            /* across tables 0/1 */
    { 5 << 20, 1 << 20 },                        /* 1 MiB */
    { len - gb, gb },                            /* last grain */
    { (1 << 20) + 4096, 4096 },                  /* overwrite inside */
    { 2 * gb, 3 * gb },                          /* near the start */
  };
  for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
    uint64_t off = w[i].off / gb * gb, n = w[i].n;
    if (off + n > len)
      continue;
    fill (buf, n, (unsigned) i + 1);
    assert_int_equal (ops->pwrite (&x, buf, n, off, &err), 0);
    memcpy (ref + off, buf, n);
    for (uint64_t s = off / 512; s < (off + n) / 512; s++)
      alloc[s] = true;
  }
  /* overwrite of allocated data with a sub-grain piece: in place */
  uint64_t before = file_size (p);
  fill (buf, 100, 99);
  assert_int_equal (ops->pwrite (&x, buf, 100, (1 << 20) + 7, &err), 0);
  memcpy (ref + (1 << 20) + 7, buf, 100);
  assert_int_equal (file_size (p), before);
  uint64_t alloc_before = ops->allocated (&x);
  ext_close (&x);

  /* reopen read only: same bytes, status matches the written map */
  assert_int_equal (ext_open (&x, p, false, len, &err), 0);
  uint8_t *got = read_all (&x);
  assert_memory_equal (got, ref, len);
  free (got);
  for (uint64_t off = 0; off < len;) {
    uint64_t pnum = 0;
    int st = ops->status (&x, off, len - off, &pnum, &err);
    for (uint64_t s = off / 512; s < (off + pnum) / 512; s++)
      assert_int_equal (alloc[s], st == EXT_DATA);
    off += pnum;
  }
  /* unaligned pread inside data */
  assert_int_equal (ops->pread (&x, buf, 1000, (1 << 20) + 3, &err), 0);
  assert_memory_equal (buf, ref + (1 << 20) + 3, 1000);
  uint64_t n_alloc = 0;
  for (uint64_t s = 0; s < len / 512; s++)
    n_alloc += alloc[s];
  assert_int_equal (ops->allocated (&x), n_alloc * 512);
  assert_int_equal (ops->allocated (&x), alloc_before);
  assert_int_equal (ops->check (&x, false, NULL, NULL, &err), 0);
  ext_close (&x);

  /* all allocations were at freeSector, which covers the whole file */
  uint8_t h[32];
  int fd = open (p, O_RDONLY);
  assert_int_equal (vio_pread (fd, h, 32, 0), 0);
  close (fd);
  assert_int_equal ((uint64_t) le32_get (h + 28) * 512, file_size (p));

  if (with_qemu && have_qemu ()) {
    write_desc (dname, ename, sectors, NULL);
    qemu_compare (dname, ref, len);
    assert_int_equal (sh ("qemu-img check -q '%s'", tpath (dname)), 0);

    /* the same delta over a monolithicFlat parent filled with 0x11 */
    char pname[64], cname[64], cmd[512];
    snprintf (pname, sizeof pname, "%s-parent.vmdk", name);
    snprintf (cname, sizeof cname, "%s-child.vmdk", name);
    assert_int_equal (sh ("qemu-img create -q -f vmdk -o "
                          "subformat=monolithicFlat '%s' %llu",
                          tpath (pname), (unsigned long long) len), 0);
    snprintf (cmd, sizeof cmd, "qemu-io -c 'write -P 0x11 0 %llu' '%s' "
              ">/dev/null", (unsigned long long) len, tpath (pname));
    assert_int_equal (sh ("%s", cmd), 0);
    write_desc (cname, ename, sectors, pname);
    uint8_t *want = malloc (len);
    for (uint64_t s = 0; s < len / 512; s++)
      memset (want + s * 512, 0x11, 512);
    for (uint64_t s = 0; s < len / 512; s++)
      if (alloc[s])
        memcpy (want + s * 512, ref + s * 512, 512);
    qemu_compare (cname, want, len);
    free (want);
  }
  free (alloc);
  free (ref);
  free (buf);
}

static void
test_roundtrip_grain1 (void **state)
{
  roundtrip (1, 20480 + 3, "g1", true);     /* odd size: 10 MiB + 3 sectors */
}

static void
test_roundtrip_grain8 (void **state)
{
  roundtrip (8, 3 * 32768, "g8", true);     /* 48 MiB, 4 KiB grains */
}

static void
test_roundtrip_grain128 (void **state)
{
  roundtrip (128, 96 << 11, "g128", true);  /* 96 MiB, 64 KiB grains */
}

static void
test_roundtrip_grain16 (void **state)
{
  roundtrip (16, 80 << 11, "g16", true);    /* 80 MiB: 3 tables of 32 MiB */
}

/* Locate the grain table entry of grain g in file p (byte offset). */
static uint64_t
gte_pos (const char *p, uint64_t g)
{
  uint8_t h[32], e[4];
  int fd = open (p, O_RDONLY);
  assert_int_equal (vio_pread (fd, h, 32, 0), 0);
  uint64_t gdo = (uint64_t) le32_get (h + 20) * 512 + (g / 4096) * 4;
  assert_int_equal (vio_pread (fd, e, 4, gdo), 0);
  close (fd);
  assert_int_not_equal (le32_get (e), 0);
  return (uint64_t) le32_get (e) * 512 + (g % 4096) * 4;
}

static void
poke32 (const char *p, uint64_t off, uint32_t v)
{
  uint8_t b[4];
  le32_put (b, v);
  int fd = open (p, O_RDWR);
  assert_int_equal (vio_pwrite (fd, b, 4, off), 0);
  close (fd);
}

/* Grain table entry 1 is a zeroed grain: status ZERO, reads zeros, and a
 * write over it allocates a real grain. */
static void
test_zeroed_gte (void **state)
{
  struct vb_error err = { 0 };
  struct ext_create c = { .sectors = 8192 };
  const char *p = tpath ("z-delta.vmdk");
  assert_int_equal (ops->create (p, &c, &err), 0);
  struct vdisk_extent x;
  uint8_t buf[2048];
  assert_int_equal (ext_open (&x, p, true, 0, &err), 0);
  fill (buf, sizeof buf, 5);
  assert_int_equal (ops->pwrite (&x, buf, sizeof buf, 4096, &err), 0);
  ext_close (&x);
  poke32 (p, gte_pos (p, 9), 1);        /* sector 9 = second grain written */

  assert_int_equal (ext_open (&x, p, true, 0, &err), 0);
  uint64_t pnum = 0;
  assert_int_equal (ops->status (&x, 4096, 2048, &pnum, &err), EXT_DATA);
  assert_int_equal (pnum, 512);
  assert_int_equal (ops->status (&x, 4608, 2048, &pnum, &err), EXT_ZERO);
  assert_int_equal (pnum, 512);
  assert_int_equal (ops->status (&x, 5120, 1024, &pnum, &err), EXT_DATA);
  assert_int_equal (pnum, 1024);
  uint8_t got[2048];
  assert_int_equal (ops->pread (&x, got, 2048, 4096, &err), 0);
  assert_memory_equal (got, buf, 512);
  assert_true (vio_is_zero (got + 512, 512));
  assert_memory_equal (got + 1024, buf + 1024, 1024);
  uint64_t before = file_size (p);
  assert_int_equal (ops->pwrite (&x, buf + 512, 512, 4608, &err), 0);
  assert_int_equal (file_size (p), before + 512);
  assert_int_equal (ops->status (&x, 4096, 2048, &pnum, &err), EXT_DATA);
  assert_int_equal (pnum, 2048);
  assert_int_equal (ops->pread (&x, got, 2048, 4096, &err), 0);
  assert_memory_equal (got, buf, 2048);
  ext_close (&x);
}

/* A valid delta with some data for the corruption tests, written to
 * `name` (built once, then copied: create() syncs, which is slow). */
static const char *
make_sample (const char *name)
{
  static uint8_t *img;
  static size_t img_len;
  const char *p = tpath (name);
  unlink (p);
  if (img == NULL) {
    struct vb_error err = { 0 };
    struct ext_create c = { .sectors = 16384 };     /* 8 MiB, 4 tables */
    assert_int_equal (ops->create (p, &c, &err), 0);
    struct vdisk_extent x;
    assert_int_equal (ext_open (&x, p, true, 0, &err), 0);
    uint8_t buf[8192];
    fill (buf, sizeof buf, 3);
    assert_int_equal (ops->pwrite (&x, buf, sizeof buf, 0, &err), 0);
    assert_int_equal (ops->pwrite (&x, buf, sizeof buf, 3 << 20, &err), 0);
    ext_close (&x);
    char *t;
    assert_int_equal (vio_read_file (p, 1 << 20, &t, &img_len, &err), 0);
    img = (uint8_t *) t;
    return p;
  }
  int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (vio_pwrite (fd, img, img_len, 0), 0);
  close (fd);
  return p;
}

/* Open must fail with a message containing `want`. */
static void
expect_open_fail (const char *p, uint64_t length, const char *want)
{
  struct vb_error err = { 0 };
  struct vdisk_extent x;
  int r = ext_open (&x, p, false, length, &err);
  if (r == 0)
    fail_msg ("open of corrupt file succeeded (want '%s')", want);
  assert_true (r < 0);
  assert_true (err.code > 0);
  if (strstr (err.msg, want) == NULL)
    fail_msg ("message '%s' does not contain '%s'", err.msg, want);
}

/* Each header field checked on its own. */
static void
test_corrupt_header (void **state)
{
  struct { uint32_t off, val; const char *msg; } cases[] = {
    { 0, 0x44574f44, "bad COWD magic" },
    { 4, 2, "unsupported COWD version 2" },
    { 8, 0x100, "unsupported COWD flags" },
    { 12, 0, "capacity is 0" },
    { 12, 100, "smaller than its extent" },
    { 16, 0, "bad COWD grain size 0" },
    { 16, 3, "bad COWD grain size 3" },
    { 16, 1u << 20, "bad COWD grain size" },
    { 20, 2, "overlaps the header" },
    { 20, 0x7fffffff, "past the end of the file" },
    { 24, 3, "has 3 entries, 4 needed" },
    { 24, 0xffffffff, "too large" },
    { 28, 2, "inside the metadata" },
    { 28, 0x7fffffff, "past the end of the file" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *p = make_sample ("hdr-delta.vmdk");
    poke32 (p, cases[i].off, cases[i].val);
    expect_open_fail (p, 16384 * 512, cases[i].msg);
  }
  /* truncated header */
  const char *p = make_sample ("trunc-delta.vmdk");
  assert_int_equal (truncate (p, 1000), 0);
  expect_open_fail (p, 0, "too small for a COWD header");
  /* directory cut off by truncation */
  p = make_sample ("trunc2-delta.vmdk");
  assert_int_equal (truncate (p, 2048 + 8), 0);
  expect_open_fail (p, 0, "past the end of the file");
  /* empty file */
  p = tpath ("empty-delta.vmdk");
  FILE *f = fopen (p, "w");
  fclose (f);
  expect_open_fail (p, 0, "too small");
}

/* Directory and table entries pointing outside the file. */
static void
test_corrupt_pointers (void **state)
{
  struct vb_error err = { 0 };
  struct vdisk_extent x;
  /* grain directory entry past freeSector */
  const char *p = make_sample ("gd-delta.vmdk");
  poke32 (p, 2048 + 4, 0x10000000);
  expect_open_fail (p, 0, "grain directory entry 1");
  /* directory entry pointing into the header */
  p = make_sample ("gd2-delta.vmdk");
  poke32 (p, 2048, 1);
  expect_open_fail (p, 0, "grain directory entry 0");

  /* grain table entry past EOF: open works, using the grain fails */
  p = make_sample ("gt-delta.vmdk");
  poke32 (p, gte_pos (p, 3), 0x00ffffff);
  assert_int_equal (ext_open (&x, p, true, 0, &err), 0);
  uint64_t pnum;
  uint8_t buf[4096];
  assert_int_equal (ops->status (&x, 0, 1024, &pnum, &err), EXT_DATA);
  assert_int_equal (pnum, 1024);                      /* grains 0, 1 */
  struct vb_error e2 = { 0 };
  assert_int_equal (ops->status (&x, 1024, 4096, &pnum, &e2), -EIO);
  assert_non_null (strstr (e2.msg, "outside the allocated area"));
  struct vb_error e3 = { 0 };
  assert_int_equal (ops->pread (&x, buf, 4096, 0, &e3), -EIO);
  struct vb_error e4 = { 0 };
  assert_int_equal (ops->pwrite (&x, buf, 4096, 0, &e4), -EIO);
  int reports = 0;
  assert_true (ops->check (&x, false, NULL, NULL, &err) >= 1);
  (void) reports;
  ext_close (&x);

  /* two entries sharing a grain: check reports the overlap */
  p = make_sample ("dup-delta.vmdk");
  uint8_t e[4];
  int fd = open (p, O_RDONLY);
  assert_int_equal (vio_pread (fd, e, 4, gte_pos (p, 0)), 0);
  close (fd);
  poke32 (p, gte_pos (p, 5), le32_get (e));
  assert_int_equal (ext_open (&x, p, false, 0, &err), 0);
  assert_int_equal (ops->check (&x, false, NULL, NULL, &err), 1);
  ext_close (&x);
}

/* Random damage anywhere in the metadata never crashes: open, status and
 * pread over the whole extent either work or fail with an error. */
static void
test_fuzz (void **state)
{
  srand (1234);
  for (int it = 0; it < 300; it++) {
    const char *p = make_sample ("fz-delta.vmdk");
    uint64_t sz = file_size (p);
    int fd = open (p, O_RDWR);
    int flips = 1 + rand () % 4;
    for (int k = 0; k < flips; k++) {
      /* mostly the header and directory, sometimes a table */
      uint64_t off = rand () % 3 ? (uint64_t) rand () % 2048 + 0
                                 : (uint64_t) rand () % sz;
      if (rand () % 2)
        off = 2048 + (uint64_t) rand () % 64;
      uint8_t v = (uint8_t) rand ();
      assert_int_equal (vio_pwrite (fd, &v, 1, off), 0);
    }
    close (fd);
    struct vb_error err = { 0 };
    struct vdisk_extent x;
    if (ext_open (&x, p, true, 0, &err) < 0) {
      assert_true (err.code > 0 && err.msg[0] != '\0');
      continue;
    }
    uint64_t len = x.length < (16 << 20) ? x.length : (16 << 20);
    uint8_t *b = malloc (1 << 16);
    for (uint64_t off = 0; off < len;) {
      uint64_t pnum = 0;
      struct vb_error e2 = { 0 };
      int st = ops->status (&x, off, len - off, &pnum, &e2);
      if (st < 0) {
        off += 512;
        continue;
      }
      assert_true (pnum > 0 && pnum <= len - off);
      if (st == EXT_DATA) {
        size_t n = pnum < (1 << 16) ? (size_t) pnum : (1 << 16);
        ops->pread (&x, b, n, off, &e2);
        /* whole-grain write over it works or fails cleanly */
        if (x.grain && off % x.grain == 0 && n >= x.grain)
          ops->pwrite (&x, b, x.grain, off, &e2);
      }
      off += pnum;
    }
    ops->check (&x, false, NULL, NULL, &err);
    free (b);
    ext_close (&x);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_create_fresh),
    cmocka_unit_test (test_roundtrip_grain1),
    cmocka_unit_test (test_roundtrip_grain8),
    cmocka_unit_test (test_roundtrip_grain16),
    cmocka_unit_test (test_roundtrip_grain128),
    cmocka_unit_test (test_zeroed_gte),
    cmocka_unit_test (test_corrupt_header),
    cmocka_unit_test (test_corrupt_pointers),
    cmocka_unit_test (test_fuzz),
  };
  if (!have_qemu ())
    printf ("note: qemu-img/qemu-io not installed, interop checks skipped\n");
  return cmocka_run_group_tests (tests, setup, teardown);
}
