/* Fuzz target: the .vmx dictionary parser and writer (vmx-config.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/vmx-config.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* True when text is within the parser's bounds (so it must parse). */
static bool
within_bounds (const char *s, size_t len)
{
  size_t lines = 0, start = 0;
  if (len > VMX_MAX_FILE)
    return false;
  for (size_t i = 0; i <= len; i++)
    if (i == len || s[i] == '\n') {
      if (i - start > VMX_MAX_LINE)
        return false;
      if (i < len || i > start)
        lines++;
      start = i + 1;
    }
  return lines <= VMX_MAX_LINES;
}

/* Parse; on success the text must come back byte for byte, the typed
 * getters and disk list must not crash, and after vmx_set/vmx_remove the
 * new text must parse again with the value set. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct vmx_config *c;
  struct vb_error e = { 0 };
  if (vmx_parse ((const char *) data, size, "fuzz.vmx", &c, &e) < 0)
    return 0;
  size_t len;
  char *text = vmx_format (c, &len);
  if (!text)
    abort ();
  if (len != size || memcmp (text, data, size) != 0)
    abort ();
  free (text);

  uint64_t mb;
  unsigned n;
  bool on;
  uint8_t uuid[16];
  vmx_mem_size_mb (c, &mb, NULL);
  vmx_num_vcpus (c, &n, NULL);
  vmx_ctk_enabled (c, &on, NULL);
  vmx_uuid_bios (c, uuid, NULL);
  struct vmx_disk *d;
  size_t nd;
  if (vmx_disks (c, &d, &nd, NULL) == 0) {
    if (nd > 0)
      vmx_disk_set_file_name (c, d[0].device, "fuzz |\"#\n-000001.vmdk", NULL);
    vmx_disks_free (d, nd);
  }

  const char *key = NULL, *value;
  size_t cur = 0;
  if (vmx_entry_next (c, &cur, &key, &value)) {
    char *k = strdup (key);
    if (k && vmx_set (c, k, "x\"|#\x01y", NULL) == 0) {
      text = vmx_format (c, &len);
      if (!text)
        abort ();
      struct vmx_config *c2;
      if (within_bounds (text, len)) {
        if (vmx_parse (text, len, "fuzz2.vmx", &c2, NULL) < 0)
          abort ();
        const char *v = vmx_get (c2, k);
        if (!v || strcmp (v, "x\"|#\x01y") != 0)
          abort ();
        vmx_free (c2);
      }
      free (text);
      vmx_remove (c, k);
      if (vmx_get (c, k))
        abort ();
    }
    free (k);
  }
  vmx_set (c, "vmback.fuzz", "1", NULL);
  vmx_free (c);
  return 0;
}
