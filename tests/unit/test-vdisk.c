/* Tests of the vdisk core through the public API (include/vmback/vdisk.h):
 * every writable type created, written at random byte offsets and lengths
 * (mirrored in memory) and read back; zero ranges; a chain of depth 3 with
 * copy on write of partial grains; block status, map and query_changed
 * ("*") against a model of grain states; bounds, read-only handles, CIDs
 * and info.  Random sequences are seeded: the seed is printed, and
 * VDISK_TEST_SEED=N replays one.  Files live in a fresh /tmp directory;
 * qemu-img cross-checks skip when qemu-img is not installed. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vmback/vdisk.h"

static char dir[64];
static bool have_qemu;
static uint64_t seed;

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

/* dir/name in a static buffer (one of 32 rotating). */
static const char *
tp (const char *name)
{
  static char bufs[32][256];
  static int i;
  char *b = bufs[i++ % 32];
  snprintf (b, 256, "%s/%s", dir, name);
  return b;
}

/* xorshift64*: the test's only source of randomness. */
static uint64_t rng;
static uint64_t
rnd (void)
{
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * UINT64_C (2685821657736338717);
}

/* Uniform-ish in [0, n). */
static uint64_t
rndn (uint64_t n)
{
  return n ? rnd () % n : 0;
}

/* Fill buf with random bytes. */
static void
rnd_fill (uint8_t *buf, size_t n)
{
  for (size_t i = 0; i < n; i++)
    buf[i] = (uint8_t) (rnd () >> 32);
}

/* Assert a library call succeeded, printing its message when not. */
#define OK(call) do { struct vb_error e_ = { 0 }; (void) e_; \
    int r_ = (call); if (r_ < 0) print_message ("%s: %s\n", #call, e_.msg); \
    assert_true (r_ >= 0); } while (0)
/* The same with the error variable named E in call. */
#define E (&e_)

/* Create a disk of type t, size bytes, grain sectors (0 = default). */
static void
mk (const char *path, enum vdisk_type t, uint64_t size, uint32_t grain)
{
  struct vdisk_create_opts o = { .type = t, .size = size, .grain_sectors = grain };
  OK (vdisk_create (path, &o, E));
}

/* Open and assert success. */
static struct vdisk *
op (const char *path, unsigned flags)
{
  struct vdisk *d = NULL;
  OK (vdisk_open (path, flags, &d, E));
  return d;
}

/* Close and assert success. */
static void
cl (struct vdisk *d)
{
  OK (vdisk_close (d, E));
}

/* A window [base, base+len) of a disk mirrored in memory. */
struct mirror {
  uint8_t *buf;
  uint64_t base, len;
};

/* Random write of len bytes at off (inside the mirror), mirrored. */
static void
mwrite (struct vdisk *d, struct mirror *m, uint64_t off, size_t len)
{
  assert_true (off >= m->base && off + len <= m->base + m->len);
  uint8_t *b = malloc (len ? len : 1);
  assert_non_null (b);
  rnd_fill (b, len);
  OK (vdisk_pwrite (d, b, len, off, E));
  memcpy (m->buf + (off - m->base), b, len);
  free (b);
}

/* Zero [off, off+len), mirrored. */
static void
mzero (struct vdisk *d, struct mirror *m, uint64_t off, size_t len)
{
  OK (vdisk_zero (d, len, off, E));
  memset (m->buf + (off - m->base), 0, len);
}

/* Compare the disk with the mirror: whole window in random-sized chunks,
 * then random small reads at odd offsets. */
static void
mverify (struct vdisk *d, const struct mirror *m)
{
  size_t cap = 3u << 20;
  uint8_t *b = malloc (cap);
  assert_non_null (b);
  for (uint64_t o = 0; o < m->len;) {
    size_t n = 1 + (size_t) rndn (cap);
    if (n > m->len - o)
      n = (size_t) (m->len - o);
    OK (vdisk_pread (d, b, n, m->base + o, E));
    if (memcmp (b, m->buf + o, n) != 0) {
      size_t i = 0;
      while (b[i] == m->buf[o + i])
        i++;
      print_message ("mismatch at disk offset %" PRIu64 " (seed %" PRIu64 ")\n",
                     m->base + o + i, seed);
      fail ();
    }
    o += n;
  }
  for (int k = 0; k < 200; k++) {
    uint64_t o = rndn (m->len);
    size_t n = 1 + (size_t) rndn (m->len - o < 70000 ? m->len - o : 70000);
    OK (vdisk_pread (d, b, n, m->base + o, E));
    assert_memory_equal (b, m->buf + o, n);
  }
  free (b);
}

/* Write the mirror as a raw file (zeros outside the window, size bytes)
 * and have qemu-img compare it with the disk. */
static void
qemu_compare (const char *path, const struct mirror *m, uint64_t size,
              const char *fmt)
{
  if (!have_qemu)
    return;
  const char *raw = tp ("mirror.raw");
  FILE *f = fopen (raw, "wb");
  assert_non_null (f);
  assert_int_equal (ftruncate (fileno (f), (off_t) size), 0);
  assert_int_equal (fseeko (f, (off_t) m->base, SEEK_SET), 0);
  assert_int_equal (fwrite (m->buf, 1, m->len, f), m->len);
  assert_int_equal (fclose (f), 0);
  int r = sh ("qemu-img compare -q -f %s -F raw '%s' '%s'", fmt, path, raw);
  if (r != 0)
    print_message ("qemu-img compare of %s failed (%d), seed %" PRIu64 "\n", path, r, seed);
  assert_int_equal (r, 0);
  if (strcmp (fmt, "vmdk") == 0)
    assert_int_equal (sh ("qemu-img check -q -f vmdk '%s'", path), 0);
  unlink (raw);
}

/* Invariants of block status over the whole disk: runs tile it, every
 * ZERO run reads as zeros (checked in the mirror), and vdisk_map returns
 * exactly the DATA runs (merged). */
