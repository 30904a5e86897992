/* vmback: consolidation of a VM directory's disk layers
 * (docs/snapshots.md).
 *
 * The layers of a VM form a forest: every disk of the .vmx and of every
 * snapshot in the .vmsd names a top layer, and each layer names its
 * parent.  A layer is needed when it is in one of those chains.  A
 * needed layer that nobody names directly and that has exactly one child
 * is redundant: the child's data can be merged into it (the child's
 * readers see the same bytes afterwards), after which the child's
 * readers are pointed at it and the child goes.  A run of redundant
 * layers is merged in one pass into its lowest member (delete-all
 * merges a whole chain straight into the base).  Delta files no chain
 * needs are removed.
 *
 * One merge, journalled in NAME.vmback/journal:
 *   1. write the journal (base, top, layers to remove, top's children)
 *   2. merge the layers' data into the base, keeping its CID, and give
 *      the base the top's change tracking history
 *   3. point the top's children at the base (parentFileNameHint/CID)
 *   4. point the .vmx, then the .vmsd at the base instead of the top
 *   5. remove the merged layers, top first
 *   6. remove the journal
 * Killed anywhere, the VM still reads the same bytes (the base only ever
 * receives blocks its children hide, and its CID does not change), and
 * the journal is replayed on the next open: step 2 again while the top
 * still opens (idempotent), steps 3-6 always (idempotent).
 */
#include <errno.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "connectors/vmx-vm.h"
#include "vdisk/vdisk-int.h"

#define JOURNAL_MAX (1u << 20)

/* --- the layer graph --------------------------------------------------- */

struct node {
  char *path;                /* canonical */
  char *parent;              /* canonical, NULL for a base */
  unsigned refs;             /* disks of the .vmx / snapshots naming it */
  unsigned children;
  bool in_dir;               /* in the VM directory: ours to merge or remove */
};

struct graph {
  struct node *v;
  size_t n, cap;
};

/* Free a graph. */
static void
graph_free (struct graph *g)
{
  for (size_t i = 0; i < g->n; i++) {
    free (g->v[i].path);
    free (g->v[i].parent);
  }
  free (g->v);
  memset (g, 0, sizeof *g);
}

/* The node of path, or NULL. */
static struct node *
graph_find (const struct graph *g, const char *path)
{
  for (size_t i = 0; path && i < g->n; i++)
    if (strcmp (g->v[i].path, path) == 0)
      return &g->v[i];
  return NULL;
}

/* Is path directly inside dir? */
static bool
in_dir (const char *dir, const char *path)
{
  size_t n = strlen (dir);
  return strncmp (path, dir, n) == 0 && path[n] == '/' && !strchr (path + n + 1, '/');
}

/* Find or add the node of a layer (path canonical, owned by the graph
 * from here on; parent likewise). */
static int
graph_add (struct graph *g, const struct vmx_vm *vm, char *path, char *parent,
           struct node **out)
{
  struct node *n = graph_find (g, path);
  if (n) {
    free (path);
    free (parent);
    *out = n;
    return 0;
  }
  if (g->n == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 16;
    struct node *v = realloc (g->v, cap * sizeof *v);
    if (!v) {
      free (path);
      free (parent);
      return -ENOMEM;
    }
    g->v = v;
    g->cap = cap;
  }
  n = &g->v[g->n++];
  *n = (struct node) { .path = path, .parent = parent, .in_dir = in_dir (vm->dir, path) };
  *out = n;
  return 0;
}

/* Add the chain of one referenced disk; what = "disk scsi0:0" etc. for
 * messages. */
static int
graph_add_chain (struct graph *g, const struct vmx_vm *vm, const char *name,
                 const char *what, struct vb_error *err)
{
  char *top = vmx_vm_path (vm, name);
  if (!top)
    return vb_errno (err, ENOMEM, "cannot resolve '%s'", name);
  struct vdisk_info in;
  int r = vdisk_get_info (top, &in, err);
  free (top);
  if (r < 0) {
    vb_err_prefix (err, "%s of '%s'", what, vm->vmx_path);
    return r;
  }
  for (int i = 0; i < in.chain_len && r == 0; i++) {
    char *p = vmx_vm_path (vm, in.chain[i]);
    char *pp = i + 1 < in.chain_len ? vmx_vm_path (vm, in.chain[i + 1]) : NULL;
    struct node *n;
    if (!p || (i + 1 < in.chain_len && !pp)) {
      free (p);
      free (pp);
      r = -ENOMEM;
    } else if ((r = graph_add (g, vm, p, pp, &n)) == 0 && i == 0) {
      n->refs++;
    }
  }
  vdisk_info_free (&in);
  return r == -ENOMEM ? vb_errno (err, ENOMEM, "cannot examine '%s'", name) : r;
}

