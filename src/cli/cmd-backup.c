/* vmback backup: a disk image or a whole VM into a new restore point. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "connectors/connector.h"
#include "repo/repo-int.h"
#include "transport/transport.h"
#include "vmback/engine.h"

/* Print a point's summary as text or JSON. */
void cli_print_point (const struct cli *c, const struct manifest *m, double secs);

/* Set by SIGINT/SIGTERM during a VM backup: the engine stops between
 * chunks and deletes its snapshot. */
static volatile sig_atomic_t cancel_signal;

/* Remember the signal (async-signal-safe). */
static void
on_cancel (int sig)
{
  cancel_signal = sig;
}

/* Catch SIGINT/SIGTERM (restore = false) or put the old handlers back. */
static void
cancel_handlers (bool restore)
{
  static struct sigaction old_int, old_term;
  if (restore) {
    sigaction (SIGINT, &old_int, NULL);
    sigaction (SIGTERM, &old_term, NULL);
    return;
  }
  struct sigaction sa;
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_cancel;
  sigemptyset (&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction (SIGINT, &sa, &old_int);
  sigaction (SIGTERM, &sa, &old_term);
}

/* Parse --quiesce[=on|required]. */
static int
parse_quiesce (const char *arg, enum engine_quiesce *q)
{
  if (!arg || strcmp (arg, "on") == 0 || strcmp (arg, "try") == 0)
    *q = ENGINE_QUIESCE_TRY;
  else if (strcmp (arg, "required") == 0)
    *q = ENGINE_QUIESCE_REQUIRED;
  else if (strcmp (arg, "off") == 0)
    *q = ENGINE_QUIESCE_OFF;
  else
    return -1;
  return 0;
}

/* vmback backup [--repo R] DISK|VMX [--name NAME] [--full] [--quiesce[=required]] [--threads N] */
int
cmd_backup (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "repo", required_argument, 0, 'r' }, { "key-file", required_argument, 0, 'k' },
    { "name", required_argument, 0, 'n' }, { "full", no_argument, 0, 'f' },
    { "threads", required_argument, 0, 't' }, { "help", no_argument, 0, 'h' },
    { "quiesce", optional_argument, 0, 'Q' }, { "transport", required_argument, 0, 'T' },
    { 0, 0, 0, 0 },
  };
  const char *rp = NULL, *kf = NULL;
  struct engine_backup_opts o = { .quiet = c->quiet };
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
    case 'Q':
      if (parse_quiesce (optarg, &o.quiesce) < 0)
        return cli_usage_error ("backup: --quiesce takes on or required, not '%s'", optarg);
      break;
    case 'T':
      if (!vb_transport_valid (optarg))
        return cli_usage_error ("backup: unknown transport '%s' (san, hotadd, nbd, nbdssl, "
                                "auto)", optarg);
      o.transport = optarg;
      break;
    case 't':
      if (cli_parse_u64 (optarg, &v) < 0 || v < 1 || v > 64)
        return cli_usage_error ("backup: --threads takes 1..64");
      o.threads = (int) v;
      break;
    case 'h':
      printf ("usage: vmback backup [--repo R] DISK [--name NAME] [--full] [--threads N]\n"
              "                     [--transport MODE]\n"
              "       vmback backup [--repo R] VMX [--quiesce[=required]] [--full] [--threads N]\n"
              "                     [--transport MODE]\n"
              "The first backup of a disk reads every allocated area; later ones read only\n"
              "what change tracking reports since the previous point (or everything,\n"
              "deduplicated, when tracking cannot answer).  --full forces a full read.\n"
              "A VM (NAME.vmx) is backed up whole: its configuration, then every disk of a\n"
              "snapshot taken for the backup (quiesced with --quiesce) and deleted after.\n"
              "--transport: how disk bytes are read: san (the files directly), hotadd (a\n"
              "loop device; flat disks, needs root), nbd, nbdssl (NBD, TLS with a fresh\n"
              "key), auto (san, hotadd, nbd: the first that works; the VM default).  A\n"
              "disk image is read directly unless --transport is given.\n");
      return 0;
    default:
      return cli_usage_error ("backup: unknown or incomplete option '%s'", argv[optind - 1]);
    }
  }
  if (argc - optind != 1)
    return cli_usage_error ("usage: vmback backup [--repo R] DISK|VMX [--name NAME] [--full]");
  bool vm = vb_connector_find (argv[optind]) != NULL;
  if (!vm && o.quiesce != ENGINE_QUIESCE_OFF)
    return cli_usage_error ("backup: --quiesce needs a VM (a .vmx), not a disk image");
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
  int rc = -1;
  if (m && vm) {
    o.cancel = &cancel_signal;
    cancel_handlers (false);
    rc = engine_backup_vm (r, argv[optind], &o, m, &e);
    cancel_handlers (true);
  } else if (m)
    rc = engine_backup_disk (r, argv[optind], &o, m, &e);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  cli_progress_done (&p);
  repo_close (r);
  if (rc < 0) {
    free (m);
    cli_fail (&e);
    return cancel_signal ? 128 + cancel_signal : 1;
  }
  cli_print_point (c, m, (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
  free (m);
  return 0;
}
