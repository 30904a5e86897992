/* Unit tests: the ordered work ring (src/engine/pipeline.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "engine/pipeline.h"

#define NSLOTS 6
#define JOBS 200

/* Worker: the slot's first byte becomes (job number * 7) mod 251, slowly
 * for every third job, so that jobs finish out of order. */
static int
work (void *ctx, struct pl_slot *s, struct vb_error *err)
{
  (void) ctx;
  (void) err;
  if (s->i % 3 == 0)
    usleep (200);
  s->buf[0] = (uint8_t) ((s->i * 7) % 251);
  s->stored = s->i;
  return 0;
}

/* Check a finished slot: in order, with its own result. */
static void
check_done (struct pl_slot *d, uint64_t *expect)
{
  assert_int_equal (d->rc, 0);
  assert_int_equal (d->stored, *expect);
  assert_int_equal (d->buf[0], (uint8_t) ((*expect * 7) % 251));
  (*expect)++;
}

/* Several slots out being filled at once (as reads in flight do), then
 * submitted in the order received: results come back in that order and
 * no slot is handed out twice. */
static void
test_filling_several (void **state)
{
  (void) state;
  struct pipeline *p;
  struct vb_error e = { 0 };
  assert_int_equal (pl_start (&p, NSLOTS, 4096, 2, work, NULL, &e), 0);
  struct pl_slot *out[3];
  int nout = 0;
  uint64_t expect = 0;
  for (uint64_t i = 0; i < JOBS; i++) {
    struct pl_slot *done;
    struct pl_slot *s = pl_next (p, &done);
    if (done)
      check_done (done, &expect);
    for (int k = 0; k < nout; k++)
      assert_ptr_not_equal (s, out[k]);
    s->i = i;
    out[nout++] = s;
    if (nout == 3) {                /* submit the oldest */
      pl_submit (p, out[0]);
      memmove (out, out + 1, 2 * sizeof *out);
      nout--;
    }
  }
  for (int k = 0; k < nout; k++)
    pl_submit (p, out[k]);
  struct pl_slot *d;
  while ((d = pl_take (p))) {
    check_done (d, &expect);
    pl_release (p, d);
  }
  assert_int_equal (expect, JOBS);
  pl_stop (p);
}

/* Slots handed out and never submitted (an error stopped the filler)
 * are dropped by pl_stop; the submitted ones are still waited for. */
static void
test_unsubmitted_dropped (void **state)
{
  (void) state;
  struct pipeline *p;
  struct vb_error e = { 0 };
  assert_int_equal (pl_start (&p, NSLOTS, 4096, 2, work, NULL, &e), 0);
  struct pl_slot *done;
  struct pl_slot *a = pl_next (p, &done);
  a->i = 0;
  pl_submit (p, a);
  struct pl_slot *b = pl_next (p, &done);
  struct pl_slot *c = pl_next (p, &done);
  assert_ptr_not_equal (b, c);
  struct pl_slot *d = pl_take (p);
  assert_ptr_equal (d, a);
  assert_int_equal (d->stored, 0);
  pl_release (p, d);
  assert_null (pl_take (p));
  pl_stop (p);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_filling_several),
    cmocka_unit_test (test_unsubmitted_dropped),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
