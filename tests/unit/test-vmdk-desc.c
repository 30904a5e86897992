/* Tests of the VMDK text descriptor parser and writer (vmdk-desc.c):
 * real descriptors made by qemu-img, the ESXi-style samples of the fuzz
 * corpus, parse -> format -> parse round trips, every rejection listed in
 * vmdk-desc.h, ddb get/set/remove and unknown keys surviving a rewrite.
 * Tests needing qemu-img skip when it is not installed. */
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
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vdisk/vdisk-int.h"
#include "vdisk/vmdk-desc.h"

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

/* Read a whole file (test helper; asserts it exists). */
static char *
slurp (const char *path, size_t *len)
{
  FILE *f = fopen (path, "rb");
  if (!f)
    print_message ("cannot open %s\n", path);
  assert_non_null (f);
  fseek (f, 0, SEEK_END);
  long n = ftell (f);
  fseek (f, 0, SEEK_SET);
  char *b = malloc ((size_t) n + 1);
  assert_non_null (b);
  assert_int_equal (fread (b, 1, (size_t) n, f), (size_t) n);
  b[n] = '\0';
  fclose (f);
  *len = (size_t) n;
  return b;
}

/* Parse text, asserting success. */
static void
parse_ok (const char *text, struct vmdk_desc *d)
{
  struct vb_error err = { 0 };
  int r = vmdk_desc_parse (text, strlen (text), "t.vmdk", d, &err);
  if (r < 0)
    print_message ("parse failed: %s\n--\n%s\n--\n", err.msg, text);
  assert_int_equal (r, 0);
}

/* Parse text, asserting failure with errno code and a message containing
 * `frag`; also that the descriptor was left empty (nothing leaks). */
static void
parse_bad (const char *text, size_t len, int code, const char *frag)
{
  struct vmdk_desc d;
  struct vb_error err = { 0 };
  int r = vmdk_desc_parse (text, len, "bad.vmdk", &d, &err);
  if (r != -code)
    print_message ("expected -%d, got %d (%s) for:\n%.300s\n", code, r, err.msg, text);
  assert_int_equal (r, -code);
  assert_int_equal (err.code, code);
  if (!strstr (err.msg, frag))
    print_message ("message '%s' lacks '%s'\n", err.msg, frag);
  assert_non_null (strstr (err.msg, frag));
  assert_non_null (strstr (err.msg, "bad.vmdk"));
  assert_null (strchr (err.msg, '\n'));
  assert_int_equal (d.n_ext, 0);
  assert_null (d.ext);
  assert_null (d.create_type);
}

/* A minimal valid header followed by `ext` (extent lines). */
static char *
with_extents (const char *ext)
{
  char *t;
  assert_true (asprintf (&t, "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
                         "parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n%s\n"
                         "ddb.adapterType = \"ide\"\n", ext) > 0);
  return t;
}

/* The extent line `line` must be rejected with code and message fragment. */
static void
bad_extent (const char *line, int code, const char *frag)
{
  char *t = with_extents (line);
  parse_bad (t, strlen (t), code, frag);
  free (t);
}

/* The extent line must be accepted; returns the parsed extent 0 copy. */
static struct vmdk_desc_extent
good_extent (const char *line, char *file, size_t filelen)
{
  char *t = with_extents (line);
  struct vmdk_desc d;
  parse_ok (t, &d);
  free (t);
  assert_int_equal (d.n_ext, 1);
  struct vmdk_desc_extent e = d.ext[0];
  snprintf (file, filelen, "%s", e.file ? e.file : "(null)");
  e.file = NULL;
  vmdk_desc_free (&d);
  return e;
}

/* Assert two descriptors hold the same data, field by field. */
static void
assert_desc_equal (const struct vmdk_desc *a, const struct vmdk_desc *b)
{
  assert_int_equal (a->version, b->version);
  assert_int_equal (a->cid, b->cid);
  assert_int_equal (a->parent_cid, b->parent_cid);
#define STREQ_OR_NULL(x, y) do { if ((x) || (y)) { assert_non_null (x); \
      assert_non_null (y); assert_string_equal (x, y); } } while (0)
  STREQ_OR_NULL (a->create_type, b->create_type);
  STREQ_OR_NULL (a->parent_hint, b->parent_hint);
  STREQ_OR_NULL (a->change_track_path, b->change_track_path);
  STREQ_OR_NULL (a->encoding, b->encoding);
  assert_int_equal (a->n_ext, b->n_ext);
  for (size_t i = 0; i < a->n_ext; i++) {
    assert_int_equal (a->ext[i].access, b->ext[i].access);
    assert_int_equal (a->ext[i].sectors, b->ext[i].sectors);
    assert_int_equal (a->ext[i].kind, b->ext[i].kind);
    assert_int_equal (a->ext[i].offset, b->ext[i].offset);
    STREQ_OR_NULL (a->ext[i].file, b->ext[i].file);
  }
  assert_int_equal (a->n_ddb, b->n_ddb);
  for (size_t i = 0; i < a->n_ddb; i++) {
    assert_string_equal (a->ddb[i].key, b->ddb[i].key);
    assert_string_equal (a->ddb[i].value, b->ddb[i].value);
  }
  assert_int_equal (a->n_other, b->n_other);
  for (size_t i = 0; i < a->n_other; i++) {
    assert_string_equal (a->other[i].key, b->other[i].key);
    assert_string_equal (a->other[i].value, b->other[i].value);
  }
