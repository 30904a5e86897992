/* Unit tests of the chunk store (src/repo/chunkstore.c,
 * docs/FORMAT-packs.md): packed repositories (format 2) with the smallest
 * pack size, 64 KiB, so that 256 KiB chunks take a pack each and small
 * compressible ones share packs by the dozen; and the loose layout.
 *
 * Every test works in a fresh local repository under one mkdtemp()
 * directory.  What the store claims is checked against the directory
 * itself: pack files are read whole and their trailers parsed, pack index
 * files decoded with the repository's key, so a store that only agrees
 * with itself would fail.  Chunk data is random from a seed printed at
 * the start (CHUNKSTORE_TEST_SEED=N repeats a run). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmback/repo.h"
#include "repo/repo-int.h"

#define BIG_SIZE (256u << 10)        /* random: a blob of 256 KiB + 20 */
#define SMALL_SIZE (8u << 10)        /* 2 KiB random + zeros: ~2 KiB blobs */
#define N_BIG 24
#define N_SMALL 240
#define N_ALL (N_BIG + N_SMALL)

static char tmpdir[64];
static char dir[256];                /* this test's repository (not created) */
static int test_no;
static uint64_t rng_state;

/* One test chunk: its id and encoded blob. */
struct chunk {
  uint8_t id[REPO_ID_LEN];
  uint8_t *blob;
  size_t len;
};
static struct chunk big[N_BIG], small[N_SMALL];
static struct chunk *all[N_ALL];     /* big first, then small */

/* --- helpers -------------------------------------------------------------- */

/* xorshift64*: the chunks' random bytes. */
static uint64_t
rnd (void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * UINT64_C (2685821657736338717);
}

/* Make a chunk of len bytes whose first nrand bytes are random. */
static void
make_chunk (struct chunk *c, size_t len, size_t nrand)
{
  static const struct repo_keys plain;   /* unencrypted: ids are SHA-256 */
  uint8_t *d = calloc (1, len);
  assert_non_null (d);
  for (size_t i = 0; i < nrand; i += 8) {
    uint64_t x = rnd ();
    memcpy (d + i, &x, nrand - i < 8 ? nrand - i : 8);
  }
  struct vb_error e = { 0 };
  crypto_chunk_id (&plain, d, len, c->id);
  assert_int_equal (chunk_encode (&plain, c->id, d, len, 1, &c->blob, &c->len, &e), 0);
  free (d);
}

/* The seed, the temporary directory and every test chunk. */
static int
group_setup (void **state)
{
  (void) state;
  const char *s = getenv ("CHUNKSTORE_TEST_SEED");
  rng_state = s ? strtoull (s, NULL, 0) : (uint64_t) time (NULL) ^ (uint64_t) getpid () << 32;
  if (rng_state == 0)
    rng_state = 1;
  printf ("CHUNKSTORE_TEST_SEED=%" PRIu64 "\n", rng_state);
  strcpy (tmpdir, "/tmp/vmback-test-chunkstore-XXXXXX");
  if (!mkdtemp (tmpdir))
    return -1;
  for (int i = 0; i < N_BIG; i++) {
    make_chunk (&big[i], BIG_SIZE, BIG_SIZE);
    all[i] = &big[i];
  }
  for (int i = 0; i < N_SMALL; i++) {
    make_chunk (&small[i], SMALL_SIZE, 2048);
    all[N_BIG + i] = &small[i];
  }
  return 0;
}

/* Remove the temporary directory, free the chunks. */
static int
group_teardown (void **state)
{
  (void) state;
  for (int i = 0; i < N_ALL; i++)
    free (all[i]->blob);
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system (cmd) == 0 ? 0 : -1;
}

/* Fresh repository path per test. */
static int
setup (void **state)
{
  (void) state;
  snprintf (dir, sizeof dir, "%s/t%d", tmpdir, ++test_no);
  return 0;
}

/* Create a repository at dir with the given pack size (0: loose). */
static void
init_repo (uint32_t pack_size)
{
  struct repo_init_opts o = { .pack_size_set = true, .pack_size = pack_size };
  struct vb_error e = { 0 };
  if (repo_init (dir, &o, &e) != 0)
    fail_msg ("repo_init: %s", e.msg);
}

/* Open the repository at dir. */
static struct repo *
open_repo (void)
{
  struct repo *r = NULL;
  struct vb_error e = { 0 };
  if (repo_open (dir, NULL, NULL, &r, &e) != 0)
    fail_msg ("repo_open: %s", e.msg);
  return r;
}

/* Put c into cs; expect result want (1 stored, 0 already there). */
static void
put (struct chunkstore *cs, const struct chunk *c, int want)
{
  struct vb_error e = { 0 };
  int r = chunkstore_put (cs, c->id, c->blob, c->len, &e);
  if (r != want)
    fail_msg ("put gave %d (%s), expected %d", r, e.msg, want);
}

/* has(c), which must not fail. */
static int
has (struct chunkstore *cs, const struct chunk *c)
{
  struct vb_error e = { 0 };
  int r = chunkstore_has (cs, c->id, &e);
  if (r < 0)
    fail_msg ("has: %s", e.msg);
  return r;
}

/* get(c) must return exactly c's blob. */
static void
get_same (struct chunkstore *cs, const struct chunk *c)
{
  uint8_t *b = NULL;
  size_t l = 0;
  struct vb_error e = { 0 };
  if (chunkstore_get (cs, c->id, &b, &l, &e) != 0)
    fail_msg ("get: %s", e.msg);
  assert_int_equal (l, c->len);
  assert_memory_equal (b, c->blob, l);
  free (b);
}

