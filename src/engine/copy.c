/* vmback engine: copy restore points between two repositories.
 *
 * For each point the destination lacks: every chunk of its indexes that
 * the destination does not hold is fetched from the source, decoded there
 * (which verifies it) and stored in the destination (worker threads,
 * pipeline.c); then the destination is synced, the indexes are written,
 * and the manifest last, so a point appears only once everything it names
 * is durable.  An interrupted copy leaves chunks (gc may reclaim them) and
 * maybe indexes, never a point; a rerun skips points whose manifest exists
 * and chunks the destination holds.
 *
 * Keys: chunks of two unencrypted repositories have the same ids (SHA-256
 * of the data) and key-independent blobs, so blobs travel as they are.
 * Otherwise each chunk is decoded with the source's keys and encoded with
 * the destination's; its id changes (HMAC with the destination's id key),
 * so the indexes are rewritten through a source-id -> destination-id map. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-int.h"
#include "pipeline.h"

#define SLOTS_PER_THREAD 4
#define MIN_THREADS 4            /* mostly waiting for the network */

/* Map of 32-byte source ids to destination ids (open addressing). */
struct idmap {
  uint8_t (*k)[REPO_ID_LEN];
  uint8_t (*v)[REPO_ID_LEN];
  size_t n, cap;
};

/* Slot of id in a table of cap (power of two) keys. */
static size_t
map_slot (uint8_t (*k)[REPO_ID_LEN], size_t cap, const uint8_t id[REPO_ID_LEN])
{
  static const uint8_t zero[REPO_ID_LEN];
  uint64_t h;
  memcpy (&h, id, sizeof h);            /* ids are hashes: well spread */
  size_t i = (size_t) h & (cap - 1);
  while (memcmp (k[i], zero, REPO_ID_LEN) != 0 && memcmp (k[i], id, REPO_ID_LEN) != 0)
    i = (i + 1) & (cap - 1);
  return i;
}

/* Destination id of src id, or NULL. */
static const uint8_t *
map_get (const struct idmap *m, const uint8_t id[REPO_ID_LEN])
{
  if (!m->cap)
    return NULL;
  size_t i = map_slot (m->k, m->cap, id);
  return memcmp (m->k[i], id, REPO_ID_LEN) == 0 ? m->v[i] : NULL;
}

/* Insert or replace; -ENOMEM on failure. */
static int
map_put (struct idmap *m, const uint8_t id[REPO_ID_LEN], const uint8_t val[REPO_ID_LEN])
{
  if ((m->n + 1) * 2 > m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 4096;
    uint8_t (*nk)[REPO_ID_LEN] = calloc (nc, REPO_ID_LEN);
    uint8_t (*nv)[REPO_ID_LEN] = calloc (nc, REPO_ID_LEN);
    if (!nk || !nv) {
      free (nk);
      free (nv);
      return -ENOMEM;
    }
    static const uint8_t zero[REPO_ID_LEN];
    for (size_t i = 0; i < m->cap; i++)
      if (memcmp (m->k[i], zero, REPO_ID_LEN) != 0) {
        size_t j = map_slot (nk, nc, m->k[i]);
        memcpy (nk[j], m->k[i], REPO_ID_LEN);
        memcpy (nv[j], m->v[i], REPO_ID_LEN);
      }
    free (m->k);
    free (m->v);
    m->k = nk;
    m->v = nv;
    m->cap = nc;
  }
  size_t i = map_slot (m->k, m->cap, id);
  if (memcmp (m->k[i], id, REPO_ID_LEN) != 0)
    m->n++;
  memcpy (m->k[i], id, REPO_ID_LEN);
  memcpy (m->v[i], val, REPO_ID_LEN);
  return 0;
}

static void
map_free (struct idmap *m)
{
  free (m->k);
  free (m->v);
  memset (m, 0, sizeof *m);
}

/* Shared state of one copy. */
struct cctx {
  struct repo *src, *dst;
  struct repo_backend *db;
  struct chunkstore *scs, *dcs;
  const struct repo_keys *sk, *dk;
  uint32_t chunk_size;
  int level;
  bool same_ids;                /* both unencrypted: ids and blobs carry over */
  pthread_mutex_t mu;           /* guards have, map and res */
  struct idset have;            /* destination chunk ids (listed + sent) */
  struct idmap map;             /* source -> destination ids (re-keyed) */
  struct engine_copy_result *res;
};

/* chunkstore_list callback: remember a destination chunk. */
static int
note_have (void *opaque, const uint8_t id[REPO_ID_LEN], uint64_t size)
{
  (void) size;
  struct cctx *c = opaque;
  return idset_add (&c->have, id) < 0 ? 1 : 0;
}

/* Store chunk dst_id in the destination unless it is there: the source
 * blob as it is (same ids), or encoded anew from plain. */
