#!/bin/bash
# Packed repositories (format 2, docs/FORMAT-packs.md) in a local directory:
#  - repo init --pack-size: format 2, chunks in packs/ found through
#    packidx/, no chunks/ objects; bad pack sizes are refused;
#  - backup, restore (bit-exact), verify; a second backup of the same data
#    stores nothing and writes no pack;
#  - a backup killed midway leaves packs no index names: no point appears,
#    gc deletes them, every earlier point still restores;
#  - prune + gc: packs without live chunks are deleted, mostly-dead packs
#    rewritten, every pack index replaced by one; the kept points restore;
#  - gc killed at every one of its writes, renames and deletes in turn:
#    each time verify passes and every point restores, and the next gc
#    finishes the work;
#  - damage: a flipped byte in a pack names the chunk; a missing or
#    truncated pack names the chunks it held; a damaged pack index gives a
#    one-line error and nothing is deleted;
#  - repo copy between a loose and a packed repository, both ways.
. "$(dirname "$0")/functions.sh"
requires python3
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
cd "$T"
sha_of () { sha256sum < "$1" | cut -d' ' -f1; }
npacks () { find "$1/packs" -type f 2>/dev/null | wc -l; }
nidx () { find "$1/packidx" -type f 2>/dev/null | wc -l; }
info () { vmback --json repo info --repo "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
point_of () { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$1"; }
# after gc: the packs the pack index names are exactly the pack objects
packs_named () {
  _packidx_entries "$1" "$T/.e"
  diff <(cut -d' ' -f2 "$T/.e" | sort -u) <(find "$1/packs" -type f -printf '%f\n' | sort)
}
jget () { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
# every point of repository $1 restores to the sha256 recorded in $1.sums
all_restore () {
  local id sum
  while read -r id sum; do
    rm -f rr.raw
    vmback -q restore --repo "$1" "$id" rr.raw
    [ "$(sha_of rr.raw)" = "$sum" ] || { echo "point $id of $1 restores wrong"; return 1; }
  done < "$1.sums"
}

# ---- init
expect_fail "invalid pack size" vmback repo init --pack-size 1K bad1
expect_fail "invalid pack size" vmback repo init --pack-size 1G bad2
[ ! -e bad1/config ]; [ ! -e bad2/config ]
vmback -q repo init --chunk-size 256K --pack-size 1M p
[ "$(info p format)" -eq 2 ]; [ "$(info p pack-size)" -eq $((1 << 20)) ]
vmback repo info --repo p | grep -q "^pack size: *1048576"
vmback -q repo init --chunk-size 256K l
[ "$(info l format)" -eq 1 ]; [ "$(info l pack-size)" -eq 0 ]
[ -d p/packs ]; [ ! -e p/chunks ]; [ -d l/chunks ]; [ ! -e l/packs ]

# ---- backup, restore, verify, dedup
mkpattern d.raw $((6 << 20)) "$SEED"
truncate -s $((8 << 20)) d.raw                 # 2 MiB of zeros at the end
vmback --json backup --repo p d.raw > b1.json
point_of b1.json > /dev/null
echo "$(point_of b1.json) $(sha_of d.raw)" > p.sums
python3 - b1.json <<'PY'
import json,sys; d=json.load(open(sys.argv[1]))["disks"][0]
assert d["chunks-new"]==24 and d["chunks-zero"]==8, d
PY
[ "$(npacks p)" -ge 6 ]; [ "$(nidx p)" -eq 1 ]; [ -z "$(find p -path 'p/chunks/*' -type f)" ]
[ "$(info p chunks)" -eq 24 ]
all_restore p
vmback -q verify --repo p
np=$(npacks p)
vmback --json backup --repo p d.raw > b2.json
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["disks"][0]["chunks-new"])' b2.json)" -eq 0 ]
[ "$(npacks p)" -eq "$np" ]; [ "$(nidx p)" -eq 1 ]
echo "$(point_of b2.json) $(sha_of d.raw)" >> p.sums

# ---- a backup killed midway: no point; its packs are left unindexed
mkpattern big.raw $((24 << 20)) $((SEED + 1))
n_before=$(vmback --json list --repo p | grep -c '"id":')
VMBACK_FAIL_TRACE=$T/trace vmback -q backup --repo p --name probe d.raw
nw=$(grep -c '^repo-write$' trace); echo "writes of a backup: $nw"
rm -f trace
# kill it at its 10th write: one thread stores in a fixed order (the lock,
# 8 packs made durable together, then their pack index: killed there).
# With several threads, later packs may be written before that index.
rc=0; VMBACK_FAIL_AT='repo-write:10=KILL' "$VMBACK" -q backup --threads 1 --repo p big.raw || rc=$?
[ $rc -ne 0 ]
[ "$(vmback --json list --repo p | grep -c '"id":')" -eq $((n_before + 1)) ]   # + probe only
echo "$(vmback --json list --repo p | python3 -c 'import json,sys; print([p["id"] for p in json.load(sys.stdin)["points"] if p["id"].startswith("probe/")][0])') $(sha_of d.raw)" >> p.sums
vmback --json gc --dry-run --repo p > gd.json
cat gd.json
[ "$(jget gd.json packs-deleted)" -gt 0 ]; [ "$(jget gd.json temporary-files)" -gt 0 ]
vmback --json gc --repo p > g1.json
[ "$(jget g1.json packs-deleted)" -gt 0 ]; [ "$(nidx p)" -eq 1 ]
packs_named p
vmback -q verify --repo p
all_restore p

# ---- prune + gc: dead packs deleted, mostly-dead packs rewritten
for k in 1 2 3; do
  poke_pattern d.raw $((k << 20)) $((2 << 20)) $((SEED + 10 + k))
  vmback --json backup --repo p d.raw > bk.json
  echo "$(point_of bk.json) $(sha_of d.raw)" >> p.sums
done
[ "$(nidx p)" -eq 4 ]
vmback -q prune --repo p --keep-last 1 d
tail -1 p.sums > keep; grep "^probe/" p.sums >> keep; mv keep p.sums
vmback --json gc --repo p > g2.json
cat g2.json
[ "$(jget g2.json deleted)" -gt 0 ]
[ $(( $(jget g2.json packs-deleted) + $(jget g2.json packs-repacked) )) -gt 0 ]
[ "$(nidx p)" -eq 1 ]
packs_named p
vmback -q verify --repo p
all_restore p
vmback --json gc --repo p > g3.json                     # nothing left to do
[ "$(jget g3.json deleted)" -eq 0 ]; [ "$(jget g3.json packs-deleted)" -eq 0 ]

# ---- gc killed at each of its writes, renames and deletes
for k in 4 5 6; do
  poke_pattern d.raw $((k << 19)) $((1 << 20)) $((SEED + 20 + k))
  vmback --json backup --repo p d.raw > bk.json
  echo "$(point_of bk.json) $(sha_of d.raw)" >> p.sums
done
vmback -q prune --repo p --keep-last 2 d
python3 - p.sums "$(vmback --json list --repo p | python3 -c 'import json,sys; print(" ".join(p["id"] for p in json.load(sys.stdin)["points"]))')" <<'PY'
import sys
keep = set(sys.argv[2].split())
lines = [l for l in open(sys.argv[1]) if l.split()[0] in keep]
open(sys.argv[1], "w").writelines(lines)
PY
[ "$(wc -l < p.sums)" -eq 3 ]
rm -rf gct; cp -a p gct
VMBACK_FAIL_TRACE=$T/gtrace vmback -q gc --repo gct
for fp in repo-write repo-rename repo-delete; do
  n=$(grep -c "^$fp$" gtrace || true); echo "gc passes of $fp: $n"
  for i in $(seq 1 "$n"); do
    rm -rf gk; cp -a p gk; cp p.sums gk.sums
    rc=0; VMBACK_FAIL_AT="$fp:$i=KILL" "$VMBACK" -q gc --repo gk 2> /dev/null || rc=$?
    [ $rc -ne 0 ] || { echo "gc not killed at $fp:$i"; exit 1; }
    vmback -q verify --repo gk || { echo "verify failed after gc killed at $fp:$i"; exit 1; }
    all_restore gk
    vmback -q gc --repo gk
    vmback -q verify --repo gk
    [ "$(nidx gk)" -eq 1 ]
    packs_named gk
  done
done
rm -rf gk gct

# ---- damage (after a gc every named chunk is used, every pack mostly)
vmback -q gc --repo p
rm -rf dm; cp -a p dm; cp p.sums dm.sums
id=$(chunk_ids dm | head -1)
read -r key off len < <(chunk_loc dm "$id")
python3 -c 'import sys; o=int(sys.argv[2]); f=open(sys.argv[1],"r+b"); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^1]))' "dm/$key" $((off + len / 2))
rc=0; vmback verify --repo dm > v.out 2> v.err || rc=$?
cat v.err; [ $rc -eq 1 ]; grep -Eq "chunk $id.*(CRC mismatch|damaged)" v.err
rm -rf dm; cp -a p dm
pk=$(find dm/packs -type f | head -1)
rm "$pk"
rc=0; vmback verify --repo dm > v.out 2> v.err || rc=$?
[ $rc -eq 1 ]; grep -q "its pack 'packs/.*' does not exist" v.err
rm -rf dm; cp -a p dm
pk=$(find dm/packs -type f | head -1)
truncate -s 1000 "$pk"
rc=0; vmback verify --repo dm > v.out 2> v.err || rc=$?
[ $rc -eq 1 ]; grep -q "ends before byte" v.err
rm -rf dm; cp -a p dm
ix=$(find dm/packidx -type f | head -1)
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(30); b=f.read(1); f.seek(30); f.write(bytes([b[0]^1]))' "$ix"
find dm -type f -printf '%p %s\n' | sort > before
for cmd in "verify" "gc" "backup d.raw" "repo info"; do
  # shellcheck disable=SC2086
  expect_fail "pack index 'packidx/[0-9a-f]*' is damaged" vmback $cmd --repo dm
done
find dm -type f ! -path 'dm/locks/*' -printf '%p %s\n' | sort > after
diff <(grep -v '^dm/locks/' before) after
rm -rf dm

# ---- repo copy loose <-> packed
vmback -q backup --repo l d.raw
vmback -q backup --repo l big.raw
vmback -q repo init --chunk-size 256K --pack-size 512K lp
vmback --json repo copy l lp > c1.json
[ "$(jget c1.json points-copied)" -eq 2 ]
[ "$(npacks lp)" -gt 0 ]; [ -z "$(find lp -path 'lp/chunks/*' -type f)" ]
vmback -q verify --repo lp
rm -f r1.raw; vmback -q restore --repo lp big@latest r1.raw; cmp r1.raw big.raw
vmback --json repo copy l lp > c2.json
[ "$(jget c2.json points-present)" -eq 2 ]; [ "$(jget c2.json chunks-sent)" -eq 0 ]
vmback -q repo init --chunk-size 256K l2
vmback -q repo copy lp l2
rm -f r2.raw; vmback -q restore --repo l2 d@latest r2.raw; cmp r2.raw d.raw
[ "$(find l2/chunks -type f | wc -l)" -eq "$(info lp chunks)" ]
vmback -q verify --repo l2
echo OK
