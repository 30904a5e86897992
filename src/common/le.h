/* vmback: little-endian loads and stores for on-disk and in-repository
 * structures (VMDK headers, chunk blobs, indexes, pack indexes, overlay
 * bitmaps): one set for every layer. */
#ifndef VMBACK_LE_H
#define VMBACK_LE_H

#include <stdint.h>

static inline uint16_t le16_get (const void *p)
{ const uint8_t *b = p; return (uint16_t) (b[0] | b[1] << 8); }
static inline uint32_t le32_get (const void *p)
{ const uint8_t *b = p; return (uint32_t) b[0] | (uint32_t) b[1] << 8 |
    (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24; }
static inline uint64_t le64_get (const void *p)
{ return (uint64_t) le32_get (p) | (uint64_t) le32_get ((const uint8_t *) p + 4) << 32; }
static inline void le16_put (void *p, uint16_t v)
{ uint8_t *b = p; b[0] = (uint8_t) v; b[1] = (uint8_t) (v >> 8); }
static inline void le32_put (void *p, uint32_t v)
{ uint8_t *b = p; for (int i = 0; i < 4; i++) b[i] = (uint8_t) (v >> (8 * i)); }
static inline void le64_put (void *p, uint64_t v)
{ uint8_t *b = p; for (int i = 0; i < 8; i++) b[i] = (uint8_t) (v >> (8 * i)); }

#endif
