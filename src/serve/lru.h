/* vmback: a fixed set of cache slots named by 64-bit keys, with O(1)
 * lookup (an open-addressing hash) and segmented least-recently-used
 * replacement (SLRU): a slot enters on probation and is protected once
 * reused, so a scan through more data than the cache holds replaces only
 * probation slots and leaves the reused ones (at most 4/5 of the slots)
 * in place.  The caller keeps the slots' contents in an array of its own,
 * indexed by slot number, says which hits are reuse, and does the locking.
 *
 * A slot is free, listed (holds a key, may be replaced: on probation or
 * protected) or taken (holds a key, being filled: found by lookups, never
 * replaced until released). */
#ifndef VMBACK_SERVE_LRU_H
#define VMBACK_SERVE_LRU_H

#include <stdbool.h>
#include <stdint.h>

#define LRU_NONE UINT32_MAX
#define LRU_MAX_SLOTS (1u << 24)

struct lru;

/* n slots (1..LRU_MAX_SLOTS), all free; NULL when out of memory. */
struct lru *lru_new (uint32_t n);
void lru_free (struct lru *l);

/* The slot holding key (listed or taken), or LRU_NONE. */
uint32_t lru_find (const struct lru *l, uint64_t key);

/* Mark listed slot s as the most recently used of its segment; reuse
 * (a hit on what was read before, not the next part of a first read)
 * moves a slot on probation to the protected segment, whose least
 * recently used slot goes back on probation when it is full. */
void lru_touch (struct lru *l, uint32_t s, bool reuse);

/* Take a slot for key (which no slot holds): a free one, else the least
 * recently used one on probation, else the least recently used protected
 * one; its old key is dropped (*evicted set: the caller frees what it
 * kept there).  LRU_NONE when every slot is taken. */
uint32_t lru_take (struct lru *l, uint64_t key, bool *evicted);

/* Release taken slot s: kept (on probation, the most recently used) or
 * dropped (its key forgotten, the slot free). */
void lru_release (struct lru *l, uint32_t s, bool keep);

/* Is slot s taken (being filled)? */
bool lru_taken (const struct lru *l, uint32_t s);

/* How many slots are protected now. */
uint32_t lru_protected (const struct lru *l);

#endif
