/* vmback repo: create and describe repositories; opening helper. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "vmback/engine.h"
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
  /* the Enter typed was not echoed: end the prompt's line, with write(2)
   * since the stream was last read (stdio needs a seek in between) */
  ssize_t w = write (fd, "\n", 1);
  (void) w;
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

/* vmback repo init PATH [--chunk-size S] [--pack-size S] [--compression N]
 *                  [--encrypt [--key-file F]] */
static int
repo_init_cmd (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "chunk-size", required_argument, 0, 'c' }, { "encrypt", no_argument, 0, 'e' },
    { "key-file", required_argument, 0, 'k' }, { "compression", required_argument, 0, 'z' },
    { "pack-size", required_argument, 0, 'p' }, { 0, 0, 0, 0 },
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
    case 'p':
      if (cli_parse_size (optarg, &v) < 0 || v > UINT32_MAX)
        return cli_usage_error ("repo init: bad --pack-size '%s'", optarg);
      o.pack_size = (uint32_t) v;
      o.pack_size_set = true;
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
    return cli_usage_error ("usage: vmback repo init PATH [--chunk-size S] [--pack-size S] "
                            "[--compression N] [--encrypt [--key-file F]]");
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
    json_object_object_add (j, "pack-size", json_object_new_uint64 (in.pack_size));
    json_object_object_add (j, "compression-level", json_object_new_int (in.compress_level));
    json_object_object_add (j, "encrypted", json_object_new_boolean (in.encrypted));
    json_object_object_add (j, "kdf", json_object_new_string (in.kdf));
    json_object_object_add (j, "points", json_object_new_uint64 (in.n_points));
    json_object_object_add (j, "chunks", json_object_new_uint64 (in.n_chunks));
    json_object_object_add (j, "chunk-bytes", json_object_new_uint64 (in.chunk_bytes));
    json_object_object_add (j, "chunk-objects", json_object_new_uint64 (in.n_objects));
    cli_json_print (j);
  } else {
    char packs[64] = "none (one object per chunk)";
    if (in.pack_size)
      snprintf (packs, sizeof packs, "%u", in.pack_size);
    printf ("repository id:  %s\nformat:         %d\nchunk size:     %u\npack size:      %s\n"
            "compression:    zstd level %d\nencryption:     %s\nkdf:            %s\n"
            "restore points: %" PRIu64 "\nchunks:         %" PRIu64 " (%" PRIu64 " bytes stored "
            "in %" PRIu64 " %s)\n",
            in.id, in.format, in.chunk_size, packs, in.compress_level,
            in.encrypted ? "aes-256-gcm" : "none", in.kdf, in.n_points, in.n_chunks,
            in.chunk_bytes, in.n_objects, in.pack_size ? "packs" : "objects");
  }
  return 0;
}

/* Open path with the secret from pass (a passphrase) or key_file, or a
 * prompt on a terminal when the repository needs one.  Prints the error
 * and returns NULL on failure. */
