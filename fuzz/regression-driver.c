/* Replays fuzz inputs without libFuzzer: each argument is a file or a
 * directory of files, fed to LLVMFuzzerTestOneInput once.  Built for every
 * target so `meson test` runs the stored corpus (fuzz/corpus/TARGET/). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Run one input file. */
static int
run_file (const char *p)
{
  FILE *f = fopen (p, "rb");
  if (!f) {
    perror (p);
    return 1;
  }
  fseek (f, 0, SEEK_END);
  long n = ftell (f);
  fseek (f, 0, SEEK_SET);
  uint8_t *buf = malloc (n > 0 ? (size_t) n : 1);
  if (!buf || fread (buf, 1, (size_t) n, f) != (size_t) n) {
    fclose (f);
    free (buf);
    return 1;
  }
  fclose (f);
  LLVMFuzzerTestOneInput (buf, (size_t) n);
  free (buf);
  return 0;
}

int
main (int argc, char **argv)
{
  int files = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat (argv[i], &st) < 0) {
      perror (argv[i]);
      return 1;
    }
    if (!S_ISDIR (st.st_mode)) {
      if (run_file (argv[i]))
        return 1;
      files++;
      continue;
    }
    DIR *d = opendir (argv[i]);
    struct dirent *de;
    while (d && (de = readdir (d))) {
      if (de->d_name[0] == '.')
        continue;
      char p[4096];
      snprintf (p, sizeof p, "%s/%s", argv[i], de->d_name);
      if (run_file (p))
        return 1;
      files++;
    }
    if (d)
      closedir (d);
  }
  printf ("%d inputs replayed\n", files);
  return 0;
}
