/* vmback: command-line entry point and command table.
 *
 * `vmback COMMAND [ARGS]`.  --json, -q/--quiet, -h/--help are understood
 * anywhere on the line; each command parses the rest itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vmback-config.h"

struct command {
  const char *name;
  cli_cmd_fn fn;
  const char *summary;
};

static const struct command commands[] = {
  { "disk", cmd_disk, "virtual disk operations (info, create, convert, read, write, ...)" },
  { "cbt",  cmd_cbt,  "changed block tracking (enable, disable, changeid, query)" },
  { "repo",    cmd_repo,    "create (init) or describe (info) a backup repository" },
  { "backup",  cmd_backup,  "back up a disk into a new restore point" },
  { "list",    cmd_list,    "list restore points" },
  { "restore", cmd_restore, "restore a point to a new disk, a device, or in place" },
  { "verify",  cmd_verify,  "check every chunk, index and manifest of the repository" },
  { "prune",   cmd_prune,   "remove restore points by a retention policy" },
  { "gc",      cmd_gc,      "delete chunks no restore point uses" },
  { "vm",      cmd_vm,      "VM directories: create one (.vmx, .vmsd, disks) or describe it (info)" },
};

/* Top-level usage text. */
static void
usage (FILE *f)
{
  fprintf (f, "usage: vmback [--json] [-q] COMMAND [ARGS...]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf (f, "  %-9s %s\n", commands[i].name, commands[i].summary);
  fprintf (f, "\n'vmback COMMAND --help' shows the options of a command.\n"
           "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

/* Remove global flags from argv wherever they are; return the new argc. */
static int
take_global_flags (struct cli *c, int argc, char **argv)
{
  int out = 1;
  bool dashdash = false;
  for (int i = 1; i < argc; i++) {
    if (!dashdash && strcmp (argv[i], "--") == 0)
      dashdash = true;
    else if (!dashdash && strcmp (argv[i], "--json") == 0) {
      c->json = true;
      continue;
    } else if (!dashdash && (strcmp (argv[i], "-q") == 0 || strcmp (argv[i], "--quiet") == 0)) {
      c->quiet = true;
      continue;
    }
    argv[out++] = argv[i];
  }
  argv[out] = NULL;
  return out;
}

int
main (int argc, char **argv)
{
  struct cli c = { .prog = "vmback" };
  argc = take_global_flags (&c, argc, argv);
  if (argc < 2) {
    usage (stderr);
    return 2;
  }
  if (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0
      || strcmp (argv[1], "help") == 0) {
    usage (stdout);
    return 0;
  }
  if (strcmp (argv[1], "--version") == 0 || strcmp (argv[1], "version") == 0) {
    printf ("vmback %s\n", VMBACK_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (strcmp (argv[1], commands[i].name) == 0)
      return commands[i].fn (&c, argc - 1, argv + 1);
  fprintf (stderr, "vmback: unknown command '%s'\n", argv[1]);
  usage (stderr);
  return 2;
}
