#!/bin/bash
# vm snapshot create/delete/delete-all/revert/list/consolidate on a VM with
# an ESXi-style (vmfs + vmfsSparse) and a hosted (monolithicSparse) disk:
# a scripted sequence and a random one checked against a model of the
# bytes of every disk and snapshot after every step, read by vmback and by
# qemu-img (docs/snapshots.md); change tracking across snapshots;
# quiescing hooks (docs/quiesce.md); bad input changes nothing.
. "$(dirname "$0")/functions.sh"
requires qemu-img python3
cd "$T"
HERE=$VMBACK_ROOT/tests/e2e

# --- the model: three delete cases, delete-all, revert, branch -----------
mkdir model
SECONDS=0
python3 "$HERE/vm_snapshot_model.py" "$VMBACK" "$T/model" | tee model.log
echo "model: $SECONDS s"
grep -q "^25 steps checked" model.log
mkdir random
steps=8
[ -n "${VMBACK_TEST_QUICK:-}" ] && steps=4
python3 "$HERE/vm_snapshot_model.py" "$VMBACK" "$T/random" --seed 5 --steps random:$steps \
  | tail -1 | grep -q "steps checked"

# --- the files of a snapshot ---------------------------------------------
vmback vm create ds/a/a.vmx --disk 16M:vmfs --disk 16M --ctk
V=ds/a/a.vmx
vmback vm snapshot create $V first --description "before the upgrade"
for f in a-000001.vmdk a-000001-delta.vmdk a-000001-ctk.vmdk a_1-000001.vmdk \
         a_1-000001-ctk.vmdk a-Snapshot1.vmsn; do
  [ -f ds/a/$f ] || { echo "missing ds/a/$f"; exit 1; }
done
grep -q '^createType="vmfsSparse"' ds/a/a-000001.vmdk
grep -qx 'scsi0:0.fileName = "a-000001.vmdk"' $V
grep -qx 'snapshot0.disk0.fileName = "a.vmdk"' ds/a/a.vmsd
grep -qx 'snapshot0.description = "before the upgrade"' ds/a/a.vmsd
qemu-img info --backing-chain ds/a/a-000001.vmdk | grep -q 'backing file: a.vmdk'
qemu-img info --backing-chain ds/a/a_1-000001.vmdk | grep -q 'backing file: a_1.vmdk'
vmback --json vm snapshot list $V > list.json
python3 -c "
import json; j=json.load(open('list.json'))
assert j['current'] == 1 and j['snapshots'][0]['name'] == 'first', j
assert j['snapshots'][0]['consistency'] == 'crash', j"
vmback vm snapshot list $V | grep -q '^\* 1 "first".*(current)'

# --- change tracking follows the snapshot ---------------------------------
c0=$(vmback cbt changeid ds/a/a.vmdk)
[ "$(vmback cbt changeid ds/a/a-000001.vmdk)" = "$c0" ]
mkpattern w.bin 65536 3
vmback disk write ds/a/a-000001.vmdk --offset 1048576 < w.bin
vmback cbt query ds/a/a-000001.vmdk --since "$c0" > q1
grep -qx "1048576 65536" q1
c1=$(vmback cbt changeid ds/a/a-000001.vmdk)
# the snapshot's own layer still answers as of the snapshot
[ "$(vmback cbt changeid ds/a/a.vmdk)" = "$c0" ]
# delete merges the child into the base: the changeIds stay valid there
vmback vm snapshot delete $V first
grep -qx 'scsi0:0.fileName = "a.vmdk"' $V
[ ! -e ds/a/a-000001.vmdk ]; [ ! -e ds/a/a-000001-delta.vmdk ]; [ ! -e ds/a/a-Snapshot1.vmsn ]
[ "$(vmback cbt changeid ds/a/a.vmdk)" = "$c1" ]
vmback cbt query ds/a/a.vmdk --since "$c0" | grep -qx "1048576 65536"
# revert starts a new tracking epoch: no earlier changeId is accepted
vmback vm snapshot create $V second
vmback disk write ds/a/a-000001.vmdk --offset 0 < w.bin
c2=$(vmback cbt changeid ds/a/a-000001.vmdk)
vmback vm snapshot revert $V second
leaf=ds/a/$(sed -n 's/^scsi0:0.fileName = "\(.*\)"$/\1/p' $V)
rc=0; vmback cbt query "$leaf" --since "$c2" >/dev/null 2>&1 || rc=$?
[ $rc = 3 ]
rc=0; vmback cbt query "$leaf" --since "$c1" >/dev/null 2>&1 || rc=$?
[ $rc = 3 ]
vmback vm snapshot delete-all $V
grep -qx 'scsi0:0.fileName = "a.vmdk"' $V
grep -qx 'scsi0:1.fileName = "a_1.vmdk"' $V

# --- the 32-snapshot limit -------------------------------------------------
vmback vm create ds/b/b.vmx --disk 1M
for i in $(seq 1 32); do vmback -q vm snapshot create ds/b/b.vmx "s$i"; done
snap_state () { (cd ds/b && ls -l --time-style=+%s.%N && cat b.vmx b.vmsd) | sha256sum; }
before=$(snap_state)
expect_fail "already has 32 snapshots" vmback vm snapshot create ds/b/b.vmx s33
[ "$(snap_state)" = "$before" ]
vmback -q vm snapshot delete-all ds/b/b.vmx
[ "$(ls ds/b | grep -c -- '-0000')" = 0 ]

