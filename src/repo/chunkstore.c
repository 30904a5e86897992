/* vmback repository: the chunk store, loose or packed (repo-int.h,
 * docs/FORMAT-packs.md).
 *
 * Loose: one object per chunk blob, "chunks/ab/<id>" -- simple, and on a
 * local file system each object costs little.  Packed: on an object store
 * each object costs a request and the server's work per object (Ceph: a
 * few ms of CPU each, whatever its size), so blobs are gathered into packs
 * of about pack_size bytes.  The packed store keeps an in-memory table of
 * every chunk (id -> pack, offset, length), loaded from the pack index
 * objects when first used, and answers "is it there?" without a request.
 *
 * Writing: put appends the blob to the open pack (under the mutex); the
 * put that fills it seals it and sends it (outside the mutex, a deferred
 * backend put, so several packs upload at once).  Sealed packs are named
 * in a new pack index object after every PIDX_EVERY packs and at flush,
 * always after the backend's sync: a pack index names only durable packs,
 * and a point's index (written after flush) only indexed chunks.  A
 * process killed before that leaves packs no index names; gc deletes
 * them (it runs under the exclusive lock, when no writer can be running).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "vmback/repo.h"
#include "repo-int.h"

#define PIDX_PREFIX "packidx/"
#define PACKS_PREFIX "packs/"
#define PIDX_EVERY 8                  /* packs per pack index while writing */
#define PIDX_PIECE (1u << 20)         /* most entries of one pack index */
#define PACK_MAX_BLOBS (1u << 20)     /* a pack of tiny blobs: its trailer
                                         (44 bytes a blob) stays small */
#define NO_PACK UINT32_MAX

enum pack_state { PACK_OPEN, PACK_SENT, PACK_DURABLE };
enum pack_fate { FATE_KEEP, FATE_DELETE, FATE_REPACK };

struct cs_pack {
  uint8_t id[REPO_ID_LEN];
  uint8_t state;                      /* enum pack_state */
  uint8_t fate;                       /* gc: enum pack_fate */
  bool listed;                        /* gc: the object exists */
  uint64_t size, live;                /* gc: object bytes, live blob bytes */
};

/* A sealed pack whose put was queued, not yet named by a pack index. */
struct cs_sealed {
  uint32_t pack;
  struct packidx_entry *v;
  size_t n, cap;
};

struct chunkstore {
  struct repo *r;
  struct repo_backend *b;
  const struct repo_keys *k;
  uint32_t pack_size;
  pthread_mutex_t mu;                 /* guards everything below */
  bool loaded;
  struct packidx_entry *tab;          /* open addressing; pack NO_PACK = empty */
  size_t cap, n;
  struct cs_pack *packs;
  uint32_t npacks, packs_cap;
  uint32_t *pmap;                     /* pack id -> number, NO_PACK = empty */
  size_t pmap_cap;
  uint32_t open;                      /* the pack being filled, or NO_PACK */
  uint8_t *buf;
  size_t blen, bcap;
  struct packidx_entry *ents;         /* the open pack's blobs */
  size_t nents, ents_cap;
  struct cs_sealed *sealed;
  size_t nsealed, sealed_cap;
  char **idx_keys;                    /* pack index objects loaded or written */
  size_t nidx, idx_cap;
  int failed;                         /* a pack or pack index not stored: the
                                         table names chunks that may not be */
  struct vb_error ferr;
};

/* ---- small helpers ----------------------------------------------------- */

/* Grow *v (element size sz, capacity *cap) to hold need elements. */
static int
grow_array (void **v, size_t *cap, size_t need, size_t sz)
{
  if (need <= *cap)
    return 0;
  size_t nc = *cap ? *cap : 16;
  while (nc < need)
    nc *= 2;
  void *nv = realloc (*v, nc * sz);
  if (!nv)
    return -ENOMEM;
  *v = nv;
  *cap = nc;
  return 0;
}

/* First 8 bytes of an id: ids are hashes, already uniform. */
static size_t
id_hash (const uint8_t id[REPO_ID_LEN])
{
  uint64_t h;
  memcpy (&h, id, 8);
  return (size_t) h;
}

/* "packs/ab/<64 hex>" of a pack id. */
static void
pack_key (const uint8_t id[REPO_ID_LEN], char *buf, size_t len)
{
  char hex[2 * REPO_ID_LEN + 1];
  hex_encode (id, REPO_ID_LEN, hex);
  snprintf (buf, len, PACKS_PREFIX "%.2s/%s", hex, hex);
}

/* The pack id of a key made by pack_key; -1 for any other key. */
static int
pack_key_parse (const char *key, uint8_t id[REPO_ID_LEN])
{
  size_t pl = strlen (PACKS_PREFIX);
  if (strncmp (key, PACKS_PREFIX, pl) != 0 || strlen (key) != pl + 3 + 64
      || key[pl + 2] != '/' || strncmp (key + pl, key + pl + 3, 2) != 0)
    return -1;
  return hex_decode (key + pl + 3, id, REPO_ID_LEN);
}

/* A random id (packs, pack index objects). */
static int
random_id (uint8_t id[REPO_ID_LEN], struct vb_error *err)
{
  if (getrandom (id, REPO_ID_LEN, 0) != (ssize_t) REPO_ID_LEN)
    return vb_errno (err, errno, "cannot make a random pack id");
  return 0;
}

