/* VMware snapshot dictionary (.vmsd): parser, validator, writer and the
 * snapshot tree model.  See vmsd.h and docs/vmx-vmsd.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connectors/vmsd.h"
#include "connectors/vmx-config.h"
#include "vdisk/vdisk-int.h"

/* ---- small helpers ---- */

/* Free an array of key/value pairs. */
static void
kv_free (struct vmsd_kv *kv, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free (kv[i].key);
    free (kv[i].value);
  }
  free (kv);
}

/* Append a copy of key/value to *arr (grown one at a time: the total
 * count is capped by the caller through *budget). */
static int
kv_add (struct vmsd_kv **arr, size_t *n, const char *key, const char *value)
{
  struct vmsd_kv *a = realloc (*arr, (*n + 1) * sizeof *a);
  if (!a)
    return -ENOMEM;
  *arr = a;
  a[*n].key = strdup (key);
  a[*n].value = strdup (value);
  if (!a[*n].key || !a[*n].value) {
    free (a[*n].key);
    free (a[*n].value);
    return -ENOMEM;
  }
  (*n)++;
  return 0;
}

/* Free what a disk owns. */
static void
disk_clear (struct vmsd_disk *d)
{
  free (d->file_name);
  free (d->node);
  kv_free (d->extra, d->n_extra);
  memset (d, 0, sizeof *d);
}

/* Free what a snapshot owns and zero it. */
static void
snap_clear (struct vmsd_snapshot *s)
{
  free (s->filename);
  free (s->display_name);
  free (s->description);
  for (size_t i = 0; i < s->n_disks; i++)
    disk_clear (&s->disks[i]);
  free (s->disks);
  kv_free (s->extra, s->n_extra);
  memset (s, 0, sizeof *s);
}

/* Replace a string field with a copy of value (NULL clears). */
int
vmsd_set_str (char **field, const char *value)
{
  char *v = NULL;
  if (value && !(v = strdup (value)))
    return -ENOMEM;
  free (*field);
  *field = v;
  return 0;
}

/* An empty model: no snapshots, lastUID 0, encoding UTF-8. */
int
vmsd_init (struct vmsd *m)
{
  memset (m, 0, sizeof *m);
  m->encoding = strdup ("UTF-8");
  return m->encoding ? 0 : -ENOMEM;
}

/* Free everything the model owns and zero it. */
void
vmsd_free (struct vmsd *m)
{
  free (m->encoding);
  for (size_t i = 0; i < m->n; i++)
    snap_clear (&m->snap[i]);
  kv_free (m->extra, m->n_extra);
  memset (m, 0, sizeof *m);
}

/* The .vmbackConsistency spelling of c, NULL for NONE. */
const char *
vmsd_consistency_name (enum vmsd_consistency c)
{
  switch (c) {
  case VMSD_CONSISTENCY_CRASH: return "crash";
  case VMSD_CONSISTENCY_FILESYSTEM: return "filesystem";
  case VMSD_CONSISTENCY_APPLICATION: return "application";
  default: return NULL;
  }
}

/* Parse a .vmbackConsistency value (any case). */
bool
vmsd_parse_consistency (const char *s, enum vmsd_consistency *out)
{
  for (int c = VMSD_CONSISTENCY_CRASH; c <= VMSD_CONSISTENCY_APPLICATION; c++)
    if (strcasecmp (s, vmsd_consistency_name ((enum vmsd_consistency) c)) == 0) {
      *out = (enum vmsd_consistency) c;
      return true;
    }
  return false;
}

/* VMware keeps the creation time as microseconds since 1970 split in two
 * 32-bit halves; the low half is printed as a signed int32. */
int64_t
vmsd_time_from_parts (int32_t high, int32_t low)
{
  return (int64_t) ((uint64_t) (int64_t) high << 32 | (uint32_t) low);
}

/* Split microseconds since the epoch into VMware's high/low halves. */
void
vmsd_time_to_parts (int64_t us, int32_t *high, int32_t *low)
{
  uint64_t u = (uint64_t) us;
  *high = (int32_t) (uint32_t) (u >> 32);
  *low = (int32_t) (uint32_t) u;
}

/* Parse a decimal with optional '-' in [min, max]. */
static bool
parse_i64 (const char *s, int64_t min, int64_t max, int64_t *out)
{
  bool neg = *s == '-';
  if (neg)
    s++;
  if (!*s)
    return false;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > 1000000000000ull)   /* > 2^32 is out */
      return false;
    v = v * 10 + (uint64_t) (*s - '0');
  }
  int64_t r = neg ? -(int64_t) v : (int64_t) v;
  if (r < min || r > max)
    return false;
  *out = r;
  return true;
}

/* Parse the decimal index right after a prefix ("snapshot", "disk",
 * "snapshot.mru"): 1..4 digits then '.'; *rest points after the dot. */
