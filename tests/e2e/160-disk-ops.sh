#!/bin/bash
# Whole-file operations: grow, shrink, defrag, rename, rm, map, info --json
# and convert between every pair of writable types, each checked against
# qemu-img (which we did not write) and an independently built raw image.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io python3
cd "$T"

# JSON field of a file: jget FILE EXPR (python expression on j)
jget () { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
# PATTERN must not occur in FILE ("! grep" would not trip set -e)
nogrep () { if grep -q -- "$1" "$2"; then echo "unexpected '$1' in $2"; return 1; fi; }
qsize () { qemu-img info --output=json "$1" > qi.json; jget qi.json 'j["virtual-size"]'; }

# --- grow: flat in place, sparse by rewrite; data kept, new area zeros ----
for sub in monolithicFlat vmfs monolithicSparse twoGbMaxExtentSparse streamOptimized; do
  vmback disk create --type $sub --size 4M g-$sub.vmdk
  mkpattern g.dat 3000000 11
  if [ $sub = streamOptimized ]; then
    vmback disk convert --type $sub g.dat g2-$sub.vmdk   # stream: written once
    vmback disk rm g-$sub.vmdk; vmback disk rename g2-$sub.vmdk g-$sub.vmdk
    truncate -s 4M g.dat   # convert took its size from the raw file
    vmback disk grow g-$sub.vmdk --size 4M               # same size: no-op
  else
    vmback disk write g-$sub.vmdk --offset 1000 < g.dat
  fi
  vmback disk grow g-$sub.vmdk --size 10M
  [ "$(qsize g-$sub.vmdk)" = 10485760 ]
  vmback --json disk info g-$sub.vmdk > gi.json
  [ "$(jget gi.json 'j["virtual-size"]')" = 10485760 ]
  [ "$(jget gi.json 'j["createType"]')" = $sub ]
  # expected: the pattern at its offset, zeros up to 10M
  rm -f gexp.raw; truncate -s 10M gexp.raw
  if [ $sub = streamOptimized ]; then
    dd if=g.dat of=gexp.raw conv=notrunc status=none
  else
    dd if=g.dat of=gexp.raw bs=1000 seek=1 conv=notrunc status=none
  fi
  vmback disk read g-$sub.vmdk | cmp - gexp.raw
  qemu-img compare -f vmdk -F raw g-$sub.vmdk gexp.raw
  case $sub in *Sparse|streamOptimized) qemu-img check -q -f vmdk g-$sub.vmdk;; esac
  # the grown area is writable (not for a finished stream)
  if [ $sub != streamOptimized ]; then
    poke_pattern tail.dat 0 5000 12
    vmback disk write g-$sub.vmdk --offset $((10485760 - 5000)) < tail.dat
    dd if=tail.dat of=gexp.raw bs=1 seek=$((10485760 - 5000)) conv=notrunc status=none
    qemu-img compare -f vmdk -F raw g-$sub.vmdk gexp.raw
  fi
done
# grow keeps change tracking on (a new tracker: the old changeIds are gone)
vmback disk create --type monolithicSparse --size 2M --ctk gc.vmdk
vmback disk grow gc.vmdk --size 3M
vmback --json disk info gc.vmdk > gci.json
[ "$(jget gci.json 'j["change-tracking"]["state"]')" = valid ]
# shrinking the virtual size is refused and changes nothing
expect_fail "not supported" vmback disk grow g-vmfs.vmdk --size 1M
[ "$(qsize g-vmfs.vmdk)" = 10485760 ]
# a raw image grows too
truncate -s 1M g.raw
vmback disk grow g.raw --size 2M
[ "$(stat -c %s g.raw)" = 2097152 ]

