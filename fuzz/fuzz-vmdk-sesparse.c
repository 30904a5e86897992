/* Fuzz target: an ESXi seSparse extent on its own: const and volatile
 * headers, region checks, grain directory and tables, reads, check
 * (vmdk-sesparse.c).  The magic and version are forced. */
#include "fuzz-disk.h"

/* Force magic 0xcafebabe and version 0x200000001, run the disk body. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const uint8_t magic[16] = { 0xbe, 0xba, 0xfe, 0xca, 0, 0, 0, 0,
                                     1, 0, 0, 0, 2, 0, 0, 0 };
  const struct fuzz_patch p[] = { { 0, 16, magic } };
  return fuzz_disk_run (data, size, p, 1);
}
