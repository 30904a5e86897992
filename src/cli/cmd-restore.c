/* vmback restore: a point's disk to a new file, a block device, or in
 * place into an existing disk; a VM point to a new VM directory or in
 * place into the VM. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "connectors/connector.h"
#include "repo/repo-int.h"
#include "vmback/engine.h"

/* Index of the disk named key in m, or -1. */
static int
find_disk (const struct manifest *m, const char *key)
{
  for (size_t i = 0; i < m->n_disks; i++)
    if (strcmp (m->disks[i].key, key) == 0)
      return (int) i;
  return -1;
}

/* Report a VM restore (to a directory, or in place). */
static void
print_vm_result (const struct cli *c, const struct manifest *m, const char *target,
                 bool inplace, const struct engine_restore_opts *o,
                 const struct engine_vm_inplace_result *res)
{
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "point", json_object_new_string (m->id));
    json_object_object_add (j, "target", json_object_new_string (target));
    json_object_object_add (j, "in-place", json_object_new_boolean (inplace));
    json_object_object_add (j, "config-restored",
                            json_object_new_boolean (inplace ? res->config_restored
                                                     : true));
    json_object *a = json_object_new_array ();
    for (size_t i = 0; i < m->n_disks; i++) {
      if (o->one_disk && (size_t) o->disk != i)
        continue;
      json_object *d = json_object_new_object ();
      json_object_object_add (d, "key", json_object_new_string (m->disks[i].key));
      json_object_object_add (d, "bytes", json_object_new_uint64 (m->disks[i].size));
      for (size_t k = 0; inplace && k < res->n_disks; k++)
        if (strcmp (res->keys[k], m->disks[i].key) == 0) {
          json_object_object_add (d, "method", json_object_new_string
                                  (res->disk[k].used_ctk ? "change-tracking" : "hash-compare"));
          json_object_object_add (d, "chunks-written",
                                  json_object_new_uint64 (res->disk[k].chunks_written));
        }
      json_object_array_add (a, d);
    }
    json_object_object_add (j, "disks", a);
    cli_json_print (j);
    return;
  }
  if (c->quiet)
    return;
  if (!inplace) {
    printf ("restored VM %s to %s/%s.vmx\n", m->id, target, m->source_name);
    return;
  }
  for (size_t k = 0; k < res->n_disks; k++)
    printf ("restored %s disk %s into %s in place: %" PRIu64 " chunk%s written (%s)\n",
            m->id, res->keys[k], target, res->disk[k].chunks_written,
            res->disk[k].chunks_written == 1 ? "" : "s",
            res->disk[k].used_ctk ? "found by change tracking" : "found by comparing hashes");
}

/* vmback restore [--repo R] POINT TARGET | POINT --to DIR | POINT --in-place DISK|VMX
 *   [--disk KEY] [--type T] */