/* Build the graph of every chain the .vmx and the .vmsd name.  A chain
 * that does not open is an error: nothing may be changed then. */
static int
graph_build (struct graph *g, const struct vmx_vm *vm, struct vb_error *err)
{
  char what[300];
  int r = 0;
  /* a model that failed to load names no disk: every delta file would
   * look like a stray (those of a live snapshot too) */
  if (vm->cfg == NULL)
    return vb_err (err, EIO, "the configuration of '%s' is not loaded (an earlier "
                   "read failed): not judging its delta files", vm->vmx_path);
  for (size_t i = 0; i < vm->n_disks && r == 0; i++) {
    snprintf (what, sizeof what, "disk %s", vm->disks[i].device);
    r = graph_add_chain (g, vm, vm->disks[i].file_name, what, err);
  }
  for (size_t s = 0; s < vm->sd.n && r == 0; s++) {
    const struct vmsd_snapshot *sn = &vm->sd.snap[s];
    for (size_t k = 0; k < sn->n_disks && r == 0; k++) {
      snprintf (what, sizeof what, "disk %s of snapshot '%s'", sn->disks[k].node,
                sn->display_name ? sn->display_name : "?");
      r = graph_add_chain (g, vm, sn->disks[k].file_name, what, err);
    }
  }
  for (size_t i = 0; i < g->n && r == 0; i++) {
    struct node *p = graph_find (g, g->v[i].parent);
    if (p)
      p->children++;
  }
  return r;
}

/* Check every chain (see vmx-vm.h). */
int
vmx_vm_check (const struct vmx_vm *vm, struct vb_error *err)
{
  struct graph g = { 0 };
  int r = graph_build (&g, vm, err);
  graph_free (&g);
  return r;
}

/* A needed layer whose data can go into its only child's place. */
static bool
redundant (const struct node *n)
{
  return n && n->refs == 0 && n->children == 1 && n->in_dir;
}

/* The only child of n. */
static struct node *
only_child (const struct graph *g, const struct node *n)
{
  for (size_t i = 0; i < g->n; i++)
    if (g->v[i].parent && strcmp (g->v[i].parent, n->path) == 0)
      return &g->v[i];
  return NULL;
}

/* --- merge plans and the journal ---------------------------------------- */

struct plan {
  char *base;                /* the layer receiving the data */
  char *top;                 /* the newest merged layer: its readers move to base */
  char **layers;             /* merged layers, bottom up (the last is top) */
  size_t n_layers;
  char **children;           /* layers whose parent is top */
  size_t n_children;
};

/* Free a plan. */
static void
plan_free (struct plan *p)
{
  for (size_t i = 0; i < p->n_layers; i++)
    free (p->layers[i]);
  for (size_t i = 0; i < p->n_children; i++)
    free (p->children[i]);
  free (p->layers);
  free (p->children);
  free (p->base);
  free (p->top);
  memset (p, 0, sizeof *p);
}

/* Append a copy of s to a string array. */
static int
strv_add (char ***v, size_t *n, const char *s)
{
  char **nv = realloc (*v, (*n + 1) * sizeof *nv);
  if (!nv)
    return -ENOMEM;
  *v = nv;
  if (!(nv[*n] = strdup (s)))
    return -ENOMEM;
  (*n)++;
  return 0;
}

/* Find the next merge: the lowest layer of a redundant run, and the run
 * above it up to the first layer someone names or that branches.
 * Returns 1 with *p filled, 0 when there is nothing to merge. */
