#!/bin/bash
# `vmback disk check`: clean disks of every kind report 0 problems (exit
# 0); damage to the redundant or the primary grain directory / grain
# tables of a monolithicSparse file (offsets from the KDMV header, patched
# with python) is reported (exit 1) and `check --repair` fixes it, after
# which check is clean, qemu-img check passes and the data is intact.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io python3
cd "$T"

# check FILE must say "0 problems found" and exit 0
clean () {
  vmback disk check "$1" > chk.out
  cat chk.out
  grep -q ": 0 problems found" chk.out
}
# check FILE must report problems matching PATTERN and exit 1
dirty () {
  local rc=0
  vmback disk check "$1" > chk.out || rc=$?
  cat chk.out
  [ $rc -eq 1 ]
  grep -Eq -- "$2" chk.out
  grep -Eq "[1-9][0-9]* problems? found" chk.out
}

# KDMV header fields: u64 sector numbers, little endian.
#   kdmv FILE FIELD -> rgd (byte 48) | gd (56) | overhead (64)
kdmv () {
  python3 -c '
import struct,sys
off={"rgd":48,"gd":56,"overhead":64}[sys.argv[2]]
with open(sys.argv[1],"rb") as f: h=f.read(512)
assert h[:4]==b"KDMV"
print(struct.unpack_from("<Q",h,off)[0])' "$1" "$2"
}
# u32 at byte OFFSET of FILE: get32 FILE OFFSET / put32 FILE OFFSET VALUE
get32 () { python3 -c '
import struct,sys
with open(sys.argv[1],"rb") as f: f.seek(int(sys.argv[2])); print(struct.unpack("<I",f.read(4))[0])' "$1" "$2"; }
put32 () { python3 -c '
import struct,sys
with open(sys.argv[1],"r+b") as f: f.seek(int(sys.argv[2])); f.write(struct.pack("<I",int(sys.argv[3])))' "$1" "$2" "$3"; }

# --- clean disks --------------------------------------------------------
SIZE=$((24 * 1048576))
truncate -s $SIZE ref.raw
poke_pattern ref.raw 0 300000 1
poke_pattern ref.raw $((5 * 1048576 + 17)) 100000 2
poke_pattern ref.raw $((SIZE - 70000)) 70000 3
for sub in monolithicSparse twoGbMaxExtentSparse streamOptimized monolithicFlat vmfs vmfsSparse; do
  vmback disk convert --type $sub ref.raw ok-$sub.vmdk
  clean ok-$sub.vmdk
done
cp ref.raw ok.raw
clean ok.raw
# a chain and a tracked child
vmback disk child ok-monolithicSparse.vmdk ok-child.vmdk --ctk
poke_pattern c.dat 0 5000 4
vmback disk write ok-child.vmdk --offset 123456 < c.dat
clean ok-child.vmdk
# made by qemu
qemu-img create -q -f vmdk -o subformat=monolithicSparse q.vmdk 24M
qemu-io -f vmdk -c "write -P 0x5a 1M 300k" -c "write -P 0x5b 20M 64k" q.vmdk >/dev/null
clean q.vmdk
# --json form
vmback --json disk check ok-vmfs.vmdk | python3 -c '
import json,sys; j=json.load(sys.stdin)
assert j["problems"]==0 and j["messages"]==[] and j["repaired"] is False, j'

# --- the redundant grain table ---------------------------------------------
# ok-monolithicSparse: 24 MiB, 64 KiB grains, 512 entries per table -> 32 MiB
# per table: one table (gd entry 0); data in it.
cp ok-monolithicSparse.vmdk d.vmdk
rgd=$(kdmv d.vmdk rgd); gd=$(kdmv d.vmdk gd)
echo "rgd sector $rgd, gd sector $gd"
[ "$rgd" -gt 0 ]
[ "$gd" -gt "$rgd" ]
rgt=$(get32 d.vmdk $((rgd * 512)))     # redundant table 0's sector
pgt=$(get32 d.vmdk $((gd * 512)))      # primary table 0's sector
[ "$rgt" -gt 0 ]
[ "$pgt" -gt 0 ]
[ "$rgt" != "$pgt" ]
first=$(get32 d.vmdk $((rgt * 512)))   # entry 0 (grain 0, holds data)
[ "$first" -gt 1 ]
# entry 0 of the redundant table points past the end of the file
put32 d.vmdk $((rgt * 512)) 4000000000
dirty d.vmdk "redundant"
vmback disk read d.vmdk | cmp - ref.raw           # reads use the primary
vmback disk check --repair d.vmdk
clean d.vmdk
[ "$(get32 d.vmdk $((rgt * 512)))" = "$first" ]
qemu-img check -f vmdk d.vmdk
qemu-img compare -f vmdk -F raw d.vmdk ref.raw

# an intact-looking but different redundant entry (primary wins)
put32 d.vmdk $((rgt * 512 + 4 * 80)) 0          # grain 80 (5 MiB) unmapped
dirty d.vmdk "differs from its redundant copy"
vmback disk check --repair d.vmdk
clean d.vmdk
qemu-img check -f vmdk d.vmdk
qemu-img compare -f vmdk -F raw d.vmdk ref.raw

# --- the redundant grain directory -----------------------------------------
cp ok-monolithicSparse.vmdk d2.vmdk
put32 d2.vmdk $((rgd * 512)) 4000000000
dirty d2.vmdk "redundant grain directory entry 0 .* points past the end"
vmback --json disk check d2.vmdk > chk.json || [ $? -eq 1 ]
python3 -c '
import json; j=json.load(open("chk.json"))
assert j["problems"]>=1 and any("redundant" in m for m in j["messages"]), j'
vmback disk check --repair d2.vmdk
clean d2.vmdk
qemu-img check -f vmdk d2.vmdk
qemu-img compare -f vmdk -F raw d2.vmdk ref.raw
# the whole redundant directory zeroed (entries missing)
cp ok-monolithicSparse.vmdk d3.vmdk
python3 -c '
import sys
with open(sys.argv[1],"r+b") as f: f.seek(int(sys.argv[2])*512); f.write(bytes(512))' d3.vmdk $rgd
dirty d3.vmdk "redundant grain table 0 .* damaged or missing"
vmback disk check --repair d3.vmdk
clean d3.vmdk
[ "$(get32 d3.vmdk $((rgd * 512)))" -gt 0 ]
qemu-img check -f vmdk d3.vmdk
qemu-img compare -f vmdk -F raw d3.vmdk ref.raw

# --- the primary grain table: repaired from the redundant copy --------------
cp ok-monolithicSparse.vmdk d4.vmdk
put32 d4.vmdk $((pgt * 512)) 4000000000
dirty d4.vmdk "primary grain table 0 .* damaged"
vmback disk check --repair d4.vmdk
clean d4.vmdk
[ "$(get32 d4.vmdk $((pgt * 512)))" = "$first" ]
qemu-img check -f vmdk d4.vmdk
qemu-img compare -f vmdk -F raw d4.vmdk ref.raw
vmback disk read d4.vmdk | cmp - ref.raw

# both copies damaged: reported, not "repaired", still exit 1 on re-check
cp ok-monolithicSparse.vmdk d5.vmdk
put32 d5.vmdk $((pgt * 512)) 4000000000
put32 d5.vmdk $((rgt * 512)) 4000000001
dirty d5.vmdk "both copies are damaged"
vmback disk check --repair d5.vmdk || true
dirty d5.vmdk "both copies are damaged"

# --- unclean shutdown flag (byte 72) ----------------------------------------
cp ok-monolithicSparse.vmdk d6.vmdk
printf '\001' | dd of=d6.vmdk bs=1 seek=72 conv=notrunc status=none
dirty d6.vmdk "not closed cleanly"
vmback disk check --repair d6.vmdk
clean d6.vmdk
[ "$(od -An -tu1 -j72 -N1 d6.vmdk | tr -d ' ')" = 0 ]

# a read-only file cannot be repaired: a one-line error, no crash
cp d5.vmdk ro.vmdk
chmod 444 ro.vmdk
if [ "$(id -u)" != 0 ]; then
  expect_fail "ro.vmdk" vmback disk check --repair ro.vmdk
fi
# checking something that is not a disk at all fails cleanly
echo "version=1" > notadisk.vmdk
expect_fail "notadisk.vmdk" vmback disk check notadisk.vmdk
echo OK
