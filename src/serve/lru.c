/* vmback: cache slots with hashed lookup and SLRU replacement (lru.h).
 *
 * Two lists, most recently used at the head: probation and protected.
 * Free slots sit on the probation list too: listed slots go to the head
 * when kept or touched, free ones to the tail, so the free slots are
 * always the tail end of probation and its tail is the slot to take:
 * free if any is, else the least recently used on probation.  Only when
 * probation is empty (every other slot protected or taken) is the
 * protected tail taken.  Reuse moves a slot to the protected head; past
 * PROTECTED_SHARE of the slots, the protected tail goes back to the
 * probation head.  Taken slots are on no list.  The hash table (linear
 * probing, at most half full, deletion by backward shift) maps the keys
 * of listed and taken slots to their slot numbers. */
#include <stdlib.h>

#include "lru.h"

enum { FREE, PROBATION, PROTECTED, TAKEN };
enum { PROB, PROT };              /* the lists */

/* at most 4/5 of the slots protected: probation keeps room for a scan's
 * chunks to be read whole before they are replaced */
#define PROTECTED_SHARE(n) ((uint32_t) ((uint64_t) (n) * 4 / 5))

struct list {
  uint32_t head, tail;           /* LRU_NONE when empty */
};

struct lru {
  uint32_t n;                    /* slots */
  uint32_t mask;                 /* hash table size - 1 */
  unsigned shift;                /* 64 - log2 (hash table size) */
  struct list list[2];           /* probation, protected */
  uint32_t nprot, maxprot;       /* protected slots now, at most */
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

/* ---- the lists -------------------------------------------------------------- */

/* Take slot s off list t. */
static void
unlink_slot (struct lru *l, int t, uint32_t s)
{
  struct list *li = &l->list[t];
  uint32_t p = l->prev[s], n = l->next[s];
  if (p != LRU_NONE)
    l->next[p] = n;
  else
    li->head = n;
  if (n != LRU_NONE)
    l->prev[n] = p;
  else
    li->tail = p;
  l->prev[s] = l->next[s] = LRU_NONE;
}

/* Put slot s (on no list) at the head of list t. */
static void
push_head (struct lru *l, int t, uint32_t s)
{
  struct list *li = &l->list[t];
  l->prev[s] = LRU_NONE;
  l->next[s] = li->head;
  if (li->head != LRU_NONE)
    l->prev[li->head] = s;
  else
    li->tail = s;
  li->head = s;
}

/* Put slot s (on no list) at the tail of list t. */
static void
push_tail (struct lru *l, int t, uint32_t s)
{
  struct list *li = &l->list[t];
  l->next[s] = LRU_NONE;
  l->prev[s] = li->tail;
  if (li->tail != LRU_NONE)
    l->next[li->tail] = s;
  else
    li->head = s;
  li->tail = s;
}

/* Move listed slot s to the head of list t (its state follows). */
static void
move_head (struct lru *l, int t, uint32_t s)
{
  int from = l->state[s] == PROTECTED ? PROT : PROB;
  unlink_slot (l, from, s);
  push_head (l, t, s);
  l->nprot += (t == PROT) - (from == PROT);
  l->state[s] = t == PROT ? PROTECTED : PROBATION;
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
  l->list[PROB] = l->list[PROT] = (struct list) { LRU_NONE, LRU_NONE };
  l->maxprot = PROTECTED_SHARE (n);
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
    push_tail (l, PROB, s);
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

/* Listed slot s becomes the most recently used of its segment; reuse
 * protects it (lru.h). */
void
lru_touch (struct lru *l, uint32_t s, bool reuse)
{
  if (l->state[s] == PROTECTED) {
    move_head (l, PROT, s);
  } else if (l->state[s] == PROBATION && (!reuse || l->maxprot == 0)) {
    move_head (l, PROB, s);
  } else if (l->state[s] == PROBATION) {
    move_head (l, PROT, s);
    if (l->nprot > l->maxprot)
      move_head (l, PROB, l->list[PROT].tail);
  }
}

/* Take a slot for key: the probation tail, else the protected tail. */
uint32_t
lru_take (struct lru *l, uint64_t key, bool *evicted)
{
  int t = l->list[PROB].tail != LRU_NONE ? PROB : PROT;
  uint32_t s = l->list[t].tail;
  *evicted = false;
  if (s == LRU_NONE)
    return LRU_NONE;
  unlink_slot (l, t, s);
  if (l->state[s] != FREE) {
    hash_del_at (l, hash_pos (l, l->key[s]));
    *evicted = true;
  }
  l->nprot -= t == PROT;
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
    l->state[s] = PROBATION;
    push_head (l, PROB, s);
  } else {
    hash_del_at (l, hash_pos (l, l->key[s]));
    l->state[s] = FREE;
    push_tail (l, PROB, s);
  }
}

/* Is slot s being filled? */
bool
lru_taken (const struct lru *l, uint32_t s)
{
  return l->state[s] == TAKEN;
}

/* Slots protected now. */
uint32_t
lru_protected (const struct lru *l)
{
  return l->nprot;
}
