/* vmback repo: create and describe repositories; opening helper. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "vmback/repo.h"

/* Read one line from the terminal without echo. */
static char *
read_hidden (const char *prompt)
{
  FILE *tty = fopen ("/dev/tty", "r+");
  if (!tty)
    return NULL;
  struct termios old, noecho;
  int fd = fileno (tty);
  bool restore = tcgetattr (fd, &old) == 0;
  if (restore) {
    noecho = old;
    noecho.c_lflag &= ~(tcflag_t) ECHO;
    tcsetattr (fd, TCSAFLUSH, &noecho);
  }
  fprintf (tty, "%s", prompt);
  fflush (tty);
  char buf[1024];
  char *r = fgets (buf, sizeof buf, tty);
  if (restore)
    tcsetattr (fd, TCSAFLUSH, &old);
  fprintf (tty, "\n");
  fclose (tty);
  if (!r)
    return NULL;
  buf[strcspn (buf, "\r\n")] = '\0';
  char *out = strdup (buf);
  explicit_bzero (buf, sizeof buf);
  return out;
}

/* Passphrase from the environment or the terminal. */
char *
cli_passphrase (const char *prompt, bool confirm)
{
  const char *env = getenv ("VMBACK_PASSPHRASE");
  if (env)
    return strdup (env);
  if (!isatty (STDIN_FILENO))
    return NULL;
  char *a = read_hidden (prompt);
  if (!a || !confirm)
    return a;
  char *b = read_hidden ("repeat passphrase: ");
  bool same = b && strcmp (a, b) == 0;
  if (b) {
    explicit_bzero (b, strlen (b));
    free (b);
  }
  if (!same) {
    fprintf (stderr, "vmback: passphrases do not match\n");
    explicit_bzero (a, strlen (a));
    free (a);
    return NULL;
  }
  return a;
}

/* Open --repo / $VMBACK_REPO. */
struct repo *
cli_open_repo (const struct cli *c, const char *repo_opt, const char *key_file)
{
  const char *path = repo_opt ? repo_opt : getenv ("VMBACK_REPO");
  if (!path || !*path) {
    cli_usage_error ("no repository: use --repo PATH or set VMBACK_REPO");
    return NULL;
  }
  if (!key_file)
    key_file = getenv ("VMBACK_KEY_FILE");
  struct repo *r = NULL;
  struct vb_error e = { 0 };
  const char *env = getenv ("VMBACK_PASSPHRASE");
  int rc = repo_open (path, env, key_file, &r, &e);
  if (rc == -ENOKEY && !env && !key_file && isatty (STDIN_FILENO)) {
    char *pw = cli_passphrase ("repository passphrase: ", false);
    vb_err_clear (&e);
    rc = pw ? repo_open (path, pw, NULL, &r, &e) : -ENOKEY;
    if (pw) {
      explicit_bzero (pw, strlen (pw));
      free (pw);
    }
  }
  if (rc < 0) {
    cli_fail (&e);
    return NULL;
  }
  return r;
}

/* vmback repo init PATH [--chunk-size S] [--compression N] [--encrypt [--key-file F]] */
static int
repo_init_cmd (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "chunk-size", required_argument, 0, 'c' }, { "encrypt", no_argument, 0, 'e' },
    { "key-file", required_argument, 0, 'k' }, { "compression", required_argument, 0, 'z' },
    { 0, 0, 0, 0 },
  };
  struct repo_init_opts o = { 0 };
  optind = 1;
  opterr = 0;
  int ch;
  uint64_t v;
  while ((ch = getopt_long (argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
    case 'c':
      if (cli_parse_size (optarg, &v) < 0 || v > UINT32_MAX)
        return cli_usage_error ("repo init: bad --chunk-size '%s'", optarg);
      o.chunk_size = (uint32_t) v;
      break;
    case 'z':
      if (cli_parse_u64 (optarg, &v) < 0 || v < 1 || v > 19)
        return cli_usage_error ("repo init: --compression takes a zstd level 1..19");
      o.compress_level = (int) v;
      break;
    case 'e': o.encrypt = true; break;
    case 'k': o.key_file = optarg; break;
    default:
      return cli_usage_error ("repo init: unknown or incomplete option '%s'", argv[optind - 1]);
    }
  }
  if (argc - optind != 1)
    return cli_usage_error ("usage: vmback repo init PATH [--chunk-size S] [--compression N] "
                            "[--encrypt [--key-file F]]");
  char *pw = NULL;
  if (o.encrypt && !o.key_file) {
    pw = cli_passphrase ("new repository passphrase: ", true);
    if (!pw)
      return cli_usage_error ("repo init --encrypt: set VMBACK_PASSPHRASE, use --key-file, "
                              "or run on a terminal to type a passphrase");
    o.passphrase = pw;
  }
  struct vb_error e = { 0 };
  int rc = repo_init (argv[optind], &o, &e);
  if (pw) {
    explicit_bzero (pw, strlen (pw));
    free (pw);
  }
  if (rc < 0)
    return cli_fail (&e);
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "repository", json_object_new_string (argv[optind]));
    json_object_object_add (j, "encrypted", json_object_new_boolean (o.encrypt));
    cli_json_print (j);
  } else if (!c->quiet) {
    printf ("created %srepository %s\n", o.encrypt ? "encrypted " : "", argv[optind]);
  }
  return 0;
}

