/* Unit tests of the repository core: the local storage backend
 * (src/repo/backend-local.c), config/init/open and points (src/repo/repo.c)
 * and locks (src/repo/lock.c); docs/FORMAT.md.
 *
 * Every test works in a fresh directory under one mkdtemp() directory.
 * Lock conflicts with another process use a forked child that opens the
 * repository itself, takes a lock, reports over a pipe and waits for the
 * parent's word before it exits (or dies without unlocking). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmback/repo.h"
#include "repo/repo-int.h"

static char tmpdir[64];
static char dir[256];          /* this test's directory (not yet created) */
static int test_no;

/* Fresh path per test. */
static int
setup (void **state)
{
  snprintf (dir, sizeof dir, "%s/t%d", tmpdir, ++test_no);
  return 0;
}

static int
group_setup (void **state)
{
  strcpy (tmpdir, "/tmp/vmback-test-repo-XXXXXX");
  return mkdtemp (tmpdir) ? 0 : -1;
}

static int
group_teardown (void **state)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system (cmd) == 0 ? 0 : -1;
}

/* --- helpers ----------------------------------------------------------- */

static mode_t
mode_of (const char *p)
{
  struct stat st;
  assert_int_equal (stat (p, &st), 0);
  return st.st_mode & 07777;
}

/* Number of entries of directory p whose name starts with pfx. */
static int
count_entries (const char *p, const char *pfx)
{
  DIR *d = opendir (p);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, "..")
        && strncmp (de->d_name, pfx, strlen (pfx)) == 0)
      n++;
  closedir (d);
  return n;
}

static void
write_file (const char *p, const char *text)
{
  FILE *f = fopen (p, "w");
  assert_non_null (f);
  fputs (text, f);
  fclose (f);
}

struct keys_seen {
  char keys[32][128];
  uint64_t sizes[32];
  int n;
};

static int
collect (void *opaque, const char *key, uint64_t size)
{
  struct keys_seen *k = opaque;
  assert_true (k->n < 32);
  snprintf (k->keys[k->n], sizeof k->keys[0], "%s", key);
  k->sizes[k->n++] = size;
  return 0;
}

static bool
seen (const struct keys_seen *k, const char *key)
{
  for (int i = 0; i < k->n; i++)
    if (strcmp (k->keys[i], key) == 0)
      return true;
  return false;
}

static int
stop_at_first (void *opaque, const char *key, uint64_t size)
{
  ++*(int *) opaque;
  return 7;
}

static struct repo_backend *
backend_open (void)
{
  struct repo_backend *b = NULL;
  struct vb_error e = { 0 };
  assert_int_equal (repo_backend_local.open (dir, true, &b, &e), 0);
  return b;
}

/* --- backend ------------------------------------------------------------ */

static void
test_backend_put_get_list_del (void **state)
{
  struct vb_error e = { 0 };
  snprintf (dir, sizeof dir, "%s/t%d/nested/repo", tmpdir, test_no);
  struct repo_backend *b = backend_open ();
  assert_int_equal (mode_of (dir) & 0777, 0700);

  /* open without create on a missing path fails */
  char missing[300];
  struct repo_backend *b2 = NULL;
  snprintf (missing, sizeof missing, "%s/nope", dir);
  assert_int_equal (repo_backend_local.open (missing, false, &b2, &e), -ENOENT);
  assert_null (b2);
  vb_err_clear (&e);

  assert_int_equal (b->ops->put (b, "a/b/c", "hello", 5, 0, &e), 0);
  assert_int_equal (b->ops->put (b, "a/d", "xy", 2, 0, &e), 0);
  assert_int_equal (b->ops->put (b, "top", "", 0, 0, &e), 0);
  assert_int_equal (b->ops->put (b, "ab/x", "1", 1, 0, &e), 0);
  char p[512];
  snprintf (p, sizeof p, "%s/a/b/c", dir);
  assert_int_equal (mode_of (p), 0600);
  snprintf (p, sizeof p, "%s/a/b", dir);
  assert_int_equal (mode_of (p) & 0777, 0700);
  snprintf (p, sizeof p, "%s/a", dir);
  assert_int_equal (mode_of (p) & 0777, 0700);
  /* no temporary file is left behind */
  snprintf (p, sizeof p, "%s/a/b", dir);
  assert_int_equal (count_entries (p, ".tmp-"), 0);

  uint8_t *data;
  size_t len;
  assert_int_equal (b->ops->get (b, "a/b/c", 100, &data, &len, &e), 0);
  assert_int_equal (len, 5);
  assert_memory_equal (data, "hello", 5);
  assert_int_equal (data[5], 0);      /* NUL-terminated for parsers */
  free (data);
  assert_int_equal (b->ops->get (b, "top", 100, &data, &len, &e), 0);
  assert_int_equal (len, 0);
  free (data);
  /* bounded */
  assert_int_equal (b->ops->get (b, "a/b/c", 4, &data, &len, &e), -EFBIG);
  assert_null (data);
  vb_err_clear (&e);
  assert_int_equal (b->ops->get (b, "a/zz", 100, &data, &len, &e), -ENOENT);
  assert_non_null (strstr (e.msg, "'a/zz'"));
  vb_err_clear (&e);
  /* a directory is not an object */
  assert_int_equal (b->ops->exists (b, "a/b", &e), 0);
  assert_int_equal (b->ops->exists (b, "a/b/c", &e), 1);
  assert_int_equal (b->ops->exists (b, "a/b/c/d", &e), 0);

  /* overwrite without EXCL replaces */
  assert_int_equal (b->ops->put (b, "a/b/c", "bye", 3, 0, &e), 0);
  assert_int_equal (b->ops->get (b, "a/b/c", 100, &data, &len, &e), 0);
  assert_int_equal (len, 3);
  assert_memory_equal (data, "bye", 3);
  free (data);

  /* a stray temporary file is invisible to list */
  snprintf (p, sizeof p, "%s/a/.tmp-1-dead", dir);
  write_file (p, "junk");

  struct keys_seen k = { 0 };
  assert_int_equal (b->ops->list (b, "", collect, &k, &e), 0);
  assert_int_equal (k.n, 4);
  assert_true (seen (&k, "a/b/c") && seen (&k, "a/d") && seen (&k, "top")
               && seen (&k, "ab/x"));
  for (int i = 0; i < k.n; i++)
    if (strcmp (k.keys[i], "a/b/c") == 0)
      assert_int_equal (k.sizes[i], 3);
  memset (&k, 0, sizeof k);
  assert_int_equal (b->ops->list (b, "a/", collect, &k, &e), 0);
  assert_int_equal (k.n, 2);
  assert_true (seen (&k, "a/b/c") && seen (&k, "a/d"));
  /* string prefix semantics, as an object store */
  memset (&k, 0, sizeof k);
  assert_int_equal (b->ops->list (b, "a", collect, &k, &e), 0);
  assert_int_equal (k.n, 3);
  memset (&k, 0, sizeof k);
  assert_int_equal (b->ops->list (b, "a/b/c", collect, &k, &e), 0);
  assert_int_equal (k.n, 1);
  memset (&k, 0, sizeof k);
  assert_int_equal (b->ops->list (b, "nothing/here/", collect, &k, &e), 0);
  assert_int_equal (k.n, 0);
  /* the callback's non-zero return stops the walk and is returned */
  int calls = 0;
  assert_int_equal (b->ops->list (b, "", stop_at_first, &calls, &e), 7);
  assert_int_equal (calls, 1);

  /* delete; missing is fine; emptied sub-directories go, top-level stays */
  assert_int_equal (b->ops->del (b, "a/b/c", &e), 0);
  assert_int_equal (b->ops->exists (b, "a/b/c", &e), 0);
  assert_int_equal (b->ops->del (b, "a/b/c", &e), 0);
  snprintf (p, sizeof p, "%s/a/b", dir);
  assert_int_equal (access (p, F_OK), -1);
  snprintf (p, sizeof p, "%s/a", dir);
  assert_int_equal (access (p, F_OK), 0);
  assert_int_equal (e.code, 0);
  b->ops->close (b);
}

