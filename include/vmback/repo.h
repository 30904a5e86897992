/* vmback: the backup repository (docs/FORMAT.md).
 *
 * A repository holds restore points.  Each point is a synthetic full: one
 * index per disk listing every chunk of the disk (content-addressed,
 * deduplicated, compressed, optionally encrypted), plus an authenticated
 * manifest.  A point exists once its manifest is durable.
 */
#ifndef VMBACK_REPO_H
#define VMBACK_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

struct repo;
struct manifest;          /* src/repo/repo-int.h */
struct repo_keys;
struct repo_backend;

struct repo_init_opts {
  uint32_t chunk_size;     /* 0 = 1 MiB; 256 KiB..8 MiB, a power of two */
  int compress_level;      /* zstd level, 0 = 1 */
  bool encrypt;
  const char *passphrase;  /* when encrypt: passphrase (from env or prompt) ... */
  const char *key_file;    /* ... or the path of a key file holding a secret */
  bool pack_size_set;      /* else: packs of REPO_PACK_DEFAULT on S3, loose
                              chunks in a local directory */
  uint32_t pack_size;      /* 0 = one object per chunk, else packs of about
                              this many bytes, REPO_PACK_MIN..REPO_PACK_MAX */
};
#define REPO_PACK_DEFAULT (16u << 20)
#define REPO_PACK_MIN (64u << 10)
#define REPO_PACK_MAX (128u << 20)

/* A repository is a local directory, or an S3 bucket (and key prefix)
 * named by a URL "s3://BUCKET/PREFIX" (docs/S3.md). */
bool repo_is_s3_url (const char *path);

/* S3 settings given on the command line; members left NULL/false fall
 * back to the environment ($AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL,
 * $AWS_CA_BUNDLE, $VMBACK_S3_PATH_STYLE).  The strings are copied. */
struct repo_s3_options {
  const char *endpoint;    /* --s3-endpoint URL: http[s]://HOST[:PORT] */
  const char *ca_file;     /* --s3-ca FILE: CA certificates for https */
  bool path_style;         /* --s3-path-style: https://HOST/BUCKET/KEY */
};
void repo_s3_set_options (const struct repo_s3_options *o);

/* Create a repository at path (a new or empty directory, or an S3 URL
 * whose prefix holds no objects; a missing bucket is created). */
int repo_init (const char *path, const struct repo_init_opts *o,
               struct vb_error *err);

/* Open a repository; passphrase/key_file as for init (ignored when the
 * repository is not encrypted, required when it is). */
int repo_open (const char *path, const char *passphrase, const char *key_file,
               struct repo **out, struct vb_error *err);
void repo_close (struct repo *r);

/* Accessors for the engine. */
struct repo_backend *repo_backend (struct repo *r);
const struct repo_keys *repo_keys (struct repo *r);
uint32_t repo_chunk_size (const struct repo *r);
int repo_compress_level (const struct repo *r);
const char *repo_path (const struct repo *r);
const char *repo_id (const struct repo *r);   /* the config's uuid */

struct repo_info {
  char id[64];
  int format;
  uint32_t chunk_size;
  uint32_t pack_size;      /* 0 = loose chunks */
  int compress_level;
  bool encrypted;
  char kdf[64];            /* "scrypt N=... r=... p=..." or "none" */
  uint64_t n_points;
  uint64_t n_chunks;
  uint64_t n_objects;      /* objects holding them: chunks, or packs */
  uint64_t chunk_bytes;    /* stored bytes of all chunk (or pack) objects */
};
int repo_get_info (struct repo *r, struct repo_info *info, struct vb_error *err);

/* Locks: shared for backup/restore/verify, exclusive for prune/gc.  A lock
 * held by a dead process on this host is removed; a live holder gives
 * -EBUSY "repository is locked by pid N on HOST (op)". */
int repo_lock (struct repo *r, bool exclusive, const char *op,
               struct vb_error *err);
void repo_unlock (struct repo *r);
/* Does this process hold a lock on r?  (A flow over several disks locks
 * once; the per-disk steps then run under that lock.) */
bool repo_locked (struct repo *r);
/* A held lock carries an expiry time that a thread refreshes; a lock of
 * another host whose expiry has passed is stale (docs/S3.md).  Check that
 * our lock is still held and fresh: 0, or -ESTALE when it expired or was
 * removed (writers call this before making anything visible that relies
 * on the lock).  0 when no lock is held. */
int repo_lock_check (struct repo *r, struct vb_error *err);

/* All restore points (manifests authenticated), oldest first; source may
 * be NULL for all.  *out is a malloc'd array of n manifests. */
int repo_list_points (struct repo *r, const char *source,
                      struct manifest **out, size_t *n, struct vb_error *err);
/* Like repo_list_points, but a manifest that cannot be read or fails
 * authentication is passed to bad (its id and the error) and skipped
 * instead of failing the whole listing.  err may be NULL-safe-cleared. */
typedef void (*repo_bad_point_fn) (void *opaque, const char *id, const char *msg);
int repo_list_points_tolerant (struct repo *r, const char *source,
                               struct manifest **out, size_t *n,
                               repo_bad_point_fn bad, void *opaque,
                               struct vb_error *err);
/* Resolve POINT: a full id "<source>/<time>", "<source>" or
 * "<source>@latest" (its newest point), "latest" (newest of all), or an
 * unambiguous suffix of an id. */
int repo_find_point (struct repo *r, const char *spec, struct manifest *out,
                     struct vb_error *err);
/* Write a point: indexes must already be stored; the manifest goes last. */
int repo_put_manifest (struct repo *r, const struct manifest *m,
                       struct vb_error *err);
/* Delete a point's manifest and indexes (chunks are left to gc). */
int repo_delete_point (struct repo *r, const char *id, struct vb_error *err);

/* Point id for a source at a time: "<source>/<YYYYMMDDTHHMMSSZ>[-N]",
 * unique in the repository. */
int repo_new_point_id (struct repo *r, const char *source, int64_t when,
                       char *buf, size_t len, struct vb_error *err);

#endif