static void
check_status_invariants (struct vdisk *d, const struct mirror *m)
{
  uint64_t size = vdisk_size (d), off = 0;
  struct vdisk_extent_list want = { 0 }, got = { 0 };
  while (off < size) {
    uint64_t pnum = 0;
    int s;
    OK (s = vdisk_block_status (d, off, size - off, &pnum, E));
    assert_true (s == VDISK_STATUS_DATA || s == VDISK_STATUS_ZERO);
    assert_true (pnum > 0 && pnum <= size - off);
    if (s == VDISK_STATUS_ZERO) {
      for (uint64_t o = off; o < off + pnum; o++)
        if (o >= m->base && o < m->base + m->len && m->buf[o - m->base]) {
          print_message ("offset %" PRIu64 " reported zero but holds data\n", o);
          fail ();
        }
    } else {
      assert_int_equal (vdisk_extent_list_add (&want, off, pnum), 0);
    }
    off += pnum;
  }
  OK (vdisk_map (d, 0, &got, E));
  assert_int_equal (got.n, want.n);
  for (size_t i = 0; i < got.n; i++) {
    assert_int_equal (got.v[i].offset, want.v[i].offset);
    assert_int_equal (got.v[i].length, want.v[i].length);
    if (i > 0)   /* merged: no two adjacent entries touch */
      assert_true (got.v[i - 1].offset + got.v[i - 1].length < got.v[i].offset);
  }
  vdisk_extent_list_free (&want);
  vdisk_extent_list_free (&got);
}

/* Random writes and zeroes over a mirror (streamOptimized excluded). */
static void
random_io (struct vdisk *d, struct mirror *m, int nwrites, int nzeros,
           size_t maxlen)
{
  for (int i = 0; i < nwrites + nzeros; i++) {
    uint64_t off = m->base + rndn (m->len);
    size_t len = 1 + (size_t) rndn (maxlen);
    if (len > m->base + m->len - off)
      len = (size_t) (m->base + m->len - off);
    if (rndn ((uint64_t) (nwrites + nzeros)) < (uint64_t) nzeros)
      mzero (d, m, off, len);
    else
      mwrite (d, m, off, len);
  }
}

static const struct {
  enum vdisk_type t;
  const char *fmt;      /* qemu-img format name */
} writable[] = {
  { VDISK_TYPE_RAW, "raw" },
  { VDISK_TYPE_MONOLITHIC_FLAT, "vmdk" },
  { VDISK_TYPE_VMFS, "vmdk" },
  { VDISK_TYPE_TWOGB_FLAT, "vmdk" },
  { VDISK_TYPE_MONOLITHIC_SPARSE, "vmdk" },
  { VDISK_TYPE_TWOGB_SPARSE, "vmdk" },
  { VDISK_TYPE_VMFS_SPARSE, "vmdk" },
};

/* Every random-access writable type: random writes and zeroes mirrored,
 * read back in the same session, after reopening, and by qemu-img. */
static void
test_types_random_io (void **state)
{
  /* not a multiple of the 64 KiB grain: the last grain is partial */
  const uint64_t size = (16u << 20) + 3 * 512;
  for (size_t i = 0; i < sizeof writable / sizeof *writable; i++) {
    enum vdisk_type t = writable[i].t;
    char name[64];
    snprintf (name, sizeof name, "rio-%s.vmdk", vdisk_type_name (t));
    const char *p = tp (name);
    print_message ("type %s\n", vdisk_type_name (t));
    mk (p, t, size, 0);
    struct mirror m = { calloc (1, size), 0, size };
    assert_non_null (m.buf);
    struct vdisk *d = op (p, VDISK_OPEN_RDWR);
    assert_int_equal (vdisk_size (d), size);
    assert_int_equal (vdisk_get_type (d), t);
    assert_string_equal (vdisk_path (d), p);
    mverify (d, &m);               /* a new disk reads as zeros */
    random_io (d, &m, 150, 30, 200000);
    /* the very first and last bytes, and a write up to the end */
    mwrite (d, &m, 0, 1);
    mwrite (d, &m, size - 1, 1);
    mwrite (d, &m, size - 70000, 70000);
    mverify (d, &m);
    check_status_invariants (d, &m);
    OK (vdisk_flush (d, E));
    cl (d);
    d = op (p, VDISK_OPEN_RDONLY);
    mverify (d, &m);
    check_status_invariants (d, &m);
    cl (d);
    qemu_compare (p, &m, size, writable[i].fmt);
    free (m.buf);
  }
}

/* Split types: writes and zeroes across the 2 GiB - 1 MiB extent border. */
static void
test_split_boundary (void **state)
{
  const uint64_t B = 4192256ull * 512;            /* first extent's size */
  const uint64_t size = B + (3u << 20) + 512;
  static const enum vdisk_type types[] = { VDISK_TYPE_TWOGB_SPARSE, VDISK_TYPE_TWOGB_FLAT };
  for (int i = 0; i < 2; i++) {
    const char *p = tp (i ? "split-flat.vmdk" : "split-sparse.vmdk");
    mk (p, types[i], size, 0);
    struct vdisk_info in;
    OK (vdisk_get_info (p, &in, E));
    assert_int_equal (in.n_extents, 2);
    assert_int_equal (in.size, size);
    vdisk_info_free (&in);
    struct mirror m = { calloc (1, 8u << 20), B - (4u << 20), 0 };
    m.len = size - m.base;
    assert_non_null (m.buf);
    struct vdisk *d = op (p, VDISK_OPEN_RDWR);
    mwrite (d, &m, B - 1000, 3000);            /* straddles the border */
    mwrite (d, &m, B - 65536, 131072);
    mzero (d, &m, B - 300, 200000);
    random_io (d, &m, 60, 10, 300000);
    mverify (d, &m);
    cl (d);
    d = op (p, VDISK_OPEN_RDONLY);
    mverify (d, &m);
    uint8_t z[4096], zz[4096] = { 0 };
    OK (vdisk_pread (d, z, sizeof z, 12345678, E));   /* outside the window */
    assert_memory_equal (z, zz, sizeof z);
    cl (d);
    qemu_compare (p, &m, size, "vmdk");
    free (m.buf);
    vdisk_unlink (p, NULL);
  }
}

/* streamOptimized: writes in increasing order (partial grains, gaps),
 * read back after close; writing backwards is refused. */
