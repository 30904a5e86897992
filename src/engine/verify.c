/* vmback engine: verify points.
 *
 * Every manifest and index is authenticated; every distinct chunk they
 * reference is fetched, decrypted, decompressed and hashed once (workers
 * in parallel).  Each bad chunk is reported with the points it breaks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-int.h"
#include "pipeline.h"

/* One distinct chunk and the first point that uses it. */
struct vchunk {
  uint8_t id[REPO_ID_LEN];
  size_t point;     /* index into the points array */
};

struct vctx {
  struct repo *r;
  uint32_t chunk_size;
  const struct vchunk *chunks;
};

/* Worker: fetch and decode chunk number s->i. */
static int
check_chunk (void *opaque, struct pl_slot *s, struct vb_error *err)
{
  struct vctx *c = opaque;
  int n = engine_fetch_chunk (c->r, c->chunks[s->i].id, s->buf, c->chunk_size, true, err);
  if (n >= 0)
    s->len = (size_t) n;
  return n < 0 ? n : 0;
}

/* Report helper. */
static void __attribute__ ((format (printf, 3, 4)))
say (engine_report_fn report, void *opaque, const char *fmt, ...)
{
  char line[2048];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (line, sizeof line, fmt, ap);
  va_end (ap);
  if (report)
    report (opaque, line);
}

/* Collect distinct chunks of all points' indexes; bad indexes are reported
 * and mark their point bad. */
static int
collect (struct repo *r, struct manifest *pts, size_t np, bool *bad_point,
         struct vchunk **out, size_t *nout, uint32_t *max_cs,
         engine_report_fn report, void *opaque, struct vb_error *err)
{
  struct idset seen = { 0 };
  struct vchunk *v = NULL;
  size_t n = 0, cap = 0;
  for (size_t p = 0; p < np; p++) {
    if (pts[p].config_key[0]) {          /* a VM's saved configuration */
      char *text;
      size_t len;
      struct vb_error e = { 0 };
      if (engine_load_config (r, &pts[p], &text, &len, &e) < 0) {
        say (report, opaque, "point %s: %s", pts[p].id, e.msg);
        bad_point[p] = true;
      } else
        free (text);
    }
    for (size_t dk = 0; dk < pts[p].n_disks; dk++) {
      struct repo_index ix = { 0 };
      struct vb_error e = { 0 };
      if (engine_load_index (r, &pts[p], (int) dk, &ix, &e) < 0) {
        say (report, opaque, "point %s: %s", pts[p].id, e.msg);
        bad_point[p] = true;
        continue;
      }
      if (ix.chunk_size > *max_cs)
        *max_cs = ix.chunk_size;
      for (uint64_t i = 0; i < ix.n; i++) {
        int a = idset_add (&seen, ix.ids[i]);
        if (a < 0) {
          index_free (&ix);
          idset_free (&seen);
          free (v);
          return vb_errno (err, ENOMEM, "verify");
        }
        if (a == 0)
          continue;
        if (n == cap) {
          cap = cap ? cap * 2 : 4096;
          struct vchunk *nv = realloc (v, cap * sizeof *nv);
          if (!nv) {
            index_free (&ix);
            idset_free (&seen);
            free (v);
            return vb_errno (err, ENOMEM, "verify");
          }
          v = nv;
        }
        memcpy (v[n].id, ix.ids[i], REPO_ID_LEN);
        v[n].point = p;
        n++;
      }
      index_free (&ix);
    }
  }
  idset_free (&seen);
  *out = v;
  *nout = n;
  return 0;
}

/* Which points use a bad chunk: report each. */
static void
blame (struct repo *r, struct manifest *pts, size_t np, const uint8_t id[REPO_ID_LEN],
       bool *bad_point, char *list, size_t len)
{
  list[0] = '\0';
  for (size_t p = 0; p < np; p++) {
    bool uses = false;
    for (size_t dk = 0; dk < pts[p].n_disks && !uses; dk++) {
      struct repo_index ix = { 0 };
      struct vb_error e = { 0 };
      if (engine_load_index (r, &pts[p], (int) dk, &ix, &e) < 0)
        continue;
      for (uint64_t i = 0; i < ix.n && !uses; i++)
        uses = memcmp (ix.ids[i], id, REPO_ID_LEN) == 0;
      index_free (&ix);
    }
    if (uses) {
      bad_point[p] = true;
      size_t l = strlen (list);
      snprintf (list + l, len - l, "%s%s", l ? ", " : "", pts[p].id);
    }
  }
}