static void
test_backend_excl (void **state)
{
  struct vb_error e = { 0 };
  struct repo_backend *b = backend_open ();
  assert_int_equal (b->ops->put (b, "x/once", "first", 5, REPO_PUT_EXCL, &e), 0);
  assert_int_equal (b->ops->put (b, "x/once", "second", 6, REPO_PUT_EXCL, &e),
                    -EEXIST);
  assert_non_null (strstr (e.msg, "already exists"));
  vb_err_clear (&e);
  uint8_t *data;
  size_t len;
  assert_int_equal (b->ops->get (b, "x/once", 100, &data, &len, &e), 0);
  assert_int_equal (len, 5);
  assert_memory_equal (data, "first", 5);
  free (data);
  char p[512];
  snprintf (p, sizeof p, "%s/x", dir);
  assert_int_equal (count_entries (p, ""), 1);   /* no temp left over */
  snprintf (p, sizeof p, "%s/x/once", dir);
  assert_int_equal (mode_of (p), 0600);

  /* EXCL races: of several children creating one key, exactly one wins */
  int wins = 0;
  pid_t kids[6];
  for (int i = 0; i < 6; i++) {
    kids[i] = fork ();
    assert_true (kids[i] >= 0);
    if (kids[i] == 0) {
      struct vb_error ce = { 0 };
      char body[16];
      snprintf (body, sizeof body, "kid%d", i);
      _exit (b->ops->put (b, "x/race", body, strlen (body), REPO_PUT_EXCL,
                          &ce) == 0 ? 0 : 1);
    }
  }
  for (int i = 0; i < 6; i++) {
    int st;
    assert_int_equal (waitpid (kids[i], &st, 0), kids[i]);
    assert_true (WIFEXITED (st));
    wins += WEXITSTATUS (st) == 0;
  }
  assert_int_equal (wins, 1);
  b->ops->close (b);
}

static void
test_backend_bad_keys (void **state)
{
  struct vb_error e = { 0 };
  struct repo_backend *b = backend_open ();
  static const char *const bad[] = {
    "", "/etc/passwd", "a//b", "a/../b", "..", "../x", "a/..", ".", "a/./b",
    "a/", ".tmp-1-2", "a/.tmp-x",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t *data = NULL;
    size_t len;
    vb_err_clear (&e);
    assert_int_equal (b->ops->put (b, bad[i], "x", 1, 0, &e), -EINVAL);
    assert_non_null (strstr (e.msg, "invalid object key"));
    vb_err_clear (&e);
    assert_int_equal (b->ops->get (b, bad[i], 10, &data, &len, &e), -EINVAL);
    vb_err_clear (&e);
    assert_int_equal (b->ops->exists (b, bad[i], &e), -EINVAL);
    vb_err_clear (&e);
    assert_int_equal (b->ops->del (b, bad[i], &e), -EINVAL);
  }
  struct keys_seen k = { 0 };
  vb_err_clear (&e);
  assert_int_equal (b->ops->list (b, "../", collect, &k, &e), -EINVAL);
  vb_err_clear (&e);
  assert_int_equal (b->ops->list (b, "/", collect, &k, &e), -EINVAL);
  /* nothing escaped the directory */
  char p[512];
  snprintf (p, sizeof p, "%s/../b", dir);
  assert_int_equal (access (p, F_OK), -1);
  /* a too-large object is refused before writing */
  vb_err_clear (&e);
  assert_int_equal (b->ops->put (b, "big", "", (size_t) REPO_MAX_OBJECT + 1,
                                 0, &e), -EFBIG);
  b->ops->close (b);
}

