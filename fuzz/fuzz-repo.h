/* Fixed repository keys shared by the repository fuzz targets and the
 * seed writer (mk-seeds.c): seeds encoded with these keys authenticate,
 * so the fuzzer starts from objects that decode all the way. */
#ifndef VMBACK_FUZZ_REPO_H
#define VMBACK_FUZZ_REPO_H

#include <string.h>

#include "repo/repo-int.h"

/* Unencrypted (plain) or encrypted keys with fixed byte patterns. */
static inline void
fuzz_repo_keys (struct repo_keys *k, bool encrypted)
{
  memset (k, 0, sizeof *k);
  k->encrypted = encrypted;
  if (encrypted) {
    memset (k->enc_key, 0x11, sizeof k->enc_key);
    memset (k->id_key, 0x22, sizeof k->id_key);
  }
  memset (k->mac_key, 0x33, sizeof k->mac_key);
}

#endif
