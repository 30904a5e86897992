/* vmback: drivers loaded on first use (see module.h).
 *
 * The S3 backend (libcurl, libxml2) and the nbd transports (libnbd) pull
 * in some forty shared libraries.  Linked into the vmback binary, loading
 * and relocating them cost every command about 15 ms before main(), most
 * of a small command's time, for drivers that most commands never use.
 * So the binary carries only the core, and those drivers live in modules
 * ("vmback-s3.so", "vmback-nbd.so"; next to the binary in the build tree,
 * in $libdir/vmback once installed), opened the first time one
 * of their drivers is asked for, as QEMU does with its block modules.  A
 * module resolves the core's symbols against the binary, which exports
 * them.  Programs that link a driver in (the nbdkit plugins, the unit
 * tests, the fuzzers) never load a module: the caller's weak reference to
 * the driver is then set and used instead.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/module.h"
#include "vmback-config.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The running executable's directory into dir (len bytes). */
static int
vb_exe_dir (char *dir, size_t len, struct vb_error *err)
{
  ssize_t n = readlink ("/proc/self/exe", dir, len - 1);
  if (n <= 0)
    return vb_errno (err, errno, "cannot find the running executable");
  dir[n] = '\0';
  char *slash = strrchr (dir, '/');
  if (slash)
    *slash = '\0';
  return 0;
}

/* Where a helper file is (module.h). */
int
vb_helper_path (const char *name, char *path, size_t len, struct vb_error *err)
{
  char dir[PATH_MAX];
  int r = vb_exe_dir (dir, sizeof dir, err);
  if (r < 0)
    return r;
  snprintf (path, len, "%s/%s", dir, name);
  if (access (path, F_OK) == 0)
    return 1;
  const char *h = VMBACK_HELPER_DIR;   /* relative to dir, or absolute */
  char inst[2 * PATH_MAX];
  if (h[0] == '/')
    snprintf (inst, sizeof inst, "%s", h);
  else
    snprintf (inst, sizeof inst, "%s/%s", dir, h);
  char *real = realpath (inst, NULL);   /* "/usr/lib/..." for ".../bin/../lib/..." */
  snprintf (path, len, "%s/%s", real ? real : inst, name);
  free (real);
  return access (path, F_OK) == 0;
}

/* Symbol sym of module "vmback-NAME.so" (see module.h). */
const void *
vb_module_symbol (const char *name, const char *sym, struct vb_error *err)
{
  char file[128], path[PATH_MAX + 128];
  snprintf (file, sizeof file, "vmback-%s.so", name);
  const char *env = getenv ("VMBACK_MODULE_DIR");
  if (env && *env)
    snprintf (path, sizeof path, "%s/%s", env, file);
  else if (vb_helper_path (file, path, sizeof path, err) < 0)
    return NULL;
  pthread_mutex_lock (&lock);            /* one first load at a time */
  void *h = dlopen (path, RTLD_NOW | RTLD_LOCAL);   /* kept open for good */
  const void *p = h ? dlsym (h, sym) : NULL;
  const char *why = p ? NULL : dlerror ();
  pthread_mutex_unlock (&lock);
  if (!h)              /* dlerror() names the file */
    vb_err (err, access (path, R_OK) < 0 ? ENOENT : ENOEXEC, "%s", why ? why : path);
  else if (!p)
    vb_err (err, ENOEXEC, "module %s: %s", path, why ? why : "no such symbol");
  return p;
}
