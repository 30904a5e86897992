/* Tests of the hosted sparse (KDMV) extent driver: interop with qemu-img
 * in both directions, the stream writer, corrupt headers, check/repair.
 *
 * The driver is exercised directly through vdisk_sparse_ops (filling a
 * struct vdisk_extent by hand), independent of the core.  Files live in a
 * fresh directory under /tmp.  Tests needing qemu-img / qemu-io skip when
 * those are not installed. */
#include <errno.h>
#include <fcntl.h>
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

#include "vdisk/vdisk-int.h"

static char dir[64];
static bool have_qemu;

/* Run a shell command built from fmt; return its exit status. */
static int
sh (const char *fmt, ...)
{
  char cmd[4096];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (cmd, sizeof cmd, fmt, ap);
  va_end (ap);
  int r = system (cmd);
  if (r == -1 || !WIFEXITED (r))
    return -1;
  return WEXITSTATUS (r);
}

/* dir/name in a static buffer (one of 64 rotating). */
static const char *
tp (const char *name)
{
  static char bufs[64][256];
  static int i;
  char *b = bufs[i++ % 64];
  snprintf (b, 256, "%s/%s", dir, name);
  return b;
}

#define SKIP_WITHOUT_QEMU() do { if (!have_qemu) { \
      print_message ("qemu-img/qemu-io not installed: skipped\n"); \
      skip (); } } while (0)

/* Open path with the sparse driver; returns the ops' result. */
static int
ext_open (struct vdisk_extent *e, const char *path, bool writable,
          uint64_t length, struct vb_error *err)
{
  memset (e, 0, sizeof *e);
  e->ops = &vdisk_sparse_ops;
  e->path = (char *) path;
  const char *slash = strrchr (path, '/');
  e->name = (char *) (slash ? slash + 1 : path);
  e->writable = writable;
  e->length = length;
  e->fd = open (path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (e->fd < 0)
    return -errno;
  int r = e->ops->open (e, err);
  if (r < 0) {
    close (e->fd);
    e->fd = -1;
  }
  return r;
}

/* Close and assert success. */
static void
ext_close (struct vdisk_extent *e)
{
  struct vb_error err = { 0 };
  int r = e->ops->close (e, &err);
  if (r < 0)
    print_message ("close: %s\n", err.msg);
  assert_int_equal (r, 0);
  close (e->fd);
  e->fd = -1;
}

/* Open and assert success. */
static void
ext_open_ok (struct vdisk_extent *e, const char *path, bool writable,
             uint64_t length)
{
  struct vb_error err = { 0 };
  int r = ext_open (e, path, writable, length, &err);
  if (r < 0)
    print_message ("open %s: %s\n", path, err.msg);
  assert_int_equal (r, 0);
}

/* Read a range the way the core does: status, then pread on DATA only. */
static void
read_range (struct vdisk_extent *e, uint8_t *buf, uint64_t off, uint64_t n)
{
  struct vb_error err = { 0 };
  while (n > 0) {
    uint64_t pnum = 0;
    int st = e->ops->status (e, off, n, &pnum, &err);
    if (st < 0)
      print_message ("status: %s\n", err.msg);
    assert_true (st >= 0);
    assert_true (pnum > 0 && pnum <= n);
    if (st == EXT_DATA) {
      int r = e->ops->pread (e, buf, pnum, off, &err);
      if (r < 0)
        print_message ("pread: %s\n", err.msg);
      assert_int_equal (r, 0);
    } else {
      memset (buf, 0, pnum);
    }
    buf += pnum;
    off += pnum;
    n -= pnum;
  }
}

/* Compare extent bytes [0, e->length) with raw file bytes [base, ...):
 * every range the extent calls DATA and every data range of the (sparse)
 * raw file is compared; elsewhere both are zeros. */
static void
compare_with_raw (struct vdisk_extent *e, const char *raw, uint64_t base)
{
  struct vb_error err = { 0 };
  int fd = open (raw, O_RDONLY);
  assert_true (fd >= 0);
  const size_t CH = 1 << 20;
  uint8_t *a = malloc (CH), *b = malloc (CH);
  assert_non_null (a);
  assert_non_null (b);
  struct stat st;
  assert_int_equal (fstat (fd, &st), 0);
  uint64_t len = e->length;
  /* 1. our DATA ranges */
  for (uint64_t off = 0; off < len;) {
    uint64_t pnum;
    int s = e->ops->status (e, off, len - off, &pnum, &err);
    assert_true (s >= 0);
    if (s == EXT_DATA) {
      for (uint64_t o = off; o < off + pnum;) {
        size_t n = (size_t) (off + pnum - o < CH ? off + pnum - o : CH);
        assert_int_equal (e->ops->pread (e, a, n, o, &err), 0);
        memset (b, 0, n);
        if (base + o < (uint64_t) st.st_size) {
          ssize_t got = pread (fd, b, n, (off_t) (base + o));
          assert_true (got >= 0);
        }
        if (memcmp (a, b, n) != 0)
          print_message ("mismatch in data range at %llu\n",
                         (unsigned long long) o);
        assert_memory_equal (a, b, n);
        o += n;
      }
    }
    off += pnum;
  }
  /* 2. the raw file's data ranges */
  off_t pos = (off_t) base;
  while ((uint64_t) pos < base + len) {
    off_t d = lseek (fd, pos, SEEK_DATA);
    if (d < 0 || (uint64_t) d >= base + len)
      break;
    off_t h = lseek (fd, d, SEEK_HOLE);
    if ((uint64_t) h > base + len)
      h = (off_t) (base + len);
    for (off_t o = d; o < h;) {
      size_t n = (size_t) (h - o < (off_t) CH ? h - o : (off_t) CH);
      assert_int_equal (pread (fd, b, n, o), (ssize_t) n);
      read_range (e, a, (uint64_t) o - base, n);
      if (memcmp (a, b, n) != 0)
        print_message ("mismatch in raw data range at %llu\n",
                       (unsigned long long) o);
      assert_memory_equal (a, b, n);
      o += (off_t) n;
    }
    pos = h;
  }
  free (a);
  free (b);
  close (fd);
}

/* Write a whole buffer to a new file. */
static void
write_file (const char *path, const void *buf, size_t n)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, buf, n, 0), (ssize_t) n);
  close (fd);
}

