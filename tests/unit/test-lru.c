/* Unit tests of the serve cache's slot table (src/serve/lru.c).
 *
 * Besides a few hand-made cases, random operations run against a plain
 * model written here: two arrays of slots in recency order (probation,
 * with free slots at its tail, and protected), scanned for every
 * question.  Keys are drawn from a small range (many hits, long probe
 * clusters) and from all 64 bits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "serve/lru.h"

enum { M_FREE, M_PROB, M_PROT, M_TAKEN };

/* One list of the model: order[0] is the most recently used. */
struct mlist {
  uint32_t len;
  uint32_t order[64];
};

/* The model: the tail of probation (else of protected) is the slot
 * lru_take must pick; taken slots are on no list. */
struct model {
  uint32_t n, maxprot;
  struct mlist prob, prot;
  uint64_t key[64];
  int state[64];
};

/* Start the model with n free slots, 0..n-1 from head to tail. */
static void
model_init (struct model *m, uint32_t n)
{
  memset (m, 0, sizeof *m);
  m->n = m->prob.len = n;
  m->maxprot = n * 4 / 5;
  for (uint32_t s = 0; s < n; s++)
    m->prob.order[s] = s;
}

/* The slot holding key, or LRU_NONE. */
static uint32_t
model_find (const struct model *m, uint64_t key)
{
  for (uint32_t s = 0; s < m->n; s++)
    if (m->state[s] != M_FREE && m->key[s] == key)
      return s;
  return LRU_NONE;
}

/* Take slot s off list li. */
static void
model_unlink (struct mlist *li, uint32_t s)
{
  for (uint32_t i = 0; i < li->len; i++)
    if (li->order[i] == s) {
      memmove (li->order + i, li->order + i + 1, (li->len - i - 1) * sizeof *li->order);
      li->len--;
      return;
    }
  fail_msg ("slot %u is not on the list", s);
}

/* Put s at the head (front) or the tail (back) of list li. */
static void
model_push (struct mlist *li, uint32_t s, bool head)
{
  if (head) {
    memmove (li->order + 1, li->order, li->len * sizeof *li->order);
    li->order[0] = s;
  } else {
    li->order[li->len] = s;
  }
  li->len++;
}

/* A hit on listed slot s, as lru.h says. */
static void
model_touch (struct model *m, uint32_t s, bool reuse)
{
  if (m->state[s] == M_PROT) {
    model_unlink (&m->prot, s);
    model_push (&m->prot, s, true);
  } else if (!reuse || m->maxprot == 0) {
    model_unlink (&m->prob, s);
    model_push (&m->prob, s, true);
  } else {
    model_unlink (&m->prob, s);
    model_push (&m->prot, s, true);
    m->state[s] = M_PROT;
    if (m->prot.len > m->maxprot) {
      uint32_t t = m->prot.order[m->prot.len - 1];
      model_unlink (&m->prot, t);
      model_push (&m->prob, t, true);
      m->state[t] = M_PROB;
    }
  }
}

/* Small cases by hand: fill, hit, evict the least recently used. */
static void
test_basic (void **state)
{
  (void) state;
  struct lru *l = lru_new (3);
  assert_non_null (l);
  bool ev;
  uint32_t s[3];
  for (uint64_t k = 0; k < 3; k++) {
    assert_int_equal (lru_find (l, 100 + k), LRU_NONE);
    s[k] = lru_take (l, 100 + k, &ev);
    assert_int_not_equal (s[k], LRU_NONE);
    assert_false (ev);
    assert_true (lru_taken (l, s[k]));
    assert_int_equal (lru_find (l, 100 + k), s[k]);   /* found while taken */
    lru_release (l, s[k], true);
    assert_false (lru_taken (l, s[k]));
  }
  lru_touch (l, s[0], false);           /* 100 is now the most recent */
  uint32_t t = lru_take (l, 200, &ev);  /* so 101 goes */
  assert_true (ev);
  assert_int_equal (t, s[1]);
  assert_int_equal (lru_find (l, 101), LRU_NONE);
  assert_int_equal (lru_find (l, 100), s[0]);
  assert_int_equal (lru_find (l, 102), s[2]);
  lru_release (l, t, true);
  assert_int_equal (lru_find (l, 200), t);
  lru_free (l);
}

