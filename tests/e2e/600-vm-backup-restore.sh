#!/bin/bash
# Whole-VM backup and restore (docs/CLI.md) on a VM with an
# ESXi-style (vmfs) and a hosted (monolithicSparse) disk with change
# tracking:
#  - a full backup, more writes, an incremental that reads only the
#    changed chunks (list --json: chunks-read, change-id-used);
#  - no snapshot left after each backup, no consolidation needed;
#  - each point restored --to a new VM directory: every disk equals what
#    the VM had at backup time (vmback disk read, qemu-img compare);
#  - restore --in-place to the first point (change tracking finds what to
#    write), then one disk (--disk) to the second point, then after a
#    revert (a new tracking epoch) by comparing chunk hashes;
#  - the configuration travels with the point (also encrypted);
#  - refusals: an existing non-empty directory, a powered-on VM, a disk
#    point restored --to a directory.
. "$(dirname "$0")/functions.sh"
requires python3 qemu-img
cd "$T"
export VMBACK_REPO=$(repo_url repo)
CS=$((256 << 10))
vmback -q repo init --chunk-size 256K "$VMBACK_REPO"
V=ds/v/v.vmx
vmback -q vm create $V --disk 64M:vmfs --disk 32M --ctk
echo 'annotation = "a note the restore must keep"' >> $V

# the file a device of a .vmx reads now (its fileName, relative to the .vmx)
cur () { echo "$(dirname "$1")/$(sed -n "s/^$2\.fileName = \"\(.*\)\"$/\1/p" "$1")"; }
vsha () { vmback disk read "$1" | sha256sum | cut -d' ' -f1; }
pt () { vmback --json list | python3 -c "import json,sys; print(json.load(sys.stdin)['points'][$1]['id'])"; }
no_snapshots () {
  [ "$(vmback vm snapshot list "$1")" = "no snapshots" ]
  vmback --json vm info "$1" > info.json
  python3 -c 'import json; j=json.load(open("info.json")); assert not j["consolidation-needed"], j'
}
# save the bytes of both disks of a VM as NAME-0.raw, NAME-1.raw
save_raw () {
  vmback disk read "$(cur $V scsi0:0)" > "$1-0.raw"
  vmback disk read "$(cur $V scsi0:1)" > "$1-1.raw"
}
mkpattern p1 $((6 << 20)) 1
vmback disk write "$(cur $V scsi0:0)" --offset $((1 << 20)) < p1
vmback disk write "$(cur $V scsi0:1)" --offset $((5 << 20)) < p1
head -c 3000 /dev/urandom | vmback disk write "$(cur $V scsi0:1)" --offset $(( (32 << 20) - 3000 ))
save_raw e1

# ---- full, then incremental
vmback --json backup $V > b1.json
no_snapshots $V
python3 - <<'PY'
import json; j = json.load(open("b1.json"))
assert j["kind"] == "vm" and j["transport"] == "san" and j["consistency"] == "crash", j
assert [d["key"] for d in j["disks"]] == ["scsi0:0", "scsi0:1"], j
for d in j["disks"]:
    assert d["change-id-used"] == "*" and d["change-id"] != "", d
PY
P1=$(pt 0)
grep -q 'scsi0:0.fileName = "v.vmdk"' $V
# changes: 3 chunks of disk 0 (one write across a boundary), 1 of disk 1
head -c 100 /dev/urandom | vmback disk write "$(cur $V scsi0:0)" --offset $((40 << 20))
head -c 200 /dev/urandom | vmback disk write "$(cur $V scsi0:0)" --offset $(( (2 << 20) + CS - 100 ))
# (the complement of the byte there, so that it always changes)
b=$(vmback disk read "$(cur $V scsi0:1)" --length 1 | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $(( 255 - b )))" | vmback disk write "$(cur $V scsi0:1)" --offset 0
save_raw e2
vmback --json backup $V > b2.json
no_snapshots $V
P2=$(pt 1)
vmback --json list > list.json
python3 - "$P1" "$P2" <<'PY'
import json, sys; j = json.load(open("list.json"))["points"]
assert [p["id"] for p in j] == sys.argv[1:], j
p = j[1]
assert p["kind"] == "vm" and p["parent"] == sys.argv[1], p
d0, d1 = p["disks"]
for d, n in ((d0, 3), (d1, 1)):
    assert d["change-id-used"] not in ("", "*"), d
    assert d["chunks-read"] == n, d
    assert d["change-id-used"] == j[0]["disks"][p["disks"].index(d)]["change-id"], d
PY
vmback list | grep -E "^$P2 .* vm +incremental +2 "

# ---- restore each point to a new VM directory
restored_ok () {   # DIR POINTNAME(e1|e2)
  no_snapshots "$1/v.vmx"
  for k in 0 1; do
    f=$(cur "$1/v.vmx" scsi0:$k)
    [ "$(vsha "$f")" = "$(sha256sum < "$2-$k.raw" | cut -d' ' -f1)" ]
    qemu-img compare -q -f vmdk -F raw "$f" "$2-$k.raw"
    qemu-img check -q -f vmdk "$f"
  done
  grep -qx 'annotation = "a note the restore must keep"' "$1/v.vmx"
}
vmback restore "$P1" --to r1
restored_ok r1 e1
[ "$(ls r1 | sort | tr '\n' ' ')" = "v-ctk.vmdk v.vmdk v.vmsd v.vmx v_1-ctk.vmdk v_1.vmdk " ]
mkdir r2
vmback -q restore "$P2" --to r2
restored_ok r2 e2
# the restored VM is a VM vmback can snapshot and back up
vmback -q vm snapshot create r2/v.vmx s && vmback -q vm snapshot delete r2/v.vmx s
# one disk, another type: the other disk is not present
vmback -q restore "$P2" --to r3 --disk scsi0:1 --type vmfs
grep -qx 'scsi0:0.present = "FALSE"' r3/v.vmx
grep -q '^createType="vmfs"' "$(cur r3/v.vmx scsi0:1)"
cmp <(vmback disk read "$(cur r3/v.vmx scsi0:1)") e2-1.raw
[ "$(vmback --json vm info r3/v.vmx | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["disks"]))')" = 1 ]
expect_fail "not empty" vmback restore "$P1" --to r1
expect_fail "no disk 'scsi9:9'" vmback restore "$P1" --to r4 --disk scsi9:9
[ ! -e r4 ]