/* ---- the chunk table ----------------------------------------------------- */

/* Slot of id in the table, or of the empty slot where it would go. */
static size_t
tab_slot (const struct chunkstore *cs, const uint8_t id[REPO_ID_LEN])
{
  size_t mask = cs->cap - 1, i = id_hash (id) & mask;
  while (cs->tab[i].pack != NO_PACK && memcmp (cs->tab[i].id, id, REPO_ID_LEN) != 0)
    i = (i + 1) & mask;
  return i;
}

/* The entry of id, or NULL. */
static struct packidx_entry *
tab_find (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN])
{
  if (cs->cap == 0)
    return NULL;
  struct packidx_entry *e = &cs->tab[tab_slot (cs, id)];
  return e->pack == NO_PACK ? NULL : e;
}

/* Rebuild the table with capacity ncap. */
static int
tab_resize (struct chunkstore *cs, size_t ncap)
{
  struct packidx_entry *nt = malloc (ncap * sizeof *nt);
  if (!nt)
    return -ENOMEM;
  for (size_t i = 0; i < ncap; i++)
    nt[i].pack = NO_PACK;
  struct packidx_entry *old = cs->tab;
  size_t ocap = cs->cap;
  cs->tab = nt;
  cs->cap = ncap;
  for (size_t i = 0; i < ocap; i++)
    if (old[i].pack != NO_PACK)
      cs->tab[tab_slot (cs, old[i].id)] = old[i];
  free (old);
  return 0;
}

/* Insert e; an id already there keeps its place unless replace. */
static int
tab_insert (struct chunkstore *cs, const struct packidx_entry *e, bool replace)
{
  if ((cs->n + 1) * 4 > cs->cap * 3 && tab_resize (cs, cs->cap ? 2 * cs->cap : 4096) < 0)
    return -ENOMEM;
  struct packidx_entry *s = &cs->tab[tab_slot (cs, e->id)];
  if (s->pack == NO_PACK)
    cs->n++;
  else if (!replace)
    return 0;
  *s = *e;
  return 1;
}

/* ---- the pack list ------------------------------------------------------- */

/* Slot of pack id in pmap, or of the empty slot where it would go. */
static size_t
pmap_slot (const struct chunkstore *cs, const uint8_t id[REPO_ID_LEN])
{
  size_t mask = cs->pmap_cap - 1, i = id_hash (id) & mask;
  while (cs->pmap[i] != NO_PACK
         && memcmp (cs->packs[cs->pmap[i]].id, id, REPO_ID_LEN) != 0)
    i = (i + 1) & mask;
  return i;
}

/* Number of pack id, or NO_PACK. */
static uint32_t
pack_find (const struct chunkstore *cs, const uint8_t id[REPO_ID_LEN])
{
  return cs->pmap_cap ? cs->pmap[pmap_slot (cs, id)] : NO_PACK;
}

/* Number of pack id, added in state st when new. */
static int
pack_add (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN], uint8_t st, uint32_t *no)
{
  if ((*no = pack_find (cs, id)) != NO_PACK)
    return 0;
  if (cs->npacks >= NO_PACK - 1)
    return -EFBIG;
  size_t pc = cs->packs_cap;
  if (grow_array ((void **) &cs->packs, &pc, cs->npacks + 1, sizeof *cs->packs) < 0)
    return -ENOMEM;
  cs->packs_cap = (uint32_t) pc;
  if ((cs->npacks + 1) * 2 > cs->pmap_cap) {
    size_t ncap = cs->pmap_cap ? 2 * cs->pmap_cap : 1024;
    uint32_t *nm = malloc (ncap * sizeof *nm);
    if (!nm)
      return -ENOMEM;
    for (size_t i = 0; i < ncap; i++)
      nm[i] = NO_PACK;
    free (cs->pmap);
    cs->pmap = nm;
    cs->pmap_cap = ncap;
    for (uint32_t i = 0; i < cs->npacks; i++)
      cs->pmap[pmap_slot (cs, cs->packs[i].id)] = i;
  }
  struct cs_pack *p = &cs->packs[cs->npacks];
  memset (p, 0, sizeof *p);
  memcpy (p->id, id, REPO_ID_LEN);
  p->state = st;
  cs->pmap[pmap_slot (cs, id)] = cs->npacks;
  *no = cs->npacks++;
  return 0;
}

/* Forget every chunk, pack and pack index (gc reloads afresh). */
static void
forget_all (struct chunkstore *cs)
{
  free (cs->tab);
  free (cs->packs);
  free (cs->pmap);
  for (size_t i = 0; i < cs->nidx; i++)
    free (cs->idx_keys[i]);
  free (cs->idx_keys);
  cs->tab = NULL;
  cs->packs = NULL;
  cs->pmap = NULL;
  cs->idx_keys = NULL;
  cs->cap = cs->n = cs->pmap_cap = cs->nidx = cs->idx_cap = 0;
  cs->npacks = cs->packs_cap = 0;
  cs->open = NO_PACK;
  cs->blen = cs->nents = 0;
  cs->loaded = false;
}