static struct repo *
open_with_secret (const char *path, const char *pass, const char *key_file,
                  const char *prompt)
{
  struct repo *r = NULL;
  struct vb_error e = { 0 };
  int rc = repo_open (path, pass, key_file, &r, &e);
  if (rc == -ENOKEY && !pass && !key_file && isatty (STDIN_FILENO)) {
    FILE *tty = fopen ("/dev/tty", "w");
    if (tty) {
      fprintf (tty, "%s\n", path);
      fclose (tty);
    }
    char *pw = cli_passphrase (prompt, false);
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

/* Report lines of the copy: collected for --json, printed otherwise. */
struct copy_lines { const struct cli *c; json_object *arr; };

/* Print or collect one "copied ID" / "exists ID" line. */
static void
copy_line (void *opaque, const char *line)
{
  struct copy_lines *l = opaque;
  if (l->c->json)
    json_object_array_add (l->arr, json_object_new_string (line));
  else if (!l->c->quiet)
    printf ("%s\n", line);
}

/* Print the copy's summary (text or JSON). */
static void
print_copy (const struct cli *c, const struct engine_copy_result *res,
            json_object *lines, double secs)
{
  if (c->json) {
    json_object *j = json_object_new_object ();
    json_object_object_add (j, "points-copied", json_object_new_uint64 (res->points_copied));
    json_object_object_add (j, "points-present", json_object_new_uint64 (res->points_present));
    json_object_object_add (j, "chunks-sent", json_object_new_uint64 (res->chunks_sent));
    json_object_object_add (j, "chunks-present", json_object_new_uint64 (res->chunks_present));
    json_object_object_add (j, "chunks-read", json_object_new_uint64 (res->chunks_read));
    json_object_object_add (j, "bytes-sent", json_object_new_uint64 (res->bytes_sent));
    json_object_object_add (j, "reencrypted", json_object_new_boolean (res->reencrypted));
    json_object_object_add (j, "seconds", json_object_new_double (secs));
    json_object_object_add (j, "points", lines);
    cli_json_print (j);
    return;
  }
  json_object_put (lines);
  if (!c->quiet)
    printf ("copied %" PRIu64 " point%s (%" PRIu64 " already there): %" PRIu64
            " chunks sent (%" PRIu64 " bytes), %" PRIu64 " already there%s, %.1f s\n",
            res->points_copied, res->points_copied == 1 ? "" : "s", res->points_present,
            res->chunks_sent, res->bytes_sent, res->chunks_present,
            res->reencrypted ? ", re-encrypted" : "", secs);
}

/* vmback repo copy SRC DST [POINT...] [--key-file F] [--dst-key-file F] */
static int
repo_copy_cmd (struct cli *c, int argc, char **argv)
{
  static const struct option lo[] = {
    { "key-file", required_argument, 0, 'k' }, { "dst-key-file", required_argument, 0, 'K' },
    { "threads", required_argument, 0, 't' }, { "help", no_argument, 0, 'h' },
    { 0, 0, 0, 0 },
  };
  const char *kf = NULL, *dkf = NULL;
  struct engine_copy_opts o = { 0 };
  optind = 1;
  opterr = 0;
  int ch;
  uint64_t v;
  while ((ch = getopt_long (argc, argv, "h", lo, NULL)) != -1) {
    switch (ch) {
    case 'k': kf = optarg; break;
    case 'K': dkf = optarg; break;
    case 't':
      if (cli_parse_u64 (optarg, &v) < 0 || v < 1 || v > 64)
        return cli_usage_error ("repo copy: --threads takes 1..64");
      o.threads = (int) v;
      break;
    case 'h':
      printf ("usage: vmback repo copy SRC DST [POINT...] [--key-file F] [--dst-key-file F]\n"
              "Copies restore points (all, or the POINTs given) from repository SRC to\n"
              "repository DST (directories or s3://BUCKET/PREFIX), sending only the\n"
              "chunks DST lacks; re-encrypts when the keys differ.  Rerun it after an\n"
              "interruption: points already in DST are skipped.\n"
              "SRC's secret: $VMBACK_PASSPHRASE, --key-file / $VMBACK_KEY_FILE.\n"
              "DST's secret: $VMBACK_DST_PASSPHRASE, --dst-key-file / $VMBACK_DST_KEY_FILE,\n"
              "else the same as SRC's.\n");
      return 0;
    default:
      return cli_usage_error ("repo copy: unknown or incomplete option '%s'", argv[optind - 1]);
    }
  }
  if (argc - optind < 2)
    return cli_usage_error ("usage: vmback repo copy SRC DST [POINT...] [--key-file F] "
                            "[--dst-key-file F]");
  const char *src = argv[optind], *dst = argv[optind + 1];
  o.points = (const char *const *) argv + optind + 2;
  o.n_points = (size_t) (argc - optind - 2);
  if (!kf)
    kf = getenv ("VMBACK_KEY_FILE");
  const char *pass = getenv ("VMBACK_PASSPHRASE");
  const char *dpass = getenv ("VMBACK_DST_PASSPHRASE");
  if (!dkf)
    dkf = getenv ("VMBACK_DST_KEY_FILE");
  if (!dpass && !dkf) {           /* same secret as the source */
    dpass = pass;
    dkf = kf;
  }
  struct repo *rs = open_with_secret (src, pass, kf, "source repository passphrase: ");
  if (!rs)
    return 1;
  struct repo *rd = open_with_secret (dst, dpass, dkf, "destination repository passphrase: ");
  if (!rd) {
    repo_close (rs);
    return 1;
  }
  struct cli_progress p;
  cli_progress_init (&p, c, "copy");
  o.progress = cli_progress_cb;
  o.opaque = &p;
  struct copy_lines l = { .c = c, .arr = json_object_new_array () };
  o.report = copy_line;
  o.report_opaque = &l;
  struct engine_copy_result res;
  struct vb_error e = { 0 };
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  int rc = engine_copy (rs, rd, &o, &res, &e);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  cli_progress_done (&p);
  repo_close (rd);
  repo_close (rs);
  if (rc < 0) {
    json_object_put (l.arr);
    return cli_fail (&e);
  }
  print_copy (c, &res, l.arr, (double) (t1.tv_sec - t0.tv_sec)
                              + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}

/* vmback repo init|info|copy */
int
cmd_repo (struct cli *c, int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "init") == 0)
    return repo_init_cmd (c, argc - 1, argv + 1);
  if (argc >= 2 && strcmp (argv[1], "info") == 0)
    return repo_info_cmd (c, argc - 1, argv + 1);
  if (argc >= 2 && strcmp (argv[1], "copy") == 0)
    return repo_copy_cmd (c, argc - 1, argv + 1);
  FILE *f = argc >= 2 && (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0)
    ? stdout : stderr;
  fprintf (f, "usage: vmback repo init PATH [--chunk-size S] [--pack-size S] [--compression N]\n"
              "                        [--encrypt [--key-file F]]\n"
              "       vmback repo info [--repo R]\n"
              "       vmback repo copy SRC DST [POINT...] [--key-file F] [--dst-key-file F]\n"
              "A repository is a directory or s3://BUCKET/PREFIX (docs/S3.md).\n"
              "The passphrase of an encrypted repository comes from $VMBACK_PASSPHRASE,\n"
              "--key-file F / $VMBACK_KEY_FILE (the file's bytes), or a prompt.\n");
  return f == stdout ? 0 : 2;
}
