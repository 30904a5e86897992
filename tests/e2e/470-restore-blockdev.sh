#!/bin/bash
# Restore to a block device (a loop device over a file), and back up from one.
. "$(dirname "$0")/functions.sh"
requires losetup
cd "$T"
head -c 64M /dev/urandom > dev.img   # old data that must not survive
dev=$(losetup -f --show dev.img 2>/dev/null) || { echo "SKIP: no loop devices here"; exit 77; }
cleanup_fn losetup -d "$dev"
export VMBACK_REPO=$T/repo
vmback -q repo init repo
vmback disk create --type monolithicSparse --size 64M d.vmdk
poke_pattern p 0 $((5 << 20)) 7
vmback disk write d.vmdk --offset 3M < p
vmback -q backup d.vmdk
vmback restore d@latest "$dev"
vmback disk read d.vmdk | cmp - "$dev"
# a device is also a source
vmback -q backup --name dev "$dev"
vmback -q restore dev@latest back.raw
cmp back.raw dev.img
