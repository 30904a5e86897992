/* vmback repository internals: storage backend, crypto, chunk blobs,
 * indexes and manifests (docs/FORMAT.md).
 *
 * Layering (each a file):
 *   backend-local.c  struct repo_backend_ops: whole objects by key
 *   crypto.c         key derivation, key file, AES-256-GCM, ids, HMAC
 *   chunk.c          one chunk <-> one blob (zstd, encryption, CRC)
 *   index.c          a disk's list of chunk ids in a point
 *   manifest.c       what a point holds (JSON, HMAC-authenticated)
 *   repo.c           config, open/init, locks, point listing
 */
#ifndef VMBACK_REPO_INT_H
#define VMBACK_REPO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

/* ---- storage backend ------------------------------------------------------
 * Keys are relative paths with '/' separators ("chunks/ab/ab12...",
 * "snapshots/web/20261125T200503Z/manifest").  The repository above never
 * assumes more than an object store gives: no rename, no append, no partial
 * overwrite.  An object is written whole and appears atomically. */

#define REPO_PUT_EXCL 1u     /* fail with -EEXIST if the key exists */
#define REPO_PUT_DEFER 2u    /* may become durable and visible only at the
                                next sync() (chunks: one flush per batch
                                instead of two fsyncs per object) */
#define REPO_PUT_VOLATILE 4u /* the name need not survive a crash (locks:
                                a crash ends their owners anyway); still
                                atomic, and whole where it does survive */
#define REPO_PUT_TAKE 8u     /* data is malloc'd and the backend frees it,
                                whatever the outcome (a pack queued for
                                upload is not copied) */
/* Largest object: an index of 2^23 chunks (8 TiB at 1 MiB chunks) is
 * 256 MiB of ids plus header and MAC. */
#define REPO_MAX_OBJECT ((256u << 20) + 4096u)

struct repo_backend;

typedef int (*repo_list_fn) (void *opaque, const char *key, uint64_t size);

struct repo_backend_ops {
  const char *name;                                /* "local" */
  /* Open the backend at url (a directory path for "local"); create it
   * (mode 0700) when create is true and it does not exist. */
  int (*open) (const char *url, bool create, struct repo_backend **out,
               struct vb_error *err);
  void (*close) (struct repo_backend *b);
  /* Store data under key, durably (data fsynced before the object is
   * visible under its final name; parent "directories" created as needed).
   * With REPO_PUT_EXCL: -EEXIST if it already exists (atomic check). */
  int (*put) (struct repo_backend *b, const char *key, const void *data,
              size_t len, unsigned flags, struct vb_error *err);
  /* Read a whole object (at most max bytes, else -EFBIG) into a malloc'd
   * buffer.  -ENOENT if missing. */
  int (*get) (struct repo_backend *b, const char *key, size_t max,
              uint8_t **data, size_t *len, struct vb_error *err);
  /* Read len bytes at offset off of an object (a chunk inside a pack)
   * into a malloc'd buffer.  -ENOENT if missing, -EIO if the object ends
   * before off + len. */
  int (*get_range) (struct repo_backend *b, const char *key, uint64_t off,
                    size_t len, uint8_t **data, struct vb_error *err);
  /* 1 exists, 0 not, <0 error. */
  int (*exists) (struct repo_backend *b, const char *key, struct vb_error *err);
  /* Call fn for every key under prefix (recursively); fn returning
   * non-zero stops the walk and is returned. */
  int (*list) (struct repo_backend *b, const char *prefix, repo_list_fn fn,
               void *opaque, struct vb_error *err);
  /* Remove an object; missing is not an error. */
  int (*del) (struct repo_backend *b, const char *key, struct vb_error *err);
  /* Make every REPO_PUT_DEFER put so far durable and visible (the engine
   * calls it before writing anything that references them).  NULL = puts
   * are never deferred.  Deferred puts not synced by close are dropped. */
  int (*sync) (struct repo_backend *b, struct vb_error *err);
  /* exists() is a request to a server rather than a local lookup, so
   * callers asking about every new chunk may ask about fewer. */
  bool costly_exists;
  /* Remove the temporary objects of puts that never completed (a process
   * killed mid-put), adding their count and bytes to *n and *bytes; with
   * dry_run only count.  Only under the exclusive lock, when no put can be
   * running anywhere.  NULL: the backend leaves no such objects. */
  int (*sweep_tmp) (struct repo_backend *b, bool dry_run, uint64_t *n,
                    uint64_t *bytes, struct vb_error *err);
};

struct repo_backend {
  const struct repo_backend_ops *ops;
};