/* get(c) must fail with ENOENT naming the chunk as missing. */
static void
get_missing (struct chunkstore *cs, const struct chunk *c)
{
  uint8_t *b = (uint8_t *) &b;
  size_t l = 1;
  struct vb_error e = { 0 };
  int r = chunkstore_get (cs, c->id, &b, &l, &e);
  if (r != -ENOENT)
    fail_msg ("get of a missing chunk gave %d (%s)", r, e.msg);
  assert_non_null (strstr (e.msg, "missing"));
  char hex[2 * REPO_ID_LEN + 1];
  hex_encode (c->id, REPO_ID_LEN, hex);
  assert_non_null (strstr (e.msg, hex));
  assert_null (b);
  assert_int_equal (l, 0);
}

/* What chunkstore_list reported. */
struct listed {
  uint8_t (*ids)[REPO_ID_LEN];
  uint64_t *sizes;
  size_t n, cap;
};

/* chunkstore_list callback: remember an id and its size. */
static int
note_listed (void *opaque, const uint8_t id[REPO_ID_LEN], uint64_t size)
{
  struct listed *l = opaque;
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->ids = realloc (l->ids, l->cap * sizeof *l->ids);
    l->sizes = realloc (l->sizes, l->cap * sizeof *l->sizes);
    if (!l->ids || !l->sizes)
      abort ();
  }
  memcpy (l->ids[l->n], id, REPO_ID_LEN);
  l->sizes[l->n++] = size;
  return 0;
}

/* list() must report exactly the n chunks of v (each once, with its blob
 * size), in any order. */
static void
list_exactly (struct chunkstore *cs, struct chunk *const *v, size_t n)
{
  struct listed l = { 0 };
  struct vb_error e = { 0 };
  if (chunkstore_list (cs, note_listed, &l, &e) != 0)
    fail_msg ("list: %s", e.msg);
  assert_int_equal (l.n, n);
  bool *seen = calloc (n ? n : 1, 1);
  assert_non_null (seen);
  for (size_t i = 0; i < l.n; i++) {
    size_t j = 0;
    while (j < n && memcmp (v[j]->id, l.ids[i], REPO_ID_LEN) != 0)
      j++;
    if (j == n)
      fail_msg ("list reported a chunk never put (entry %zu)", i);
    assert_false (seen[j]);
    seen[j] = true;
    assert_int_equal (l.sizes[i], v[j]->len);
  }
  free (seen);
  free (l.ids);
  free (l.sizes);
}

/* Index in v of the chunk with id, or n. */
static size_t
find_index (struct chunk *const *v, size_t n, const uint8_t id[REPO_ID_LEN])
{
  size_t i = 0;
  while (i < n && memcmp (v[i]->id, id, REPO_ID_LEN) != 0)
    i++;
  return i;
}

/* The chunk of v with id, or NULL. */
static const struct chunk *
find_chunk (struct chunk *const *v, size_t n, const uint8_t id[REPO_ID_LEN])
{
  size_t i = find_index (v, n, id);
  return i < n ? v[i] : NULL;
}

/* Files under dir/sub (recursively, but not .tmp-*): their paths
 * relative to dir, sizes summed into *bytes when not NULL. */
struct files {
  char **path;
  size_t n, cap;
};

/* Walk dir/rel, adding every regular file to f. */
static void
walk (const char *rel, struct files *f, uint64_t *bytes)
{
  char p[1024];
  snprintf (p, sizeof p, "%s/%s", dir, rel);
  DIR *d = opendir (p);
  if (!d)
    return;                          /* missing: no files */
  struct dirent *de;
  while ((de = readdir (d))) {
    if (!strcmp (de->d_name, ".") || !strcmp (de->d_name, "..")
        || !strncmp (de->d_name, ".tmp-", 5))
      continue;
    char sub[1024], full[2048];
    snprintf (sub, sizeof sub, "%s/%s", rel, de->d_name);
    snprintf (full, sizeof full, "%s/%s", dir, sub);
    struct stat st;
    assert_int_equal (stat (full, &st), 0);
    if (S_ISDIR (st.st_mode)) {
      walk (sub, f, bytes);
      continue;
    }
    if (f->n == f->cap) {
      f->cap = f->cap ? 2 * f->cap : 64;
      f->path = realloc (f->path, f->cap * sizeof *f->path);
      assert_non_null (f->path);
    }
    f->path[f->n++] = strdup (sub);
    if (bytes)
      *bytes += (uint64_t) st.st_size;
  }
  closedir (d);
}

/* Release a file list. */
static void
files_free (struct files *f)
{
  for (size_t i = 0; i < f->n; i++)
    free (f->path[i]);
  free (f->path);
  memset (f, 0, sizeof *f);
}

/* Number of files under dir/rel (any name, .tmp-* included). */
static size_t
count_all (const char *rel)
{
  char cmd[1200];
  snprintf (cmd, sizeof cmd, "find '%s/%s' -type f 2>/dev/null | wc -l", dir, rel);
  FILE *p = popen (cmd, "r");
  assert_non_null (p);
  size_t n = 0;
  assert_int_equal (fscanf (p, "%zu", &n), 1);
  pclose (p);
  return n;
}

