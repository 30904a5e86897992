/* vmback vm snapshot create|delete|delete-all|revert|list|consolidate:
 * the snapshot manager of a VM directory (src/connectors/vmx-vm.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "connectors/vmx-vm.h"

/* Exit status when quiescing was interrupted by a signal. */
#define EXIT_SIGNAL_BASE 128

/* Progress of merges through the CLI bar. */
static void
snap_progress (void *opaque, const char *what, uint64_t done, uint64_t total)
{
  struct cli_progress *p = opaque;
  p->what = what;
  cli_progress_cb (p, done, total);
}

/* Open the VM named by the one remaining argument before an optional
 * snapshot name; prints errors. */
static struct vmx_vm *
open_vm (const char *vmx)
{
  struct vb_error e = { 0 };
  struct vmx_vm *vm = NULL;
  if (vmx_vm_open (vmx, &vm, &e) < 0) {
    cli_fail (&e);
    return NULL;
  }
  return vm;
}

/* Print a json summary or a line of text. */
static void
report (const struct cli *c, json_object *j, const char *text)
{
  if (c->json)
    cli_json_print (j);
  else {
    if (!c->quiet && text)
      puts (text);
    json_object_put (j);
  }
}

/* --- create -------------------------------------------------------------- */

/* Parse --quiesce[=off|on|required]. */
static int
parse_quiesce (const char *v, enum quiesce_mode *m)
{
  if (!v || strcmp (v, "on") == 0 || strcmp (v, "try") == 0)
    *m = QUIESCE_TRY;
  else if (strcmp (v, "required") == 0)
    *m = QUIESCE_REQUIRED;
  else if (strcmp (v, "off") == 0)
    *m = QUIESCE_OFF;
  else
    return -1;
  return 0;
}

/* vm snapshot create VMX NAME [--quiesce[=required]] [--description D] */
static int
snap_create (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "quiesce", optional_argument, 0, 'Q' },
    { "description", required_argument, 0, 'd' },
    { "hooks-dir", required_argument, 0, 'H' },
    { "freeze-timeout", required_argument, 0, 'T' },
    { 0, 0, 0, 0 },
  };
  struct vmx_snapshot_opts o = { .quiesce = QUIESCE_OFF };
  uint64_t secs;
  int ch;
  optind = 1;
  opterr = 0;
  while ((ch = getopt_long (argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
    case 'Q':
      if (parse_quiesce (optarg, &o.quiesce) < 0)
        return cli_usage_error ("--quiesce: expected off, on or required, not '%s'", optarg);
      break;
    case 'd': o.description = optarg; break;
    case 'H': o.hooks_dir = optarg; break;
    case 'T':
      if (cli_parse_u64 (optarg, &secs) < 0 || secs == 0 || secs > 3600)
        return cli_usage_error ("--freeze-timeout: expected 1..3600 seconds, not '%s'", optarg);
      o.freeze_timeout_ms = (unsigned) secs * 1000;
      break;
    default:
      return cli_usage_error ("vm snapshot create: unknown option '%s'", argv[optind - 1]);
    }
  }
  if (argc - optind != 2)
    return cli_usage_error ("vm snapshot create: expected VMX and NAME");
  o.name = argv[optind + 1];
  struct vmx_vm *vm = open_vm (argv[optind]);
  if (!vm)
    return 1;
  struct vmx_snapshot_result res;
  struct vb_error e = { 0 };
  int r = vmx_snapshot_create (vm, &o, &res, &e);
  vmx_vm_close (vm);
  if (r == 0 && res.warning[0])
    fprintf (stderr, "vmback: warning: %s\n", res.warning);
  if (r < 0) {
    cli_fail (&e);
    return res.signal ? EXIT_SIGNAL_BASE + res.signal : 1;
  }
  json_object *j = json_object_new_object ();
  json_object_object_add (j, "uid", json_object_new_int64 (res.uid));
  json_object_object_add (j, "name", json_object_new_string (o.name));
  json_object_object_add (j, "consistency",
                          json_object_new_string (quiesce_level_name (res.level)));
  char line[600];
  snprintf (line, sizeof line, "snapshot %" PRIu32 " \"%s\" created (%s-consistent)",
            res.uid, o.name, quiesce_level_name (res.level));
  report (c, j, line);
  return res.signal ? EXIT_SIGNAL_BASE + res.signal : 0;
}

/* --- delete, delete-all, revert, consolidate ----------------------------- */

/* Parse the common options (none beyond the global ones) and check the
 * argument count; returns the index of the first argument or -1. */
static int
plain_args (int argc, char **argv, int want, const char *usage)
{
  static const struct option lo[] = { { 0, 0, 0, 0 } };
  optind = 1;
  opterr = 0;
  if (getopt_long (argc, argv, "", lo, NULL) != -1) {
    cli_usage_error ("vm snapshot %s: unknown option '%s'", argv[0], argv[optind - 1]);
    return -1;
  }
  if (argc - optind != want) {
    cli_usage_error ("vm snapshot %s: expected %s", argv[0], usage);
    return -1;
  }
  return optind;
}

