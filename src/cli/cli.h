/* vmback CLI: shared declarations of the command table and helpers. */
#ifndef VMBACK_CLI_H
#define VMBACK_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "vmback/vdisk.h"

/* Options every command understands, parsed once in main.c. */
struct cli {
  bool json;        /* --json: machine-readable output on stdout */
  bool quiet;       /* -q: no progress, no chatter */
  const char *prog; /* "vmback" */
};

/* A command's entry point: argv[0] is the command name; returns the exit
 * status (0 ok, 1 failure, 2 usage error). */
typedef int (*cli_cmd_fn) (struct cli *c, int argc, char **argv);

int cmd_disk (struct cli *c, int argc, char **argv);
int cmd_cbt (struct cli *c, int argc, char **argv);
int cmd_repo (struct cli *c, int argc, char **argv);
int cmd_backup (struct cli *c, int argc, char **argv);
int cmd_list (struct cli *c, int argc, char **argv);
int cmd_restore (struct cli *c, int argc, char **argv);
int cmd_verify (struct cli *c, int argc, char **argv);
int cmd_prune (struct cli *c, int argc, char **argv);
int cmd_gc (struct cli *c, int argc, char **argv);
int cmd_serve (struct cli *c, int argc, char **argv);
int cmd_vm (struct cli *c, int argc, char **argv);
/* vm snapshot ... (cmd-snapshot.c), argv[0] = "snapshot" */
int cmd_vm_snapshot (struct cli *c, int argc, char **argv);

struct repo;
/* Open the repository named by --repo (repo_opt) or $VMBACK_REPO, with
 * the passphrase from $VMBACK_PASSPHRASE, --key-file/$VMBACK_KEY_FILE, or
 * a prompt on a terminal.  Prints the error and returns NULL on failure. */
struct repo *cli_open_repo (const struct cli *c, const char *repo_opt,
                            const char *key_file);
/* Read a passphrase: $VMBACK_PASSPHRASE, else a prompt without echo on the
 * terminal (twice when confirm); NULL when neither is possible. malloc'd. */
char *cli_passphrase (const char *prompt, bool confirm);

/* Print "vmback: <msg>" to stderr; return 1. */
int cli_fail (const struct vb_error *e);
/* Print "vmback: <fmt>" to stderr; return 2 (usage errors). */
int cli_usage_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Parse "10G", "512M", "4096", "1.5T"... (binary units) into bytes. */
int cli_parse_size (const char *s, uint64_t *out);
/* Parse an unsigned decimal/hex number. */
int cli_parse_u64 (const char *s, uint64_t *out);

/* Print a json object to stdout (pretty) and release it. */
void cli_json_print (json_object *o);

/* Progress bar on stderr when it is a terminal and not quiet. */
struct cli_progress {
  const struct cli *c;
  const char *what;
  uint64_t start_ns;
  uint64_t last_ns;
  bool shown;
};
void cli_progress_init (struct cli_progress *p, const struct cli *c,
                        const char *what);
void cli_progress_cb (void *opaque, uint64_t done, uint64_t total);
void cli_progress_done (struct cli_progress *p);

#endif
