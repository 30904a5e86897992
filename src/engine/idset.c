/* vmback engine: id set used by gc (mark), verify and backup dedup. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"

static const uint8_t zero_id[32];

/* Slot of id (or of the empty slot where it would go).  Ids are hashes,
 * so their first 8 bytes are already uniformly distributed. */
static size_t
slot (const struct idset *s, const uint8_t id[32])
{
  uint64_t h;
  memcpy (&h, id, 8);
  size_t mask = s->cap - 1, i = (size_t) h & mask;
  while (memcmp (s->v[i], zero_id, 32) != 0 && memcmp (s->v[i], id, 32) != 0)
    i = (i + 1) & mask;
  return i;
}

/* Double the table. */
static int
grow (struct idset *s)
{
  size_t ncap = s->cap ? s->cap * 2 : 1024;
  uint8_t (*nv)[32] = calloc (ncap, 32);
  if (!nv)
    return -ENOMEM;
  struct idset n = { .v = nv, .cap = ncap };
  for (size_t i = 0; i < s->cap; i++)
    if (memcmp (s->v[i], zero_id, 32) != 0)
      memcpy (n.v[slot (&n, s->v[i])], s->v[i], 32);
  free (s->v);
  s->v = nv;
  s->cap = ncap;
  return 0;
}

/* Insert an id. */
int
idset_add (struct idset *s, const uint8_t id[32])
{
  if (memcmp (id, zero_id, 32) == 0)
    return 0;
  if ((s->n + 1) * 2 > s->cap && grow (s) < 0)
    return -ENOMEM;
  size_t i = slot (s, id);
  if (memcmp (s->v[i], id, 32) == 0)
    return 0;
  memcpy (s->v[i], id, 32);
  s->n++;
  return 1;
}

/* Membership test. */
bool
idset_has (const struct idset *s, const uint8_t id[32])
{
  if (s->cap == 0 || memcmp (id, zero_id, 32) == 0)
    return false;
  return memcmp (s->v[slot (s, id)], id, 32) == 0;
}

/* Free the table. */
void
idset_free (struct idset *s)
{
  free (s->v);
  memset (s, 0, sizeof *s);
}