static int
plan_next (const struct graph *g, struct plan *p)
{
  for (size_t i = 0; i < g->n; i++) {
    const struct node *b = &g->v[i];
    if (!redundant (b) || redundant (graph_find (g, b->parent)))
      continue;
    const struct node *t = only_child (g, b);
    bool ok = t && t->in_dir;
    if (!(p->base = strdup (b->path)))
      return -ENOMEM;
    while (ok) {
      if (strv_add (&p->layers, &p->n_layers, t->path) < 0)
        return -ENOMEM;
      if (!redundant (t))
        break;
      t = only_child (g, t);
      ok = t && t->in_dir;
    }
    if (!ok) {               /* a layer outside the VM directory: leave it */
      plan_free (p);
      continue;
    }
    if (!(p->top = strdup (t->path)))
      return -ENOMEM;
    for (size_t k = 0; k < g->n; k++)
      if (g->v[k].parent && strcmp (g->v[k].parent, t->path) == 0
          && strv_add (&p->children, &p->n_children, g->v[k].path) < 0)
        return -ENOMEM;
    return 1;
  }
  return 0;
}

/* Path of the journal. */
static char *
journal_path (const struct vmx_vm *vm)
{
  return vdisk_path_join (vm->state_dir, "journal");
}

/* JSON array of strings. */
static json_object *
strv_json (char **v, size_t n)
{
  json_object *a = json_object_new_array ();
  for (size_t i = 0; a && i < n; i++)
    json_object_array_add (a, json_object_new_string (v[i]));
  return a;
}

/* Write the journal of a plan (atomically, durably). */
static int
journal_write (const struct vmx_vm *vm, const struct plan *p, struct vb_error *err)
{
  json_object *j = json_object_new_object ();
  json_object_object_add (j, "version", json_object_new_int (1));
  json_object_object_add (j, "op", json_object_new_string ("merge"));
  json_object_object_add (j, "base", json_object_new_string (p->base));
  json_object_object_add (j, "top", json_object_new_string (p->top));
  json_object_object_add (j, "layers", strv_json (p->layers, p->n_layers));
  json_object_object_add (j, "children", strv_json (p->children, p->n_children));
  const char *text = json_object_to_json_string_ext (j, JSON_C_TO_STRING_PRETTY);
  char *path = journal_path (vm);
  int r = text && path ? vio_write_file_atomic (path, text, strlen (text), err)
    : vb_errno (err, ENOMEM, "cannot write the journal of '%s'", vm->vmx_path);
  free (path);
  json_object_put (j);
  return r;
}

/* A string member that must be an absolute path inside bounds. */
static const char *
jpath (json_object *j, const char *key)
{
  json_object *v;
  if (!json_object_object_get_ex (j, key, &v) || !json_object_is_type (v, json_type_string))
    return NULL;
  const char *s = json_object_get_string (v);
  return s[0] == '/' && strlen (s) < 4096 ? s : NULL;
}

/* An array member of such paths into a string array. */
static int
jpaths (json_object *j, const char *key, char ***v, size_t *n)
{
  json_object *a;
  if (!json_object_object_get_ex (j, key, &a) || !json_object_is_type (a, json_type_array))
    return -EINVAL;
  size_t len = json_object_array_length (a);
  if (len > 4096)
    return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    json_object *e = json_object_array_get_idx (a, i);
    const char *s = json_object_is_type (e, json_type_string) ? json_object_get_string (e) : NULL;
    if (!s || s[0] != '/' || strlen (s) >= 4096)
      return -EINVAL;
    if (strv_add (v, n, s) < 0)
      return -ENOMEM;
  }
  return 0;
}

/* Read the journal: 1 with *p filled, 0 when there is none.  Every path
 * in it must lie in the VM directory (a journal is never trusted to
 * touch anything else). */
static int
journal_read (const struct vmx_vm *vm, struct plan *p, struct vb_error *err)
{
  char *path = journal_path (vm), *text = NULL;
  size_t len;
  if (!path)
    return vb_errno (err, ENOMEM, "cannot read the journal of '%s'", vm->vmx_path);
  int r = vio_read_file (path, JOURNAL_MAX, &text, &len, err);
  if (r == -ENOENT) {
    vb_err_clear (err);
    free (path);
    return 0;
  }
  json_object *j = r == 0 ? json_tokener_parse (text) : NULL;
  const char *base = j ? jpath (j, "base") : NULL, *top = j ? jpath (j, "top") : NULL;
  if (r == 0 && (!base || !top || !(p->base = strdup (base)) || !(p->top = strdup (top))
                 || jpaths (j, "layers", &p->layers, &p->n_layers) < 0
                 || jpaths (j, "children", &p->children, &p->n_children) < 0))
    r = vb_err (err, EINVAL, "journal '%s' is damaged; remove it only after checking "
                "the VM's disks", path);
  bool ok = r == 0 && in_dir (vm->dir, p->base) && in_dir (vm->dir, p->top);
  for (size_t i = 0; ok && i < p->n_layers; i++)
    ok = in_dir (vm->dir, p->layers[i]);
  for (size_t i = 0; ok && i < p->n_children; i++)
    ok = in_dir (vm->dir, p->children[i]);
  if (r == 0 && !ok)
    r = vb_err (err, EINVAL, "journal '%s' names files outside '%s'", path, vm->dir);
  json_object_put (j);
  free (text);
  free (path);
  if (r < 0)
    plan_free (p);
  return r < 0 ? r : 1;
}

