/* vmback: process-wide tuning for streaming chunk data. */
#ifndef VMBACK_TUNE_H
#define VMBACK_TUNE_H

/* Keep freed chunk-sized buffers (256 KiB to 8 MiB) in the heap for reuse
 * instead of returning them to the kernel: glibc would otherwise mmap
 * each one afresh and fault in every page of every chunk (a third of a
 * backup's or an export's CPU time, measured with perf).  Memory stays
 * bounded by the number of buffers in flight.  Buffers of 12 MiB and more
 * (packs on their way to an object store) are mapped and unmapped each
 * time: kept in the heaps of several threads they added up to 240 MiB of
 * RSS.  Call once at start. */
void vb_malloc_tune (void);

#endif