/* Read dir/rel whole. */
static uint8_t *
read_file (const char *rel, size_t *len)
{
  char p[1200];
  snprintf (p, sizeof p, "%s/%s", dir, rel);
  FILE *f = fopen (p, "rb");
  assert_non_null (f);
  assert_int_equal (fseek (f, 0, SEEK_END), 0);
  long n = ftell (f);
  assert_true (n >= 0);
  rewind (f);
  uint8_t *b = malloc (n ? (size_t) n : 1);
  assert_non_null (b);
  assert_int_equal (fread (b, 1, (size_t) n, f), (size_t) n);
  fclose (f);
  *len = (size_t) n;
  return b;
}

/* Every pack file as the format says: named packs/ab/<64 hex> with ab its
 * first byte, a valid trailer whose blobs are chunks of v (n) with their
 * exact bytes, at most pack_size plus one blob and the trailer.  Returns
 * the number of pack files; *blobs counts the blobs of their trailers. */
static size_t
check_pack_files (struct chunk *const *v, size_t n, uint32_t pack_size, size_t *blobs)
{
  struct files f = { 0 };
  walk ("packs", &f, NULL);
  *blobs = 0;
  for (size_t i = 0; i < f.n; i++) {
    const char *p = f.path[i];
    assert_int_equal (strlen (p), 6 + 3 + 64);
    assert_memory_equal (p + 6, p + 9, 2);
    size_t len;
    uint8_t *b = read_file (p, &len);
    struct packidx_entry *t;
    size_t nt;
    struct vb_error e = { 0 };
    if (pack_trailer_read (b, len, p, &t, &nt, &e) != 0)
      fail_msg ("%s", e.msg);
    assert_true (nt > 0);
    uint64_t data = len - pack_trailer_size (nt);
    assert_true (data < pack_size + CHUNK_BLOB_MAX);
    uint64_t end = 0;
    for (size_t j = 0; j < nt; j++) {
      const struct chunk *c = find_chunk (v, n, t[j].id);
      if (!c)
        fail_msg ("pack %s holds a chunk never put", p);
      assert_int_equal (t[j].len, c->len);
      assert_memory_equal (b + t[j].off, c->blob, c->len);
      assert_int_equal (t[j].off, end);        /* blobs back to back */
      end += t[j].len;
    }
    assert_int_equal (end, data);
    *blobs += nt;
    free (t);
    free (b);
  }
  size_t np = f.n;
  files_free (&f);
  return np;
}

/* Decode every pack index file with r's key; the union of their entries
 * must be exactly the chunks of v (n), each entry's blob must be in its
 * pack file at the place named.  Returns the number of pack index
 * files. */
static size_t
check_index_files (struct repo *r, struct chunk *const *v, size_t n)
{
  struct files f = { 0 };
  walk ("packidx", &f, NULL);
  bool *seen = calloc (n ? n : 1, 1);
  assert_non_null (seen);
  for (size_t i = 0; i < f.n; i++) {
    assert_int_equal (strlen (f.path[i]), 8 + 64);
    size_t len;
    uint8_t *b = read_file (f.path[i], &len);
    struct packidx px;
    struct vb_error e = { 0 };
    if (packidx_decode (repo_keys (r), b, len, f.path[i], &px, &e) != 0)
      fail_msg ("%s", e.msg);
    for (uint32_t p = 0; p < px.npacks; p++) {
      char hex[2 * REPO_ID_LEN + 1], rel[128];
      hex_encode (px.packs[p], REPO_ID_LEN, hex);
      snprintf (rel, sizeof rel, "packs/%.2s/%s", hex, hex);
      size_t pl;
      uint8_t *pk = read_file (rel, &pl);    /* fails when missing */
      for (uint64_t j = 0; j < px.n; j++)
        if (px.v[j].pack == p) {
          size_t k = find_index (v, n, px.v[j].id);
          if (k == n)
            fail_msg ("%s names a chunk not expected", f.path[i]);
          assert_int_equal (px.v[j].len, v[k]->len);
          assert_true (px.v[j].off + px.v[j].len <= pl);
          assert_memory_equal (pk + px.v[j].off, v[k]->blob, v[k]->len);
          seen[k] = true;
        }
      free (pk);
    }
    packidx_free (&px);
    free (b);
  }
  for (size_t k = 0; k < n; k++)
    if (!seen[k])
      fail_msg ("chunk %zu is named by no pack index", k);
  size_t ni = f.n;
  files_free (&f);
  free (seen);
  return ni;
}

/* --- packed: basic operations --------------------------------------------- */

/* Put big and small chunks, flush, reopen: has, get, list and usage agree
 * with what was put and with the files. */
static void
test_packed_round_trip (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  assert_int_equal (chunkstore_pack_size (cs), REPO_PACK_MIN);
  assert_false (chunkstore_has_costly (cs));
  struct vb_error e = { 0 };
  for (int i = 0; i < N_ALL; i++) {
    assert_int_equal (has (cs, all[i]), 0);
    put (cs, all[i], 1);
    assert_int_equal (has (cs, all[i]), 1);   /* findable by us at once */
    put (cs, all[i], 0);                      /* and known to be there */
  }
  /* a get before the flush flushes, then reads */
  get_same (cs, all[N_ALL - 1]);
  get_same (cs, all[0]);
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  assert_int_equal (chunkstore_flush (cs, &e), 0);   /* nothing to do */
  repo_close (r);

  r = open_repo ();
  cs = repo_chunks (r);
  for (int i = 0; i < N_ALL; i++) {
    assert_int_equal (has (cs, all[i]), 1);
    get_same (cs, all[i]);
    put (cs, all[i], 0);
  }
  list_exactly (cs, all, N_ALL);
  uint64_t nc = 0, no = 0, bytes = 0, file_bytes = 0, blob_bytes = 0;
  assert_int_equal (chunkstore_usage (cs, &nc, &no, &bytes, &e), 0);
  assert_int_equal (nc, N_ALL);
  struct files f = { 0 };
  walk ("packs", &f, &file_bytes);
  assert_int_equal (no, f.n);
  files_free (&f);
  assert_int_equal (bytes, file_bytes);
  for (int i = 0; i < N_ALL; i++)
    blob_bytes += all[i]->len;
  assert_true (bytes > blob_bytes);            /* blobs plus trailers */
  size_t blobs;
  size_t np = check_pack_files (all, N_ALL, REPO_PACK_MIN, &blobs);
  assert_int_equal (blobs, N_ALL);             /* each blob stored once */
  assert_true (np >= N_BIG);                   /* a big chunk fills a pack */
  assert_true (np < N_ALL / 2);                /* small ones share packs */
  assert_true (check_index_files (r, all, N_ALL) >= 1);
  /* nothing loose in a packed repository */
  assert_int_equal (count_all ("chunks"), 0);
  repo_close (r);
}

