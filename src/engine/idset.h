/* vmback engine: a set of 32-byte chunk ids (open addressing). */
#ifndef VMBACK_IDSET_H
#define VMBACK_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct idset {
  uint8_t (*v)[32];
  size_t n, cap;     /* cap is a power of two; all-zero id = empty slot */
};

/* Add id (the all-zero id is never stored); 1 added, 0 present, -ENOMEM. */
int idset_add (struct idset *s, const uint8_t id[32]);
bool idset_has (const struct idset *s, const uint8_t id[32]);
void idset_free (struct idset *s);

#endif