/* vmback repo info [--repo R] */
static int
repo_info_cmd (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "repo", required_argument, 0, 'r' }, { "key-file", required_argument, 0, 'k' },
    { 0, 0, 0, 0 },
  };
  const char *rp = NULL, *kf = NULL;
  optind = 1;
  opterr = 0;
  int ch;
  while ((ch = getopt_long (argc, argv, "", lo, NULL)) != -1) {
    if (ch == 'r') rp = optarg;
    else if (ch == 'k') kf = optarg;
    else return cli_usage_error ("repo info: unknown option '%s'", argv[optind - 1]);
  }
  if (argc - optind == 1 && !rp)
    rp = argv[optind];
  struct repo *r = cli_open_repo (c, rp, kf);
  if (!r)
    return 1;
  struct repo_info in;
  struct vb_error e = { 0 };
  int rc = repo_get_info (r, &in, &e);
  repo_close (r);
  if (rc < 0)
    return cli_fail (&e);
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "id", json_object_new_string (in.id));
    json_object_object_add (j, "format", json_object_new_int (in.format));
    json_object_object_add (j, "chunk-size", json_object_new_uint64 (in.chunk_size));
    json_object_object_add (j, "compression-level", json_object_new_int (in.compress_level));
    json_object_object_add (j, "encrypted", json_object_new_boolean (in.encrypted));
    json_object_object_add (j, "kdf", json_object_new_string (in.kdf));
    json_object_object_add (j, "points", json_object_new_uint64 (in.n_points));
    json_object_object_add (j, "chunks", json_object_new_uint64 (in.n_chunks));
    json_object_object_add (j, "chunk-bytes", json_object_new_uint64 (in.chunk_bytes));
    cli_json_print (j);
  } else {
    printf ("repository id:  %s\nformat:         %d\nchunk size:     %u\n"
            "compression:    zstd level %d\nencryption:     %s\nkdf:            %s\n"
            "restore points: %" PRIu64 "\nchunks:         %" PRIu64 " (%" PRIu64 " bytes stored)\n",
            in.id, in.format, in.chunk_size, in.compress_level,
            in.encrypted ? "aes-256-gcm" : "none", in.kdf, in.n_points, in.n_chunks,
            in.chunk_bytes);
  }
  return 0;
}

/* vmback repo init|info */
int
cmd_repo (struct cli *c, int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "init") == 0)
    return repo_init_cmd (c, argc - 1, argv + 1);
  if (argc >= 2 && strcmp (argv[1], "info") == 0)
    return repo_info_cmd (c, argc - 1, argv + 1);
  FILE *f = argc >= 2 && (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0)
    ? stdout : stderr;
  fprintf (f, "usage: vmback repo init PATH [--chunk-size S] [--compression N] [--encrypt [--key-file F]]\n"
              "       vmback repo info [--repo R]\n"
              "The passphrase of an encrypted repository comes from $VMBACK_PASSPHRASE,\n"
              "--key-file F / $VMBACK_KEY_FILE (the file's bytes), or a prompt.\n");
  return f == stdout ? 0 : 2;
}
