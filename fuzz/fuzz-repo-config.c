/* Fuzz target: the repository config parser, through repo_open (repo.c):
 * the input is the "config" object of a repository in a private temp
 * directory whose keys/repokey is a valid unencrypted key file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmback/repo.h"
#include "repo/repo-int.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char dir[64];

/* Write len bytes of data to dir/name. */
static void
put (const char *name, const void *data, size_t len)
{
  char p[160];
  snprintf (p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen (p, "wb");
  if (!f)
    abort ();
  if (len)
    fwrite (data, 1, len, f);
  fclose (f);
}

/* Make the repository directory and its key file once. */
static void
setup (void)
{
  if (dir[0])
    return;
  snprintf (dir, sizeof dir, "%s/vmback-fuzz-repo-XXXXXX",
            access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (!mkdtemp (dir))
    abort ();
  char p[160];
  snprintf (p, sizeof p, "%s/keys", dir);
  if (mkdir (p, 0700) < 0)
    abort ();
  struct repo_keys k;
  memset (&k, 0, sizeof k);
  memset (k.mac_key, 0x33, sizeof k.mac_key);
  char *json;
  struct vb_error e = { 0 };
  if (crypto_keyfile_write (&k, NULL, &json, &e) < 0)
    abort ();
  put ("keys/repokey", json, strlen (json));
  free (json);
}

/* Open the repository with the input as its config. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  setup ();
  put ("config", data, size);
  struct repo *r;
  struct vb_error e = { 0 };
  if (repo_open (dir, "fuzz", NULL, &r, &e) == 0) {
    struct repo_info info;
    struct vb_error e2 = { 0 };
    repo_get_info (r, &info, &e2);
    repo_close (r);
  }
  return 0;
}
