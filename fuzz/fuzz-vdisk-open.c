/* Fuzz target: open any file as a disk (sparse, COWD, seSparse headers,
 * grain directories and tables, embedded descriptors, stream markers) and
 * read it all, plus a check.  The input becomes a file in a private temp
 * directory; descriptors that name extents can only reach files there. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmback/vdisk.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char dir[64];

/* Make the private directory once. */
static void
setup (void)
{
  if (dir[0])
    return;
  snprintf (dir, sizeof dir, "%s/vmback-fuzz-XXXXXX",
            access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (!mkdtemp (dir))
    abort ();
}

/* Ignore check reports. */
static void
noreport (void *o, const char *m)
{
  (void) o;
  (void) m;
}

/* Write the input, open it, read every byte (bounded), check it. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  setup ();
  char path[128];
  snprintf (path, sizeof path, "%s/disk.vmdk", dir);
  FILE *f = fopen (path, "wb");
  if (!f)
    abort ();
  fwrite (data, 1, size, f);
  fclose (f);
  struct vdisk *d;
  struct vb_error e = { 0 };
  if (vdisk_open (path, VDISK_OPEN_RDONLY, &d, &e) == 0) {
    uint64_t sz = vdisk_size (d);
    static uint8_t buf[1 << 16];
    /* at most 64 reads spread over the disk: huge virtual sizes are legal */
    uint64_t step = sz / 64 + 1;
    for (uint64_t off = 0; off < sz; off += step) {
      size_t n = sz - off < sizeof buf ? (size_t) (sz - off) : sizeof buf;
      struct vb_error e2 = { 0 };
      if (vdisk_pread (d, buf, n, off, &e2) < 0)
        break;
    }
    struct vdisk_extent_list l = { 0 };
    struct vb_error e3 = { 0 };
    vdisk_map (d, 0, &l, &e3);
    vdisk_extent_list_free (&l);
    vdisk_close (d, NULL);
  }
  struct vb_error e4 = { 0 };
  vdisk_check (path, false, noreport, NULL, &e4);
  unlink (path);
  return 0;
}
