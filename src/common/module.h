/* vmback: drivers loaded on first use (module.c). */
#ifndef VMBACK_MODULE_H
#define VMBACK_MODULE_H

#include <stddef.h>

#include "vmback/error.h"

/* The running executable's directory into dir (len bytes), where its
 * modules and nbdkit plugins are installed; 0 or -errno. */
int vb_exe_dir (char *dir, size_t len, struct vb_error *err);

/* Open module "vmback-NAME.so" from $VMBACK_MODULE_DIR or the running
 * executable's directory (once; it stays loaded) and return the address
 * of its symbol sym, or NULL with err set ("module PATH: why"). */
const void *vb_module_symbol (const char *name, const char *sym, struct vb_error *err);

#endif
