/* vmback verify, prune, gc: repository maintenance commands. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vmback/engine.h"

/* Report lines: collected for --json, printed otherwise. */
struct lines { json_object *arr; const struct cli *c; FILE *f; };

/* Print or collect one line. */
static void
line_cb (void *opaque, const char *line)
{
  struct lines *l = opaque;
  if (l->c->json)
    json_object_array_add (l->arr, json_object_new_string (line));
  else if (!l->c->quiet || l->f == stderr)
    fprintf (l->f, "%s\n", line);
}

/* vmback verify [--repo R] [POINT] */
int
cmd_verify (struct cli *c, int argc, char **argv)
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
      printf ("usage: vmback verify [--repo R] [POINT]\n"
              "Authenticates manifests and indexes and decrypts, decompresses and hashes\n"
              "every chunk; reports each bad chunk with the points it breaks.\n"
              "Exit status 1 when anything is bad.\n");
      return 0;
    } else return cli_usage_error ("verify: unknown option '%s'", argv[optind - 1]);
  }
  struct repo *r = cli_open_repo (c, rp, kf);
  if (!r)
    return 1;
  struct lines l = { .arr = json_object_new_array (), .c = c, .f = stderr };
  struct engine_verify_result res;
  struct vb_error e = { 0 };
  int rc = engine_verify (r, argc - optind >= 1 ? argv[optind] : NULL, 0, line_cb, &l, &res, &e);
  repo_close (r);
  if (rc < 0) {
    json_object_put (l.arr);
    return cli_fail (&e);
  }
  bool bad = res.bad_chunks || res.bad_points;
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "points", json_object_new_uint64 (res.points));
    json_object_object_add (j, "chunks-checked", json_object_new_uint64 (res.chunks_checked));
    json_object_object_add (j, "bytes-checked", json_object_new_uint64 (res.bytes_checked));
    json_object_object_add (j, "bad-chunks", json_object_new_uint64 (res.bad_chunks));
    json_object_object_add (j, "bad-points", json_object_new_uint64 (res.bad_points));
    json_object_object_add (j, "problems", l.arr);
    json_object_object_add (j, "ok", json_object_new_boolean (!bad));
    cli_json_print (j);
  } else {
    json_object_put (l.arr);
    if (!c->quiet || bad)
      printf ("verified %" PRIu64 " point%s, %" PRIu64 " chunks (%" PRIu64 " bytes): %s\n",
              res.points, res.points == 1 ? "" : "s", res.chunks_checked, res.bytes_checked,
              bad ? "PROBLEMS FOUND" : "ok");
    if (bad)
      printf ("%" PRIu64 " bad chunk%s, %" PRIu64 " point%s affected\n", res.bad_chunks,
              res.bad_chunks == 1 ? "" : "s", res.bad_points, res.bad_points == 1 ? "" : "s");
  }
  return bad ? 1 : 0;
}

/* vmback prune [--repo R] --keep-... [--dry-run] [SOURCE] */
int
cmd_prune (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "repo", required_argument, 0, 'r' }, { "key-file", required_argument, 0, 'k' },
    { "keep-last", required_argument, 0, 'l' }, { "keep-hourly", required_argument, 0, 'H' },
    { "keep-daily", required_argument, 0, 'd' }, { "keep-weekly", required_argument, 0, 'w' },
    { "keep-monthly", required_argument, 0, 'm' }, { "keep-yearly", required_argument, 0, 'y' },
    { "dry-run", no_argument, 0, 'n' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
  };
  const char *rp = NULL, *kf = NULL;
  struct engine_prune_opts o = { 0 };
  optind = 1;
  opterr = 0;
  int ch;
  uint64_t v;
  while ((ch = getopt_long (argc, argv, "h", lo, NULL)) != -1) {
    int *slot = NULL;
    switch (ch) {
    case 'r': rp = optarg; continue;
    case 'k': kf = optarg; continue;
    case 'n': o.dry_run = true; continue;
    case 'l': slot = &o.keep_last; break;
    case 'H': slot = &o.keep_hourly; break;
    case 'd': slot = &o.keep_daily; break;
    case 'w': slot = &o.keep_weekly; break;
    case 'm': slot = &o.keep_monthly; break;
    case 'y': slot = &o.keep_yearly; break;
    case 'h':
      printf ("usage: vmback prune [--repo R] [--keep-last N] [--keep-hourly N] [--keep-daily N]\n"
              "                    [--keep-weekly N] [--keep-monthly N] [--keep-yearly N]\n"
              "                    [--dry-run] [SOURCE]\n"
              "Keeps the N newest points and the newest point of each of the N most recent\n"
              "hours/days/ISO weeks/months/years, per source; removes the rest.  Run\n"
              "'vmback gc' afterwards to free the chunks no point uses any more.\n");
      return 0;
    default:
      return cli_usage_error ("prune: unknown or incomplete option '%s'", argv[optind - 1]);
    }
    if (cli_parse_u64 (optarg, &v) < 0 || v > 1000000)
      return cli_usage_error ("prune: bad number '%s'", optarg);
    *slot = (int) v;
  }
  if (argc - optind == 1)
    o.source = argv[optind];
  struct repo *r = cli_open_repo (c, rp, kf);
  if (!r)
    return 1;
  struct lines l = { .arr = json_object_new_array (), .c = c, .f = stdout };
  uint64_t kept, removed;
  struct vb_error e = { 0 };
  int rc = engine_prune (r, &o, line_cb, &l, &kept, &removed, &e);
  repo_close (r);
  if (rc < 0) {
    json_object_put (l.arr);
    return cli_fail (&e);
  }
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "kept", json_object_new_uint64 (kept));
    json_object_object_add (j, "removed", json_object_new_uint64 (removed));
    json_object_object_add (j, "dry-run", json_object_new_boolean (o.dry_run));
    json_object_object_add (j, "decisions", l.arr);
    cli_json_print (j);
  } else {
    json_object_put (l.arr);
    if (!c->quiet)
      printf ("%" PRIu64 " kept, %" PRIu64 " %s\n", kept, removed,
              o.dry_run ? "would be removed" : "removed");
  }
  return 0;
}