/* --- init / open ---------------------------------------------------------- */

static void
test_init_open_plain (void **state)
{
  struct vb_error e = { 0 };
  struct repo_init_opts o = { .chunk_size = 512u << 10, .compress_level = 5 };
  assert_int_equal (repo_init (dir, &o, &e), 0);
  assert_int_equal (mode_of (dir) & 0777, 0700);
  char p[512];
  snprintf (p, sizeof p, "%s/config", dir);
  assert_int_equal (mode_of (p), 0600);
  snprintf (p, sizeof p, "%s/keys/repokey", dir);
  assert_int_equal (mode_of (p), 0600);
  snprintf (p, sizeof p, "%s/chunks", dir);
  assert_int_equal (mode_of (p) & 0777, 0700);

  struct repo *r = NULL;
  /* a passphrase is ignored by an unencrypted repository */
  assert_int_equal (repo_open (dir, "ignored", NULL, &r, &e), 0);
  assert_int_equal (repo_chunk_size (r), 512u << 10);
  assert_int_equal (repo_compress_level (r), 5);
  assert_string_equal (repo_path (r), dir);
  assert_false (repo_keys (r)->encrypted);
  assert_non_null (repo_backend (r));
  struct repo_info info;
  assert_int_equal (repo_get_info (r, &info, &e), 0);
  assert_int_equal (info.format, 1);
  assert_int_equal (strlen (info.id), 36);
  assert_false (info.encrypted);
  assert_string_equal (info.kdf, "none");
  assert_int_equal (info.n_points, 0);
  assert_int_equal (info.n_chunks, 0);
  /* a chunk object counts */
  struct repo_backend *b = repo_backend (r);
  assert_int_equal (b->ops->put (b, "chunks/ab/ab01", "0123456789", 10, 0, &e), 0);
  assert_int_equal (b->ops->put (b, "chunks/cd/cd02", "01234", 5, 0, &e), 0);
  assert_int_equal (repo_get_info (r, &info, &e), 0);
  assert_int_equal (info.n_chunks, 2);
  assert_int_equal (info.chunk_bytes, 15);
  uint8_t mac1[REPO_KEY_LEN];
  memcpy (mac1, repo_keys (r)->mac_key, sizeof mac1);
  repo_close (r);

  /* the same keys come back; defaults apply for 0 */
  assert_int_equal (repo_open (dir, NULL, NULL, &r, &e), 0);
  assert_memory_equal (mac1, repo_keys (r)->mac_key, sizeof mac1);
  repo_close (r);

  char d2[300];
  snprintf (d2, sizeof d2, "%s-defaults", dir);
  assert_int_equal (repo_init (d2, NULL, &e), 0);
  assert_int_equal (repo_open (d2, NULL, NULL, &r, &e), 0);
  assert_int_equal (repo_chunk_size (r), CHUNK_DEFAULT_SIZE);
  assert_int_equal (repo_compress_level (r), 1);
  repo_close (r);
}

static void
test_init_open_encrypted (void **state)
{
  struct vb_error e = { 0 };
  struct repo_init_opts o = { .encrypt = true, .passphrase = "correct horse" };
  assert_int_equal (repo_init (dir, &o, &e), 0);
  struct repo *r = NULL;
  assert_int_equal (repo_open (dir, "correct horse", NULL, &r, &e), 0);
  assert_true (repo_keys (r)->encrypted);
  struct repo_info info;
  assert_int_equal (repo_get_info (r, &info, &e), 0);
  assert_true (info.encrypted);
  assert_non_null (strstr (info.kdf, "scrypt N="));
  uint8_t enc[REPO_KEY_LEN];
  memcpy (enc, repo_keys (r)->enc_key, sizeof enc);
  repo_close (r);

  /* the key file does not hold the keys in clear */
  char p[512];
  snprintf (p, sizeof p, "%s/keys/repokey", dir);
  FILE *f = fopen (p, "r");
  char kf[4096] = "";
  size_t n = fread (kf, 1, sizeof kf - 1, f);
  fclose (f);
  char hex[2 * REPO_KEY_LEN + 1];
  hex_encode (enc, sizeof enc, hex);
  assert_true (n > 0);
  assert_null (strstr (kf, hex));
  assert_null (strstr (kf, "correct horse"));

  r = NULL;
  assert_int_equal (repo_open (dir, "wrong horse", NULL, &r, &e), -EACCES);
  assert_null (r);
  assert_non_null (strstr (e.msg, "wrong passphrase"));
  vb_err_clear (&e);
  assert_int_equal (repo_open (dir, NULL, NULL, &r, &e), -ENOKEY);
  assert_string_equal (e.msg, "repository is encrypted: set VMBACK_PASSPHRASE "
                       "or use --key-file");
  vb_err_clear (&e);
  assert_int_equal (repo_open (dir, "", NULL, &r, &e), -ENOKEY);
  vb_err_clear (&e);

  /* key file: its bytes (one trailing newline dropped) are the secret */
  char kpath[300], d2[300];
  snprintf (kpath, sizeof kpath, "%s-secret", dir);
  snprintf (d2, sizeof d2, "%s-kf", dir);
  write_file (kpath, "s3cr3t-from-file\n");
  struct repo_init_opts o2 = { .encrypt = true, .key_file = kpath };
  assert_int_equal (repo_init (d2, &o2, &e), 0);
  assert_int_equal (repo_open (d2, NULL, kpath, &r, &e), 0);
  memcpy (enc, repo_keys (r)->enc_key, sizeof enc);
  repo_close (r);
  assert_int_equal (repo_open (d2, "s3cr3t-from-file", NULL, &r, &e), 0);
  assert_memory_equal (enc, repo_keys (r)->enc_key, sizeof enc);
  repo_close (r);
  /* the key file wins over a passphrase */
  assert_int_equal (repo_open (d2, "wrong", kpath, &r, &e), 0);
  repo_close (r);
  write_file (kpath, "another secret\n");
  assert_int_equal (repo_open (d2, NULL, kpath, &r, &e), -EACCES);
  vb_err_clear (&e);
  /* missing, empty, binary and oversized key files: clear errors */
  char nofile[320];
  snprintf (nofile, sizeof nofile, "%s-none", kpath);
  assert_true (repo_open (d2, NULL, nofile, &r, &e) < 0);
  assert_non_null (strstr (e.msg, nofile));
  vb_err_clear (&e);
  write_file (kpath, "\n");
  assert_int_equal (repo_open (d2, NULL, kpath, &r, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "empty"));
  vb_err_clear (&e);
  f = fopen (kpath, "w");
  fwrite ("ab\0cd", 1, 5, f);
  fclose (f);
  assert_int_equal (repo_open (d2, NULL, kpath, &r, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "NUL"));
  vb_err_clear (&e);
  f = fopen (kpath, "w");
  for (int i = 0; i < 5000; i++)
    fputc ('k', f);
  fclose (f);
  assert_int_equal (repo_open (d2, NULL, kpath, &r, &e), -EFBIG);
  vb_err_clear (&e);
}

