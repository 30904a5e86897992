/* Fuzz target: a streamOptimized file on its own: KDMV header with
 * compressed grains and markers, the footer, the grain markers and
 * deflate streams, the metadata markers and the append-only writer
 * (vmdk-stream.c).  The magic, the compressed-grains and markers flags
 * and the deflate algorithm are forced. */
#include "fuzz-disk.h"

/* Force the stream header fields and run the shared disk body. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const uint8_t magic[4] = { 'K', 'D', 'M', 'V' };
  static const uint8_t flags2[1] = { 0x03 };      /* bits 16, 17 of flags */
  static const uint8_t deflate[2] = { 1, 0 };     /* compressAlgorithm */
  const struct fuzz_patch p[] = {
    { 0, 4, magic }, { 10, 1, flags2 }, { 77, 2, deflate },
  };
  if (size < 10)
    return fuzz_disk_run (data, size, p, 1);
  return fuzz_disk_run (data, size, p, 3);
}
