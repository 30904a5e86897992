#!/bin/bash
# ESXi-style disks: a vmfs base, `vmback disk child` makes vmfsSparse (COWD
# -delta.vmdk) children automatically, two levels deep; qemu-img reads the
# same bytes as vmback; merges fold them back.  Then seSparse deltas made
# by tests/data-gen/mk-sesparse.py (skipped when that generator is absent)
# read the same through vmback and qemu-img, alone and over a vmfs base.
. "$(dirname "$0")/functions.sh"
requires qemu-img python3
cd "$T"
SIZE=$((16 * 1048576))

# --- vmfs base -------------------------------------------------------------
vmback disk create --type vmfs --size 16M base.vmdk
[ -e base-flat.vmdk ]
grep -q 'createType="vmfs"' base.vmdk
grep -q '^RW 32768 VMFS "base-flat.vmdk"' base.vmdk
mkpattern p0 $((5 * 1048576)) 1
vmback disk write base.vmdk --offset 0 < p0
truncate -s $SIZE exp.raw
dd if=p0 of=exp.raw conv=notrunc status=none
qemu-img compare -f vmdk -F raw base.vmdk exp.raw
base_cid=$(sed -n 's/^CID=//p' base.vmdk)

# --- first snapshot: vmfsSparse picked automatically ------------------------
vmback disk child base.vmdk base-000001.vmdk
ls -l
[ -e base-000001-delta.vmdk ]
[ "$(head -c 4 base-000001-delta.vmdk)" = COWD ]
grep -q 'createType="vmfsSparse"' base-000001.vmdk
grep -q '^RW 32768 VMFSSPARSE "base-000001-delta.vmdk"' base-000001.vmdk
grep -q 'parentFileNameHint="base.vmdk"' base-000001.vmdk
grep -q "^parentCID=$base_cid\$" base-000001.vmdk
# the new child reads as its parent
vmback disk read base-000001.vmdk | cmp - exp.raw
# byte-granular writes: partial 512-byte grains are completed from the base
poke_pattern p1 0 100001 2
vmback disk write base-000001.vmdk --offset 777 < p1
dd if=p1 of=exp.raw bs=1 seek=777 conv=notrunc status=none
poke_pattern p2 0 3000 3
vmback disk write base-000001.vmdk --offset $((12 * 1048576 - 1500)) < p2
dd if=p2 of=exp.raw bs=1 seek=$((12 * 1048576 - 1500)) conv=notrunc status=none
vmback disk write base-000001.vmdk --zero --offset $((2 * 1048576 + 100)) --length 70000
dd if=/dev/zero of=exp.raw bs=1 seek=$((2 * 1048576 + 100)) count=70000 conv=notrunc status=none
cp exp.raw exp1.raw
vmback disk read base-000001.vmdk > v1.raw
cmp v1.raw exp1.raw
qemu-img convert -f vmdk -O raw base-000001.vmdk q1.raw
cmp q1.raw v1.raw
qemu-img info base-000001.vmdk | grep -q "backing file: base.vmdk"
# the base is untouched
head -c $SIZE exp.raw > /dev/null
vmback disk read base.vmdk --length $((5 * 1048576)) | cmp - p0
# only the written grains are allocated in the delta (512-byte grains)
vmback --json disk info base-000001.vmdk > i1.json
python3 - <<'EOF'
import json
j=json.load(open("i1.json"))
assert j["createType"]=="vmfsSparse" and len(j["chain"])==2, j
# 777..100778 -> sectors 1..196; 3000 B -> 7 sectors; zero 70000 B -> at
# most 138 sectors (the COWD driver has no zero op: the core writes zeros)
assert (197 + 7) * 512 <= j["allocated-bytes"] <= (197 + 7 + 138) * 512, j["allocated-bytes"]
assert j["extents"][0].endswith("base-000001-delta.vmdk")
EOF

# --- second snapshot on the first ------------------------------------------
vmback disk child base-000001.vmdk base-000002.vmdk
[ "$(head -c 4 base-000002-delta.vmdk)" = COWD ]
grep -q 'parentFileNameHint="base-000001.vmdk"' base-000002.vmdk
poke_pattern p3 0 200000 4
vmback disk write base-000002.vmdk --offset 50000 < p3
dd if=p3 of=exp.raw bs=1 seek=50000 conv=notrunc status=none
vmback disk write base-000002.vmdk --offset $((SIZE - 3000)) < p2
dd if=p2 of=exp.raw bs=1 seek=$((SIZE - 3000)) conv=notrunc status=none
vmback disk read base-000002.vmdk > v2.raw
cmp v2.raw exp.raw
qemu-img convert -f vmdk -O raw base-000002.vmdk q2.raw
cmp q2.raw v2.raw
vmback disk read base-000001.vmdk | cmp - exp1.raw   # the middle is untouched
vmback --json disk info base-000002.vmdk | python3 -c '
import json,sys; j=json.load(sys.stdin); assert len(j["chain"])==3, j'
# map of the chain covers every written area
vmback disk map base-000002.vmdk > map.txt
python3 - <<'EOF'
m=[tuple(map(int,l.split())) for l in open("map.txt")]
def covered(o,n): return any(a<=o and o+n<=a+l for a,l in m)
assert covered(0, 5*1048576), m            # base data
assert covered(50000, 200000), m
assert covered(16*1048576-3000, 3000), m
EOF
# a vmfsSparse child can be asked for explicitly on a non-vmfs parent too
vmback disk create --type monolithicSparse --size 1M hosted.vmdk
vmback disk child --type vmfsSparse hosted.vmdk hosted-000001.vmdk
[ "$(head -c 4 hosted-000001-delta.vmdk)" = COWD ]
# and a flat type is refused as a child
expect_fail "sparse type" vmback disk child --type vmfs base.vmdk bad-child.vmdk
[ ! -e bad-child.vmdk ]