static void
test_init_refused (void **state)
{
  struct vb_error e = { 0 };
  /* a non-empty directory */
  assert_int_equal (mkdir (dir, 0700), 0);
  char p[512];
  snprintf (p, sizeof p, "%s/somefile", dir);
  write_file (p, "data");
  assert_int_equal (repo_init (dir, NULL, &e), -EEXIST);
  assert_non_null (strstr (e.msg, "not empty"));
  vb_err_clear (&e);
  snprintf (p, sizeof p, "%s/config", dir);
  assert_int_equal (access (p, F_OK), -1);
  /* an existing repository */
  char d2[300];
  snprintf (d2, sizeof d2, "%s-repo", dir);
  assert_int_equal (repo_init (d2, NULL, &e), 0);
  assert_int_equal (repo_init (d2, NULL, &e), -EEXIST);
  assert_non_null (strstr (e.msg, "already holds a repository"));
  vb_err_clear (&e);
  /* a file */
  snprintf (p, sizeof p, "%s/somefile", dir);
  assert_int_equal (repo_init (p, NULL, &e), -ENOTDIR);
  vb_err_clear (&e);
  /* bad options */
  char d3[300];
  snprintf (d3, sizeof d3, "%s-opts", dir);
  const uint32_t bad_sizes[] = { 3u << 20, 128u << 10, 16u << 20, 1, 4096 };
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    struct repo_init_opts o = { .chunk_size = bad_sizes[i] };
    assert_int_equal (repo_init (d3, &o, &e), -EINVAL);
    assert_non_null (strstr (e.msg, "chunk size"));
    vb_err_clear (&e);
  }
  struct repo_init_opts o = { .compress_level = 23 };
  assert_int_equal (repo_init (d3, &o, &e), -EINVAL);
  vb_err_clear (&e);
  struct repo_init_opts oe = { .encrypt = true };
  assert_int_equal (repo_init (d3, &oe, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "passphrase"));
  vb_err_clear (&e);
  /* nothing was created by the refused attempts */
  assert_int_equal (access (d3, F_OK), -1);
  struct repo_init_opts ok = { .chunk_size = CHUNK_MAX_SIZE };
  assert_int_equal (repo_init (d3, &ok, &e), 0);
}

/* Replace the repository's config with text. */
static void
put_config (const char *text)
{
  char p[512];
  snprintf (p, sizeof p, "%s/config", dir);
  write_file (p, text);
}

