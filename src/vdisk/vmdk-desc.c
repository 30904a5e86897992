/* vmback vdisk: the VMDK text descriptor (docs/vdisk-descriptor.md).
 *
 * A descriptor is a small text file (or text embedded in a hosted sparse
 * extent) with a header of key=value lines, one line per extent and the
 * disk database (ddb.* keys).  We keep unknown header keys so a rewrite
 * after a CID change loses nothing. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "vdisk-int.h"
#include "vmdk-desc.h"

/* Extent type keywords in descriptor order of our enum. */
static const char *const kind_names[] = {
  [VMDK_EXT_FLAT] = "FLAT", [VMDK_EXT_VMFS] = "VMFS",
  [VMDK_EXT_SPARSE] = "SPARSE", [VMDK_EXT_VMFSSPARSE] = "VMFSSPARSE",
  [VMDK_EXT_SESPARSE] = "SESPARSE", [VMDK_EXT_ZERO] = "ZERO",
  [VMDK_EXT_VMFSRAW] = "VMFSRAW",
};

static const char *const access_names[] = {
  [VMDK_ACCESS_RW] = "RW", [VMDK_ACCESS_RDONLY] = "RDONLY",
  [VMDK_ACCESS_NOACCESS] = "NOACCESS",
};

/* Keyword of an extent kind. */
const char *
vmdk_extent_kind_name (enum vmdk_extent_kind k)
{
  return (unsigned) k < sizeof kind_names / sizeof *kind_names ? kind_names[k] : "?";
}

/* Keyword of an access mode. */
const char *
vmdk_access_name (enum vmdk_access a)
{
  return (unsigned) a < 3 ? access_names[a] : "?";
}

/* A random CID that is neither "none" (ffffffff) nor qemu's fresh fffffffe. */
uint32_t
vmdk_random_cid (void)
{
  uint32_t v = 0;
  do {
    if (getrandom (&v, sizeof v, 0) != (ssize_t) sizeof v)
      v = (uint32_t) rand ();
  } while (v >= 0xfffffffeu || v == 0);
  return v;
}

/* Replace *field with a copy of value (NULL clears). */
int
vmdk_desc_set_str (char **field, const char *value)
{
  char *n = NULL;
  if (value && !(n = strdup (value)))
    return -ENOMEM;
  free (*field);
  *field = n;
  return 0;
}

/* Free everything a descriptor owns and zero it. */
void
vmdk_desc_free (struct vmdk_desc *d)
{
  for (size_t i = 0; i < d->n_ext; i++)
    free (d->ext[i].file);
  free (d->ext);
  for (size_t i = 0; i < d->n_ddb; i++) {
    free (d->ddb[i].key);
    free (d->ddb[i].value);
  }
  free (d->ddb);
  for (size_t i = 0; i < d->n_other; i++) {
    free (d->other[i].key);
    free (d->other[i].value);
  }
  free (d->other);
  free (d->create_type);
  free (d->parent_hint);
  free (d->change_track_path);
  free (d->encoding);
  memset (d, 0, sizeof *d);
}

/* Look up a ddb key. */
const char *
vmdk_desc_ddb_get (const struct vmdk_desc *d, const char *key)
{
  for (size_t i = 0; i < d->n_ddb; i++)
    if (strcmp (d->ddb[i].key, key) == 0)
      return d->ddb[i].value;
  return NULL;
}

/* Append or replace key=value in a kv array (value NULL removes). */
static int
kv_set (struct vmdk_kv **arr, size_t *n, const char *key, const char *value)
{
  for (size_t i = 0; i < *n; i++) {
    if (strcmp ((*arr)[i].key, key) != 0)
      continue;
    if (value == NULL) {
      free ((*arr)[i].key);
      free ((*arr)[i].value);
      memmove (&(*arr)[i], &(*arr)[i + 1], (*n - i - 1) * sizeof **arr);
      (*n)--;
      return 0;
    }
    return vmdk_desc_set_str (&(*arr)[i].value, value);
  }
  if (value == NULL)
    return 0;
  struct vmdk_kv *na = realloc (*arr, (*n + 1) * sizeof *na);
  if (!na)
    return -ENOMEM;
  *arr = na;
  na[*n].key = strdup (key);
  na[*n].value = strdup (value);
  if (!na[*n].key || !na[*n].value) {
    free (na[*n].key);
    free (na[*n].value);
    return -ENOMEM;
  }
  (*n)++;
  return 0;
}