/* Overwrite bytes of a file. */
static void
poke (const char *path, uint64_t off, const void *b, size_t n)
{
  int fd = open (path, O_WRONLY);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, b, n, (off_t) off), (ssize_t) n);
  close (fd);
}

/* Overwrite a LE u32 / u64 of a file. */
static void
poke32 (const char *path, uint64_t off, uint32_t v)
{
  uint8_t b[4];
  le32_put (b, v);
  poke (path, off, b, 4);
}

/* Overwrite a LE u64 of a file. */
static void
poke64 (const char *path, uint64_t off, uint64_t v)
{
  uint8_t b[8];
  le64_put (b, v);
  poke (path, off, b, 8);
}

/* Read a LE u64 / u32 of a file. */
static uint64_t
peek64 (const char *path, uint64_t off)
{
  uint8_t b[8];
  int fd = open (path, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, b, 8, (off_t) off), 8);
  close (fd);
  return le64_get (b);
}

/* Read a LE u32 of a file. */
static uint32_t
peek32 (const char *path, uint64_t off)
{
  uint8_t b[4];
  int fd = open (path, O_RDONLY);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, b, 4, (off_t) off), 4);
  close (fd);
  return le32_get (b);
}

/* Deterministic pseudo-random bytes. */
static void
fill_random (uint8_t *p, size_t n, uint32_t seed)
{
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t) x;
  }
}

/* The descriptor text our files embed (the one vmback writes). */
static char *
make_desc (const char *type, uint64_t sectors, const char *file)
{
  char *t = malloc (2048);
  snprintf (t, 2048,
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\n"
            "parentCID=ffffffff\ncreateType=\"%s\"\n\n"
            "# Extent description\nRW %llu SPARSE \"%s\"\n\n"
            "# The Disk Data Base\n#DDB\n\n"
            "ddb.virtualHWVersion = \"4\"\n"
            "ddb.geometry.cylinders = \"%llu\"\n"
            "ddb.geometry.heads = \"16\"\n"
            "ddb.geometry.sectors = \"63\"\n"
            "ddb.adapterType = \"ide\"\n",
            type, (unsigned long long) sectors, file,
            (unsigned long long) (sectors / (16 * 63) ? sectors / (16 * 63)
                                  : 1));
  return t;
}

/* --- tests --------------------------------------------------------------- */

/* probe scores the magic only. */
static void
test_probe (void **state)
{
  (void) state;
  uint8_t buf[512] = "KDMV";
  assert_int_equal (vdisk_sparse_ops.probe (buf, sizeof buf), 100);
  memcpy (buf, "COWD", 4);
  assert_int_equal (vdisk_sparse_ops.probe (buf, sizeof buf), 0);
  assert_int_equal (vdisk_sparse_ops.probe (buf, 2), 0);
  assert_int_equal (vdisk_sparse_ops.kind, VMDK_EXT_SPARSE);
}

/* qemu-img monolithicSparse, filled by qemu-io, including zeroed grains,
 * partial grains and a size that is not a multiple of 64 KiB. */
static void
test_qemu_monolithic (void **state)
{
  (void) state;
  SKIP_WITHOUT_QEMU ();
  const char *img = tp ("qm.vmdk"), *raw = tp ("qm.raw");
  /* 3 MiB + 3 KiB = 6150 sectors */
  assert_int_equal (sh ("qemu-img create -q -f vmdk -o subformat=monolithicSparse"
                        ",zeroed_grain=on %s 3148800", img), 0);
  assert_int_equal (sh ("qemu-io -f vmdk -c 'write -P 0xab 0 64k' "
                        "-c 'write -P 0xcd 200k 1k' -c 'write -P 0x11 1M 192k' "
                        "-c 'write -P 0x33 2M 128k' -c 'write -z 2M 64k' "
                        "-c 'write -P 0x22 3M 3k' %s >/dev/null", img), 0);
  assert_int_equal (sh ("qemu-img convert -f vmdk -O raw %s %s", img, raw), 0);
  struct vdisk_extent e;
  ext_open_ok (&e, img, false, 0);
  assert_int_equal (e.length, 3148800);
  assert_int_equal (e.grain, 65536);
  compare_with_raw (&e, raw, 0);
  struct vb_error err = { 0 };
  uint64_t pnum;
  assert_int_equal (e.ops->status (&e, 0, 1 << 20, &pnum, &err), EXT_DATA);
  assert_int_equal (pnum, 65536);
  assert_int_equal (e.ops->status (&e, 2 << 20, 1 << 20, &pnum, &err),
                    EXT_ZERO);
  assert_int_equal (pnum, 65536);
  assert_int_equal (e.ops->status (&e, 512 << 10, 64 << 10, &pnum, &err),
                    EXT_UNALLOC);
  /* grains 0, 3, 16-18, 33, 48 = 7 grains of data */
  assert_int_equal (e.ops->allocated (&e), 7 * 65536);
  char *desc = NULL;
  assert_int_equal (e.ops->read_embedded_desc (&e, &desc, &err), 0);
  assert_non_null (desc);
  assert_non_null (strstr (desc, "createType=\"monolithicSparse\""));
  free (desc);
  int probs = e.ops->check (&e, false, NULL, NULL, &err);
  assert_int_equal (probs, 0);
  ext_close (&e);
}