/* An unknown id: has() 0, get() -ENOENT saying "missing", in an empty
 * store and a full one. */
static void
test_packed_missing (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  assert_int_equal (has (cs, all[0]), 0);
  get_missing (cs, all[0]);
  struct listed l = { 0 };
  struct vb_error e = { 0 };
  assert_int_equal (chunkstore_list (cs, note_listed, &l, &e), 0);
  assert_int_equal (l.n, 0);
  for (int i = 1; i < N_ALL; i++)
    put (cs, all[i], 1);
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  assert_int_equal (has (cs, all[0]), 0);
  get_missing (cs, all[0]);
  repo_close (r);
  r = open_repo ();
  assert_int_equal (has (repo_chunks (r), all[0]), 0);
  get_missing (repo_chunks (r), all[0]);
  repo_close (r);
}

/* Chunks put but not flushed before close are not there after a reopen,
 * and leave no object behind. */
static void
test_packed_unflushed (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  for (int i = 0; i < 3; i++)
    put (cs, &big[i], 1);
  for (int i = 0; i < 20; i++)
    put (cs, &small[i], 1);
  repo_close (r);
  r = open_repo ();
  cs = repo_chunks (r);
  for (int i = 0; i < 3; i++)
    assert_int_equal (has (cs, &big[i]), 0);
  for (int i = 0; i < 20; i++)
    assert_int_equal (has (cs, &small[i]), 0);
  list_exactly (cs, NULL, 0);
  uint64_t nc = 9, no = 9, bytes = 9;
  struct vb_error e = { 0 };
  assert_int_equal (chunkstore_usage (cs, &nc, &no, &bytes, &e), 0);
  assert_int_equal (nc, 0);
  assert_int_equal (no, 0);
  assert_int_equal (bytes, 0);
  assert_int_equal (count_all ("packs"), 0);
  assert_int_equal (count_all ("packidx"), 0);
  /* and they can be stored again */
  put (cs, &big[0], 1);
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  repo_close (r);
  r = open_repo ();
  get_same (repo_chunks (r), &big[0]);
  repo_close (r);
}

/* Without a flush, the packs of a batch of 8 are indexed as the 8th is
 * sealed: those chunks survive a close, the ones after do not. */
static void
test_packed_index_every_8 (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  for (int i = 0; i < 10; i++)
    put (cs, &big[i], 1);
  repo_close (r);
  r = open_repo ();
  cs = repo_chunks (r);
  for (int i = 0; i < 8; i++) {
    assert_int_equal (has (cs, &big[i]), 1);
    get_same (cs, &big[i]);
  }
  for (int i = 8; i < 10; i++)
    assert_int_equal (has (cs, &big[i]), 0);
  assert_int_equal (count_all ("packidx"), 1);
  assert_int_equal (count_all ("packs"), 8);
  repo_close (r);
}

/* A damaged pack index makes the store fail loudly, naming it; a chunk
 * whose pack vanished is "missing" and says which pack. */
static void
test_packed_damage (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  struct vb_error e = { 0 };
  for (int i = 0; i < 3; i++)
    put (cs, &big[i], 1);
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  repo_close (r);

  /* remove the pack of big[1] (every big chunk has its own) */
  struct files f = { 0 };
  walk ("packs", &f, NULL);
  assert_int_equal (f.n, 3);
  char gone[1200] = "";
  for (size_t i = 0; i < f.n; i++) {
    size_t len;
    uint8_t *b = read_file (f.path[i], &len);
    if (len > big[1].len && memcmp (b, big[1].blob, big[1].len) == 0)
      snprintf (gone, sizeof gone, "%s/%s", dir, f.path[i]);
    free (b);
  }
  files_free (&f);
  assert_int_not_equal (gone[0], 0);
  assert_int_equal (unlink (gone), 0);
  r = open_repo ();
  cs = repo_chunks (r);
  assert_int_equal (has (cs, &big[1]), 1);      /* still named */
  uint8_t *b;
  size_t l;
  vb_err_clear (&e);
  assert_int_equal (chunkstore_get (cs, big[1].id, &b, &l, &e), -ENOENT);
  assert_non_null (strstr (e.msg, "missing"));
  assert_non_null (strstr (e.msg, "does not exist"));
  get_same (cs, &big[0]);
  get_same (cs, &big[2]);
  repo_close (r);

  /* flip a byte of the pack index */
  walk ("packidx", &f, NULL);
  assert_int_equal (f.n, 1);
  char p[1200];
  snprintf (p, sizeof p, "%s/%s", dir, f.path[0]);
  FILE *fp = fopen (p, "r+b");
  assert_non_null (fp);
  assert_int_equal (fseek (fp, 30, SEEK_SET), 0);
  int ch = fgetc (fp);
  assert_int_equal (fseek (fp, 30, SEEK_SET), 0);
  fputc (ch ^ 0x40, fp);
  fclose (fp);
  r = open_repo ();
  cs = repo_chunks (r);
  vb_err_clear (&e);
  assert_int_equal (chunkstore_has (cs, big[0].id, &e), -EBADMSG);
  assert_non_null (strstr (e.msg, f.path[0]));
  assert_non_null (strstr (e.msg, "authentication failed"));
  vb_err_clear (&e);
  assert_true (chunkstore_get (cs, big[0].id, &b, &l, &e) < 0);
  assert_int_equal (e.code, EBADMSG);
  vb_err_clear (&e);
  assert_int_equal (chunkstore_put (cs, big[5].id, big[5].blob, big[5].len, &e), -EBADMSG);
  repo_close (r);
  files_free (&f);
}

