#!/bin/bash
# Round trip: a full backup, then three incrementals after random writes,
# zeroed ranges, a discard and a grown disk; every point restores to the
# disk's bytes at its time (sha256), as raw and as vmdk; a middle point
# still restores after the older ones are pruned and gc has run; bytes
# rewritten unchanged are read again (the tracker reports them) but stored
# as nothing new.
. "$(dirname "$0")/functions.sh"
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
cd "$T"
export VMBACK_REPO=$(repo_url repo)
vmback -q repo init --chunk-size 256K "$VMBACK_REPO"
vmback disk create --type monolithicSparse --size 48M --ctk d.vmdk
poke_pattern p0 0 $((12 << 20)) $SEED
vmback disk write d.vmdk --offset 1M < p0
snap () { vmback disk read d.vmdk | sha256sum | cut -d' ' -f1 > "sha.$1"; }
rand_writes () {   # $1 = seed: 25 random writes of 1 B .. 300 KiB
  python3 - "$1" "$(vmback --json disk info d.vmdk | python3 -c 'import json,sys;print(json.load(sys.stdin)["virtual-size"])')" <<'PY' > w
import random,sys
r=random.Random(int(sys.argv[1])); size=int(sys.argv[2])
for _ in range(25):
    n=r.randrange(1,300000); o=r.randrange(0,size-n); print(o,n)
PY
  while read -r o n; do head -c "$n" /dev/urandom | vmback disk write d.vmdk --offset "$o"; done < w
}
vmback -q backup d.vmdk; snap 1
# incremental 1: random writes + explicitly zeroed bytes
rand_writes $((SEED + 1))
head -c $((700 << 10)) /dev/zero | vmback disk write d.vmdk --offset $((2 << 20))
vmback --json backup d.vmdk > i1.json; snap 2
grep -q '"change-id-used": "[0-9a-f-]*/' i1.json
# incremental 2: a discard (deallocated range) + random writes
vmback disk write d.vmdk --zero --offset $((5 << 20)) --length $((3 << 20))
rand_writes $((SEED + 2))
vmback --json backup d.vmdk > i2.json; snap 3
grep -q '"change-id-used": "[0-9a-f-]*/' i2.json
# incremental 3: the disk grows (tracking restarts: a full, deduplicated read)
vmback disk grow d.vmdk --size 64M
poke_pattern p4 0 100000 $((SEED + 3))
vmback disk write d.vmdk --offset $((60 << 20)) < p4
vmback --json backup d.vmdk > i3.json; snap 4
python3 - i3.json <<'PY'
import json,sys; d=json.load(open(sys.argv[1]))["disks"][0]
assert d["size"]==64<<20, d
assert d["chunks-new"] <= 4, d          # only the new data is stored
PY
mapfile -t ids < <(vmback --json list | python3 -c 'import json,sys;[print(p["id"]) for p in json.load(sys.stdin)["points"]]')
[ ${#ids[@]} -eq 4 ]
for k in 1 2 3 4; do
  id=${ids[$((k-1))]}
  vmback -q restore "$id" r$k.raw
  [ "$(sha256sum < r$k.raw | cut -d' ' -f1)" = "$(cat sha.$k)" ]
  vmback -q restore "$id" r$k.vmdk
  [ "$(vmback disk read r$k.vmdk | sha256sum | cut -d' ' -f1)" = "$(cat sha.$k)" ]
  if command -v qemu-img >/dev/null; then qemu-img check -q -f vmdk r$k.vmdk; fi
done
# sparse output: the raw restore keeps holes
[ "$(stat -c %b r1.raw)" -lt $(( (48 << 20) / 512 )) ]
# prune the two oldest, gc, and the middle point still restores
vmback prune --keep-last 2
vmback gc
vmback verify
rm r3.raw
vmback -q restore "${ids[2]}" r3.raw
[ "$(sha256sum < r3.raw | cut -d' ' -f1)" = "$(cat sha.3)" ]
expect_fail "no restore point" vmback restore "${ids[0]}" gone.raw
# a rewrite with the same bytes: two chunks read, none new, same disk
vmback disk read d.vmdk | tail -c +$(( (9 << 20) + 1 )) | head -c $((512 << 10)) > same
vmback disk write d.vmdk --offset $((9 << 20)) < same
vmback -q backup d.vmdk
vmback --json list | python3 -c '
import json,sys; d=json.load(sys.stdin)["points"][-1]["disks"][0]
assert d["chunks-read"]==2 and d["chunks-new"]==0 and d["bytes-stored"]==0, d'
vmback -q restore latest r5.raw
[ "$(sha256sum < r5.raw | cut -d' ' -f1)" = "$(cat sha.4)" ]
