#!/bin/bash
# Raw and flat VMDK disks: create, write at byte offsets, read back, info.
. "$(dirname "$0")/functions.sh"

mkpattern "$T/data" 300000 1
for type in raw monolithicFlat vmfs twoGbMaxExtentFlat; do
  f="$T/d-$type.vmdk"; [ $type = raw ] && f="$T/d.raw"
  vmback disk create --type $type --size 5M "$f"
  vmback disk write "$f" --offset 12345 < "$T/data"
  vmback disk read "$f" --offset 12345 --length 300000 > "$T/out"
  cmp "$T/data" "$T/out"
  # untouched areas read as zeros
  vmback disk read "$f" --offset 0 --length 12345 | cmp - <(head -c 12345 /dev/zero)
  vmback --json disk info "$f" > "$T/info.json"
  python3 - "$T/info.json" $type <<'PY'
import json,sys
j=json.load(open(sys.argv[1]))
assert j["createType"]==sys.argv[2], j
assert j["virtual-size"]==5*1024*1024, j
PY
  # a write past the end is refused
  expect_fail "outside" vmback disk write "$f" --offset 5M < "$T/data"
done
# qemu-img agrees on the flat VMDKs we wrote
requires qemu-img
for type in monolithicFlat vmfs; do
  qemu-img convert -f vmdk -O raw "$T/d-$type.vmdk" "$T/q.raw"
  vmback disk read "$T/d-$type.vmdk" > "$T/v.raw"
  cmp "$T/q.raw" "$T/v.raw"
done
# a refused create never removes a file that was already there
cd "$T"
echo keep > k-flat.vmdk
expect_fail "file exists" vmback disk create --type vmfs --size 1M k.vmdk
[ "$(cat k-flat.vmdk)" = keep ]
echo keep > c-ctk.vmdk
expect_fail "file exists" vmback disk create --type monolithicFlat --size 1M --ctk c.vmdk
[ "$(cat c-ctk.vmdk)" = keep ]; [ ! -e c.vmdk ]; [ ! -e c-flat.vmdk ]
