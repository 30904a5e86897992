/* STUB placeholder until the real driver lands (overwrite freely). */
#include "vdisk-int.h"