/* Remember the key of a pack index object. */
static int
note_idx_key (struct chunkstore *cs, const char *key)
{
  char *k = strdup (key);
  if (!k || grow_array ((void **) &cs->idx_keys, &cs->idx_cap, cs->nidx + 1,
                        sizeof *cs->idx_keys) < 0) {
    free (k);
    return -ENOMEM;
  }
  cs->idx_keys[cs->nidx++] = k;
  return 0;
}

/* ---- loading ------------------------------------------------------------- */

/* Add one decoded pack index to the table (a chunk already known keeps
 * its first place). */
static int
add_packidx (struct chunkstore *cs, const struct packidx *px)
{
  uint32_t *map = malloc ((px->npacks ? px->npacks : 1) * sizeof *map);
  if (!map)
    return -ENOMEM;
  int rc = 0;
  for (uint32_t i = 0; i < px->npacks && rc == 0; i++)
    rc = pack_add (cs, px->packs[i], PACK_DURABLE, &map[i]);
  for (uint64_t i = 0; i < px->n && rc == 0; i++) {
    struct packidx_entry e = px->v[i];
    e.pack = map[e.pack];
    rc = tab_insert (cs, &e, false) < 0 ? -ENOMEM : 0;
  }
  free (map);
  return rc;
}

/* list callback: remember pack index keys. */
static int
collect_idx (void *opaque, const char *key, uint64_t size)
{
  (void) size;
  return note_idx_key (opaque, key) < 0 ? 1 : 0;
}

/* Load every pack index object (under the mutex). */
static int
load_locked (struct chunkstore *cs, struct vb_error *err)
{
  if (cs->loaded)
    return 0;
  int rc = cs->b->ops->list (cs->b, PIDX_PREFIX, collect_idx, cs, err);
  if (rc > 0)
    rc = vb_errno (err, ENOMEM, "pack indexes");
  for (size_t i = 0; i < cs->nidx && rc == 0; i++) {
    uint8_t *buf;
    size_t len;
    if ((rc = cs->b->ops->get (cs->b, cs->idx_keys[i], REPO_MAX_OBJECT, &buf, &len,
                               err)) < 0)
      break;
    struct packidx px;
    rc = packidx_decode (cs->k, buf, len, cs->idx_keys[i], &px, err);
    free (buf);
    if (rc == 0) {
      if (add_packidx (cs, &px) < 0)
        rc = vb_errno (err, ENOMEM, "pack index '%s'", cs->idx_keys[i]);
      packidx_free (&px);
    }
  }
  if (rc < 0) {
    vb_err_prefix (err, "repository '%s'", repo_path (cs->r));
    forget_all (cs);
    return rc;
  }
  cs->loaded = true;
  return 0;
}

/* ---- writing packs ------------------------------------------------------- */

/* Remember the first failed write (under the mutex): from then on the
 * table may name chunks that are not stored, so every later put, has and
 * flush fails with it instead of answering from the table. */
static void
fail_locked (struct chunkstore *cs, int rc, const struct vb_error *e)
{
  if (cs->failed == 0) {
    cs->failed = rc;
    if (e)
      cs->ferr = *e;
  }
}

/* The remembered failure (under the mutex), copied into err. */
static int
failed_locked (struct chunkstore *cs, struct vb_error *err)
{
  if (cs->failed && err && err->code == 0) {
    *err = cs->ferr;
    vb_err_prefix (err, "an earlier write failed");
  }
  return cs->failed;
}

/* What a sealed pack takes with it out of the store. */
struct sealed_pack {
  uint32_t no;
  uint8_t *buf;
  size_t len, cap;
  struct packidx_entry *v;
  size_t n;
};

/* Take the open pack out of the store (under the mutex); false if none. */
static bool
seal_locked (struct chunkstore *cs, struct sealed_pack *sp)
{
  if (cs->open == NO_PACK || cs->nents == 0)
    return false;
  *sp = (struct sealed_pack) { .no = cs->open, .buf = cs->buf, .len = cs->blen,
                               .cap = cs->bcap, .v = cs->ents, .n = cs->nents };
  cs->open = NO_PACK;
  cs->buf = NULL;
  cs->blen = cs->bcap = 0;
  cs->ents = NULL;
  cs->nents = cs->ents_cap = 0;
  return true;
}

/* Send a sealed pack (trailer appended) as a deferred put and list it for
 * the next pack index. */
static int
send_pack (struct chunkstore *cs, struct sealed_pack *sp, struct vb_error *err)
{
  size_t tl = pack_trailer_size (sp->n);
  int rc = 0;
  if (grow_array ((void **) &sp->buf, &sp->cap, sp->len + tl, 1) < 0)
    rc = vb_errno (err, ENOMEM, "pack");
  char key[128];
  pthread_mutex_lock (&cs->mu);
  pack_key (cs->packs[sp->no].id, key, sizeof key);
  pthread_mutex_unlock (&cs->mu);
  if (rc == 0) {
    pack_trailer_write (sp->v, sp->n, sp->buf + sp->len);
    /* the backend keeps the buffer until the upload is done: no copy */
    rc = cs->b->ops->put (cs->b, key, sp->buf, sp->len + tl,
                          REPO_PUT_DEFER | REPO_PUT_TAKE, err);
  } else
    free (sp->buf);
  sp->buf = NULL;
  pthread_mutex_lock (&cs->mu);
  if (rc == 0 && grow_array ((void **) &cs->sealed, &cs->sealed_cap, cs->nsealed + 1,
                             sizeof *cs->sealed) < 0)
    rc = vb_errno (err, ENOMEM, "pack");
  if (rc < 0)
    fail_locked (cs, rc, err);
  if (rc == 0) {
    cs->packs[sp->no].state = PACK_SENT;
    cs->packs[sp->no].size = sp->len + tl;
    cs->sealed[cs->nsealed++] = (struct cs_sealed) { .pack = sp->no, .v = sp->v, .n = sp->n };
    sp->v = NULL;
  }
  pthread_mutex_unlock (&cs->mu);
  free (sp->v);
  sp->v = NULL;
  return rc;
}