# --- bad input: clear errors, nothing modified -----------------------------
vmback vm create ds/c/c.vmx --disk 4M --disk 4M:vmfs
C=ds/c/c.vmx
vmback -q vm snapshot create $C one
state () { (cd ds/c && ls -l --time-style=+%s.%N && cat c.vmx c.vmsd) | sha256sum; }
cp ds/c/c.vmsd good.vmsd
# a loop in the snapshot tree
sed 's/^snapshot0.uid = "1"/snapshot0.uid = "1"\nsnapshot0.parent = "1"/' good.vmsd > ds/c/c.vmsd
before=$(state)
expect_fail "loop|parent" vmback vm snapshot create $C two
expect_fail "loop|parent" vmback vm snapshot delete-all $C
[ "$(state)" = "$before" ]
# a malformed line
{ cat good.vmsd; echo 'snapshot0.displayName "no equals sign"'; } > ds/c/c.vmsd
before=$(state)
expect_fail "c.vmsd.*line" vmback vm snapshot delete $C one
[ "$(state)" = "$before" ]
# a .vmsd naming a disk file that does not exist
sed 's/^snapshot0.disk0.fileName = .*/snapshot0.disk0.fileName = "gone.vmdk"/' good.vmsd > ds/c/c.vmsd
before=$(state)
expect_fail "gone.vmdk" vmback vm snapshot delete $C one
expect_fail "gone.vmdk" vmback vm snapshot create $C two
[ "$(state)" = "$before" ]
cp good.vmsd ds/c/c.vmsd
# a malformed .vmx line
cp $C good.vmx
echo 'this line has no value' >> $C
before=$(state)
expect_fail "c.vmx.*line" vmback vm snapshot create $C two
[ "$(state)" = "$before" ]
cp good.vmx $C
# a broken chain: the delta's parent went missing
mv ds/c/c.vmdk ds/c/c.vmdk.away
before=$(state)
expect_fail "c.vmdk" vmback vm snapshot create $C two
expect_fail "c.vmdk" vmback vm snapshot delete $C one
[ "$(state)" = "$before" ]
mv ds/c/c.vmdk.away ds/c/c.vmdk
expect_fail "no snapshot 'nope'" vmback vm snapshot delete $C nope
expect_fail "needs a name|expected VMX and NAME" vmback vm snapshot create $C
# two snapshot managers at once: the second is refused
exec 9> ds/c/c.vmback/lock
flock 9
expect_fail "in use by another vmback process" vmback vm snapshot create $C two
exec 9>&-
vmback vm snapshot delete $C one

# --- quiescing --------------------------------------------------------------
vmback vm create ds/q/q.vmx --disk 2M
Q=ds/q/q.vmx
H=ds/q/q.vmback/freeze.d
mkdir -p $H
chmod 700 ds/q/q.vmback $H
cat > $H/10-fs <<EOF
#!/bin/sh
echo "10-fs \$1 \$VMBACK_SNAPSHOT" >> $T/hooks.log
EOF
cat > $H/20-app-db <<EOF
#!/bin/sh
echo "20-app-db \$1" >> $T/hooks.log
EOF
chmod 700 $H/10-fs $H/20-app-db
vmback --json vm snapshot create $Q quiet --quiesce > qs.json
grep -q '"consistency": "application"' qs.json
printf '10-fs freeze quiet\n20-app-db freeze\n20-app-db thaw\n10-fs thaw quiet\n' > want.log
cmp want.log hooks.log
grep -qx 'snapshot0.quiesced = "TRUE"' ds/q/q.vmsd
grep -qx 'snapshot0.vmbackConsistency = "application"' ds/q/q.vmsd
# without app- hooks: filesystem level
chmod -x $H/20-app-db
vmback -q vm snapshot create $Q fsonly --quiesce
grep -qx 'snapshot1.vmbackConsistency = "filesystem"' ds/q/q.vmsd
# a hook that hangs is cut at the limit; thaw still runs; crash level with a warning
cat > $H/30-hang <<EOF
#!/bin/sh
[ "\$1" = freeze ] && exec sleep 60
echo "30-hang \$1" >> $T/hooks.log
EOF
chmod 700 $H/30-hang
: > hooks.log
start=$(date +%s)
vmback vm snapshot create $Q hung --quiesce --freeze-timeout 2 2> warn.txt
[ $(( $(date +%s) - start )) -lt 20 ]
grep -q "warning" warn.txt
grep -qx "30-hang thaw" hooks.log
grep -qx "10-fs thaw hung" hooks.log
grep -qx 'snapshot2.quiesced = "FALSE"' ds/q/q.vmsd
grep -qx 'snapshot2.vmbackConsistency = "crash"' ds/q/q.vmsd
# --quiesce=required: a failed quiesce is an error and takes no snapshot
n=$(ls ds/q | wc -l)
cp ds/q/q.vmsd q.vmsd.before
expect_fail "hook|freeze|quiesc" vmback vm snapshot create $Q must --quiesce=required --freeze-timeout 2
cmp q.vmsd.before ds/q/q.vmsd
[ "$(ls ds/q | wc -l)" = "$n" ]
vmback -q vm snapshot delete-all $Q
echo "all vm snapshot checks passed"
