/* vmback: command-line entry point and command table.
 *
 * `vmback COMMAND [ARGS]`.  --json, -q/--quiet, -h/--help are understood
 * anywhere on the line; each command parses the rest itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/tune.h"
#include "vmback-config.h"
#include "vmback/repo.h"

struct command {
  const char *name;
  cli_cmd_fn fn;
  const char *summary;
};

static const struct command commands[] = {
  { "disk", cmd_disk, "virtual disk operations (info, create, convert, read, write, ...)" },
  { "cbt",  cmd_cbt,  "changed block tracking (enable, disable, changeid, query)" },
  { "repo",    cmd_repo,    "create (init), describe (info) or copy points between repositories" },
  { "backup",  cmd_backup,  "back up a disk or a VM into a new restore point" },
  { "list",    cmd_list,    "list restore points" },
  { "restore", cmd_restore, "restore a point to a new disk, a device, or in place" },
  { "verify",  cmd_verify,  "check every chunk, index and manifest of the repository" },
  { "prune",   cmd_prune,   "remove restore points by a retention policy" },
  { "gc",      cmd_gc,      "delete chunks no restore point uses" },
  { "serve",   cmd_serve,   "export a point's disk over NBD (instant recovery)" },
  { "vm",      cmd_vm,      "VM directories: create one (.vmx, .vmsd, disks) or describe it (info)" },
};

/* Top-level usage text. */
static void
usage (FILE *f)
{
  fprintf (f, "usage: vmback [--json] [-q] [--s3-endpoint URL] [--s3-ca FILE] [--s3-path-style]\n"
              "              COMMAND [ARGS...]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf (f, "  %-9s %s\n", commands[i].name, commands[i].summary);
  fprintf (f, "\n'vmback COMMAND --help' shows the options of a command.\n"
           "A repository is a directory or s3://BUCKET/PREFIX (docs/S3.md).\n"
           "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

/* If argv[*i] is the global option `name` ("--name VALUE" or
 * "--name=VALUE"), store its value in *val, step over it and return 1;
 * -1 when the value is missing; 0 when it is another argument. */
static int
global_value (int argc, char **argv, int *i, const char *name, const char **val)
{
  size_t n = strlen (name);
  if (strncmp (argv[*i], name, n) != 0)
    return 0;
  if (argv[*i][n] == '=') {
    *val = argv[*i] + n + 1;
    return 1;
  }
  if (argv[*i][n] != '\0')
    return 0;
  if (*i + 1 >= argc) {
    fprintf (stderr, "vmback: %s needs a value\n", name);
    return -1;
  }
  *val = argv[++*i];
  return 1;
}

/* Remove global flags from argv wherever they are; return the new argc
 * (-1 on a global option without its value).  The S3 options go to the
 * repository layer. */
static int
take_global_flags (struct cli *c, int argc, char **argv)
{
  int out = 1;
  bool dashdash = false;
  struct repo_s3_options s3 = { 0 };
  for (int i = 1; i < argc; i++) {
    int g = 0;
    if (!dashdash && ((g = global_value (argc, argv, &i, "--s3-endpoint", &s3.endpoint))
                      || (g = global_value (argc, argv, &i, "--s3-ca", &s3.ca_file)))) {
      if (g < 0)
        return -1;
      continue;
    }
    if (!dashdash && strcmp (argv[i], "--s3-path-style") == 0) {
      s3.path_style = true;
      continue;
    }
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
  repo_s3_set_options (&s3);
  return out;
}

int
main (int argc, char **argv)
{
  struct cli c = { .prog = "vmback" };
  vb_malloc_tune ();
  argc = take_global_flags (&c, argc, argv);
  if (argc < 0)
    return 2;
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
