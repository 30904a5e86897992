/* Fuzz target: a hosted sparse (KDMV) file on its own: header, embedded
 * descriptor, grain directories and tables, grain reads, writes, check
 * and repair (vmdk-sparse.c).  The magic is forced so every input is
 * parsed as KDMV. */
#include "fuzz-disk.h"

/* Force "KDMV" and run the shared disk body. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const uint8_t magic[4] = { 'K', 'D', 'M', 'V' };
  const struct fuzz_patch p[] = { { 0, 4, magic } };
  return fuzz_disk_run (data, size, p, 1);
}
