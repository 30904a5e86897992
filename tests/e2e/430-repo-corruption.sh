#!/bin/bash
# Repository damage, each kind on a fresh copy of a two-point repository:
# a flipped byte in a chunk (one used only by the newer point, one shared
# by both), a truncated index, a deleted chunk, a tampered manifest.
# verify exits 1 naming the bad object and exactly the points it breaks;
# restoring a broken point fails with a one-line error and leaves no
# target file; points the damage does not touch still verify and restore
# bit-exactly; gc refuses to run on a repository whose manifests it
# cannot read (it would delete the chunks of that point).
. "$(dirname "$0")/functions.sh"
requires python3
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
cd "$T"
vmback -q repo init --chunk-size 256K repo
# point 1: 4 MiB of random data; point 2: 256 KiB at 1 MiB rewritten
mkpattern d.raw $((4 << 20)) "$SEED"
vmback -q backup --repo repo d.raw
sha1=$(sha256sum < d.raw | cut -d' ' -f1)
sleep 1   # distinct point ids (no id is a prefix of the other)
poke_pattern d.raw $((1 << 20)) $((256 << 10)) $((SEED + 1))
vmback -q backup --repo repo d.raw
sha2=$(sha256sum < d.raw | cut -d' ' -f1)
mapfile -t P < <(vmback --json list --repo repo | python3 -c '
import json,sys; [print(p["id"]) for p in json.load(sys.stdin)["points"]]')
[ ${#P[@]} -eq 2 ]
P1=${P[0]} P2=${P[1]}
ix1=repo/snapshots/$P1/disk0.index ix2=repo/snapshots/$P2/disk0.index
[ -f "$ix1" ]; [ -f "$ix2" ]

# chunk ids of an index (docs/FORMAT-index-manifest.md), zero chunks left out
ids () {
  python3 - "$1" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read(); n = int.from_bytes(b[24:32], 'little')
for i in range(n):
    h = b[32 + 32 * i:64 + 32 * i].hex()
    if h != '0' * 64: print(h)
PY
}
ids "$ix1" | sort -u > ids1
ids "$ix2" | sort -u > ids2
ONLY=$(comm -13 ids1 ids2)          # used by point 2 only
SHARED=$(comm -12 ids1 ids2 | head -1)
[ "$(echo "$ONLY" | wc -l)" -eq 1 ]; [ ${#ONLY} -eq 64 ]; [ ${#SHARED} -eq 64 ]
chunk () { echo "r/chunks/${1:0:2}/$1"; }
[ -f "repo/chunks/${ONLY:0:2}/$ONLY" ]
vmback -q verify --repo repo

fresh () { rm -rf r; cp -a repo r; }
flip () {   # flip one bit in the middle of file $1
  python3 - "$1" <<'PY'
import os,sys
fd = os.open(sys.argv[1], os.O_RDWR); n = os.fstat(fd).st_size
b = bytearray(os.pread(fd, 1, n // 2)); b[0] ^= 0x10; os.pwrite(fd, bytes(b), n // 2)
PY
}
# verify must exit 1, mention WHAT, and blame exactly the points given
verify_blames () {
  local what=$1; shift
  local rc=0
  vmback verify --repo r > v.out 2> v.err || rc=$?
  cat v.out v.err
  [ $rc -eq 1 ]
  grep -qF -- "$what" v.err
  grep -q "PROBLEMS FOUND" v.out
  rc=0
  vmback --json verify --repo r > v.json || rc=$?
  [ $rc -eq 1 ]
  python3 - v.json "$what" "$@" <<'PY'
import json,sys
j = json.load(open(sys.argv[1])); what = sys.argv[2]; bad = sys.argv[3:]
allp = [l for l in open('all-points').read().split()]
assert j["ok"] is False and j["bad-points"] == len(bad), j
lines = [l for l in j["problems"] if what in l]
assert lines, ("nothing names", what, j)
text = " ".join(j["problems"])
for p in bad: assert p in text, ("point not blamed", p, j)
for p in allp:
    if p not in bad: assert p not in " ".join(lines), ("healthy point blamed", p, j)
PY
}
printf '%s\n' "$P1" "$P2" > all-points
# restoring POINT must fail with PATTERN and leave no target (raw and vmdk)
restore_fails () {
  local pat=$1 pt=$2
  for out in o.raw o.vmdk; do
    rm -f "$out"
    expect_fail "$pat" vmback restore --repo r "$pt" "$out"
    [ ! -e "$out" ] || { echo "partial target $out left behind"; exit 1; }
  done
}
restore_ok () {   # POINT SHA
  rm -f ok.raw ok.vmdk
  vmback -q restore --repo r "$1" ok.raw
  [ "$(sha256sum < ok.raw | cut -d' ' -f1)" = "$2" ]
  vmback -q restore --repo r "$1" ok.vmdk
  [ "$(vmback disk read ok.vmdk | sha256sum | cut -d' ' -f1)" = "$2" ]
}

# 1. a flipped byte in a chunk only point 2 uses
fresh; flip "$(chunk "$ONLY")"
verify_blames "$ONLY" "$P2"
vmback -q verify --repo r "$P1"
rc=0; vmback -q verify --repo r "$P2" 2> v.err || rc=$?
[ $rc -eq 1 ]; grep -qF "$ONLY" v.err
restore_fails "chunk $ONLY.*(damaged|mismatch)" "$P2"
restore_ok "$P1" "$sha1"

# 2. a flipped byte in a chunk both points use
fresh; flip "$(chunk "$SHARED")"
verify_blames "$SHARED" "$P1" "$P2"
restore_fails "chunk $SHARED.*(damaged|mismatch)" "$P1"
restore_fails "chunk $SHARED.*(damaged|mismatch)" "$P2"

# 3. point 2's index truncated (to half, to nothing), or replaced by point
# 1's (a well-formed index with a valid HMAC, but not the one the manifest
# binds)
for how in half 0 swap; do
  fresh
  f=r/snapshots/$P2/disk0.index
  case $how in
    half) truncate -s $(( $(stat -c %s "$f") / 2 )) "$f" ;;
    0) : > "$f" ;;
    swap) cp "r/snapshots/$P1/disk0.index" "$f" ;;
  esac
  verify_blames "snapshots/$P2/disk0.index" "$P2"
  vmback -q verify --repo r "$P1"
  restore_fails "index 'snapshots/$P2/disk0.index'.*(damaged|tampered|match|short|truncated)" "$P2"
  restore_ok "$P1" "$sha1"
done

# 4. a chunk deleted: one of point 2 only, then a shared one
fresh; rm "$(chunk "$ONLY")"
verify_blames "$ONLY" "$P2"
vmback -q verify --repo r "$P1"
restore_fails "$ONLY.*(does not exist|missing|not found)" "$P2"
restore_ok "$P1" "$sha1"
fresh; rm "$(chunk "$SHARED")"
verify_blames "$SHARED" "$P1" "$P2"
restore_fails "$SHARED.*(does not exist|missing|not found)" "$P1"

# 4b. a chunk's blob replaced by another valid blob (the shared chunk's):
# well-formed, but its CRC covers the other chunk's id (and its content
# does not hash to this id)
fresh; cp "$(chunk "$SHARED")" "$(chunk "$ONLY")"
verify_blames "$ONLY" "$P2"
restore_fails "$ONLY" "$P2"
restore_ok "$P1" "$sha1"

# 5. point 2's manifest tampered with: a number changed, the JSON still valid
fresh
m=r/snapshots/$P2/manifest
grep -q '"chunks_new":1,' "$m"
sed -i 's/"chunks_new":1,/"chunks_new":2,/' "$m"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$m"
restore_fails "manifest 'snapshots/$P2/manifest' was tampered with or damaged" "$P2"
vmback -q verify --repo r "$P1"
restore_ok "$P1" "$sha1"
expect_fail "manifest 'snapshots/$P2/manifest' was tampered" vmback verify --repo r "$P2"
# gc must not sweep while a manifest is unreadable: that point's chunks
# would look unused
nchunks=$(find r/chunks -type f | wc -l)
expect_fail "manifest 'snapshots/$P2/manifest'" vmback gc --repo r
[ "$(find r/chunks -type f | wc -l)" -eq "$nchunks" ]
expect_fail "manifest 'snapshots/$P2/manifest'" vmback prune --repo r --keep-last 1
[ -f "r/snapshots/$P1/manifest" ]
# a whole-repository verify reports the bad manifest and still checks the
# other points (a report with ok=false, not an abort after the first error)
verify_blames "snapshots/$P2/manifest" "$P2"
python3 -c '
import json,sys; j=json.load(open("v.json"))
assert j["points"] == 2 and j["chunks-checked"] >= 16, j'
