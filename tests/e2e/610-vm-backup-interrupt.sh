#!/bin/bash
# An interrupted VM backup leaves no snapshot and no point:
#  - SIGINT while chunks are being stored (a slow repository: zstd -19,
#    one thread): exit 130, the backup snapshot deleted, no consolidation
#    needed, no point, no object of the point;
#  - SIGINT and SIGTERM while a freeze hook runs (--quiesce);
#  - an in-place restore killed during its writes: the next run reverts
#    its snapshot first, so the disks are as before that restore;
#  - SIGKILL leaves the snapshot: the next backup deletes it, says so, and
#    succeeds; so does a leftover named vmback-backup-... made by hand,
#    while a user's snapshot stays;
#  - killed while its snapshot creates the disks' children: the next
#    backup consolidates what was left, and succeeds.
. "$(dirname "$0")/functions.sh"
requires python3
cd "$T"
export VMBACK_REPO=$T/repo
vmback -q repo init --chunk-size 256K --compression 19 repo
V=ds/v/v.vmx
vmback -q vm create $V --disk 32M --disk 8M --ctk
# 8 MiB of compressible text: slow to compress at level 19
python3 - <<'PY'
import random
r = random.Random(7)
words = [''.join(r.choice('abcdefghijklmnop') for _ in range(r.randint(2, 9))) for _ in range(4000)]
out, n = [], 0
while n < 8 << 20:
    w = ' '.join(r.choice(words) for _ in range(2000)) + '\n'; out.append(w); n += len(w)
open('text', 'w').write(''.join(out)[:8 << 20])
PY
vmback disk write ds/v/v.vmdk --offset $((4 << 20)) < text
mkpattern p 100000 3
vmback disk write ds/v/v_1.vmdk --offset 4096 < p

ours () { vmback vm snapshot list $V | grep -c "vmback-" || true; }
no_point () {
  [ "$(vmback --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))')" = 0 ]
  [ -z "$(find repo/snapshots -type f 2>/dev/null)" ]
}
clean_vm () {
  [ "$(ours)" = 0 ]
  vmback --json vm info $V > info.json
  python3 -c 'import json; j=json.load(open("info.json")); assert not j["consolidation-needed"], j'
  [ "$(vmback cbt changeid ds/v/v.vmdk)" != "" ]
}
nchunks () { find repo/chunks -type f 2>/dev/null | wc -l; }
# wait until CONDITION (a shell expression) holds, at most 60 s
wait_for () {
  for _ in $(seq 600); do eval "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for: $1"; return 1
}

# ---- SIGINT between chunks
"$VMBACK" backup --threads 1 $V > o1 2> e1 &
pid=$!
wait_for '[ "$(nchunks)" -ge 2 ]'
[ "$(ours)" = 1 ]
kill -INT $pid
rc=0; wait $pid || rc=$?
cat e1
[ $rc -eq 130 ]
grep -q "interrupted" e1
clean_vm
no_point

# ---- SIGKILL: the snapshot stays behind
"$VMBACK" backup --threads 1 $V > o2 2> e2 &
pid=$!
wait_for '[ "$(ours)" = 1 ]'
kill -KILL $pid
wait $pid || true
[ "$(ours)" = 1 ]
[ "$(vmback --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))')" = 0 ]
# a leftover made by hand and a user's snapshot
vmback -q vm snapshot create $V vmback-backup-20200101T000000Z --description "vmback backup in progress"
vmback -q vm snapshot create $V keep
[ "$(ours)" = 2 ]

