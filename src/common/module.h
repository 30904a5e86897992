/* vmback: drivers loaded on first use (module.c). */
#ifndef VMBACK_MODULE_H
#define VMBACK_MODULE_H

#include <stddef.h>

#include "vmback/error.h"

/* Where the helper file name (a module, an nbdkit plugin) is: the running
 * executable's directory (the build tree), else the install's helper
 * directory ($libdir/vmback, found relative to the executable).  1 with
 * its path in path (len bytes); 0 when it is in neither, with the
 * installed location in path; -errno with err set. */
int vb_helper_path (const char *name, char *path, size_t len, struct vb_error *err);

/* Open module "vmback-NAME.so" from $VMBACK_MODULE_DIR, else where
 * vb_helper_path finds it (once; it stays loaded) and return the address
 * of its symbol sym, or NULL with err set ("module PATH: why"). */
const void *vb_module_symbol (const char *name, const char *sym, struct vb_error *err);

#endif