extern const struct repo_backend_ops repo_backend_local;
/* backend-s3.c: weak, set where the S3 backend is linked in; else
 * repo.c loads it from the module vmback-s3.so */
extern const struct repo_backend_ops repo_backend_s3 __attribute__ ((weak));

/* The settings given to repo_s3_set_options (repo.c). */
const struct repo_s3_options *repo_s3_options (void);

/* The repository's own lock name buffer (repo.c), used by lock.c. */
struct repo;
char *repo_lock_slot (struct repo *r);
/* The state of the lock held through r (its refresher; lock.c), NULL when
 * none is held; repo.c keeps the pointer. */
struct repo_lock_state;
struct repo_lock_state **repo_lock_state_slot (struct repo *r);

/* ---- crypto ---------------------------------------------------------------- */

#define REPO_ID_LEN 32
#define REPO_KEY_LEN 32

/* The repository's secret material.  Unencrypted repositories have
 * encrypted=false, a zero enc_key and id_key, and a mac_key stored in
 * clear in keys/repokey (it still detects accidental damage of manifests
 * and indexes, not a deliberate attacker with write access). */
struct repo_keys {
  bool encrypted;
  uint8_t enc_key[REPO_KEY_LEN];   /* AES-256-GCM key for blobs */
  uint8_t id_key[REPO_KEY_LEN];    /* HMAC key for chunk ids (encrypted) */
  uint8_t mac_key[REPO_KEY_LEN];   /* HMAC key for indexes and manifests */
};

/* Make fresh random keys. */
int crypto_keys_generate (struct repo_keys *k, bool encrypted, struct vb_error *err);
/* Serialize keys into a key file (JSON).  When encrypted, the keys are
 * wrapped with AES-256-GCM under a key derived with scrypt from the
 * passphrase (random salt; N, r, p recorded). */
int crypto_keyfile_write (const struct repo_keys *k, const char *passphrase,
                          char **json_out, struct vb_error *err);
/* Parse a key file and unwrap with the passphrase; a wrong passphrase is
 * -EACCES "wrong passphrase or key file" (the GCM tag fails). */
int crypto_keyfile_read (const char *json, size_t len, const char *passphrase,
                         struct repo_keys *k, struct vb_error *err);
/* Chunk id: SHA-256(data), or HMAC-SHA-256(id_key, data) when encrypted. */
void crypto_chunk_id (const struct repo_keys *k, const void *data, size_t len,
                      uint8_t id[REPO_ID_LEN]);
/* HMAC-SHA-256(mac_key, data). */
void crypto_mac (const struct repo_keys *k, const void *data, size_t len,
                 uint8_t mac[32]);
/* Constant-time compare. */
bool crypto_equal (const void *a, const void *b, size_t len);
/* Hex helpers: out must hold 2*len+1. */
void hex_encode (const uint8_t *in, size_t len, char *out);
int hex_decode (const char *in, uint8_t *out, size_t len);

/* ---- chunk blobs ------------------------------------------------------------ */

#define CHUNK_MIN_SIZE (256u << 10)
#define CHUNK_MAX_SIZE (8u << 20)
#define CHUNK_DEFAULT_SIZE (1u << 20)
/* Largest blob of a chunk: its data, uncompressed, plus header and tag. */
#define CHUNK_BLOB_MAX (CHUNK_MAX_SIZE + 4096u)

/* Encode plaintext chunk data (len <= CHUNK_MAX_SIZE) into a blob:
 * zstd at `level` when smaller, then AES-256-GCM when k->encrypted with the
 * chunk id as associated data.  *blob is malloc'd. */
int chunk_encode (const struct repo_keys *k, const uint8_t id[REPO_ID_LEN],
                  const void *data, size_t len, int level,
                  uint8_t **blob, size_t *blob_len, struct vb_error *err);
/* Decode a blob into out (capacity cap >= the chunk's plain length, which
 * must not exceed cap: a blob claiming more is rejected before any
 * allocation), verify the CRC, the GCM tag, and that the id of the
 * plaintext equals id.  Returns the plain length or a negative errno with
 * a message naming the chunk (hex id). */
int chunk_decode (const struct repo_keys *k, const uint8_t id[REPO_ID_LEN],
                  const uint8_t *blob, size_t blob_len, uint8_t *out,
                  size_t cap, struct vb_error *err);
/* chunk_decode for reading data (restore, serve).  A version 2 blob
 * (every blob written now) is checked by its CRC, which covers the chunk
 * id, and its GCM tag when encrypted, but its plaintext is not hashed
 * again: that hash cost more than all the rest of reading a chunk.  A
 * version 1 blob is checked by the id of its plaintext, and its CRC is
 * computed only when something failed (to say "CRC mismatch" when the
 * stored bytes changed).  verify uses chunk_decode, which checks every
 * byte and the id of every chunk. */