static bool
parse_index (const char *s, unsigned *idx, const char **rest)
{
  unsigned v = 0;
  size_t n = 0;
  while (s[n] >= '0' && s[n] <= '9') {
    if (n == 4)
      return false;
    v = v * 10 + (unsigned) (s[n] - '0');
    n++;
  }
  if (n == 0 || s[n] != '.' || s[n + 1] == '\0')
    return false;
  *idx = v;
  *rest = s + n + 1;
  return true;
}

/* ---- lookups ---- */

/* The snapshot with uid, NULL if none. */
struct vmsd_snapshot *
vmsd_find (const struct vmsd *m, uint32_t uid)
{
  for (size_t i = 0; i < m->n; i++)
    if (m->snap[i].uid == uid)
      return (struct vmsd_snapshot *) &m->snap[i];
  return NULL;
}

/* The snapshot with this display name and the lowest uid, or NULL. */
struct vmsd_snapshot *
vmsd_find_by_name (const struct vmsd *m, const char *name)
{
  for (size_t i = 0; i < m->n; i++)   /* sorted by uid */
    if (m->snap[i].display_name && strcmp (m->snap[i].display_name, name) == 0)
      return (struct vmsd_snapshot *) &m->snap[i];
  return NULL;
}

/* Children of uid (0 = roots) in ascending uid order. */
size_t
vmsd_children (const struct vmsd *m, uint32_t uid,
               uint32_t out[VMSD_MAX_SNAPSHOTS])
{
  size_t k = 0;
  for (size_t i = 0; i < m->n && k < VMSD_MAX_SNAPSHOTS; i++)
    if (m->snap[i].parent == uid && m->snap[i].uid != uid)
      out[k++] = m->snap[i].uid;
  return k;
}

/* Walk from current to the root (at most n steps, so a loop in an
 * unvalidated model cannot hang), then reverse. */
size_t
vmsd_current_path (const struct vmsd *m, uint32_t out[VMSD_MAX_SNAPSHOTS])
{
  size_t k = 0;
  uint32_t u = m->current;
  while (u && k < m->n && k < VMSD_MAX_SNAPSHOTS) {
    const struct vmsd_snapshot *s = vmsd_find (m, u);
    if (!s)
      break;
    out[k++] = u;
    u = s->parent;
  }
  for (size_t i = 0; i < k / 2; i++) {
    uint32_t t = out[i];
    out[i] = out[k - 1 - i];
    out[k - 1 - i] = t;
  }
  return k;
}

/* True when uid is current or an ancestor of current. */
bool
vmsd_on_current_path (const struct vmsd *m, uint32_t uid)
{
  uint32_t path[VMSD_MAX_SNAPSHOTS];
  size_t n = vmsd_current_path (m, path);
  for (size_t i = 0; i < n; i++)
    if (path[i] == uid)
      return true;
  return false;
}

/* ---- validation ---- */

/* Check the model's invariants: count, uid range and uniqueness,
 * lastUID, parents exist, no loops, current exists, disks complete. */
int
vmsd_validate (const struct vmsd *m, const char *name,
               struct vb_error *err)
{
  if (m->n > VMSD_MAX_SNAPSHOTS)
    return vb_err (err, E2BIG, "invalid snapshot file '%s': %zu snapshots, "
                   "VMware allows at most %d", name, m->n, VMSD_MAX_SNAPSHOTS);
  for (size_t i = 0; i < m->n; i++) {
    const struct vmsd_snapshot *s = &m->snap[i];
    if (s->uid == 0 || s->uid > VMSD_MAX_UID)
      return vb_err (err, EINVAL, "invalid snapshot file '%s': snapshot uid "
                     "%u is out of range", name, s->uid);
    for (size_t j = 0; j < i; j++)
      if (m->snap[j].uid == s->uid)
        return vb_err (err, EINVAL, "invalid snapshot file '%s': duplicate "
                       "snapshot uid %u", name, s->uid);
    if (s->uid > m->last_uid)
      return vb_err (err, EINVAL, "invalid snapshot file '%s': "
                     "snapshot.lastUID %u is lower than snapshot uid %u",
                     name, m->last_uid, s->uid);
    if (s->parent == s->uid)
      return vb_err (err, EINVAL, "invalid snapshot file '%s': loop in the "
                     "snapshot tree (uid %u is its own parent)", name, s->uid);
    if (s->parent && !vmsd_find (m, s->parent))
      return vb_err (err, EINVAL, "invalid snapshot file '%s': snapshot uid "
                     "%u has parent uid %u, which does not exist", name,
                     s->uid, s->parent);
    if (s->n_disks > VMSD_MAX_DISKS)
      return vb_err (err, E2BIG, "invalid snapshot file '%s': snapshot uid "
                     "%u has %zu disks (at most %d)", name, s->uid,
                     s->n_disks, VMSD_MAX_DISKS);
    for (size_t d = 0; d < s->n_disks; d++)
      if (!s->disks[d].file_name || !s->disks[d].node)
        return vb_err (err, EINVAL, "invalid snapshot file '%s': snapshot uid "
                       "%u disk%zu has no %s", name, s->uid, d,
                       s->disks[d].file_name ? "node" : "fileName");
  }
  /* loops: from every snapshot the root must be reached in < n steps */
  for (size_t i = 0; i < m->n; i++) {
    uint32_t u = m->snap[i].parent;
    size_t steps = 0;
    while (u && steps <= m->n) {
      u = vmsd_find (m, u)->parent;   /* parents exist: checked above */
      steps++;
    }
    if (u)
      return vb_err (err, EINVAL, "invalid snapshot file '%s': loop in the "
                     "snapshot tree through uid %u", name, m->snap[i].uid);
  }
  if (m->current && !vmsd_find (m, m->current))
    return vb_err (err, EINVAL, "invalid snapshot file '%s': snapshot.current "
                   "%u names no snapshot", name, m->current);
  return 0;
}

