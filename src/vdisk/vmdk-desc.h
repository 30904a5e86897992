/* VMDK text descriptor: parse and write (docs/vdisk-descriptor.md). */
#ifndef VMBACK_VMDK_DESC_H
#define VMBACK_VMDK_DESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmback/error.h"

#define VMDK_DESC_MAX (1024 * 1024)   /* larger descriptors are rejected */
#define VMDK_DESC_MAX_EXTENTS 4096    /* 4096 x 2 GiB = 8 TiB of split extents */
#define VMDK_CID_NONE 0xffffffffu

enum vmdk_access { VMDK_ACCESS_RW, VMDK_ACCESS_RDONLY, VMDK_ACCESS_NOACCESS };

enum vmdk_extent_kind {
  VMDK_EXT_FLAT,        /* FLAT */
  VMDK_EXT_VMFS,        /* VMFS (a flat extent on ESXi) */
  VMDK_EXT_SPARSE,      /* SPARSE: hosted KDMV sparse (incl. streamOptimized) */
  VMDK_EXT_VMFSSPARSE,  /* VMFSSPARSE: ESXi COWD delta */
  VMDK_EXT_SESPARSE,    /* SESPARSE */
  VMDK_EXT_ZERO,        /* ZERO: reads as zeros, no file */
  VMDK_EXT_VMFSRAW,     /* VMFSRAW / VMFSRDM: raw device; read like FLAT */
};

struct vmdk_desc_extent {
  enum vmdk_access access;
  uint64_t sectors;
  enum vmdk_extent_kind kind;
  char *file;           /* as written in the descriptor; NULL for ZERO */
  uint64_t offset;      /* in sectors, FLAT/VMFS only */
};

struct vmdk_kv {
  char *key;
  char *value;          /* without surrounding quotes */
};

struct vmdk_desc {
  int version;
  uint32_t cid;
  uint32_t parent_cid;
  char *create_type;
  char *parent_hint;    /* parentFileNameHint, NULL if none */
  char *change_track_path; /* changeTrackPath, NULL if none */
  char *encoding;       /* NULL if none */
  struct vmdk_desc_extent *ext;
  size_t n_ext;
  struct vmdk_kv *ddb;  /* ddb.* keys in file order */
  size_t n_ddb;
  struct vmdk_kv *other; /* unknown header keys, kept for round trips */
  size_t n_other;
};

/* Parse descriptor text (len bytes, need not be NUL-terminated).  `name`
 * is used in messages only.  Rejects: over VMDK_DESC_MAX, missing
 * "version=", bad extent lines, extent names that are absolute or contain
 * "..", sizes over VDISK_MAX_SIZE. */
int vmdk_desc_parse (const char *text, size_t len, const char *name,
                     struct vmdk_desc *d, struct vb_error *err);
/* Serialize; returns a malloc'd NUL-terminated string. */
char *vmdk_desc_format (const struct vmdk_desc *d);
void vmdk_desc_free (struct vmdk_desc *d);

/* Get/set a ddb key (value without quotes).  set with value NULL removes. */
const char *vmdk_desc_ddb_get (const struct vmdk_desc *d, const char *key);
int vmdk_desc_ddb_set (struct vmdk_desc *d, const char *key,
                       const char *value);
/* Replace a string field (strdup; NULL clears). */
int vmdk_desc_set_str (char **field, const char *value);

/* Total virtual size in sectors (sum of extents). */
uint64_t vmdk_desc_sectors (const struct vmdk_desc *d);

/* Fill a fresh descriptor for a new disk: version 1, random CID, parent
 * CID none, the createType, ddb.virtualHWVersion/adapterType/geometry/uuid. */
int vmdk_desc_init (struct vmdk_desc *d, const char *create_type,
                    uint64_t sectors, const char *adapter);

/* Does text look like a descriptor? (starts with "# Disk DescriptorFile"
 * or has a "version=" line before any binary byte) */
bool vmdk_desc_probe (const char *buf, size_t len);

const char *vmdk_extent_kind_name (enum vmdk_extent_kind k);
const char *vmdk_access_name (enum vmdk_access a);

/* Make a random CID (never 0xffffffff or 0xfffffffe). */
uint32_t vmdk_random_cid (void);

#endif
