/* Seed writer for the repository fuzz targets: indexes, manifests, chunk
 * blobs (id || blob), key files, pack indexes and packs made by our own
 * encoders with the fixed fuzz keys (fuzz-repo.h), written into
 * fuzz/corpus/TARGET/.  Built and run by fuzz/mk-seeds.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-repo.h"

static const char *root;

/* Write a seed file root/target/name. */
static void
seed (const char *target, const char *name, const void *data, size_t len)
{
  char p[1024];
  snprintf (p, sizeof p, "%s/%s/%s", root, target, name);
  FILE *f = fopen (p, "wb");
  if (!f || fwrite (data, 1, len, f) != len || fclose (f) != 0) {
    perror (p);
    exit (1);
  }
}

/* Stop with the error's message. */
static void
die (const struct vb_error *e)
{
  fprintf (stderr, "mk-seeds: %s\n", e->msg);
  exit (1);
}

/* Indexes of a few geometries, some ids zero. */
static void
indexes (const struct repo_keys *k)
{
  static const struct { uint64_t size; uint32_t cs; const char *name; } g[] = {
    { 0, 1u << 20, "empty.vbix" },
    { 3u << 20, 1u << 20, "three-1m.vbix" },
    { (5u << 18) + 4096, 256u << 10, "odd-256k.vbix" },
    { 40u << 20, 8u << 20, "five-8m.vbix" },
  };
  for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
    struct repo_index ix;
    struct vb_error e = { 0 };
    uint8_t *out;
    size_t len;
    if (index_alloc (&ix, g[i].size, g[i].cs, &e) < 0)
      die (&e);
    for (uint64_t c = 0; c < ix.n; c += 2)
      crypto_chunk_id (k, &c, sizeof c, ix.ids[c]);
    if (index_encode (k, &ix, &out, &len, &e) < 0)
      die (&e);
    seed ("fuzz-index", g[i].name, out, len);
    free (out);
    index_free (&ix);
  }
}

/* Manifests with no disk, one disk and two disks. */
static void
manifests (const struct repo_keys *k)
{
  static struct manifest m;
  for (size_t nd = 0; nd <= 2; nd++) {
    memset (&m, 0, sizeof m);
    snprintf (m.id, sizeof m.id, "web/20261125T200503Z%s", nd ? "-2" : "");
    strcpy (m.source_name, "web");
    strcpy (m.parent_id, nd == 2 ? "web/20261124T200503Z" : "");
    strcpy (m.kind, "disk");
    strcpy (m.consistency, "crash");
    strcpy (m.transport, "file");
    strcpy (m.tool_version, "0.1.0");
    m.started = 1764100000;
    m.finished = 1764100042;
    m.chunk_size = 1u << 20;
    m.n_disks = nd;
    for (size_t i = 0; i < nd; i++) {
      struct manifest_disk *d = &m.disks[i];
      snprintf (d->key, sizeof d->key, "scsi0:%zu", i);
      snprintf (d->source, sizeof d->source, "/vm/web/web_%zu.vmdk", i);
      d->size = (uint64_t) (i + 1) << 30;
      snprintf (d->index_key, sizeof d->index_key, "snapshots/%s/disk%zu.index",
                m.id, i);
      memset (d->index_mac, 0x40 + (int) i, sizeof d->index_mac);
      strcpy (d->change_id_used, i ? "52 1a 7f 3c/12" : "*");
      strcpy (d->change_id, "52 1a 7f 3c/13");
      d->chunks_read = 1024;
      d->chunks_new = 10;
      d->chunks_reused = 1000;
      d->chunks_zero = 14;
      d->bytes_read = 1u << 30;
      d->bytes_new_stored = 5u << 20;
    }
    char *out;
    size_t len;
    struct vb_error e = { 0 };
    if (manifest_encode (k, &m, &out, &len, &e) < 0)
      die (&e);
    char name[32];
    snprintf (name, sizeof name, "disks-%zu.json", nd);
    seed ("fuzz-manifest", name, out, len);
    free (out);
  }
}

