/* vmback change tracking (CTK): our own -ctk.vmdk format, docs/CTK.md.
 *
 * Per 64 KiB block the file keeps the sequence number of the write session
 * that last wrote it.  A changeId is "<ctk-uuid>/<seq>": the state after
 * write session `seq`.  QueryChangedDiskAreas(since S) returns the blocks
 * stamped > S.
 *
 * The tracker must never answer too little.  It is invalid (and says why)
 * when: the file is missing, unreadable, not ours or fails its checksum; a
 * writer crashed (dirty flag left set); the disk's CID differs from the one
 * recorded at the last clean close (someone wrote without tracking); the
 * disk size differs (resize).  A query against an invalid tracker, or with
 * a changeId of another uuid or a future seq, fails with -ESTALE.  Opening
 * an invalid tracker writable resets it: a new uuid, all stamps 0, so every
 * older changeId is refused from then on.
 */
#ifndef VMBACK_CTK_H
#define VMBACK_CTK_H

#include <stdbool.h>
#include <stdint.h>

#include "vmback/vdisk.h"

struct ctk;

/* Create (or overwrite) a fresh, valid tracker for a disk of disk_size
 * bytes whose descriptor CID is cid. */
int ctk_create (const char *path, uint64_t disk_size, uint32_t cid,
                struct vb_error *err);

/* Open the tracker at path for a disk of disk_size bytes with descriptor
 * CID cid.  Never fails because the tracker is invalid (then ctk_valid()
 * says so); fails only for I/O errors that prevent even that, and when
 * writable and the file cannot be (re)created.  When writable and invalid,
 * the tracker is reset (new uuid) and becomes valid. */
int ctk_open (const char *path, uint64_t disk_size, uint32_t cid,
              bool writable, struct ctk **out, struct vb_error *err);

/* true if valid; else *reason (may be NULL) points at a static or owned
 * string explaining why. */
bool ctk_valid (const struct ctk *c, const char **reason);

/* Called by the core before the first write of a session: seq += 1, set
 * the dirty flag on disk and fsync, so a crash from here on invalidates. */
int ctk_begin_write (struct ctk *c, struct vb_error *err);

/* Record a write of [off, off+len) in memory (stamped with current seq). */
void ctk_mark (struct ctk *c, uint64_t off, uint64_t len);

/* Persist (if anything was written: table, cid = final_cid, clear dirty;
 * atomically via a temp file and rename) and free.  Always frees c. */
int ctk_close (struct ctk *c, uint32_t final_cid, struct vb_error *err);

/* Write a valid tracker's whole state (uuid, sequence, stamps) to
 * another file, bound to CID cid: the tracker of a layer that takes over
 * this one's history (a snapshot's new child, a merge target).  -ESTALE
 * if c is invalid.  c itself is unchanged. */
int ctk_save_as (const struct ctk *c, const char *path, uint32_t cid,
                 struct vb_error *err);

/* Current changeId, "<uuid>/<seq>". */
void ctk_change_id (const struct ctk *c, char *buf, size_t len);

/* Changed areas after change_id, from byte offset start: merged, sorted,
 * 64 KiB-aligned byte extents clipped to the disk size.  -ESTALE when the
 * tracker is invalid or change_id is not one of its own; -EINVAL when
 * change_id is malformed. */
int ctk_query (const struct ctk *c, const char *change_id, uint64_t start,
               struct vdisk_extent_list *out, struct vb_error *err);

/* Parse a changeId into uuid text (37 bytes incl NUL) and seq. */
int ctk_parse_change_id (const char *change_id, char uuid[37], uint64_t *seq);

/* Default tracker file name for a descriptor path: NAME.vmdk -> NAME-ctk.vmdk */
char *ctk_default_path (const char *desc_path);

#endif
