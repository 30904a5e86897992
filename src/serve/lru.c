/* vmback: cache slots with hashed lookup and LRU replacement (lru.h).
 *
 * Free and listed slots sit on one list, most recently used at the head.
 * Listed slots go to the head when kept or touched, free ones to the
 * tail, so the free slots are always the tail end of the list and the
 * tail is the slot to take: free if any is, else the least recently used.
 * Taken slots are on no list.  The hash table (linear probing, at most
 * half full, deletion by backward shift) maps the keys of listed and
 * taken slots to their slot numbers. */
#include <stdlib.h>

#include "lru.h"

enum { FREE, LISTED, TAKEN };

struct lru {
  uint32_t n;                    /* slots */
  uint32_t mask;                 /* hash table size - 1 */
  unsigned shift;                /* 64 - log2 (hash table size) */
  uint32_t head, tail;           /* the list's ends (LRU_NONE when empty) */
  uint64_t *key;
  uint32_t *prev, *next;
  uint8_t *state;
  uint32_t *tab;                 /* slot numbers; LRU_NONE = empty */
};

/* Where key's probe sequence starts (Fibonacci hashing). */
static uint32_t
home (const struct lru *l, uint64_t key)
{
  return (uint32_t) ((key * UINT64_C (0x9E3779B97F4A7C15)) >> l->shift);
}

/* ---- the list --------------------------------------------------------------- */

/* Take slot s off the list. */
static void
unlink_slot (struct lru *l, uint32_t s)
{
  uint32_t p = l->prev[s], n = l->next[s];
  if (p != LRU_NONE)
    l->next[p] = n;
  else
    l->head = n;
  if (n != LRU_NONE)
    l->prev[n] = p;
  else
    l->tail = p;
  l->prev[s] = l->next[s] = LRU_NONE;
}

/* Put slot s (on no list) at the head. */
static void
push_head (struct lru *l, uint32_t s)
{
  l->prev[s] = LRU_NONE;
  l->next[s] = l->head;
  if (l->head != LRU_NONE)
    l->prev[l->head] = s;
  else
    l->tail = s;
  l->head = s;
}

/* Put slot s (on no list) at the tail. */
static void
push_tail (struct lru *l, uint32_t s)
{
  l->next[s] = LRU_NONE;
  l->prev[s] = l->tail;
  if (l->tail != LRU_NONE)
    l->next[l->tail] = s;
  else
    l->head = s;
  l->tail = s;
}

/* ---- the hash table --------------------------------------------------------- */

/* The table position holding key, or LRU_NONE. */
static uint32_t
hash_pos (const struct lru *l, uint64_t key)
{
  for (uint32_t i = home (l, key);; i = (i + 1) & l->mask) {
    uint32_t s = l->tab[i];
    if (s == LRU_NONE)
      return LRU_NONE;
    if (l->key[s] == key)
      return i;
  }
}

/* Enter slot s under its key (not in the table yet; the table has room). */
static void
hash_put (struct lru *l, uint32_t s)
{
  uint32_t i = home (l, l->key[s]);
  while (l->tab[i] != LRU_NONE)
    i = (i + 1) & l->mask;
  l->tab[i] = s;
}

/* Empty table position i, moving later entries of its cluster back so
 * that every key stays reachable from its home. */
static void
hash_del_at (struct lru *l, uint32_t i)
{
  uint32_t j = i;
  for (;;) {
    l->tab[i] = LRU_NONE;
    for (;;) {
      j = (j + 1) & l->mask;
      if (l->tab[j] == LRU_NONE)
        return;
      uint32_t k = home (l, l->key[l->tab[j]]);
      /* the entry at j stays when its home lies cyclically in (i, j] */
      bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays)
        break;
    }
    l->tab[i] = l->tab[j];
    i = j;
  }
}

/* ---- the interface ---------------------------------------------------------- */

/* A cache of n slots, all free. */
struct lru *
lru_new (uint32_t n)
{
  if (n < 1 || n > LRU_MAX_SLOTS)
    return NULL;
  struct lru *l = calloc (1, sizeof *l);
  if (!l)
    return NULL;
  uint32_t size = 2;
  unsigned bits = 1;
  while (size < 2 * (uint64_t) n)
    size <<= 1, bits++;
  l->n = n;
  l->mask = size - 1;
  l->shift = 64 - bits;
  l->head = l->tail = LRU_NONE;
  l->key = calloc (n, sizeof *l->key);
  l->prev = malloc (n * sizeof *l->prev);
  l->next = malloc (n * sizeof *l->next);
  l->state = calloc (n, sizeof *l->state);
  l->tab = malloc (size * sizeof *l->tab);
  if (!l->key || !l->prev || !l->next || !l->state || !l->tab) {
    lru_free (l);
    return NULL;
  }
  for (uint32_t i = 0; i < size; i++)
    l->tab[i] = LRU_NONE;
  for (uint32_t s = 0; s < n; s++)
    push_tail (l, s);
  return l;
}

/* Free the bookkeeping (not the caller's slot contents). */
void
lru_free (struct lru *l)
{
  if (!l)
    return;
  free (l->key);
  free (l->prev);
  free (l->next);
  free (l->state);
  free (l->tab);
  free (l);
}

/* The slot holding key, or LRU_NONE. */
uint32_t
lru_find (const struct lru *l, uint64_t key)
{
  uint32_t i = hash_pos (l, key);
  return i == LRU_NONE ? LRU_NONE : l->tab[i];
}

/* Listed slot s becomes the most recently used. */
void
lru_touch (struct lru *l, uint32_t s)
{
  if (l->state[s] != LISTED || l->head == s)
    return;
  unlink_slot (l, s);
  push_head (l, s);
}

/* Take the tail slot for key (lru.h). */
uint32_t
lru_take (struct lru *l, uint64_t key, bool *evicted)
{
  uint32_t s = l->tail;
  *evicted = false;
  if (s == LRU_NONE)
    return LRU_NONE;
  unlink_slot (l, s);
  if (l->state[s] == LISTED) {
    hash_del_at (l, hash_pos (l, l->key[s]));
    *evicted = true;
  }
  l->key[s] = key;
  l->state[s] = TAKEN;
  hash_put (l, s);
  return s;
}

/* Release taken slot s, keeping its key or dropping it. */
void
lru_release (struct lru *l, uint32_t s, bool keep)
{
  if (l->state[s] != TAKEN)
    return;
  if (keep) {
    l->state[s] = LISTED;
    push_head (l, s);
  } else {
    hash_del_at (l, hash_pos (l, l->key[s]));
    l->state[s] = FREE;
    push_tail (l, s);
  }
}

/* Is slot s being filled? */
bool
lru_taken (const struct lru *l, uint32_t s)
{
  return l->state[s] == TAKEN;
}
