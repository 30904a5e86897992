#!/bin/bash
# A VM backup into a repository whose file system fills up (a 24 MiB
# tmpfs): the backup fails with a one-line "No space left on device", the
# snapshot is deleted, no point appears, no temporary file stays, the
# earlier point still verifies and restores bit-exactly; the chunks the
# failed run had written are gone with it (they were never renamed into
# place), so the repository uses what it used before and gc has nothing
# to do; once there is room, the next backup succeeds.
. "$(dirname "$0")/functions.sh"
requires python3
cd "$T"
mkdir mnt
mount -t tmpfs -o size=24m tmpfs mnt 2>/dev/null || { echo "SKIP: cannot mount a tmpfs here (needs root)"; exit 77; }
cleanup_fn "umount $T/mnt"
export VMBACK_REPO=$T/mnt/repo
vmback -q repo init --chunk-size 256K "$VMBACK_REPO"
cur () { echo "$(dirname "$1")/$(sed -n "s/^$2\.fileName = \"\(.*\)\"$/\1/p" "$1")"; }
npoints () { vmback --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))'; }
V=ds/v/v.vmx
vmback -q vm create $V --disk 64M --ctk
head -c $((8 << 20)) /dev/urandom | vmback disk write "$(cur $V scsi0:0)" --offset 0
vmback disk read "$(cur $V scsi0:0)" > before.raw
vmback -q backup $V
U1=$(du -sk mnt | cut -f1)
P1=$(vmback --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["points"][0]["id"])')

# 30 MiB of new data cannot fit in the 16 MiB left
head -c $((30 << 20)) /dev/urandom | vmback disk write "$(cur $V scsi0:0)" --offset $((16 << 20))
expect_fail "No space left on device" vmback -q backup $V
[ "$(vmback vm snapshot list $V)" = "no snapshots" ]
[ "$(npoints)" = 1 ]
[ -z "$(find mnt -name '*.tmp*' -o -name '.tmp*')" ]
vmback -q verify
vmback -q restore "$P1" p1.raw --disk scsi0:0
cmp p1.raw before.raw

[ "$(du -sk mnt | cut -f1)" -le $((U1 + 64)) ]
vmback --json gc > gc.json
python3 -c 'import json; j=json.load(open("gc.json")); assert j["deleted"] == 0 and j["orphans"] == 0, j'

# room again: the next backup succeeds (incremental from P1) and restores
mount -o remount,size=96m mnt
vmback --json backup $V > b2.json
python3 -c 'import json; j=json.load(open("b2.json")); assert j["disks"][0]["change-id-used"] != "*", j'
vmback -q verify
vmback -q restore v@latest p2.raw --disk scsi0:0
cmp p2.raw <(vmback disk read "$(cur $V scsi0:0)")
echo OK