/* Load key into a slot and keep it (a miss); the slot. */
static uint32_t
load (struct lru *l, uint64_t key)
{
  bool ev;
  uint32_t s = lru_take (l, key, &ev);
  assert_int_not_equal (s, LRU_NONE);
  lru_release (l, s, true);
  return s;
}

/* Reused keys stay through a scan of many more keys than slots; plain
 * hits do not protect; protecting more than 4/5 of the slots puts the
 * least recently reused back on probation. */
static void
test_scan (void **state)
{
  (void) state;
  struct lru *l = lru_new (10);                /* at most 8 protected */
  uint32_t hot[3];
  for (uint64_t k = 0; k < 3; k++) {
    hot[k] = load (l, k);
    lru_touch (l, hot[k], true);
  }
  uint32_t plain = load (l, 50);
  lru_touch (l, plain, false);
  assert_int_equal (lru_protected (l), 3);
  for (uint64_t k = 100; k < 1100; k++) {      /* a scan, each read in pieces */
    uint32_t s = load (l, k);
    lru_touch (l, s, false);
    lru_touch (l, s, false);
  }
  for (uint64_t k = 0; k < 3; k++)
    assert_int_equal (lru_find (l, k), hot[k]);
  assert_int_equal (lru_find (l, 50), LRU_NONE);
  assert_int_equal (lru_find (l, 1099) != LRU_NONE, true);
  /* 9 reused keys: the oldest of them is on probation again, replaced
   * first; the other 8 stay */
  for (uint64_t k = 3; k < 9; k++)
    lru_touch (l, load (l, k), true);
  assert_int_equal (lru_protected (l), 8);
  for (uint64_t k = 200; k < 300; k++)
    load (l, k);
  assert_int_equal (lru_find (l, 0), LRU_NONE);
  for (uint64_t k = 1; k < 9; k++)
    assert_int_not_equal (lru_find (l, k), LRU_NONE);
  lru_free (l);
}

/* Taken slots are never replaced; a dropped slot is free again. */
static void
test_all_taken (void **state)
{
  (void) state;
  struct lru *l = lru_new (2);
  bool ev;
  uint32_t a = lru_take (l, 1, &ev), b = lru_take (l, 2, &ev);
  assert_int_not_equal (a, LRU_NONE);
  assert_int_not_equal (b, LRU_NONE);
  assert_int_not_equal (a, b);
  assert_int_equal (lru_take (l, 3, &ev), LRU_NONE);
  assert_false (ev);
  lru_release (l, a, false);            /* a failed load */
  assert_int_equal (lru_find (l, 1), LRU_NONE);
  assert_int_equal (lru_take (l, 3, &ev), a);
  assert_false (ev);                    /* it was free: nothing to drop */
  lru_release (l, a, true);
  lru_release (l, b, true);
  assert_int_equal (lru_find (l, 2), b);
  assert_int_equal (lru_find (l, 3), a);
  lru_free (l);
}

/* Sizes outside 1..LRU_MAX_SLOTS are refused. */
static void
test_limits (void **state)
{
  (void) state;
  assert_null (lru_new (0));
  assert_null (lru_new (LRU_MAX_SLOTS + 1));
  struct lru *l = lru_new (1);
  bool ev;
  for (uint64_t k = 0; k < 10; k++) {
    uint32_t s = lru_take (l, k, &ev);
    assert_int_equal (s, 0);
    assert_int_equal (ev, k > 0);
    lru_release (l, s, true);
    assert_int_equal (lru_find (l, k), 0);
    if (k)
      assert_int_equal (lru_find (l, k - 1), LRU_NONE);
  }
  lru_free (l);
}