/* qemu-img convert of a patterned raw file to streamOptimized. */
static void
test_qemu_stream (void **state)
{
  (void) state;
  SKIP_WITHOUT_QEMU ();
  const char *raw = tp ("qs.raw"), *img = tp ("qs.vmdk");
  size_t size = (5u << 20) + 5 * 512;
  uint8_t *d = calloc (1, size);
  fill_random (d, 65536, 1);                 /* grain 0 */
  fill_random (d + 5 * 65536 + 100, 1000, 2);/* partial grain 5 */
  fill_random (d + 20 * 65536, 3 * 65536, 3);/* grains 20-22 */
  memset (d + 30 * 65536, 0x7e, 65536);      /* compressible grain */
  fill_random (d + size - 2000, 2000, 4);    /* the last partial grain */
  write_file (raw, d, size);
  free (d);
  assert_int_equal (sh ("qemu-img convert -f raw -O vmdk -o subformat="
                        "streamOptimized %s %s", raw, img), 0);
  struct vdisk_extent e;
  ext_open_ok (&e, img, false, 0);
  assert_int_equal (e.length, size);
  compare_with_raw (&e, raw, 0);
  struct vb_error err = { 0 };
  uint64_t pnum;
  assert_int_equal (e.ops->status (&e, 65536, 65536, &pnum, &err),
                    EXT_UNALLOC);
  assert_int_equal (e.ops->check (&e, false, NULL, NULL, &err), 0);
  /* a finished stream refuses changes */
  uint8_t b[512] = { 1 };
  ext_close (&e);
  ext_open_ok (&e, img, true, 0);
  vb_err_clear (&err);
  assert_int_equal (e.ops->pwrite (&e, b, sizeof b, 0, &err), -ENOTSUP);
  assert_non_null (strstr (err.msg, "streamOptimized"));
  ext_close (&e);
}

/* A >4 GiB sparse disk, monolithicSparse and streamOptimized. */
static void
test_qemu_large (void **state)
{
  (void) state;
  SKIP_WITHOUT_QEMU ();
  const char *img = tp ("ql.vmdk"), *simg = tp ("qls.vmdk");
  const char *raw = tp ("ql.raw");
  assert_int_equal (sh ("qemu-img create -q -f vmdk -o subformat="
                        "monolithicSparse %s 6G", img), 0);
  assert_int_equal (sh ("qemu-io -f vmdk -c 'write -P 0x5a 4194272k 64k' "
                        "-c 'write -P 0xa5 5G 4k' -c 'write -P 0x3c 6291440k 16k' "
                        "%s >/dev/null", img), 0);
  assert_int_equal (sh ("qemu-img convert -f vmdk -O raw %s %s", img, raw), 0);
  assert_int_equal (sh ("qemu-img convert -f vmdk -O vmdk -o subformat="
                        "streamOptimized %s %s", img, simg), 0);
  const char *imgs[] = { img, simg };
  for (int i = 0; i < 2; i++) {
    struct vdisk_extent e;
    ext_open_ok (&e, imgs[i], false, 0);
    assert_int_equal (e.length, UINT64_C (6) << 30);
    compare_with_raw (&e, raw, 0);
    uint8_t buf[4096];
    read_range (&e, buf, (UINT64_C (4) << 30) - 2048, sizeof buf);
    for (size_t j = 0; j < sizeof buf; j++)
      assert_int_equal (buf[j], 0x5a);
    read_range (&e, buf, UINT64_C (5) << 30, sizeof buf);
    for (size_t j = 0; j < sizeof buf; j++)
      assert_int_equal (buf[j], 0xa5);
    struct vb_error err = { 0 };
    uint64_t pnum;
    assert_int_equal (e.ops->status (&e, UINT64_C (1) << 30, 1 << 20, &pnum,
                                     &err), EXT_UNALLOC);
    ext_close (&e);
  }
}

/* twoGbMaxExtentSparse: each -sNNN.vmdk read through the driver. */
static void
test_qemu_twogb (void **state)
{
  (void) state;
  SKIP_WITHOUT_QEMU ();
  const char *img = tp ("t.vmdk"), *raw = tp ("t.raw");
  assert_int_equal (sh ("qemu-img create -q -f vmdk -o subformat="
                        "twoGbMaxExtentSparse %s 5G", img), 0);
  assert_int_equal (sh ("qemu-io -f vmdk -c 'write -P 0x01 0 64k' "
                        "-c 'write -P 0x02 2097120k 64k' "
                        "-c 'write -P 0x03 4G 100k' -c 'write -P 0x04 5242848k 32k' "
                        "%s >/dev/null", img), 0);
  assert_int_equal (sh ("qemu-img convert -f vmdk -O raw %s %s", img, raw), 0);
  /* Walk the descriptor's extent lines. */
  FILE *f = fopen (img, "r");
  assert_non_null (f);
  char line[512];
  uint64_t start = 0;
  int n = 0;
  while (fgets (line, sizeof line, f)) {
    unsigned long long sectors;
    char name[256];
    if (sscanf (line, "RW %llu SPARSE \"%255[^\"]\"", &sectors, name) != 2)
      continue;
    assert_non_null (strstr (name, "-s00"));
    struct vdisk_extent e;
    ext_open_ok (&e, tp (name), false, sectors * 512);
    compare_with_raw (&e, raw, start);
    char *desc = (char *) 1;
    struct vb_error err = { 0 };
    assert_int_equal (e.ops->read_embedded_desc (&e, &desc, &err), 0);
    assert_null (desc);      /* split extents have no embedded descriptor */
    ext_close (&e);
    start += sectors * 512;
    n++;
  }
  fclose (f);
  assert_int_equal (n, 3);
  assert_int_equal (start, UINT64_C (5) << 30);
}

/* Our create() + pwrite/zero make a monolithicSparse file qemu-img
 * accepts (check) and reads as the content we wrote (compare). */