# --- shrink: zeroed grains of a sparse disk are dropped from the file -----
vmback disk create --type monolithicSparse --size 64M sh.vmdk
mkpattern sh.dat $((32 << 20)) 21
vmback disk write sh.vmdk < sh.dat
vmback disk write sh.vmdk --zero --offset $((4 << 20)) --length $((24 << 20))
before=$(stat -c %s sh.vmdk)
rm -f shexp.raw; truncate -s 64M shexp.raw
dd if=sh.dat of=shexp.raw conv=notrunc status=none
dd if=/dev/zero of=shexp.raw bs=1M seek=4 count=24 conv=notrunc status=none
vmback disk read sh.vmdk | cmp - shexp.raw
vmback disk shrink sh.vmdk
after=$(stat -c %s sh.vmdk)
echo "shrink: $before -> $after bytes"
[ "$after" -lt $((before - (20 << 20))) ]
vmback disk read sh.vmdk | cmp - shexp.raw
qemu-img check -q -f vmdk sh.vmdk
qemu-img compare -f vmdk -F raw sh.vmdk shexp.raw
[ "$(jget <(vmback --json disk info sh.vmdk) 'j["createType"]')" = monolithicSparse ]
# flat disks: shrink is a no-op that keeps the data
vmback disk convert --type monolithicFlat shexp.raw shf.vmdk
vmback disk shrink shf.vmdk
qemu-img compare -f vmdk -F raw shf.vmdk shexp.raw
# no leftovers of the rewrite
[ -z "$(ls -a | grep -E 'vmback-tmp|-new[0-9]|-old[0-9]' || true)" ]

# --- defrag: grains written backwards come out in virtual order -----------
vmback disk create --type monolithicSparse --size 8M df.vmdk
rm -f dfexp.raw; truncate -s 8M dfexp.raw
for i in $(seq 60 -3 0); do
  poke_pattern blk.dat 0 65536 $((100 + i))
  vmback disk write df.vmdk --offset $((i * 65536)) < blk.dat
  dd if=blk.dat of=dfexp.raw bs=64k seek=$i conv=notrunc status=none
done
# host offsets in virtual order? (qemu-img map reports them)
ordered () {
  qemu-img map -f vmdk --output=json "$1" | python3 -c '
import json,sys
m=[e for e in json.load(sys.stdin) if e["data"]]
offs=[e["offset"] for e in m]
print("ordered" if offs==sorted(offs) else "unordered")'
}
[ "$(ordered df.vmdk)" = unordered ]
vmback disk child df.vmdk df-c.vmdk       # a child must survive the rewrite
cid=$(strings df.vmdk | sed -n 's/^CID=//p' | head -1)
uuid=$(strings df.vmdk | grep '^ddb.uuid')
vmback disk defrag df.vmdk
[ "$(ordered df.vmdk)" = ordered ]
vmback disk read df.vmdk | cmp - dfexp.raw
qemu-img check -q -f vmdk df.vmdk
# same CID and uuid: the child still opens (vmback and qemu-img)
[ "$(strings df.vmdk | sed -n 's/^CID=//p' | head -1)" = "$cid" ]
[ "$(strings df.vmdk | grep '^ddb.uuid')" = "$uuid" ]
vmback disk read df-c.vmdk | cmp - dfexp.raw
qemu-img compare -f vmdk -F raw df-c.vmdk dfexp.raw
vmback disk shrink df.vmdk
vmback disk read df-c.vmdk | cmp - dfexp.raw

# --- rename: every file, descriptor references fixed ------------------------
mkpattern rn.raw $((5 << 20)) 31
for sub in monolithicFlat vmfs twoGbMaxExtentSparse twoGbMaxExtentFlat monolithicSparse streamOptimized; do
  mkdir rn-$sub; cd rn-$sub
  vmback disk convert --type $sub ../rn.raw old.vmdk
  [ $sub = streamOptimized ] || vmback cbt enable old.vmdk
  oldfiles=$(ls)
  vmback disk rename old.vmdk new.vmdk
  ls
  # nothing named old* is left, and each old file has its new twin
  [ -z "$(ls | grep '^old' || true)" ]
  for f in $oldfiles; do [ -e "new${f#old}" ]; done
  [ "$(ls | wc -l)" = "$(echo "$oldfiles" | wc -w)" ]
  case $sub in
    monolithicSparse|streamOptimized)
      # the embedded descriptor names the new file
      head -c 65536 new.vmdk | strings > emb.txt
      grep -q '"new.vmdk"' emb.txt
      nogrep old emb.txt
      if [ $sub != streamOptimized ]; then grep -q 'changeTrackPath="new-ctk.vmdk"' emb.txt; fi
      rm emb.txt ;;
    *)
      nogrep old new.vmdk
      grep -q '"new-' new.vmdk
      grep -q 'changeTrackPath="new-ctk.vmdk"' new.vmdk ;;
  esac
  qemu-img compare -f vmdk -F raw new.vmdk ../rn.raw
  vmback disk read new.vmdk | cmp - ../rn.raw
  if [ $sub != streamOptimized ]; then
    vmback --json disk info new.vmdk > ../ri.json
    [ "$(jget ../ri.json 'j["change-tracking"]["state"]')" = valid ]
  fi
  # the target must not exist
  cp new.vmdk taken.vmdk
  expect_fail "exists" vmback disk rename new.vmdk taken.vmdk
  cd ..
