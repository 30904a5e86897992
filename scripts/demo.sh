#!/bin/bash
# vmback demo: a small VM disk with change tracking, a full backup, two
# incremental backups that read only the changed blocks, a restore of each
# point, and a byte-for-byte check against the disk as it was.
#
# The backups here are vdisk chains (a streamOptimized full + redo logs
# holding only the changed areas), built from vmback's own primitives.
set -euo pipefail
BUILD=${1:-build}
V="$(cd "$BUILD" && pwd)/vmback"
W=${DEMO_DIR:-$(mktemp -d /tmp/vmback-demo.XXXXXX)}
mkdir -p "$W"
cd "$W"
rm -rf vm backup restore
mkdir -p vm backup restore
say () { printf '\n== %s\n' "$*"; }

say "1. a VM disk: 256 MiB monolithicSparse with change tracking"
"$V" disk create --type monolithicSparse --size 256M --ctk vm/demo.vmdk
python3 - <<'PY' | "$V" disk write vm/demo.vmdk --offset 0
import random, sys
r = random.Random(1)
sys.stdout.buffer.write(r.randbytes(40 << 20))   # 40 MiB of "OS"
PY
"$V" disk info vm/demo.vmdk

say "2. full backup: every allocated area, into a compressed streamOptimized file"
id0=$("$V" cbt changeid vm/demo.vmdk)
"$V" disk convert --type streamOptimized vm/demo.vmdk backup/full.vmdk
"$V" disk read vm/demo.vmdk | sha256sum | cut -d' ' -f1 > backup/full.sha256
echo "changeId at full backup: $id0"
ls -l backup/full.vmdk

incremental () {   # $1 = name, $2 = parent backup, $3 = changeId
  "$V" disk child "backup/$2" "backup/$1.vmdk"
  "$V" cbt query vm/demo.vmdk --since "$3" > "backup/$1.areas"
  local bytes=0
  while read -r off len; do
    "$V" disk read vm/demo.vmdk --offset "$off" --length "$len" \
      | "$V" disk write "backup/$1.vmdk" --offset "$off"
    bytes=$((bytes + len))
  done < "backup/$1.areas"
  echo "$1: $(wc -l < "backup/$1.areas") changed areas, $bytes bytes read (of $((256 << 20)))"
  "$V" disk read vm/demo.vmdk | sha256sum | cut -d' ' -f1 > "backup/$1.sha256"
}

say "3. the guest writes; incremental backup 1 reads only what changed"
python3 - <<'PY' > /tmp/vmback-demo-w1
import random, sys
sys.stdout.buffer.write(random.Random(2).randbytes(3 << 20))
PY
"$V" disk write vm/demo.vmdk --offset $((100 << 20)) < /tmp/vmback-demo-w1
echo "patch" | "$V" disk write vm/demo.vmdk --offset 12345
incremental incr1 full.vmdk "$id0"
id1=$("$V" cbt changeid vm/demo.vmdk)

say "4. more writes (one range zeroed); incremental backup 2"
"$V" disk write vm/demo.vmdk --zero --offset $((4 << 20)) --length $((1 << 20))
echo "more" | "$V" disk write vm/demo.vmdk --offset $((200 << 20))
incremental incr2 incr1.vmdk "$id1"

say "5. restore every point and check the bytes"
for p in full incr1 incr2; do
  "$V" disk convert "backup/$p.vmdk" "restore/$p.raw"
  got=$(sha256sum < "restore/$p.raw" | cut -d' ' -f1)
  want=$(cat "backup/$p.sha256")
  if [ "$got" != "$want" ]; then echo "MISMATCH restoring $p"; exit 1; fi
  echo "$p: restored $(stat -c %s "restore/$p.raw") bytes, sha256 matches the disk at backup time"
done
qemu-img compare -f raw -F vmdk restore/incr2.raw vm/demo.vmdk
echo
echo "demo OK (files in $W)"