static void
test_write_monolithic (void **state)
{
  (void) state;
  const char *img = tp ("w.vmdk"), *raw = tp ("w.raw");
  uint64_t size = (4u << 20) + 7 * 1024, sectors = size / 512;
  char *desc = make_desc ("monolithicSparse", sectors, "w.vmdk");
  struct ext_create c = { .sectors = sectors, .grain_sectors = 128,
                          .embedded_desc = desc };
  struct vb_error err = { 0 };
  unlink (img);
  int r = vdisk_sparse_ops.create (img, &c, &err);
  if (r < 0)
    print_message ("create: %s\n", err.msg);
  assert_int_equal (r, 0);
  /* create refuses an existing file */
  vb_err_clear (&err);
  assert_true (vdisk_sparse_ops.create (img, &c, &err) < 0);

  uint8_t *exp = calloc (1, size);
  struct vdisk_extent e;
  ext_open_ok (&e, img, true, 0);
  assert_int_equal (e.length, size);
  /* whole new grains 0-1 */
  fill_random (exp, 131072, 10);
  assert_int_equal (e.ops->pwrite (&e, exp, 131072, 0, &err), 0);
  /* in place, inside an allocated grain */
  fill_random (exp + 20000, 10000, 11);
  assert_int_equal (e.ops->pwrite (&e, exp + 20000, 10000, 20000, &err), 0);
  /* grain 16 and 17, then zero grain 17 (zeroed-grain GTE) */
  fill_random (exp + (1 << 20), 131072, 12);
  assert_int_equal (e.ops->pwrite (&e, exp + (1 << 20), 131072, 1 << 20,
                                   &err), 0);
  memset (exp + (1 << 20) + 65536, 0, 65536);
  assert_int_equal (e.ops->zero (&e, (1 << 20) + 65536, 65536, false, &err),
                    0);
  /* partial zero inside an allocated grain: zeros written in place */
  memset (exp + 100, 0, 300);
  assert_int_equal (e.ops->zero (&e, 100, 300, false, &err), 0);
  /* zero of an unallocated grain over a parent: zeroed-grain entry */
  assert_int_equal (e.ops->zero (&e, 2 << 20, 65536, true, &err), 0);
  /* partial zero of unallocated grain over a parent cannot be done here */
  vb_err_clear (&err);
  assert_int_equal (e.ops->zero (&e, (3 << 20) + 512, 512, true, &err),
                    -ENOTSUP);
  vb_err_clear (&err);
  /* the last, partial grain (7 KiB) */
  fill_random (exp + (4 << 20), 7 * 1024, 13);
  assert_int_equal (e.ops->pwrite (&e, exp + (4 << 20), 7 * 1024, 4 << 20,
                                   &err), 0);
  uint64_t pnum;
  assert_int_equal (e.ops->status (&e, (1 << 20) + 65536, 65536, &pnum,
                                   &err), EXT_ZERO);
  assert_int_equal (e.ops->status (&e, 2 << 20, 65536, &pnum, &err),
                    EXT_ZERO);
  /* read back before close (from the table cache) */
  uint8_t *got = malloc (size);
  read_range (&e, got, 0, size);
  assert_memory_equal (got, exp, size);
  /* grains 0, 1, 16, 64 hold data */
  assert_int_equal (e.ops->allocated (&e), 4 * 65536);
  assert_int_equal (e.ops->flush (&e, &err), 0);
  assert_int_equal (e.ops->check (&e, false, NULL, NULL, &err), 0);
  /* uncleanShutdown is set while we modify the file */
  assert_int_equal (peek32 (img, 72) & 0xff, 1);
  ext_close (&e);
  assert_int_equal (peek32 (img, 72) & 0xff, 0);

  write_file (raw, exp, size);
  if (have_qemu) {
    assert_int_equal (sh ("qemu-img check -q -f vmdk %s", img), 0);
    assert_int_equal (sh ("qemu-img compare -q -f vmdk -F raw %s %s", img,
                          raw), 0);
    assert_int_equal (sh ("qemu-img info %s | grep -q 'create type: "
                          "monolithicSparse'", img), 0);
  }
  ext_open_ok (&e, img, false, 0);
  read_range (&e, got, 0, size);
  assert_memory_equal (got, exp, size);
  ext_close (&e);
  free (got);
  free (exp);
  free (desc);
}

/* A split (twoGbMaxExtentSparse-style) extent: no embedded descriptor,
 * qemu-img reads it through a descriptor we write by hand. */
static void
test_write_split_extent (void **state)
{
  (void) state;
  SKIP_WITHOUT_QEMU ();
  const char *ext1 = tp ("sp-s001.vmdk"), *descp = tp ("sp.vmdk");
  const char *raw = tp ("sp.raw");
  uint64_t size = 3 << 20;
  struct ext_create c = { .sectors = size / 512, .grain_sectors = 128 };
  struct vb_error err = { 0 };
  unlink (ext1);
  assert_int_equal (vdisk_sparse_ops.create (ext1, &c, &err), 0);
  uint8_t *exp = calloc (1, size);
  fill_random (exp + 65536 * 7, 65536 * 3, 20);
  struct vdisk_extent e;
  ext_open_ok (&e, ext1, true, size);
  assert_int_equal (e.ops->pwrite (&e, exp + 65536 * 7, 65536 * 3, 65536 * 7,
                                   &err), 0);
  vb_err_clear (&err);
  assert_int_equal (e.ops->write_embedded_desc (&e, "x", &err), -ENOSPC);
  ext_close (&e);
  char *d = make_desc ("twoGbMaxExtentSparse", size / 512, "sp-s001.vmdk");
  write_file (descp, d, strlen (d));
  free (d);
  write_file (raw, exp, size);
  assert_int_equal (sh ("qemu-img compare -q -f vmdk -F raw %s %s", descp,
                        raw), 0);
  assert_int_equal (sh ("qemu-img check -q -f vmdk %s", descp), 0);
  free (exp);
}

/* Our stream writer: sequential, unaligned writes with holes; qemu-img
 * check/compare accept the result; out-of-order writes are refused. */