#undef STREQ_OR_NULL
}

/* parse -> format -> parse gives the same data, and formatting is a fixed
 * point (format(parse(format(d))) == format(d)). */
static void
round_trip (const struct vmdk_desc *d)
{
  char *t1 = vmdk_desc_format (d);
  assert_non_null (t1);
  struct vmdk_desc d2;
  parse_ok (t1, &d2);
  assert_desc_equal (d, &d2);
  char *t2 = vmdk_desc_format (&d2);
  assert_non_null (t2);
  assert_string_equal (t1, t2);
  assert_true (vmdk_desc_probe (t1, strlen (t1)));
  free (t1);
  free (t2);
  vmdk_desc_free (&d2);
}

/* Directory holding the fuzz corpus of descriptors, NULL if not found:
 * $VMBACK_ROOT, else from this file's path, which the compiler gives
 * relative to the build directory (where the test binary lives). */
static const char *
corpus_dir (void)
{
  static char p[8192];
  const char *root = getenv ("VMBACK_ROOT");
  if (root) {
    snprintf (p, sizeof p, "%s/fuzz/corpus/fuzz-vmdk-desc", root);
    if (access (p, R_OK) == 0)
      return p;
  }
  char exe[4096] = "";
  ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  char *slash = strrchr (exe, '/');
  if (slash)
    *slash = '\0';
  if (__FILE__[0] == '/' || !slash)
    snprintf (p, sizeof p, "%s", __FILE__);
  else
    snprintf (p, sizeof p, "%s/%s", exe, __FILE__);
  char *s = strrchr (p, '/');
  if (!s)
    return NULL;
  snprintf (s, sizeof p - (size_t) (s - p), "/../../fuzz/corpus/fuzz-vmdk-desc");
  return access (p, R_OK) == 0 ? p : NULL;
}

/* Parse one corpus file; NULL-safe skip when the corpus is missing. */
static void
parse_corpus (const char *name, struct vmdk_desc *d)
{
  const char *cd = corpus_dir ();
  if (!cd) {
    print_message ("fuzz corpus not found (set VMBACK_ROOT): skipped\n");
    skip ();
  }
  char path[4200];
  snprintf (path, sizeof path, "%s/%s", cd, name);
  size_t len;
  char *t = slurp (path, &len);
  struct vb_error err = { 0 };
  int r = vmdk_desc_parse (t, len, name, d, &err);
  if (r < 0)
    print_message ("%s: %s\n", name, err.msg);
  assert_int_equal (r, 0);
  assert_true (vmdk_desc_probe (t, len));
  free (t);
}

/* --- the ESXi-style samples of the corpus ---------------------------- */

/* A vmfsSparse snapshot descriptor: parent hint, tracker, unknown key. */
static void
test_esxi_snapshot (void **state)
{
  struct vmdk_desc d;
  parse_corpus ("esxi-snapshot.txt", &d);
  assert_int_equal (d.version, 1);
  assert_int_equal (d.cid, 0x3a1b2c4d);
  assert_int_equal (d.parent_cid, 0xfffffffe);
  assert_string_equal (d.create_type, "vmfsSparse");
  assert_string_equal (d.encoding, "UTF-8");
  assert_string_equal (d.parent_hint, "sammy-target-win-small.vmdk");
  assert_string_equal (d.change_track_path, "sammy-target-win-small-000001-ctk.vmdk");
  assert_int_equal (d.n_ext, 1);
  assert_int_equal (d.ext[0].access, VMDK_ACCESS_RW);
  assert_int_equal (d.ext[0].kind, VMDK_EXT_VMFSSPARSE);
  assert_int_equal (d.ext[0].sectors, 25165824);
  assert_string_equal (d.ext[0].file, "sammy-target-win-small-000001-delta.vmdk");
  assert_int_equal (vmdk_desc_sectors (&d), 25165824);
  assert_int_equal (d.n_other, 1);
  assert_string_equal (d.other[0].key, "isNativeSnapshot");
  assert_string_equal (d.other[0].value, "no");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.longContentID"),
                       "0a0b0c0d0e0f10111213141516171819");
  assert_int_equal (vdisk_type_from_name (d.create_type), VDISK_TYPE_VMFS_SPARSE);
  round_trip (&d);
  /* the rewrite keeps the unknown key and the tracker line */
  char *t = vmdk_desc_format (&d);
  assert_non_null (strstr (t, "isNativeSnapshot=\"no\"\n"));
  assert_non_null (strstr (t, "changeTrackPath=\"sammy-target-win-small-000001-ctk.vmdk\""));
  assert_non_null (strstr (t, "parentCID=fffffffe\n"));
  assert_non_null (strstr (t, "RW 25165824 VMFSSPARSE \"sammy-target-win-small-000001-delta.vmdk\"\n"));
  free (t);
  vmdk_desc_free (&d);
}