done
# a vmfsSparse child with -delta and -ctk files; its parent hint still works
mkdir rnc; cd rnc
vmback disk create --type vmfs --size 4M base.vmdk
vmback disk child base.vmdk base-000001.vmdk
vmback cbt enable base-000001.vmdk
poke_pattern c.dat 0 70000 32
vmback disk write base-000001.vmdk --offset 12345 < c.dat
vmback disk read base-000001.vmdk > ../rnc.raw
vmback disk rename base-000001.vmdk snap.vmdk
ls
for f in snap-delta.vmdk snap-ctk.vmdk; do [ -e $f ]; done
for f in base-000001.vmdk base-000001-delta.vmdk base-000001-ctk.vmdk; do [ ! -e $f ]; done
grep -q 'parentFileNameHint="base.vmdk"' snap.vmdk
vmback disk read snap.vmdk | cmp - ../rnc.raw
qemu-img compare -f vmdk -F raw snap.vmdk ../rnc.raw
# into another directory: the relative parent hint is rewritten
mkdir moved
vmback disk rename snap.vmdk moved/snap.vmdk
ls moved
[ ! -e snap.vmdk ]
[ -e moved/snap-delta.vmdk ]
vmback disk read moved/snap.vmdk | cmp - ../rnc.raw
qemu-img compare -f vmdk -F raw moved/snap.vmdk ../rnc.raw
cd ..
# a raw image is just renamed
cp rn.raw r1.raw
vmback disk rename r1.raw r2.raw
[ ! -e r1.raw ]
cmp r2.raw rn.raw

# --- rm: every file of the top layer, the parent untouched -----------------
mkdir rm; cd rm
vmback disk create --type twoGbMaxExtentSparse --size 5G base.vmdk
poke_pattern c.dat 0 70000 32
vmback disk write base.vmdk --offset $((2 << 30)) < c.dat   # in the 2nd extent
vmback disk child base.vmdk child.vmdk --ctk
vmback disk write child.vmdk --offset 100 < ../rn.raw
sum_before=$(cat base* | md5sum)
ls
[ -e child-ctk.vmdk ]
vmback disk rm child.vmdk
ls
[ ! -e child.vmdk ]
[ ! -e child-ctk.vmdk ]
[ "$(cat base* | md5sum)" = "$sum_before" ]
qemu-img check -q -f vmdk base.vmdk
vmback disk rm base.vmdk
[ -z "$(ls | grep -v '^c.dat$' || true)" ]
expect_fail "nothere.vmdk" vmback disk rm nothere.vmdk
cd ..

# --- map: the same data extents as qemu-img map ----------------------------
qemu-img create -q -f vmdk -o subformat=monolithicSparse qm.vmdk 32M
qemu-io -f vmdk -c "write -P 0x11 0 100k" -c "write -P 0x22 1M 64k" \
  -c "write -P 0x33 5000k 1k" -c "write -P 0x44 31M 1M" -c "write -P 0x55 8M 3M" qm.vmdk >/dev/null
qemu-img map -f vmdk --output=json qm.vmdk | python3 -c '
import json,sys
out=[]
for e in json.load(sys.stdin):
    if not e["data"]: continue
    if out and out[-1][0]+out[-1][1]==e["start"]: out[-1][1]+=e["length"]
    else: out.append([e["start"],e["length"]])