/* --- carrying out a merge ----------------------------------------------- */

struct progress_ctx {
  vmx_progress_fn fn;
  void *opaque;
  char what[512];
};

/* vdisk progress -> vmx progress with a label. */
static void
merge_progress (void *opaque, uint64_t done, uint64_t total)
{
  struct progress_ctx *c = opaque;
  if (done * 2 >= total)
    vb_crashpoint ("merge-half");
  if (c->fn)
    c->fn (c->opaque, c->what, done, total);
}

/* Does a layer open with its whole chain?  1 yes; 0 when a file of it is
 * gone (a replay after its removal began: merged already); otherwise the
 * error, since a layer that exists but cannot be read now (EIO) must not
 * be taken for merged and removed. */
static int
layer_opens (const char *path, struct vb_error *err)
{
  struct vdisk *d;
  int r = vdisk_open (path, VDISK_OPEN_RDONLY, &d, err);
  if (r == -ENOENT) {
    vb_err_clear (err);
    return 0;
  }
  if (r < 0)
    return r;
  vdisk_close (d, NULL);
  return 1;
}

/* Replace references to `from` by `to` in a name list of the .vmx or
 * .vmsd; true if any changed. */
static bool
repoint_name (const struct vmx_vm *vm, char **name, const char *from, const char *to_ref)
{
  char *p = vmx_vm_path (vm, *name);
  bool hit = p && strcmp (p, from) == 0;
  free (p);
  if (hit)
    vmsd_set_str (name, to_ref);
  return hit;
}

/* Step 4: the .vmx, then the .vmsd, name base where they named top. */
static int
repoint_refs (struct vmx_vm *vm, const struct plan *p, struct vb_error *err)
{
  char *ref = vmx_vm_ref (vm, p->base);
  if (!ref)
    return vb_errno (err, ENOMEM, "cannot update '%s'", vm->vmx_path);
  int r = 0;
  bool vmx_hit = false, vmsd_hit = false;
  for (size_t i = 0; i < vm->n_disks && r == 0; i++) {
    char *p2 = vmx_vm_path (vm, vm->disks[i].file_name);
    if (p2 && strcmp (p2, p->top) == 0) {
      r = vmx_disk_set_file_name (vm->cfg, vm->disks[i].device, ref, err);
      vmx_hit = true;
    }
    free (p2);
  }
  if (r == 0 && vmx_hit)
    r = vmx_vm_save_vmx (vm, err);
  if (r == 0)
    vb_crashpoint ("merge-vmx");
  for (size_t s = 0; s < vm->sd.n && r == 0; s++)
    for (size_t k = 0; k < vm->sd.snap[s].n_disks; k++)
      vmsd_hit |= repoint_name (vm, &vm->sd.snap[s].disks[k].file_name, p->top, ref);
  if (r == 0 && vmsd_hit)
    r = vmx_vm_save_vmsd (vm, err);
  free (ref);
  return r;
}

/* Remove a merged layer's files: through the disk library when it still
 * opens, else every file named after it (NAME.vmdk, NAME-delta.vmdk,
 * NAME-ctk.vmdk, ...), the descriptor last. */
static int
remove_layer (const char *path, struct vb_error *err)
{
  if (access (path, F_OK) < 0 && errno == ENOENT) {
    /* descriptor gone already: companions may remain */
  } else if (vdisk_unlink (path, NULL) == 0) {
    return 0;
  }
  size_t n = strlen (path);
  if (n < 6)
    return 0;
  static const char *const sfx[] = { "-delta", "-sesparse", "-ctk", "-flat", "-s001" };
  for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
    char *c;
    if (asprintf (&c, "%.*s%s.vmdk", (int) (n - 5), path, sfx[i]) < 0)
      return vb_errno (err, ENOMEM, "cannot remove '%s'", path);
    if (unlink (c) < 0 && errno != ENOENT) {
      int r = vb_errno (err, errno, "cannot remove '%s'", c);
      free (c);
      return r;
    }
    free (c);
  }
  if (unlink (path) < 0 && errno != ENOENT)
    return vb_errno (err, errno, "cannot remove '%s'", path);
  return 0;
}