/* --- gc ---------------------------------------------------------------------- */

/* gc live callback: the chunks of the set given as opaque. */
struct live_set {
  struct chunk *const *v;
  size_t n;
  unsigned calls;
};

/* Is id one of the set's chunks? */
static bool
is_live (void *opaque, const uint8_t id[REPO_ID_LEN])
{
  struct live_set *s = opaque;
  s->calls++;
  return find_chunk (s->v, s->n, id) != NULL;
}

/* qsort comparator of two C strings. */
static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Sorted paths of every file under dir/rel, joined in one string. */
static char *
snapshot_files (const char *rel)
{
  struct files f = { 0 };
  walk (rel, &f, NULL);
  qsort (f.path, f.n, sizeof *f.path, cmp_str);
  size_t tot = 1;
  for (size_t i = 0; i < f.n; i++)
    tot += strlen (f.path[i]) + 1;
  char *s = malloc (tot);
  assert_non_null (s);
  s[0] = 0;
  for (size_t i = 0; i < f.n; i++) {
    strcat (s, f.path[i]);
    strcat (s, "\n");
  }
  files_free (&f);
  return s;
}

/* Put every chunk (in two flushed batches: two or more pack indexes),
 * gc keeping half: afterwards, after a reopen, the kept chunks read back
 * exactly, the dropped ones are gone, one pack index names every pack and
 * every pack file is named. */
static void
test_gc_keep_half (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  struct vb_error e = { 0 };
  for (int i = 0; i < N_ALL; i += 2)
    put (cs, all[i], 1);
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  for (int i = 1; i < N_ALL; i += 2)
    put (cs, all[i], 1);
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  repo_close (r);
  assert_true (count_all ("packidx") >= 2);

  /* keep: the even big chunks, and of the small ones those with i % 4 < 2
   * (every other pair, so most packs of small chunks are half dead) */
  struct chunk *keep[N_ALL], *drop[N_ALL];
  size_t nk = 0, nd = 0;
  for (int i = 0; i < N_BIG; i++) {
    if (i % 2 == 0)
      keep[nk++] = &big[i];
    else
      drop[nd++] = &big[i];
  }
  for (int i = 0; i < N_SMALL; i++) {
    if (i % 4 < 2)
      keep[nk++] = &small[i];
    else
      drop[nd++] = &small[i];
  }
  struct live_set live = { .v = keep, .n = nk };

  r = open_repo ();
  cs = repo_chunks (r);
  assert_int_equal (repo_lock (r, true, "gc", &e), 0);
  /* a dry run counts and changes nothing */
  char *before = snapshot_files (".");
  struct chunkstore_gc_stats dry, st;
  assert_int_equal (chunkstore_gc (cs, is_live, &live, true, &dry, &e), 0);
  char *after = snapshot_files (".");
  assert_string_equal (before, after);
  free (after);
  assert_int_equal (dry.chunks_total, N_ALL);
  assert_int_equal (dry.chunks_deleted, nd);
  assert_true (dry.packs_deleted >= N_BIG / 2);
  assert_true (dry.packs_repacked >= 1);
  for (int i = 0; i < N_ALL; i++)
    assert_int_equal (has (cs, all[i]), 1);

  if (chunkstore_gc (cs, is_live, &live, false, &st, &e) != 0)
    fail_msg ("gc: %s", e.msg);
  assert_int_equal (st.chunks_total, dry.chunks_total);
  assert_int_equal (st.chunks_deleted, dry.chunks_deleted);
  assert_int_equal (st.packs_deleted, dry.packs_deleted);
  assert_int_equal (st.packs_repacked, dry.packs_repacked);
  assert_int_equal (st.bytes_deleted, dry.bytes_deleted);
  assert_int_equal (st.bytes_repacked, dry.bytes_repacked);
  /* the same handle sees the result at once */
  for (size_t i = 0; i < nk; i++)
    get_same (cs, keep[i]);
  for (size_t i = 0; i < nd; i++)
    assert_int_equal (has (cs, drop[i]), 0);
  repo_unlock (r);
  repo_close (r);

  r = open_repo ();
  cs = repo_chunks (r);
  for (size_t i = 0; i < nk; i++) {
    assert_int_equal (has (cs, keep[i]), 1);
    get_same (cs, keep[i]);
  }
  for (size_t i = 0; i < nd; i++) {
    assert_int_equal (has (cs, drop[i]), 0);
    get_missing (cs, drop[i]);
  }
  list_exactly (cs, keep, nk);
  uint64_t nc, no, bytes, file_bytes = 0;
  assert_int_equal (chunkstore_usage (cs, &nc, &no, &bytes, &e), 0);
  assert_int_equal (nc, nk);
  struct files f = { 0 };
  walk ("packs", &f, &file_bytes);
  assert_int_equal (no, f.n);
  files_free (&f);
  assert_int_equal (bytes, file_bytes);
  /* one pack index; every pack file named by it and every named pack
   * there (check_index_files reads each); kept packs may still hold
   * dead blobs, but no pack holds only dead ones */
  assert_int_equal (count_all ("packidx"), 1);
  assert_int_equal (check_index_files (r, keep, nk), 1);
  size_t blobs;
  size_t np = check_pack_files (all, N_ALL, REPO_PACK_MIN, &blobs);
  {
    size_t len;
    walk ("packidx", &f, NULL);
    uint8_t *b = read_file (f.path[0], &len);
    struct packidx px;
    assert_int_equal (packidx_decode (repo_keys (r), b, len, "x", &px, &e), 0);
    assert_int_equal (px.npacks, np);
    assert_int_equal (px.n, nk);
    packidx_free (&px);
    free (b);
    files_free (&f);
  }
  assert_true (blobs >= nk);
  /* nothing left over: no temporary files either */
  assert_int_equal (count_all ("packs"), np);

  /* a second gc with the same live set has nothing to do (no lock held
   * around the snapshots: its file comes and goes) */
  free (before);
  before = snapshot_files (".");
  assert_int_equal (repo_lock (r, true, "gc", &e), 0);
  assert_int_equal (chunkstore_gc (cs, is_live, &live, false, &st, &e), 0);
  repo_unlock (r);
  assert_int_equal (st.chunks_deleted, 0);
  assert_int_equal (st.packs_deleted, 0);
  assert_int_equal (st.packs_repacked, 0);
  after = snapshot_files (".");
  assert_string_equal (before, after);
  free (before);
  free (after);
  repo_close (r);
}