/* ---- parsing ---- */

/* A snapshot being read: its file index N and what was seen so far. */
struct pslot {
  unsigned idx;
  size_t line;                  /* first line mentioning it */
  bool has_uid, has_high, has_low, has_num_disks;
  int32_t high, low;
  uint64_t num_disks;
  struct vmsd_snapshot s;
};

/* One snapshot.mruK.uid entry as read. */
struct mru_ent {
  unsigned idx;
  uint32_t uid;
};

struct pstate {
  const char *name;
  struct vmsd *m;
  struct pslot slot[VMSD_MAX_SNAPSHOTS];
  size_t n_slot;
  struct mru_ent mru[2 * VMSD_MAX_SNAPSHOTS];
  size_t n_mru;
  bool has_last, has_current, has_num;
  uint64_t num;
  size_t n_extra;               /* all unknown keys, capped */
  struct vb_error *err;
};

/* Report a bad value of key at line. */
static int
bad_value (struct pstate *p, size_t line, const char *key, const char *what)
{
  return vb_err (p->err, EINVAL, "cannot parse '%s' line %zu: invalid %s for "
                 "'%.80s'", p->name, line, what, key);
}

/* Count an unknown key against VMSD_MAX_EXTRA. */
static int
extra_budget (struct pstate *p, size_t line)
{
  if (++p->n_extra > VMSD_MAX_EXTRA)
    return vb_err (p->err, E2BIG, "cannot parse '%s' line %zu: more than %d "
                   "unknown keys", p->name, line, VMSD_MAX_EXTRA);
  return 0;
}

/* The slot for file index idx, created on first use. */
static struct pslot *
get_slot (struct pstate *p, unsigned idx, size_t line, int *r)
{
  for (size_t i = 0; i < p->n_slot; i++)
    if (p->slot[i].idx == idx)
      return &p->slot[i];
  if (p->n_slot == VMSD_MAX_SNAPSHOTS) {
    *r = vb_err (p->err, E2BIG, "invalid snapshot file '%s': more than %d "
                 "snapshots (line %zu), VMware allows at most %d", p->name,
                 VMSD_MAX_SNAPSHOTS, line, VMSD_MAX_SNAPSHOTS);
    return NULL;
  }
  struct pslot *s = &p->slot[p->n_slot++];
  memset (s, 0, sizeof *s);
  s->idx = idx;
  s->line = line;
  return s;
}

/* The disk slot k of a snapshot, growing the array to k + 1 entries
 * (k < VMSD_MAX_DISKS: at most 512 x 32 B per snapshot). */
static struct vmsd_disk *
get_disk (struct pstate *p, struct vmsd_snapshot *s, unsigned k, size_t line,
          int *r)
{
  if (k >= VMSD_MAX_DISKS) {
    *r = vb_err (p->err, E2BIG, "cannot parse '%s' line %zu: disk index %u "
                 "is over the limit of %d disks", p->name, line, k,
                 VMSD_MAX_DISKS);
    return NULL;
  }
  if (k >= s->n_disks) {
    struct vmsd_disk *d = realloc (s->disks, (k + 1) * sizeof *d);
    if (!d) {
      *r = vb_errno (p->err, ENOMEM, "cannot parse '%s'", p->name);
      return NULL;
    }
    memset (d + s->n_disks, 0, (k + 1 - s->n_disks) * sizeof *d);
    s->disks = d;
    s->n_disks = k + 1;
  }
  return &s->disks[k];
}