static void
test_write_stream (void **state)
{
  (void) state;
  const char *img = tp ("ws.vmdk"), *raw = tp ("ws.raw");
  uint64_t size = (40u << 20) + 2560, sectors = size / 512;
  char *desc = make_desc ("streamOptimized", sectors, "ws.vmdk");
  struct ext_create c = { .sectors = sectors, .grain_sectors = 128,
                          .embedded_desc = desc, .stream = true };
  struct vb_error err = { 0 };
  unlink (img);
  assert_int_equal (vdisk_sparse_ops.create (img, &c, &err), 0);

  uint8_t *exp = calloc (1, size);
  fill_random (exp, 65536, 30);                  /* grain 0 */
  fill_random (exp + 3 * 65536 + 512, 4096, 31); /* partial grain 3 */
  memset (exp + 10 * 65536, 0x55, 2 * 65536);    /* grains 10-11 */
  fill_random (exp + 520 * 65536 - 100, 200, 32);/* across a table (gdi 1) */
  fill_random (exp + size - 1000, 1000, 33);     /* last partial grain */

  struct vdisk_extent e;
  /* a read-only open of the fresh file sees an empty disk */
  ext_open_ok (&e, img, false, 0);
  uint64_t pnum;
  assert_int_equal (e.ops->status (&e, 0, size, &pnum, &err), EXT_UNALLOC);
  assert_int_equal (pnum, size);
  assert_int_equal (e.ops->allocated (&e), 0);
  ext_close (&e);

  ext_open_ok (&e, img, true, 0);
  assert_int_equal (e.length, size);
  /* write in odd-sized pieces, skipping two all-zero stretches */
  uint64_t off = 0;
  const size_t piece = 100000;
  while (off < size) {
    size_t n = (size_t) (size - off < piece ? size - off : piece);
    bool skip = (off >= 400000 && off < 600000) || (off >= 1500000 && off < 2900000);
    if (!skip || !vio_is_zero (exp + off, n)) {
      int r = e.ops->pwrite (&e, exp + off, n, off, &err);
      if (r < 0)
        print_message ("pwrite: %s\n", err.msg);
      assert_int_equal (r, 0);
    } else {
      assert_int_equal (e.ops->zero (&e, off, n, false, &err), 0);
    }
    off += n;
    if (off == 1200000) {
      /* reads while writing: grain 0 is on disk, grain 18 pending */
      uint8_t buf[2000];
      read_range (&e, buf, 1000, sizeof buf);
      assert_memory_equal (buf, exp + 1000, sizeof buf);
      read_range (&e, buf, 1199000, 1000);
      assert_memory_equal (buf, exp + 1199000, 1000);
      /* going back is refused */
      vb_err_clear (&err);
      assert_int_equal (e.ops->pwrite (&e, exp, 512, 65536, &err), -ENOTSUP);
      assert_non_null (strstr (err.msg, "streamOptimized extents can only be "
                               "written sequentially"));
      vb_err_clear (&err);
    }
  }
  assert_int_equal (e.ops->flush (&e, &err), 0);
  ext_close (&e);

  write_file (raw, exp, size);
  if (have_qemu) {
    assert_int_equal (sh ("qemu-img check -q -f vmdk %s", img), 0);
    assert_int_equal (sh ("qemu-img compare -q -f vmdk -F raw %s %s", img,
                          raw), 0);
    assert_int_equal (sh ("qemu-img info %s | grep -q 'create type: "
                          "streamOptimized'", img), 0);
  }
  /* header keeps GD_AT_END; the footer has the real GD */
  assert_true (peek64 (img, 56) == UINT64_C (0xffffffffffffffff));
  ext_open_ok (&e, img, false, 0);
  uint8_t *got = malloc (size);
  read_range (&e, got, 0, size);
  assert_memory_equal (got, exp, size);
  assert_int_equal (e.ops->status (&e, 65536, 65536, &pnum, &err),
                    EXT_UNALLOC);
  /* grains 0, 3, 10, 11, 519, 520, 640 (the last, partial) */
  assert_int_equal (e.ops->allocated (&e), 7 * 65536);
  char *dt = NULL;
  assert_int_equal (e.ops->read_embedded_desc (&e, &dt, &err), 0);
  assert_string_equal (dt, desc);
  free (dt);
  assert_int_equal (e.ops->check (&e, false, NULL, NULL, &err), 0);
  ext_close (&e);
  free (got);
  free (exp);
  free (desc);
}

/* The core completes a partial grain before writing it, so a caller's
 * unaligned sequential writes reach the stream writer as a whole grain
 * followed by a rewrite of its tail: allowed inside the pending grain. */
static void
test_write_stream_pending (void **state)
{
  (void) state;
  const char *img = tp ("wsp.vmdk"), *raw = tp ("wsp.raw");
  uint64_t size = 40 << 20;
  char *desc = make_desc ("streamOptimized", size / 512, "wsp.vmdk");
  struct ext_create c = { .sectors = size / 512, .stream = true,
                          .embedded_desc = desc };
  struct vb_error err = { 0 };
  unlink (img);
  assert_int_equal (vdisk_sparse_ops.create (img, &c, &err), 0);
  uint8_t *exp = calloc (1, size), *tmp = calloc (1, 131072);
  fill_random (exp, 200000, 70);
  struct vdisk_extent e;
  ext_open_ok (&e, img, true, 0);
  /* caller writes [0, 100000): grain 0, then grain 1 completed with zeros */
  memcpy (tmp, exp, 100000);
  assert_int_equal (e.ops->pwrite (&e, tmp, 131072, 0, &err), 0);
  /* caller writes [100000, 200000): starts inside pending grain 1 */
  assert_int_equal (e.ops->pwrite (&e, exp + 100000, 100000, 100000, &err), 0);
  /* zero inside the pending grain 3 (196608..) */
  assert_int_equal (e.ops->zero (&e, 197000, 2000, false, &err), 0);
  memset (exp + 197000, 0, 2000);
  /* grain 0 is compressed already: rewriting it is refused */
  vb_err_clear (&err);
  assert_int_equal (e.ops->pwrite (&e, exp, 512, 0, &err), -ENOTSUP);
  assert_int_equal (e.ops->zero (&e, 0, 512, false, &err), -ENOTSUP);
  vb_err_clear (&err);
  uint8_t buf[65536];
  uint64_t pnum;
  assert_int_equal (e.ops->status (&e, 196608, 65536, &pnum, &err), EXT_DATA);
  read_range (&e, buf, 150000, 50000);
  assert_memory_equal (buf, exp + 150000, 50000);
  /* a pending grain in a table not started yet (table 1, 33 MiB) */
  memset (exp + (33 << 20), 0x42, 100);
  assert_int_equal (e.ops->pwrite (&e, exp + (33 << 20), 100, 33 << 20, &err),
                    0);
  assert_int_equal (e.ops->status (&e, 33 << 20, 65536, &pnum, &err),
                    EXT_DATA);
  assert_int_equal (e.ops->status (&e, 32 << 20, 2 << 20, &pnum, &err),
                    EXT_UNALLOC);
  assert_int_equal (pnum, 1 << 20);
  ext_close (&e);
  write_file (raw, exp, size);
  ext_open_ok (&e, img, false, 0);
  compare_with_raw (&e, raw, 0);
  ext_close (&e);
  if (have_qemu)
    assert_int_equal (sh ("qemu-img compare -q -f vmdk -F raw %s %s", img,
                          raw), 0);
  free (exp);
  free (tmp);
  free (desc);
}

