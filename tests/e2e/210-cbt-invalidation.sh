#!/bin/bash
# The tracker never answers too little: after a write without tracking
# (CID change), a resize, a crash mid-session or a reset, old changeIds are
# refused with exit status 3 and a reason.
. "$(dirname "$0")/functions.sh"
requires qemu-io
cd "$T"
vmback disk create --type monolithicSparse --size 16M --ctk d.vmdk
echo a | vmback disk write d.vmdk --offset 0
id=$(vmback cbt changeid d.vmdk)
vmback cbt query d.vmdk --since "$id" > /dev/null

# 1. a write by a tool that does not track (qemu-io bumps the CID)
qemu-io -f vmdk -c "write -P 0x77 1M 64k" d.vmdk > /dev/null
rc=0; vmback cbt query d.vmdk --since "$id" 2> err || rc=$?
cat err; [ $rc -eq 3 ]; grep -q "written without change tracking" err
vmback --json disk info d.vmdk | grep -q '"state": "invalid"'
# the next tracked write resets the tracker: a new epoch, the old id stays refused
echo b | vmback disk write d.vmdk --offset 0
id2=$(vmback cbt changeid d.vmdk)
rc=0; vmback cbt query d.vmdk --since "$id" 2> err || rc=$?; [ $rc -eq 3 ]
grep -q "earlier change tracking epoch" err
vmback cbt query d.vmdk --since "$id2" > /dev/null

# 2. resize
vmback disk grow d.vmdk --size 32M
rc=0; vmback cbt query d.vmdk --since "$id2" 2> err || rc=$?; cat err; [ $rc -eq 3 ]

# 3. a writer killed mid-session (flat disk: grow does not rewrite it)
vmback disk create --type monolithicFlat --size 64M --ctk f.vmdk
id3=$(vmback cbt changeid f.vmdk)
( head -c 64M /dev/urandom; sleep 5 ) | vmback disk write f.vmdk --offset 0 &
pid=$!
sleep 1.5
pkill -9 -f "vmback disk write f.vmdk" || true
wait $pid || true
rc=0; vmback cbt query f.vmdk --since "$id3" 2> err || rc=$?; cat err; [ $rc -eq 3 ]
grep -q "did not close the disk cleanly" err
rc=0; vmback cbt changeid f.vmdk 2>/dev/null || rc=$?; [ $rc -eq 3 ]

# 4. malformed and foreign changeIds
expect_fail "changeId|change ID|malformed|invalid" vmback cbt query d.vmdk --since "nonsense"
rc=0; vmback cbt query d.vmdk --since "00000000-0000-0000-0000-000000000000/1" 2>/dev/null || rc=$?; [ $rc -eq 3 ]