# ---- in place: back to the first point
head -c 5000 /dev/urandom | vmback disk write "$(cur $V scsi0:0)" --offset $((50 << 20))
vmback disk write "$(cur $V scsi0:1)" --zero --offset $((5 << 20)) --length $CS
sed -i 's/^annotation = .*/annotation = "changed"/' $V
vmback --json restore "$P1" --in-place $V > ip1.json
cat ip1.json
python3 - <<'PY'
import json; j = json.load(open("ip1.json"))
assert j["in-place"] and j["config-restored"], j
d0, d1 = j["disks"]
assert d0["method"] == d1["method"] == "change-tracking", j
assert d0["chunks-written"] == 4 and d1["chunks-written"] == 2, j
PY
no_snapshots $V
for k in 0 1; do cmp <(vmback disk read "$(cur $V scsi0:$k)") e1-$k.raw; done
qemu-img compare -q -f vmdk -F raw "$(cur $V scsi0:0)" e1-0.raw
grep -qx 'annotation = "a note the restore must keep"' $V
grep -q 'scsi0:0.fileName = "v.vmdk"' $V
# one disk in place to the second point; the other stays
vmback -q restore "$P2" --in-place $V --disk scsi0:1
cmp <(vmback disk read "$(cur $V scsi0:1)") e2-1.raw
cmp <(vmback disk read "$(cur $V scsi0:0)") e1-0.raw
no_snapshots $V
# the next backup is incremental and right
vmback backup $V > b3.txt
cat b3.txt
# the summary: one line per disk without a time of its own, then the total
[ "$(grep -c '^point .*: scsi0:[01] incremental, read [0-9]* bytes; chunks: ' b3.txt)" = 2 ]
grep -q '^point .*: 2 disks, read [0-9]* bytes in [0-9.]* s ([0-9.]* MB/s), [0-9]* bytes stored$' b3.txt
if grep -q 'scsi0.* in [0-9.]* s' b3.txt; then echo "a disk line has the point's time" >&2; exit 1; fi
P3=$(sed -n '1s/^point \([^:]*\):.*/\1/p' b3.txt)
vmback --json list | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)["points"] if p["id"] == sys.argv[1]][0]
assert all(d["change-id-used"] != "*" for d in p["disks"]), p' "$P3"
rm -rf r5; vmback -q restore "$(pt 2)" --to r5
cmp <(vmback disk read "$(cur r5/v.vmx scsi0:0)") e1-0.raw
cmp <(vmback disk read "$(cur r5/v.vmx scsi0:1)") e2-1.raw

# a revert starts a new change tracking epoch: in place then compares hashes
vmback -q vm snapshot create $V s
head -c 100 /dev/urandom | vmback disk write "$(cur $V scsi0:0)" --offset $((30 << 20))
vmback -q vm snapshot revert $V s
vmback -q vm snapshot delete $V s
head -c 100 /dev/urandom | vmback disk write "$(cur $V scsi0:1)" --offset $((20 << 20))
env -u VMBACK_QUIET_FALLBACK "$VMBACK" --json restore "$P1" --in-place $V > ip2.json 2> ip2.err
cat ip2.json ip2.err
grep -q "disk scsi0:0: .*comparing chunk hashes instead" ip2.err
python3 - <<'PY'
import json; j = json.load(open("ip2.json"))
d0, d1 = j["disks"]
assert d0["method"] == d1["method"] == "hash-compare", j
assert d0["chunks-written"] == 0 and d1["chunks-written"] == 2, j
PY
for k in 0 1; do cmp <(vmback disk read "$(cur $V scsi0:$k)") e1-$k.raw; done
no_snapshots $V

# ---- refusals
mkdir ds/v/v.vmx.lck
expect_fail "powered on" vmback restore "$P1" --in-place $V
rmdir ds/v/v.vmx.lck
vmback -q backup --name plain e1-0.raw
expect_fail "not a VM's" vmback restore plain@latest --to r6
expect_fail "needs a VM" vmback backup e1-0.raw --quiesce
# a VM point still restores one disk to a file
vmback -q restore "$P1" --disk scsi0:1 one.raw
cmp one.raw e1-1.raw

# ---- an encrypted repository: the configuration is encrypted too
export VMBACK_PASSPHRASE=secret
vmback -q repo init --encrypt --chunk-size 256K erepo
vmback -q backup --repo erepo $V
refute grep -rq "a note the restore must keep" erepo
vmback -q verify --repo erepo
vmback -q restore --repo erepo v@latest --to r7
grep -qx 'annotation = "a note the restore must keep"' r7/v.vmx
cmp <(vmback disk read "$(cur r7/v.vmx scsi0:1)") e1-1.raw
# a damaged configuration object is found by verify and refused by restore
cfg=$(ls erepo/snapshots/v/*/config)
printf 'X' | dd of="$cfg" bs=1 seek=40 conv=notrunc status=none
expect_fail "point v/" vmback verify --repo erepo
expect_fail "configuration .* of point v/.*damaged" vmback restore --repo erepo v@latest --to r8
[ ! -e r8 ]
echo OK
