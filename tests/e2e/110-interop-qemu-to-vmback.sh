#!/bin/bash
# Disks written by qemu-img, in every VMDK subformat it knows, read back by
# vmback bit-identical to qemu-img's own raw conversion.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

# 10 MiB + 7 sectors: not a multiple of the 64 KiB grain.
SIZE=$((10 * 1024 * 1024 + 7 * 512))
src="$T/src.raw"
truncate -s $SIZE "$src"
poke_pattern "$src" 0 200000 1                  # data over several grains
poke_pattern "$src" $((3 * 1048576 + 4096)) 4096 2   # partial grain
poke_pattern "$src" $((SIZE - 1536)) 1536 3     # inside the last partial grain
dd if=/dev/zero of="$src" bs=64k seek=80 count=4 conv=notrunc status=none  # explicit zeros

for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
  img="$T/q-$sub.vmdk"
  qemu-img convert -f raw -O vmdk -o subformat=$sub "$src" "$img"
  qemu-img convert -f vmdk -O raw "$img" "$T/qemu.raw"
  vmback disk read "$img" > "$T/vmback.raw"
  cmp "$T/qemu.raw" "$T/vmback.raw"
  cmp <(head -c $SIZE "$src") <(head -c $SIZE "$T/vmback.raw")
  vmback disk convert "$img" "$T/conv-$sub.raw"
  cmp "$T/qemu.raw" "$T/conv-$sub.raw"
  vmback --json disk info "$img" | grep -q "\"createType\": \"$sub\""
done

# zeroed grains (GTE=1) and writes made through qemu-io on a live image
img="$T/zg.vmdk"
qemu-img create -q -f vmdk -o subformat=monolithicSparse,zeroed_grain=on "$img" 4M
qemu-io -f vmdk -c "write -P 0xab 0 1M" -c "write -z 256k 128k" -c "write -P 0x11 1000k 3k" \
        -c "write -P 0x22 4190208 4096" "$img" > /dev/null
qemu-img convert -f vmdk -O raw "$img" "$T/qemu.raw"
vmback disk read "$img" > "$T/vmback.raw"
cmp "$T/qemu.raw" "$T/vmback.raw"