int chunk_decode_data (const struct repo_keys *k, const uint8_t id[REPO_ID_LEN],
                       const uint8_t *blob, size_t blob_len, uint8_t *out,
                       size_t cap, struct vb_error *err);
/* chunk_decode_data for a caller that can keep the blob (serve's cache):
 * *plain is set to where the chunk's bytes are, which for an unencrypted
 * raw blob is inside the blob itself (no copy into out), else out. */
int chunk_decode_data_view (const struct repo_keys *k, const uint8_t id[REPO_ID_LEN],
                            const uint8_t *blob, size_t blob_len, uint8_t *out,
                            size_t cap, const uint8_t **plain, struct vb_error *err);
/* Key of a chunk: "chunks/ab/<64 hex>". buf >= 80 bytes. */
void chunk_key (const uint8_t id[REPO_ID_LEN], char *buf, size_t len);
/* The id of a key made by chunk_key; -1 for any other key. */
int chunk_key_parse (const char *key, uint8_t id[REPO_ID_LEN]);

/* ---- packs (packidx.c, docs/FORMAT-packs.md) ---------------------------------- */

/* Where one chunk blob is: in pack number `pack` (of the index's packs)
 * at byte off, len bytes. */
struct packidx_entry {
  uint8_t id[REPO_ID_LEN];
  uint32_t pack;
  uint32_t len;
  uint64_t off;
};
/* A pack index object: its packs' ids and its entries. */
struct packidx {
  uint32_t npacks;
  uint8_t (*packs)[REPO_ID_LEN];
  uint64_t n;
  struct packidx_entry *v;
};
/* Serialize with a trailing HMAC (mac_key); *out malloc'd. */
int packidx_encode (const struct repo_keys *k, const struct packidx *px, uint8_t **out,
                    size_t *len, struct vb_error *err);
/* Parse and authenticate; every size is checked against len and every
 * entry against the packs and the largest blob and object. */
int packidx_decode (const struct repo_keys *k, const uint8_t *buf, size_t len,
                    const char *what, struct packidx *px, struct vb_error *err);
void packidx_free (struct packidx *px);
/* A pack's trailer: size, writer, parser (entries with pack 0). */
size_t pack_trailer_size (size_t n);
void pack_trailer_write (const struct packidx_entry *v, size_t n, uint8_t *out);
int pack_trailer_read (const uint8_t *pack, size_t len, const char *what,
                       struct packidx_entry **out, size_t *n, struct vb_error *err);

/* ---- chunk store (chunkstore.c) ---------------------------------------------
 * Where chunk blobs live.  Loose: one object per chunk, "chunks/ab/<id>".
 * Packed (repositories of format 2): blobs gathered into packs of about
 * pack_size bytes, "packs/ab/<pack id>", found through pack index objects
 * "packidx/<hex>" that a store loads once, when first used.  A chunk put
 * into a packed store is findable by this process at once, durable and
 * findable by others after chunkstore_flush. */
struct repo;
struct chunkstore;
int chunkstore_open (struct repo *r, uint32_t pack_size, struct chunkstore **out,
                     struct vb_error *err);
void chunkstore_close (struct chunkstore *cs);
/* The store of an open repository (repo.c). */
struct chunkstore *repo_chunks (struct repo *r);
uint32_t chunkstore_pack_size (const struct chunkstore *cs);   /* 0 = loose */
/* Load what says where chunks are (packed: every pack index), if not
 * loaded yet; the other calls do it when first needed. */
int chunkstore_load (struct chunkstore *cs, struct vb_error *err);
/* Is asking chunkstore_has a request to a server (loose chunks on S3)? */
bool chunkstore_has_costly (const struct chunkstore *cs);
/* 1 the store has chunk id, 0 not, <0 error. */
int chunkstore_has (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN],
                    struct vb_error *err);
/* Store a chunk's blob; 1 stored, 0 already there (packed stores know). */
int chunkstore_put (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN],
                    const uint8_t *blob, size_t len, struct vb_error *err);
/* Fetch a chunk's blob (malloc'd); -ENOENT naming the chunk if missing. */
int chunkstore_get (struct chunkstore *cs, const uint8_t id[REPO_ID_LEN],
                    uint8_t **blob, size_t *len, struct vb_error *err);
/* Make every chunk put so far durable and findable (before anything that
 * references them is written). */
int chunkstore_flush (struct chunkstore *cs, struct vb_error *err);
/* Call fn for every chunk (id and blob size); non-zero from fn stops.
 * In a packed store fn runs under the store's lock: it must not call
 * back into the store. */