/* An ESXi base disk: VMFS extent, many ddb keys in file order. */
static void
test_esxi_vmfs (void **state)
{
  struct vmdk_desc d;
  parse_corpus ("esxi-vmfs.txt", &d);
  assert_int_equal (d.cid, 0xfffffffe);
  assert_int_equal (d.parent_cid, VMDK_CID_NONE);
  assert_string_equal (d.create_type, "vmfs");
  assert_null (d.parent_hint);
  assert_int_equal (d.n_ext, 1);
  assert_int_equal (d.ext[0].kind, VMDK_EXT_VMFS);
  assert_int_equal (d.ext[0].offset, 0);
  assert_string_equal (d.ext[0].file, "sammy-target-win-small-flat.vmdk");
  assert_int_equal (d.n_ddb, 9);
  assert_string_equal (d.ddb[0].key, "ddb.adapterType");
  assert_string_equal (d.ddb[8].key, "ddb.virtualHWVersion");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.uuid"),
                       "60 00 C2 9a 4b 7f 3e 1d-5c 2b 8a 99 11 22 33 44");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.thinProvisioned"), "1");
  assert_null (vmdk_desc_ddb_get (&d, "ddb.nonexistent"));
  assert_int_equal (vdisk_type_from_name (d.create_type), VDISK_TYPE_VMFS);
  round_trip (&d);
  vmdk_desc_free (&d);
}

/* A split flat disk with three extents. */
static void
test_corpus_twogbflat (void **state)
{
  struct vmdk_desc d;
  parse_corpus ("twogbflat.txt", &d);
  assert_int_equal (d.cid, 0x5401556);
  assert_int_equal (d.n_ext, 3);
  assert_string_equal (d.ext[2].file, "t-f003.vmdk");
  assert_int_equal (d.ext[2].sectors, 2097152);
  assert_int_equal (vmdk_desc_sectors (&d), 4194304 + 4194304 + 2097152);
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.toolsVersion"), "2147483647");
  round_trip (&d);
  vmdk_desc_free (&d);
}

/* Every extent kind and access mode, a ZERO extent and a name with a space. */
static void
test_corpus_mixed (void **state)
{
  struct vmdk_desc d;
  parse_corpus ("mixed.txt", &d);
  assert_string_equal (d.create_type, "custom");
  assert_int_equal (vdisk_type_from_name (d.create_type), -1);
  assert_int_equal (d.cid, 1);
  assert_int_equal (d.n_ext, 4);
  assert_int_equal (d.ext[0].kind, VMDK_EXT_FLAT);
  assert_int_equal (d.ext[1].kind, VMDK_EXT_ZERO);
  assert_int_equal (d.ext[1].access, VMDK_ACCESS_RDONLY);
  assert_null (d.ext[1].file);
  assert_int_equal (d.ext[2].access, VMDK_ACCESS_NOACCESS);
  assert_string_equal (d.ext[2].file, "b s001.vmdk");
  assert_int_equal (d.ext[3].kind, VMDK_EXT_SESPARSE);
  assert_int_equal (vmdk_desc_sectors (&d), 311);
  assert_int_equal (d.n_ddb, 0);
  round_trip (&d);
  vmdk_desc_free (&d);
}

/* --- descriptors made by qemu-img ------------------------------------ */

/* Create a qemu-img vmdk of subformat and return its descriptor text (the
 * separate file, or the one embedded in a monolithic sparse file). */
static char *
qemu_desc (const char *subformat, const char *size, bool embedded)
{
  char path[128];
  snprintf (path, sizeof path, "%s/q-%s.vmdk", dir, subformat);
  assert_int_equal (sh ("qemu-img create -q -f vmdk -o subformat=%s '%s' %s",
                        subformat, path, size), 0);
  size_t len;
  char *f = slurp (path, &len);
  if (!embedded)
    return f;
  /* KDMV header: descriptorOffset (u64 sectors) at 28, descriptorSize at 36 */
  assert_true (len >= 512);
  assert_memory_equal (f, "KDMV", 4);
  uint64_t off = le64_get (f + 28) * 512, sz = le64_get (f + 36) * 512;
  assert_true (off > 0 && sz > 0 && off + sz <= len);
  char *t = strndup (f + off, sz);
  free (f);
  return t;
}

