/* vmback transports: how the bytes of a snapshot's disk reach the backup
 * (docs/transports.md).
 *
 *   san     the chain's files read directly with vdisk
 *   hotadd  the disk attached to this host as a local block device (a
 *           read-only loop device over a flat extent)
 *   nbd     an NBD export of the disk (nbdkit with our vdisk plugin)
 *           read with libnbd; block status skips holes
 *   nbdssl  the same over TLS with a fresh pre-shared key per disk
 *   auto    san, hotadd, nbd in that order, falling through on failure
 *
 * A transport opens one disk and gives a reader: size, pread, block status.
 * Every transport is a driver behind struct vb_transport_ops. */
#ifndef VMBACK_TRANSPORT_H
#define VMBACK_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

struct vb_reader;

struct vb_reader_ops {
  /* Read count bytes at off (inside the disk); 0 or -errno. */
  int (*pread) (struct vb_reader *r, void *buf, size_t count, uint64_t off,
                struct vb_error *err);
  /* Status of the run at off (at most len bytes): VDISK_STATUS_DATA or
   * VDISK_STATUS_ZERO, its length in *pnum (> 0); or -errno. */
  int (*status) (struct vb_reader *r, uint64_t off, uint64_t len, uint64_t *pnum,
                 struct vb_error *err);
  /* Release everything (detach, disconnect); never fails. */
  void (*close) (struct vb_reader *r);
  /* Optional, for readers whose reads wait on something else (a server):
   * start reading count bytes at off into buf, which must stay valid
   * until read_wait has returned for this read; 0 or -errno.  At most
   * VB_READS_AHEAD reads are started and not yet waited for. */
  int (*read_start) (struct vb_reader *r, void *buf, size_t count, uint64_t off,
                     struct vb_error *err);
  /* Wait for the oldest started read: 0 when its bytes are in its
   * buffer, else -errno.  Every started read must be waited for. */
  int (*read_wait) (struct vb_reader *r, struct vb_error *err);
};

#define VB_READS_AHEAD 4

/* An open disk.  Drivers embed it first in their own state. */
struct vb_reader {
  const struct vb_reader_ops *ops;
  uint64_t size;             /* virtual size in bytes */
  const char *mode;          /* the transport's name */
};

struct vb_transport_ops {
  const char *name;
  /* Open the disk at path (a vdisk path: descriptor, sparse or raw file
   * of the snapshot's top layer) for reading.  A transport that cannot
   * work here fails with a message saying why ("unavailable: ..."). */
  int (*open) (const char *path, struct vb_reader **out, struct vb_error *err);
};

extern const struct vb_transport_ops vb_transport_san;     /* transport-san.c */
extern const struct vb_transport_ops vb_transport_hotadd;  /* transport-hotadd.c */
/* transport-nbd.c: weak, set where it is linked in; else transport.c
 * loads them from the module vmback-nbd.so */
extern const struct vb_transport_ops vb_transport_nbd __attribute__ ((weak));
extern const struct vb_transport_ops vb_transport_nbdssl __attribute__ ((weak));

/* Is name "auto" or a transport's name? */
int vb_transport_valid (const char *name);

/* Open path with transport `mode` (NULL or "auto": san, hotadd, nbd in
 * turn, each failure noted on stderr unless quiet).  *out's mode says
 * which one was used. */
int vb_transport_open (const char *mode, const char *path, int quiet,
                       struct vb_reader **out, struct vb_error *err);

/* The directory our nbdkit plugins are in: that of $VMBACK_NBDKIT_PLUGIN
 * when set, else the running executable's.  Returns "DIR/name" in a
 * malloc'd string if that file exists, else NULL with a message. */
char *vb_nbdkit_plugin_path (const char *name, struct vb_error *err);

/* With a TLS 1.3 pre-shared key GnuTLS settles on ChaCha20-Poly1305
 * (AES-256-GCM's SHA-384 does not fit the key's SHA-256 binder, and NORMAL
 * lists ChaCha20 before AES-128-GCM), many times slower than AES-GCM on a
 * CPU with AES instructions.  True when the nbdkit we start should be
 * given VB_TLS_NO_CHACHA as its GnuTLS configuration
 * (GNUTLS_SYSTEM_PRIORITY_FILE): such a CPU, and no GnuTLS policy of the
 * system's or the user's to respect. */
bool vb_tls_prefer_aes (void);
#define VB_TLS_NO_CHACHA "[overrides]\ntls-disabled-cipher = CHACHA20-POLY1305\n"

#endif
