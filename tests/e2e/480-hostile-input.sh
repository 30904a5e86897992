#!/bin/bash
# Hostile repository objects and paths.  Each case needs a clear one-line
# error, a non-zero exit, no crash, nothing modified, and bounded memory
# (commands run under `ulimit -v 1 GiB` unless the build is sanitized):
#   - a chunk blob claiming a huge plain size, or holding a zstd frame
#     announcing 1 TiB (CRC fixed: the size checks are what is tested; in
#     an encrypted repository they run before the GCM tag is checked)
#   - an index whose chunk count does not match, that is longer than the
#     disk, or that claims a huge disk (re-MACed with the repository's key
#     by tests/data-gen/repo-forge.py, and bound again in the manifest, so
#     the parser is tested; the same edits without it must fail the MAC)
#   - a manifest with 65 or 100000 disks, or over-long strings (re-MACed;
#     unMACed the HMAC check is what fails)
#   - restore targets that are symlinks, dangling symlinks, a planted
#     extent symlink, or paths through '..'
#   - repository files 0600 and directories 0700 even with umask 000
#   - passphrases never in any output, the repository or argv
#   - VMDK descriptors naming extents or trackers with '../' or absolute
#     paths: every disk command refuses, the named files stay untouched
. "$(dirname "$0")/functions.sh"
requires python3 sha256sum
cd "$T"
FORGE="$VMBACK_ROOT/tests/data-gen/repo-forge.py"
[ -f "$FORGE" ]

# sanitizer runtimes reserve terabytes of address space: no ulimit -v then
LIMIT=1048576
if grep -qa __asan_init "$VMBACK"; then LIMIT=unlimited; fi
bounded () { ( { set +x; } 2>/dev/null; ulimit -v "$LIMIT"; "$@" ); }

# Listing of every file with size, mode and hash (locks come and go).
state () {
  (cd "$1" && find . -path ./locks -prune -o -printf '%p %s %m\n' | sort \
     && find . -path ./locks -prune -o -type f -exec sha256sum {} + | sort)
}

# CMD... must not succeed ('! CMD' would not stop a set -e script).
absent () { if "$@"; then echo "unexpectedly true: $*"; return 1; fi; }

# CMD... must fail (not crash) with a one-line error matching PATTERN,
# under the memory limit.
hostile () {
  local pat=$1; shift
  expect_fail "$pat" bounded "$@"
}

