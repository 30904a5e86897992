/* VMware configuration dictionaries: the `.vmx` file (and the same
 * `key = "value"` syntax used by `.vmsd`), see docs/vmx-vmsd.md.
 *
 * The parser keeps every line exactly as read (comments, blank lines,
 * unknown keys, spacing, CRLF endings), so formatting an unmodified
 * config gives back the input byte for byte.  vmx_set rewrites only the
 * value of the line it changes; new keys are appended at the end.
 *
 * Keys match case-insensitively (as VMware does) but keep their original
 * spelling.  When a key occurs more than once the LAST occurrence wins;
 * vmx_set updates that one and drops the earlier ones.
 *
 * Values are returned decoded: VMware's `|XX` escapes (two hex digits, e.g.
 * `|22` = '"', `|7C` = '|', `|0A` = newline) become the byte they name;
 * vmx_set encodes '"', '|', '#' and control bytes the same way. */
#ifndef VMBACK_VMX_CONFIG_H
#define VMBACK_VMX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

#define VMX_MAX_FILE (1024 * 1024)   /* larger files are rejected */
#define VMX_MAX_LINE (64 * 1024)     /* bytes per line, without the newline */
#define VMX_MAX_LINES 10000
#define VMX_MAX_KEY 1024             /* bytes per key */
#define VMX_MAX_DEVICES 1024         /* distinct disk-like device keys */

struct vmx_config;   /* opaque */

/* Parse `len` bytes of text (need not be NUL-terminated).  `name` (the
 * file name) is used in messages and kept for later ones.  Malformed
 * input gives -EINVAL and a one-line message naming the line:
 *   cannot parse 'x.vmx' line 12: missing '=' after key 'foo' */
int vmx_parse (const char *text, size_t len, const char *name,
               struct vmx_config **out, struct vb_error *err);
/* Read and parse a file (at most VMX_MAX_FILE bytes). */
int vmx_load (const char *path, struct vmx_config **out, struct vb_error *err);
/* An empty config (no lines); name is for messages. */
struct vmx_config *vmx_new (const char *name);
void vmx_free (struct vmx_config *c);

/* The whole text; malloc'd, NUL-terminated, *len (may be NULL) set to
 * its length.  NULL on ENOMEM. */
char *vmx_format (const struct vmx_config *c, size_t *len);
/* Write atomically to path (temp file in the same directory, fsync,
 * rename).  Refuses (-EFBIG) text over VMX_MAX_FILE: we never write a
 * file we would refuse to read. */
int vmx_save (const struct vmx_config *c, const char *path,
              struct vb_error *err);

/* Decoded value of key (case-insensitive), NULL if absent.  Valid until
 * the key is next set or removed. */
const char *vmx_get (const struct vmx_config *c, const char *key);
/* Set key to value (plain text, encoded here).  Replaces the value of an
 * existing line in place (keeping its spelling, spacing and line ending)
 * or appends `key = "value"`.  Rejects invalid keys and lines or files
 * that would exceed the bounds above (-EINVAL / -E2BIG). */
int vmx_set (struct vmx_config *c, const char *key, const char *value,
             struct vb_error *err);
/* Remove every line holding key; returns how many were removed. */
int vmx_remove (struct vmx_config *c, const char *key);

/* Iterate key/value lines in file order: number of entries, and the i-th
 * entry's key (original spelling) and decoded value.  Duplicates are all
 * listed. */
size_t vmx_n_entries (const struct vmx_config *c);
bool vmx_entry (const struct vmx_config *c, size_t i, const char **key,
                const char **value);
/* Walk key/value lines in order in O(n): start with *cursor = 0; each
 * call gives the next entry, false at the end. */
bool vmx_entry_next (const struct vmx_config *c, size_t *cursor,
                     const char **key, const char **value);
/* The name given at parse time. */
const char *vmx_name (const struct vmx_config *c);

/* Encode a value the way vmx_set writes it (without quotes): malloc'd,
 * NULL on ENOMEM.  For writers that build a whole file (vmsd.c). */
char *vmx_encode_value (const char *value);