static int
send_chunk (struct cctx *c, const uint8_t dst_id[REPO_ID_LEN], const uint8_t *blob,
            size_t blen, const uint8_t *plain, size_t len, uint64_t *sent,
            struct vb_error *err)
{
  pthread_mutex_lock (&c->mu);
  bool have = idset_has (&c->have, dst_id);
  pthread_mutex_unlock (&c->mu);
  *sent = 0;
  if (have)
    return 0;
  uint8_t *nb = NULL;
  size_t nbl = blen;
  if (!c->same_ids) {
    int rc = chunk_encode (c->dk, dst_id, plain, len, c->level, &nb, &nbl, err);
    if (rc < 0)
      return rc;
    blob = nb;
  }
  int rc = chunkstore_put (c->dcs, dst_id, blob, nbl, err);
  free (nb);
  if (rc < 0)
    return rc;
  if (rc == 0)
    nbl = 0;                       /* stored meanwhile (packed stores know) */
  pthread_mutex_lock (&c->mu);
  rc = idset_add (&c->have, dst_id) < 0 ? vb_errno (err, ENOMEM, "copy") : 0;
  pthread_mutex_unlock (&c->mu);
  *sent = nbl;
  return rc;
}

/* Worker: fetch source chunk s->id, decode (verify), send; s->id becomes
 * the destination id, s->stored the bytes sent (0 = already there). */
static int
copy_chunk (void *opaque, struct pl_slot *s, struct vb_error *err)
{
  struct cctx *c = opaque;
  uint8_t src_id[REPO_ID_LEN], dst_id[REPO_ID_LEN];
  memcpy (src_id, s->id, REPO_ID_LEN);
  uint8_t *blob = NULL;
  size_t blen = 0;
  int rc = chunkstore_get (c->scs, src_id, &blob, &blen, err);
  if (rc < 0) {
    vb_err_prefix (err, "source repository");
    return rc;
  }
  int n = chunk_decode (c->sk, src_id, blob, blen, s->buf, c->chunk_size, err);
  if (n < 0) {
    free (blob);
    vb_err_prefix (err, "source repository");
    return n;
  }
  s->len = (size_t) n;
  if (c->same_ids)
    memcpy (dst_id, src_id, REPO_ID_LEN);
  else
    crypto_chunk_id (c->dk, s->buf, s->len, dst_id);
  rc = send_chunk (c, dst_id, blob, blen, s->buf, s->len, &s->stored, err);
  free (blob);
  if (rc < 0)
    return rc;
  pthread_mutex_lock (&c->mu);
  if (!c->same_ids && map_put (&c->map, src_id, dst_id) < 0)
    rc = vb_errno (err, ENOMEM, "copy");
  pthread_mutex_unlock (&c->mu);
  memcpy (s->id, dst_id, REPO_ID_LEN);
  return rc;
}

/* The destination id of a non-zero source id if already known (present in
 * the destination, or mapped), else NULL. */
static const uint8_t *
known_id (struct cctx *c, const uint8_t id[REPO_ID_LEN])
{
  pthread_mutex_lock (&c->mu);
  const uint8_t *d = c->same_ids ? (idset_has (&c->have, id) ? id : NULL)
                                 : map_get (&c->map, id);
  pthread_mutex_unlock (&c->mu);
  return d;
}

/* Account a finished slot. */
static int
finish_slot (struct cctx *c, struct pl_slot *s, struct vb_error *err)
{
  if (s->rc < 0) {
    if (err && err->code == 0)
      *err = s->err;
    return s->rc;
  }
  c->res->chunks_read++;
  if (s->stored) {
    c->res->chunks_sent++;
    c->res->bytes_sent += s->stored;
  } else
    c->res->chunks_present++;
  return 0;
}

struct progress {
  const struct engine_copy_opts *o;
  uint64_t done, total;
};

/* Send every chunk of source index ix the destination lacks (each
 * distinct id once: `queued` remembers what was handed to the workers). */