/* qemu's monolithicFlat descriptor. */
static void
test_qemu_flat (void **state)
{
  if (!have_qemu) { print_message ("qemu-img not installed: skipped\n"); skip (); }
  char *t = qemu_desc ("monolithicFlat", "3M", false);
  struct vmdk_desc d;
  parse_ok (t, &d);
  assert_string_equal (d.create_type, "monolithicFlat");
  assert_int_equal (d.n_ext, 1);
  assert_int_equal (d.ext[0].kind, VMDK_EXT_FLAT);
  assert_int_equal (d.ext[0].sectors, 6144);
  assert_int_equal (d.ext[0].offset, 0);
  assert_string_equal (d.ext[0].file, "q-monolithicFlat-flat.vmdk");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.adapterType"), "ide");
  assert_true (d.cid != VMDK_CID_NONE);
  assert_int_equal (d.parent_cid, VMDK_CID_NONE);
  round_trip (&d);
  vmdk_desc_free (&d);
  free (t);
}

/* qemu's twoGbMaxExtentSparse and twoGbMaxExtentFlat descriptors. */
static void
test_qemu_split (void **state)
{
  if (!have_qemu) { print_message ("qemu-img not installed: skipped\n"); skip (); }
  static const char *const fmts[] = { "twoGbMaxExtentSparse", "twoGbMaxExtentFlat" };
  for (int i = 0; i < 2; i++) {
    char *t = qemu_desc (fmts[i], "5G", false);
    struct vmdk_desc d;
    parse_ok (t, &d);
    assert_string_equal (d.create_type, fmts[i]);
    assert_int_equal (d.n_ext, 3);
    assert_int_equal (vmdk_desc_sectors (&d), 5ull * 1024 * 1024 * 2);
    for (size_t k = 0; k < d.n_ext; k++) {
      char want[128];
      snprintf (want, sizeof want, "q-%s-%c%03zu.vmdk", fmts[i], i == 0 ? 's' : 'f', k + 1);
      assert_string_equal (d.ext[k].file, want);
      assert_int_equal (d.ext[k].kind, i == 0 ? VMDK_EXT_SPARSE : VMDK_EXT_FLAT);
    }
    round_trip (&d);
    vmdk_desc_free (&d);
    free (t);
  }
  sh ("rm -f %s/q-twoGb*", dir);
}

/* The descriptor embedded in qemu's monolithicSparse/streamOptimized. */
static void
test_qemu_embedded (void **state)
{
  if (!have_qemu) { print_message ("qemu-img not installed: skipped\n"); skip (); }
  static const char *const fmts[] = { "monolithicSparse", "streamOptimized" };
  for (int i = 0; i < 2; i++) {
    char *t = qemu_desc (fmts[i], "100M", true);
    struct vmdk_desc d;
    struct vb_error err = { 0 };
    /* the embedded text is NUL padded: the parser stops at the first NUL */
    assert_int_equal (vmdk_desc_parse (t, strlen (t) + 1, "emb", &d, &err), 0);
    assert_string_equal (d.create_type, fmts[i]);
    assert_int_equal (d.n_ext, 1);
    assert_int_equal (d.ext[0].kind, VMDK_EXT_SPARSE);
    assert_int_equal (d.ext[0].sectors, 204800);
    round_trip (&d);
    vmdk_desc_free (&d);
    free (t);
  }
}

/* --- syntax details --------------------------------------------------- */

/* CRLF line ends, spaces around '=', unquoted values, comments. */
static void
test_syntax_variants (void **state)
{
  const char *t =
    "# Disk DescriptorFile\r\n"
    "version = 1\r\n"
    "  CID = 0000abcd  \r\n"
    "parentCID=FFFFFFFF\r\n"
    "createType=monolithicSparse\r\n"
    "# a comment = with equals\r\n"
    "\r\n"
    "RW 128 SPARSE \"x.vmdk\"\r\n"
    "RDONLY 64 VMFSRDM \"rdm.vmdk\" 5\r\n"
    "ddb.adapterType=\"buslogic\"\r\n"
    "ddb.empty = \"\"\r\n";
  struct vmdk_desc d;
  parse_ok (t, &d);
  assert_int_equal (d.cid, 0xabcd);
  assert_int_equal (d.parent_cid, VMDK_CID_NONE);
  assert_string_equal (d.create_type, "monolithicSparse");
  assert_int_equal (d.n_ext, 2);
  assert_string_equal (d.ext[0].file, "x.vmdk");
  assert_int_equal (d.ext[1].kind, VMDK_EXT_VMFSRAW);
  assert_int_equal (d.ext[1].offset, 5);
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.adapterType"), "buslogic");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.empty"), "");
  round_trip (&d);
  vmdk_desc_free (&d);
}