/* Typed getters.  Missing key: vmx_get_bool stores dflt and returns 0,
 * vmx_get_u64 returns -ENOENT with a message; a value that is not a
 * boolean (TRUE/FALSE, yes/no, 1/0, on/off, any case) or not a decimal
 * in 0..max gives -EINVAL with a message. */
int vmx_get_bool (const struct vmx_config *c, const char *key, bool dflt,
                  bool *out, struct vb_error *err);
int vmx_get_u64 (const struct vmx_config *c, const char *key, uint64_t max,
                 uint64_t *out, struct vb_error *err);
/* Parse a boolean string as above; false if it is none. */
bool vmx_parse_bool (const char *s, bool *out);

/* VM settings. */
const char *vmx_display_name (const struct vmx_config *c);   /* displayName */
const char *vmx_guest_os (const struct vmx_config *c);      /* guestOS */
/* memSize in MiB (1..VMX_MAX_MEM_MB); -ENOENT when absent. */
#define VMX_MAX_MEM_MB (64ull * 1024 * 1024)
int vmx_mem_size_mb (const struct vmx_config *c, uint64_t *mb,
                     struct vb_error *err);
/* numvcpus (1..VMX_MAX_VCPUS); 1 when absent, VMware's default. */
#define VMX_MAX_VCPUS 4096
int vmx_num_vcpus (const struct vmx_config *c, unsigned *n,
                   struct vb_error *err);
/* ctkEnabled (VM-wide change tracking switch); false when absent. */
int vmx_ctk_enabled (const struct vmx_config *c, bool *on,
                     struct vb_error *err);
/* uuid.bios ("56 4d 2b 8e 3c 1a 9f 55-94 3b 6a 70 5e 4c 2d 11": 16 hex
 * bytes, separated by spaces or '-') into 16 bytes; -ENOENT when absent. */
int vmx_uuid_bios (const struct vmx_config *c, uint8_t uuid[16],
                   struct vb_error *err);
/* Parse the VMware uuid spelling above (also accepts the canonical
 * 8-4-4-4-12 form); false if malformed. */
bool vmx_parse_uuid (const char *s, uint8_t uuid[16]);
/* Canonical lowercase "564d2b8e-3c1a-9f55-943b-6a705e4c2d11". */
void vmx_uuid_string (const uint8_t uuid[16], char out[37]);

/* Disks. */
enum vmx_bus { VMX_BUS_SCSI, VMX_BUS_SATA, VMX_BUS_NVME, VMX_BUS_IDE };

struct vmx_disk {
  char device[32];       /* device key, lowercase bus: "scsi0:0", "nvme1:3" */
  enum vmx_bus bus;
  unsigned controller;   /* the X of scsiX:Y */
  unsigned unit;         /* the Y */
  char *file_name;       /* decoded X:Y.fileName (path as written) */
  char *device_type;     /* X:Y.deviceType, NULL if absent */
  char *mode;            /* X:Y.mode, NULL if absent (= "persistent") */
  bool ctk_enabled;      /* X:Y.ctkEnabled, false if absent */
};

/* List the VM's disks, sorted by bus (scsi, sata, nvme, ide), controller,
 * unit.  A device X:Y is a disk when X:Y.present is true, its controller
 * X.present is not false (IDE has no controller key), and X:Y.deviceType
 * is "scsi-hardDisk", "disk" or "ata-hardDisk", or absent with a fileName
 * ending in ".vmdk".  CD-ROMs, raw disks, passthrough devices are not
 * disks.  A disk without fileName is an error (-EINVAL).  *out is a
 * malloc'd array (NULL when n = 0), free with vmx_disks_free. */
int vmx_disks (const struct vmx_config *c, struct vmx_disk **out, size_t *n,
               struct vb_error *err);
void vmx_disks_free (struct vmx_disk *d, size_t n);
/* Parse a device key "scsi0:0" (any case); false if it is not one. */
bool vmx_parse_device (const char *s, enum vmx_bus *bus, unsigned *controller,
                       unsigned *unit);
/* Point disk `device` (e.g. "scsi0:0") at `file_name`: sets
 * <device>.fileName, which must already exist (-ENOENT otherwise). */
int vmx_disk_set_file_name (struct vmx_config *c, const char *device,
                            const char *file_name, struct vb_error *err);

#endif
