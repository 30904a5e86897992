#!/bin/bash
# vm create / vm info: a VM directory as on a datastore (docs/vmx-vmsd.md):
# NAME.vmx + NAME.vmsd + NAME.nvram + per disk descriptor, extent, -ctk.
# Disks are read back by qemu-img (which we did not write), the .vmx by
# grep, and vm info --json is checked field by field.  Opening a VM for a
# change removes the temporary files of writes killed before their rename.
. "$(dirname "$0")/functions.sh"
requires qemu-img python3
cd "$T"

# JSON field of a file: jget FILE EXPR (python expression on j)
jget () { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
# PATTERN must not occur in FILE ("! grep" would not trip set -e)
nogrep () { if grep -q -- "$1" "$2"; then echo "unexpected '$1' in $2"; return 1; fi; }
# exact line KEY = "VALUE" in the .vmx
vmxhas () { grep -qxF -- "$2 = \"$3\"" "$1" || { echo "no '$2 = \"$3\"' in $1"; return 1; }; }

# --- create: one hosted sparse disk, one ESXi (vmfs) disk, CBT on -------
vmback vm create ds/web01/web01.vmx --disk 64M --disk 32M:vmfs --ctk \
  --memory 2048 --cpus 2 --guest-os ubuntu-64
D=ds/web01
for f in web01.vmx web01.vmsd web01.nvram web01.vmdk web01-ctk.vmdk \
         web01_1.vmdk web01_1-flat.vmdk web01_1-ctk.vmdk; do
  [ -f "$D/$f" ] || { echo "missing $D/$f"; exit 1; }
done
# nothing else (no temp files left behind)
[ "$(ls -A $D | wc -l)" = 8 ]

# qemu-img reads each disk with the intended format and size
qemu-img info --output=json $D/web01.vmdk > q0.json
[ "$(jget q0.json 'j["format"]')" = vmdk ]
[ "$(jget q0.json 'j["virtual-size"]')" = 67108864 ]
[ "$(jget q0.json 'j["format-specific"]["data"]["create-type"]')" = monolithicSparse ]
qemu-img check -q -f vmdk $D/web01.vmdk
qemu-img info --output=json $D/web01_1.vmdk > q1.json
[ "$(jget q1.json 'j["virtual-size"]')" = 33554432 ]
[ "$(jget q1.json 'j["format-specific"]["data"]["create-type"]')" = vmfs ]
# the ESXi descriptor names its flat extent and tracker
grep -q '^RW 65536 VMFS "web01_1-flat.vmdk"' $D/web01_1.vmdk
grep -q '^changeTrackPath="web01_1-ctk.vmdk"' $D/web01_1.vmdk
# new disks read as zeros
truncate -s 32M zero.raw
qemu-img compare -f vmdk -F raw $D/web01_1.vmdk zero.raw

# the .vmx has the keys VMware writes
X=$D/web01.vmx
vmxhas $X config.version 8
grep -qE '^virtualHW.version = "[0-9]+"$' $X
vmxhas $X displayName web01
vmxhas $X guestOS ubuntu-64
vmxhas $X memSize 2048
vmxhas $X numvcpus 2
vmxhas $X nvram web01.nvram
vmxhas $X ctkEnabled TRUE
vmxhas $X scsi0.present TRUE
vmxhas $X scsi0.virtualDev lsilogic
for u in 0 1; do
  vmxhas $X scsi0:$u.present TRUE
  vmxhas $X scsi0:$u.deviceType scsi-hardDisk
  vmxhas $X scsi0:$u.ctkEnabled TRUE
done
vmxhas $X scsi0:0.fileName web01.vmdk
vmxhas $X scsi0:1.fileName web01_1.vmdk
grep -qE '^uuid.bios = "56 4d( [0-9a-f]{2}){6}-[0-9a-f]{2}( [0-9a-f]{2}){7}"$' $X
# the .vmsd is a valid empty snapshot dictionary
grep -qxF 'snapshot.numSnapshots = "0"' $D/web01.vmsd

# --- vm info --json -----------------------------------------------------
vmback --json vm info $X > i.json
[ "$(jget i.json 'j["display-name"]')" = web01 ]
[ "$(jget i.json 'j["guest-os"]')" = ubuntu-64 ]
[ "$(jget i.json 'j["memory-mb"]')" = 2048 ]
[ "$(jget i.json 'j["cpus"]')" = 2 ]
[ "$(jget i.json 'j["uuid-bios"]')" = "$(sed -n 's/^uuid.bios = "\(.*\)"$/\1/p' $X)" ]
[ "$(jget i.json 'j["change-tracking"]')" = True ]
[ "$(jget i.json 'len(j["disks"])')" = 2 ]
[ "$(jget i.json 'j["disks"][0]["device"]')" = scsi0:0 ]
[ "$(jget i.json 'j["disks"][0]["file"]')" = web01.vmdk ]
[ "$(jget i.json 'j["disks"][0]["type"]')" = monolithicSparse ]
[ "$(jget i.json 'j["disks"][0]["virtual-size"]')" = 67108864 ]
[ "$(jget i.json 'j["disks"][0]["chain-length"]')" = 1 ]
[ "$(jget i.json 'j["disks"][0]["change-tracking"]["state"]')" = valid ]
[ "$(jget i.json 'j["disks"][1]["device"]')" = scsi0:1 ]
[ "$(jget i.json 'j["disks"][1]["type"]')" = vmfs ]
[ "$(jget i.json 'j["disks"][1]["virtual-size"]')" = 33554432 ]
# the changeId is the one the disk library reports
vmback --json disk info $D/web01_1.vmdk > d1.json
[ "$(jget i.json 'j["disks"][1]["change-tracking"]["change-id"]')" = \
  "$(jget d1.json 'j["change-tracking"]["change-id"]')" ]
[ "$(jget i.json 'len(j["snapshots"])')" = 0 ]
[ "$(jget i.json 'j["consolidation-needed"]')" = False ]
# text form
vmback vm info $X > i.txt 2> i.err
grep -q '^displayName: *web01$' i.txt
grep -q '^CBT: *enabled$' i.txt
grep -q '^snapshots: *none$' i.txt
nogrep consolidation i.err

# --- defaults: hosted sparse disk, no CBT, other-64, 1 vCPU ---------------
vmback vm create plain/p.vmx --disk 1M
vmxhas plain/p.vmx guestOS other-64
vmxhas plain/p.vmx numvcpus 1
nogrep ctkEnabled plain/p.vmx
[ ! -e plain/p-ctk.vmdk ]
vmback --json vm info plain/p.vmx > p.json
[ "$(jget p.json 'j["change-tracking"]')" = False ]
[ "$(jget p.json 'j["disks"][0]["change-tracking"]["state"]')" = off ]
# --esxi makes vmfs disks by default
vmback vm create esx/e.vmx --esxi --disk 1M
[ -f esx/e-flat.vmdk ]
qemu-img info --output=json esx/e.vmdk > qe.json
[ "$(jget qe.json 'j["format-specific"]["data"]["create-type"]')" = vmfs ]

# --- refusals change nothing ---------------------------------------------
sum_before=$(cd $D && sha256sum * | sha256sum)
expect_fail "web01.vmx': file exists" vmback vm create $X --disk 1M
expect_fail "bad disk type" vmback vm create other/o.vmx --disk 1M:streamOptimized
expect_fail "bad disk size" vmback vm create other/o.vmx --disk 0
expect_fail "does not end in .vmx" vmback vm create other/o.txt
[ ! -e other ]
[ "$(cd $D && sha256sum * | sha256sum)" = "$sum_before" ]
# an existing extent name is refused and left alone (not removed)
mkdir ext; echo keep > ext/x_1-flat.vmdk
expect_fail "x_1-flat.vmdk': file exists" vmback vm create ext/x.vmx --disk 1M --disk 1M:vmfs
[ "$(ls ext)" = x_1-flat.vmdk ]; [ "$(cat ext/x_1-flat.vmdk)" = keep ]
# a failure after some files were made removes them all, directories too
# (a 20 TiB flat extent is too large for ext4; other file systems may
# accept it, then there is nothing to check)
if vmback vm create big/sub/b.vmx --disk 1M --disk 20T:vmfs 2> big.err; then
  echo "note: 20T flat file accepted here; cleanup path not exercised"
  rm -rf big
else
  cat big.err
  [ ! -e big ]
fi

# --- consolidation: a delta no chain and no snapshot uses -----------------
vmback disk child $D/web01.vmdk $D/web01-000001.vmdk
vmback vm info $X > c.txt 2> c.err
grep -q 'consolidation needed' c.err
grep -q 'web01-000001.vmdk' c.err
vmback --json vm info $X > c.json 2>/dev/null
[ "$(jget c.json 'j["consolidation-needed"]')" = True ]
[ "$(jget c.json 'j["unreferenced-files"]')" = "['web01-000001.vmdk']" ]
# once the disk points at the delta it is part of a chain: no warning,
# chain of 2 (the base is referenced as the delta's parent)
sed -i 's/^scsi0:0.fileName = "web01.vmdk"$/scsi0:0.fileName = "web01-000001.vmdk"/' $X
vmback --json vm info $X > c2.json 2> c2.err
nogrep consolidation c2.err
[ "$(jget c2.json 'j["disks"][0]["chain-length"]')" = 2 ]
[ "$(jget c2.json 'j["consolidation-needed"]')" = False ]
# a delta only a snapshot references (a branch) is not stray either
vmback disk child $D/web01.vmdk $D/web01-000002.vmdk
vmback vm info $X 2> c3.err >/dev/null
grep -q 'web01-000002.vmdk' c3.err
cat >> $D/web01.vmsd <<'EOF'
snapshot0.uid = "1"
snapshot0.displayName = "branch"
snapshot0.numDisks = "1"
snapshot0.disk0.fileName = "web01-000002.vmdk"
snapshot0.disk0.node = "scsi0:0"
EOF
sed -i 's/^snapshot.numSnapshots = "0"$/snapshot.numSnapshots = "1"/; s/^snapshot.lastUID = "0"$/snapshot.lastUID = "1"/' $D/web01.vmsd
vmback --json vm info $X > c3.json 2> c3.err
nogrep consolidation c3.err
[ "$(jget c3.json 'len(j["snapshots"])')" = 1 ]
[ "$(jget c3.json 'j["snapshots"][0]["name"]')" = branch ]
[ "$(jget c3.json 'j["snapshots"][0]["current"]')" = False ]
vmback vm info $X | grep -q 'uid 1 "branch" parent 0'

# --- a disk that cannot be opened is listed with its error; exit 1 -------
rm $D/web01_1-flat.vmdk
rc=0
vmback --json vm info $X > m.json 2> m.err || rc=$?
cat m.err
[ $rc = 1 ]
[ "$(jget m.json 'len(j["disks"])')" = 2 ]
[ "$(jget m.json 'j["disks"][0]["chain-length"]')" = 2 ]   # the good disk is still shown
jget m.json 'j["disks"][1]["error"]' | grep -q 'web01_1-flat.vmdk'
grep -q 'cannot be opened' m.err
rc=0
vmback vm info $X > m.txt 2>/dev/null || rc=$?
[ $rc = 1 ]
grep -q 'error: .*web01_1-flat.vmdk' m.txt
# a broken .vmx is a one-line error
printf 'displayName = "x"\nfoo\n' > bad.vmx
expect_fail "cannot parse 'bad.vmx' line 2" vmback vm info bad.vmx
expect_fail "cannot" vmback vm info nothere.vmx

# temporary files of atomic writes whose process was killed (FILE.tmp.PID,
# PID gone) are removed when the VM is next opened (here by consolidate;
# vm info only reads); others stay: a live
# pid's, a name that is no VM file's
vmback vm create tmpvm/t.vmx --disk 8M
sh -c 'exit 0' & dead=$!; wait $dead
for f in t.vmx t.vmsd t_0.vmdk t-000001-ctk.vmdk; do echo x > "tmpvm/$f.tmp.$dead"; done
mkdir -p tmpvm/t.vmback; echo x > tmpvm/t.vmback/journal.tmp.$dead
echo x > tmpvm/t.vmx.tmp.$$            # this shell: alive
echo x > tmpvm/notes.txt.tmp.$dead     # not a VM file
vmback vm snapshot consolidate tmpvm/t.vmx > /dev/null
[ "$(cd tmpvm && find . -name '*.tmp.*' | sort | tr '\n' ' ')" = "./notes.txt.tmp.$dead ./t.vmx.tmp.$$ " ]
echo OK