static int
send_index_chunks (struct cctx *c, const struct repo_index *ix, int threads,
                   struct progress *pg, struct vb_error *err)
{
  struct pipeline *p;
  int rc = pl_start (&p, threads * SLOTS_PER_THREAD, c->chunk_size, threads,
                     copy_chunk, c, err);
  if (rc < 0)
    return rc;
  struct idset queued = { 0 };
  for (uint64_t i = 0; i < ix->n && rc == 0; i++) {
    uint64_t off = i * ix->chunk_size;
    uint64_t len = ix->disk_size - off < ix->chunk_size ? ix->disk_size - off
                                                        : ix->chunk_size;
    pg->done += len;
    if (pg->o->progress)
      pg->o->progress (pg->o->opaque, pg->done, pg->total);
    if (index_is_zero (ix, i))
      continue;
    if (known_id (c, ix->ids[i])) {
      if (c->same_ids && idset_add (&queued, ix->ids[i]) == 1)
        c->res->chunks_present++;
      continue;
    }
    int a = idset_add (&queued, ix->ids[i]);
    if (a < 0) {
      rc = vb_errno (err, ENOMEM, "copy");
      break;
    }
    if (a == 0)
      continue;                    /* already on its way */
    struct pl_slot *done;
    struct pl_slot *s = pl_next (p, &done);
    if (done && (rc = finish_slot (c, done, err)) < 0)
      break;
    s->i = i;
    memcpy (s->id, ix->ids[i], REPO_ID_LEN);
    pl_submit (p, s);
  }
  struct pl_slot *s;
  while ((s = pl_take (p))) {
    int fr = finish_slot (c, s, err);
    if (rc == 0)
      rc = fr;
    pl_release (p, s);
  }
  pl_stop (p);
  idset_free (&queued);
  return rc;
}

/* The destination's index for source index ix (ids mapped). */
static int
map_index (struct cctx *c, const struct repo_index *ix, struct repo_index *dx,
           struct vb_error *err)
{
  int rc = index_alloc (dx, ix->disk_size, ix->chunk_size, err);
  if (rc < 0)
    return rc;
  for (uint64_t i = 0; i < ix->n; i++) {
    if (index_is_zero (ix, i))
      continue;
    const uint8_t *d = c->same_ids ? ix->ids[i] : map_get (&c->map, ix->ids[i]);
    if (!d) {
      char hex[2 * REPO_ID_LEN + 1];
      hex_encode (ix->ids[i], REPO_ID_LEN, hex);
      index_free (dx);
      return vb_err (err, EIO, "copy: chunk %s was not copied", hex);
    }
    memcpy (dx->ids[i], d, REPO_ID_LEN);
  }
  return 0;
}

/* Copy a VM point's configuration object, re-encoded with dst's keys. */
static int
copy_config (struct cctx *c, const struct manifest *m, struct manifest *m2,
             struct vb_error *err)
{
  char *text;
  size_t len;
  int rc = engine_load_config (c->src, m, &text, &len, err);
  if (rc < 0)
    return rc;
  rc = engine_store_config (c->dst, m2, text, len, err);
  free (text);
  return rc;
}

/* Copy one point (see the file comment). */
static int
copy_point (struct cctx *c, const struct manifest *m, int threads,
            struct progress *pg, struct vb_error *err)
{
  struct repo_index *ix = calloc (m->n_disks ? m->n_disks : 1, sizeof *ix);
  struct manifest *m2 = malloc (sizeof *m2);
  int rc = 0;
  if (!ix || !m2) {
    rc = vb_errno (err, ENOMEM, "copy of point %s", m->id);
    goto out;
  }
  *m2 = *m;
  for (size_t d = 0; d < m->n_disks && rc == 0; d++) {
    if ((rc = engine_load_index (c->src, m, (int) d, &ix[d], err)) < 0)
      break;
    if (ix[d].chunk_size != c->chunk_size)
      rc = vb_err (err, EINVAL, "point %s: index chunk size %u differs from the "
                   "repository's %u", m->id, ix[d].chunk_size, c->chunk_size);
    else
      rc = send_index_chunks (c, &ix[d], threads, pg, err);
  }
  /* every chunk durable before the indexes, the indexes before the manifest */
  if (rc == 0)
    rc = chunkstore_flush (c->dcs, err);
  for (size_t d = 0; d < m->n_disks && rc == 0; d++) {
    struct repo_index dx = { 0 };
    if ((rc = map_index (c, &ix[d], &dx, err)) < 0)
      break;
    rc = engine_store_index (c->dst, m2, (int) d, &dx, err);
    index_free (&dx);
  }
  if (rc == 0 && m->config_key[0])
    rc = copy_config (c, m, m2, err);
  if (rc == 0)
    rc = repo_put_manifest (c->dst, m2, err);
out:
  if (ix)
    for (size_t d = 0; d < m->n_disks; d++)
      index_free (&ix[d]);
  free (ix);
  free (m2);
  if (rc < 0) {
    struct vb_error e = { 0 };
    chunkstore_flush (c->dcs, &e);  /* let queued uploads settle */
  }
  return rc;
}

