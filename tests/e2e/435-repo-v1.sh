#!/bin/bash
# Repositories with version 1 chunk blobs (tests/data/repo-v1, written by
# an earlier vmback; version 1's CRC does not cover the chunk id) still
# work: verify passes, restore and serve give the recorded bytes, and a
# new backup into one adds version 2 blobs beside them, after which both
# points verify and restore.  Damage to a version 1 chunk is still caught
# when data is read: a flipped payload byte (the CRC, computed once the
# content fails its id), another chunk's blob under its name (the id).
. "$(dirname "$0")/functions.sh"
requires python3
cd "$T"
FX=$VMBACK_ROOT/tests/data/repo-v1
SHA_PLAIN=2210c811d60c6ab6e8de9bc5f8bb47798e9cd4af36a00e93d413cbd212b9e56f
SHA_ENC=1c1e128c3aee887b62064df12516899d8a9262b646afa70c746134cd35fb19d5
shaof () { sha256sum < "$1" | cut -d' ' -f1; }
version () { od -An -tu1 -j4 -N1 "$1" | tr -d ' '; }
fresh () { rm -rf plain; cp -a "$FX/plain" plain; chmod -R u+w plain; }

# --- the fixture as it is: every blob version 1 -------------------------------
fresh
for f in plain/chunks/*/*; do [ "$(version "$f")" = 1 ]; done
vmback verify --repo plain | tee v.out
grep -q "verified 1 point, 3 chunks" v.out
vmback -q restore --repo plain disk/20261126T222147Z p.raw
[ "$(shaof p.raw)" = "$SHA_PLAIN" ]
cp -a "$FX/enc" enc; chmod -R u+w enc
VMBACK_PASSPHRASE=v1-fixture vmback -q verify --repo enc
VMBACK_PASSPHRASE=v1-fixture vmback -q restore --repo enc latest e.raw
[ "$(shaof e.raw)" = "$SHA_ENC" ]

# --- serve: the raw chunk goes through the cache without a copy ---------------
if command -v nbdkit > /dev/null && command -v nbdcopy > /dev/null \
   && [ -f "$(dirname "$VMBACK")/nbdkit-vmback.so" ]; then
  "$VMBACK" serve --repo plain latest --unix "$T/s.sock" > s.out 2> s.err &
  sp=$!
  cleanup_fn "kill $sp 2>/dev/null; wait $sp 2>/dev/null"
  for i in $(seq 300); do [ -s s.out ] && break; sleep 0.1; done
  nbdcopy "nbd+unix:///?socket=$T/s.sock" s.raw
  [ "$(shaof s.raw)" = "$SHA_PLAIN" ]
  kill $sp; wait $sp || true
else
  echo "serve part skipped: nbdkit, nbdcopy or the nbdkit plugin is missing"
fi

# --- a new point: version 2 blobs beside version 1 ones ----------------------
mkdir n
python3 -c "
d = bytearray(open('p.raw', 'rb').read())
d[524288:524288 + 4096] = b'new data in the zero chunk '.ljust(4096, b'.')
open('n/disk.raw', 'wb').write(d)"
vmback -q backup --repo plain n/disk.raw
v1=0 v2=0
for f in plain/chunks/*/*; do
  case $(version "$f") in 1) v1=$((v1 + 1)) ;; 2) v2=$((v2 + 1)) ;; *) false ;; esac
done
[ $v1 -eq 3 ]; [ $v2 -eq 1 ]
vmback verify --repo plain | grep -q "verified 2 points"
vmback -q restore --repo plain latest q.raw
[ "$(shaof q.raw)" = "$(shaof n/disk.raw)" ]
vmback -q restore --repo plain disk/20261126T222147Z p1.raw
[ "$(shaof p1.raw)" = "$SHA_PLAIN" ]

# --- damage to a version 1 chunk ------------------------------------------------
RAWC=plain/chunks/08/0837008f3242b44a397ccc72643c825bf0c03ea51b10845ddcbdf88f5ac56c68
TXTC=plain/chunks/64/640ec5fc7404b123ae12dd8b430dfcfeb8d0cb0610a0395e079e846059b638d9
fresh
printf '\x55' | dd of=$RAWC bs=1 seek=1000 conv=notrunc status=none
expect_fail "chunk 0837008f.*is damaged: CRC mismatch" vmback restore --repo plain latest x.raw
[ ! -e x.raw ]
fresh
cp plain/chunks/bc/bc2c266a048c08b537c72a7d123041dbc66bf52573fbfe16f25f484359375ba5 $TXTC
expect_fail "chunk 640ec5fc.*is damaged: its content does not match its id" \
  vmback restore --repo plain latest x.raw
expect_fail "640ec5fc" vmback verify --repo plain
echo "ok"