/* Store a pack index of the given packs' entries under a new key. */
static int
write_packidx (struct chunkstore *cs, const struct cs_sealed *s, size_t ns,
               char *key_out, size_t key_len, struct vb_error *err)
{
  struct packidx px = { 0 };
  for (size_t i = 0; i < ns; i++)
    px.n += s[i].n;
  px.npacks = (uint32_t) ns;
  px.packs = malloc ((ns ? ns : 1) * sizeof *px.packs);
  px.v = malloc ((px.n ? px.n : 1) * sizeof *px.v);
  int rc = 0;
  if (!px.packs || !px.v)
    rc = vb_errno (err, ENOMEM, "pack index");
  uint64_t k = 0;
  pthread_mutex_lock (&cs->mu);
  for (size_t i = 0; i < ns && rc == 0; i++) {
    memcpy (px.packs[i], cs->packs[s[i].pack].id, REPO_ID_LEN);
    for (size_t j = 0; j < s[i].n; j++, k++) {
      px.v[k] = s[i].v[j];
      px.v[k].pack = (uint32_t) i;
    }
  }
  pthread_mutex_unlock (&cs->mu);
  uint8_t *buf = NULL, rid[REPO_ID_LEN];
  size_t len;
  if (rc == 0 && (rc = random_id (rid, err)) == 0
      && (rc = packidx_encode (cs->k, &px, &buf, &len, err)) == 0) {
    char hex[2 * REPO_ID_LEN + 1];
    hex_encode (rid, REPO_ID_LEN, hex);
    snprintf (key_out, key_len, PIDX_PREFIX "%s", hex);
    rc = cs->b->ops->put (cs->b, key_out, buf, len, REPO_PUT_EXCL, err);
  }
  free (buf);
  packidx_free (&px);
  return rc;
}

/* Wait until every sealed pack is durable, then name them in a pack index
 * object; they become durable in the table. */
static int
index_sealed (struct chunkstore *cs, struct vb_error *err)
{
  pthread_mutex_lock (&cs->mu);
  struct cs_sealed *s = cs->sealed;
  size_t ns = cs->nsealed;
  cs->sealed = NULL;
  cs->nsealed = cs->sealed_cap = 0;
  pthread_mutex_unlock (&cs->mu);
  /* every pack taken was queued before: the sync waits for it */
  int rc = cs->b->ops->sync ? cs->b->ops->sync (cs->b, err) : 0;
  /* pieces of at most PIDX_PIECE entries (at least one pack each) keep
   * every pack index far below the largest object */
  for (size_t i = 0, j; i < ns && rc == 0; i = j) {
    size_t n = s[i].n;
    for (j = i + 1; j < ns && n + s[j].n <= PIDX_PIECE; j++)
      n += s[j].n;
    char key[128];
    rc = write_packidx (cs, s + i, j - i, key, sizeof key, err);
    pthread_mutex_lock (&cs->mu);
    if (rc == 0 && note_idx_key (cs, key) < 0)
      rc = vb_errno (err, ENOMEM, "pack index");
    for (size_t k = i; k < j && rc == 0; k++)
      cs->packs[s[k].pack].state = PACK_DURABLE;
    pthread_mutex_unlock (&cs->mu);
  }
  pthread_mutex_lock (&cs->mu);
  if (rc < 0)
    fail_locked (cs, rc, err);
  for (size_t i = 0; i < ns; i++)
    free (s[i].v);
  pthread_mutex_unlock (&cs->mu);
  free (s);
  return rc;
}

/* Append a blob to the open pack (under the mutex); *sp is filled and
 * true returned when that filled the pack. */
static int
append_locked (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN], const uint8_t *blob,
               size_t len, bool replace, struct sealed_pack *sp, bool *full,
               struct vb_error *err)
{
  *full = false;
  if (cs->open == NO_PACK) {
    uint8_t pid[REPO_ID_LEN];
    int rc = random_id (pid, err);
    if (rc < 0)
      return rc;
    if (pack_add (cs, pid, PACK_OPEN, &cs->open) < 0)
      return vb_errno (err, ENOMEM, "pack");
  }
  /* room for a full pack at once: no copies while it fills */
  if (!cs->buf && (cs->buf = malloc ((size_t) cs->pack_size + CHUNK_BLOB_MAX)))
    cs->bcap = (size_t) cs->pack_size + CHUNK_BLOB_MAX;
  if (grow_array ((void **) &cs->buf, &cs->bcap, cs->blen + len, 1) < 0
      || grow_array ((void **) &cs->ents, &cs->ents_cap, cs->nents + 1, sizeof *cs->ents) < 0)
    return vb_errno (err, ENOMEM, "pack");
  struct packidx_entry e = { .pack = cs->open, .len = (uint32_t) len, .off = cs->blen };
  memcpy (e.id, id, REPO_ID_LEN);
  if (tab_insert (cs, &e, replace) < 0)
    return vb_errno (err, ENOMEM, "pack");
  memcpy (cs->buf + cs->blen, blob, len);
  cs->blen += len;
  cs->ents[cs->nents++] = e;
  if (cs->blen >= cs->pack_size || cs->nents >= PACK_MAX_BLOBS)
    *full = seal_locked (cs, sp);
  return 0;
}

