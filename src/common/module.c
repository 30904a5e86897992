/* vmback: drivers loaded on first use (see module.h).
 *
 * The S3 backend (libcurl, libxml2) and the nbd transports (libnbd) pull
 * in some forty shared libraries.  Linked into the vmback binary, loading
 * and relocating them cost every command about 15 ms before main(), most
 * of a small command's time, for drivers that most commands never use.
 * So the binary carries only the core, and those drivers live in modules
 * next to it ("vmback-s3.so", "vmback-nbd.so"), opened the first time one
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

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The running executable's directory (module.h). */
int
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

/* The directory modules are looked up in: $VMBACK_MODULE_DIR, else the
 * running executable's directory. */
static int
module_dir (char *dir, size_t len, struct vb_error *err)
{
  const char *env = getenv ("VMBACK_MODULE_DIR");
  if (env && *env) {
    snprintf (dir, len, "%s", env);
    return 0;
  }
  return vb_exe_dir (dir, len, err);
}

/* Symbol sym of module "vmback-NAME.so" (see module.h). */
const void *
vb_module_symbol (const char *name, const char *sym, struct vb_error *err)
{
  char dir[PATH_MAX], path[PATH_MAX + 64];
  if (module_dir (dir, sizeof dir, err) < 0)
    return NULL;
  snprintf (path, sizeof path, "%s/vmback-%s.so", dir, name);
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