/* Extent lines that must be accepted, with their values. */
static void
test_extent_lines_ok (void **state)
{
  char f[256];
  struct vmdk_desc_extent e;
  e = good_extent ("RW 1 FLAT \"a..b.vmdk\" 0", f, sizeof f);
  assert_string_equal (f, "a..b.vmdk");
  e = good_extent ("RW 8 FLAT \"sub/dir/x.vmdk\" 1234", f, sizeof f);
  assert_string_equal (f, "sub/dir/x.vmdk");
  assert_int_equal (e.offset, 1234);
  e = good_extent ("RW 8 FLAT \"...vmdk\"", f, sizeof f);
  assert_string_equal (f, "...vmdk");
  e = good_extent ("RDONLY 8 ZERO", f, sizeof f);
  assert_string_equal (f, "(null)");
  assert_int_equal (e.kind, VMDK_EXT_ZERO);
  /* exactly the largest size accepted: VDISK_MAX_SIZE / 512 sectors */
  char line[128];
  snprintf (line, sizeof line, "RW %llu SPARSE \"big.vmdk\"",
            (unsigned long long) (VDISK_MAX_SIZE / VDISK_SECTOR));
  e = good_extent (line, f, sizeof f);
  assert_int_equal (e.sectors, VDISK_MAX_SIZE / VDISK_SECTOR);
}

/* --- rejections (vmdk-desc.h) ------------------------------------------ */

/* Larger than VMDK_DESC_MAX: rejected before parsing. */
static void
test_reject_too_large (void **state)
{
  char *base = with_extents ("RW 8 FLAT \"x.vmdk\" 0");
  size_t n = VMDK_DESC_MAX + 1;
  char *t = malloc (n);
  assert_non_null (t);
  memset (t, '\n', n);
  memcpy (t, base, strlen (base));
  parse_bad (t, n, EFBIG, "too large");
  /* exactly VMDK_DESC_MAX is fine */
  struct vmdk_desc d;
  struct vb_error err = { 0 };
  assert_int_equal (vmdk_desc_parse (t, VMDK_DESC_MAX, "max", &d, &err), 0);
  assert_int_equal (d.n_ext, 1);
  vmdk_desc_free (&d);
  free (t);
  free (base);
}

/* Missing or unsupported version, no extents, no createType, junk lines. */
static void
test_reject_header (void **state)
{
  const char *nover = "CID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
    "RW 8 FLAT \"x.vmdk\" 0\n";
  parse_bad (nover, strlen (nover), EINVAL, "no version=");
  const char *v4 = "version=4\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"x.vmdk\" 0\n";
  parse_bad (v4, strlen (v4), ENOTSUP, "version '4'");
  const char *v0 = "version=0\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"x.vmdk\" 0\n";
  parse_bad (v0, strlen (v0), ENOTSUP, "version");
  const char *vx = "version=1x\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"x.vmdk\" 0\n";
  parse_bad (vx, strlen (vx), ENOTSUP, "version");
  const char *noext = "version=1\ncreateType=\"monolithicFlat\"\n";
  parse_bad (noext, strlen (noext), EINVAL, "no extents");
  const char *notype = "version=1\nRW 8 FLAT \"x.vmdk\" 0\n";
  parse_bad (notype, strlen (notype), EINVAL, "no createType");
  const char *junk = "version=1\ncreateType=\"monolithicFlat\"\nthis is not a line\n"
    "RW 8 FLAT \"x.vmdk\" 0\n";
  parse_bad (junk, strlen (junk), EINVAL, "line 3");
  parse_bad ("", 0, EINVAL, "no version=");
  /* text after an embedded NUL is ignored: here the extent is lost */
  const char nul[] = "version=1\ncreateType=\"monolithicFlat\"\n\0RW 8 FLAT \"x.vmdk\" 0\n";
  parse_bad (nul, sizeof nul - 1, EINVAL, "no extents");
}

/* Malformed extent lines. */
static void
test_reject_extent_lines (void **state)
{
  bad_extent ("RW", EINVAL, "cannot parse line 6");  /* no space: not an extent line */
  bad_extent ("WR 8 FLAT \"x.vmdk\" 0", EINVAL, "cannot parse line 6");
  bad_extent ("RW 8", EINVAL, "bad extent line");
  bad_extent ("RW abc FLAT \"x.vmdk\" 0", EINVAL, "bad extent size 'abc'");
  bad_extent ("RW 0 FLAT \"x.vmdk\" 0", EINVAL, "bad extent size '0'");
  bad_extent ("RW -8 FLAT \"x.vmdk\" 0", EINVAL, "bad extent size '-8'");
  bad_extent ("RW 8x FLAT \"x.vmdk\" 0", EINVAL, "bad extent size");
  bad_extent ("RW 8 BOGUS \"x.vmdk\" 0", ENOTSUP, "unsupported extent type 'BOGUS'");
  bad_extent ("RW 8 flat \"x.vmdk\" 0", ENOTSUP, "unsupported extent type");
  bad_extent ("RW 8 FLAT x.vmdk 0", EINVAL, "file name missing");
  bad_extent ("RW 8 FLAT", EINVAL, "file name missing");
  bad_extent ("RW 8 FLAT \"x.vmdk 0", EINVAL, "unterminated");
  bad_extent ("RW 8 FLAT \"\" 0", EINVAL, "unsafe extent file name");
  bad_extent ("RW 8 FLAT \"x.vmdk\" abc", EINVAL, "bad extent offset");
  bad_extent ("RW 8 FLAT \"x.vmdk\" -1", EINVAL, "bad extent offset");
  bad_extent ("RW 8 FLAT \"x.vmdk\" 0 junk", EINVAL, "bad extent offset");
  bad_extent ("RW 8 FLAT \"x.vmdk\" 99999999999999999999999", EINVAL, "bad extent offset");
  bad_extent ("RW 8 FLAT \"x.vmdk\" 137438953473", EINVAL, "bad extent offset");
}