/* Steps 2-6 of a journalled merge (see the top of this file). */
static int
run_plan (struct vmx_vm *vm, const struct plan *p, vmx_progress_fn progress,
          void *opaque, struct vb_error *err)
{
  int r = layer_opens (p->top, err);
  if (r > 0) {
    struct progress_ctx pc = { .fn = progress, .opaque = opaque };
    const char *tb = strrchr (p->top, '/'), *bb = strrchr (p->base, '/');
    snprintf (pc.what, sizeof pc.what, "merge %s into %s", tb + 1, bb + 1);
    r = vdisk_merge_into (p->top, p->base, merge_progress, &pc, err);
    if (r == 0)
      vb_crashpoint ("merge-data");
    if (r == 0 && (r = vdisk_ctk_copy (p->top, p->base, err)) > 0)
      r = 0;
  }
  for (size_t i = 0; i < p->n_children && r == 0; i++)
    if (access (p->children[i], F_OK) == 0)
      r = vdisk_set_parent (p->children[i], p->base, err);
  if (r == 0) {
    vb_crashpoint ("merge-reparent");
    r = repoint_refs (vm, p, err);
  }
  for (size_t i = p->n_layers; i-- > 0 && r == 0;) {
    r = remove_layer (p->layers[i], err);
    if (r == 0)
      vb_crashpoint ("merge-remove");
  }
  if (r == 0) {
    char *j = journal_path (vm);
    if (!j || (unlink (j) < 0 && errno != ENOENT))
      r = vb_errno (err, j ? errno : ENOMEM, "cannot remove the journal of '%s'",
                    vm->vmx_path);
    free (j);
  }
  return r;
}

/* Replay an interrupted merge. */
int
vmx_vm_recover (struct vmx_vm *vm, struct vb_error *err)
{
  struct plan p = { 0 };
  int r = journal_read (vm, &p, err);
  if (r <= 0)
    return r;
  vb_debug ("finishing the interrupted merge of '%s' into '%s'", p.top, p.base);
  r = run_plan (vm, &p, NULL, NULL, err);
  plan_free (&p);
  if (r == 0)
    r = vmx_vm_reload (vm, err);
  return r;
}

/* --- stray delta files --------------------------------------------------- */

/* Visit the delta-looking files of dir (see vmx-vm.h). */
int
vmx_scan_deltas (const char *dir, vmx_delta_fn fn, void *opaque, struct vb_error *err)
{
  regex_t re;
  if (regcomp (&re, "^(.*-[0-9]{6})(-(delta|sesparse|ctk|flat|s[0-9]{3}|f[0-9]{3}))?"
               "\\.vmdk$", REG_EXTENDED | REG_ICASE) != 0)
    return vb_err (err, ENOMEM, "cannot compile the delta file pattern");
  struct dirent **names;
  int n = scandir (dir, &names, NULL, alphasort), r = 0;
  if (n < 0) {
    regfree (&re);
    return vb_errno (err, errno, "cannot list directory '%s'", dir);
  }
  for (int i = 0; i < n; i++) {
    regmatch_t m[2];
    const char *f = names[i]->d_name;
    char *desc = NULL;
    if (r == 0 && regexec (&re, f, 2, m, 0) == 0
        && asprintf (&desc, "%s/%.*s.vmdk", dir, (int) m[1].rm_eo, f) >= 0) {
      r = fn (opaque, desc, f);
      free (desc);
    }
    free (names[i]);
  }
  free (names);
  regfree (&re);
  return r;
}

/* Is a descriptor no disk or snapshot uses a delta we may remove (see
 * vmx-vm.h)?  It is when it is gone (companions left behind) or names a
 * parent; a base disk that only looks like a delta by name is kept. */
bool
vmx_delta_removable (const char *desc)
{
  if (access (desc, F_OK) < 0)
    return errno == ENOENT;
  struct vdisk_info in;
  if (vdisk_get_info (desc, &in, NULL) < 0)
    return false;            /* cannot tell what it is: keep it */
  bool child = in.chain_len > 1;
  vdisk_info_free (&in);
  return child;
}

