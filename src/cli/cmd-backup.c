/* vmback backup: a disk image into a new restore point. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "repo/repo-int.h"
#include "vmback/engine.h"

/* Print a point's summary as text or JSON. */
void cli_print_point (const struct cli *c, const struct manifest *m, double secs);

/* vmback backup [--repo R] DISK [--name NAME] [--full] [--threads N] */
int
cmd_backup (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "repo", required_argument, 0, 'r' }, { "key-file", required_argument, 0, 'k' },
    { "name", required_argument, 0, 'n' }, { "full", no_argument, 0, 'f' },
    { "threads", required_argument, 0, 't' }, { "help", no_argument, 0, 'h' },
    { 0, 0, 0, 0 },
  };
  const char *rp = NULL, *kf = NULL;
  struct engine_backup_opts o = { 0 };
  optind = 1;
  opterr = 0;
  int ch;
  uint64_t v;
  while ((ch = getopt_long (argc, argv, "h", lo, NULL)) != -1) {
    switch (ch) {
    case 'r': rp = optarg; break;
    case 'k': kf = optarg; break;
    case 'n': o.source_name = optarg; break;
    case 'f': o.full = true; break;
    case 't':
      if (cli_parse_u64 (optarg, &v) < 0 || v < 1 || v > 64)
        return cli_usage_error ("backup: --threads takes 1..64");
      o.threads = (int) v;
      break;
    case 'h':
      printf ("usage: vmback backup [--repo R] DISK [--name NAME] [--full] [--threads N]\n"
              "The first backup of a disk reads every allocated area; later ones read only\n"
              "what change tracking reports since the previous point (or everything,\n"
              "deduplicated, when tracking cannot answer).  --full forces a full read.\n");
      return 0;
    default:
      return cli_usage_error ("backup: unknown or incomplete option '%s'", argv[optind - 1]);
    }
  }
  if (argc - optind != 1)
    return cli_usage_error ("usage: vmback backup [--repo R] DISK [--name NAME] [--full]");
  struct repo *r = cli_open_repo (c, rp, kf);
  if (!r)
    return 1;
  struct cli_progress p;
  cli_progress_init (&p, c, "backup");
  o.progress = cli_progress_cb;
  o.opaque = &p;
  struct manifest *m = calloc (1, sizeof *m);
  struct vb_error e = { 0 };
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  int rc = m ? engine_backup_disk (r, argv[optind], &o, m, &e) : -1;
  clock_gettime (CLOCK_MONOTONIC, &t1);
  cli_progress_done (&p);
  repo_close (r);
  if (rc < 0) {
    free (m);
    return cli_fail (&e);
  }
  cli_print_point (c, m, (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
  free (m);
  return 0;
}