/* Put into the packed store; replace: a chunk already there moves to the
 * new copy (gc's repacking). */
static int
put_packed (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN], const uint8_t *blob,
            size_t len, bool replace, struct vb_error *err)
{
  if (len == 0 || len > CHUNK_BLOB_MAX)
    return vb_err (err, EINVAL, "chunk blob of %zu bytes", len);
  struct sealed_pack sp;
  bool full = false;
  pthread_mutex_lock (&cs->mu);
  int rc = failed_locked (cs, err);
  if (rc == 0)
    rc = load_locked (cs, err);
  if (rc == 0 && !replace && tab_find (cs, id))
    rc = 1;                           /* there already */
  else if (rc == 0 && (rc = append_locked (cs, id, blob, len, replace, &sp, &full,
                                           err)) < 0)
    fail_locked (cs, rc, err);        /* the blob may be half in the table */
  bool index_now = full && cs->nsealed + 1 >= PIDX_EVERY;
  pthread_mutex_unlock (&cs->mu);
  if (rc == 1)
    return 0;
  if (rc == 0 && full)
    rc = send_pack (cs, &sp, err);
  if (rc == 0 && index_now)
    rc = index_sealed (cs, err);
  return rc < 0 ? rc : 1;
}

/* ---- the interface --------------------------------------------------------- */

/* Open the chunk store of r (pack_size 0: loose). */
int
chunkstore_open (struct repo *r, uint32_t pack_size, struct chunkstore **out,
                 struct vb_error *err)
{
  struct chunkstore *cs = calloc (1, sizeof *cs);
  if (!cs)
    return vb_errno (err, ENOMEM, "chunk store");
  cs->r = r;
  cs->b = repo_backend (r);
  cs->k = repo_keys (r);
  cs->pack_size = pack_size;
  cs->open = NO_PACK;
  pthread_mutex_init (&cs->mu, NULL);
  *out = cs;
  return 0;
}

/* Close: chunks not flushed are dropped (nothing references them). */
void
chunkstore_close (struct chunkstore *cs)
{
  if (!cs)
    return;
  for (size_t i = 0; i < cs->nsealed; i++)
    free (cs->sealed[i].v);
  free (cs->sealed);
  free (cs->buf);
  free (cs->ents);
  forget_all (cs);
  pthread_mutex_destroy (&cs->mu);
  free (cs);
}

uint32_t
chunkstore_pack_size (const struct chunkstore *cs)
{
  return cs->pack_size;
}

/* Load the pack indexes now (loose: nothing to load). */
int
chunkstore_load (struct chunkstore *cs, struct vb_error *err)
{
  if (cs->pack_size == 0)
    return 0;
  pthread_mutex_lock (&cs->mu);
  int rc = load_locked (cs, err);
  pthread_mutex_unlock (&cs->mu);
  return rc;
}

/* Asking costs a request only for loose chunks on a remote store. */
bool
chunkstore_has_costly (const struct chunkstore *cs)
{
  return cs->pack_size == 0 && cs->b->ops->costly_exists;
}

/* Does the store have chunk id? */
int
chunkstore_has (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN], struct vb_error *err)
{
  if (cs->pack_size == 0) {
    char key[128];
    chunk_key (id, key, sizeof key);
    return cs->b->ops->exists (cs->b, key, err);
  }
  pthread_mutex_lock (&cs->mu);
  int rc = failed_locked (cs, err);
  if (rc == 0)
    rc = load_locked (cs, err);
  if (rc == 0)
    rc = tab_find (cs, id) ? 1 : 0;
  pthread_mutex_unlock (&cs->mu);
  return rc;
}

/* Store a chunk's blob. */
int
chunkstore_put (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN], const uint8_t *blob,
                size_t len, struct vb_error *err)
{
  if (cs->pack_size > 0)
    return put_packed (cs, id, blob, len, false, err);
  char key[128];
  chunk_key (id, key, sizeof key);
  int rc = cs->b->ops->put (cs->b, key, blob, len, REPO_PUT_DEFER, err);
  return rc < 0 ? rc : 1;
}

/* "chunk <hex> is missing from the repository" */
static int
missing (const uint8_t id[REPO_ID_LEN], struct vb_error *err)
{
  char hex[2 * REPO_ID_LEN + 1];
  hex_encode (id, REPO_ID_LEN, hex);
  return vb_err (err, ENOENT, "chunk %s is missing from the repository", hex);
}