# --- merge back -------------------------------------------------------------
vmback disk merge base-000002.vmdk
[ ! -e base-000002.vmdk ]
[ ! -e base-000002-delta.vmdk ]
vmback disk read base-000001.vmdk | cmp - exp.raw
vmback disk merge base-000001.vmdk
[ ! -e base-000001.vmdk ]
[ ! -e base-000001-delta.vmdk ]
vmback disk read base.vmdk | cmp - exp.raw
qemu-img compare -f vmdk -F raw base.vmdk exp.raw
[ "$(sed -n 's/^CID=//p' base.vmdk)" != "$base_cid" ]   # the base was written

# --- seSparse (read only, made by the generator) ------------------------------
GEN="${VMBACK_ROOT:-$(dirname "$0")/../..}/tests/data-gen/mk-sesparse.py"
if [ ! -f "$GEN" ]; then
  echo "SKIP: tests/data-gen/mk-sesparse.py not available: seSparse part not run"
  exit 77
fi
# a delta alone (no parent): 4 KiB grains, some zero grains, shuffled order
truncate -s $SIZE se.raw
poke_pattern se.raw 0 10000 10
poke_pattern se.raw $((3 * 1048576 + 4096 * 5 + 7)) 50000 11
poke_pattern se.raw $((SIZE - 4096)) 4096 12
python3 "$GEN" --shuffle 5 se.raw se.vmdk
ls -l se*
grep -q 'createType="seSparse"' se.vmdk
vmback --json disk info se.vmdk | python3 -c '
import json,sys; j=json.load(sys.stdin); assert j["createType"]=="seSparse", j'
vmback disk read se.vmdk | cmp - se.raw
qemu-img convert -f vmdk -O raw se.vmdk qse.raw
cmp qse.raw se.raw
# seSparse is read only: writes are refused with a message
expect_fail "se.vmdk|seSparse|writ|read.only" vmback disk write se.vmdk --offset 0 < p2
vmback disk read se.vmdk | cmp - se.raw
# split grain indices (slot numbers >= 4096)
python3 "$GEN" --slot-base 5000 se.raw se-hi.vmdk
vmback disk read se-hi.vmdk | cmp - se.raw
qemu-img convert -f vmdk -O raw se-hi.vmdk qsehi.raw
cmp qsehi.raw se.raw

# over a vmfs base: unallocated grains show the base, zero grains hide it
mkpattern b0 $SIZE 20
vmback disk convert --type vmfs b0 sb.vmdk
truncate -s $SIZE d.raw
poke_pattern d.raw $((1048576)) 12288 21
poke_pattern d.raw $((9 * 1048576 + 100)) 30000 22
python3 "$GEN" --parent sb.vmdk d.raw sd.vmdk
grep -q 'parentFileNameHint="sb.vmdk"' sd.vmdk
# expected: base bytes, with the delta's non-zero 4 KiB grains on top
python3 - <<'EOF'
base=bytearray(open("b0","rb").read()); d=open("d.raw","rb").read()
for g in range(0,len(d),4096):
    blk=d[g:g+4096]
    if any(blk): base[g:g+4096]=blk
open("sexp.raw","wb").write(base)
EOF
vmback disk read sd.vmdk > vsd.raw
cmp vsd.raw sexp.raw
qemu-img convert -f vmdk -O raw sd.vmdk qsd.raw
cmp qsd.raw vsd.raw
# --zero-grains: all-zero grains of tables that exist read as zeros; one
# table covers 16 MiB, so here every grain is data or zero: the base is
# hidden entirely
python3 "$GEN" --parent sb.vmdk --zero-grains d.raw sz.vmdk
vmback disk read sz.vmdk > vsz.raw
cmp vsz.raw d.raw
qemu-img convert -f vmdk -O raw sz.vmdk qsz.raw
cmp qsz.raw vsz.raw
vmback disk map sz.vmdk > /dev/null
# a seSparse snapshot merges into its vmfs base
vmback disk merge sd.vmdk
[ ! -e sd.vmdk ]
[ -z "$(ls | grep '^sd-' || true)" ]
vmback disk read sb.vmdk | cmp - sexp.raw
qemu-img compare -f vmdk -F raw sb.vmdk sexp.raw
echo OK