/* vmback gc [--repo R] [--dry-run] */
int
cmd_gc (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "repo", required_argument, 0, 'r' }, { "key-file", required_argument, 0, 'k' },
    { "dry-run", no_argument, 0, 'n' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
  };
  const char *rp = NULL, *kf = NULL;
  bool dry = false;
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long (argc, argv, "h", lo, NULL)) != -1) {
    if (ch == 'r') rp = optarg;
    else if (ch == 'k') kf = optarg;
    else if (ch == 'n') dry = true;
    else if (ch == 'h') {
      printf ("usage: vmback gc [--repo R] [--dry-run]\n"
              "Deletes chunks no restore point references, the objects of points a\n"
              "killed backup left without a manifest, and (local repositories) the\n"
              "temporary files of writes that never finished.  In a packed repository\n"
              "(docs/FORMAT-packs.md) it deletes the packs no used chunk is in and packs\n"
              "no pack index names, rewrites packs less than 3/4 used, and merges the\n"
              "pack indexes into one.  Takes the exclusive lock.  --dry-run only counts.\n");
      return 0;
    } else return cli_usage_error ("gc: unknown option '%s'", argv[optind - 1]);
  }
  struct repo *r = cli_open_repo (c, rp, kf);
  if (!r)
    return 1;
  struct engine_gc_result res;
  struct vb_error e = { 0 };
  int rc = engine_gc (r, dry, &res, &e);
  repo_close (r);
  if (rc < 0)
    return cli_fail (&e);
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "chunks", json_object_new_uint64 (res.chunks_total));
    json_object_object_add (j, "deleted", json_object_new_uint64 (res.chunks_deleted));
    json_object_object_add (j, "bytes-freed", json_object_new_uint64 (res.bytes_deleted));
    json_object_object_add (j, "packs-deleted", json_object_new_uint64 (res.packs_deleted));
    json_object_object_add (j, "packs-repacked", json_object_new_uint64 (res.packs_repacked));
    json_object_object_add (j, "bytes-repacked", json_object_new_uint64 (res.bytes_repacked));
    json_object_object_add (j, "orphans", json_object_new_uint64 (res.orphans_deleted));
    json_object_object_add (j, "temporary-files", json_object_new_uint64 (res.tmp_deleted));
    json_object_object_add (j, "temporary-bytes", json_object_new_uint64 (res.tmp_bytes));
    json_object_object_add (j, "dry-run", json_object_new_boolean (dry));
    cli_json_print (j);
  } else if (!c->quiet) {
    printf ("%" PRIu64 " chunks, %" PRIu64 " %s (%" PRIu64 " bytes)\n", res.chunks_total,
            res.chunks_deleted, dry ? "unused" : "deleted", res.bytes_deleted);
    if (res.packs_deleted || res.packs_repacked)
      printf ("%" PRIu64 " pack%s %s, %" PRIu64 " %s (%" PRIu64 " bytes of live chunks "
              "%s)\n", res.packs_deleted, res.packs_deleted == 1 ? "" : "s",
              dry ? "unused" : "deleted", res.packs_repacked,
              dry ? "to rewrite" : "rewritten", res.bytes_repacked, dry ? "to copy" : "copied");
    if (res.orphans_deleted)
      printf ("%" PRIu64 " objects of unfinished points %s\n", res.orphans_deleted,
              dry ? "found" : "deleted");
    if (res.tmp_deleted)
      printf ("%" PRIu64 " temporary file%s of interrupted writes %s (%" PRIu64 " bytes)\n",
              res.tmp_deleted, res.tmp_deleted == 1 ? "" : "s", dry ? "found" : "deleted",
              res.tmp_bytes);
  }
  return 0;
}
