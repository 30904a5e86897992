/* vmback cbt: changed block tracking of a disk (docs/CTK.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Usage of the cbt command. */
static int
cbt_usage (FILE *f, int status)
{
  fprintf (f,
           "usage: vmback cbt enable FILE\n"
           "       vmback cbt disable FILE\n"
           "       vmback cbt changeid FILE\n"
           "       vmback cbt query FILE --since CHANGEID|'*' [--start OFFSET]\n"
           "query prints merged, sorted 'OFFSET LENGTH' byte extents changed after\n"
           "CHANGEID ('*' = every allocated area); exit 3 when the changeId is no\n"
           "longer valid (a full read is needed).\n");
  return status;
}

/* cbt query FILE --since ID [--start OFFSET] */
static int
cbt_query (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "since", required_argument, 0, 's' }, { "start", required_argument, 0, 'o' },
    { 0, 0, 0, 0 },
  };
  const char *since = NULL, *start = NULL;
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long (argc, argv, "s:o:", lo, NULL)) != -1) {
    if (ch == 's')
      since = optarg;
    else if (ch == 'o')
      start = optarg;
    else
      return cli_usage_error ("cbt query: unknown or incomplete option '%s'", argv[optind - 1]);
  }
  if (argc - optind != 1 || !since)
    return cli_usage_error ("cbt query: usage: vmback cbt query FILE --since CHANGEID|'*' [--start OFFSET]");
  uint64_t st = 0;
  if (start && cli_parse_size (start, &st) < 0)
    return cli_usage_error ("cbt query: bad --start '%s'", start);
  struct vdisk_extent_list l = { 0 };
  struct vb_error e = { 0 };
  int r = vdisk_query_changed (argv[optind], since, st, &l, &e);
  if (r < 0) {
    cli_fail (&e);
    return r == -ESTALE ? 3 : 1;
  }
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object *a = json_object_new_array ();
    uint64_t total = 0;
    for (size_t i = 0; i < l.n; i++) {
      json_object *x = json_object_new_object ();
      json_object_object_add (x, "offset", json_object_new_uint64 (l.v[i].offset));
      json_object_object_add (x, "length", json_object_new_uint64 (l.v[i].length));
      json_object_array_add (a, x);
      total += l.v[i].length;
    }
    json_object_object_add (j, "since", json_object_new_string (since));
    json_object_object_add (j, "start", json_object_new_uint64 (st));
    json_object_object_add (j, "changed-areas", a);
    json_object_object_add (j, "total-bytes", json_object_new_uint64 (total));
    cli_json_print (j);
  } else {
    for (size_t i = 0; i < l.n; i++)
      printf ("%" PRIu64 " %" PRIu64 "\n", l.v[i].offset, l.v[i].length);
  }
  vdisk_extent_list_free (&l);
  return 0;
}

/* vmback cbt SUBCOMMAND FILE ... */
int
cmd_cbt (struct cli *c, int argc, char **argv)
{
  if (argc < 2)
    return cbt_usage (stderr, 2);
  const char *sub = argv[1];
  if (strcmp (sub, "-h") == 0 || strcmp (sub, "--help") == 0)
    return cbt_usage (stdout, 0);
  for (int i = 2; i < argc; i++)
    if (strcmp (argv[i], "-h") == 0 || strcmp (argv[i], "--help") == 0)
      return cbt_usage (stdout, 0);
  if (strcmp (sub, "query") == 0)
    return cbt_query (c, argc - 1, argv + 1);
  if (argc != 3)
    return cbt_usage (stderr, 2);
  struct vb_error e = { 0 };
  const char *file = argv[2];
  if (strcmp (sub, "enable") == 0)
    return vdisk_ctk_enable (file, &e) < 0 ? cli_fail (&e) : 0;
  if (strcmp (sub, "disable") == 0)
    return vdisk_ctk_disable (file, &e) < 0 ? cli_fail (&e) : 0;
  if (strcmp (sub, "changeid") == 0) {
    char id[128];
    int r = vdisk_ctk_change_id (file, id, sizeof id, &e);
    if (r < 0) {
      cli_fail (&e);
      return r == -ESTALE ? 3 : 1;
    }
    if (c->json) {
      json_object *j = json_object_new_object ();
      json_object_object_add (j, "file", json_object_new_string (file));
      json_object_object_add (j, "change-id", json_object_new_string (id));
      cli_json_print (j);
    } else {
      printf ("%s\n", id);
    }
    return 0;
  }
  cli_usage_error ("cbt: unknown subcommand '%s'", sub);
  return cbt_usage (stderr, 2);
}
