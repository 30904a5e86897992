#!/bin/bash
# Change tracking: after random writes, `cbt query --since` returns a
# superset of the written ranges and nothing outside their 64 KiB blocks.
. "$(dirname "$0")/functions.sh"
SEED=${SEED:-$RANDOM}
echo "seed=$SEED"
cd "$T"
for type in monolithicFlat monolithicSparse twoGbMaxExtentSparse; do
  d=ctk-$type.vmdk
  vmback disk create --type $type --size 64M --ctk $d
  vmback --json disk info $d | grep -q '"state": "valid"'
  id0=$(vmback cbt changeid $d)
  [[ "$id0" =~ ^[0-9a-f-]{36}/[0-9]+$ ]]
  # '*' on an empty disk: nothing allocated yet (flat: nothing but holes)
  vmback cbt query $d --since '*' > all0
  [ ! -s all0 ]
  python3 - $SEED > writes <<'PY'
import random,sys
r=random.Random(int(sys.argv[1]))
for i in range(40):
    off=r.randrange(0,64*1024*1024-300000); ln=r.randrange(1,300000)
    print(off,ln)
PY
  i=0
  while read off len; do
    i=$((i+1))
    head -c $len /dev/urandom | vmback disk write $d --offset $off
    if [ $i -eq 20 ]; then id1=$(vmback cbt changeid $d); fi
  done < writes
  vmback cbt query $d --since "$id0" > q0
  vmback cbt query $d --since "$id1" > q1
  vmback --json cbt query $d --since "$id0" | grep -q '"changed-areas"'
  python3 - writes q0 q1 <<'PY'
import sys
B=65536
w=[tuple(map(int,l.split())) for l in open(sys.argv[1])]
def check(qfile, writes):
    q=[tuple(map(int,l.split())) for l in open(qfile)]
    # sorted, merged, aligned
    for (a,b),(c,d) in zip(q,q[1:]): assert a+b < c, ("not merged/sorted",q)
    for a,b in q: assert a%B==0, ("unaligned", a)
    covered=lambda o: any(a<=o<a+b for a,b in q)
    blocks=set()
    for off,ln in writes:
        for blk in range(off//B, (off+ln-1)//B+1): blocks.add(blk)
    for blk in blocks:
        assert covered(blk*B) and covered(min(blk*B+B-1, 64*1024*1024-1)), ("missed block", blk)
    for a,b in q:
        for blk in range(a//B, (a+b-1)//B+1):
            assert blk in blocks, ("reported unwritten block", blk)
check(sys.argv[2], w)
check(sys.argv[3], w[20:])
print("ok", sys.argv[2], sys.argv[3])
PY
  # --start clips the answer
  vmback cbt query $d --since "$id0" --start 32M | awk '{ if ($1 < 33554432) exit 1 }'
  # '*' now lists allocated areas and covers everything written
  vmback cbt query $d --since '*' > all
  [ -s all ]
done
# raw disks cannot carry a tracker
vmback disk create --type raw --size 1M r.raw
expect_fail "change tracking needs a VMDK descriptor" vmback cbt enable r.raw
# disable removes the tracker file and the descriptor key
vmback cbt disable ctk-monolithicFlat.vmdk
[ ! -e ctk-monolithicFlat-ctk.vmdk ]
refute grep -q changeTrackPath ctk-monolithicFlat.vmdk
expect_fail "change tracking is not enabled" vmback cbt changeid ctk-monolithicFlat.vmdk
vmback cbt enable ctk-monolithicFlat.vmdk
vmback cbt changeid ctk-monolithicFlat.vmdk
