#!/bin/bash
# restore --in-place writes back only the chunks that differ from the point:
#  - a disk with valid change tracking: random writes (into data, into a
#    zero area, a discard of data, the last chunk) -> the disk equals the
#    point (sha256), the JSON says "change-tracking" and chunks-written is
#    exactly the number of chunks touched; the writes of the restore are
#    tracked themselves (the next incremental backup is right);
#  - tracking made invalid by qemu-io, and a raw disk of an odd size with
#    no tracking at all -> "hash-compare", chunks-written is exactly the
#    number of chunks whose bytes differ, bit-exact;
#  - a disk of another size is refused and left untouched.
. "$(dirname "$0")/functions.sh"
requires python3
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
RANDOM=$SEED
cd "$T"
export VMBACK_REPO=$(repo_url repo) VMBACK_QUIET_FALLBACK=1
CS=$((256 << 10))
vmback -q repo init --chunk-size 256K "$VMBACK_REPO"
vsha () { vmback disk read "$1" | sha256sum | cut -d' ' -f1; }
json_get () { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j[sys.argv[2]])' "$@"; }
# chunks (of CS bytes) that differ between two raw images of equal size
ndiff () {
  python3 - "$1" "$2" "$CS" <<'PY'
import sys
a = open(sys.argv[1], 'rb'); b = open(sys.argv[2], 'rb'); cs = int(sys.argv[3]); n = 0
while True:
    x = a.read(cs); y = b.read(cs)
    if not x and not y: break
    n += x != y
print(n)
PY
}

# ---- 1. a tracked disk
vmback disk create --type monolithicSparse --size 32M --ctk d.vmdk
poke_pattern p 0 $((12 << 20)) "$SEED"
vmback disk write d.vmdk --offset $((2 << 20)) < p          # data in MiB 2..14
vmback -q backup d.vmdk
ID=$(vmback --json list | python3 -c 'import json,sys; print(json.load(sys.stdin)["points"][-1]["id"])')
vmback disk read d.vmdk > point.raw
SHA=$(sha256sum < point.raw | cut -d' ' -f1)
# writes: offset length; chunk numbers they touch are collected in "touched"
: > touched
w () {   # OFFSET LENGTH: random bytes
  head -c "$2" /dev/urandom | vmback disk write d.vmdk --offset "$1"
  seq $(($1 / CS)) $(( ($1 + $2 - 1) / CS )) >> touched
}
w $((3 << 20)) 1                                    # one byte in data
w $(( (5 << 20) + CS - 100 )) 200                   # across a chunk boundary
w $((20 << 20)) 4096                                # a zero area of the point
w $(( (32 << 20) - 10 )) 10                         # the very last bytes
for i in 1 2 3 4 5; do                              # a few random ones
  w $(( (RANDOM % 31) << 20 | (RANDOM % 1000) * 1000 )) $(( RANDOM % 3000 + 1 ))
done
vmback disk write d.vmdk --zero --offset $((8 << 20)) --length $CS   # discard a data chunk
echo $(( (8 << 20) / CS )) >> touched
ntouched=$(sort -un touched | wc -l); echo "chunks touched: $ntouched"
[ "$(vsha d.vmdk)" != "$SHA" ]
vmback --json restore "$ID" --in-place d.vmdk > ip1.json
cat ip1.json
[ "$(json_get ip1.json method)" = change-tracking ]
[ "$(json_get ip1.json chunks-written)" -eq "$ntouched" ]
[ "$(vsha d.vmdk)" = "$SHA" ]
if command -v qemu-img >/dev/null; then
  qemu-img check -q -f vmdk d.vmdk
  qemu-img compare -q -f vmdk -F raw d.vmdk point.raw
fi
# the restore's own writes are tracked: an incremental backup now reads
# them and its point equals the disk
vmback --json backup d.vmdk > b2.json
python3 -c '
import json,sys; d=json.load(open("b2.json"))["disks"][0]
assert d["change-id-used"] not in ("", "*"), d' 
rm -f r.raw; vmback -q restore d@latest r.raw
[ "$(sha256sum < r.raw | cut -d' ' -f1)" = "$SHA" ]
# nothing changed since: in place writes nothing
vmback --json restore "$ID" --in-place d.vmdk > ip2.json
[ "$(json_get ip2.json method)" = change-tracking ]
[ "$(vsha d.vmdk)" = "$SHA" ]
# the text summary says how the chunks were found
w $((4 << 20)) 5000
vmback restore "$ID" --in-place d.vmdk > ip3.txt
cat ip3.txt
grep -Eq "in place: [0-9]+ chunks? written \(.*change tracking" ip3.txt
[ "$(vsha d.vmdk)" = "$SHA" ]

