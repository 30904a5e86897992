/* vmback vdisk: path helpers for descriptor-relative file names. */
#include <stdlib.h>
#include <string.h>

#include "vdisk-int.h"

/* Directory part of path ("." when none). */
char *
vdisk_path_dir (const char *path)
{
  const char *slash = strrchr (path, '/');
  if (!slash)
    return strdup (".");
  if (slash == path)
    return strdup ("/");
  return strndup (path, (size_t) (slash - path));
}

/* dir + "/" + name, or name alone when it is absolute. */
char *
vdisk_path_join (const char *dir, const char *name)
{
  if (name[0] == '/' || dir == NULL)
    return strdup (name);
  size_t n = strlen (dir) + strlen (name) + 2;
  char *p = malloc (n);
  if (p) {
    strcpy (p, dir);
    if (n > 2 && p[strlen (p) - 1] != '/')
      strcat (p, "/");
    strcat (p, name);
  }
  return p;
}

/* File name of path without directory and without a ".vmdk" suffix. */
char *
vdisk_path_stem (const char *path)
{
  const char *base = strrchr (path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen (base);
  if (n > 5 && strcasecmp (base + n - 5, ".vmdk") == 0)
    n -= 5;
  return strndup (base, n);
}