static void
test_open_bad_config (void **state)
{
  struct vb_error e = { 0 };
  struct repo *r = NULL;
  assert_int_equal (repo_open (dir, NULL, NULL, &r, &e), -ENOENT);
  vb_err_clear (&e);
  assert_int_equal (mkdir (dir, 0700), 0);
  assert_int_equal (repo_open (dir, NULL, NULL, &r, &e), -ENOENT);
  assert_non_null (strstr (e.msg, "not a vmback repository"));
  vb_err_clear (&e);
  assert_int_equal (rmdir (dir), 0);
  assert_int_equal (repo_init (dir, NULL, &e), 0);

  put_config ("{\"format\": 3, \"id\": \"x\"}");
  assert_true (repo_open (dir, NULL, NULL, &r, &e) < 0);
  assert_non_null (strstr (e.msg, "format 3"));
  assert_null (r);
  vb_err_clear (&e);

  static const char *const bad[] = {
    "", "garbage", "[1,2]", "{\"format\": 1} trailing",
    "{\"format\": \"1\"}",
    "{\"format\": 1, \"id\": \"not-a-uuid\", \"chunk_size\": 1048576,"
    " \"compress_level\": 3, \"encrypted\": false, \"kdf\": \"none\"}",
    "{\"format\": 1, \"id\": \"3f0c1a52-8d1e-4c43-9b7e-2a5c0f6e9d10\","
    " \"chunk_size\": 1048577, \"compress_level\": 3, \"encrypted\": false,"
    " \"kdf\": \"none\"}",
    "{\"format\": 1, \"id\": \"3f0c1a52-8d1e-4c43-9b7e-2a5c0f6e9d10\","
    " \"chunk_size\": 4294967296, \"compress_level\": 3, \"encrypted\": false,"
    " \"kdf\": \"none\"}",
    "{\"format\": 1, \"id\": \"3f0c1a52-8d1e-4c43-9b7e-2a5c0f6e9d10\","
    " \"chunk_size\": 1048576, \"compress_level\": 99, \"encrypted\": false,"
    " \"kdf\": \"none\"}",
    "{\"format\": 1, \"id\": \"3f0c1a52-8d1e-4c43-9b7e-2a5c0f6e9d10\","
    " \"chunk_size\": 1048576, \"compress_level\": 3, \"encrypted\": 0,"
    " \"kdf\": \"none\"}",
    /* says encrypted, the key file is not */
    "{\"format\": 1, \"id\": \"3f0c1a52-8d1e-4c43-9b7e-2a5c0f6e9d10\","
    " \"chunk_size\": 1048576, \"compress_level\": 3, \"encrypted\": true,"
    " \"kdf\": \"none\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    put_config (bad[i]);
    r = NULL;
    int rc = repo_open (dir, "pass", NULL, &r, &e);
    if (rc == 0)
      fail_msg ("config %zu accepted: %s", i, bad[i]);
    assert_null (r);
    assert_true (e.msg[0] != '\0');
    vb_err_clear (&e);
  }
  /* a config over the size bound */
  char *big = malloc (100000);
  memset (big, ' ', 99999);
  big[99999] = '\0';
  put_config (big);
  free (big);
  assert_int_equal (repo_open (dir, NULL, NULL, &r, &e), -EFBIG);
  vb_err_clear (&e);
  /* a valid hand-written one is accepted */
  put_config ("{\"format\": 1, \"id\": \"3f0c1a52-8d1e-4c43-9b7e-2a5c0f6e9d10\","
              " \"chunk_size\": 262144, \"compress_level\": 1,"
              " \"encrypted\": false, \"kdf\": \"none\"}\n");
  assert_int_equal (repo_open (dir, NULL, NULL, &r, &e), 0);
  assert_int_equal (repo_chunk_size (r), 262144);
  repo_close (r);
}

/* --- locks ------------------------------------------------------------- */

static struct repo *
open_plain (void)
{
  struct vb_error e = { 0 };
  struct repo *r = NULL;
  if (access (dir, F_OK) != 0)
    assert_int_equal (repo_init (dir, NULL, &e), 0);
  assert_int_equal (repo_open (dir, NULL, NULL, &r, &e), 0);
  return r;
}

static int
count_locks (void)
{
  char p[512];
  snprintf (p, sizeof p, "%s/locks", dir);
  return count_entries (p, "");
}

struct child {
  pid_t pid;
  int to_child;     /* write: tell it to exit */
};

/* Fork a child that opens the repository, takes a lock, reports 'L' (or
 * 'F') and waits; on 'q' it unlocks and exits, on 'd' it dies holding the
 * lock. */
static struct child
lock_in_child (bool exclusive, const char *op)
{
  int up[2], down[2];
  assert_int_equal (pipe (up), 0);
  assert_int_equal (pipe (down), 0);
  struct child c;
  c.pid = fork ();
  assert_true (c.pid >= 0);
  if (c.pid == 0) {
    close (up[0]);
    close (down[1]);
    struct vb_error e = { 0 };
    struct repo *r = NULL;
    char ok = 'F';
    if (repo_open (dir, NULL, NULL, &r, &e) == 0
        && repo_lock (r, exclusive, op, &e) == 0)
      ok = 'L';
    if (write (up[1], &ok, 1) != 1)
      _exit (2);
    char cmd = 'q';
    if (read (down[0], &cmd, 1) != 1)
      cmd = 'q';
    if (cmd == 'd')
      _exit (0);             /* dies holding the lock */
    repo_close (r);
    _exit (0);
  }
  close (up[1]);
  close (down[0]);
  char got = 0;
  assert_int_equal (read (up[0], &got, 1), 1);
  assert_int_equal (got, 'L');
  close (up[0]);
  c.to_child = down[1];
  return c;
}

static void
child_finish (struct child *c, char how)
{
  assert_int_equal (write (c->to_child, &how, 1), 1);
  close (c->to_child);
  int st;
  assert_int_equal (waitpid (c->pid, &st, 0), c->pid);
  assert_true (WIFEXITED (st) && WEXITSTATUS (st) == 0);
}