/* The points to copy: the given specs (each once) or all; *out malloc'd. */
static int
select_points (struct repo *src, const struct engine_copy_opts *o,
               struct manifest **out, size_t *n, struct vb_error *err)
{
  if (!o->points || o->n_points == 0)
    return repo_list_points (src, NULL, out, n, err);
  struct manifest *v = calloc (o->n_points, sizeof *v);
  if (!v)
    return vb_errno (err, ENOMEM, "copy");
  size_t k = 0;
  for (size_t i = 0; i < o->n_points; i++) {
    int rc = repo_find_point (src, o->points[i], &v[k], err);
    if (rc < 0) {
      vb_err_prefix (err, "source repository '%s'", repo_path (src));
      free (v);
      return rc;
    }
    bool dup = false;
    for (size_t j = 0; j < k && !dup; j++)
      dup = strcmp (v[j].id, v[k].id) == 0;
    if (!dup)
      k++;
  }
  *out = v;
  *n = k;
  return 0;
}

/* Report helper. */
static void
say (const struct engine_copy_opts *o, const char *verb, const char *id)
{
  char line[512];
  snprintf (line, sizeof line, "%s %s", verb, id);
  if (o->report)
    o->report (o->report_opaque, line);
}

/* Does the destination have point id (its manifest)? */
static int
dst_has_point (struct cctx *c, const char *id, struct vb_error *err)
{
  char key[512];
  snprintf (key, sizeof key, "snapshots/%s/manifest", id);
  return c->db->ops->exists (c->db, key, err);
}

/* Copy points (see engine.h). */
int
engine_copy (struct repo *src, struct repo *dst, const struct engine_copy_opts *o,
             struct engine_copy_result *res, struct vb_error *err)
{
  memset (res, 0, sizeof *res);
  if (strcmp (repo_id (src), repo_id (dst)) == 0)
    return vb_err (err, EINVAL, "'%s' and '%s' are the same repository (id %s)",
                   repo_path (src), repo_path (dst), repo_id (src));
  if (repo_chunk_size (src) != repo_chunk_size (dst))
    return vb_err (err, EINVAL, "cannot copy from '%s' (chunk size %u) to '%s' "
                   "(chunk size %u): chunk sizes must be equal", repo_path (src),
                   repo_chunk_size (src), repo_path (dst), repo_chunk_size (dst));
  struct cctx c = {
    .src = src, .dst = dst, .db = repo_backend (dst),
    .scs = repo_chunks (src), .dcs = repo_chunks (dst),
    .sk = repo_keys (src), .dk = repo_keys (dst),
    .chunk_size = repo_chunk_size (src), .level = repo_compress_level (dst),
    .res = res,
  };
  c.same_ids = !c.sk->encrypted && !c.dk->encrypted;
  res->reencrypted = !c.same_ids;
  pthread_mutex_init (&c.mu, NULL);
  struct manifest *pts = NULL;
  size_t np = 0;
  int rc = repo_lock (src, false, "copy", err);
  if (rc < 0) {
    vb_err_prefix (err, "source");
    goto out_nolock;
  }
  if ((rc = repo_lock (dst, false, "copy", err)) < 0) {
    vb_err_prefix (err, "destination");
    goto out;
  }
  if ((rc = select_points (src, o, &pts, &np, err)) < 0)
    goto out;
  struct progress pg = { .o = o };
  bool *todo = np ? calloc (np, sizeof *todo) : NULL;
  if (np && !todo) {
    rc = vb_errno (err, ENOMEM, "copy");
    goto out;
  }
  for (size_t i = 0; i < np && rc >= 0; i++) {
    rc = dst_has_point (&c, pts[i].id, err);
    todo[i] = rc == 0;
    if (rc == 0)
      for (size_t d = 0; d < pts[i].n_disks; d++)
        pg.total += pts[i].disks[d].size;
  }
  if (rc >= 0) {
    rc = chunkstore_list (c.dcs, note_have, &c, err);
    if (rc > 0)
      rc = vb_errno (err, ENOMEM, "copy");
  }
  int threads = o->threads > 0 ? o->threads : pl_default_threads ();
  if (threads < MIN_THREADS && o->threads <= 0)
    threads = MIN_THREADS;
  for (size_t i = 0; i < np && rc >= 0; i++) {
    if (!todo[i]) {
      res->points_present++;
      say (o, "exists", pts[i].id);
      continue;
    }
    rc = copy_point (&c, &pts[i], threads, &pg, err);
    if (rc == -EEXIST) {           /* copied meanwhile by another run */
      vb_err_clear (err);
      rc = 0;
      res->points_present++;
      say (o, "exists", pts[i].id);
      continue;
    }
    if (rc < 0)
      vb_err_prefix (err, "copy of point %s", pts[i].id);
    else {
      res->points_copied++;
      say (o, "copied", pts[i].id);
    }
  }
  if (rc > 0)
    rc = 0;
  free (todo);
  if (rc == 0 && o->progress)
    o->progress (o->opaque, pg.total, pg.total);
out:
  repo_unlock (dst);
  repo_unlock (src);
out_nolock:
  free (pts);
  idset_free (&c.have);
  map_free (&c.map);
  pthread_mutex_destroy (&c.mu);
  return rc;
}