for o,l in out: print(o,l)' > qmap.txt
vmback disk map qm.vmdk > vmap.txt
cat qmap.txt vmap.txt
diff qmap.txt vmap.txt
vmback --json disk map qm.vmdk > vmap.json
python3 -c '
import json,sys
j=json.load(open("vmap.json")); q=[list(map(int,l.split())) for l in open("qmap.txt")]
assert [[e["offset"],e["length"]] for e in j["extents"]]==q, j
assert j["total-bytes"]==sum(l for o,l in q)'
# through a chain: child data and parent data both show
qemu-img create -q -f vmdk -b qm.vmdk -F vmdk qmc.vmdk
qemu-io -f vmdk -c "write -P 0x66 20M 128k" qmc.vmdk >/dev/null
qemu-img map -f vmdk --output=json qmc.vmdk | python3 -c '
import json,sys
out=[]
for e in json.load(sys.stdin):
    if not e["data"]: continue
    if out and out[-1][0]+out[-1][1]==e["start"]: out[-1][1]+=e["length"]
    else: out.append([e["start"],e["length"]])
for o,l in out: print(o,l)' > qmap2.txt
vmback disk map qmc.vmdk | diff qmap2.txt -

# --- info --json ----------------------------------------------------------
vmback disk create --type monolithicSparse --size 3M --adapter ide --ctk inf.vmdk
poke_pattern i.dat 0 100000 41
vmback disk write inf.vmdk --offset 65536 < i.dat
vmback disk child inf.vmdk inf-c.vmdk
vmback --json disk info inf.vmdk > inf.json
vmback --json disk info inf-c.vmdk > infc.json
cat inf.json infc.json
python3 - <<'EOF'
import json,re
j=json.load(open("inf.json")); c=json.load(open("infc.json"))
assert j["file"]=="inf.vmdk" and j["format"]=="vmdk", j
assert j["createType"]=="monolithicSparse"
assert j["virtual-size"]==3*1048576
assert j["allocated-bytes"]==2*65536, j["allocated-bytes"]   # 100000 B from 64K: 2 grains
assert j["file-bytes"]>=j["allocated-bytes"]
assert re.fullmatch(r"[0-9a-f]{8}", j["cid"]) and j["parent-cid"]=="ffffffff"
assert j["adapter-type"]=="ide" and len(j["uuid"])>10
assert j["chain"]==["inf.vmdk"] and j["extents"]==["inf.vmdk"]
assert j["change-tracking"]["state"]=="valid" and "/" in j["change-tracking"]["change-id"]
assert j["change-tracking"]["path"].endswith("inf-ctk.vmdk")
assert c["parent-cid"]==j["cid"], (c, j)
assert c["allocated-bytes"]==0 and len(c["chain"])==2 and c["chain"][1].endswith("inf.vmdk")
assert c["change-tracking"]["state"]=="off"
EOF
# raw: no vmdk fields
vmback --json disk info rn.raw > rinf.json
[ "$(jget rinf.json 'j["format"]')" = raw ]
[ "$(jget rinf.json '"cid" in j')" = False ]

# --- convert between every pair of writable types --------------------------
SIZE=$((6 * 1048576 + 3 * 512))
rm -f ref.raw; truncate -s $SIZE ref.raw
poke_pattern ref.raw 0 150000 51
poke_pattern ref.raw $((2 * 1048576 + 777)) 300000 52
poke_pattern ref.raw $((SIZE - 1000)) 1000 53
types="raw monolithicSparse monolithicFlat vmfs twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized vmfsSparse"
ext () { [ $1 = raw ] && echo raw || echo vmdk; }
for s in $types; do
  vmback disk convert --type $s ref.raw src-$s.$(ext $s)
done
# every pair; the sanitizer run (VMBACK_TEST_QUICK) takes each type to
# three others in rotation (every type still a source and a target 3 times)
set -- $types
for s in $types; do
  dests=$types
  if [ -n "${VMBACK_TEST_QUICK:-}" ]; then
    dests="$1 $2 $3"
    set -- "${@:2}" "$1"
  fi
  for d in $dests; do
    out=cv-$s-$d.$(ext $d)
    vmback disk convert --type $d src-$s.$(ext $s) $out
    qemu-img compare -q -f $(ext $d) -F raw $out ref.raw
    vmback disk info $out | grep -Eq "^createType: +$d\$"
    vmback disk rm $out
  done
done
vmback disk read src-vmfsSparse.vmdk | cmp - ref.raw
# convert never overwrites
expect_fail "exists" vmback disk convert --type vmfs ref.raw src-vmfs.vmdk
qemu-img compare -q -f vmdk -F raw src-vmfs.vmdk ref.raw
echo OK