static void
test_stream_sequential (void **state)
{
  const uint64_t size = 8u << 20;
  const char *p = tp ("stream.vmdk");
  mk (p, VDISK_TYPE_STREAM_OPTIMIZED, size, 0);
  struct mirror m = { calloc (1, size), 0, size };
  assert_non_null (m.buf);
  struct vdisk *d = op (p, VDISK_OPEN_RDWR);
  uint64_t off = 100;
  while (off < size - 1) {
    size_t len = 1 + (size_t) rndn (150000);
    if (len > size - off)
      len = (size_t) (size - off);
    mwrite (d, &m, off, len);
    off += len + rndn (3) * rndn (300000);
  }
  uint8_t b[16] = { 1 };
  struct vb_error e = { 0 };
  int r = vdisk_pwrite (d, b, sizeof b, 0, &e);
  assert_true (r < 0);
  assert_true (strlen (e.msg) > 0);
  cl (d);
  d = op (p, VDISK_OPEN_RDONLY);
  assert_int_equal (vdisk_get_type (d), VDISK_TYPE_STREAM_OPTIMIZED);
  mverify (d, &m);
  check_status_invariants (d, &m);
  cl (d);
  qemu_compare (p, &m, size, "vmdk");
  free (m.buf);
}

/* --- a chain of depth 3, with a model of each layer's grain states --- */

enum gstate { G_UNALLOC = 0, G_DATA, G_ZERO };
#define CG 65536u                   /* grain of the chain disks */
#define CSIZE (8u << 20)
#define CGRAINS (CSIZE / CG)

struct layer_model {
  enum gstate g[CGRAINS];
  bool has_parent;
};

/* Apply a write of [off, off+len) to the model: touched grains are data. */
static void
model_write (struct layer_model *lm, uint64_t off, uint64_t len)
{
  for (uint64_t g = off / CG; g * CG < off + len; g++)
    lm->g[g] = G_DATA;
}

/* Apply vdisk_zero to the model: partial grains become data (written
 * with zeros), whole grains read as zeros in this layer. */
static void
model_zero (struct layer_model *lm, uint64_t off, uint64_t len)
{
  for (uint64_t g = off / CG; g * CG < off + len; g++) {
    bool whole = g * CG >= off && (g + 1) * CG <= off + len;
    if (!whole)
      lm->g[g] = G_DATA;
    else if (lm->g[g] == G_DATA || (lm->g[g] == G_UNALLOC && lm->has_parent))
      lm->g[g] = G_ZERO;
  }
}

/* Write through the disk, the mirror and the model. */
static void
cw (struct vdisk *d, struct mirror *m, struct layer_model *lm, uint64_t off,
    size_t len)
{
  mwrite (d, m, off, len);
  model_write (lm, off, len);
}

/* Zero through the disk, the mirror and the model. */
static void
cz (struct vdisk *d, struct mirror *m, struct layer_model *lm, uint64_t off,
    size_t len)
{
  mzero (d, m, off, len);
  model_zero (lm, off, len);
}

/* Status of grain g as the chain (top first) should report it. */
static int
model_chain_status (struct layer_model **layers, int n, uint64_t g)
{
  for (int i = 0; i < n; i++) {
    if (layers[i]->g[g] == G_DATA)
      return VDISK_STATUS_DATA;
    if (layers[i]->g[g] == G_ZERO)
      return VDISK_STATUS_ZERO;
  }
  return VDISK_STATUS_ZERO;
}

/* Compare block_status (per grain and as runs), block_status_top and map
 * with the model of the chain layers[0..n) (top first). */
static void
check_model (struct vdisk *d, struct layer_model **layers, int n)
{
  for (uint64_t g = 0; g < CGRAINS; g++) {
    uint64_t pnum;
    int s, want = model_chain_status (layers, n, g);
    OK (s = vdisk_block_status (d, g * CG, CG, &pnum, E));
    if (s != want)
      print_message ("grain %" PRIu64 ": status %d, model %d\n", g, s, want);
    assert_int_equal (s, want);
    assert_int_equal (pnum, CG);
    int top_want = layers[0]->g[g] == G_DATA ? VDISK_STATUS_DATA
      : layers[0]->g[g] == G_ZERO ? VDISK_STATUS_ZERO : 0;
    OK (s = vdisk_block_status_top (d, g * CG, CG, &pnum, E));
    if (s != top_want)
      print_message ("grain %" PRIu64 ": top status %d, model %d\n", g, s, top_want);
    assert_int_equal (s, top_want);
  }
  /* runs: from each grain start, the run extends exactly while the model
   * status stays the same */
  for (uint64_t g = 0; g < CGRAINS; g += 1 + rndn (7)) {
    uint64_t pnum, end = g;
    int s;
    OK (s = vdisk_block_status (d, g * CG, CSIZE - g * CG, &pnum, E));
    while (end < CGRAINS && model_chain_status (layers, n, end) == s)
      end++;
    /* a driver may split runs at table borders, never merge unlike ones */
    assert_true (pnum % CG == 0 && pnum > 0 && g * CG + pnum <= end * CG);
  }
  /* map: the DATA grains, merged */
  struct vdisk_extent_list l = { 0 };
  OK (vdisk_map (d, 0, &l, E));
  size_t k = 0;
  for (uint64_t g = 0; g < CGRAINS;) {
    if (model_chain_status (layers, n, g) != VDISK_STATUS_DATA) {
      g++;
      continue;
    }
    uint64_t e = g;
    while (e < CGRAINS && model_chain_status (layers, n, e) == VDISK_STATUS_DATA)
      e++;
    assert_true (k < l.n);
    assert_int_equal (l.v[k].offset, g * CG);
    assert_int_equal (l.v[k].length, (e - g) * CG);
    k++;
    g = e;
  }
  assert_int_equal (k, l.n);
  vdisk_extent_list_free (&l);
  /* query_changed '*' (a separate open) is the map of the chain, once
   * the writer flushed its metadata */
  struct vdisk_extent_list q = { 0 }, m2 = { 0 };
  OK (vdisk_flush (d, E));
  OK (vdisk_query_changed (vdisk_path (d), "*", 0, &q, E));
  OK (vdisk_map (d, 0, &m2, E));
  assert_int_equal (q.n, m2.n);
  for (size_t i = 0; i < q.n; i++) {
    assert_int_equal (q.v[i].offset, m2.v[i].offset);
    assert_int_equal (q.v[i].length, m2.v[i].length);
  }
  vdisk_extent_list_free (&q);
  vdisk_extent_list_free (&m2);
}