/* gc keeping nothing removes every pack and pack index. */
static void
test_gc_keep_none (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  struct vb_error e = { 0 };
  for (int i = 0; i < N_ALL; i += 3)
    put (cs, all[i], 1);
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  struct live_set none = { .v = NULL, .n = 0 };
  struct chunkstore_gc_stats st;
  assert_int_equal (chunkstore_gc (cs, is_live, &none, false, &st, &e), 0);
  assert_int_equal (st.chunks_deleted, (N_ALL + 2) / 3);
  assert_int_equal (count_all ("packs"), 0);
  assert_int_equal (count_all ("packidx"), 0);
  list_exactly (cs, NULL, 0);
  repo_close (r);
}

/* Without any lock held (repo_lock_check is then 0), gc deletes packs
 * that no index names (a writer killed before its index) and leaves
 * objects under packs/ that are not packs alone. */
static void
test_gc_orphans_no_lock (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  struct vb_error e = { 0 };
  for (int i = 0; i < 4; i++)
    put (cs, &big[i], 1);
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  /* an orphan: a valid pack of big[9] that no index names */
  struct packidx_entry ent = { .len = (uint32_t) big[9].len, .off = 0 };
  memcpy (ent.id, big[9].id, REPO_ID_LEN);
  size_t plen = big[9].len + pack_trailer_size (1);
  uint8_t *pk = malloc (plen);
  assert_non_null (pk);
  memcpy (pk, big[9].blob, big[9].len);
  pack_trailer_write (&ent, 1, pk + big[9].len);
  struct repo_backend *bk = repo_backend (r);
  char orphan[128];
  snprintf (orphan, sizeof orphan, "packs/cd/cd%062d", 1);
  assert_int_equal (bk->ops->put (bk, orphan, pk, plen, 0, &e), 0);
  assert_int_equal (bk->ops->put (bk, "packs/zz/not-a-pack", "x", 1, 0, &e), 0);
  free (pk);
  repo_close (r);

  r = open_repo ();
  cs = repo_chunks (r);
  bk = repo_backend (r);
  assert_int_equal (has (cs, &big[9]), 0);       /* orphans are not read */
  assert_false (repo_locked (r));
  struct chunk *v[] = { &big[0], &big[1], &big[2], &big[3] };
  struct live_set live = { .v = v, .n = 4 };
  struct chunkstore_gc_stats st;
  if (chunkstore_gc (cs, is_live, &live, false, &st, &e) != 0)
    fail_msg ("gc: %s", e.msg);
  assert_int_equal (st.chunks_deleted, 0);
  assert_int_equal (st.packs_deleted, 1);
  assert_int_equal (st.bytes_deleted, plen);
  assert_int_equal (bk->ops->exists (bk, orphan, &e), 0);
  assert_int_equal (bk->ops->exists (bk, "packs/zz/not-a-pack", &e), 1);
  /* one pack index, as after any gc that had work */
  assert_int_equal (count_all ("packidx"), 1);
  for (int i = 0; i < 4; i++)
    get_same (cs, &big[i]);
  repo_close (r);
}

/* Two writers stored the same chunk: after gc one copy is left, one
 * pack index, and everything reads back. */