# ---- two repositories with one point each ---------------------------------
mkpattern d.raw $((1 << 20)) 7
vmback -q repo init --chunk-size 256K repo
vmback -q backup --repo repo d.raw
P=$(vmback --json list --repo repo | python3 -c '
import json,sys; print(json.load(sys.stdin)["points"][0]["id"])')
export VMBACK_PASSPHRASE=hostile-test-passphrase
vmback -q repo init --encrypt --chunk-size 256K enc
vmback -q backup --repo enc d.raw
PE=$(vmback --json list --repo enc | python3 -c '
import json,sys; print(json.load(sys.stdin)["points"][0]["id"])')
# sanity: the untouched point restores under the memory limit
bounded vmback -q restore --repo repo "$P" ok.raw
cmp ok.raw d.raw

fresh () { rm -rf r; cp -a "${1:-repo}" r; }
# After a hostile edit of r: restore, verify and list fail, each with a
# clear error; no target appears; the repository is left as it was.
refused () {
  local pat=$1 point=${2:-$P}
  state r > before
  hostile "$pat" vmback restore --repo r "$point" out.raw
  [ ! -e out.raw ]
  local rc=0
  bounded "$VMBACK" verify --repo r > v.out 2> v.err || rc=$?
  cat v.out v.err
  [ $rc -eq 1 ]
  grep -Eq -- "$pat" v.err v.out
  rc=0
  bounded "$VMBACK" list --repo r > /dev/null 2> l.err || rc=$?
  cat l.err
  [ $rc -lt 128 ]
  absent grep -q "AddressSanitizer\|runtime error" v.err l.err
  state r > after
  cmp before after
}

# ---- chunk blobs --------------------------------------------------------------
for R in repo enc; do
  ch=$(cd $R && find chunks -type f | head -1)
  pt=$P; [ $R = enc ] && pt=$PE
  fresh $R
  python3 "$FORGE" chunk "r/$ch" --plain-len 4294967295
  refused "is damaged: claims 4294967295 bytes, more than the 262144 expected" "$pt"
  fresh $R
  python3 "$FORGE" chunk "r/$ch" --plain-len 262144 --zstd-fcs $((1 << 40))
  if [ $R = repo ]; then
    refused "is damaged: compressed frame announces another size" "$pt"
  else
    refused "is damaged: authentication failed" "$pt"
  fi
done

# ---- indexes --------------------------------------------------------------------
fresh; python3 "$FORGE" index r "$P" disk0 --n 5
refused "lists 5 chunks for a disk of 1048576 bytes in chunks of 262144"
fresh; python3 "$FORGE" index r "$P" disk0 --n 5 --extra 1
refused "lists 5 chunks for a disk of 1048576 bytes"
fresh; python3 "$FORGE" index r "$P" disk0 --disk-size $((2 << 20)) --n 8 --extra 4
refused "is for 2097152 bytes, the manifest says 1048576"
fresh; python3 "$FORGE" index r "$P" disk0 --disk-size $((1 << 47))
refused "disk size of 140737488355328 bytes, over the limit"
fresh; python3 "$FORGE" index r "$P" disk0 --n $((1 << 32))
refused "lists 4294967296 chunks"
# the same edit without the MAC: the index no longer matches its manifest
fresh; python3 - "r/snapshots/$P/disk0.index" <<'PY'
import struct,sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
struct.pack_into('<Q', b, 24, 5); open(p, 'wb').write(b)
PY
refused "does not match its manifest"

# ---- manifests --------------------------------------------------------------------
fresh; python3 "$FORGE" manifest r "$P" 'm["disks"] = [{}] * 65'
refused "lists 65 disks, at most 64"
fresh; python3 "$FORGE" manifest r "$P" 'm["disks"] = m["disks"] * 100000'
refused "is too large \([0-9]+ bytes, at most 1048576 expected\)"
fresh; python3 "$FORGE" manifest r "$P" 'm["disks"][0]["source"] = "x" * 5000'
refused "field 'disks\[0\]\.source' is too long \(5000 bytes, at most 1023\)"
fresh; python3 "$FORGE" manifest r "$P" 'm["id"] = "y" * 300'
refused "field 'id' is too long \(300 bytes, at most 127\)"
fresh; python3 "$FORGE" manifest r "$P" 'm["disks"][0]["key"] = "k" * 1000000'
refused "field 'disks\[0\]\.key' is too long \(1000000 bytes, at most 63\)"
fresh; python3 "$FORGE" manifest r "$P" 'm["disks"][0]["index_key"] = "../../../etc/passwd"'
refused "bad index key"
# unMACed: the HMAC check refuses it first
fresh; sed -i 's/"source":"[^"]*"/"source":"elsewhere.raw"/' "r/snapshots/$P/manifest"
refused "was tampered with or damaged"

# ---- restore targets ------------------------------------------------------------------
echo victim > victim
ln -s victim link-existing
hostile "file exists" vmback restore --repo repo "$P" link-existing
[ "$(cat victim)" = victim ]
ln -s not-there link-dangling
hostile "file exists" vmback restore --repo repo "$P" link-dangling
[ ! -e not-there ]
echo victim2 > victim2
ln -s victim2 planted-flat.vmdk
hostile "exists" vmback restore --repo repo "$P" planted.vmdk --type monolithicFlat
[ "$(cat victim2)" = victim2 ]
[ ! -e planted.vmdk ]
hostile "No such file or directory|cannot" vmback restore --repo repo "$P" missing/../m.raw
[ ! -e m.raw ]; [ ! -e missing ]
mkdir sub
vmback -q restore --repo repo "$P" sub/../dotdot.raw
cmp dotdot.raw d.raw

# ---- permissions ----------------------------------------------------------------------
(umask 000; vmback -q repo init --chunk-size 256K pr; vmback -q backup --repo pr d.raw
 vmback -q repo init --encrypt pe; vmback -q backup --repo pe d.raw)
find pr pe -exec stat -c '%a %F %n' {} + > modes
cat modes
absent grep -v '^700 directory \|^600 regular' modes

# ---- passphrases -------------------------------------------------------------------------
S=$VMBACK_PASSPHRASE
{
  { set +x; } 2>/dev/null     # the trace itself would show the passphrase
  vmback repo info --repo enc
  vmback --json repo info --repo enc
  vmback --json list --repo enc
  vmback verify --repo enc
  VMBACK_PASSPHRASE="wrong-$S" vmback list --repo enc || true
  VMBACK_PASSPHRASE="wrong-$S" vmback --json list --repo enc || true
  echo "$S" > kf
  env -u VMBACK_PASSPHRASE "$VMBACK" list --repo enc --key-file kf
  env -u VMBACK_PASSPHRASE "$VMBACK" list --repo enc < /dev/null || true
} > pass.out 2>&1
set -x
cat pass.out
absent grep -qF -- "$S" pass.out
# there is no passphrase option; an attempt is a usage error that does
# not echo the value
for form in "--passphrase=$S" "--password=$S"; do
  rc=0
  "$VMBACK" repo init "$form" x > o 2>&1 || rc=$?
  cat o; [ $rc -eq 2 ]; absent grep -qF -- "$S" o; [ ! -e x ]
done
absent grep -rqF -- "$S" enc pe
# argv of a running backup never carries it
mkpattern big.raw $((64 << 20)) 9
"$VMBACK" -q backup --repo enc big.raw &
pid=$!
seen=0
for _ in $(seq 50); do
  if tr '\0' ' ' < /proc/$pid/cmdline > cmdline 2>/dev/null \
     && grep -q "backup --repo enc big.raw" cmdline; then
    seen=1; absent grep -qF -- "$S" cmdline
  fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
wait $pid
[ $seen -eq 1 ]
unset VMBACK_PASSPHRASE

# ---- descriptors naming files outside their directory ----------------------------------
mkdir -p vm
mkpattern outside-flat.vmdk $((1 << 20)) 3
cp outside-flat.vmdk abs-flat.vmdk
cat > vm/dotdot.vmdk <<'EOF'
# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="monolithicFlat"

RW 2048 FLAT "../outside-flat.vmdk" 0

ddb.adapterType = "lsilogic"
ddb.virtualHWVersion = "4"
EOF
sed "s#\"../outside-flat.vmdk\"#\"$T/abs-flat.vmdk\"#" vm/dotdot.vmdk > vm/abs.vmdk
vmback -q disk create --type monolithicFlat --size 1M vm/tracked.vmdk
vmback -q cbt enable vm/tracked.vmdk
sed -i 's#^changeTrackPath=.*#changeTrackPath="../outside-flat.vmdk"#' vm/tracked.vmdk
grep -q '^changeTrackPath="../outside-flat.vmdk"' vm/tracked.vmdk
sed 's#^changeTrackPath=.*#changeTrackPath="/etc/hostname"#' vm/tracked.vmdk > vm/tracked-abs.vmdk
before_vm=$(cd vm && ls -l --time-style=+%s.%N | sha256sum; sha256sum *)
before_out=$(stat -c '%s %Y' outside-flat.vmdk abs-flat.vmdk /etc/hostname; sha256sum outside-flat.vmdk abs-flat.vmdk)
for f in vm/dotdot.vmdk vm/abs.vmdk vm/tracked.vmdk vm/tracked-abs.vmdk; do
  case $f in
    vm/tracked*) pat="unsafe change tracking file name '(\.\./outside-flat\.vmdk|/etc/hostname)'";;
    *) pat="unsafe extent file name '(\.\./outside-flat\.vmdk|$T/abs-flat\.vmdk)'";;
  esac
  set -f     # no globbing of '*' below
  for c in "disk info $f" "disk read $f" "disk write $f --offset 0" \
           "disk write $f --zero --offset 0 --length 4096" "disk rm $f" \
           "disk rename $f vm/new.vmdk" "disk convert $f vm/out.raw" \
           "disk child $f vm/child.vmdk" "disk grow $f --size 4M" \
           "disk shrink $f" "disk defrag $f" "disk check $f --repair" \
           "disk map $f" "cbt enable $f" "cbt disable $f" "cbt changeid $f" \
           "cbt query $f --since *" "backup --repo repo $f"; do
    # shellcheck disable=SC2086
    echo hostile | hostile "$pat" vmback $c
  done
  set +f
done
after_vm=$(cd vm && ls -l --time-style=+%s.%N | sha256sum; sha256sum *)
after_out=$(stat -c '%s %Y' outside-flat.vmdk abs-flat.vmdk /etc/hostname; sha256sum outside-flat.vmdk abs-flat.vmdk)
[ "$before_vm" = "$after_vm" ]
[ "$before_out" = "$after_out" ]
[ "$(vmback --json list --repo repo | python3 -c '
import json,sys; print(len(json.load(sys.stdin)["points"]))')" -eq 1 ]
echo "hostile input handled"
