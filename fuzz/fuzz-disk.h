/* Shared body of the single-format disk fuzz targets (fuzz-vmdk-sparse,
 * fuzz-vmdk-stream, fuzz-vmdk-cowd, fuzz-vmdk-sesparse).  The input is
 * written as one file in a private temp directory with the format's magic
 * forced over its first bytes, so every mutation reaches that format's
 * header, directory and table parsers instead of falling back to a raw
 * image.  The file is opened read only and read (bounded), mapped, then
 * opened for writing (where the format allows it), written and read back
 * at three places, checked and repaired. */
#ifndef VMBACK_FUZZ_DISK_H
#define VMBACK_FUZZ_DISK_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmback/vdisk.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Bytes forced at fixed offsets of the input (the format's magic). */
struct fuzz_patch {
  size_t off;
  size_t len;
  const uint8_t *bytes;
};

static char fuzz_dir[64];

/* Make the private directory once. */
static void
fuzz_disk_setup (void)
{
  if (fuzz_dir[0])
    return;
  /* tmpfs when there is one: every run writes, flushes and syncs */
  snprintf (fuzz_dir, sizeof fuzz_dir, "%s/vmback-fuzz-XXXXXX",
            access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (!mkdtemp (fuzz_dir))
    abort ();
}

/* Remove every file the run left in the directory (a write may have made
 * a tracker or a grown file). */
static void
fuzz_disk_clean (void)
{
  DIR *d = opendir (fuzz_dir);
  struct dirent *de;
  char p[512];
  while (d && (de = readdir (d))) {
    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    snprintf (p, sizeof p, "%s/%s", fuzz_dir, de->d_name);
    unlink (p);
  }
  if (d)
    closedir (d);
}

/* Ignore check reports. */
static void
fuzz_noreport (void *o, const char *m)
{
  (void) o;
  (void) m;
}

/* Read 64 spread-out pieces of at most 16 KiB (the whole disk when it
 * is small) and map it. */
static void
fuzz_disk_read_all (struct vdisk *d)
{
  static uint8_t buf[1 << 14];
  uint64_t sz = vdisk_size (d);
  uint64_t step = sz / 64 + 1;
  for (uint64_t off = 0; off < sz; off += step) {
    size_t n = sizeof buf;
    if (n > step)
      n = (size_t) step;
    if (n > sz - off)
      n = (size_t) (sz - off);
    struct vb_error e = { 0 };
    if (vdisk_pread (d, buf, n, off, &e) < 0)
      break;
  }
  struct vdisk_extent_list l = { 0 };
  struct vb_error e = { 0 };
  vdisk_map (d, 0, &l, &e);
  vdisk_extent_list_free (&l);
}

/* Write a 4 KiB pattern at the start, the middle and the end of a
 * writable disk; whatever a write accepted must read back unchanged. */
static void
fuzz_disk_write_some (struct vdisk *d)
{
  static uint8_t pat[4096], back[4096];
  uint64_t sz = vdisk_size (d);
  if (sz < sizeof pat)
    return;
  uint64_t offs[3] = { 0, (sz / 2) & ~(uint64_t) 511, sz - sizeof pat };
  for (int i = 0; i < 3; i++) {
    memset (pat, 0xa5 ^ i, sizeof pat);
    pat[0] = (uint8_t) i;
    struct vb_error e = { 0 };
    if (vdisk_pwrite (d, pat, sizeof pat, offs[i], &e) < 0)
      return;
    if (vdisk_pread (d, back, sizeof back, offs[i], &e) < 0)
      return;
    if (memcmp (pat, back, sizeof pat) != 0)
      abort ();     /* a write that succeeded did not read back */
  }
  struct vb_error e = { 0 };
  vdisk_flush (d, &e);
}

/* Write the patched input, then open, read, write, check and repair. */
static int
fuzz_disk_run (const uint8_t *data, size_t size, const struct fuzz_patch *p,
               size_t np)
{
  fuzz_disk_setup ();
  char path[128];
  snprintf (path, sizeof path, "%s/disk.vmdk", fuzz_dir);
  size_t len = size;
  for (size_t i = 0; i < np; i++)
    if (p[i].off + p[i].len > len)
      len = p[i].off + p[i].len;
  uint8_t *b = calloc (1, len ? len : 1);
  if (!b)
    abort ();
  if (size)
    memcpy (b, data, size);
  for (size_t i = 0; i < np; i++)
    memcpy (b + p[i].off, p[i].bytes, p[i].len);
  FILE *f = fopen (path, "wb");
  if (!f)
    abort ();
  fwrite (b, 1, len, f);
  fclose (f);
  free (b);

  struct vdisk *d;
  struct vb_error e = { 0 };
  if (vdisk_open (path, VDISK_OPEN_RDONLY, &d, &e) == 0) {
    fuzz_disk_read_all (d);
    vdisk_close (d, NULL);
  }
  struct vb_error e2 = { 0 };
  vdisk_check (path, false, fuzz_noreport, NULL, &e2);

  struct vb_error e3 = { 0 };
  if (vdisk_open (path, VDISK_OPEN_RDWR, &d, &e3) == 0) {
    fuzz_disk_write_some (d);
    fuzz_disk_read_all (d);
    struct vb_error e4 = { 0 };
    vdisk_close (d, &e4);
  }
  struct vb_error e5 = { 0 };
  if (vdisk_check (path, true, fuzz_noreport, NULL, &e5) == 0) {
    struct vb_error e6 = { 0 };
    if (vdisk_open (path, VDISK_OPEN_RDONLY, &d, &e6) == 0) {
      fuzz_disk_read_all (d);
      vdisk_close (d, NULL);
    }
  }
  fuzz_disk_clean ();
  return 0;
}

#endif