/* A stream written by us across 4 GiB, checked by qemu-img. */
static void
test_write_stream_large (void **state)
{
  (void) state;
  SKIP_WITHOUT_QEMU ();
  const char *img = tp ("wsl.vmdk"), *raw = tp ("wsl.raw");
  uint64_t size = UINT64_C (5) << 30;
  char *desc = make_desc ("streamOptimized", size / 512, "wsl.vmdk");
  struct ext_create c = { .sectors = size / 512, .embedded_desc = desc,
                          .stream = true };
  struct vb_error err = { 0 };
  unlink (img);
  assert_int_equal (vdisk_sparse_ops.create (img, &c, &err), 0);
  struct vdisk_extent e;
  ext_open_ok (&e, img, true, 0);
  uint8_t *b = malloc (131072);
  fill_random (b, 131072, 40);
  uint64_t offs[] = { 0, (UINT64_C (4) << 30) - 65536, size - 131072 };
  int fd = open (raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, (off_t) size), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal (e.ops->pwrite (&e, b, 131072, offs[i], &err), 0);
    assert_int_equal (pwrite (fd, b, 131072, (off_t) offs[i]), 131072);
  }
  close (fd);
  ext_close (&e);
  assert_int_equal (sh ("qemu-img check -q -f vmdk %s", img), 0);
  assert_int_equal (sh ("qemu-img compare -q -f vmdk -F raw %s %s", img, raw),
                    0);
  free (b);
  free (desc);
}

/* A copy of a small qemu-made image to corrupt. */
static const char *
fresh_victim (const char *name)
{
  const char *base = tp ("victim-base.vmdk");
  const char *v = tp (name);
  struct stat st;
  if (stat (base, &st) != 0) {
    char *d = make_desc ("monolithicSparse", 2048, "victim-base.vmdk");
    struct ext_create c = { .sectors = 2048, .grain_sectors = 128,
                            .embedded_desc = d };
    struct vb_error err = { 0 };
    assert_int_equal (vdisk_sparse_ops.create (base, &c, &err), 0);
    free (d);
    struct vdisk_extent e;
    ext_open_ok (&e, base, true, 0);
    uint8_t g[65536];
    fill_random (g, sizeof g, 50);
    assert_int_equal (e.ops->pwrite (&e, g, sizeof g, 0, &err), 0);
    ext_close (&e);
  }
  assert_int_equal (sh ("cp %s %s", base, v), 0);
  return v;
}

/* Expect open to fail with a message (and no crash). */
static void
expect_open_fails (const char *path, const char *what)
{
  struct vdisk_extent e;
  struct vb_error err = { 0 };
  int r = ext_open (&e, path, false, 0, &err);
  if (r == 0) {
    print_message ("%s: open unexpectedly succeeded\n", what);
    ext_close (&e);
  }
  assert_true (r < 0);
  assert_true (err.code > 0);
  assert_true (strlen (err.msg) > 0);
  print_message ("%s: %s\n", what, err.msg);
}

/* Each corrupt header field gives its own error, never a crash. */
static void
test_corrupt_headers (void **state)
{
  (void) state;
  const char *v;
  v = fresh_victim ("c1.vmdk"); poke32 (v, 4, 4);
  expect_open_fails (v, "version 4");
  v = fresh_victim ("c2.vmdk"); poke64 (v, 20, 0);
  expect_open_fails (v, "grain 0");
  v = fresh_victim ("c3.vmdk"); poke64 (v, 20, 3);
  expect_open_fails (v, "grain 3");
  v = fresh_victim ("c4.vmdk"); poke64 (v, 20, UINT64_C (1) << 20);
  expect_open_fails (v, "grain huge");
  v = fresh_victim ("c5.vmdk"); poke64 (v, 56, 1000000);
  expect_open_fails (v, "gd past eof");
  v = fresh_victim ("c6.vmdk"); poke64 (v, 48, 1000000);
  expect_open_fails (v, "rgd past eof");
  v = fresh_victim ("c7.vmdk"); poke32 (v, 44, 256);
  expect_open_fails (v, "numGTEsPerGT 256");
  v = fresh_victim ("c8.vmdk"); poke64 (v, 12, UINT64_C (1) << 60);
  expect_open_fails (v, "capacity absurd");
  v = fresh_victim ("c9.vmdk"); assert_int_equal (truncate (v, 100), 0);
  expect_open_fails (v, "truncated to 100 bytes");
  v = fresh_victim ("c10.vmdk"); assert_int_equal (truncate (v, 8192), 0);
  expect_open_fails (v, "truncated to 8 KiB");
  v = fresh_victim ("c11.vmdk"); poke (v, 75, "\n", 1);
  expect_open_fails (v, "newline check bytes");
  v = fresh_victim ("c12.vmdk"); poke64 (v, 28, 0);
  expect_open_fails (v, "descriptor offset without size");
  v = fresh_victim ("c13.vmdk"); poke (v, 77, "\x07", 1);
  expect_open_fails (v, "compress algorithm 7");
  v = fresh_victim ("c14.vmdk"); poke64 (v, 64, 0);
  expect_open_fails (v, "overHead 0");
  v = fresh_victim ("c15.vmdk"); poke64 (v, 36, 100000);
  expect_open_fails (v, "descriptor size huge");
  v = fresh_victim ("c16.vmdk"); poke (v, 0, "KDMX", 4);
  expect_open_fails (v, "bad magic");
  v = fresh_victim ("c17.vmdk"); poke64 (v, 56, UINT64_C (0xffffffffffffffff));
  expect_open_fails (v, "GD_AT_END without stream flags");
  /* descriptor says more than the capacity */
  {
    struct vdisk_extent e;
    struct vb_error err = { 0 };
    v = fresh_victim ("c18.vmdk");
    assert_true (ext_open (&e, v, false, 4096 * 512, &err) < 0);
    print_message ("length > capacity: %s\n", err.msg);
  }
  /* grain table entry and GD entry past EOF: open ok, I/O fails cleanly */
  {
    struct vdisk_extent e;
    struct vb_error err = { 0 };
    v = fresh_victim ("c19.vmdk");
    uint64_t gd = peek64 (v, 56);
    uint32_t gt = peek32 (v, gd * 512);
    poke32 (v, (uint64_t) gt * 512, 0x7fffffff);
    ext_open_ok (&e, v, false, 0);
    uint64_t pnum;
    assert_true (e.ops->status (&e, 0, 65536, &pnum, &err) < 0);
    print_message ("gte past eof: %s\n", err.msg);
    vb_err_clear (&err);
    assert_true (e.ops->check (&e, false, NULL, NULL, &err) >= 1);
    ext_close (&e);
    v = fresh_victim ("c20.vmdk");
    poke32 (v, gd * 512, 0x7ffffff0);
    ext_open_ok (&e, v, false, 0);
    vb_err_clear (&err);
    assert_true (e.ops->status (&e, 0, 65536, &pnum, &err) < 0);
    print_message ("gd entry past eof: %s\n", err.msg);
    ext_close (&e);
  }
}

