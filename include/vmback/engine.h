/* vmback engine: backup, restore, verify, prune and gc against a
 * repository (docs/CLI.md).  Disk images are the first source;
 * VMs (connectors) reuse the same steps per disk. */
#ifndef VMBACK_ENGINE_H
#define VMBACK_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmback/error.h"
#include "vmback/repo.h"
#include "vmback/vdisk.h"

struct manifest;

/* Quiescing of a VM's backup snapshot. */
enum engine_quiesce { ENGINE_QUIESCE_OFF = 0, ENGINE_QUIESCE_TRY, ENGINE_QUIESCE_REQUIRED };

struct engine_backup_opts {
  const char *source_name;   /* NULL = derived from the disk file name (the
                                VM's name for VMs) */
  int threads;               /* worker threads, 0 = number of CPUs (>= 2) */
  bool full;                 /* ignore change tracking: read every allocated area */
  enum engine_quiesce quiesce;         /* VMs only */
  const char *transport;     /* san, hotadd, nbd, nbdssl or auto; NULL:
                                auto for VMs, a direct read for disk images */
  bool quiet;                /* no notes on stderr (the transport used) */
  volatile sig_atomic_t *cancel;       /* non-zero: stop between chunks (VMs;
                                          set by a signal handler) */
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

/* Back up a whole VM (docs/CLI.md, "backup VMX") through its connector (source is
 * what vb_connector_find claims, e.g. a .vmx path): delete snapshots left
 * by an interrupted run, save the configuration with the point, take a
 * snapshot (quiesced when asked), back up every disk of the snapshot as
 * engine_backup_disk does (incremental per disk from the changeId of the
 * same device key in the previous point of the VM), delete the snapshot.
 * The snapshot is deleted also on failure and on cancel; the manifest is
 * written only once every disk is stored. */
int engine_backup_vm (struct repo *r, const char *source,
                      const struct engine_backup_opts *o, struct manifest *out,
                      struct vb_error *err);

struct engine_restore_opts {
  enum vdisk_type type;      /* target format for a new file */
  bool type_set;             /* else from the target's extension */
  int threads;
  int disk;                  /* index into the manifest's disks */
  bool one_disk;             /* VM restores: only disk `disk` */
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

/* Restore a VM point into a new VM directory dir (absent or empty):
 * DIR/NAME.vmx (the saved configuration, each disk's fileName pointing at
 * its restored file; with one_disk the other disks are marked not
 * present), every disk as a full new disk (type o->type, default
 * monolithicSparse), an empty NAME.vmsd.  On failure nothing is left. */
int engine_restore_vm_to (struct repo *r, const struct manifest *m, const char *dir,
                          const struct engine_restore_opts *o, struct vb_error *err);

/* Per restored disk (at most 64, the manifest's limit): its key and result. */
struct engine_vm_inplace_result {
  size_t n_disks;
  char keys[64][64];
  struct engine_inplace_result disk[64];
  bool config_restored;      /* the point's configuration was put in place */
};
/* Restore a VM point into the existing, powered-off VM source (docs/CLI.md, "restore --in-place"): the
 * configuration (the VM's current disk files kept; not with one_disk),
 * then a snapshot S, every disk's changes since the point written back
 * into the new top layer, and S deleted, which merges them into the
 * disks.  On failure the VM is reverted to S and S deleted. */
int engine_restore_vm_in_place (struct repo *r, const struct manifest *m,
                                const char *source, const struct engine_restore_opts *o,
                                struct engine_vm_inplace_result *res,
                                struct vb_error *err);

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
  uint64_t packs_deleted, packs_repacked;  /* packed repositories */
  uint64_t bytes_repacked;   /* live chunk bytes rewritten into new packs */
  uint64_t orphans_deleted;  /* objects of points that have no manifest */
  uint64_t tmp_deleted, tmp_bytes;  /* temporary files of killed writes */
};
int engine_gc (struct repo *r, bool dry_run, struct engine_gc_result *res,
               struct vb_error *err);

struct engine_copy_opts {
  const char *const *points; /* POINT specs of the source; NULL = every point */
  size_t n_points;
  int threads;               /* 0 = default */
  vdisk_progress_fn progress;
  void *opaque;
  engine_report_fn report;   /* "copied ID" / "exists ID" lines */
  void *report_opaque;
};
struct engine_copy_result {
  uint64_t points_copied, points_present;
  uint64_t chunks_sent, chunks_present, chunks_read, bytes_sent;
  bool reencrypted;          /* chunks were decoded and encoded anew */
};
/* Copy restore points from src to dst, sending only the chunks dst lacks:
 * chunks first, then each index, the manifest last, so an interrupted
 * copy leaves no point behind and a rerun skips what exists.  Chunks are
 * decoded with src's keys and encoded with dst's when the keys differ
 * (then chunk ids differ and indexes are rewritten).  Holds a shared lock
 * on both repositories. */
int engine_copy (struct repo *src, struct repo *dst,
                 const struct engine_copy_opts *o,
                 struct engine_copy_result *res, struct vb_error *err);

#endif
