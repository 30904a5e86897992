#!/bin/bash
# Disks written by vmback, in every writable subformat, pass qemu-img check
# (where it checks VMDK) and compare equal to the source with qemu-img.
. "$(dirname "$0")/functions.sh"
requires qemu-img

SIZE=$((10 * 1024 * 1024 + 7 * 512))
src="$T/src.raw"
truncate -s $SIZE "$src"
poke_pattern "$src" 0 200000 1
poke_pattern "$src" $((3 * 1048576 + 4096)) 4096 2
poke_pattern "$src" $((SIZE - 1536)) 1536 3
dd if=/dev/zero of="$src" bs=64k seek=80 count=4 conv=notrunc status=none

for sub in monolithicSparse monolithicFlat vmfs twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
  img="$T/v-$sub.vmdk"
  vmback disk convert --type $sub "$src" "$img"
  case $sub in
    *Sparse|streamOptimized) qemu-img check -f vmdk "$img" ;;
  esac
  qemu-img compare -f raw -F vmdk "$src" "$img"
  qemu-img convert -f vmdk -O raw "$img" "$T/back.raw"
  cmp <(head -c $SIZE "$src") <(head -c $SIZE "$T/back.raw")
done

# sparse-aware: all-zero grains are not stored
vmback disk convert --type monolithicSparse "$src" "$T/s.vmdk"
alloc=$(vmback --json disk info "$T/s.vmdk" | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated-bytes"])')
[ "$alloc" -le $((6 * 65536)) ]   # 200000 B -> 4 grains, +1 partial, +1 last
# byte-offset writes into a vmback sparse disk, then qemu agrees
poke_pattern "$T/patch" 0 70000 9
vmback disk write "$T/s.vmdk" --offset 123457 < "$T/patch"
dd if="$T/patch" of="$src" bs=1 seek=123457 conv=notrunc status=none
qemu-img check -f vmdk "$T/s.vmdk"
qemu-img compare -f raw -F vmdk "$src" "$T/s.vmdk"