typedef int (*chunkstore_list_fn) (void *opaque, const uint8_t id[REPO_ID_LEN],
                                   uint64_t size);
int chunkstore_list (struct chunkstore *cs, chunkstore_list_fn fn, void *opaque,
                     struct vb_error *err);
/* Chunks, the objects holding them and their bytes (info). */
int chunkstore_usage (struct chunkstore *cs, uint64_t *n_chunks, uint64_t *n_objects,
                      uint64_t *bytes, struct vb_error *err);
/* Garbage collection under the exclusive lock: drop every chunk for which
 * live() is false.  Loose: delete its object.  Packed: delete packs with
 * no live chunk and packs no index names, rewrite packs that are mostly
 * dead into new ones, and replace every pack index by one. */
struct chunkstore_gc_stats {
  uint64_t chunks_total, chunks_deleted, bytes_deleted;
  uint64_t packs_deleted, packs_repacked, bytes_repacked;
};
typedef bool (*chunkstore_live_fn) (void *opaque, const uint8_t id[REPO_ID_LEN]);
int chunkstore_gc (struct chunkstore *cs, chunkstore_live_fn live, void *opaque,
                   bool dry_run, struct chunkstore_gc_stats *st, struct vb_error *err);

/* ---- index ------------------------------------------------------------------ */

/* The chunks of one disk in one point.  ids[i] all zero = zero chunk. */
struct repo_index {
  uint64_t disk_size;
  uint32_t chunk_size;
  uint64_t n;                      /* ceil(disk_size / chunk_size) */
  uint8_t (*ids)[REPO_ID_LEN];
};

int index_alloc (struct repo_index *ix, uint64_t disk_size, uint32_t chunk_size,
                 struct vb_error *err);
void index_free (struct repo_index *ix);
bool index_is_zero (const struct repo_index *ix, uint64_t i);
/* Serialize with a trailing HMAC (mac_key). */
int index_encode (const struct repo_keys *k, const struct repo_index *ix,
                  uint8_t **out, size_t *len, struct vb_error *err);
/* Parse and authenticate; rejects sizes that disagree with each other or
 * with len, chunk sizes outside [CHUNK_MIN_SIZE, CHUNK_MAX_SIZE], disk sizes
 * over VDISK_MAX_SIZE, and a bad HMAC ("index 'x' is damaged or was
 * tampered with"). name is used in messages. */
int index_decode (const struct repo_keys *k, const uint8_t *buf, size_t len,
                  const char *name, struct repo_index *ix, struct vb_error *err);

/* ---- manifest --------------------------------------------------------------- */

#define MANIFEST_MAX_DISKS 64

struct manifest_disk {
  char key[64];              /* device key / disk name, e.g. "disk0", "scsi0:0" */
  char source[1024];         /* path the disk was read from */
  uint64_t size;
  char index_key[256];       /* object key of its index */
  uint8_t index_mac[32];     /* HMAC of the encoded index (binds it) */
  char change_id_used[128];  /* "" or "*" for a full read */
  char change_id[128];       /* the disk's changeId at backup time, "" if none */
  uint64_t chunks_read, chunks_new, chunks_reused, chunks_zero;
  uint64_t bytes_read, bytes_new_stored;
};

struct manifest {
  char id[128];              /* "<source-name>/<time>" */
  char source_name[128];
  char parent_id[128];       /* previous point of the same source, "" if none */
  char kind[16];             /* "disk" (or "vm" later) */
  char consistency[16];      /* "crash" | "filesystem" | "application" */
  char transport[16];        /* "file" for disk images */
  char tool_version[32];
  int64_t started, finished; /* unix seconds */
  uint32_t chunk_size;
  /* The VM's configuration saved with a "vm" point: an object encoded
   * like a chunk blob (so compressed, encrypted in encrypted
   * repositories) whose plaintext has chunk id config_id; config_key ""
   * = none (disk points, manifests written before configs existed). */
  char config_key[256];
  uint8_t config_id[32];
  uint64_t config_size;      /* plaintext bytes, <= CHUNK_MAX_SIZE */
  size_t n_disks;
  struct manifest_disk disks[MANIFEST_MAX_DISKS];
};

/* Serialize to JSON with an "hmac" member over the rest. */
int manifest_encode (const struct repo_keys *k, const struct manifest *m,
                     char **out, size_t *len, struct vb_error *err);
/* Parse and authenticate (tampering -> -EBADMSG "manifest 'x' was
 * tampered with or damaged"); every string bounded, disk count capped. */
int manifest_decode (const struct repo_keys *k, const char *json, size_t len,
                     const char *name, struct manifest *m, struct vb_error *err);

#endif
