/* Fuzz target: an ESXi vmfsSparse (COWD) extent on its own: header,
 * grain directory, grain tables, reads, writes, check (vmdk-cowd.c).
 * The magic is forced. */
#include "fuzz-disk.h"

/* Force "COWD" and run the shared disk body. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const uint8_t magic[4] = { 'C', 'O', 'W', 'D' };
  const struct fuzz_patch p[] = { { 0, 4, magic } };
  return fuzz_disk_run (data, size, p, 1);
}