int
cmd_restore (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "repo", required_argument, 0, 'r' }, { "key-file", required_argument, 0, 'k' },
    { "in-place", required_argument, 0, 'i' }, { "disk", required_argument, 0, 'd' },
    { "type", required_argument, 0, 't' }, { "threads", required_argument, 0, 'j' },
    { "to", required_argument, 0, 'o' },
    { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
  };
  const char *rp = NULL, *kf = NULL, *inplace = NULL, *disk = NULL, *to = NULL;
  struct engine_restore_opts o = { 0 };
  optind = 1;
  opterr = 0;
  int ch;
  uint64_t v;
  while ((ch = getopt_long (argc, argv, "h", lo, NULL)) != -1) {
    switch (ch) {
    case 'r': rp = optarg; break;
    case 'k': kf = optarg; break;
    case 'i': inplace = optarg; break;
    case 'o': to = optarg; break;
    case 'd': disk = optarg; break;
    case 't': {
      int t = vdisk_type_from_name (optarg);
      if (t < 0)
        return cli_usage_error ("restore: unknown disk type '%s'", optarg);
      o.type = (enum vdisk_type) t;
      o.type_set = true;
      break;
    }
    case 'j':
      if (cli_parse_u64 (optarg, &v) < 0 || v < 1 || v > 64)
        return cli_usage_error ("restore: --threads takes 1..64");
      o.threads = (int) v;
      break;
    case 'h':
      printf ("usage: vmback restore [--repo R] POINT TARGET [--type T] [--disk KEY]\n"
              "       vmback restore [--repo R] POINT --in-place DISK [--disk KEY]\n"
              "       vmback restore [--repo R] POINT --to NEWDIR [--type T] [--disk KEY]\n"
              "       vmback restore [--repo R] POINT --in-place VMX [--disk KEY]\n"
              "--to makes a new VM directory NEWDIR/NAME.vmx from a VM point (default disk\n"
              "type monolithicSparse).  --in-place VMX restores a powered-off VM: its\n"
              "configuration and the chunks of each disk that differ.\n"
              "TARGET is a new file (format from --type, else .vmdk = monolithicSparse,\n"
              "other names raw) or a block device.  --in-place writes only the chunks\n"
              "that differ (by the disk's change tracking when valid, else by hashes).\n"
              "POINT: an id from 'vmback list', SOURCE@latest, or latest.\n");
      return 0;
    default:
      return cli_usage_error ("restore: unknown or incomplete option '%s'", argv[optind - 1]);
    }
  }
  if (inplace && to)
    return cli_usage_error ("restore: --to and --in-place exclude each other");
  int want = inplace || to ? 1 : 2;
  if (argc - optind != want)
    return cli_usage_error ("usage: vmback restore [--repo R] POINT TARGET | POINT --to DIR "
                            "| POINT --in-place DISK|VMX");
  bool vm_inplace = inplace && vb_connector_find (inplace) != NULL;
  struct repo *r = cli_open_repo (c, rp, kf);
  if (!r)
    return 1;
  struct manifest *m = calloc (1, sizeof *m);
  struct vb_error e = { 0 };
  int rc = m ? repo_find_point (r, argv[optind], m, &e) : -1;
  o.one_disk = disk != NULL;
  if (rc == 0 && disk && (o.disk = find_disk (m, disk)) < 0) {
    fprintf (stderr, "vmback: point %s has no disk '%s'\n", m->id, disk);
    rc = -1;
    e.code = 0;
  }
  struct cli_progress p;
  cli_progress_init (&p, c, "restore");
  o.progress = cli_progress_cb;
  o.opaque = &p;
  struct engine_inplace_result res = { 0 };
  struct engine_vm_inplace_result *vres = calloc (1, sizeof *vres);
  if (!vres)
    rc = -1;
  if (rc == 0) {
    if (to)
      rc = engine_restore_vm_to (r, m, to, &o, &e);
    else if (vm_inplace)
      rc = engine_restore_vm_in_place (r, m, inplace, &o, vres, &e);
    else if (inplace)
      rc = engine_restore_in_place (r, m, inplace, &o, &res, &e);
    else
      rc = engine_restore_disk (r, m, argv[optind + 1], &o, &e);
  }
  cli_progress_done (&p);
  repo_close (r);
  if (rc < 0) {
    free (m);
    free (vres);
    return e.code ? cli_fail (&e) : 1;
  }
  if (to || vm_inplace) {
    print_vm_result (c, m, to ? to : inplace, vm_inplace, &o, vres);
    free (m);
    free (vres);
    return 0;
  }
  free (vres);
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "point", json_object_new_string (m->id));
    json_object_object_add (j, "disk", json_object_new_string (m->disks[o.disk].key));
    json_object_object_add (j, "target", json_object_new_string (inplace ? inplace : argv[optind + 1]));
    json_object_object_add (j, "bytes", json_object_new_uint64 (m->disks[o.disk].size));
    if (inplace) {
      json_object_object_add (j, "method", json_object_new_string (res.used_ctk ? "change-tracking" : "hash-compare"));
      json_object_object_add (j, "chunks-written", json_object_new_uint64 (res.chunks_written));
    }
    cli_json_print (j);
  } else if (!c->quiet) {
    if (inplace)
      printf ("restored %s into %s in place: %" PRIu64 " chunk%s written (%s)\n", m->id, inplace,
              res.chunks_written, res.chunks_written == 1 ? "" : "s",
              res.used_ctk ? "found by change tracking" : "found by comparing hashes");
    else
      printf ("restored %s (%s, %" PRIu64 " bytes) to %s\n", m->id, m->disks[o.disk].key,
              m->disks[o.disk].size, argv[optind + 1]);
  }
  free (m);
  return 0;
}
