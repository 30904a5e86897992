/* vmback transports: the table of drivers and the `auto` order. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "common/module.h"
#include "transport.h"

/* In the order `auto` tries them (nbdssl is only used when asked).  The
 * nbd transports are in the module vmback-nbd.so unless linked in. */
static const struct driver {
  const char *name;
  const struct vb_transport_ops *ops;   /* NULL: in module `module` */
  const char *module;
  const char *sym;
} drivers[] = {
  { "san", &vb_transport_san, NULL, NULL },
  { "hotadd", &vb_transport_hotadd, NULL, NULL },
  { "nbd", &vb_transport_nbd, "nbd", "vb_transport_nbd" },
  { "nbdssl", &vb_transport_nbdssl, "nbd", "vb_transport_nbdssl" },
};
#define N_DRIVERS (sizeof drivers / sizeof drivers[0])
#define N_AUTO 3

/* The driver called name, or NULL. */
static const struct driver *
find (const char *name)
{
  for (size_t i = 0; i < N_DRIVERS; i++)
    if (strcmp (drivers[i].name, name) == 0)
      return &drivers[i];
  return NULL;
}

/* Is name "auto" or a transport's name? */
int
vb_transport_valid (const char *name)
{
  return strcmp (name, "auto") == 0 || find (name) != NULL;
}

/* Open with one driver, loading its module first if need be; the
 * failpoint "transport-NAME" makes it fail as if it were unavailable. */
static int
open_with (const struct driver *d, const char *path, struct vb_reader **out,
           struct vb_error *err)
{
  char fp[32];
  snprintf (fp, sizeof fp, "transport-%s", d->name);
  int code = vb_failpoint (fp);
  if (code)
    return vb_err (err, code, "%s: unavailable: %s (injected)", d->name, strerror (code));
  const struct vb_transport_ops *t = d->ops;
  struct vb_error e = { 0 };
  if (!t && !(t = vb_module_symbol (d->module, d->sym, &e)))
    return vb_err (err, e.code, "%s: unavailable: %s", d->name, e.msg);
  int rc = t->open (path, out, err);
  if (rc == 0)
    (*out)->mode = t->name;
  return rc;
}

/* Open path with a transport or with the `auto` order (transport.h). */
int
vb_transport_open (const char *mode, const char *path, int quiet, struct vb_reader **out,
                   struct vb_error *err)
{
  if (mode && strcmp (mode, "auto") != 0) {
    const struct driver *t = find (mode);
    if (!t)
      return vb_err (err, EINVAL, "unknown transport '%s' (san, hotadd, nbd, nbdssl, auto)",
                     mode);
    return open_with (t, path, out, err);
  }
  int rc = -EINVAL;
  char tried[3 * VB_ERROR_MAX / 2] = "";
  for (size_t i = 0; i < N_AUTO; i++) {
    struct vb_error e = { 0 };
    if ((rc = open_with (&drivers[i], path, out, &e)) == 0)
      return 0;
    if (!quiet)
      fprintf (stderr, "vmback: note: %s; trying the next transport\n", e.msg);
    size_t used = strlen (tried);
    snprintf (tried + used, sizeof tried - used, "%s%s", used ? "; " : "", e.msg);
  }
  return vb_err (err, -rc, "no transport can read '%s': %s", path, tried);
}

/* Where our nbdkit plugins are (transport.h). */
char *
vb_nbdkit_plugin_path (const char *name, struct vb_error *err)
{
  char path[2 * PATH_MAX];
  const char *env = getenv ("VMBACK_NBDKIT_PLUGIN");
  int r = 1;
  if (env && *env) {
    char tmp[PATH_MAX];
    snprintf (tmp, sizeof tmp, "%s", env);
    snprintf (path, sizeof path, "%s/%s", dirname (tmp), name);
  } else if ((r = vb_helper_path (name, path, sizeof path, err)) < 0) {
    return NULL;
  }
  if (r == 0 || access (path, R_OK) < 0) {
    vb_err (err, ENOENT, "the nbdkit plugin '%s' is missing%s (build it with "
            "nbdkit-plugin-dev installed, or set VMBACK_NBDKIT_PLUGIN)", path,
            r == 0 ? ", and not next to the vmback binary either" : "");
    return NULL;
  }
  char *p = strdup (path);
  if (!p)
    vb_errno (err, ENOMEM, "plugin path");
  return p;
}

/* AES-GCM over ChaCha20 for our TLS servers (transport.h): the CPU has
 * the AES and carry-less multiply instructions GnuTLS's AES-GCM uses, and
 * no GnuTLS policy is set for the system (Debian's compiled-in path) or
 * the process. */
bool
vb_tls_prefer_aes (void)
{
  if (getenv ("GNUTLS_SYSTEM_PRIORITY_FILE") || access ("/etc/gnutls/config", F_OK) == 0)
    return false;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  return __get_cpuid (1, &a, &b, &c, &d) && (c & bit_AES) && (c & bit_PCLMUL);
#else
  return false;
#endif
}