static void
test_gc_duplicates (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *a = open_repo (), *b = open_repo ();
  struct vb_error e = { 0 };
  assert_int_equal (has (repo_chunks (a), &big[0]), 0);
  assert_int_equal (has (repo_chunks (b), &big[0]), 0);
  put (repo_chunks (a), &big[0], 1);
  put (repo_chunks (a), &big[1], 1);
  put (repo_chunks (b), &big[0], 1);             /* b cannot know */
  put (repo_chunks (b), &big[2], 1);
  assert_int_equal (chunkstore_flush (repo_chunks (a), &e), 0);
  assert_int_equal (chunkstore_flush (repo_chunks (b), &e), 0);
  repo_close (a);
  repo_close (b);
  assert_int_equal (count_all ("packs"), 4);
  assert_int_equal (count_all ("packidx"), 2);

  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  struct chunk *three[] = { &big[0], &big[1], &big[2] };
  list_exactly (cs, three, 3);
  uint64_t nc, no, bytes;
  assert_int_equal (chunkstore_usage (cs, &nc, &no, &bytes, &e), 0);
  assert_int_equal (nc, 3);
  assert_int_equal (no, 4);                      /* both copies */
  for (int i = 0; i < 3; i++)
    get_same (cs, three[i]);
  struct live_set live = { .v = three, .n = 3 };
  struct chunkstore_gc_stats st;
  assert_int_equal (repo_lock (r, true, "gc", &e), 0);
  if (chunkstore_gc (cs, is_live, &live, false, &st, &e) != 0)
    fail_msg ("gc: %s", e.msg);
  repo_unlock (r);
  assert_int_equal (st.chunks_deleted, 0);
  assert_int_equal (st.packs_deleted, 1);         /* the unused copy */
  repo_close (r);
  assert_int_equal (count_all ("packs"), 3);
  assert_int_equal (count_all ("packidx"), 1);
  r = open_repo ();
  for (int i = 0; i < 3; i++)
    get_same (repo_chunks (r), three[i]);
  size_t blobs;
  assert_int_equal (check_pack_files (three, 3, REPO_PACK_MIN, &blobs), 3);
  assert_int_equal (blobs, 3);
  assert_int_equal (check_index_files (r, three, 3), 1);
  repo_close (r);
}

/* --- threads ------------------------------------------------------------------- */

struct putter {
  struct chunkstore *cs;
  int first;                /* puts all[first + k * step] ... */
  int stored;               /* puts that returned 1 */
  int failed;
};

/* Thread: put every chunk (all threads put all, in different orders). */
static void *
putter_main (void *arg)
{
  struct putter *p = arg;
  for (int k = 0; k < N_ALL; k++) {
    const struct chunk *c = all[(p->first + k * 7) % N_ALL];
    struct vb_error e = { 0 };
    int r = chunkstore_put (p->cs, c->id, c->blob, c->len, &e);
    if (r == 1)
      p->stored++;
    else if (r != 0)
      p->failed++;
  }
  return NULL;
}

/* Four threads put the same chunks at once: each is stored exactly once,
 * and everything reads back after a flush and a reopen. */
static void
test_packed_threads (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  struct putter p[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    p[i] = (struct putter) { .cs = cs, .first = i * 61 };
    assert_int_equal (pthread_create (&t[i], NULL, putter_main, &p[i]), 0);
  }
  int stored = 0;
  for (int i = 0; i < 4; i++) {
    assert_int_equal (pthread_join (t[i], NULL), 0);
    assert_int_equal (p[i].failed, 0);
    stored += p[i].stored;
  }
  assert_int_equal (stored, N_ALL);
  struct vb_error e = { 0 };
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  repo_close (r);
  r = open_repo ();
  cs = repo_chunks (r);
  for (int i = 0; i < N_ALL; i++)
    get_same (cs, all[i]);
  list_exactly (cs, all, N_ALL);
  size_t blobs;
  check_pack_files (all, N_ALL, REPO_PACK_MIN, &blobs);
  assert_int_equal (blobs, N_ALL);
  repo_close (r);
}

/* --- loose layout and config ------------------------------------------------- */

/* Pack size 0: one object per chunk under chunks/; put, has, get, list,
 * usage and gc. */
static void
test_loose (void **state)
{
  (void) state;
  init_repo (0);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  struct vb_error e = { 0 };
  assert_int_equal (chunkstore_pack_size (cs), 0);
  assert_false (chunkstore_has_costly (cs));
  struct chunk *v[40];
  for (int i = 0; i < 40; i++)
    v[i] = all[i * (N_ALL / 40)];
  assert_int_equal (has (cs, v[0]), 0);
  get_missing (cs, v[0]);
  for (int i = 0; i < 40; i++)
    put (cs, v[i], 1);
  put (cs, v[0], 1);                 /* loose stores do not know */
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  repo_close (r);
  assert_int_equal (count_all ("chunks"), 40);
  assert_int_equal (count_all ("packs"), 0);
  assert_int_equal (count_all ("packidx"), 0);

  r = open_repo ();
  cs = repo_chunks (r);
  for (int i = 0; i < 40; i++) {
    assert_int_equal (has (cs, v[i]), 1);
    get_same (cs, v[i]);
  }
  get_missing (cs, &small[1]);
  list_exactly (cs, v, 40);
  uint64_t nc, no, bytes, want = 0;
  assert_int_equal (chunkstore_usage (cs, &nc, &no, &bytes, &e), 0);
  for (int i = 0; i < 40; i++)
    want += v[i]->len;
  assert_int_equal (nc, 40);
  assert_int_equal (no, 40);
  assert_int_equal (bytes, want);

  struct live_set live = { .v = v, .n = 20 };    /* keep the first half */
  struct chunkstore_gc_stats st;
  assert_int_equal (repo_lock (r, true, "gc", &e), 0);
  assert_int_equal (chunkstore_gc (cs, is_live, &live, false, &st, &e), 0);
  repo_unlock (r);
  assert_int_equal (st.chunks_total, 40);
  assert_int_equal (st.chunks_deleted, 20);
  repo_close (r);
  r = open_repo ();
  cs = repo_chunks (r);
  for (int i = 0; i < 20; i++)
    get_same (cs, v[i]);
  for (int i = 20; i < 40; i++) {
    assert_int_equal (has (cs, v[i]), 0);
    get_missing (cs, v[i]);
  }
  list_exactly (cs, v, 20);
  repo_close (r);
}