/* Handle one "snapshotN.<rest>" key. */
static int
parse_snap_key (struct pstate *p, size_t line, const char *key,
                unsigned idx, const char *rest, const char *v)
{
  int r = 0;
  int64_t n;
  struct pslot *ps = get_slot (p, idx, line, &r);
  if (!ps)
    return r;
  struct vmsd_snapshot *s = &ps->s;
  unsigned k;
  const char *dattr;
  if (strcasecmp (rest, "uid") == 0) {
    if (!parse_i64 (v, 1, VMSD_MAX_UID, &n))
      return bad_value (p, line, key, "uid");
    s->uid = (uint32_t) n;
    ps->has_uid = true;
  } else if (strcasecmp (rest, "parent") == 0) {
    if (!parse_i64 (v, 0, VMSD_MAX_UID, &n))
      return bad_value (p, line, key, "parent uid");
    s->parent = (uint32_t) n;
  } else if (strcasecmp (rest, "filename") == 0) {
    r = vmsd_set_str (&s->filename, v);
  } else if (strcasecmp (rest, "displayName") == 0) {
    r = vmsd_set_str (&s->display_name, v);
  } else if (strcasecmp (rest, "description") == 0) {
    r = vmsd_set_str (&s->description, v);
  } else if (strcasecmp (rest, "createTimeHigh") == 0) {
    if (!parse_i64 (v, INT32_MIN, INT32_MAX, &n))
      return bad_value (p, line, key, "number");
    ps->high = (int32_t) n;
    ps->has_high = true;
  } else if (strcasecmp (rest, "createTimeLow") == 0) {
    /* VMware writes it signed; accept the unsigned spelling too */
    if (!parse_i64 (v, INT32_MIN, UINT32_MAX, &n))
      return bad_value (p, line, key, "number");
    ps->low = (int32_t) (uint32_t) (n & 0xffffffff);
    ps->has_low = true;
  } else if (strcasecmp (rest, "numDisks") == 0) {
    if (!parse_i64 (v, 0, VMSD_MAX_DISKS, &n))
      return bad_value (p, line, key, "disk count");
    ps->num_disks = (uint64_t) n;
    ps->has_num_disks = true;
  } else if (strcasecmp (rest, "type") == 0) {
    if (!parse_i64 (v, INT32_MIN, INT32_MAX, &n))
      return bad_value (p, line, key, "number");
    s->type = (int32_t) n;
    s->has_type = true;
  } else if (strcasecmp (rest, "quiesced") == 0) {
    if (!vmx_parse_bool (v, &s->quiesced))
      return bad_value (p, line, key, "boolean");
    s->has_quiesced = true;
  } else if (strcasecmp (rest, "vmbackConsistency") == 0) {
    if (!vmsd_parse_consistency (v, &s->consistency))
      return bad_value (p, line, key, "consistency (crash, filesystem or "
                        "application)");
  } else if (strncasecmp (rest, "disk", 4) == 0
             && parse_index (rest + 4, &k, &dattr)) {
    struct vmsd_disk *d = get_disk (p, s, k, line, &r);
    if (!d)
      return r;
    if (strcasecmp (dattr, "fileName") == 0)
      r = vmsd_set_str (&d->file_name, v);
    else if (strcasecmp (dattr, "node") == 0)
      r = vmsd_set_str (&d->node, v);
    else if ((r = extra_budget (p, line)) == 0)
      r = kv_add (&d->extra, &d->n_extra, dattr, v);
    else
      return r;
  } else {
    if ((r = extra_budget (p, line)) < 0)
      return r;
    r = kv_add (&s->extra, &s->n_extra, rest, v);
  }
  if (r < 0)
    return vb_errno (p->err, -r, "cannot parse '%s'", p->name);
  return 0;
}

