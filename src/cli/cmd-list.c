/* vmback list: restore points (disk images and VMs), oldest first. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "repo/repo-int.h"
#include "vmback/repo.h"

/* JSON object describing a point. */
static json_object *
point_json (const struct manifest *m)
{
  json_object *j = json_object_new_object ();
  json_object_object_add (j, "id", json_object_new_string (m->id));
  json_object_object_add (j, "source", json_object_new_string (m->source_name));
  json_object_object_add (j, "parent", json_object_new_string (m->parent_id));
  json_object_object_add (j, "kind", json_object_new_string (m->kind));
  json_object_object_add (j, "consistency", json_object_new_string (m->consistency));
  json_object_object_add (j, "transport", json_object_new_string (m->transport));
  json_object_object_add (j, "started", json_object_new_int64 (m->started));
  json_object_object_add (j, "finished", json_object_new_int64 (m->finished));
  json_object_object_add (j, "tool", json_object_new_string (m->tool_version));
  if (m->config_key[0])
    json_object_object_add (j, "config-bytes", json_object_new_uint64 (m->config_size));
  json_object *ds = json_object_new_array ();
  for (size_t i = 0; i < m->n_disks; i++) {
    const struct manifest_disk *d = &m->disks[i];
    json_object *x = json_object_new_object ();
    json_object_object_add (x, "key", json_object_new_string (d->key));
    json_object_object_add (x, "source", json_object_new_string (d->source));
    json_object_object_add (x, "size", json_object_new_uint64 (d->size));
    json_object_object_add (x, "change-id-used", json_object_new_string (d->change_id_used));
    json_object_object_add (x, "change-id", json_object_new_string (d->change_id));
    json_object_object_add (x, "chunks-read", json_object_new_uint64 (d->chunks_read));
    json_object_object_add (x, "chunks-new", json_object_new_uint64 (d->chunks_new));
    json_object_object_add (x, "chunks-reused", json_object_new_uint64 (d->chunks_reused));
    json_object_object_add (x, "chunks-zero", json_object_new_uint64 (d->chunks_zero));
    json_object_object_add (x, "bytes-read", json_object_new_uint64 (d->bytes_read));
    json_object_object_add (x, "bytes-stored", json_object_new_uint64 (d->bytes_new_stored));
    json_object_array_add (ds, x);
  }
  json_object_object_add (j, "disks", ds);
  return j;
}

/* " in T s (R MB/s)" for bytes read in secs. */
static void
print_rate (uint64_t bytes, double secs)
{
  printf (" in %.2f s (%.1f MB/s)", secs, secs > 0 ? (double) bytes / secs / 1e6 : 0.0);
}

/* Summary of a point just written (backup). */
void
cli_print_point (const struct cli *c, const struct manifest *m, double secs)
{
  if (c->json) {
    json_object *j = point_json (m);
    json_object_object_add (j, "seconds", json_object_new_double (secs));
    cli_json_print (j);
    return;
  }
  if (c->quiet)
    return;
  /* The time is the whole point's: per disk only when there is one disk
   * (the disks of a VM are read one after another and overlap at their
   * edges), then a total line. */
  uint64_t total_read = 0, total_stored = 0;
  for (size_t i = 0; i < m->n_disks; i++) {
    const struct manifest_disk *d = &m->disks[i];
    total_read += d->bytes_read;
    total_stored += d->bytes_new_stored;
    printf ("point %s: %s %s, read %" PRIu64 " bytes", m->id, d->key,
            strcmp (d->change_id_used, "*") ? "incremental" : "full", d->bytes_read);
    if (m->n_disks == 1)
      print_rate (d->bytes_read, secs);
    printf ("; chunks: %" PRIu64 " new (%" PRIu64 " bytes stored), %" PRIu64
            " reused, %" PRIu64 " zero; via %s\n", d->chunks_new, d->bytes_new_stored,
            d->chunks_reused, d->chunks_zero, m->transport);
  }
  if (m->n_disks > 1) {
    printf ("point %s: %zu disks, read %" PRIu64 " bytes", m->id, m->n_disks, total_read);
    print_rate (total_read, secs);
    printf (", %" PRIu64 " bytes stored\n", total_stored);
  }
}

/* vmback list [--repo R] [SOURCE] */
int
cmd_list (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "repo", required_argument, 0, 'r' }, { "key-file", required_argument, 0, 'k' },
    { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
  };
  const char *rp = NULL, *kf = NULL;
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long (argc, argv, "h", lo, NULL)) != -1) {
    if (ch == 'r') rp = optarg;
    else if (ch == 'k') kf = optarg;
    else if (ch == 'h') {
      printf ("usage: vmback list [--repo R] [SOURCE] [--json]\n");
      return 0;
    } else return cli_usage_error ("list: unknown option '%s'", argv[optind - 1]);
  }
  if (argc - optind > 1)
    return cli_usage_error ("usage: vmback list [--repo R] [SOURCE]");
  struct repo *r = cli_open_repo (c, rp, kf);
  if (!r)
    return 1;
  struct manifest *pts;
  size_t n;
  struct vb_error e = { 0 };
  int rc = repo_list_points (r, argc - optind == 1 ? argv[optind] : NULL, &pts, &n, &e);
  repo_close (r);
  if (rc < 0)
    return cli_fail (&e);
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object *a = json_object_new_array ();
    for (size_t i = 0; i < n; i++)
      json_object_array_add (a, point_json (&pts[i]));
    json_object_object_add (j, "points", a);
    cli_json_print (j);
  } else {
    if (n && !c->quiet)
      printf ("%-44s %-20s %-4s %-11s %5s %14s %14s\n", "ID", "TIME (UTC)", "KIND", "TYPE",
              "DISKS", "DISK BYTES", "STORED NEW");
    for (size_t i = 0; i < n; i++) {
      char when[32];
      time_t t = (time_t) pts[i].finished;
      struct tm tm;
      gmtime_r (&t, &tm);
      strftime (when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
      uint64_t size = 0, stored = 0;
      bool incr = false;
      for (size_t k = 0; k < pts[i].n_disks; k++) {
        size += pts[i].disks[k].size;
        stored += pts[i].disks[k].bytes_new_stored;
        incr |= strcmp (pts[i].disks[k].change_id_used, "*") != 0;
      }
      printf ("%-44s %-20s %-4s %-11s %5zu %14" PRIu64 " %14" PRIu64 "\n", pts[i].id, when,
              pts[i].kind, incr ? "incremental" : "full", pts[i].n_disks, size, stored);
    }
  }
  free (pts);
  return 0;
}
