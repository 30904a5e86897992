/* vmback restore: a point's disk to a new file, a block device, or in
 * place into an existing disk. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
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

/* vmback restore [--repo R] POINT TARGET | POINT --in-place DISK [--disk KEY] [--type T] */
int
cmd_restore (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "repo", required_argument, 0, 'r' }, { "key-file", required_argument, 0, 'k' },
    { "in-place", required_argument, 0, 'i' }, { "disk", required_argument, 0, 'd' },
    { "type", required_argument, 0, 't' }, { "threads", required_argument, 0, 'j' },
    { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
  };
  const char *rp = NULL, *kf = NULL, *inplace = NULL, *disk = NULL;
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
              "TARGET is a new file (format from --type, else .vmdk = monolithicSparse,\n"
              "other names raw) or a block device.  --in-place writes only the chunks\n"
              "that differ (by the disk's change tracking when valid, else by hashes).\n"
              "POINT: an id from 'vmback list', SOURCE@latest, or latest.\n");
      return 0;
    default:
      return cli_usage_error ("restore: unknown or incomplete option '%s'", argv[optind - 1]);
    }
  }
  int want = inplace ? 1 : 2;
  if (argc - optind != want)
    return cli_usage_error ("usage: vmback restore [--repo R] POINT TARGET | POINT --in-place DISK");
  struct repo *r = cli_open_repo (c, rp, kf);
  if (!r)
    return 1;
  struct manifest *m = calloc (1, sizeof *m);
  struct vb_error e = { 0 };
  int rc = m ? repo_find_point (r, argv[optind], m, &e) : -1;
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
  if (rc == 0)
    rc = inplace ? engine_restore_in_place (r, m, inplace, &o, &res, &e)
      : engine_restore_disk (r, m, argv[optind + 1], &o, &e);
  cli_progress_done (&p);
  repo_close (r);
  if (rc < 0) {
    free (m);
    return e.code ? cli_fail (&e) : 1;
  }
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