/* Handle one key of the file. */
static int
parse_key (struct pstate *p, size_t line, const char *key, const char *v)
{
  int64_t n;
  unsigned idx;
  const char *rest;
  struct vmsd *m = p->m;
  if (strcasecmp (key, ".encoding") == 0) {
    if (vmsd_set_str (&m->encoding, v) < 0)
      return vb_errno (p->err, ENOMEM, "cannot parse '%s'", p->name);
  } else if (strcasecmp (key, "snapshot.lastUID") == 0) {
    if (!parse_i64 (v, 0, VMSD_MAX_UID, &n))
      return bad_value (p, line, key, "uid");
    m->last_uid = (uint32_t) n;
    p->has_last = true;
  } else if (strcasecmp (key, "snapshot.current") == 0) {
    if (!parse_i64 (v, 0, VMSD_MAX_UID, &n))
      return bad_value (p, line, key, "uid");
    m->current = (uint32_t) n;
    p->has_current = true;
  } else if (strcasecmp (key, "snapshot.numSnapshots") == 0) {
    if (!parse_i64 (v, 0, VMSD_MAX_UID, &n))
      return bad_value (p, line, key, "snapshot count");
    p->num = (uint64_t) n;
    p->has_num = true;
  } else if (strncasecmp (key, "snapshot.mru", 12) == 0
             && parse_index (key + 12, &idx, &rest)
             && strcasecmp (rest, "uid") == 0) {
    if (!parse_i64 (v, 1, VMSD_MAX_UID, &n))
      return bad_value (p, line, key, "uid");
    size_t i;
    for (i = 0; i < p->n_mru; i++)
      if (p->mru[i].idx == idx)
        break;
    if (i == p->n_mru) {
      if (p->n_mru == 2 * VMSD_MAX_SNAPSHOTS)
        return vb_err (p->err, E2BIG, "cannot parse '%s' line %zu: more than "
                       "%d snapshot.mru entries", p->name, line,
                       2 * VMSD_MAX_SNAPSHOTS);
      p->n_mru++;
    }
    p->mru[i].idx = idx;
    p->mru[i].uid = (uint32_t) n;
  } else if (strncasecmp (key, "snapshot", 8) == 0 && key[8] >= '0'
             && key[8] <= '9') {
    if (!parse_index (key + 8, &idx, &rest))
      return vb_err (p->err, EINVAL, "cannot parse '%s' line %zu: invalid "
                     "snapshot key '%.80s'", p->name, line, key);
    return parse_snap_key (p, line, key, idx, rest, v);
  } else {
    int r = extra_budget (p, line);
    if (r == 0 && kv_add (&m->extra, &m->n_extra, key, v) < 0)
      r = vb_errno (p->err, ENOMEM, "cannot parse '%s'", p->name);
    return r;
  }
  return 0;
}