struct stray_ctx {
  const struct graph *g;
  char **names;
  size_t n;
  char **descs;              /* distinct descriptors to remove */
  size_t n_descs;
};

/* Collect files whose descriptor no chain needs. */
static int
collect_stray (void *opaque, const char *desc, const char *file)
{
  struct stray_ctx *c = opaque;
  if (graph_find (c->g, desc) || !vmx_delta_removable (desc))
    return 0;
  if (strv_add (&c->names, &c->n, file) < 0)
    return -ENOMEM;
  for (size_t i = 0; i < c->n_descs; i++)
    if (strcmp (c->descs[i], desc) == 0)
      return 0;
  return strv_add (&c->descs, &c->n_descs, desc) < 0 ? -ENOMEM : 0;
}

/* Free a stray collection. */
static void
stray_free (struct stray_ctx *c)
{
  for (size_t i = 0; i < c->n; i++)
    free (c->names[i]);
  for (size_t i = 0; i < c->n_descs; i++)
    free (c->descs[i]);
  free (c->names);
  free (c->descs);
}

/* Gather the stray files against a built graph. */
static int
find_strays (const struct vmx_vm *vm, const struct graph *g, struct stray_ctx *c,
             struct vb_error *err)
{
  *c = (struct stray_ctx) { .g = g };
  int r = vmx_scan_deltas (vm->dir, collect_stray, c, err);
  if (r == -ENOMEM)
    r = vb_errno (err, ENOMEM, "cannot list delta files of '%s'", vm->vmx_path);
  return r;
}

/* List the stray files (see vmx-vm.h). */
int
vmx_vm_stray_files (const struct vmx_vm *vm, char ***names, size_t *n,
                    struct vb_error *err)
{
  struct graph g = { 0 };
  struct stray_ctx c = { 0 };
  int r = graph_build (&g, vm, err);
  if (r == 0)
    r = find_strays (vm, &g, &c, err);
  graph_free (&g);
  if (r < 0) {
    stray_free (&c);
    return r;
  }
  for (size_t i = 0; i < c.n_descs; i++)
    free (c.descs[i]);
  free (c.descs);
  *names = c.names;
  *n = c.n;
  return 0;
}

/* --- consolidate --------------------------------------------------------- */

/* One round: remove strays, then carry out one merge.  Returns 1 when a
 * merge was done (build again), 0 when nothing is left. */
static int
consolidate_step (struct vmx_vm *vm, vmx_progress_fn progress, void *opaque,
                  size_t *merged, size_t *removed, struct vb_error *err)
{
  struct graph g = { 0 };
  struct stray_ctx sc = { 0 };
  struct plan p = { 0 };
  int r = graph_build (&g, vm, err);
  if (r == 0)
    r = find_strays (vm, &g, &sc, err);
  for (size_t i = 0; i < sc.n_descs && r == 0; i++) {
    r = remove_layer (sc.descs[i], err);
    if (r == 0)
      vb_crashpoint ("consolidate-stray");
  }
  if (r == 0)
    *removed += sc.n;
  if (r == 0 && (r = plan_next (&g, &p)) < 0)
    r = vb_errno (err, ENOMEM, "cannot plan the consolidation of '%s'", vm->vmx_path);
  if (r == 1) {
    r = journal_write (vm, &p, err);
    if (r == 0) {
      vb_crashpoint ("merge-journal");
      r = run_plan (vm, &p, progress, opaque, err);
    }
    if (r == 0) {
      *merged += p.n_layers;
      *removed += p.n_layers;
      r = vmx_vm_reload (vm, err);
    }
    if (r == 0)
      r = 1;
  }
  plan_free (&p);
  stray_free (&sc);
  graph_free (&g);
  return r;
}

/* Consolidate (see vmx-vm.h). */
int
vmx_vm_consolidate (struct vmx_vm *vm, vmx_progress_fn progress, void *opaque,
                    size_t *merged, size_t *removed, struct vb_error *err)
{
  size_t m = 0, rm = 0;
  /* a model an earlier failed read left unloaded is loaded again first:
   * strays are judged from the files as they are */
  int r = vm->cfg ? 0 : vmx_vm_reload (vm, err);
  if (r == 0)
    r = vmx_vm_recover (vm, err);
  while (r == 0 && (r = consolidate_step (vm, progress, opaque, &m, &rm, err)) == 1)
    r = 0;
  if (merged)
    *merged = m;
  if (removed)
    *removed = rm;
  return r;
}
