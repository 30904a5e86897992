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
/* Fetch and decode chunk id into out (cap bytes); returns its length. */
int engine_fetch_chunk (struct repo *r, const uint8_t id[REPO_ID_LEN], uint8_t *out,
                        size_t cap, struct vb_error *err);

#endif