/* Fetch a chunk's blob from its pack. */
static int
get_packed (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN], uint8_t **blob,
            size_t *len, struct vb_error *err)
{
  pthread_mutex_lock (&cs->mu);
  int rc = load_locked (cs, err);
  const struct packidx_entry *e = rc == 0 ? tab_find (cs, id) : NULL;
  struct packidx_entry at = e ? *e : (struct packidx_entry) { .pack = NO_PACK };
  bool durable = e && cs->packs[e->pack].state == PACK_DURABLE;
  char key[128] = "";
  if (e)
    pack_key (cs->packs[e->pack].id, key, sizeof key);
  pthread_mutex_unlock (&cs->mu);
  if (rc < 0)
    return rc;
  if (at.pack == NO_PACK)
    return missing (id, err);
  /* written by this process and not flushed yet (gc, copy) */
  if (!durable && (rc = chunkstore_flush (cs, err)) < 0)
    return rc;
  struct vb_error ge = { 0 };
  rc = cs->b->ops->get_range (cs->b, key, at.off, at.len, blob, &ge);
  if (rc == -ENOENT) {
    char hex[2 * REPO_ID_LEN + 1];
    hex_encode (id, REPO_ID_LEN, hex);
    return vb_err (err, ENOENT, "chunk %s is missing from the repository: its pack "
                   "'%s' does not exist", hex, key);
  }
  if (rc < 0) {
    if (err && err->code == 0)
      *err = ge;
    return rc;
  }
  *len = at.len;
  return 0;
}

/* Fetch a chunk's blob. */
int
chunkstore_get (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN], uint8_t **blob,
                size_t *len, struct vb_error *err)
{
  *blob = NULL;
  *len = 0;
  if (cs->pack_size > 0)
    return get_packed (cs, id, blob, len, err);
  char key[128];
  chunk_key (id, key, sizeof key);
  struct vb_error ge = { 0 };
  int rc = cs->b->ops->get (cs->b, key, CHUNK_BLOB_MAX, blob, len, &ge);
  if (rc == -ENOENT)
    return missing (id, err);
  if (rc < 0 && err && err->code == 0)
    *err = ge;
  return rc;
}

/* Seal and send the open pack, then index every sealed one. */
int
chunkstore_flush (struct chunkstore *cs, struct vb_error *err)
{
  if (cs->pack_size == 0)
    return cs->b->ops->sync ? cs->b->ops->sync (cs->b, err) : 0;
  struct sealed_pack sp;
  pthread_mutex_lock (&cs->mu);
  int rc = failed_locked (cs, err);
  bool full = rc == 0 && seal_locked (cs, &sp);
  pthread_mutex_unlock (&cs->mu);
  if (rc < 0)
    return rc;
  if (full)
    rc = send_pack (cs, &sp, err);
  if (rc == 0)
    rc = index_sealed (cs, err);
  return rc;
}

/* list callback state for loose stores. */
struct loose_walk {
  chunkstore_list_fn fn;
  void *opaque;
};

/* list callback: a loose chunk object. */
static int
loose_one (void *opaque, const char *key, uint64_t size)
{
  struct loose_walk *w = opaque;
  uint8_t id[REPO_ID_LEN];
  if (chunk_key_parse (key, id) < 0)
    return 0;
  return w->fn (w->opaque, id, size);
}

/* Every chunk of the store. */
int
chunkstore_list (struct chunkstore *cs, chunkstore_list_fn fn, void *opaque,
                 struct vb_error *err)
{
  if (cs->pack_size == 0) {
    struct loose_walk w = { .fn = fn, .opaque = opaque };
    return cs->b->ops->list (cs->b, "chunks/", loose_one, &w, err);
  }
  pthread_mutex_lock (&cs->mu);
  int rc = load_locked (cs, err);
  for (size_t i = 0; i < cs->cap && rc == 0; i++)
    if (cs->tab[i].pack != NO_PACK)
      rc = fn (opaque, cs->tab[i].id, cs->tab[i].len);
  pthread_mutex_unlock (&cs->mu);
  return rc;
}

/* list callback: count objects and bytes. */
static int
count_obj (void *opaque, const char *key, uint64_t size)
{
  (void) key;
  uint64_t *c = opaque;
  c[0]++;
  c[1] += size;
  return 0;
}

/* Chunks, and the objects and bytes holding them. */
int
chunkstore_usage (struct chunkstore *cs, uint64_t *n_chunks, uint64_t *n_objects,
                  uint64_t *bytes, struct vb_error *err)
{
  uint64_t c[2] = { 0, 0 };
  int rc = cs->b->ops->list (cs->b, cs->pack_size ? PACKS_PREFIX : "chunks/", count_obj,
                             c, err);
  if (rc < 0)
    return rc;
  *bytes = c[1];
  *n_chunks = *n_objects = c[0];
  if (cs->pack_size) {
    pthread_mutex_lock (&cs->mu);
    rc = load_locked (cs, err);
    *n_chunks = cs->n;
    pthread_mutex_unlock (&cs->mu);
  }
  return rc;
}

/* ---- garbage collection ---------------------------------------------------- */

struct gc {
  struct chunkstore *cs;
  chunkstore_live_fn live;
  void *opaque;
  bool dry_run;
  struct chunkstore_gc_stats *st;
  struct vb_error *err;
  int rc;
  struct orphan {                     /* packed: packs no index names */
    char key[128];
    uint64_t size;
  } *orphans;
  size_t norphans, orphans_cap;
};

