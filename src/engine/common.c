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
    index_free (ix);
    rc = vb_err (err, EBADMSG, "index '%s' is for %llu bytes, the manifest says %llu",
                 key, (unsigned long long) ix->disk_size, (unsigned long long) md->size);
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

/* Fetch and decode one chunk. */
int
engine_fetch_chunk (struct repo *r, const uint8_t id[REPO_ID_LEN], uint8_t *out,
                    size_t cap, struct vb_error *err)
{
  char key[128];
  chunk_key (id, key, sizeof key);
  struct repo_backend *b = repo_backend (r);
  uint8_t *blob;
  size_t blen;
  struct vb_error ge = { 0 };
  int rc = b->ops->get (b, key, CHUNK_MAX_SIZE + 4096, &blob, &blen, &ge);
  if (rc == -ENOENT) {
    char hex[2 * REPO_ID_LEN + 1];
    hex_encode (id, REPO_ID_LEN, hex);
    return vb_err (err, ENOENT, "chunk %s is missing from the repository", hex);
  }
  if (rc < 0) {
    if (err && err->code == 0)
      *err = ge;
    return rc;
  }
  rc = chunk_decode (repo_keys (r), id, blob, blen, out, cap, err);
  free (blob);
  return rc;
}