/* Set (or remove, value NULL) a ddb key, keeping file order. */
int
vmdk_desc_ddb_set (struct vmdk_desc *d, const char *key, const char *value)
{
  return kv_set (&d->ddb, &d->n_ddb, key, value);
}

/* Sum of extent sizes in sectors. */
uint64_t
vmdk_desc_sectors (const struct vmdk_desc *d)
{
  uint64_t s = 0;
  for (size_t i = 0; i < d->n_ext; i++)
    s += d->ext[i].sectors;
  return s;
}

/* Does buf look like descriptor text?  Only printable text before a
 * "version=" or the "# Disk DescriptorFile" banner counts. */
bool
vmdk_desc_probe (const char *buf, size_t len)
{
  static const char banner[] = "# Disk DescriptorFile";
  if (len >= sizeof banner - 1 && memcmp (buf, banner, sizeof banner - 1) == 0)
    return true;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char) buf[i];
    if (c == 0 || (c < 32 && c != '\n' && c != '\r' && c != '\t'))
      return false;
    if ((i == 0 || buf[i - 1] == '\n') && len - i >= 8
        && strncmp (buf + i, "version=", 8) == 0)
      return true;
  }
  return false;
}

/* Trim spaces at both ends of s in place; return the new start. */
static char *
trim (char *s)
{
  while (isspace ((unsigned char) *s))
    s++;
  size_t n = strlen (s);
  while (n > 0 && isspace ((unsigned char) s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* Strip one pair of surrounding double quotes in place. */
static char *
unquote (char *s)
{
  size_t n = strlen (s);
  if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
    s[n - 1] = '\0';
    return s + 1;
  }
  return s;
}

/* Reject extent file names that could escape the descriptor's directory. */
static bool
extent_name_safe (const char *f)
{
  if (f[0] == '\0' || f[0] == '/')
    return false;
  for (const char *p = f; *p; p++) {
    if ((p == f || p[-1] == '/') && p[0] == '.' && p[1] == '.'
        && (p[2] == '/' || p[2] == '\0'))
      return false;
    if ((unsigned char) *p < 32)
      return false;
  }
  return true;
}

/* Parse one extent line: ACCESS SECTORS TYPE ["FILE" [OFFSET]]. */
static int
parse_extent (char *line, const char *name, int lineno,
              struct vmdk_desc_extent *e, struct vb_error *err)
{
  char acc[16], type[16];
  int pos = 0;
  char num[32];
  memset (e, 0, sizeof *e);
  if (sscanf (line, "%15s %31s %15s %n", acc, num, type, &pos) < 3)
    return vb_err (err, EINVAL, "bad extent line %d in '%s'", lineno, name);
  size_t a;
  for (a = 0; a < 3; a++)
    if (strcmp (acc, access_names[a]) == 0)
      break;
  if (a == 3)
    return vb_err (err, EINVAL, "bad access '%s' on line %d of '%s'",
                   acc, lineno, name);
  e->access = (enum vmdk_access) a;
  char *end;
  errno = 0;
  unsigned long long sec = strtoull (num, &end, 10);
  if (errno || *end || num[0] == '-' || sec == 0
      || sec > VDISK_MAX_SIZE / VDISK_SECTOR)
    return vb_err (err, EINVAL, "bad extent size '%s' on line %d of '%s'",
                   num, lineno, name);
  e->sectors = sec;
  size_t k;
  for (k = 0; k < sizeof kind_names / sizeof *kind_names; k++)
    if (strcmp (type, kind_names[k]) == 0)
      break;
  if (k == sizeof kind_names / sizeof *kind_names) {
    if (strcmp (type, "VMFSRDM") == 0 || strcmp (type, "VMFSRAW") == 0)
      k = VMDK_EXT_VMFSRAW;
    else
      return vb_err (err, ENOTSUP, "unsupported extent type '%s' on line %d of '%s'",
                     type, lineno, name);
  }
  e->kind = (enum vmdk_extent_kind) k;
  char *rest = trim (line + pos);
  if (e->kind == VMDK_EXT_ZERO)
    return 0;
  if (rest[0] != '"')
    return vb_err (err, EINVAL, "extent file name missing on line %d of '%s'",
                   lineno, name);
  char *close = strchr (rest + 1, '"');
  if (!close)
    return vb_err (err, EINVAL, "unterminated extent file name on line %d of '%s'",
                   lineno, name);
  *close = '\0';
  if (!extent_name_safe (rest + 1))
    return vb_err (err, EINVAL,
                   "unsafe extent file name '%s' on line %d of '%s' (absolute or with '..')",
                   rest + 1, lineno, name);
  if (!(e->file = strdup (rest + 1)))
    return vb_errno (err, ENOMEM, "cannot parse '%s'", name);
  char *off = trim (close + 1);
  if (*off) {
    errno = 0;
    unsigned long long o = strtoull (off, &end, 10);
    if (errno || *trim (end) || off[0] == '-' || o > VDISK_MAX_SIZE / VDISK_SECTOR) {
      free (e->file);
      e->file = NULL;
      return vb_err (err, EINVAL, "bad extent offset '%s' on line %d of '%s'",
                     off, lineno, name);
    }
    e->offset = o;
  }
  return 0;
}

/* Parse a hex CID value. */
static int
parse_cid (const char *v, uint32_t *out)
{
  char *end;
  errno = 0;
  unsigned long x = strtoul (v, &end, 16);
  if (errno || end == v || *end || x > 0xffffffffUL)
    return -EINVAL;
  *out = (uint32_t) x;
  return 0;
}

/* Store one header key=value line. */
static int
parse_header_kv (struct vmdk_desc *d, const char *key, const char *value,
                 const char *name, int lineno, struct vb_error *err)
{
  if (strncmp (key, "ddb.", 4) == 0)
    return kv_set (&d->ddb, &d->n_ddb, key, value) < 0
      ? vb_errno (err, ENOMEM, "cannot parse '%s'", name) : 0;
  if (strcmp (key, "version") == 0) {
    char *end;
    long v = strtol (value, &end, 10);
    if (*end || v < 1 || v > 3)
      return vb_err (err, ENOTSUP, "unsupported descriptor version '%s' in '%s'",
                     value, name);
    d->version = (int) v;
    return 0;
  }
  if (strcmp (key, "CID") == 0 || strcmp (key, "parentCID") == 0) {
    uint32_t *f = key[0] == 'C' ? &d->cid : &d->parent_cid;
    if (parse_cid (value, f) < 0)
      return vb_err (err, EINVAL, "bad %s '%s' on line %d of '%s'",
                     key, value, lineno, name);
    return 0;
  }
  char **str = NULL;
  if (strcmp (key, "createType") == 0)
    str = &d->create_type;
  else if (strcmp (key, "parentFileNameHint") == 0)
    str = &d->parent_hint;
  else if (strcmp (key, "changeTrackPath") == 0) {
    /* the tracker is written and removed: it must stay next to the disk */
    if (!extent_name_safe (value))
      return vb_err (err, EINVAL, "unsafe change tracking file name '%s' on "
                     "line %d of '%s' (empty, absolute or with '..')", value,
                     lineno, name);
    str = &d->change_track_path;
  }
  else if (strcmp (key, "encoding") == 0)
    str = &d->encoding;
  int r = str ? vmdk_desc_set_str (str, value)
    : kv_set (&d->other, &d->n_other, key, value);
  return r < 0 ? vb_errno (err, ENOMEM, "cannot parse '%s'", name) : 0;
}

/* Parse one descriptor line (already trimmed, non-empty, not a comment). */
static int
parse_line (struct vmdk_desc *d, char *line, const char *name, int lineno,
            struct vb_error *err)
{
  if (strncmp (line, "RW ", 3) == 0 || strncmp (line, "RDONLY ", 7) == 0
      || strncmp (line, "NOACCESS ", 9) == 0) {
    if (d->n_ext >= VMDK_DESC_MAX_EXTENTS)
      return vb_err (err, EINVAL, "too many extents in '%s' (at most %d)",
                     name, VMDK_DESC_MAX_EXTENTS);
    struct vmdk_desc_extent *ne = realloc (d->ext, (d->n_ext + 1) * sizeof *ne);
    if (!ne)
      return vb_errno (err, ENOMEM, "cannot parse '%s'", name);
    d->ext = ne;
    int r = parse_extent (line, name, lineno, &ne[d->n_ext], err);
    if (r < 0)
      return r;
    d->n_ext++;
    if (vmdk_desc_sectors (d) > VDISK_MAX_SIZE / VDISK_SECTOR)
      return vb_err (err, EFBIG, "disk in '%s' is larger than %llu bytes",
                     name, (unsigned long long) VDISK_MAX_SIZE);
    return 0;
  }
  char *eq = strchr (line, '=');
  if (!eq)
    return vb_err (err, EINVAL, "cannot parse line %d of '%s'", lineno, name);
  *eq = '\0';
  char *key = trim (line);
  char *value = unquote (trim (eq + 1));
  return parse_header_kv (d, key, value, name, lineno, err);
}

/* Parse descriptor text into d (see vmdk-desc.h for what is rejected). */
int
vmdk_desc_parse (const char *text, size_t len, const char *name,
                 struct vmdk_desc *d, struct vb_error *err)
{
  memset (d, 0, sizeof *d);
  d->cid = VMDK_CID_NONE;
  d->parent_cid = VMDK_CID_NONE;
  if (len > VMDK_DESC_MAX)
    return vb_err (err, EFBIG, "descriptor '%s' is too large (%zu bytes, at most %d)",
                   name, len, VMDK_DESC_MAX);
  const char *nul = memchr (text, '\0', len);
  if (nul)
    len = (size_t) (nul - text);
  char *buf = strndup (text, len);
  if (!buf)
    return vb_errno (err, ENOMEM, "cannot parse '%s'", name);
  int r = 0, lineno = 0;
  char *save = NULL;
  for (char *line = strtok_r (buf, "\n", &save); line;
       line = strtok_r (NULL, "\n", &save)) {
    lineno++;
    char *t = trim (line);
    if (*t == '\0' || *t == '#')
      continue;
    if ((r = parse_line (d, t, name, lineno, err)) < 0)
      break;
  }
  free (buf);
  if (r == 0 && d->version == 0)
    r = vb_err (err, EINVAL, "'%s' is not a VMDK descriptor (no version= line)", name);
  if (r == 0 && d->n_ext == 0)
    r = vb_err (err, EINVAL, "descriptor '%s' has no extents", name);
  if (r == 0 && !d->create_type)
    r = vb_err (err, EINVAL, "descriptor '%s' has no createType", name);
  if (r < 0)
    vmdk_desc_free (d);
  return r;
}

/* Growable string used by the formatter. */
struct sbuf { char *p; size_t n, cap; bool oom; };

/* Append printf-formatted text to a string buffer. */
static void __attribute__ ((format (printf, 2, 3)))
sb_printf (struct sbuf *s, const char *fmt, ...)
{
  if (s->oom)
    return;
  for (;;) {
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
    va_end (ap);
    if (n < 0) { s->oom = true; return; }
    if (s->p && s->n + (size_t) n < s->cap) {
      s->n += (size_t) n;
      return;
    }
    size_t nc = (s->cap ? s->cap * 2 : 1024) + (size_t) n;
    char *np = realloc (s->p, nc);
    if (!np) { s->oom = true; return; }
    s->p = np;
    s->cap = nc;
  }
}

/* Serialize a descriptor in VMware's layout. */
char *
vmdk_desc_format (const struct vmdk_desc *d)
{
  struct sbuf s = { 0 };
  sb_printf (&s, "# Disk DescriptorFile\nversion=%d\n", d->version ? d->version : 1);
  if (d->encoding)
    sb_printf (&s, "encoding=\"%s\"\n", d->encoding);
  sb_printf (&s, "CID=%08x\nparentCID=%08x\n", d->cid, d->parent_cid);
  for (size_t i = 0; i < d->n_other; i++)
    sb_printf (&s, "%s=\"%s\"\n", d->other[i].key, d->other[i].value);
  sb_printf (&s, "createType=\"%s\"\n", d->create_type ? d->create_type : "");
  if (d->parent_hint)
    sb_printf (&s, "parentFileNameHint=\"%s\"\n", d->parent_hint);
  sb_printf (&s, "\n# Extent description\n");
  for (size_t i = 0; i < d->n_ext; i++) {
    const struct vmdk_desc_extent *e = &d->ext[i];
    sb_printf (&s, "%s %" PRIu64 " %s", vmdk_access_name (e->access), e->sectors,
               vmdk_extent_kind_name (e->kind));
    if (e->kind != VMDK_EXT_ZERO)
      sb_printf (&s, " \"%s\"", e->file ? e->file : "");
    if (e->kind == VMDK_EXT_FLAT || e->kind == VMDK_EXT_VMFSRAW
        || (e->kind == VMDK_EXT_VMFS && e->offset))
      sb_printf (&s, " %" PRIu64, e->offset);
    sb_printf (&s, "\n");
  }
  if (d->change_track_path)
    sb_printf (&s, "\n# Change Tracking File\nchangeTrackPath=\"%s\"\n",
               d->change_track_path);
  sb_printf (&s, "\n# The Disk Data Base\n#DDB\n\n");
  for (size_t i = 0; i < d->n_ddb; i++)
    sb_printf (&s, "%s = \"%s\"\n", d->ddb[i].key, d->ddb[i].value);
  if (s.oom) {
    free (s.p);
    return NULL;
  }
  return s.p;
}

/* Fill a descriptor for a new disk of `sectors` sectors (no extents yet). */
int
vmdk_desc_init (struct vmdk_desc *d, const char *create_type, uint64_t sectors,
                const char *adapter)
{
  memset (d, 0, sizeof *d);
  d->version = 1;
  d->cid = vmdk_random_cid ();
  d->parent_cid = VMDK_CID_NONE;
  if (vmdk_desc_set_str (&d->create_type, create_type) < 0)
    return -ENOMEM;
  if (!adapter)
    adapter = "lsilogic";
  /* Geometry as VMware computes it: ide uses 16 heads x 63 sectors,
   * SCSI adapters 255 x 63; cylinders capped at 65535. */
  bool ide = strcmp (adapter, "ide") == 0;
  uint64_t heads = ide ? 16 : 255, spt = 63;
  uint64_t cyl = sectors / (heads * spt);
  if (cyl > 65535)
    cyl = 65535;
  char cbuf[32], uuid[64];
  uint8_t u[16];
  if (getrandom (u, sizeof u, 0) != (ssize_t) sizeof u)
    memset (u, 0x5a, sizeof u);
  snprintf (uuid, sizeof uuid,
            "60 00 C2 %02x %02x %02x %02x %02x-%02x %02x %02x %02x %02x %02x %02x %02x",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
            u[11], u[12]);
  int r = 0;
  r |= vmdk_desc_ddb_set (d, "ddb.virtualHWVersion", "4");
  snprintf (cbuf, sizeof cbuf, "%llu", (unsigned long long) cyl);
  r |= vmdk_desc_ddb_set (d, "ddb.geometry.cylinders", cbuf);
  snprintf (cbuf, sizeof cbuf, "%llu", (unsigned long long) heads);
  r |= vmdk_desc_ddb_set (d, "ddb.geometry.heads", cbuf);
  r |= vmdk_desc_ddb_set (d, "ddb.geometry.sectors", "63");
  r |= vmdk_desc_ddb_set (d, "ddb.adapterType", adapter);
  r |= vmdk_desc_ddb_set (d, "ddb.uuid", uuid);
  return r ? -ENOMEM : 0;
}
