/* vmback engine: the ordered work ring (see pipeline.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pipeline.h"

enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE, SLOT_TAKEN };

struct pipeline {
  pthread_mutex_t mu;
  pthread_cond_t work;       /* workers wait here for queued slots */
  pthread_cond_t done;       /* the main thread waits here */
  struct pl_slot *slots;
  int nslots;
  uint64_t head;             /* next sequence number to submit */
  uint64_t tail;             /* oldest outstanding sequence number */
  int filling;               /* slots handed out by pl_next, not submitted */
  uint8_t *mem;              /* the slots' buffers, one mapping */
  size_t mem_len;
  int *queue;                /* FIFO of queued slot indices */
  int qhead, qlen;
  pthread_t *threads;
  int nthreads;
  int stopping;
  pl_work_fn fn;
  void *ctx;
};

/* Worker: take queued slots, run fn, mark them done. */
static void *
worker (void *arg)
{
  struct pipeline *p = arg;
  pthread_mutex_lock (&p->mu);
  for (;;) {
    while (p->qlen == 0 && !p->stopping)
      pthread_cond_wait (&p->work, &p->mu);
    if (p->qlen == 0 && p->stopping)
      break;
    int k = p->queue[p->qhead];
    p->qhead = (p->qhead + 1) % p->nslots;
    p->qlen--;
    struct pl_slot *s = &p->slots[k];
    s->state = SLOT_BUSY;
    pthread_mutex_unlock (&p->mu);
    vb_err_clear (&s->err);
    s->rc = p->fn (p->ctx, s, &s->err);
    pthread_mutex_lock (&p->mu);
    s->state = SLOT_DONE;
    pthread_cond_broadcast (&p->done);
  }
  pthread_mutex_unlock (&p->mu);
  return NULL;
}

/* Number of CPUs we may use, clamped to [2, 16]. */
int
pl_default_threads (void)
{
  long n = sysconf (_SC_NPROCESSORS_ONLN);
  return n < 2 ? 2 : n > 16 ? 16 : (int) n;
}

/* Give each slot a page-aligned buffer of bufsize bytes (restores write
 * them with O_DIRECT), all in one mapping backed by huge pages where the
 * kernel offers them: first touches of fresh memory cost a fault per 4 KiB
 * page otherwise, which on a VM whose host reclaims free guest memory is
 * several ms per MiB, more than a chunk's decoding. */
static int
alloc_buffers (struct pipeline *p, size_t bufsize)
{
  const size_t huge = 2u << 20;
  size_t per = (bufsize + 4095) & ~(size_t) 4095;
  size_t len = ((size_t) p->nslots * per + huge - 1) & ~(huge - 1);
  uint8_t *m = mmap (NULL, len + huge, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return -1;
  /* align to a huge page boundary and return the slack */
  uint8_t *a = (uint8_t *) (((uintptr_t) m + huge - 1) & ~(uintptr_t) (huge - 1));
  if (a > m)
    munmap (m, (size_t) (a - m));
  if (a + len < m + len + huge)
    munmap (a + len, (size_t) (m + len + huge - (a + len)));
#ifdef MADV_HUGEPAGE
  madvise (a, len, MADV_HUGEPAGE);              /* a hint: failure is fine */
#endif
  p->mem = a;
  p->mem_len = len;
  for (int i = 0; i < p->nslots; i++)
    p->slots[i].buf = a + (size_t) i * per;
  return 0;
}

/* Allocate the ring and start the workers. */
int
pl_start (struct pipeline **out, int nslots, size_t bufsize, int nthreads,
          pl_work_fn fn, void *ctx, struct vb_error *err)
{
  struct pipeline *p = calloc (1, sizeof *p);
  if (!p)
    return vb_errno (err, ENOMEM, "cannot start workers");
  pthread_mutex_init (&p->mu, NULL);
  pthread_cond_init (&p->work, NULL);
  pthread_cond_init (&p->done, NULL);
  p->nslots = nslots;
  p->fn = fn;
  p->ctx = ctx;
  p->slots = calloc ((size_t) nslots, sizeof *p->slots);
  p->queue = calloc ((size_t) nslots, sizeof *p->queue);
  p->threads = calloc ((size_t) nthreads, sizeof *p->threads);
  if (!p->slots || !p->queue || !p->threads)
    goto oom;
  if (bufsize && alloc_buffers (p, bufsize) < 0)
    goto oom;
  for (int i = 0; i < nthreads; i++) {
    if (pthread_create (&p->threads[i], NULL, worker, p) != 0)
      break;
    p->nthreads++;
  }
  if (p->nthreads == 0)
    goto oom;
  *out = p;
  return 0;
oom:
  pl_stop (p);
  return vb_errno (err, ENOMEM, "cannot start workers");
}

/* Wait until the oldest outstanding slot is done; NULL if none. */
static struct pl_slot *
take_locked (struct pipeline *p)
{
  if (p->tail == p->head)
    return NULL;
  struct pl_slot *s = &p->slots[p->tail % (uint64_t) p->nslots];
  while (s->state != SLOT_DONE)
    pthread_cond_wait (&p->done, &p->mu);
  s->state = SLOT_TAKEN;
  p->tail++;
  return s;
}

/* Next slot to fill (see pipeline.h). */
struct pl_slot *
pl_next (struct pipeline *p, struct pl_slot **done)
{
  pthread_mutex_lock (&p->mu);
  *done = NULL;
  uint64_t at = p->head + (uint64_t) p->filling;
  if (at - p->tail == (uint64_t) p->nslots)
    *done = take_locked (p);
  struct pl_slot *s = &p->slots[at % (uint64_t) p->nslots];
  p->filling++;
  pthread_mutex_unlock (&p->mu);
  return s;
}

/* Queue a filled slot. */
void
pl_submit (struct pipeline *p, struct pl_slot *s)
{
  pthread_mutex_lock (&p->mu);
  s->state = SLOT_QUEUED;
  p->queue[(p->qhead + p->qlen) % p->nslots] = (int) (s - p->slots);
  p->qlen++;
  p->head++;
  p->filling--;
  pthread_cond_signal (&p->work);
  pthread_mutex_unlock (&p->mu);
}

/* Oldest outstanding slot once done. */
struct pl_slot *
pl_take (struct pipeline *p)
{
  pthread_mutex_lock (&p->mu);
  struct pl_slot *s = take_locked (p);
  pthread_mutex_unlock (&p->mu);
  return s;
}

/* Give a taken slot back. */
void
pl_release (struct pipeline *p, struct pl_slot *s)
{
  pthread_mutex_lock (&p->mu);
  s->state = SLOT_FREE;
  pthread_mutex_unlock (&p->mu);
}

/* Drain, stop and free. */
void
pl_stop (struct pipeline *p)
{
  if (!p)
    return;
  pthread_mutex_lock (&p->mu);
  while (take_locked (p))
    ;
  p->stopping = 1;
  pthread_cond_broadcast (&p->work);
  pthread_mutex_unlock (&p->mu);
  for (int i = 0; i < p->nthreads; i++)
    pthread_join (p->threads[i], NULL);
  if (p->mem)
    munmap (p->mem, p->mem_len);
  free (p->slots);
  free (p->queue);
  free (p->threads);
  pthread_mutex_destroy (&p->mu);
  pthread_cond_destroy (&p->work);
  pthread_cond_destroy (&p->done);
  free (p);
}
