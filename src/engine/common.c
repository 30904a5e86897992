/* vmback engine: index and chunk access shared by every flow. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-int.h"

/* "snapshots/<id>/<diskkey>.index" */
void
engine_index_key (const struct manifest *m, int disk, char *buf, size_t len)
{
  snprintf (buf, len, "snapshots/%s/%s.index", m->id, m->disks[disk].key);
}

/* Load and authenticate one disk's index. */
int
engine_load_index (struct repo *r, const struct manifest *m, int disk,
                   struct repo_index *ix, struct vb_error *err)
{
  const struct manifest_disk *md = &m->disks[disk];
  struct repo_backend *b = repo_backend (r);
  uint8_t *buf;
  size_t len;
  const char *key = md->index_key;
  /* 32 bytes per chunk: a 64 TiB disk in 256 KiB chunks is 8 GiB of ids,
   * far past REPO_MAX_OBJECT, which index_decode's own cap also enforces */
  int rc = b->ops->get (b, key, REPO_MAX_OBJECT, &buf, &len, err);
  if (rc < 0) {
    vb_err_prefix (err, "point %s", m->id);
    return rc;
  }
  uint8_t mac[32];
  crypto_mac (repo_keys (r), buf, len, mac);
  if (!crypto_equal (mac, md->index_mac, 32)) {
    free (buf);
    return vb_err (err, EBADMSG, "index '%s' of point %s does not match its manifest "
                   "(damaged or replaced)", key, m->id);
  }
  rc = index_decode (repo_keys (r), buf, len, key, ix, err);
  free (buf);
  if (rc == 0 && ix->disk_size != md->size) {
    rc = vb_err (err, EBADMSG, "index '%s' is for %llu bytes, the manifest says %llu",
                 key, (unsigned long long) ix->disk_size, (unsigned long long) md->size);
    index_free (ix);
  }
  return rc;
}

/* Store an index and bind it to the manifest. */
int
engine_store_index (struct repo *r, struct manifest *m, int disk,
                    const struct repo_index *ix, struct vb_error *err)
{
  uint8_t *buf;
  size_t len;
  int rc = index_encode (repo_keys (r), ix, &buf, &len, err);
  if (rc < 0)
    return rc;
  struct manifest_disk *md = &m->disks[disk];
  engine_index_key (m, disk, md->index_key, sizeof md->index_key);
  crypto_mac (repo_keys (r), buf, len, md->index_mac);
  struct repo_backend *b = repo_backend (r);
  rc = b->ops->put (b, md->index_key, buf, len, 0, err);
  free (buf);
  return rc;
}

/* Fetch the blob of chunk id (malloc'd); a missing one is ENOENT
 * naming the chunk. */
static int
fetch_blob (struct repo *r, const uint8_t id[REPO_ID_LEN], uint8_t **blob, size_t *blen,
            struct vb_error *err)
{
  return chunkstore_get (repo_chunks (r), id, blob, blen, err);
}

/* Fetch and decode one chunk. */
int
engine_fetch_chunk (struct repo *r, const uint8_t id[REPO_ID_LEN], uint8_t *out,
                    size_t cap, bool strict, struct vb_error *err)
{
  uint8_t *blob;
  size_t blen;
  int rc = fetch_blob (r, id, &blob, &blen, err);
  if (rc < 0)
    return rc;
  rc = (strict ? chunk_decode : chunk_decode_data) (repo_keys (r), id, blob, blen, out,
                                                     cap, err);
  free (blob);
  return rc;
}

/* Fetch and decode one chunk, keeping a raw one in its blob. */
int
engine_fetch_chunk_view (struct repo *r, const uint8_t id[REPO_ID_LEN], uint8_t *out,
                         size_t cap, uint8_t **mem, const uint8_t **plain,
                         struct vb_error *err)
{
  uint8_t *blob;
  size_t blen;
  *mem = NULL;
  int rc = fetch_blob (r, id, &blob, &blen, err);
  if (rc < 0)
    return rc;
  rc = chunk_decode_data_view (repo_keys (r), id, blob, blen, out, cap, plain, err);
  if (rc >= 0 && *plain != out)
    *mem = blob;
  else
    free (blob);
  return rc;
}

/* Store a VM configuration as "snapshots/<id>/config", a chunk-like blob. */
int
engine_store_config (struct repo *r, struct manifest *m, const char *text, size_t len,
                     struct vb_error *err)
{
  if (len == 0 || len > CHUNK_MAX_SIZE)
    return vb_err (err, EINVAL, "configuration of %s has %zu bytes (1..%u allowed)",
                   m->source_name, len, CHUNK_MAX_SIZE);
  const struct repo_keys *k = repo_keys (r);
  crypto_chunk_id (k, text, len, m->config_id);
  uint8_t *blob;
  size_t blen;
  int rc = chunk_encode (k, m->config_id, text, len, repo_compress_level (r), &blob, &blen,
                         err);
  if (rc < 0)
    return rc;
  snprintf (m->config_key, sizeof m->config_key, "snapshots/%s/config", m->id);
  m->config_size = len;
  struct repo_backend *b = repo_backend (r);
  rc = b->ops->put (b, m->config_key, blob, blen, 0, err);
  free (blob);
  return rc;
}

/* Fetch and decode a point's configuration; its id binds it. */
int
engine_load_config (struct repo *r, const struct manifest *m, char **text, size_t *len,
                    struct vb_error *err)
{
  *text = NULL;
  *len = 0;
  if (m->config_key[0] == '\0')
    return vb_err (err, ENOENT, "point %s has no saved VM configuration", m->id);
  struct repo_backend *b = repo_backend (r);
  uint8_t *blob;
  size_t blen;
  int rc = b->ops->get (b, m->config_key, CHUNK_BLOB_MAX, &blob, &blen, err);
  if (rc < 0) {
    vb_err_prefix (err, "point %s", m->id);
    return rc;
  }
  char *out = malloc (m->config_size + 1);
  if (!out) {
    free (blob);
    return vb_errno (err, ENOMEM, "configuration of point %s", m->id);
  }
  int n = chunk_decode (repo_keys (r), m->config_id, blob, blen, (uint8_t *) out,
                        m->config_size, err);
  free (blob);
  if (n >= 0 && (uint64_t) n != m->config_size)
    n = vb_err (err, EBADMSG, "it has %d bytes, the manifest says %llu", n,
                (unsigned long long) m->config_size);
  if (n < 0) {
    free (out);
    vb_err_prefix (err, "configuration '%s' of point %s", m->config_key, m->id);
    return n;
  }
  out[n] = '\0';
  *text = out;
  *len = (size_t) n;
  return 0;
}