/* Allocated bytes of the top layer as info reports, from the model. */
static uint64_t
model_allocated (const struct layer_model *lm)
{
  uint64_t n = 0;
  for (uint64_t g = 0; g < CGRAINS; g++)
    n += lm->g[g] == G_DATA;
  return n * CG;
}

/* base <- c1 <- c2: partial-grain COW, zeroes over parent data, reads at
 * every level, parents untouched, status/map/info against the model. */
static void
test_chain3 (void **state)
{
  const char *bp = tp ("c-base.vmdk"), *c1p = tp ("c-1.vmdk"), *c2p = tp ("c-2.vmdk");
  mk (bp, VDISK_TYPE_MONOLITHIC_SPARSE, CSIZE, CG / 512);
  static struct layer_model lb, l1, l2;
  memset (&lb, 0, sizeof lb);
  memset (&l1, 0, sizeof l1);
  memset (&l2, 0, sizeof l2);
  l1.has_parent = l2.has_parent = true;
  struct mirror mb = { calloc (1, CSIZE), 0, CSIZE };
  assert_non_null (mb.buf);

  /* base: data in the first half, a zeroed run inside it */
  struct vdisk *d = op (bp, VDISK_OPEN_RDWR);
  cw (d, &mb, &lb, 0, 4u << 20);
  cw (d, &mb, &lb, 6u << 20, 1000);                 /* one grain, partially */
  cz (d, &mb, &lb, 10 * CG, 3 * CG);                /* whole grains -> zero */
  cz (d, &mb, &lb, 20 * CG + 5, 100);               /* inside a grain */
  for (int i = 0; i < 20; i++) {
    uint64_t o = rndn (CSIZE - 100000);
    cw (d, &mb, &lb, o, 1 + rndn (100000));
  }
  mverify (d, &mb);
  struct layer_model *chain1[] = { &lb };
  check_model (d, chain1, 1);
  cl (d);
  struct vdisk_info in;
  OK (vdisk_get_info (bp, &in, E));
  assert_int_equal (in.allocated, model_allocated (&lb));
  vdisk_info_free (&in);

  /* c1: partial grains over base data (COW), zeroes over base data */
  OK (vdisk_create_child (bp, c1p, 0, E));
  struct mirror m1 = { malloc (CSIZE), 0, CSIZE };
  assert_non_null (m1.buf);
  memcpy (m1.buf, mb.buf, CSIZE);
  d = op (c1p, VDISK_OPEN_RDWR);
  assert_int_equal (vdisk_get_type (d), VDISK_TYPE_MONOLITHIC_SPARSE);
  mverify (d, &m1);                                   /* reads the parent */
  cw (d, &m1, &l1, 5 * CG + 1000, 100);               /* middle of a grain */
  cw (d, &m1, &l1, 7 * CG - 10, 20);                  /* across two grains */
  cw (d, &m1, &l1, 30 * CG + 7, 3 * CG);              /* unaligned, 4 grains */
  cz (d, &m1, &l1, 40 * CG, 2 * CG);                  /* zero whole grains of data */
  cz (d, &m1, &l1, 50 * CG + 1, CG);                  /* zero, two partial grains */
  cz (d, &m1, &l1, 100 * CG, 2 * CG);                 /* zero where base has nothing */
  for (int i = 0; i < 15; i++) {
    uint64_t o = rndn (CSIZE - 50000);
    cw (d, &m1, &l1, o, 1 + rndn (50000));
  }
  mverify (d, &m1);
  struct layer_model *chain2[] = { &l1, &lb };
  check_model (d, chain2, 2);
  cl (d);
  /* COW: grain 5 of c1 alone holds the base's bytes around the new ones */
  d = op (c1p, VDISK_OPEN_RDONLY | VDISK_OPEN_NOPARENT);
  uint8_t *g = malloc (CG);
  OK (vdisk_pread (d, g, CG, 5 * CG, E));
  assert_memory_equal (g, m1.buf + 5 * CG, CG);
  OK (vdisk_pread (d, g, CG, 30 * CG, E));
  assert_memory_equal (g, m1.buf + 30 * CG, CG);
  /* a grain c1 never touched reads as zeros without the parent */
  OK (vdisk_pread (d, g, CG, 60 * CG, E));
  assert_true (l1.g[60] != G_DATA || g[0] == m1.buf[60 * CG]);
  if (l1.g[60] == G_UNALLOC)
    for (size_t i = 0; i < CG; i++)
      assert_int_equal (g[i], 0);
  cl (d);
  free (g);

  /* c2 */
  OK (vdisk_create_child (c1p, c2p, VDISK_TYPE_MONOLITHIC_SPARSE, E));
  struct mirror m2 = { malloc (CSIZE), 0, CSIZE };
  assert_non_null (m2.buf);
  memcpy (m2.buf, m1.buf, CSIZE);
  d = op (c2p, VDISK_OPEN_RDWR);
  cw (d, &m2, &l2, 5 * CG + 1050, 10);               /* over c1's COW grain */
  cz (d, &m2, &l2, 30 * CG, CG);                     /* zero c1 data */
  cw (d, &m2, &l2, CSIZE - 3, 3);                    /* the very end */
  for (int i = 0; i < 10; i++) {
    uint64_t o = rndn (CSIZE - 20000);
    if (rndn (3) == 0)
      cz (d, &m2, &l2, o, 1 + rndn (200000) % (CSIZE - o));
    else
      cw (d, &m2, &l2, o, 1 + rndn (20000));
  }
  mverify (d, &m2);
  struct layer_model *chain3[] = { &l2, &l1, &lb };
  check_model (d, chain3, 3);
  cl (d);
  d = op (c2p, VDISK_OPEN_RDONLY);
  mverify (d, &m2);
  check_model (d, chain3, 3);
  cl (d);

  /* parents are untouched by their children's writes */
  d = op (bp, VDISK_OPEN_RDONLY);
  mverify (d, &mb);
  cl (d);
  d = op (c1p, VDISK_OPEN_RDONLY);
  mverify (d, &m1);
  cl (d);

  /* info of the chain */
  struct vdisk_info i1, i2;
  OK (vdisk_get_info (c1p, &i1, E));
  OK (vdisk_get_info (c2p, &i2, E));
  assert_int_equal (i2.chain_len, 3);
  assert_string_equal (i2.chain[0], c2p);
  assert_non_null (strstr (i2.chain[1], "c-1.vmdk"));
  assert_non_null (strstr (i2.chain[2], "c-base.vmdk"));
  assert_int_equal (i2.parent_cid, i1.cid);
  assert_int_equal (i2.allocated, model_allocated (&l2));
  assert_int_equal (i1.allocated, model_allocated (&l1));
  assert_int_equal (i2.type, VDISK_TYPE_MONOLITHIC_SPARSE);
  assert_int_equal (i2.size, CSIZE);
  vdisk_info_free (&i1);
  vdisk_info_free (&i2);

  /* qemu-img reads the same chain */
  if (have_qemu) {
    qemu_compare (c2p, &m2, CSIZE, "vmdk");
    qemu_compare (c1p, &m1, CSIZE, "vmdk");
  }

  /* a clone flattens the chain */
  for (size_t i = 0; i < sizeof writable / sizeof *writable; i++) {
    struct vdisk_create_opts o = { .type = writable[i].t };
    const char *cp = tp ("c-clone.vmdk");
    OK (vdisk_clone (c2p, cp, &o, NULL, NULL, E));
    d = op (cp, VDISK_OPEN_RDONLY);
    assert_int_equal (vdisk_get_type (d), writable[i].t);
    assert_int_equal (vdisk_size (d), CSIZE);
    mverify (d, &m2);
    cl (d);
    OK (vdisk_unlink (cp, E));
    assert_int_not_equal (access (cp, F_OK), 0);
  }

  /* merge c2 into c1, then c1 into the base: content kept, files gone */
  OK (vdisk_merge (c2p, E));
  assert_int_not_equal (access (c2p, F_OK), 0);
  d = op (c1p, VDISK_OPEN_RDONLY);
  mverify (d, &m2);
  cl (d);
  OK (vdisk_merge (c1p, E));
  d = op (bp, VDISK_OPEN_RDONLY);
  mverify (d, &m2);
  cl (d);
  free (mb.buf);
  free (m1.buf);
  free (m2.buf);
}

