#!/bin/bash
# Chains of depth 3 (base + two redo logs), made by vmback and by qemu-img,
# read identical to qemu-img's flattened conversion.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io
SIZE=8M

# --- made by vmback: base (monolithicSparse) <- c1 <- c2
cd "$T"
vmback disk create --type monolithicSparse --size $SIZE base.vmdk
poke_pattern p1 0 3000000 1
vmback disk write base.vmdk --offset 0 < p1
vmback disk child base.vmdk c1.vmdk
poke_pattern p2 0 100000 2
vmback disk write c1.vmdk --offset 65000 < p2          # partial grains: COW from base
vmback disk write c1.vmdk --zero --offset 1048576 --length 131072   # zeroed over base data
vmback disk child c1.vmdk c2.vmdk
poke_pattern p3 0 5000 3
vmback disk write c2.vmdk --offset 2999000 < p3
vmback disk write c2.vmdk --offset 7000000 < p3
qemu-img check -f vmdk c1.vmdk
qemu-img check -f vmdk c2.vmdk
qemu-img convert -f vmdk -O raw c2.vmdk q.raw
vmback disk read c2.vmdk > v.raw
cmp q.raw v.raw
# the expected content, computed independently
truncate -s $SIZE exp.raw
dd if=p1 of=exp.raw conv=notrunc status=none
dd if=p2 of=exp.raw bs=1 seek=65000 conv=notrunc status=none
dd if=/dev/zero of=exp.raw bs=1 seek=1048576 count=131072 conv=notrunc status=none
dd if=p3 of=exp.raw bs=1 seek=2999000 conv=notrunc status=none
dd if=p3 of=exp.raw bs=1 seek=7000000 conv=notrunc status=none
cmp exp.raw v.raw
vmback --json disk info c2.vmdk | python3 -c '
import json,sys; j=json.load(sys.stdin); assert len(j["chain"])==3, j'
# the parent is untouched by child writes
vmback disk read base.vmdk --length 3000000 | cmp - p1

# --- made by qemu-img with -b
qemu-img create -q -f vmdk -o subformat=monolithicSparse qb.vmdk $SIZE
qemu-io -f vmdk -c "write -P 0x61 0 4M" qb.vmdk >/dev/null
qemu-img create -q -f vmdk -b qb.vmdk -F vmdk qc1.vmdk
qemu-io -f vmdk -c "write -P 0x62 1M 100k" -c "write -P 0x63 6M 1k" qc1.vmdk >/dev/null
qemu-img create -q -f vmdk -b qc1.vmdk -F vmdk qc2.vmdk
qemu-io -f vmdk -c "write -P 0x64 1050k 10k" qc2.vmdk >/dev/null
qemu-img convert -f vmdk -O raw qc2.vmdk q2.raw
vmback disk read qc2.vmdk > v2.raw
cmp q2.raw v2.raw

# --- merge c2 into c1, then c1 into base: data is unchanged
vmback disk merge c2.vmdk
[ ! -e c2.vmdk ]
vmback disk read c1.vmdk | cmp - exp.raw
vmback disk merge c1.vmdk
vmback disk read base.vmdk | cmp - exp.raw
qemu-img check -f vmdk base.vmdk