/* An operation on an open VM: arg is the snapshot name (or NULL); fills
 * the json summary and the text line. */
typedef int (*vm_op_fn) (struct vmx_vm *vm, const char *arg, struct cli_progress *pr,
                         json_object *j, char *line, size_t len, struct vb_error *e);

/* Parse "VMX [NAME]", open the VM, run op with a progress bar, report. */
static int
run_op (struct cli *c, int argc, char **argv, bool named, vm_op_fn op)
{
  int i = plain_args (argc, argv, named ? 2 : 1, named ? "VMX and NAME" : "VMX");
  if (i < 0)
    return 2;
  struct vmx_vm *vm = open_vm (argv[i]);
  if (!vm)
    return 1;
  struct vb_error e = { 0 };
  struct cli_progress pr;
  cli_progress_init (&pr, c, "merge");
  json_object *j = json_object_new_object ();
  char line[512] = "";
  int r = op (vm, named ? argv[i + 1] : NULL, &pr, j, line, sizeof line, &e);
  cli_progress_done (&pr);
  vmx_vm_close (vm);
  if (r < 0) {
    json_object_put (j);
    return cli_fail (&e);
  }
  report (c, j, line);
  return 0;
}

/* delete VMX NAME */
static int
op_delete (struct vmx_vm *vm, const char *arg, struct cli_progress *pr, json_object *j,
           char *line, size_t len, struct vb_error *e)
{
  uint32_t uid = 0;
  int r = vmx_vm_find_snapshot (vm, arg, &uid, e);
  if (r == 0)
    r = vmx_snapshot_delete (vm, uid, snap_progress, pr, e);
  json_object_object_add (j, "deleted", json_object_new_int64 (uid));
  snprintf (line, len, "snapshot %" PRIu32 " deleted", uid);
  return r;
}

/* delete-all VMX */
static int
op_delete_all (struct vmx_vm *vm, const char *arg, struct cli_progress *pr,
               json_object *j, char *line, size_t len, struct vb_error *e)
{
  size_t n = vm->sd.n;
  json_object_object_add (j, "deleted", json_object_new_int64 ((int64_t) n));
  snprintf (line, len, "%zu snapshot%s deleted", n, n == 1 ? "" : "s");
  return vmx_snapshot_delete_all (vm, snap_progress, pr, e);
}

/* revert VMX NAME */
static int
op_revert (struct vmx_vm *vm, const char *arg, struct cli_progress *pr, json_object *j,
           char *line, size_t len, struct vb_error *e)
{
  uint32_t uid = 0;
  int r = vmx_vm_find_snapshot (vm, arg, &uid, e);
  if (r == 0)
    r = vmx_snapshot_revert (vm, uid, e);
  json_object_object_add (j, "current", json_object_new_int64 (uid));
  snprintf (line, len, "reverted to snapshot %" PRIu32, uid);
  return r;
}

/* consolidate VMX */
static int
op_consolidate (struct vmx_vm *vm, const char *arg, struct cli_progress *pr,
                json_object *j, char *line, size_t len, struct vb_error *e)
{
  size_t merged = 0, removed = 0;
  int r = vmx_vm_consolidate (vm, snap_progress, pr, &merged, &removed, e);
  json_object_object_add (j, "layers-merged", json_object_new_int64 ((int64_t) merged));
  json_object_object_add (j, "files-removed", json_object_new_int64 ((int64_t) removed));
  if (merged || removed)
    snprintf (line, len, "consolidated: %zu layer%s merged, %zu file%s removed",
              merged, merged == 1 ? "" : "s", removed, removed == 1 ? "" : "s");
  else
    snprintf (line, len, "nothing to consolidate");
  return r;
}

static int snap_delete (struct cli *c, int argc, char **argv)
{ return run_op (c, argc, argv, true, op_delete); }
static int snap_delete_all (struct cli *c, int argc, char **argv)
{ return run_op (c, argc, argv, false, op_delete_all); }
static int snap_revert (struct cli *c, int argc, char **argv)
{ return run_op (c, argc, argv, true, op_revert); }
static int snap_consolidate (struct cli *c, int argc, char **argv)
{ return run_op (c, argc, argv, false, op_consolidate); }

/* --- list ---------------------------------------------------------------- */