/* Broken streamOptimized files: missing end marker, truncated, corrupt
 * compressed data, wrong marker lba. */
static void
test_corrupt_stream (void **state)
{
  (void) state;
  const char *base = tp ("cs-base.vmdk");
  struct ext_create c = { .sectors = 4096, .stream = true,
                          .embedded_desc = "# Disk DescriptorFile\n" };
  struct vb_error err = { 0 };
  unlink (base);
  assert_int_equal (vdisk_sparse_ops.create (base, &c, &err), 0);
  struct vdisk_extent e;
  ext_open_ok (&e, base, true, 0);
  uint8_t g[65536];
  fill_random (g, sizeof g, 60);
  assert_int_equal (e.ops->pwrite (&e, g, sizeof g, 65536, &err), 0);
  ext_close (&e);
  struct stat st;
  assert_int_equal (stat (base, &st), 0);
  uint64_t size = (uint64_t) st.st_size;
  /* grain 1's marker is right at overHead (128 sectors + desc rounding) */
  uint64_t gmark = peek64 (base, 64) * 512;
  assert_int_equal (peek64 (base, gmark), 128);   /* lba of grain 1 */

  const char *v = tp ("cs1.vmdk");
  sh ("cp %s %s", base, v);
  poke32 (v, size - 512 + 12, 9);
  expect_open_fails (v, "stream: bad end-of-stream marker");
  sh ("cp %s %s", base, v);
  assert_int_equal (truncate (v, (off_t) (size - 1024)), 0);
  expect_open_fails (v, "stream: truncated");
  sh ("cp %s %s", base, v);
  poke64 (v, size - 1024 + 20, 3);   /* footer grain size */
  expect_open_fails (v, "stream: footer grain size 3");
  /* corrupt compressed data: open works, reading fails cleanly */
  sh ("cp %s %s", base, v);
  poke (v, gmark + 12 + 10, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
  ext_open_ok (&e, v, false, 0);
  uint8_t buf[512];
  vb_err_clear (&err);
  assert_true (e.ops->pread (&e, buf, sizeof buf, 65536, &err) < 0);
  print_message ("stream: corrupt data: %s\n", err.msg);
  ext_close (&e);
  /* wrong lba in the grain marker */
  sh ("cp %s %s", base, v);
  poke64 (v, gmark, 4000);
  ext_open_ok (&e, v, false, 0);
  vb_err_clear (&err);
  assert_true (e.ops->pread (&e, buf, sizeof buf, 65536, &err) < 0);
  print_message ("stream: wrong lba: %s\n", err.msg);
  vb_err_clear (&err);
  assert_true (e.ops->check (&e, false, NULL, NULL, &err) >= 1);
  ext_close (&e);
  /* huge marker size */
  sh ("cp %s %s", base, v);
  poke32 (v, gmark + 8, 0x7fffffff);
  ext_open_ok (&e, v, false, 0);
  vb_err_clear (&err);
  assert_true (e.ops->pread (&e, buf, sizeof buf, 65536, &err) < 0);
  print_message ("stream: huge marker size: %s\n", err.msg);
  ext_close (&e);
}

static int n_reports;

/* Count and print check reports. */
static void
report_cb (void *opaque, const char *msg)
{
  (void) opaque;
  n_reports++;
  print_message ("check: %s\n", msg);
}

/* check() finds a damaged redundant (or primary) grain table and repair
 * restores it from the intact copy; qemu-img agrees afterwards. */
static void
test_check_repair (void **state)
{
  (void) state;
  struct vb_error err = { 0 };
  struct vdisk_extent e;
  for (int which = 0; which < 2; which++) {
    const char *v = fresh_victim (which ? "r2.vmdk" : "r1.vmdk");
    uint64_t dir_off = peek64 (v, which ? 56 : 48);   /* damage rgd / gd */
    uint32_t gt = peek32 (v, dir_off * 512);
    poke32 (v, (uint64_t) gt * 512, 0x7fffffff);      /* entry of grain 0 */
    ext_open_ok (&e, v, true, 0);
    n_reports = 0;
    int p = e.ops->check (&e, false, report_cb, NULL, &err);
    assert_true (p >= 1);
    assert_true (n_reports >= 1);
    p = e.ops->check (&e, true, report_cb, NULL, &err);
    assert_true (p >= 1);
    n_reports = 0;
    p = e.ops->check (&e, false, report_cb, NULL, &err);
    assert_int_equal (p, 0);
    assert_int_equal (n_reports, 0);
    uint8_t g[65536], exp[65536];
    fill_random (exp, sizeof exp, 50);
    read_range (&e, g, 0, sizeof g);
    assert_memory_equal (g, exp, sizeof g);
    ext_close (&e);
    if (have_qemu)
      assert_int_equal (sh ("qemu-img check -q -f vmdk %s", v), 0);
  }
  /* uncleanShutdown left set: reported, cleared by repair */
  const char *v = fresh_victim ("r3.vmdk");
  poke (v, 72, "\x01", 1);
  ext_open_ok (&e, v, true, 0);
  assert_int_equal (e.ops->check (&e, false, NULL, NULL, &err), 1);
  assert_int_equal (e.ops->check (&e, true, NULL, NULL, &err), 1);
  ext_close (&e);
  assert_int_equal (peek32 (v, 72) & 0xff, 0);
  /* two grains pointing at the same sector */
  v = fresh_victim ("r4.vmdk");
  uint64_t gd = peek64 (v, 56), rgd = peek64 (v, 48);
  uint32_t gt = peek32 (v, gd * 512), rgt = peek32 (v, rgd * 512);
  uint32_t g0 = peek32 (v, (uint64_t) gt * 512);
  poke32 (v, (uint64_t) gt * 512 + 4, g0);
  poke32 (v, (uint64_t) rgt * 512 + 4, g0);
  ext_open_ok (&e, v, false, 0);
  n_reports = 0;
  assert_true (e.ops->check (&e, false, report_cb, NULL, &err) >= 1);
  vb_err_clear (&err);
  assert_true (e.ops->check (&e, true, NULL, NULL, &err) < 0); /* read-only */
  ext_close (&e);
}

/* Embedded descriptor: read, rewrite in place, refuse what does not fit. */
static void
test_embedded_desc (void **state)
{
  (void) state;
  const char *v = fresh_victim ("d1.vmdk");
  struct vdisk_extent e;
  struct vb_error err = { 0 };
  ext_open_ok (&e, v, true, 0);
  char *t = NULL;
  assert_int_equal (e.ops->read_embedded_desc (&e, &t, &err), 0);
  assert_non_null (strstr (t, "RW 2048 SPARSE \"victim-base.vmdk\""));
  free (t);
  char *nd = make_desc ("monolithicSparse", 2048, "d1.vmdk");
  assert_int_equal (e.ops->write_embedded_desc (&e, nd, &err), 0);
  assert_int_equal (e.ops->read_embedded_desc (&e, &t, &err), 0);
  assert_string_equal (t, nd);
  free (t);
  /* shorter text: the rest is zero padded */
  assert_int_equal (e.ops->write_embedded_desc (&e, "version=1\n", &err), 0);
  assert_int_equal (e.ops->read_embedded_desc (&e, &t, &err), 0);
  assert_string_equal (t, "version=1\n");
  free (t);
  char *big = malloc (20 * 512 + 2);
  memset (big, 'x', 20 * 512 + 1);
  big[20 * 512 + 1] = '\0';
  assert_int_equal (e.ops->write_embedded_desc (&e, big, &err), -ENOSPC);
  free (big);
  ext_close (&e);
  free (nd);
  /* create with a descriptor that does not fit */
  struct ext_create c = { .sectors = 2048 };
  char *huge = malloc (20000);
  memset (huge, 'y', 19999);
  huge[19999] = '\0';
  c.embedded_desc = huge;
  vb_err_clear (&err);
  assert_int_equal (vdisk_sparse_ops.create (tp ("d2.vmdk"), &c, &err),
                    -ENOSPC);
  c.stream = true;
  assert_int_equal (vdisk_sparse_ops.create (tp ("d3.vmdk"), &c, &err),
                    -ENOSPC);
  free (huge);
  /* bad grain sizes for create */
  struct ext_create c2 = { .sectors = 2048, .grain_sectors = 100 };
  assert_true (vdisk_sparse_ops.create (tp ("d4.vmdk"), &c2, &err) < 0);
}

/* Many grain tables: more than the table cache, forcing evictions of
 * dirty tables while writing; qemu-img must agree with the result. */
static void
test_many_tables (void **state)
{
  (void) state;
  const char *img = tp ("mt.vmdk"), *raw = tp ("mt.raw");
  uint64_t size = UINT64_C (3) << 30;   /* 96 tables of 32 MiB */
  struct ext_create c = { .sectors = size / 512, .grain_sectors = 128 };
  struct vb_error err = { 0 };
  unlink (img);
  assert_int_equal (vdisk_sparse_ops.create (img, &c, &err), 0);
  struct vdisk_extent e;
  ext_open_ok (&e, img, true, 0);
  int fd = open (raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, (off_t) size), 0);
  uint8_t g[65536];
  for (int i = 0; i < 96; i++) {
    uint64_t off = (uint64_t) i * (32 << 20) + (uint64_t) (i % 7) * 65536;
    fill_random (g, sizeof g, 100 + (uint32_t) i);
    assert_int_equal (e.ops->pwrite (&e, g, sizeof g, off, &err), 0);
    assert_int_equal (pwrite (fd, g, sizeof g, (off_t) off), 65536);
  }
  close (fd);
  compare_with_raw (&e, raw, 0);
  ext_close (&e);
  if (have_qemu) {
    char *d = make_desc ("twoGbMaxExtentSparse", size / 512, "mt.vmdk");
    write_file (tp ("mt-desc.vmdk"), d, strlen (d));
    free (d);
    assert_int_equal (sh ("qemu-img check -q -f vmdk %s", tp ("mt-desc.vmdk")),
                      0);
    assert_int_equal (sh ("qemu-img compare -q -f vmdk -F raw %s %s",
                          tp ("mt-desc.vmdk"), raw), 0);
  }
  ext_open_ok (&e, img, false, 0);
  compare_with_raw (&e, raw, 0);
  assert_int_equal (e.ops->allocated (&e), 96 * 65536);
  ext_close (&e);
}

