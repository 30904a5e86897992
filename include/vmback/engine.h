/* vmback engine: backup, restore, verify, prune and gc against a
 * repository (SEED-DIGEST §7, §8).  Disk images are the first source;
 * VMs (connectors) reuse the same steps per disk. */
#ifndef VMBACK_ENGINE_H
#define VMBACK_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "vmback/error.h"
#include "vmback/repo.h"
#include "vmback/vdisk.h"

struct manifest;

struct engine_backup_opts {
  const char *source_name;   /* NULL = derived from the disk file name */
  int threads;               /* worker threads, 0 = number of CPUs (>= 2) */
  bool full;                 /* ignore change tracking: read every allocated area */
  vdisk_progress_fn progress;
  void *opaque;
};

/* Back up one disk image into a new restore point.  The first point of a
 * source reads everything allocated; later points read only the areas the
 * disk's change tracking reports since the previous point's changeId
 * (whole chunks; unchanged chunks are taken from the previous index), or
 * everything (deduplicated) when tracking cannot answer.  *out gets the
 * manifest written (may be NULL).  Holds a shared repository lock. */
int engine_backup_disk (struct repo *r, const char *disk_path,
                        const struct engine_backup_opts *o,
                        struct manifest *out, struct vb_error *err);

struct engine_restore_opts {
  enum vdisk_type type;      /* target format for a new file */
  bool type_set;             /* else from the target's extension */
  int threads;
  int disk;                  /* index into the manifest's disks */
  vdisk_progress_fn progress;
  void *opaque;
};

/* Restore disk o->disk of point m into target: a new file of any
 * writable type (sparse: zero chunks are not written) or an existing
 * block device.  Every chunk's hash is checked. */
int engine_restore_disk (struct repo *r, const struct manifest *m,
                         const char *target, const struct engine_restore_opts *o,
                         struct vb_error *err);

struct engine_inplace_result {
  bool used_ctk;             /* change tracking told which areas differ */
  uint64_t chunks_checked, chunks_written;
};
/* Write back into an existing disk only the chunks that differ from the
 * point: by the disk's change tracking since the point's changeId when
 * valid, else by comparing chunk hashes. */
int engine_restore_in_place (struct repo *r, const struct manifest *m,
                             const char *disk_path, const struct engine_restore_opts *o,
                             struct engine_inplace_result *res, struct vb_error *err);

/* verify: report gets one line per problem. */
typedef void (*engine_report_fn) (void *opaque, const char *line);
struct engine_verify_result {
  uint64_t points, chunks_checked, bytes_checked, bad_chunks, bad_points;
};
int engine_verify (struct repo *r, const char *point, int threads,
                   engine_report_fn report, void *opaque,
                   struct engine_verify_result *res, struct vb_error *err);

struct engine_prune_opts {
  int keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly;
  bool dry_run;
  const char *source;        /* NULL = every source */
};
/* report gets "keep ID (reasons)" / "remove ID" lines. */
int engine_prune (struct repo *r, const struct engine_prune_opts *o,
                  engine_report_fn report, void *opaque,
                  uint64_t *kept, uint64_t *removed, struct vb_error *err);

struct engine_gc_result {
  uint64_t chunks_total, chunks_deleted, bytes_deleted;
};
int engine_gc (struct repo *r, bool dry_run, struct engine_gc_result *res,
               struct vb_error *err);

#endif
