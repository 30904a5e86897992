/* Fuzz target: the change tracking file reader and query. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vdisk/ctk.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Open the input as a tracker for a few disk sizes, query it. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static char path[64];
  if (!path[0]) {
    snprintf (path, sizeof path, "%s/vmback-fuzz-ctk-%ld",
              access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
              (long) getpid ());
  }
  FILE *f = fopen (path, "wb");
  if (!f)
    abort ();
  fwrite (data, 1, size, f);
  fclose (f);
  const uint64_t sizes[] = { 1 << 20, 64u << 20, 0 };
  for (size_t i = 0; i < 3; i++) {
    struct ctk *c;
    struct vb_error e = { 0 };
    uint64_t ds = sizes[i];
    if (ds == 0 && size >= 32)
      memcpy (&ds, data + 24, 8);    /* the header's own idea of the size */
    if (ds > (UINT64_C (1) << 40))
      ds = 1 << 20;
    if (ctk_open (path, ds, 0x12345678, false, &c, &e) < 0)
      continue;
    char id[128];
    ctk_change_id (c, id, sizeof id);
    struct vdisk_extent_list l = { 0 };
    struct vb_error e2 = { 0 };
    if (id[0]) {
      char *slash = strchr (id, '/');
      if (slash)
        strcpy (slash, "/0");
      ctk_query (c, id, 0, &l, &e2);
    }
    vdisk_extent_list_free (&l);
    ctk_close (c, 0x12345678, NULL);
  }
  unlink (path);
  return 0;
}
