/* vmback: process-wide tuning for streaming chunk data (tune.h). */
#include <malloc.h>

#include "tune.h"

/* Serve chunk-sized allocations from the heap and keep freed ones; give
 * pack-sized ones (16 MiB and more) back when freed. */
void
vb_malloc_tune (void)
{
  mallopt (M_MMAP_THRESHOLD, 12 << 20);
  mallopt (M_TRIM_THRESHOLD, 256 << 20);
}