/* Exact block status on a fresh sparse disk with one byte written. */
static void
test_block_status_exact (void **state)
{
  const char *p = tp ("bs.vmdk");
  mk (p, VDISK_TYPE_MONOLITHIC_SPARSE, 1u << 20, 0);
  struct vdisk *d = op (p, VDISK_OPEN_RDWR);
  uint64_t pnum;
  int s;
  OK (s = vdisk_block_status (d, 0, 1u << 20, &pnum, E));
  assert_int_equal (s, VDISK_STATUS_ZERO);
  assert_int_equal (pnum, 1u << 20);
  uint8_t one = 7;
  OK (vdisk_pwrite (d, &one, 1, 3 * 65536 + 5, E));
  OK (s = vdisk_block_status (d, 0, 1u << 20, &pnum, E));
  assert_int_equal (s, VDISK_STATUS_ZERO);
  assert_int_equal (pnum, 3 * 65536);
  OK (s = vdisk_block_status (d, 3 * 65536 + 100, 1u << 20, &pnum, E));
  assert_int_equal (s, VDISK_STATUS_DATA);       /* len clipped to the disk */
  assert_int_equal (pnum, 65536 - 100);
  OK (s = vdisk_block_status (d, 3 * 65536, 10, &pnum, E));
  assert_int_equal (s, VDISK_STATUS_DATA);
  assert_int_equal (pnum, 10);
  OK (s = vdisk_block_status_top (d, 4 * 65536, 65536, &pnum, E));
  assert_int_equal (s, 0);                       /* unallocated, no parent */
  struct vdisk_extent_list l = { 0 };
  OK (vdisk_map (d, 0, &l, E));
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, 3 * 65536);
  assert_int_equal (l.v[0].length, 65536);
  vdisk_extent_list_free (&l);
  OK (vdisk_map (d, 3 * 65536 + 1000, &l, E));    /* from inside the grain */
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, 3 * 65536 + 1000);
  vdisk_extent_list_free (&l);
  OK (vdisk_map (d, 4 * 65536, &l, E));
  assert_int_equal (l.n, 0);
  vdisk_extent_list_free (&l);
  cl (d);
  /* query_changed '*' with a start offset; past the end is refused */
  OK (vdisk_query_changed (p, "*", 2 * 65536, &l, E));
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, 3 * 65536);
  vdisk_extent_list_free (&l);
  OK (vdisk_query_changed (p, "*", 1u << 20, &l, E));
  assert_int_equal (l.n, 0);
  vdisk_extent_list_free (&l);
  struct vb_error e = { 0 };
  assert_int_equal (vdisk_query_changed (p, "*", (1u << 20) + 1, &l, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "bs.vmdk"));
  vdisk_extent_list_free (&l);
  /* a flat disk: host holes are zeros (as qemu-img map says), written
   * blocks data */
  const char *f = tp ("bs-flat.vmdk");
  mk (f, VDISK_TYPE_MONOLITHIC_FLAT, 1u << 20, 0);
  OK (vdisk_query_changed (f, "*", 0, &l, E));
  assert_int_equal (l.n, 0);
  d = op (f, VDISK_OPEN_RDWR);
  uint8_t blk[8192];
  memset (blk, 9, sizeof blk);
  OK (vdisk_pwrite (d, blk, sizeof blk, 65536, E));
  cl (d);
  OK (vdisk_query_changed (f, "*", 0, &l, E));
  assert_int_equal (l.n, 1);
  assert_true (l.v[0].offset <= 65536 && l.v[0].offset + l.v[0].length >= 65536 + 8192);
  assert_true (l.v[0].length < 1u << 20);
  vdisk_extent_list_free (&l);
}