/* Scratch directory; detect qemu-img / qemu-io. */
static int
setup (void **state)
{
  (void) state;
  snprintf (dir, sizeof dir, "/tmp/vmback-sparse-XXXXXX");
  if (!mkdtemp (dir))
    return -1;
  have_qemu = sh ("qemu-img --version >/dev/null 2>&1") == 0
              && sh ("qemu-io --version >/dev/null 2>&1") == 0;
  return 0;
}

/* Remove the scratch directory (unless KEEP_TEST_FILES is set). */
static int
teardown (void **state)
{
  (void) state;
  if (!getenv ("KEEP_TEST_FILES"))
    sh ("rm -rf %s", dir);
  return 0;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_probe),
    cmocka_unit_test (test_qemu_monolithic),
    cmocka_unit_test (test_qemu_stream),
    cmocka_unit_test (test_qemu_large),
    cmocka_unit_test (test_qemu_twogb),
    cmocka_unit_test (test_write_monolithic),
    cmocka_unit_test (test_write_split_extent),
    cmocka_unit_test (test_write_stream),
    cmocka_unit_test (test_write_stream_pending),
    cmocka_unit_test (test_write_stream_large),
    cmocka_unit_test (test_corrupt_headers),
    cmocka_unit_test (test_corrupt_stream),
    cmocka_unit_test (test_check_repair),
    cmocka_unit_test (test_embedded_desc),
    cmocka_unit_test (test_many_tables),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