/* The pack size is checked at init and recorded as config format 2. */
static void
test_config (void **state)
{
  (void) state;
  static const uint32_t bad[] = { 1, 4096, REPO_PACK_MIN - 1, REPO_PACK_MAX + 1,
                                  UINT32_MAX };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct repo_init_opts o = { .pack_size_set = true, .pack_size = bad[i] };
    struct vb_error e = { 0 };
    assert_int_equal (repo_init (dir, &o, &e), -EINVAL);
    assert_non_null (strstr (e.msg, "pack size"));
  }
  init_repo (REPO_PACK_MAX);
  struct repo *r = open_repo ();
  struct repo_info info;
  struct vb_error e = { 0 };
  assert_int_equal (repo_get_info (r, &info, &e), 0);
  assert_int_equal (info.format, 2);
  assert_int_equal (info.pack_size, REPO_PACK_MAX);
  assert_int_equal (info.n_chunks, 0);
  repo_close (r);
  size_t len;
  uint8_t *cfg = read_file ("config", &len);
  assert_non_null (strstr ((char *) cfg, "\"pack_size\""));
  free (cfg);
}

/* A pack that cannot be stored (here: "packs" is a file, so its
 * directory cannot be made) fails the put, and from then on every put, has
 * and flush fails too: the table may name chunks that are not stored.
 * After a reopen nothing of it is there. */
static void
test_failed_write_sticks (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  char path[512];
  snprintf (path, sizeof path, "%s/packs", dir);
  rmdir (path);
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  fclose (f);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  struct vb_error e = { 0 };
  /* a big blob fills a 64 KiB pack at once: it is sent, and fails */
  assert_true (chunkstore_put (cs, big[0].id, big[0].blob, big[0].len, &e) < 0);
  vb_err_clear (&e);
  assert_true (chunkstore_has (cs, big[0].id, &e) < 0);
  assert_non_null (strstr (e.msg, "earlier write failed"));
  vb_err_clear (&e);
  assert_true (chunkstore_put (cs, big[0].id, big[0].blob, big[0].len, &e) < 0);
  vb_err_clear (&e);
  assert_true (chunkstore_put (cs, small[0].id, small[0].blob, small[0].len, &e) < 0);
  vb_err_clear (&e);
  assert_true (chunkstore_flush (cs, &e) < 0);
  repo_close (r);
  assert_int_equal (unlink (path), 0);
  r = open_repo ();
  assert_int_equal (has (repo_chunks (r), &big[0]), 0);
  repo_close (r);
}

/* gc in a process that put chunks and did not flush them: gc flushes
 * first, so they are stored, named and kept. */
static void
test_gc_after_unflushed_puts (void **state)
{
  (void) state;
  init_repo (REPO_PACK_MIN);
  struct repo *r = open_repo ();
  struct chunkstore *cs = repo_chunks (r);
  struct vb_error e = { 0 };
  for (int i = 0; i < 3; i++)
    put (cs, &big[i], 1);
  assert_int_equal (chunkstore_flush (cs, &e), 0);
  for (int i = 3; i < 6; i++)
    put (cs, &big[i], 1);               /* sent, not indexed */
  for (int i = 0; i < 10; i++)
    put (cs, &small[i], 1);             /* partly in the open pack */
  struct chunk *keep[16];
  size_t nk = 0;
  for (int i = 0; i < 6; i++)
    keep[nk++] = &big[i];
  for (int i = 0; i < 10; i++)
    keep[nk++] = &small[i];
  struct live_set live = { .v = keep, .n = nk };
  struct chunkstore_gc_stats st;
  assert_int_equal (repo_lock (r, true, "gc", &e), 0);
  assert_int_equal (chunkstore_gc (cs, is_live, &live, false, &st, &e), 0);
  repo_unlock (r);
  assert_int_equal (st.chunks_deleted, 0);
  repo_close (r);
  r = open_repo ();
  for (size_t i = 0; i < nk; i++)
    get_same (repo_chunks (r), keep[i]);
  list_exactly (repo_chunks (r), keep, nk);
  repo_close (r);
  assert_int_equal (count_all ("packidx"), 1);
}

/* Run every test, each in a fresh repository directory. */
int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup (test_packed_round_trip, setup),
    cmocka_unit_test_setup (test_packed_missing, setup),
    cmocka_unit_test_setup (test_packed_unflushed, setup),
    cmocka_unit_test_setup (test_packed_index_every_8, setup),
    cmocka_unit_test_setup (test_packed_damage, setup),
    cmocka_unit_test_setup (test_gc_keep_half, setup),
    cmocka_unit_test_setup (test_gc_keep_none, setup),
    cmocka_unit_test_setup (test_gc_orphans_no_lock, setup),
    cmocka_unit_test_setup (test_gc_duplicates, setup),
    cmocka_unit_test_setup (test_packed_threads, setup),
    cmocka_unit_test_setup (test_loose, setup),
    cmocka_unit_test_setup (test_config, setup),
    cmocka_unit_test_setup (test_failed_write_sticks, setup),
    cmocka_unit_test_setup (test_gc_after_unflushed_puts, setup),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
