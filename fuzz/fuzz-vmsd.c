/* Fuzz target: the .vmsd parser, validator, writer and tree model
 * (vmsd.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/vmsd.h"
#include "connectors/vmx-config.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* True when text is within the parser's bounds (so it must parse). */
static bool
within_bounds (const char *s, size_t len)
{
  size_t lines = 0, start = 0;
  if (len > VMX_MAX_FILE)
    return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] == '\n') {
      if (i - start > VMX_MAX_LINE)
        return false;
      lines++;
      start = i + 1;
    }
  return lines <= VMX_MAX_LINES;
}

/* Format m; the text must parse again (when within bounds) and format to
 * the same text, with the same number of snapshots. */
static void
check_round_trip (const struct vmsd *m)
{
  size_t len;
  char *t = vmsd_format (m, &len);
  if (!t)
    abort ();
  if (within_bounds (t, len)) {
    struct vmsd m2;
    if (vmsd_parse (t, len, "fuzz2.vmsd", &m2, NULL) < 0)
      abort ();
    char *t2 = vmsd_format (&m2, NULL);
    if (!t2 || strcmp (t, t2) != 0 || m2.n != m->n || m2.current != m->current)
      abort ();
    free (t2);
    vmsd_free (&m2);
  }
  free (t);
}

/* Parse; on success round-trip, walk the tree, then apply model
 * operations and check the result still validates and round-trips. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct vmsd m;
  struct vb_error e = { 0 };
  if (vmsd_parse ((const char *) data, size, "fuzz.vmsd", &m, &e) < 0)
    return 0;
  check_round_trip (&m);

  uint32_t out[VMSD_MAX_SNAPSHOTS];
  size_t np = vmsd_current_path (&m, out);
  if (np && out[np - 1] != m.current)
    abort ();
  for (size_t i = 0; i < m.n; i++) {
    vmsd_children (&m, m.snap[i].uid, out);
    if (vmsd_on_current_path (&m, m.snap[i].uid) && !m.current)
      abort ();
  }
  if (m.n) {
    uint32_t first = m.snap[0].uid;
    if (vmsd_set_current (&m, first, NULL) < 0 || m.current != first)
      abort ();
  }
  struct vmsd_snapshot *s;
  if (vmsd_add_child (&m, "fuzz", 1, &s, NULL) == 0) {
    if (s->uid != m.last_uid || m.current != s->uid)
      abort ();
    vmsd_add_disk (s, "f-000001.vmdk", "scsi0:0", NULL);
  }
  if (m.n) {
    uint32_t u = m.snap[m.n / 2].uid;
    if (vmsd_remove (&m, u, NULL) < 0 || vmsd_find (&m, u))
      abort ();
  }
  if (vmsd_validate (&m, "fuzz.vmsd", NULL) < 0)
    abort ();
  check_round_trip (&m);
  vmsd_free (&m);
  return 0;
}