/* Order snapshots by uid. */
static int
cmp_uid (const void *a, const void *b)
{
  const struct vmsd_snapshot *x = a, *y = b;
  return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Order MRU entries by index. */
static int
cmp_mru (const void *a, const void *b)
{
  const struct mru_ent *x = a, *y = b;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Turn the parse slots into model snapshots, checking what only the file
 * form can get wrong (missing uid, numDisks, half a creation time). */
static int
finish_slots (struct pstate *p)
{
  struct vmsd *m = p->m;
  for (size_t i = 0; i < p->n_slot; i++) {
    struct pslot *ps = &p->slot[i];
    struct vmsd_snapshot *s = &ps->s;
    if (!ps->has_uid)
      return vb_err (p->err, EINVAL, "invalid snapshot file '%s': snapshot%u "
                     "(line %zu) has no uid", p->name, ps->idx, ps->line);
    if (ps->has_high != ps->has_low)
      return vb_err (p->err, EINVAL, "invalid snapshot file '%s': snapshot%u "
                     "has only half of createTimeHigh/createTimeLow", p->name,
                     ps->idx);
    if (ps->has_high) {
      s->has_create_time = true;
      s->create_time_us = vmsd_time_from_parts (ps->high, ps->low);
    }
    if (!ps->has_num_disks && s->n_disks)
      return vb_err (p->err, EINVAL, "invalid snapshot file '%s': snapshot%u "
                     "lists disks but has no numDisks", p->name, ps->idx);
    if (ps->has_num_disks && s->n_disks > ps->num_disks)
      return vb_err (p->err, EINVAL, "invalid snapshot file '%s': snapshot%u "
                     "has disk%zu but numDisks is %llu", p->name, ps->idx,
                     s->n_disks - 1, (unsigned long long) ps->num_disks);
    if (ps->has_num_disks && s->n_disks < ps->num_disks)
      return vb_err (p->err, EINVAL, "invalid snapshot file '%s': snapshot%u "
                     "has numDisks %llu but no disk%zu", p->name, ps->idx,
                     (unsigned long long) ps->num_disks, s->n_disks);
  }
  /* move the snapshots into the model (slots no longer own them) */
  for (size_t i = 0; i < p->n_slot; i++) {
    m->snap[m->n++] = p->slot[i].s;
    memset (&p->slot[i].s, 0, sizeof p->slot[i].s);
  }
  if (m->n > 1)
    qsort (m->snap, m->n, sizeof m->snap[0], cmp_uid);
  for (size_t i = 1; i < m->n; i++)
    if (m->snap[i].uid == m->snap[i - 1].uid)
      return vb_err (p->err, EINVAL, "invalid snapshot file '%s': duplicate "
                     "snapshot uid %u", p->name, m->snap[i].uid);
  if (p->has_num && p->num > VMSD_MAX_SNAPSHOTS)
    return vb_err (p->err, E2BIG, "invalid snapshot file '%s': "
                   "snapshot.numSnapshots is %llu, VMware allows at most %d",
                   p->name, (unsigned long long) p->num, VMSD_MAX_SNAPSHOTS);
  if (!p->has_num && m->n)
    return vb_err (p->err, EINVAL, "invalid snapshot file '%s': "
                   "snapshot.numSnapshots is missing", p->name);
  if (p->has_num && p->num != m->n)
    return vb_err (p->err, EINVAL, "invalid snapshot file '%s': "
                   "snapshot.numSnapshots is %llu but %zu snapshots are listed",
                   p->name, (unsigned long long) p->num, m->n);
  if (!p->has_last && m->n)
    m->last_uid = m->snap[m->n - 1].uid;   /* VMware always writes it */
  /* MRU: by index, unknown and repeated uids dropped */
  if (p->n_mru > 1)
    qsort (p->mru, p->n_mru, sizeof p->mru[0], cmp_mru);
  for (size_t i = 0; i < p->n_mru; i++) {
    uint32_t u = p->mru[i].uid;
    bool dup = false;
    for (size_t j = 0; j < m->n_mru; j++)
      dup |= m->mru[j] == u;
    if (!dup && vmsd_find (m, u) && m->n_mru < VMSD_MAX_SNAPSHOTS)
      m->mru[m->n_mru++] = u;
  }
  return 0;
}

/* Parse with the dictionary layer, build the model key by key, then
 * check the file-level and model invariants. */
int
vmsd_parse (const char *text, size_t len, const char *name, struct vmsd *m,
            struct vb_error *err)
{
  memset (m, 0, sizeof *m);
  if (!name)
    name = "(vmsd)";
  struct vmx_config *c;
  int r = vmx_parse (text, len, name, &c, err);
  if (r < 0)
    return r;
  struct pstate *p = calloc (1, sizeof *p);
  if (!p) {
    vmx_free (c);
    return vb_errno (err, ENOMEM, "cannot parse '%s'", name);
  }
  p->name = name;
  p->m = m;
  p->err = err;
  size_t cur = 0;
  const char *key, *value;
  while (vmx_entry_next (c, &cur, &key, &value))
    if ((r = parse_key (p, cur, key, value)) < 0)   /* cur = line number */
      goto out;
  if ((r = finish_slots (p)) < 0)
    goto out;
  r = vmsd_validate (m, name, err);
out:
  for (size_t i = 0; i < p->n_slot; i++)
    snap_clear (&p->slot[i].s);
  free (p);
  vmx_free (c);
  if (r < 0)
    vmsd_free (m);
  return r;
}

/* Read a whole .vmsd (bounded by VMX_MAX_FILE) and parse it. */
int
vmsd_load (const char *path, struct vmsd *m, struct vb_error *err)
{
  char *buf;
  size_t len;
  memset (m, 0, sizeof *m);
  int r = vio_read_file (path, VMX_MAX_FILE, &buf, &len, err);
  if (r < 0)
    return r;
  r = vmsd_parse (buf, len, path, m, err);
  free (buf);
  return r;
}

/* ---- writing ---- */

struct sbuf {
  char *s;
  size_t len, cap;
  bool oom;
};

/* Append `prefix` + `key` + " = \"" + encoded value + "\"\n". */
static void
put_kv (struct sbuf *b, const char *prefix, const char *key, const char *v)
{
  if (b->oom)
    return;
  char *enc = vmx_encode_value (v);
  if (!enc) {
    b->oom = true;
    return;
  }
  size_t need = strlen (prefix) + strlen (key) + strlen (enc) + 8;
  if (b->len + need > b->cap) {
    size_t nc = (b->cap ? b->cap * 2 : 4096) + need;
    char *ns = realloc (b->s, nc);
    if (!ns) {
      free (enc);
      b->oom = true;
      return;
    }
    b->s = ns;
    b->cap = nc;
  }
  b->len += (size_t) snprintf (b->s + b->len, b->cap - b->len,
                               "%s%s = \"%s\"\n", prefix, key, enc);
  free (enc);
}

/* put_kv with a decimal value. */
static void
put_num (struct sbuf *b, const char *prefix, const char *key, long long v)
{
  char n[24];
  snprintf (n, sizeof n, "%lld", v);
  put_kv (b, prefix, key, n);
}

/* Write one snapshot as snapshot<idx>.*. */
static void
put_snap (struct sbuf *b, const struct vmsd_snapshot *s, size_t idx)
{
  char pre[32], dpre[64];
  snprintf (pre, sizeof pre, "snapshot%zu.", idx);
  put_num (b, pre, "uid", s->uid);
  if (s->filename)
    put_kv (b, pre, "filename", s->filename);
  if (s->parent)
    put_num (b, pre, "parent", s->parent);
  if (s->display_name)
    put_kv (b, pre, "displayName", s->display_name);
  if (s->description)
    put_kv (b, pre, "description", s->description);
  if (s->has_type)
    put_num (b, pre, "type", s->type);
  if (s->has_create_time) {
    int32_t hi, lo;
    vmsd_time_to_parts (s->create_time_us, &hi, &lo);
    put_num (b, pre, "createTimeHigh", hi);
    put_num (b, pre, "createTimeLow", lo);
  }
  put_num (b, pre, "numDisks", (long long) s->n_disks);
  for (size_t d = 0; d < s->n_disks; d++) {
    const struct vmsd_disk *k = &s->disks[d];
    snprintf (dpre, sizeof dpre, "%sdisk%zu.", pre, d);
    if (k->file_name)
      put_kv (b, dpre, "fileName", k->file_name);
    if (k->node)
      put_kv (b, dpre, "node", k->node);
    for (size_t i = 0; i < k->n_extra; i++)
      put_kv (b, dpre, k->extra[i].key, k->extra[i].value);
  }
  if (s->has_quiesced)
    put_kv (b, pre, "quiesced", s->quiesced ? "TRUE" : "FALSE");
  if (s->consistency != VMSD_CONSISTENCY_NONE)
    put_kv (b, pre, "vmbackConsistency", vmsd_consistency_name (s->consistency));
  for (size_t i = 0; i < s->n_extra; i++)
    put_kv (b, pre, s->extra[i].key, s->extra[i].value);
}

/* Depth-first tree order from parent uid `from`; `done` marks snapshots
 * written (so even a malformed model terminates). */
static void
put_tree (struct sbuf *b, const struct vmsd *m, uint32_t from, bool *done,
          size_t *idx, int depth)
{
  if (depth > VMSD_MAX_SNAPSHOTS)
    return;
  for (size_t i = 0; i < m->n; i++) {   /* ascending uid */
    if (done[i] || m->snap[i].parent != from)
      continue;
    done[i] = true;
    put_snap (b, &m->snap[i], (*idx)++);
    put_tree (b, m, m->snap[i].uid, done, idx, depth + 1);
  }
}

/* Rebuild the file text from the model (see vmsd.h for the order). */
char *
vmsd_format (const struct vmsd *m, size_t *len)
{
  struct sbuf b = { 0 };
  bool done[VMSD_MAX_SNAPSHOTS] = { false };
  size_t idx = 0;
  if (m->encoding)
    put_kv (&b, "", ".encoding", m->encoding);
  put_num (&b, "", "snapshot.lastUID", m->last_uid);
  if (m->current)
    put_num (&b, "", "snapshot.current", m->current);
  put_num (&b, "", "snapshot.numSnapshots", (long long) m->n);
  for (size_t i = 0; i < m->n_extra; i++)
    put_kv (&b, "", m->extra[i].key, m->extra[i].value);
  if (m->n <= VMSD_MAX_SNAPSHOTS)
    put_tree (&b, m, 0, done, &idx, 0);
  for (size_t i = 0; i < m->n_mru; i++) {
    char k[40];
    snprintf (k, sizeof k, "snapshot.mru%zu.uid", i);
    put_num (&b, "", k, m->mru[i]);
  }
  if (b.oom || !b.s) {
    free (b.s);
    return NULL;
  }
  if (len)
    *len = b.len;
  return b.s;
}

/* Validate, format, check the read bounds, write atomically. */
int
vmsd_save (const struct vmsd *m, const char *path, struct vb_error *err)
{
  int r = vmsd_validate (m, path, err);
  if (r < 0)
    return r;
  size_t len, lines = 0;
  char *s = vmsd_format (m, &len);
  if (!s)
    return vb_errno (err, ENOMEM, "cannot write '%s'", path);
  size_t start = 0, longest = 0;   /* escapes can triple a value */
  for (size_t i = 0; i < len; i++)
    if (s[i] == '\n') {
      lines++;
      if (i - start > longest)
        longest = i - start;
      start = i + 1;
    }
  if (len > VMX_MAX_FILE || lines > VMX_MAX_LINES || longest > VMX_MAX_LINE)
    r = vb_err (err, EFBIG, "cannot write '%s': %zu bytes in %zu lines "
                "(longest %zu) is over the limit (%d bytes, %d lines of %d)",
                path, len, lines, longest, VMX_MAX_FILE, VMX_MAX_LINES,
                VMX_MAX_LINE);
  else
    r = vio_write_file_atomic (path, s, len, err);
  free (s);
  return r;
}

/* ---- model operations ---- */

/* Put uid at the head of the MRU list (removing an older entry). */
static void
mru_touch (struct vmsd *m, uint32_t uid)
{
  size_t i;
  for (i = 0; i < m->n_mru; i++)
    if (m->mru[i] == uid)
      break;
  if (i == m->n_mru) {
    if (m->n_mru < VMSD_MAX_SNAPSHOTS)
      m->n_mru++;
    i = m->n_mru - 1;
  }
  memmove (&m->mru[1], &m->mru[0], i * sizeof m->mru[0]);
  m->mru[0] = uid;
}

/* Drop uid from the MRU list. */
static void
mru_drop (struct vmsd *m, uint32_t uid)
{
  size_t j = 0;
  for (size_t i = 0; i < m->n_mru; i++)
    if (m->mru[i] != uid)
      m->mru[j++] = m->mru[i];
  m->n_mru = j;
}

/* New snapshot under the current one; it becomes current. */
int
vmsd_add_child (struct vmsd *m, const char *display_name,
                int64_t create_time_us, struct vmsd_snapshot **out,
                struct vb_error *err)
{
  if (out)
    *out = NULL;
  if (m->n >= VMSD_MAX_SNAPSHOTS)
    return vb_err (err, E2BIG, "cannot create snapshot: the VM already has %zu "
                   "snapshots, VMware allows at most %d", m->n,
                   VMSD_MAX_SNAPSHOTS);
  if (m->last_uid >= VMSD_MAX_UID)
    return vb_err (err, EOVERFLOW, "cannot create snapshot: snapshot.lastUID "
                   "is at its maximum %u", VMSD_MAX_UID);
  for (size_t i = 0; i < m->n; i++)
    if (m->snap[i].uid > m->last_uid)   /* would break uid order/uniqueness */
      return vb_err (err, EINVAL, "cannot create snapshot: snapshot.lastUID "
                     "%u is lower than uid %u", m->last_uid, m->snap[i].uid);
  struct vmsd_snapshot *s = &m->snap[m->n];
  memset (s, 0, sizeof *s);
  if (display_name && !(s->display_name = strdup (display_name)))
    return vb_errno (err, ENOMEM, "cannot create snapshot");
  s->uid = ++m->last_uid;   /* larger than every uid: array stays sorted */
  s->parent = m->current;
  s->has_create_time = true;
  s->create_time_us = create_time_us;
  m->n++;
  m->current = s->uid;
  mru_touch (m, s->uid);
  if (out)
    *out = s;
  return 0;
}

/* Drop a snapshot; children move to its parent, current too. */
int
vmsd_remove (struct vmsd *m, uint32_t uid, struct vb_error *err)
{
  struct vmsd_snapshot *s = vmsd_find (m, uid);
  if (!s)
    return vb_err (err, ENOENT, "cannot remove snapshot uid %u: no such "
                   "snapshot", uid);
  uint32_t parent = s->parent;
  for (size_t i = 0; i < m->n; i++)
    if (m->snap[i].parent == uid)
      m->snap[i].parent = parent;
  if (m->current == uid)
    m->current = parent;
  mru_drop (m, uid);
  size_t at = (size_t) (s - m->snap);
  snap_clear (s);
  memmove (&m->snap[at], &m->snap[at + 1], (m->n - at - 1) * sizeof *s);
  m->n--;
  memset (&m->snap[m->n], 0, sizeof *s);
  return 0;
}

/* Make uid (0 = base disks) current, e.g. after a revert. */
int
vmsd_set_current (struct vmsd *m, uint32_t uid, struct vb_error *err)
{
  if (uid && !vmsd_find (m, uid))
    return vb_err (err, ENOENT, "cannot revert to snapshot uid %u: no such "
                   "snapshot", uid);
  m->current = uid;
  if (uid)
    mru_touch (m, uid);
  return 0;
}

/* Append a disk (file as of this snapshot, device node). */
int
vmsd_add_disk (struct vmsd_snapshot *s, const char *file_name,
               const char *node, struct vb_error *err)
{
  if (!file_name || !node || !*file_name || !*node)
    return vb_err (err, EINVAL, "cannot add disk to snapshot uid %u: file "
                   "name and node are required", s->uid);
  if (s->n_disks >= VMSD_MAX_DISKS)
    return vb_err (err, E2BIG, "cannot add disk to snapshot uid %u: at most "
                   "%d disks", s->uid, VMSD_MAX_DISKS);
  struct vmsd_disk *d = realloc (s->disks, (s->n_disks + 1) * sizeof *d);
  if (!d)
    return vb_errno (err, ENOMEM, "cannot add disk to snapshot uid %u",
                     s->uid);
  s->disks = d;
  d = &d[s->n_disks];
  memset (d, 0, sizeof *d);
  d->file_name = strdup (file_name);
  d->node = strdup (node);
  if (!d->file_name || !d->node) {
    disk_clear (d);
    return vb_errno (err, ENOMEM, "cannot add disk to snapshot uid %u",
                     s->uid);
  }
  s->n_disks++;
  return 0;
}