/* list callback: delete a loose chunk nothing references. */
static int
gc_loose_one (void *opaque, const char *key, uint64_t size)
{
  struct gc *g = opaque;
  uint8_t id[REPO_ID_LEN];
  if (chunk_key_parse (key, id) < 0)
    return 0;                         /* not ours: leave it alone */
  g->st->chunks_total++;
  if (g->live (g->opaque, id))
    return 0;
  /* our exclusive lock must still hold (it may expire: docs/S3.md) */
  if (!g->dry_run && (g->rc = repo_lock_check (g->cs->r, g->err)) < 0)
    return 1;
  g->st->chunks_deleted++;
  g->st->bytes_deleted += size;
  if (!g->dry_run && (g->rc = g->cs->b->ops->del (g->cs->b, key, g->err)) < 0)
    return 1;
  return 0;
}

/* list callback: note a pack object's size, or that no index names it. */
static int
gc_pack_one (void *opaque, const char *key, uint64_t size)
{
  struct gc *g = opaque;
  uint8_t id[REPO_ID_LEN];
  if (pack_key_parse (key, id) < 0)
    return 0;
  uint32_t no = pack_find (g->cs, id);
  if (no != NO_PACK) {
    g->cs->packs[no].listed = true;
    g->cs->packs[no].size = size;
    return 0;
  }
  if (grow_array ((void **) &g->orphans, &g->orphans_cap, g->norphans + 1,
                  sizeof *g->orphans) < 0) {
    g->rc = vb_errno (g->err, ENOMEM, "gc");
    return 1;
  }
  struct orphan *o = &g->orphans[g->norphans++];
  snprintf (o->key, sizeof o->key, "%s", key);
  o->size = size;
  return 0;
}

/* Decide each pack's fate from its live bytes; count what goes. */
static void
gc_plan (struct gc *g)
{
  struct chunkstore *cs = g->cs;
  for (size_t i = 0; i < cs->cap; i++) {
    struct packidx_entry *e = &cs->tab[i];
    if (e->pack == NO_PACK)
      continue;
    g->st->chunks_total++;
    if (g->live (g->opaque, e->id))
      cs->packs[e->pack].live += e->len;
    else
      g->st->chunks_deleted++;
  }
  for (uint32_t p = 0; p < cs->npacks; p++) {
    struct cs_pack *pk = &cs->packs[p];
    /* a pack the index names but that is gone stays named: verify says
     * which chunks are lost */
    if (!pk->listed)
      pk->fate = FATE_KEEP;
    else if (pk->live == 0)
      pk->fate = FATE_DELETE;
    else if (pk->live < pk->size / 4 * 3)
      pk->fate = FATE_REPACK;
    else
      pk->fate = FATE_KEEP;
    if (pk->fate == FATE_DELETE) {
      g->st->packs_deleted++;
      g->st->bytes_deleted += pk->size;
    } else if (pk->fate == FATE_REPACK) {
      g->st->packs_repacked++;
      g->st->bytes_repacked += pk->live;
      g->st->bytes_deleted += pk->size - pk->live;
    }
  }
  for (size_t i = 0; i < g->norphans; i++) {
    g->st->packs_deleted++;
    g->st->bytes_deleted += g->orphans[i].size;
  }
}

/* Copy the live chunks of packs to repack into new packs. */
static int
gc_repack (struct gc *g)
{
  struct chunkstore *cs = g->cs;
  struct packidx_entry *todo = NULL;
  size_t n = 0, cap = 0;
  for (size_t i = 0; i < cs->cap; i++) {
    struct packidx_entry *e = &cs->tab[i];
    if (e->pack == NO_PACK || cs->packs[e->pack].fate != FATE_REPACK
        || !g->live (g->opaque, e->id))
      continue;
    if (grow_array ((void **) &todo, &cap, n + 1, sizeof *todo) < 0) {
      free (todo);
      return vb_errno (g->err, ENOMEM, "gc");
    }
    todo[n++] = *e;
  }
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    uint8_t *blob;
    size_t len;
    if ((rc = get_packed (cs, todo[i].id, &blob, &len, g->err)) < 0)
      break;
    rc = put_packed (cs, todo[i].id, blob, len, true, g->err);
    rc = rc > 0 ? 0 : rc;
    free (blob);
  }
  free (todo);
  if (rc >= 0)
    rc = chunkstore_flush (cs, g->err);
  return rc < 0 ? rc : 0;
}

/* Write the live chunks of kept and new packs as pack indexes of at most
 * PIDX_PIECE entries; their keys go to keep[]. */