static void
test_locks_shared_exclusive (void **state)
{
  struct vb_error e = { 0 };
  struct repo *r = open_plain ();

  /* shared + shared */
  struct child c = lock_in_child (false, "backup");
  assert_int_equal (repo_lock (r, false, "verify", &e), 0);
  assert_int_equal (count_locks (), 2);
  repo_unlock (r);
  assert_int_equal (count_locks (), 1);
  /* shared blocks exclusive, and the failed attempt leaves nothing */
  assert_int_equal (repo_lock (r, true, "prune", &e), -EBUSY);
  char want[128];
  snprintf (want, sizeof want, "repository is locked by pid %ld on ",
            (long) c.pid);
  assert_non_null (strstr (e.msg, want));
  assert_non_null (strstr (e.msg, "(backup)"));
  vb_err_clear (&e);
  assert_int_equal (count_locks (), 1);
  child_finish (&c, 'q');
  assert_int_equal (count_locks (), 0);

  /* exclusive blocks shared and exclusive */
  c = lock_in_child (true, "gc");
  assert_int_equal (repo_lock (r, false, "backup", &e), -EBUSY);
  assert_non_null (strstr (e.msg, "(gc)"));
  vb_err_clear (&e);
  assert_int_equal (repo_lock (r, true, "prune", &e), -EBUSY);
  vb_err_clear (&e);
  assert_int_equal (count_locks (), 1);
  child_finish (&c, 'q');

  /* ours blocks a child's; a second lock on one handle is refused;
   * close releases */
  assert_int_equal (repo_lock (r, true, "gc", &e), 0);
  assert_int_equal (repo_lock (r, false, "backup", &e), -EALREADY);
  vb_err_clear (&e);
  struct repo *r2 = NULL;
  assert_int_equal (repo_open (dir, NULL, NULL, &r2, &e), 0);
  assert_int_equal (repo_lock (r2, false, "backup", &e), -EBUSY);
  vb_err_clear (&e);
  repo_close (r2);
  repo_close (r);
  assert_int_equal (count_locks (), 0);
}

static void
test_locks_stale (void **state)
{
  struct vb_error e = { 0 };
  struct repo *r = open_plain ();
  /* a child dies holding an exclusive lock: it is stale once reaped */
  struct child c = lock_in_child (true, "prune");
  pid_t dead = c.pid;
  child_finish (&c, 'd');
  assert_int_equal (count_locks (), 1);
  assert_int_equal (kill (dead, 0), -1);
  assert_int_equal (repo_lock (r, false, "backup", &e), 0);
  assert_int_equal (count_locks (), 1);      /* the stale one went */
  repo_unlock (r);
  assert_int_equal (count_locks (), 0);

  /* a dead shared lock does not block an exclusive one either */
  c = lock_in_child (false, "backup");
  child_finish (&c, 'd');
  assert_int_equal (count_locks (), 1);
  assert_int_equal (repo_lock (r, true, "gc", &e), 0);
  assert_int_equal (count_locks (), 1);
  repo_unlock (r);

  /* a lock of another host is never stale; an unreadable one neither */
  char p[512];
  snprintf (p, sizeof p, "%s/locks/exclusive-elsewhere-1-00000000", dir);
  write_file (p, "{\"pid\": 1, \"host\": \"elsewhere.example\", "
              "\"op\": \"gc\", \"time\": 0}");
  assert_int_equal (repo_lock (r, false, "backup", &e), -EBUSY);
  assert_non_null (strstr (e.msg, "pid 1 on elsewhere.example (gc)"));
  vb_err_clear (&e);
  assert_int_equal (unlink (p), 0);
  snprintf (p, sizeof p, "%s/locks/shared-junk", dir);
  write_file (p, "not json");
  assert_int_equal (repo_lock (r, true, "gc", &e), -EBUSY);
  assert_non_null (strstr (e.msg, "unreadable"));
  vb_err_clear (&e);
  assert_int_equal (repo_lock (r, false, "backup", &e), 0);  /* shared ok */
  repo_close (r);
}

/* --- points ------------------------------------------------------------ */

/* A valid manifest of one disk for point id of source src. */
static struct manifest *
make_manifest (struct repo *r, const char *id, int64_t finished)
{
  struct manifest *m = calloc (1, sizeof *m);
  assert_non_null (m);
  snprintf (m->id, sizeof m->id, "%s", id);
  const char *slash = strchr (id, '/');
  assert_non_null (slash);
  snprintf (m->source_name, sizeof m->source_name, "%.*s",
            (int) (slash - id), id);
  snprintf (m->kind, sizeof m->kind, "disk");
  snprintf (m->consistency, sizeof m->consistency, "crash");
  snprintf (m->transport, sizeof m->transport, "file");
  snprintf (m->tool_version, sizeof m->tool_version, "0.1.0");
  m->started = finished - 10;
  m->finished = finished;
  m->chunk_size = repo_chunk_size (r);
  m->n_disks = 1;
  struct manifest_disk *d = &m->disks[0];
  snprintf (d->key, sizeof d->key, "disk0");
  snprintf (d->source, sizeof d->source, "/vm/%s.vmdk", m->source_name);
  d->size = 1u << 20;
  snprintf (d->index_key, sizeof d->index_key, "snapshots/%s/disk0.index", id);
  return m;
}

/* Store a point: an index object, then the manifest. */
static void
store_point (struct repo *r, const char *id, int64_t finished)
{
  struct vb_error e = { 0 };
  struct manifest *m = make_manifest (r, id, finished);
  struct repo_backend *b = repo_backend (r);
  assert_int_equal (b->ops->put (b, m->disks[0].index_key, "idx", 3, 0, &e), 0);
  assert_int_equal (repo_put_manifest (r, m, &e), 0);
  free (m);
}