/* Extent names that could escape the descriptor's directory. */
static void
test_reject_unsafe_names (void **state)
{
  static const char *const names[] = {
    "../x.vmdk", "..", "a/../../x.vmdk", "a/..", "/etc/passwd", "/x.vmdk",
    "sub/../x.vmdk", "x\x01y.vmdk", "x\ty.vmdk",
  };
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char line[128];
    snprintf (line, sizeof line, "RW 8 FLAT \"%s\" 0", names[i]);
    bad_extent (line, EINVAL, "unsafe extent file name");
  }
}

/* Sizes over VDISK_MAX_SIZE, alone or summed, and overflowing numbers. */
static void
test_reject_huge (void **state)
{
  char line[256];
  unsigned long long max = VDISK_MAX_SIZE / VDISK_SECTOR;
  snprintf (line, sizeof line, "RW %llu FLAT \"x.vmdk\" 0", max + 1);
  bad_extent (line, EINVAL, "bad extent size");
  bad_extent ("RW 18446744073709551615 FLAT \"x.vmdk\" 0", EINVAL, "bad extent size");
  bad_extent ("RW 18446744073709551616 FLAT \"x.vmdk\" 0", EINVAL, "bad extent size");
  bad_extent ("RW 123456789012345678901234567890123456789 FLAT \"x.vmdk\" 0",
              EINVAL, "bad extent size");
  /* each extent fine, the sum over the limit */
  snprintf (line, sizeof line, "RW %llu FLAT \"x.vmdk\" 0\nRW 1 FLAT \"y.vmdk\" 0", max);
  bad_extent (line, EFBIG, "larger than");
}

/* Too many extent lines. */
static void
test_reject_too_many_extents (void **state)
{
  size_t n = VMDK_DESC_MAX_EXTENTS + 1;
  char *lines = malloc (n * 32);
  assert_non_null (lines);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += (size_t) sprintf (lines + k, "RW 8 FLAT \"x%zu.vmdk\" 0\n", i);
  char *t = with_extents (lines);
  parse_bad (t, strlen (t), EINVAL, "too many extents");
  free (t);
  /* exactly the maximum is accepted: drop the last line */
  char *last = strrchr (lines, 'R');
  *last = '\0';
  t = with_extents (lines);
  struct vmdk_desc d;
  parse_ok (t, &d);
  assert_int_equal (d.n_ext, VMDK_DESC_MAX_EXTENTS);
  vmdk_desc_free (&d);
  free (t);
  free (lines);
}

/* Bad CID and parentCID values. */
static void
test_reject_cid (void **state)
{
  static const char *const bad[] = {
    "CID=xyz", "CID=", "CID=123456789", "CID=12 34", "parentCID=fffffffff",
    "parentCID=g", "CID=-1",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *t;
    assert_true (asprintf (&t, "version=1\n%s\ncreateType=\"monolithicFlat\"\n"
                           "RW 8 FLAT \"x.vmdk\" 0\n", bad[i]) > 0);
    parse_bad (t, strlen (t), EINVAL, "CID");
    free (t);
  }
  /* no CID line: "none" */
  struct vmdk_desc d;
  parse_ok ("version=1\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"x.vmdk\" 0\n", &d);
  assert_int_equal (d.cid, VMDK_CID_NONE);
  assert_int_equal (d.parent_cid, VMDK_CID_NONE);
  vmdk_desc_free (&d);
}

/* --- ddb and unknown keys --------------------------------------------- */

