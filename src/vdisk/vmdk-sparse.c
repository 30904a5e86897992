/* STUB placeholder until the real driver lands (overwrite freely). */
#include "vdisk-int.h"
const struct vdisk_extent_ops vdisk_sparse_ops = { .name = "sparse-stub", .kind = VMDK_EXT_SPARSE };
