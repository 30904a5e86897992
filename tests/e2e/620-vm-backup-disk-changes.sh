#!/bin/bash
# VM backups across changes of the VM's disks, and failures:
#  - a disk added between backups is read in full (and said so), the
#    others incrementally; a grown disk is read in full; a removed disk
#    is simply no longer in the point; every point restores exactly;
#  - in place needs the point's disks: a VM lacking one is refused;
#  - a failure reading the second disk (its extent truncated) leaves no
#    new point, no object of it, no snapshot, and the next backup after a
#    repair works.
. "$(dirname "$0")/functions.sh"
requires python3 qemu-img
cd "$T"
export VMBACK_REPO=$(repo_url repo)
vmback -q repo init --chunk-size 256K "$VMBACK_REPO"
V=ds/v/v.vmx
vmback -q vm create $V --disk 16M:vmfs --disk 8M --ctk
mkpattern p 3000000 5
vmback disk write ds/v/v.vmdk --offset 100000 < p
vmback disk write ds/v/v_1.vmdk --offset 2000000 < p

npoints () { vmback --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))'; }
last () { vmback --json list | python3 -c "import json,sys; p=json.load(sys.stdin)['points'][-1]; print(' '.join('%s=%s' % (d['key'], 'full' if d['change-id-used'] == '*' else 'incr') for d in p['disks']))"; }
clean_vm () {
  [ "$(vmback vm snapshot list $V)" = "no snapshots" ]
  vmback --json vm info $V | python3 -c 'import json,sys; j=json.load(sys.stdin); assert not j["consolidation-needed"], j'
}
# restore the newest point to DIR and compare each of its disks with the VM's
check_latest () {
  vmback -q restore v@latest --to "$1"
  for f in "${@:2}"; do
    cmp <(vmback disk read "$1/$f") <(vmback disk read "ds/v/$f")
    qemu-img compare -q -f vmdk -F vmdk "$1/$f" "ds/v/$f"
  done
}
vmback -q backup $V
[ "$(last)" = "scsi0:0=full scsi0:1=full" ]

# ---- a disk added
vmback -q disk create --type monolithicSparse --size 4M --ctk ds/v/extra.vmdk
vmback disk write ds/v/extra.vmdk --offset 0 < p
cat >> $V <<'EOF'
scsi0:2.present = "TRUE"
scsi0:2.fileName = "extra.vmdk"
scsi0:2.deviceType = "scsi-hardDisk"
EOF
head -c 10 /dev/urandom | vmback disk write ds/v/v.vmdk --offset 0
vmback -q backup $V 2> e1
cat e1
grep -q "disk scsi0:2: not in point v/.*reading it in full" e1
[ "$(last)" = "scsi0:0=incr scsi0:1=incr scsi0:2=full" ]
clean_vm
check_latest r1 v.vmdk v_1.vmdk extra.vmdk

# ---- a disk grown
vmback disk grow ds/v/v_1.vmdk --size 12M
head -c 10 /dev/urandom | vmback disk write ds/v/v_1.vmdk --offset $((11 << 20))
vmback -q backup $V 2> e2
cat e2
grep -q "disk scsi0:1: size changed from 8388608 to 12582912 bytes; reading it in full" e2
[ "$(last)" = "scsi0:0=incr scsi0:1=full scsi0:2=incr" ]
clean_vm
check_latest r2 v.vmdk v_1.vmdk extra.vmdk
P3=$(vmback --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["points"][-1]["id"])')

# ---- a disk removed
sed -i '/^scsi0:2\./d' $V
vmback -q backup $V
[ "$(last)" = "scsi0:0=incr scsi0:1=incr" ]
check_latest r3 v.vmdk v_1.vmdk
[ ! -e r3/extra.vmdk ]
# in place needs every disk of the point
expect_fail "has no disk 'scsi0:2'" vmback restore "$P3" --in-place $V
clean_vm
# ... but one disk of it is fine
vmback -q restore "$P3" --in-place $V --disk scsi0:0
cmp <(vmback disk read ds/v/v.vmdk) <(vmback disk read r2/v.vmdk)

# ---- a failure on the second disk
n=$(npoints)
cp ds/v/v_1.vmdk good.vmdk
sz=$(stat -c %s ds/v/v_1.vmdk)
truncate -s $((sz - (1 << 20))) ds/v/v_1.vmdk
expect_fail "past the end of the file" vmback -q backup --full $V
[ "$(npoints)" = "$n" ]
repo_objects repo | grep '^snapshots/' > objs
[ "$(grep -c '/manifest$' objs)" = "$n" ]
[ -z "$(grep -v -e '/manifest$' -e '\.index$' -e '/config$' objs)" ]
for d in $(sed 's|/[^/]*$||' objs | sort -u); do
  grep -qx "$d/manifest" objs || { echo "objects of a failed point: $d"; exit 1; }
done
clean_vm
# repaired: the next backup works
cp good.vmdk ds/v/v_1.vmdk
vmback -q backup $V
[ "$(npoints)" = $((n + 1)) ]
clean_vm
check_latest r4 v.vmdk v_1.vmdk
echo OK