/* get/set/remove keep file order and show in the formatted text. */
static void
test_ddb_get_set_remove (void **state)
{
  struct vmdk_desc d;
  parse_ok ("version=1\ncreateType=\"vmfs\"\nRW 8 VMFS \"x-flat.vmdk\"\n"
            "ddb.a = \"1\"\nddb.b = \"2\"\nddb.c = \"3\"\n", &d);
  assert_int_equal (d.n_ddb, 3);
  /* replace in place */
  assert_int_equal (vmdk_desc_ddb_set (&d, "ddb.b", "two words"), 0);
  assert_int_equal (d.n_ddb, 3);
  assert_string_equal (d.ddb[1].key, "ddb.b");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.b"), "two words");
  /* append */
  assert_int_equal (vmdk_desc_ddb_set (&d, "ddb.uuid", "60 00 C2 01"), 0);
  assert_int_equal (d.n_ddb, 4);
  assert_string_equal (d.ddb[3].key, "ddb.uuid");
  /* remove the middle, then an absent key (no-op) */
  assert_int_equal (vmdk_desc_ddb_set (&d, "ddb.a", NULL), 0);
  assert_int_equal (vmdk_desc_ddb_set (&d, "ddb.nothere", NULL), 0);
  assert_int_equal (d.n_ddb, 3);
  assert_null (vmdk_desc_ddb_get (&d, "ddb.a"));
  assert_string_equal (d.ddb[0].key, "ddb.b");
  assert_string_equal (d.ddb[1].key, "ddb.c");
  char *t = vmdk_desc_format (&d);
  assert_non_null (t);
  assert_null (strstr (t, "ddb.a "));
  char *pb = strstr (t, "ddb.b = \"two words\"\n"), *pc = strstr (t, "ddb.c = \"3\"\n");
  char *pu = strstr (t, "ddb.uuid = \"60 00 C2 01\"\n");
  assert_true (pb && pc && pu && pb < pc && pc < pu);
  free (t);
  round_trip (&d);
  /* remove everything */
  while (d.n_ddb)
    assert_int_equal (vmdk_desc_ddb_set (&d, d.ddb[0].key, NULL), 0);
  round_trip (&d);
  /* a ddb key repeated in the file: the last value wins, one entry */
  vmdk_desc_free (&d);
  parse_ok ("version=1\ncreateType=\"vmfs\"\nRW 8 VMFS \"x-flat.vmdk\"\n"
            "ddb.a = \"1\"\nddb.a = \"2\"\n", &d);
  assert_int_equal (d.n_ddb, 1);
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.a"), "2");
  vmdk_desc_free (&d);
}

/* Unknown header keys survive parse -> format -> parse; set_str. */
static void
test_unknown_keys_kept (void **state)
{
  struct vmdk_desc d;
  parse_ok ("# Disk DescriptorFile\nversion=1\nencoding=\"windows-1252\"\nCID=1\n"
            "parentCID=ffffffff\nisNativeSnapshot=\"no\"\nfutureKey=\"some value\"\n"
            "createType=\"twoGbMaxExtentSparse\"\n"
            "RW 8 SPARSE \"x-s001.vmdk\"\nRW 8 SPARSE \"x-s002.vmdk\"\n"
            "changeTrackPath=\"x-ctk.vmdk\"\nddb.x = \"y\"\n", &d);
  assert_int_equal (d.n_other, 2);
  assert_string_equal (d.other[0].key, "isNativeSnapshot");
  assert_string_equal (d.other[1].key, "futureKey");
  assert_string_equal (d.other[1].value, "some value");
  assert_string_equal (d.encoding, "windows-1252");
  round_trip (&d);
  char *t = vmdk_desc_format (&d);
  assert_non_null (strstr (t, "futureKey=\"some value\"\n"));
  assert_non_null (strstr (t, "encoding=\"windows-1252\"\n"));
  free (t);
  /* changing fields through the API */
  assert_int_equal (vmdk_desc_set_str (&d.parent_hint, "base.vmdk"), 0);
  assert_int_equal (vmdk_desc_set_str (&d.change_track_path, NULL), 0);
  d.cid = 0xdeadbeef;
  round_trip (&d);
  t = vmdk_desc_format (&d);
  assert_non_null (strstr (t, "CID=deadbeef\n"));
  assert_non_null (strstr (t, "parentFileNameHint=\"base.vmdk\"\n"));
  assert_null (strstr (t, "changeTrackPath"));
  free (t);
  vmdk_desc_free (&d);
}

/* --- init, probe, names, random CIDs ---------------------------------- */

/* A fresh descriptor has the fields vmdk-desc.h promises. */
static void
test_init (void **state)
{
  struct vmdk_desc d;
  assert_int_equal (vmdk_desc_init (&d, "monolithicSparse", 20971520, NULL), 0);
  assert_int_equal (d.version, 1);
  assert_true (d.cid != VMDK_CID_NONE && d.cid != 0xfffffffe);
  assert_int_equal (d.parent_cid, VMDK_CID_NONE);
  assert_string_equal (d.create_type, "monolithicSparse");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.adapterType"), "lsilogic");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.geometry.heads"), "255");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.geometry.sectors"), "63");
  /* 20971520 / (255 * 63) = 1305 */
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.geometry.cylinders"), "1305");
  assert_non_null (vmdk_desc_ddb_get (&d, "ddb.uuid"));
  assert_non_null (vmdk_desc_ddb_get (&d, "ddb.virtualHWVersion"));
  /* give it an extent and it round-trips */
  d.ext = calloc (1, sizeof *d.ext);
  d.ext[0].sectors = 20971520;
  d.ext[0].kind = VMDK_EXT_SPARSE;
  d.ext[0].file = strdup ("n.vmdk");
  d.n_ext = 1;
  round_trip (&d);
  vmdk_desc_free (&d);
  /* ide geometry, cylinders capped at 65535 */
  assert_int_equal (vmdk_desc_init (&d, "vmfs", VDISK_MAX_SIZE / 512, "ide"), 0);
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.geometry.heads"), "16");
  assert_string_equal (vmdk_desc_ddb_get (&d, "ddb.geometry.cylinders"), "65535");
  vmdk_desc_free (&d);
  /* two fresh descriptors get different uuids */
  struct vmdk_desc a, b;
  assert_int_equal (vmdk_desc_init (&a, "vmfs", 2048, NULL), 0);
  assert_int_equal (vmdk_desc_init (&b, "vmfs", 2048, NULL), 0);
  assert_string_not_equal (vmdk_desc_ddb_get (&a, "ddb.uuid"), vmdk_desc_ddb_get (&b, "ddb.uuid"));
  vmdk_desc_free (&a);
  vmdk_desc_free (&b);
}