/* I/O outside the disk is refused with -EINVAL and touches nothing. */
static void
test_out_of_range (void **state)
{
  const uint64_t size = 1u << 20;
  static const enum vdisk_type types[] = { VDISK_TYPE_RAW, VDISK_TYPE_MONOLITHIC_SPARSE,
    VDISK_TYPE_MONOLITHIC_FLAT, VDISK_TYPE_VMFS_SPARSE };
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    char name[64];
    snprintf (name, sizeof name, "oor-%zu.vmdk", i);
    const char *p = tp (name);
    mk (p, types[i], size, 0);
    struct vdisk *d = op (p, VDISK_OPEN_RDWR);
    uint8_t b[1024] = { 0 };
    const struct { uint64_t off; size_t n; } bad[] = {
      { size, 1 }, { size - 1, 2 }, { size + 512, 0 }, { UINT64_MAX, 1 },
      { UINT64_MAX - 10, 20 }, { 1, SIZE_MAX }, { 0, size + 1 },
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
      struct vb_error e = { 0 };
      size_t n = bad[k].n;
      if (n <= sizeof b) {
        assert_int_equal (vdisk_pread (d, b, n, bad[k].off, &e), -EINVAL);
        assert_non_null (strstr (e.msg, "outside"));
        vb_err_clear (&e);
        assert_int_equal (vdisk_pwrite (d, b, n, bad[k].off, &e), -EINVAL);
        vb_err_clear (&e);
      }
      assert_int_equal (vdisk_zero (d, n, bad[k].off, &e), -EINVAL);
    }
    /* empty ranges at the end are fine */
    OK (vdisk_pread (d, b, 0, size, E));
    OK (vdisk_pwrite (d, b, 0, size, E));
    uint64_t pnum;
    struct vb_error e = { 0 };
    assert_true (vdisk_block_status (d, size, 1, &pnum, &e) < 0);
    assert_true (vdisk_block_status (d, 0, 0, &pnum, &e) < 0);
    assert_true (vdisk_block_status_top (d, size + 1, 1, &pnum, &e) < 0);
    cl (d);
    /* nothing was written: reads as zeros */
    d = op (p, VDISK_OPEN_RDONLY);
    struct mirror m = { calloc (1, size), 0, size };
    mverify (d, &m);
    free (m.buf);
    cl (d);
  }
}

/* A read-only handle refuses writes and zeroes; the files do not change
 * (CID kept). */
static void
test_readonly (void **state)
{
  static const enum vdisk_type types[] = { VDISK_TYPE_RAW, VDISK_TYPE_MONOLITHIC_SPARSE,
    VDISK_TYPE_MONOLITHIC_FLAT, VDISK_TYPE_VMFS_SPARSE, VDISK_TYPE_TWOGB_SPARSE };
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    char name[64];
    snprintf (name, sizeof name, "ro-%zu.vmdk", i);
    const char *p = tp (name);
    mk (p, types[i], 1u << 20, 0);
    struct vdisk_info before, after;
    OK (vdisk_get_info (p, &before, E));
    struct vdisk *d = op (p, VDISK_OPEN_RDONLY);
    uint8_t b[100];
    memset (b, 0x5a, sizeof b);
    struct vb_error e = { 0 };
    assert_int_equal (vdisk_pwrite (d, b, sizeof b, 512, &e), -EROFS);
    assert_non_null (strstr (e.msg, "read-only"));
    vb_err_clear (&e);
    assert_int_equal (vdisk_zero (d, 65536, 0, &e), -EROFS);
    cl (d);
    OK (vdisk_get_info (p, &after, E));
    assert_int_equal (before.cid, after.cid);
    assert_int_equal (after.allocated, before.allocated);
    vdisk_info_free (&before);
    vdisk_info_free (&after);
    d = op (p, VDISK_OPEN_RDONLY);
    OK (vdisk_pread (d, b, sizeof b, 512, E));
    for (size_t k = 0; k < sizeof b; k++)
      assert_int_equal (b[k], 0);
    cl (d);
  }
}

/* CIDs: a write session gives a new CID once, a read session none; a
 * child notices when its parent was written after it was made. */
static void
test_cid (void **state)
{
  const char *p = tp ("cid.vmdk"), *c = tp ("cid-child.vmdk");
  mk (p, VDISK_TYPE_MONOLITHIC_SPARSE, 1u << 20, 0);
  struct vdisk_info a, b;
  OK (vdisk_get_info (p, &a, E));
  assert_true (a.cid != 0xffffffffu);
  assert_int_equal (a.parent_cid, 0xffffffffu);
  struct vdisk *d = op (p, VDISK_OPEN_RDWR);     /* opened writable, no write */
  cl (d);
  OK (vdisk_get_info (p, &b, E));
  assert_int_equal (a.cid, b.cid);
  vdisk_info_free (&b);
  d = op (p, VDISK_OPEN_RDWR);
  uint8_t x[10] = { 1 };
  OK (vdisk_pwrite (d, x, sizeof x, 0, E));
  OK (vdisk_pwrite (d, x, sizeof x, 100000, E));
  cl (d);
  OK (vdisk_get_info (p, &b, E));
  assert_int_not_equal (a.cid, b.cid);
  /* the child records the parent's current CID */
  OK (vdisk_create_child (p, c, 0, E));
  struct vdisk_info ci;
  OK (vdisk_get_info (c, &ci, E));
  assert_int_equal (ci.parent_cid, b.cid);
  assert_int_equal (ci.chain_len, 2);
  vdisk_info_free (&ci);
  vdisk_info_free (&a);
  vdisk_info_free (&b);
  /* writing the parent breaks the child: refused with a clear message */
  d = op (p, VDISK_OPEN_RDWR);
  OK (vdisk_pwrite (d, x, sizeof x, 0, E));
  cl (d);
  struct vb_error e = { 0 };
  assert_int_equal (vdisk_open (c, VDISK_OPEN_RDONLY, &d, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "CID mismatch"));
  /* but the child alone still opens */
  d = op (c, VDISK_OPEN_RDONLY | VDISK_OPEN_NOPARENT);
  cl (d);
}