# ---- 2. tracking invalidated by a writer that does not track (qemu-io)
if command -v qemu-io >/dev/null; then
  qemu-io -f vmdk -c "write -P 0x55 $((6 << 20)) 64k" -c "write -P 0x66 $((25 << 20)) 1k" d.vmdk > /dev/null
  # writes the point's own bytes back: same content, must not count
  qemu-io -f vmdk -c "write -z $((28 << 20)) 64k" d.vmdk > /dev/null
  vmback disk read d.vmdk > now.raw
  exp=$(ndiff now.raw point.raw); echo "chunks differing: $exp"; [ "$exp" -eq 2 ]
  vmback --json restore "$ID" --in-place d.vmdk > ip4.json 2> ip4.err
  cat ip4.json ip4.err
  [ "$(json_get ip4.json method)" = hash-compare ]
  [ "$(json_get ip4.json chunks-written)" -eq "$exp" ]
  [ "$(vsha d.vmdk)" = "$SHA" ]
  qemu-img compare -q -f vmdk -F raw d.vmdk point.raw
  # without VMBACK_QUIET_FALLBACK the fallback is announced, on one line
  qemu-io -f vmdk -c "write -P 0x77 0 512" d.vmdk > /dev/null
  env -u VMBACK_QUIET_FALLBACK "$VMBACK" restore "$ID" --in-place d.vmdk > ip5.txt 2> ip5.err
  cat ip5.txt ip5.err
  grep -q "comparing chunk hashes" ip5.err
  [ "$(wc -l < ip5.err)" -eq 1 ]
  grep -Eq "in place: 1 chunk(s)? written \(.*hash" ip5.txt
  [ "$(vsha d.vmdk)" = "$SHA" ]
fi

# ---- 3. a raw disk (no tracking), not a multiple of the chunk size
flip_byte () { python3 -c 'import sys; f=open(sys.argv[1],"r+b"); o=int(sys.argv[2]); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^0xff]))' "$1" "$2"; }
RSZ=$(( (10 << 20) + 12345 ))
mkpattern r.img $RSZ $((SEED + 1))
truncate -s $((7 << 20)) r.img; truncate -s $RSZ r.img    # zeros in MiB 7..10
poke_pattern r.img $(( RSZ - 5000 )) 5000 $((SEED + 2))   # data in the tail
vmback -q backup --name raw r.img
cp r.img rpoint.img
RSHA=$(sha256sum < r.img | cut -d' ' -f1)
flip_byte r.img 100                                       # chunk 0 (a random byte could equal the old one)
head -c $CS /dev/zero | dd of=r.img bs=1 seek=$((2 << 20)) conv=notrunc status=none  # data -> zeros
poke_pattern r.img $(( (8 << 20) + 7 )) 300 $((SEED + 4))  # zeros -> data
flip_byte r.img $(( RSZ - 1 ))                            # the last byte
exp=$(ndiff r.img rpoint.img); echo "chunks differing: $exp"; [ "$exp" -eq 4 ]
vmback --json restore raw@latest --in-place r.img > ip6.json
cat ip6.json
[ "$(json_get ip6.json method)" = hash-compare ]
[ "$(json_get ip6.json chunks-written)" -eq "$exp" ]
[ "$(stat -c %s r.img)" -eq "$RSZ" ]
cmp r.img rpoint.img
# unchanged disk: nothing written
vmback --json restore raw@latest --in-place r.img > ip7.json
[ "$(json_get ip7.json chunks-written)" -eq 0 ]
cmp r.img rpoint.img

# ---- 4. size mismatch: refused, the disk untouched
cp r.img big.img; truncate -s $((RSZ + 512)) big.img
poke_pattern big.img 0 1000 $((SEED + 6))
bsha=$(sha256sum < big.img | cut -d' ' -f1)
expect_fail "has [0-9]+ bytes but the point's disk has $RSZ" vmback restore raw@latest --in-place big.img
[ "$(sha256sum < big.img | cut -d' ' -f1)" = "$bsha" ]
cp r.img small.img; truncate -s $((RSZ - CS)) small.img
poke_pattern small.img 0 1000 $((SEED + 6))
ssha=$(sha256sum < small.img | cut -d' ' -f1)
expect_fail "has [0-9]+ bytes but the point's disk has $RSZ" vmback restore raw@latest --in-place small.img
[ "$(sha256sum < small.img | cut -d' ' -f1)" = "$ssha" ]
vmback disk grow d.vmdk --size 64M
dsha=$(vsha d.vmdk)
expect_fail "has [0-9]+ bytes but" vmback restore "$ID" --in-place d.vmdk
[ "$(vsha d.vmdk)" = "$dsha" ]
expect_fail "nosuch.img" vmback restore raw@latest --in-place nosuch.img
[ ! -e nosuch.img ]

# ---- 5. a block device (a loop device over a file full of old data), the
# usual target when a VM's disk is a LUN or a logical volume: in place and
# as a restore TARGET, every byte must end up equal to the point, zero
# chunks included (the device is not a fresh sparse file)
if [ "$(id -u)" -eq 0 ] && command -v losetup >/dev/null; then
  mkpattern b.img $((8 << 20)) $((SEED + 10))
  head -c $((3 << 20)) /dev/zero | dd of=b.img bs=1M seek=4 conv=notrunc status=none
  vmback -q backup --name blk b.img
  mkpattern dev.img $((8 << 20)) $((SEED + 11))       # old contents everywhere
  if LOOP=$(losetup -f --show dev.img 2>/dev/null); then
    cleanup_fn "losetup -d $LOOP"
    [ "$(blockdev --getsize64 "$LOOP")" -eq $((8 << 20)) ]
    vmback --json restore blk@latest --in-place "$LOOP" > ip8.json
    cat ip8.json
    [ "$(json_get ip8.json method)" = hash-compare ]
    [ "$(json_get ip8.json chunks-written)" -eq 32 ]
    cmp "$LOOP" b.img
    mkpattern junk $((8 << 20)) $((SEED + 12))
    dd if=junk of="$LOOP" bs=1M oflag=direct status=none
    cmp junk "$LOOP"
    vmback -q restore blk@latest "$LOOP"
    cmp "$LOOP" b.img
  else
    echo "no loop device available: block device cases skipped"
  fi
fi