/* Chunk blobs, id first: empty, raw, compressed; plain and encrypted. */
static void
chunks (void)
{
  static uint8_t data[16384], buf[REPO_ID_LEN + 20 + 28 + sizeof data];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof data; i++) {
    x = x * 1103515245u + 12345u;
    data[i] = (uint8_t) (x >> 16);      /* incompressible */
  }
  static const struct { size_t len; bool text; const char *name; } c[] = {
    { 0, false, "empty" }, { 4096, false, "raw" }, { 16384, true, "zstd" },
    { 1, false, "one" },
  };
  for (int enc = 0; enc <= 1; enc++) {
    struct repo_keys k;
    fuzz_repo_keys (&k, enc);
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
      static uint8_t txt[16384];
      for (size_t j = 0; j < sizeof txt; j++)
        txt[j] = (uint8_t) ("vmback chunk "[j % 13]);
      const uint8_t *d = c[i].text ? txt : data;
      uint8_t id[REPO_ID_LEN], *blob;
      size_t blen;
      struct vb_error e = { 0 };
      crypto_chunk_id (&k, d, c[i].len, id);
      if (chunk_encode (&k, id, d, c[i].len, 3, &blob, &blen, &e) < 0)
        die (&e);
      memcpy (buf, id, REPO_ID_LEN);
      memcpy (buf + REPO_ID_LEN, blob, blen);
      char name[64];
      snprintf (name, sizeof name, "%s-%s.blob", enc ? "enc" : "plain",
                c[i].name);
      seed ("fuzz-chunk", name, buf, REPO_ID_LEN + blen);
      free (blob);
    }
  }
}

/* Key files as crypto_keyfile_write makes them (passphrase "fuzz"). */
static void
keyfiles (void)
{
  for (int enc = 0; enc <= 1; enc++) {
    struct repo_keys k;
    fuzz_repo_keys (&k, enc);
    char *json;
    struct vb_error e = { 0 };
    if (crypto_keyfile_write (&k, enc ? "fuzz" : NULL, &json, &e) < 0)
      die (&e);
    seed ("fuzz-keyfile", enc ? "encrypted.json" : "plain.json", json,
          strlen (json));
    free (json);
  }
}

/* Pack indexes (empty; 3 packs of 10 chunks) and packs (3 chunk blobs
 * and their trailer; a trailer alone), for fuzz-packidx. */
static void
packs (const struct repo_keys *k)
{
  struct packidx px = { 0 };
  struct vb_error e = { 0 };
  uint8_t *out;
  size_t len;
  if (packidx_encode (k, &px, &out, &len, &e) < 0)
    die (&e);
  seed ("fuzz-packidx", "index-empty.pkix", out, len);
  free (out);
  static uint8_t ids[3][REPO_ID_LEN];
  static struct packidx_entry v[10];
  px.npacks = 3;
  px.packs = ids;
  px.n = 10;
  px.v = v;
  for (uint32_t p = 0; p < 3; p++)
    crypto_chunk_id (k, &p, sizeof p, ids[p]);       /* any 32 bytes */
  uint64_t off[3] = { 0, 0, 0 };
  for (uint64_t i = 0; i < 10; i++) {
    crypto_chunk_id (k, &i, sizeof i, v[i].id);
    v[i].pack = (uint32_t) (i % 3);
    v[i].len = (uint32_t) (300000 + i * 1000);
    v[i].off = off[i % 3];
    off[i % 3] += v[i].len;
  }
  if (packidx_encode (k, &px, &out, &len, &e) < 0)
    die (&e);
  seed ("fuzz-packidx", "index-3x10.pkix", out, len);
  free (out);

  /* a pack of three small chunk blobs, then its trailer */
  static uint8_t pack[16384];
  size_t plen = 0;
  struct packidx_entry pe[3];
  for (size_t i = 0; i < 3; i++) {
    char text[600];
    for (size_t j = 0; j < sizeof text; j++)
      text[j] = "vmback pack "[(j + i) % 12];
    uint8_t *blob;
    size_t blen;
    crypto_chunk_id (k, text, sizeof text - i, pe[i].id);
    if (chunk_encode (k, pe[i].id, text, sizeof text - i, 3, &blob, &blen, &e) < 0)
      die (&e);
    memcpy (pack + plen, blob, blen);
    pe[i].off = plen;
    pe[i].len = (uint32_t) blen;
    pe[i].pack = 0;
    plen += blen;
    free (blob);
  }
  pack_trailer_write (pe, 3, pack + plen);
  plen += pack_trailer_size (3);
  seed ("fuzz-packidx", "pack-3.pack", pack, plen);
  pack_trailer_write (NULL, 0, pack);
  seed ("fuzz-packidx", "pack-empty.pack", pack, pack_trailer_size (0));
}

/* Write every seed into the corpus directory given as the argument. */
int
main (int argc, char **argv)
{
  if (argc != 2) {
    fprintf (stderr, "usage: mk-seeds CORPUS-DIR\n");
    return 2;
  }
  root = argv[1];
  struct repo_keys k;
  fuzz_repo_keys (&k, false);
  indexes (&k);
  manifests (&k);
  chunks ();
  keyfiles ();
  packs (&k);
  return 0;
}