/* Info fields of flat, sparse, vmfs and tracked disks; child types. */
static void
test_info (void **state)
{
  const char *p = tp ("info-flat.vmdk");
  struct vdisk_create_opts o = { .type = VDISK_TYPE_MONOLITHIC_FLAT, .size = 3u << 20,
    .adapter_type = "ide" };
  OK (vdisk_create (p, &o, E));
  struct vdisk_info in;
  OK (vdisk_get_info (p, &in, E));
  assert_int_equal (in.type, VDISK_TYPE_MONOLITHIC_FLAT);
  assert_int_equal (in.size, 3u << 20);
  assert_int_equal (in.allocated, 0);      /* a sparse host file: all hole */
  assert_string_equal (in.adapter, "ide");
  assert_true (strlen (in.uuid) > 10);
  assert_int_equal (in.chain_len, 1);
  assert_int_equal (in.n_extents, 1);
  assert_non_null (strstr (in.extents[0], "info-flat-flat.vmdk"));
  assert_int_equal (in.ctk_state, 0);
  assert_string_equal (in.ctk_path, "");
  vdisk_info_free (&in);

  /* a sparse disk with tracking */
  const char *s = tp ("info-sp.vmdk");
  struct vdisk_create_opts so = { .type = VDISK_TYPE_MONOLITHIC_SPARSE, .size = 5u << 20,
    .ctk = true };
  OK (vdisk_create (s, &so, E));
  OK (vdisk_get_info (s, &in, E));
  assert_int_equal (in.allocated, 0);
  assert_string_equal (in.adapter, "lsilogic");
  assert_int_equal (in.ctk_state, 1);
  assert_non_null (strstr (in.ctk_path, "info-sp-ctk.vmdk"));
  assert_true (strchr (in.change_id, '/') != NULL);
  assert_int_equal (in.n_extents, 1);
  assert_string_equal (in.extents[0], s);
  assert_true (in.file_bytes > 0);
  char id0[128];
  snprintf (id0, sizeof id0, "%s", in.change_id);
  vdisk_info_free (&in);
  struct vdisk *d = op (s, VDISK_OPEN_RDWR);
  uint8_t buf[70000];
  memset (buf, 3, sizeof buf);
  OK (vdisk_pwrite (d, buf, sizeof buf, 65536 * 2 + 1, E));
  cl (d);
  OK (vdisk_get_info (s, &in, E));
  assert_int_equal (in.allocated, 2 * 65536);
  assert_int_equal (in.ctk_state, 1);
  assert_string_not_equal (in.change_id, id0);
  vdisk_info_free (&in);
  /* query_changed since the first changeId: the written blocks */
  struct vdisk_extent_list l = { 0 };
  OK (vdisk_query_changed (s, id0, 0, &l, E));
  assert_int_equal (l.n, 1);
  assert_int_equal (l.v[0].offset, 2 * 65536);
  assert_int_equal (l.v[0].length, 2 * 65536);
  vdisk_extent_list_free (&l);

  /* a vmfs disk: its default child is a vmfsSparse delta */
  const char *v = tp ("info-vmfs.vmdk"), *vc = tp ("info-vmfs-000001.vmdk");
  mk (v, VDISK_TYPE_VMFS, 2u << 20, 0);
  OK (vdisk_create_child (v, vc, 0, E));
  OK (vdisk_get_info (vc, &in, E));
  assert_int_equal (in.type, VDISK_TYPE_VMFS_SPARSE);
  assert_int_equal (in.chain_len, 2);
  assert_non_null (strstr (in.extents[0], "info-vmfs-000001-delta.vmdk"));
  vdisk_info_free (&in);
}

/* Bad create/open requests fail with one-line messages. */
static void
test_errors (void **state)
{
  struct vb_error e = { 0 };
  struct vdisk_create_opts o = { .type = VDISK_TYPE_MONOLITHIC_SPARSE, .size = 0 };
  assert_int_equal (vdisk_create (tp ("e0.vmdk"), &o, &e), -EINVAL);
  vb_err_clear (&e);
  o.size = VDISK_MAX_SIZE + 1;
  assert_int_equal (vdisk_create (tp ("e1.vmdk"), &o, &e), -EINVAL);
  vb_err_clear (&e);
  o.size = 1u << 20;
  o.type = VDISK_TYPE_SE_SPARSE;
  assert_int_equal (vdisk_create (tp ("e2.vmdk"), &o, &e), -ENOTSUP);
  vb_err_clear (&e);
  o.type = VDISK_TYPE_MONOLITHIC_SPARSE;
  OK (vdisk_create (tp ("e3.vmdk"), &o, E));
  assert_int_equal (vdisk_create (tp ("e3.vmdk"), &o, &e), -EEXIST);
  vb_err_clear (&e);
  /* an extent file in the way: nothing is left behind */
  assert_int_equal (sh ("touch '%s'", tp ("e4-flat.vmdk")), 0);
  o.type = VDISK_TYPE_MONOLITHIC_FLAT;
  assert_int_equal (vdisk_create (tp ("e4.vmdk"), &o, &e), -EEXIST);
  assert_int_not_equal (access (tp ("e4.vmdk"), F_OK), 0);
  vb_err_clear (&e);
  assert_int_equal (vdisk_create_child (tp ("e3.vmdk"), tp ("e5.vmdk"),
                                        VDISK_TYPE_MONOLITHIC_FLAT, &e), -EINVAL);
  assert_int_not_equal (access (tp ("e5.vmdk"), F_OK), 0);
  vb_err_clear (&e);
  struct vdisk *d;
  assert_int_equal (vdisk_open (tp ("nothere.vmdk"), VDISK_OPEN_RDONLY, &d, &e), -ENOENT);
  assert_non_null (strstr (e.msg, "nothere.vmdk"));
  vb_err_clear (&e);
  assert_int_equal (vdisk_merge (tp ("e3.vmdk"), &e), -EINVAL);
  assert_non_null (strstr (e.msg, "no parent"));
  vb_err_clear (&e);
  assert_true (vdisk_grow (tp ("e3.vmdk"), 512, &e) < 0);  /* shrinking */
  assert_non_null (strstr (e.msg, "not supported"));
  vb_err_clear (&e);
  assert_int_equal (vdisk_rename (tp ("e3.vmdk"), tp ("e3.vmdk"), &e), -EEXIST);
  /* type names */
  assert_string_equal (vdisk_type_name (VDISK_TYPE_TWOGB_SPARSE), "twoGbMaxExtentSparse");
  assert_int_equal (vdisk_type_from_name ("streamoptimized"), VDISK_TYPE_STREAM_OPTIMIZED);
}

