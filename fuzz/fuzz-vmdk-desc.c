/* Fuzz target: the VMDK text descriptor parser and writer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/vmdk-desc.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Parse; on success the formatted text must parse again to the same
 * extents (a round trip). */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct vmdk_desc d, d2;
  struct vb_error e = { 0 };
  if (vmdk_desc_parse ((const char *) data, size, "fuzz", &d, &e) < 0)
    return 0;
  char *text = vmdk_desc_format (&d);
  if (text) {
    struct vb_error e2 = { 0 };
    if (vmdk_desc_parse (text, strlen (text), "fuzz2", &d2, &e2) == 0) {
      if (d2.n_ext != d.n_ext || vmdk_desc_sectors (&d2) != vmdk_desc_sectors (&d))
        abort ();
      vmdk_desc_free (&d2);
    } else {
      abort ();
    }
    free (text);
  }
  vmdk_desc_free (&d);
  return 0;
}