static int
gc_write_index (struct gc *g, char (**keep)[128], size_t *nkeep)
{
  struct chunkstore *cs = g->cs;
  uint32_t *slot = malloc ((cs->npacks ? cs->npacks : 1) * sizeof *slot);
  int rc = slot ? 0 : vb_errno (g->err, ENOMEM, "gc");
  size_t i = 0;
  *keep = NULL;
  *nkeep = 0;
  while (rc == 0 && i < cs->cap) {
    /* one piece: group its entries by pack */
    struct cs_sealed *pk = NULL;
    size_t npk = 0, pkcap = 0, taken = 0;
    for (uint32_t p = 0; p < cs->npacks; p++)
      slot[p] = NO_PACK;
    for (; i < cs->cap && taken < PIDX_PIECE && rc == 0; i++) {
      struct packidx_entry *e = &cs->tab[i];
      if (e->pack == NO_PACK || !g->live (g->opaque, e->id))
        continue;
      if (cs->packs[e->pack].fate != FATE_KEEP) {
        /* a live chunk left in a pack about to go: stop before deleting */
        char hex[2 * REPO_ID_LEN + 1];
        hex_encode (e->id, REPO_ID_LEN, hex);
        rc = vb_err (g->err, EIO, "gc: live chunk %s was not moved out of its pack; "
                     "nothing deleted", hex);
        break;
      }
      if (slot[e->pack] == NO_PACK) {
        if (grow_array ((void **) &pk, &pkcap, npk + 1, sizeof *pk) < 0) {
          rc = vb_errno (g->err, ENOMEM, "gc");
          break;
        }
        pk[npk] = (struct cs_sealed) { .pack = e->pack };
        slot[e->pack] = (uint32_t) npk++;
      }
      struct cs_sealed *t = &pk[slot[e->pack]];
      if (grow_array ((void **) &t->v, &t->cap, t->n + 1, sizeof *t->v) < 0) {
        rc = vb_errno (g->err, ENOMEM, "gc");
        break;
      }
      t->v[t->n++] = *e;
      taken++;
    }
    char key[128];
    if (rc == 0 && taken > 0)
      rc = write_packidx (cs, pk, npk, key, sizeof key, g->err);
    if (rc == 0 && taken > 0) {
      void *nk = realloc (*keep, (*nkeep + 1) * sizeof **keep);
      if (!nk)
        rc = vb_errno (g->err, ENOMEM, "gc");
      else {
        *keep = nk;
        snprintf ((*keep)[(*nkeep)++], 128, "%s", key);
      }
    }
    for (size_t j = 0; j < npk; j++)
      free (pk[j].v);
    free (pk);
  }
  free (slot);
  return rc;
}

/* Is key one of keep[]? */
static bool
kept (char (*keep)[128], size_t n, const char *key)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (keep[i], key) == 0)
      return true;
  return false;
}

/* Delete a key after checking that our lock still holds. */
static int
gc_del (struct gc *g, const char *key)
{
  int rc = repo_lock_check (g->cs->r, g->err);
  return rc < 0 ? rc : g->cs->b->ops->del (g->cs->b, key, g->err);
}

/* Packed gc: plan, repack, index anew, then delete old indexes and packs.
 * A crash at any point leaves every live chunk named by an index and
 * present: new packs are durable before the index naming them, that
 * index before the old ones go, the old indexes before their packs. */
static int
gc_packed (struct gc *g)
{
  struct chunkstore *cs = g->cs;
  /* our own puts first: the reload below forgets what is not indexed */
  int rc = chunkstore_flush (cs, g->err);
  if (rc < 0)
    return rc;
  pthread_mutex_lock (&cs->mu);
  forget_all (cs);                    /* what others wrote since we loaded */
  rc = load_locked (cs, g->err);
  pthread_mutex_unlock (&cs->mu);
  if (rc < 0)
    return rc;
  rc = cs->b->ops->list (cs->b, PACKS_PREFIX, gc_pack_one, g, g->err);
  if (rc > 0)
    rc = g->rc;
  if (rc < 0)
    return rc;
  gc_plan (g);
  /* also when only several pack indexes can become one */
  bool work = g->st->chunks_deleted || g->st->packs_deleted || g->st->packs_repacked
              || cs->nidx > 1;
  if (g->dry_run || !work)
    return 0;
  char (*keep)[128] = NULL;
  size_t nkeep = 0;
  if ((rc = gc_repack (g)) == 0)
    rc = gc_write_index (g, &keep, &nkeep);
  for (size_t i = 0; i < cs->nidx && rc == 0; i++)
    if (!kept (keep, nkeep, cs->idx_keys[i]))
      rc = gc_del (g, cs->idx_keys[i]);
  for (uint32_t p = 0; p < cs->npacks && rc == 0; p++)
    if (cs->packs[p].fate != FATE_KEEP) {
      char key[128];
      pack_key (cs->packs[p].id, key, sizeof key);
      rc = gc_del (g, key);
    }
  for (size_t i = 0; i < g->norphans && rc == 0; i++)
    rc = gc_del (g, g->orphans[i].key);
  free (keep);
  /* the table still names deleted packs: load afresh when next used */
  pthread_mutex_lock (&cs->mu);
  forget_all (cs);
  pthread_mutex_unlock (&cs->mu);
  return rc;
}

/* Garbage collection (see repo-int.h). */
int
chunkstore_gc (struct chunkstore *cs, chunkstore_live_fn live, void *opaque, bool dry_run,
               struct chunkstore_gc_stats *st, struct vb_error *err)
{
  memset (st, 0, sizeof *st);
  struct gc g = { .cs = cs, .live = live, .opaque = opaque, .dry_run = dry_run,
                  .st = st, .err = err };
  int rc;
  if (cs->pack_size == 0) {
    rc = cs->b->ops->list (cs->b, "chunks/", gc_loose_one, &g, err);
    if (rc > 0)
      rc = g.rc;
  } else
    rc = gc_packed (&g);
  free (g.orphans);
  return rc;
}
