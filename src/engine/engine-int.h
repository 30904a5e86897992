/* vmback engine internals shared by backup, restore, verify, prune, gc. */
#ifndef VMBACK_ENGINE_INT_H
#define VMBACK_ENGINE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <strings.h>

#include "idset.h"
#include "repo/repo-int.h"
#include "vdisk/vdisk-int.h"
#include "vmback/engine.h"
#include "vmback/repo.h"

/* Object key of the index of disk `disk` of point m. */
void engine_index_key (const struct manifest *m, int disk, char *buf, size_t len);
/* Fetch, authenticate and decode the index of disk `disk` of point m; its
 * HMAC must equal the one the manifest recorded. */
int engine_load_index (struct repo *r, const struct manifest *m, int disk,
                       struct repo_index *ix, struct vb_error *err);
/* Encode and store an index, recording its key and HMAC in m->disks[disk]. */
int engine_store_index (struct repo *r, struct manifest *m, int disk,
                        const struct repo_index *ix, struct vb_error *err);
/* Fetch and decode chunk id into out (cap bytes); returns its length.
 * strict: check every byte of the blob (verify); else chunk_decode_data
 * (restores and exports). */
int engine_fetch_chunk (struct repo *r, const uint8_t id[REPO_ID_LEN], uint8_t *out,
                        size_t cap, bool strict, struct vb_error *err);
/* engine_fetch_chunk (not strict) for a cache that keeps what it fetched:
 * *plain points at the chunk, in out, or, for a raw unencrypted chunk,
 * in the fetched blob itself, then returned in *mem for the caller to
 * free (else *mem is NULL).  Saves copying each raw chunk once more. */
int engine_fetch_chunk_view (struct repo *r, const uint8_t id[REPO_ID_LEN], uint8_t *out,
                             size_t cap, uint8_t **mem, const uint8_t **plain,
                             struct vb_error *err);

/* Store a VM's configuration as the point's config object (encoded like
 * a chunk blob), recording its key, id and size in m (m->id set). */
int engine_store_config (struct repo *r, struct manifest *m, const char *text,
                         size_t len, struct vb_error *err);
/* Fetch, decode and authenticate (its id must be the manifest's) the
 * configuration of point m: malloc'd, NUL-terminated text. */
int engine_load_config (struct repo *r, const struct manifest *m, char **text,
                        size_t *len, struct vb_error *err);

/* Areas of a disk changed since a changeId ("" or invalid: -ESTALE or
 * another error, then everything is read/compared). */
typedef int (*engine_changed_fn) (void *opaque, const char *key, const char *since,
                                  struct vdisk_extent_list *out, struct vb_error *err);

/* Where one disk's bytes come from in a backup. */
struct engine_disk_src {
  const char *key;           /* device key recorded in the manifest */
  const char *path;          /* the disk (or snapshot layer) */
  struct vb_reader *reader;  /* its bytes through a transport; NULL: read
                                path with vdisk (transport.h) */
  const char *change_id;     /* its changeId, "" if none */
  engine_changed_fn changed;
  void *opaque;
  bool notes;                /* say on stderr why a disk is read in full */
};

/* The changeId of what (a disk image's path, "disk KEY") could not be read
 * (ce): unless tracking is merely off or invalid, which other notes cover,
 * say that the point gets none and the next backup reads it in full. */
void engine_note_no_change_id (const char *what, const struct vb_error *ce);

/* Read one disk into ix and md (key, source, size, changeIds, counters):
 * incremental from the disk of the same key in prev (may be NULL) when
 * its changeId and geometry allow, else every allocated area.  Stops with
 * -ECANCELED when *o->cancel becomes non-zero. */
int engine_backup_read (struct repo *r, const struct engine_disk_src *src,
                        const struct manifest *prev, const struct engine_backup_opts *o,
                        struct manifest_disk *md, struct repo_index *ix,
                        struct vb_error *err);

/* engine_restore_in_place with the changed areas from a callback (NULL:
 * the disk file's own change tracking). */
int engine_restore_in_place_src (struct repo *r, const struct manifest *m,
                                 const char *disk_path, engine_changed_fn changed,
                                 void *opaque, const struct engine_restore_opts *o,
                                 struct engine_inplace_result *res, struct vb_error *err);

/* Name prefixes of the snapshots our flows take, and their descriptions;
 * any snapshot named so is a leftover of an interrupted run. */
#define ENGINE_SNAP_BACKUP "vmback-backup-"
#define ENGINE_SNAP_RESTORE "vmback-restore-"
struct vb_connector;
/* Delete every snapshot of c named with one of our prefixes, then
 * consolidate the VM (delta files left by a killed snapshot operation),
 * saying so on stderr; returns how many snapshots or a negative errno. */
int engine_delete_leftovers (struct vb_connector *c, struct vb_error *err);

#endif