/* One snapshot and its subtree, as text and json. */
static void
list_tree (const struct vmsd *m, uint32_t parent, int depth, json_object *arr)
{
  uint32_t kids[VMSD_MAX_SNAPSHOTS];
  size_t n = vmsd_children (m, parent, kids);
  for (size_t i = 0; i < n; i++) {
    const struct vmsd_snapshot *s = vmsd_find (m, kids[i]);
    bool cur = s->uid == m->current;
    char when[64] = "";
    if (s->has_create_time) {
      time_t t = (time_t) (s->create_time_us / 1000000);
      struct tm tm;
      if (gmtime_r (&t, &tm))
        strftime (when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    }
    const char *level = vmsd_consistency_name (s->consistency);
    json_object *o = json_object_new_object ();
    json_object_object_add (o, "uid", json_object_new_int64 (s->uid));
    json_object_object_add (o, "parent", json_object_new_int64 (s->parent));
    json_object_object_add (o, "name", json_object_new_string (s->display_name ? s->display_name : ""));
    if (s->description)
      json_object_object_add (o, "description", json_object_new_string (s->description));
    if (when[0])
      json_object_object_add (o, "created", json_object_new_string (when));
    if (level)
      json_object_object_add (o, "consistency", json_object_new_string (level));
    json_object_object_add (o, "current", json_object_new_boolean (cur));
    json_object_object_add (o, "depth", json_object_new_int (depth));
    json_object_array_add (arr, o);
    list_tree (m, s->uid, depth + 1, arr);
  }
}

/* vm snapshot list VMX */
static int
snap_list (struct cli *c, int argc, char **argv)
{
  int i = plain_args (argc, argv, 1, "VMX");
  if (i < 0)
    return 2;
  struct vb_error e = { 0 };
  struct vmsd m;
  char *vmsd = NULL;
  size_t n = strlen (argv[i]);
  if (n > 4 && strcmp (argv[i] + n - 4, ".vmx") == 0)
    n -= 4;
  if (asprintf (&vmsd, "%.*s.vmsd", (int) n, argv[i]) < 0)
    return 1;
  FILE *f = fopen (vmsd, "r");
  int r = f ? vmsd_load (vmsd, &m, &e) : errno == ENOENT ? vmsd_init (&m)
    : vb_errno (&e, errno, "cannot read '%s'", vmsd);
  if (f)
    fclose (f);
  free (vmsd);
  if (r < 0)
    return cli_fail (&e);
  json_object *arr = json_object_new_array ();
  list_tree (&m, 0, 0, arr);
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "current", json_object_new_int64 (m.current));
    json_object_object_add (j, "snapshots", arr);
    cli_json_print (j);
  } else {
    size_t k = json_object_array_length (arr);
    if (k == 0)
      printf ("no snapshots\n");
    for (size_t s = 0; s < k; s++) {
      json_object *o = json_object_array_get_idx (arr, s), *v;
      printf ("%*s%s %" PRId64 " \"%s\"", 2 * json_object_get_int (json_object_object_get (o, "depth")), "",
              json_object_get_boolean (json_object_object_get (o, "current")) ? "*" : "-",
              json_object_get_int64 (json_object_object_get (o, "uid")),
              json_object_get_string (json_object_object_get (o, "name")));
      if (json_object_object_get_ex (o, "created", &v))
        printf ("  %s", json_object_get_string (v));
      if (json_object_object_get_ex (o, "consistency", &v))
        printf ("  %s", json_object_get_string (v));
      printf ("%s\n", json_object_get_boolean (json_object_object_get (o, "current"))
              ? "  (current)" : "");
    }
    if (k && m.current == 0)
      printf ("(the VM runs on its base disks)\n");
    json_object_put (arr);
  }
  vmsd_free (&m);
  return 0;
}

/* --- table --------------------------------------------------------------- */

static const struct {
  const char *name;
  int (*fn) (struct cli *c, int argc, char **argv);
  const char *usage;
} snap_subs[] = {
  { "create", snap_create, "VMX NAME [--description TEXT] [--quiesce[=on|required]] "
                           "[--hooks-dir DIR] [--freeze-timeout SECONDS]" },
  { "delete", snap_delete, "VMX NAME|UID" },
  { "delete-all", snap_delete_all, "VMX" },
  { "revert", snap_revert, "VMX NAME|UID" },
  { "list", snap_list, "VMX" },
  { "consolidate", snap_consolidate, "VMX" },
};

/* Usage of vm snapshot. */
static int
snap_usage (FILE *f, int status)
{
  fprintf (f, "usage: vmback vm snapshot SUBCOMMAND ...\n");
  for (size_t i = 0; i < sizeof snap_subs / sizeof *snap_subs; i++)
    fprintf (f, "  vmback vm snapshot %-11s %s\n", snap_subs[i].name, snap_subs[i].usage);
  return status;
}

/* vmback vm snapshot SUBCOMMAND ... (argv[0] = "snapshot") */
int
cmd_vm_snapshot (struct cli *c, int argc, char **argv)
{
  if (argc < 2)
    return snap_usage (stderr, 2);
  if (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0)
    return snap_usage (stdout, 0);
  for (size_t i = 0; i < sizeof snap_subs / sizeof *snap_subs; i++)
    if (strcmp (argv[1], snap_subs[i].name) == 0) {
      for (int k = 2; k < argc; k++)
        if (strcmp (argv[k], "-h") == 0 || strcmp (argv[k], "--help") == 0) {
          printf ("usage: vmback vm snapshot %s %s\n", snap_subs[i].name, snap_subs[i].usage);
          return 0;
        }
      return snap_subs[i].fn (c, argc - 1, argv + 1);
    }
  cli_usage_error ("vm snapshot: unknown subcommand '%s'", argv[1]);
  return snap_usage (stderr, 2);
}