/* Grow (flat in place, sparse by rewrite) keeps the data and tracks the
 * new size; the new area reads as zeros and is writable. */
static void
test_grow (void **state)
{
  static const enum vdisk_type types[] = { VDISK_TYPE_RAW, VDISK_TYPE_MONOLITHIC_FLAT,
    VDISK_TYPE_MONOLITHIC_SPARSE, VDISK_TYPE_TWOGB_SPARSE, VDISK_TYPE_VMFS };
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    char name[64];
    snprintf (name, sizeof name, "grow-%zu.vmdk", i);
    const char *p = tp (name);
    const uint64_t s0 = 1u << 20, s1 = (3u << 20) + 512;
    mk (p, types[i], s0, 0);
    struct mirror m = { calloc (1, s1), 0, s0 };
    struct vdisk *d = op (p, VDISK_OPEN_RDWR);
    random_io (d, &m, 20, 0, 100000);
    cl (d);
    OK (vdisk_grow (p, s1, E));
    m.len = s1;
    d = op (p, VDISK_OPEN_RDWR);
    assert_int_equal (vdisk_size (d), s1);
    assert_int_equal (vdisk_get_type (d), types[i]);
    mverify (d, &m);
    mwrite (d, &m, s1 - 100000, 100000);
    cl (d);
    d = op (p, VDISK_OPEN_RDONLY);
    mverify (d, &m);
    cl (d);
    free (m.buf);
  }
}

/* Defragment, shrink and grow rewrite a sparse file: the disk keeps its
 * CID (its children still open), ddb.uuid, adapter and grain size; a
 * renamed child (into another directory) still finds its parent. */
static void
test_rewrite_keeps_identity (void **state)
{
  const char *b = tp ("id-base.vmdk"), *c = tp ("id-child.vmdk");
  struct vdisk_create_opts o = { .type = VDISK_TYPE_MONOLITHIC_SPARSE, .size = 4u << 20,
    .grain_sectors = 256, .adapter_type = "buslogic", .ctk = true };
  OK (vdisk_create (b, &o, E));
  struct mirror m = { calloc (1, 5u << 20), 0, 4u << 20 };
  struct vdisk *d = op (b, VDISK_OPEN_RDWR);
  random_io (d, &m, 20, 5, 300000);
  cl (d);
  OK (vdisk_create_child (b, c, 0, E));
  struct vdisk_info i0, i1;
  OK (vdisk_get_info (b, &i0, E));
  int (*ops[]) (const char *, struct vb_error *) = { vdisk_defragment, vdisk_shrink };
  for (int k = 0; k < 3; k++) {
    if (k < 2)
      OK (ops[k] (b, E));
    else
      OK (vdisk_grow (b, 5u << 20, E));
    OK (vdisk_get_info (b, &i1, E));
    assert_int_equal (i1.cid, i0.cid);
    assert_string_equal (i1.uuid, i0.uuid);
    assert_string_equal (i1.adapter, "buslogic");
    assert_int_equal (i1.ctk_state, 1);
    assert_int_equal (i1.size, k < 2 ? 4u << 20 : 5u << 20);
    vdisk_info_free (&i1);
    d = op (c, VDISK_OPEN_RDONLY);         /* the child still matches */
    mverify (d, &m);
    cl (d);
    d = op (b, VDISK_OPEN_RDONLY);
    m.len = vdisk_size (d);
    mverify (d, &m);
    uint64_t pnum;
    int st;
    OK (st = vdisk_block_status (d, 0, 1u << 20, &pnum, E));
    assert_true (pnum % (256 * 512) == 0 || pnum == (1u << 20));  /* 128 KiB grains */
    cl (d);
    m.len = 4u << 20;
  }
  vdisk_info_free (&i0);
  /* rename the child into a subdirectory: the relative parent hint is
   * rewritten, the chain still reads */
  assert_int_equal (sh ("mkdir -p '%s'", tp ("sub")), 0);
  const char *c2 = tp ("sub/moved.vmdk");
  OK (vdisk_rename (c, c2, E));
  assert_int_not_equal (access (c, F_OK), 0);
  d = op (c2, VDISK_OPEN_RDONLY);
  mverify (d, &m);
  cl (d);
  free (m.buf);
}

/* Make the scratch directory, pick the seed, detect qemu-img. */
static int
setup (void **state)
{
  snprintf (dir, sizeof dir, "/tmp/test-vdisk.XXXXXX");
  if (!mkdtemp (dir))
    return -1;
  have_qemu = sh ("qemu-img --version >/dev/null 2>&1") == 0;
  const char *s = getenv ("VDISK_TEST_SEED");
  seed = s ? strtoull (s, NULL, 0) : (uint64_t) time (NULL) ^ ((uint64_t) getpid () << 32);
  if (!seed)
    seed = 1;
  printf ("test-vdisk: seed %" PRIu64 " (replay with VDISK_TEST_SEED=%" PRIu64 ")\n",
          seed, seed);
  fflush (stdout);
  if (!have_qemu)
    printf ("test-vdisk: qemu-img not installed, interop checks skipped\n");
  return 0;
}

/* Reseed before each test so one test's seed replays it alone. */
static int
reseed (void **state)
{
  rng = seed;
  return 0;
}

/* Remove the scratch directory. */
static int
teardown (void **state)
{
  sh ("rm -rf '%s'", dir);
  return 0;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup (test_types_random_io, reseed),
    cmocka_unit_test_setup (test_split_boundary, reseed),
    cmocka_unit_test_setup (test_stream_sequential, reseed),
    cmocka_unit_test_setup (test_chain3, reseed),
    cmocka_unit_test_setup (test_block_status_exact, reseed),
    cmocka_unit_test_setup (test_out_of_range, reseed),
    cmocka_unit_test_setup (test_readonly, reseed),
    cmocka_unit_test_setup (test_cid, reseed),
    cmocka_unit_test_setup (test_info, reseed),
    cmocka_unit_test_setup (test_errors, reseed),
    cmocka_unit_test_setup (test_grow, reseed),
    cmocka_unit_test_setup (test_rewrite_keeps_identity, reseed),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