/* Manifests that fail to load count as bad points. */
struct badm {
  engine_report_fn report;
  void *opaque;
  uint64_t n;
};

/* Report a manifest that could not be read or authenticated. */
static void
bad_manifest (void *opaque, const char *id, const char *msg)
{
  struct badm *b = opaque;
  b->n++;
  say (b->report, b->opaque, "point %s: %s", id, msg);
}

/* Verify one point or all (see engine.h). */
int
engine_verify (struct repo *r, const char *point, int threads,
               engine_report_fn report, void *opaque,
               struct engine_verify_result *res, struct vb_error *err)
{
  memset (res, 0, sizeof *res);
  struct manifest *pts = NULL;
  /* (bad manifests found while listing are counted in res->bad_points) */
  size_t np = 0;
  int rc = repo_lock (r, false, "verify", err);
  if (rc < 0)
    return rc;
  if (point) {
    pts = malloc (sizeof *pts);
    np = 1;
    rc = pts ? repo_find_point (r, point, pts, err) : vb_errno (err, ENOMEM, "verify");
  } else {
    struct badm bm = { .report = report, .opaque = opaque };
    rc = repo_list_points_tolerant (r, NULL, &pts, &np, bad_manifest, &bm, err);
    res->bad_points += bm.n;
    res->points += bm.n;
  }
  if (rc < 0)
    goto out;
  bool *bad = calloc (np ? np : 1, sizeof *bad);
  struct vchunk *chunks = NULL;
  size_t nc = 0;
  uint32_t cs = repo_chunk_size (r);
  if (!bad) {
    rc = vb_errno (err, ENOMEM, "verify");
    goto out;
  }
  if ((rc = collect (r, pts, np, bad, &chunks, &nc, &cs, report, opaque, err)) < 0)
    goto out_bad;
  /* a damaged pack index is one error, not one per chunk it names */
  if (nc > 0 && (rc = chunkstore_load (repo_chunks (r), err)) < 0)
    goto out_chunks;
  struct vctx c = { .r = r, .chunk_size = cs, .chunks = chunks };
  struct pipeline *p;
  int nt = threads > 0 ? threads : pl_default_threads ();
  if ((rc = pl_start (&p, nt * 4, cs, nt, check_chunk, &c, err)) < 0)
    goto out_chunks;
  uint64_t i = 0;
  for (;;) {
    struct pl_slot *s = NULL;
    if (i < nc) {
      struct pl_slot *done;
      s = pl_next (p, &done);
      if (done) {
        res->chunks_checked++;
        if (done->rc < 0) {
          char users[1024];
          blame (r, pts, np, chunks[done->i].id, bad, users, sizeof users);
          say (report, opaque, "%s (used by %s)", done->err.msg, users);
          res->bad_chunks++;
        } else
          res->bytes_checked += done->len;
      }
      s->i = i++;
      pl_submit (p, s);
      continue;
    }
    s = pl_take (p);
    if (!s)
      break;
    res->chunks_checked++;
    if (s->rc < 0) {
      char users[1024];
      blame (r, pts, np, chunks[s->i].id, bad, users, sizeof users);
      say (report, opaque, "%s (used by %s)", s->err.msg, users);
      res->bad_chunks++;
    } else
      res->bytes_checked += s->len;
    pl_release (p, s);
  }
  pl_stop (p);
  res->points += np;
  for (size_t k = 0; k < np; k++)
    res->bad_points += bad[k];
out_chunks:
  free (chunks);
out_bad:
  free (bad);
out:
  free (pts);
  repo_unlock (r);
  return rc;
}