/* probe accepts descriptor text, refuses binary. */
static void
test_probe (void **state)
{
  const char *a = "# Disk DescriptorFile\n";
  assert_true (vmdk_desc_probe (a, strlen (a)));
  const char *b = "# hand written\n\nversion=1\n";
  assert_true (vmdk_desc_probe (b, strlen (b)));
  const char *c = "KDMV\x01\0\0\0version=1\n";
  assert_false (vmdk_desc_probe (c, 17));
  const char *e = "no version here\n";
  assert_false (vmdk_desc_probe (e, strlen (e)));
  const char *f = "xversion=1\n";
  assert_false (vmdk_desc_probe (f, strlen (f)));
  assert_false (vmdk_desc_probe ("", 0));
  /* a line "version=" at the very end, shorter than 8 bytes left */
  assert_false (vmdk_desc_probe ("\nversio", 7));
}

/* Names of kinds and access modes, and createType names both ways. */
static void
test_names (void **state)
{
  assert_string_equal (vmdk_extent_kind_name (VMDK_EXT_VMFSSPARSE), "VMFSSPARSE");
  assert_string_equal (vmdk_extent_kind_name ((enum vmdk_extent_kind) 99), "?");
  assert_string_equal (vmdk_access_name (VMDK_ACCESS_NOACCESS), "NOACCESS");
  assert_string_equal (vmdk_access_name ((enum vmdk_access) 7), "?");
  for (int t = 0; t < VDISK_TYPE__COUNT; t++)
    assert_int_equal (vdisk_type_from_name (vdisk_type_name ((enum vdisk_type) t)), t);
  assert_int_equal (vdisk_type_from_name ("MONOLITHICSPARSE"), VDISK_TYPE_MONOLITHIC_SPARSE);
  assert_int_equal (vdisk_type_from_name ("vmfsThin"), VDISK_TYPE_VMFS);
  assert_int_equal (vdisk_type_from_name ("vmfsEagerZeroedThick"), VDISK_TYPE_VMFS);
  assert_int_equal (vdisk_type_from_name ("nonsense"), -1);
}

/* Random CIDs are never the reserved values. */
static void
test_random_cid (void **state)
{
  uint32_t first = vmdk_random_cid ();
  bool differs = false;
  for (int i = 0; i < 20000; i++) {
    uint32_t c = vmdk_random_cid ();
    assert_true (c != 0 && c != 0xffffffffu && c != 0xfffffffeu);
    differs |= c != first;
  }
  assert_true (differs);
}

/* Make the scratch directory; detect qemu-img. */
static int
setup (void **state)
{
  snprintf (dir, sizeof dir, "/tmp/test-vmdk-desc.XXXXXX");
  if (!mkdtemp (dir))
    return -1;
  have_qemu = sh ("qemu-img --version >/dev/null 2>&1") == 0;
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
    cmocka_unit_test (test_esxi_snapshot),
    cmocka_unit_test (test_esxi_vmfs),
    cmocka_unit_test (test_corpus_twogbflat),
    cmocka_unit_test (test_corpus_mixed),
    cmocka_unit_test (test_qemu_flat),
    cmocka_unit_test (test_qemu_split),
    cmocka_unit_test (test_qemu_embedded),
    cmocka_unit_test (test_syntax_variants),
    cmocka_unit_test (test_extent_lines_ok),
    cmocka_unit_test (test_reject_too_large),
    cmocka_unit_test (test_reject_header),
    cmocka_unit_test (test_reject_extent_lines),
    cmocka_unit_test (test_reject_unsafe_names),
    cmocka_unit_test (test_reject_huge),
    cmocka_unit_test (test_reject_too_many_extents),
    cmocka_unit_test (test_reject_cid),
    cmocka_unit_test (test_ddb_get_set_remove),
    cmocka_unit_test (test_unknown_keys_kept),
    cmocka_unit_test (test_init),
    cmocka_unit_test (test_probe),
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_random_cid),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