static void
test_new_point_id (void **state)
{
  struct vb_error e = { 0 };
  struct repo *r = open_plain ();
  const int64_t t = 1795637103;   /* 2026-11-25T20:05:03Z */
  char id[128];
  assert_int_equal (repo_new_point_id (r, "web", t, id, sizeof id, &e), 0);
  assert_string_equal (id, "web/20261125T200503Z");
  store_point (r, id, t);
  assert_int_equal (repo_new_point_id (r, "web", t, id, sizeof id, &e), 0);
  assert_string_equal (id, "web/20261125T200503Z-2");
  store_point (r, id, t);
  /* a point being written (index, no manifest yet) also takes the name */
  struct repo_backend *b = repo_backend (r);
  assert_int_equal (b->ops->put (b, "snapshots/web/20261125T200503Z-3/d.index",
                                 "i", 1, 0, &e), 0);
  assert_int_equal (repo_new_point_id (r, "web", t, id, sizeof id, &e), 0);
  assert_string_equal (id, "web/20261125T200503Z-4");
  /* other sources and seconds are independent */
  assert_int_equal (repo_new_point_id (r, "db.1_x-y", t, id, sizeof id, &e), 0);
  assert_string_equal (id, "db.1_x-y/20261125T200503Z");
  assert_int_equal (repo_new_point_id (r, "web", t + 1, id, sizeof id, &e), 0);
  assert_string_equal (id, "web/20261125T200504Z");
  assert_int_equal (repo_new_point_id (r, "web", 0, id, sizeof id, &e), 0);
  assert_string_equal (id, "web/19700101T000000Z");
  /* too small a buffer */
  assert_int_equal (repo_new_point_id (r, "web", t, id, 10, &e), -ENAMETOOLONG);
  vb_err_clear (&e);
  /* bad source names */
  static const char *const bad[] = { "", "a/b", "a b", ".hidden", "..",
                                     "x\n", "caf\xc3\xa9", "a:b" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal (repo_new_point_id (r, bad[i], t, id, sizeof id, &e),
                      -EINVAL);
    assert_non_null (strstr (e.msg, "invalid source name"));
    vb_err_clear (&e);
  }
  char longname[200];
  memset (longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal (repo_new_point_id (r, longname, t, id, sizeof id, &e),
                    -EINVAL);
  vb_err_clear (&e);
  repo_close (r);
}

static void
test_points_list_find_delete (void **state)
{
  struct vb_error e = { 0 };
  struct repo *r = open_plain ();
  struct manifest *pts = NULL;
  size_t n = 99;
  assert_int_equal (repo_list_points (r, NULL, &pts, &n, &e), 0);
  assert_int_equal (n, 0);
  struct manifest *m = calloc (1, sizeof *m);
  assert_int_equal (repo_find_point (r, "latest", m, &e), -ENOENT);
  assert_non_null (strstr (e.msg, "no restore points"));
  vb_err_clear (&e);

  /* finished times out of id order; two share a time (id breaks the tie) */
  store_point (r, "web/20260101T000000Z", 1000);
  store_point (r, "db/20260101T000005Z", 3000);
  store_point (r, "web/20260102T000000Z", 2000);
  store_point (r, "db/20260101T000001Z", 2000);
  store_point (r, "web/20260103T000000Z", 4000);

  assert_int_equal (repo_list_points (r, NULL, &pts, &n, &e), 0);
  assert_int_equal (n, 5);
  assert_string_equal (pts[0].id, "web/20260101T000000Z");
  assert_string_equal (pts[1].id, "db/20260101T000001Z");
  assert_string_equal (pts[2].id, "web/20260102T000000Z");
  assert_string_equal (pts[3].id, "db/20260101T000005Z");
  assert_string_equal (pts[4].id, "web/20260103T000000Z");
  assert_string_equal (pts[4].disks[0].key, "disk0");
  free (pts);
  assert_int_equal (repo_list_points (r, "db", &pts, &n, &e), 0);
  assert_int_equal (n, 2);
  assert_string_equal (pts[0].id, "db/20260101T000001Z");
  free (pts);
  assert_int_equal (repo_list_points (r, "none", &pts, &n, &e), 0);
  assert_int_equal (n, 0);
  assert_int_equal (repo_list_points (r, "../x", &pts, &n, &e), -EINVAL);
  vb_err_clear (&e);
  struct repo_info info;
  assert_int_equal (repo_get_info (r, &info, &e), 0);
  assert_int_equal (info.n_points, 5);

  /* find */
  assert_int_equal (repo_find_point (r, "db/20260101T000005Z", m, &e), 0);
  assert_string_equal (m->id, "db/20260101T000005Z");
  assert_int_equal (repo_find_point (r, "latest", m, &e), 0);
  assert_string_equal (m->id, "web/20260103T000000Z");
  assert_int_equal (repo_find_point (r, "db", m, &e), 0);
  assert_string_equal (m->id, "db/20260101T000005Z");
  assert_int_equal (repo_find_point (r, "db@latest", m, &e), 0);
  assert_string_equal (m->id, "db/20260101T000005Z");
  assert_int_equal (repo_find_point (r, "20260102T000000Z", m, &e), 0);
  assert_string_equal (m->id, "web/20260102T000000Z");
  assert_int_equal (repo_find_point (r, "5Z", m, &e), 0);
  assert_string_equal (m->id, "db/20260101T000005Z");
  assert_int_equal (repo_find_point (r, "0Z", m, &e), -EINVAL);
  assert_non_null (strstr (e.msg, "ambiguous"));
  vb_err_clear (&e);
  assert_int_equal (repo_find_point (r, "web/20990101T000000Z", m, &e), -ENOENT);
  assert_non_null (strstr (e.msg, "no restore point 'web/20990101T000000Z'"));
  vb_err_clear (&e);
  assert_int_equal (repo_find_point (r, "mail@latest", m, &e), -ENOENT);
  vb_err_clear (&e);
  assert_int_equal (repo_find_point (r, "web@first", m, &e), -EINVAL);
  vb_err_clear (&e);
  assert_int_equal (repo_find_point (r, "", m, &e), -EINVAL);
  vb_err_clear (&e);

  /* a point is never overwritten */
  struct manifest *dup = make_manifest (r, "web/20260101T000000Z", 9999);
  assert_int_equal (repo_put_manifest (r, dup, &e), -EEXIST);
  vb_err_clear (&e);
  /* id and source must agree */
  snprintf (dup->id, sizeof dup->id, "db/20270101T000000Z");
  assert_int_equal (repo_put_manifest (r, dup, &e), -EINVAL);
  vb_err_clear (&e);
  free (dup);

  /* delete: the manifest and the indexes go, other points stay */
  char p[512];
  assert_int_equal (repo_delete_point (r, "web/20260102T000000Z", &e), 0);
  snprintf (p, sizeof p, "%s/snapshots/web/20260102T000000Z", dir);
  assert_int_equal (access (p, F_OK), -1);
  assert_int_equal (repo_list_points (r, NULL, &pts, &n, &e), 0);
  assert_int_equal (n, 4);
  free (pts);
  assert_int_equal (repo_delete_point (r, "web/20260102T000000Z", &e), -ENOENT);
  vb_err_clear (&e);
  assert_int_equal (repo_delete_point (r, "../../etc", &e), -EINVAL);
  vb_err_clear (&e);
  assert_int_equal (repo_get_info (r, &info, &e), 0);
  assert_int_equal (info.n_points, 4);

  /* a tampered manifest is an error naming it, not skipped */
  snprintf (p, sizeof p, "%s/snapshots/db/20260101T000001Z/manifest", dir);
  FILE *f = fopen (p, "r+");
  char buf[8192];
  size_t len = fread (buf, 1, sizeof buf, f);
  char *fin = strstr (buf, "\"finished\":");
  assert_non_null (fin);
  fin += strlen ("\"finished\":");
  while (*fin == ' ')
    fin++;
  *fin = *fin == '9' ? '8' : '9';     /* change a digit of the time */
  rewind (f);
  fwrite (buf, 1, len, f);
  fclose (f);
  assert_true (repo_list_points (r, NULL, &pts, &n, &e) < 0);
  assert_null (pts);
  assert_non_null (strstr (e.msg, "snapshots/db/20260101T000001Z/manifest"));
  vb_err_clear (&e);
  assert_true (repo_find_point (r, "db/20260101T000001Z", m, &e) < 0);
  vb_err_clear (&e);
  /* ... and can still be deleted */
  assert_int_equal (repo_delete_point (r, "db/20260101T000001Z", &e), 0);
  assert_int_equal (repo_list_points (r, NULL, &pts, &n, &e), 0);
  assert_int_equal (n, 3);
  free (pts);

  /* a genuine manifest copied over another point's place is rejected */
  char src[512], dst[512], cmd[1200];
  snprintf (src, sizeof src, "%s/snapshots/web/20260101T000000Z/manifest", dir);
  snprintf (dst, sizeof dst, "%s/snapshots/web/20300101T000000Z", dir);
  snprintf (cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/manifest'", dst,
            src, dst);
  assert_int_equal (system (cmd), 0);
  assert_true (repo_list_points (r, NULL, &pts, &n, &e) < 0);
  assert_non_null (strstr (e.msg, "belongs to point"));
  vb_err_clear (&e);
  repo_close (r);
  free (m);
}

static void
test_points_encrypted (void **state)
{
  /* manifests of an encrypted repository authenticate with its keys only */
  struct vb_error e = { 0 };
  struct repo_init_opts o = { .encrypt = true, .passphrase = "pw" };
  assert_int_equal (repo_init (dir, &o, &e), 0);
  struct repo *r = NULL;
  assert_int_equal (repo_open (dir, "pw", NULL, &r, &e), 0);
  store_point (r, "vm1/20260101T000000Z", 100);
  struct manifest *m = calloc (1, sizeof *m);
  assert_int_equal (repo_find_point (r, "vm1", m, &e), 0);
  assert_string_equal (m->id, "vm1/20260101T000000Z");
  assert_int_equal (m->finished, 100);
  repo_close (r);

  /* the same manifest under another repository's keys fails */
  char d2[300], cmd[1000];
  snprintf (d2, sizeof d2, "%s-other", dir);
  assert_int_equal (repo_init (d2, &o, &e), 0);
  snprintf (cmd, sizeof cmd, "cp -r '%s/snapshots/vm1' '%s/snapshots/'", dir, d2);
  assert_int_equal (system (cmd), 0);
  assert_int_equal (repo_open (d2, "pw", NULL, &r, &e), 0);
  assert_true (repo_find_point (r, "vm1", m, &e) < 0);
  assert_non_null (strstr (e.msg, "manifest"));
  repo_close (r);
  free (m);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup (test_backend_put_get_list_del, setup),
    cmocka_unit_test_setup (test_backend_excl, setup),
    cmocka_unit_test_setup (test_backend_bad_keys, setup),
    cmocka_unit_test_setup (test_init_open_plain, setup),
    cmocka_unit_test_setup (test_init_open_encrypted, setup),
    cmocka_unit_test_setup (test_init_refused, setup),
    cmocka_unit_test_setup (test_open_bad_config, setup),
    cmocka_unit_test_setup (test_locks_shared_exclusive, setup),
    cmocka_unit_test_setup (test_locks_stale, setup),
    cmocka_unit_test_setup (test_new_point_id, setup),
    cmocka_unit_test_setup (test_points_list_find_delete, setup),
    cmocka_unit_test_setup (test_points_encrypted, setup),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