/* One random run of ops operations on n slots, keys from a range of
 * `range` values (0 = any 64-bit value), checked against the model. */
static void
random_run (uint32_t n, uint64_t range, unsigned seed, int ops)
{
  struct lru *l = lru_new (n);
  struct model m;
  model_init (&m, n);
  srand (seed);
  assert_non_null (l);
  for (int op = 0; op < ops; op++) {
    uint64_t key = range ? (uint64_t) rand () % range
                         : ((uint64_t) rand () << 42) ^ ((uint64_t) rand () << 21) ^ (uint64_t) rand ();
    uint32_t s = lru_find (l, key);
    assert_int_equal (s, model_find (&m, key));
    int what = rand () % 4;
    if (s != LRU_NONE && m.state[s] != M_TAKEN) {
      bool reuse = rand () % 3 == 0;                /* a hit */
      lru_touch (l, s, reuse);
      model_touch (&m, s, reuse);
    } else if (s == LRU_NONE && what < 3) {         /* a miss: take a slot */
      bool ev;
      uint32_t t = lru_take (l, key, &ev);
      struct mlist *from = m.prob.len ? &m.prob : &m.prot;
      uint32_t want = from->len ? from->order[from->len - 1] : LRU_NONE;
      assert_int_equal (t, want);
      if (t == LRU_NONE)
        continue;
      assert_int_equal (ev, m.state[t] != M_FREE);
      model_unlink (from, t);
      m.key[t] = key;
      m.state[t] = M_TAKEN;
    }
    /* now and then, finish a load: kept or dropped */
    if (what == 3)
      for (uint32_t t = (uint32_t) rand () % n, i = 0; i < n; i++, t = (t + 1) % n)
        if (m.state[t] == M_TAKEN) {
          bool keep = rand () % 4 != 0;
          lru_release (l, t, keep);
          m.state[t] = keep ? M_PROB : M_FREE;
          model_push (&m.prob, t, keep);
          break;
        }
    assert_int_equal (lru_protected (l), m.prot.len);
    for (uint32_t t = 0; t < n; t++) {
      assert_int_equal (lru_taken (l, t), m.state[t] == M_TAKEN);
      if (m.state[t] != M_FREE)
        assert_int_equal (lru_find (l, m.key[t]), t);
    }
  }
  lru_free (l);
}

/* The model and the table agree over many random operations. */
static void
test_random (void **state)
{
  (void) state;
  static const uint32_t sizes[] = { 1, 2, 3, 7, 16, 33, 64 };
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    random_run (sizes[i], 3 * sizes[i], 1000 + (unsigned) i, 20000);
    random_run (sizes[i], sizes[i] + 1, 2000 + (unsigned) i, 20000);
    random_run (sizes[i], 0, 3000 + (unsigned) i, 5000);
  }
}

/* A large table: every key found after many replacements, in O(1). */
static void
test_large (void **state)
{
  (void) state;
  uint32_t n = 1u << 16;
  struct lru *l = lru_new (n);
  bool ev;
  for (uint64_t k = 0; k < 4 * (uint64_t) n; k++) {
    uint32_t s = lru_take (l, k * 1048576, &ev);   /* keys as chunk offsets */
    assert_int_not_equal (s, LRU_NONE);
    assert_int_equal (ev, k >= n);
    lru_release (l, s, true);
  }
  for (uint64_t k = 0; k < 4 * (uint64_t) n; k++)
    assert_int_equal (lru_find (l, k * 1048576) != LRU_NONE, k >= 3 * (uint64_t) n);
  lru_free (l);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_basic),
    cmocka_unit_test (test_all_taken),
    cmocka_unit_test (test_scan),
    cmocka_unit_test (test_limits),
    cmocka_unit_test (test_random),
    cmocka_unit_test (test_large),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