# ---- the next backup deletes both leftovers, keeps the user's, succeeds
vmback --json backup --threads 2 $V > b.json 2> e3
cat e3
[ "$(grep -c "deleting snapshot 'vmback-backup-" e3)" = 2 ]
[ "$(ours)" = 0 ]
vmback vm snapshot list $V | grep -q '"keep"'
vmback -q vm snapshot delete $V keep
clean_vm
vmback -q restore v@latest --to r
cmp <(vmback disk read r/v.vmdk) <(vmback disk read ds/v/v.vmdk)
cmp <(vmback disk read r/v_1.vmdk) <(vmback disk read ds/v/v_1.vmdk)
P=$(vmback --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["points"][-1]["id"])')
# gc removes what the killed run stored (its configuration), nothing else
unfinished () { for d in "$VMBACK_REPO"/snapshots/*/*/; do [ -f "$d/manifest" ] || echo "$d"; done; }
U=$(unfinished)
[ -n "$U" ]; [ -n "$(find $U -type f)" ]
vmback --json gc > gc.json
python3 -c 'import json; j=json.load(open("gc.json")); assert j["orphans"] >= 1 and j["deleted"] == 0, j'
[ -z "$(unfinished)" ]; [ -z "$(find $U -type f 2>/dev/null)" ]
vmback -q verify

# ---- a signal while the freeze hook runs: no snapshot, no new point
mkdir -p ds/v/v.vmback/freeze.d
cat > ds/v/v.vmback/freeze.d/10-slow <<EOF
#!/bin/sh
[ "\$1" = freeze ] && { touch $T/frozen; sleep 30; }
exit 0
EOF
chmod 700 ds/v/v.vmback/freeze.d/10-slow
for sig in INT TERM; do
  rm -f frozen
  "$VMBACK" backup --quiesce $V > o4 2> e4 &
  pid=$!
  wait_for '[ -e frozen ]'
  kill -$sig $pid
  rc=0; wait $pid || rc=$?
  cat e4
  [ $rc -ne 0 ]; [ $rc -lt 200 ]
  clean_vm
  [ "$(vmback --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["points"][-1]["id"])')" = "$P" ]
done
# quiescing that works records its level
rm ds/v/v.vmback/freeze.d/10-slow
printf '#!/bin/sh\nexit 0\n' > ds/v/v.vmback/freeze.d/20-fsfreeze
chmod 700 ds/v/v.vmback/freeze.d/20-fsfreeze
vmback --json backup --quiesce=required $V > b5.json
python3 -c 'import json; j=json.load(open("b5.json")); assert j["consistency"] == "filesystem", j'
clean_vm

# ---- an in-place restore killed half way through its writes: the next run
# reverts the restore's snapshot (discarding the partial writes) before
# deleting it, so the disks are as they were before that restore
P=$(vmback --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["points"][-1]["id"])')
mkpattern q $((2 << 20)) 9
vmback disk write ds/v/v.vmdk --offset $((5 << 20)) < q
before=$(vmback disk read ds/v/v.vmdk | sha256sum)
# (the crash point fires before each chunk written; 2 MiB = 8 chunks)
rc=0; VMBACK_CRASH_AT=restore-chunk:4 "$VMBACK" -q restore "$P" --in-place $V || rc=$?
[ $rc = 137 ]
[ "$(ours)" = 1 ]                       # the restore's snapshot is left
vmback -q backup $V 2> e6
cat e6
grep -q "reverting to snapshot 'vmback-restore-" e6
[ "$(ours)" = 0 ]
clean_vm
[ "$(vmback disk read ds/v/v.vmdk | sha256sum)" = "$before" ]
vmback -q restore v@latest --disk scsi0:0 r6.raw
[ "$(sha256sum < r6.raw)" = "$before" ]

# ---- a backup killed while its snapshot makes the children (after the
# first disk's, in the second disk's first write: the 6th disk write, as
# each hosted sparse child takes 4 and the tracking file 1): the first child is a
# delta nothing uses, the second never appears under its name (built under
# a temporary one); the next backup consolidates, says so, and succeeds
rc=0; VMBACK_FAIL_AT=disk-write:6=KILL "$VMBACK" -q backup $V 2> /dev/null || rc=$?
[ $rc = 137 ]
[ "$(ours)" = 0 ]
vmback --json vm info $V > info7.json
python3 -c 'import json; j=json.load(open("info7.json")); assert j["consolidation-needed"] and j["unreferenced-files"] == ["v-000001-ctk.vmdk", "v-000001.vmdk"], j'
[ -z "$(find ds/v -name 'v_1-000001*.vmdk')" ]
vmback -q backup $V 2> e7
cat e7
grep -q "consolidated the VM: 2 delta files left by an interrupted run" e7
clean_vm
echo OK
