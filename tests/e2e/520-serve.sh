#!/bin/bash
# Instant recovery: `vmback serve` exports a point's disk over NBD (nbdkit
# and our plugin).  nbdinfo --map shows the zero chunks as holes; nbdcopy
# and qemu-img convert give the original bytes; qemu-img compare agrees;
# two servers of one point run at once (two shared locks that keep gc
# out, both gone after SIGTERM; the socket file left behind is reused); a
# read-only export refuses writes; with --writable-overlay a qemu-io write
# reads back (also after a restart) while the repository stays unchanged
# (verify, fresh restore); an encrypted repository served with TLS-PSK
# works with the key and refuses plaintext, and the passphrase is in no
# argv or environment; a damaged chunk fails its reads with EIO, never
# serves wrong bytes, and the server keeps serving the rest.
. "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo nbdcopy qemu-img qemu-io python3
PLUGIN=${VMBACK_NBDKIT_PLUGIN:-$(dirname "$VMBACK")/nbdkit-vmback.so}
[ -f "$PLUGIN" ] || { echo "SKIP: the nbdkit plugin was not built (nbdkit-plugin-dev missing)"; exit 77; }
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
cd "$T"
export VMBACK_REPO=$T/repo
vmback -q repo init --chunk-size 256K repo

# 6 MiB: data, a hole, data at an odd offset, a hole, a short tail of data
truncate -s 6M d.raw
poke_pattern d.raw 0 $((1 << 20)) "$SEED"
poke_pattern d.raw $(((3 << 20) + 12345)) 1500000 $((SEED + 1))
poke_pattern d.raw $(((6 << 20) - 5000)) 5000 $((SEED + 2))
SHA=$(sha256sum < d.raw | cut -d' ' -f1)
vmback -q backup d.raw
shaof () { sha256sum < "$1" | cut -d' ' -f1; }

nlocks () { find "$1/locks" -type f 2>/dev/null | wc -l; }

# --- read-only export: map, bytes, compare, two readers --------------------
serve_bg a latest --unix "$T/a.sock"
grep -q "read-only" a.out
[ "$URI_a" = "nbd+unix:///?socket=$T/a.sock" ]
nbdinfo "$URI_a" | tee info.txt
grep -q "is_read_only: true" info.txt
grep -q "export-size: $((6 << 20))" info.txt
nbdinfo --map "$URI_a" | tee map.txt
# chunks 4..11 are zero (hole), chunk 12 holds data from 3 MiB + 12345
grep -Eq "^ *$((1 << 20)) +$((2 << 20)) +3 +hole,zero" map.txt
grep -Eq "^ *0 +$((1 << 20)) +0 +data" map.txt
nbdcopy "$URI_a" c1.raw
[ "$(shaof c1.raw)" = "$SHA" ]
qemu-img convert -f raw -O raw "$URI_a" c2.raw
[ "$(shaof c2.raw)" = "$SHA" ]
qemu-img compare -f raw -F raw d.raw "$URI_a"
# a second server of the same point, both read at once
serve_bg b latest --unix "$T/b.sock" --cache 256K
[ "$(nlocks repo)" -eq 2 ]
expect_fail "locked by pid [0-9]+ on .*\(serve\)" vmback gc      # gc waits for servers
nbdcopy "$URI_a" p1.raw & cp1=$!
nbdcopy "$URI_b" p2.raw & cp2=$!
wait $cp1 && wait $cp2
[ "$(shaof p1.raw)" = "$SHA" ]; [ "$(shaof p2.raw)" = "$SHA" ]
# read-only: writes are refused
qemu-io -f raw -c 'write -P 0x11 0 4k' "$URI_a" 2>&1 | tee ro.txt
grep -Eq "read-only|Read-only|denied|not permitted" ro.txt
serve_stop a; serve_stop b
[ "$(nlocks repo)" -eq 0 ]
# each says how its cache did: a (64 MiB) read the disk four times and
# decoded each stored chunk once; b (room for one chunk) decoded them all
stats () { sed -n 's/^vmback: serve: \([0-9]*\) chunk reads, \([0-9]*\) from the cache ([0-9]*%), \([0-9]*\) decoded; cache of \([0-9]*\) chunks, \([0-9]*\) held, \([0-9]*\) reused$/\1 \2 \3 \4 \5 \6/p' "$1"; }
read -r reads hits dec cap held reused < <(stats a.err)
[ "$hits" -gt 0 ]; [ $((hits + dec)) -eq "$reads" ]; [ "$cap" -eq 256 ]; [ "$held" -eq "$dec" ]
read -r reads hits dec2 cap held reused < <(stats b.err)
[ "$dec2" -ge "$dec" ]; [ "$cap" -eq 1 ]; [ "$held" -eq 1 ]; [ "$reused" -eq 0 ]
# chunks read again stay cached through a scan of 7 times the cache: a
# 2 MiB cache (8 chunks) of a 16 MiB disk; chunks 0 and 1 are read twice
# (reuse), then 1..16 MiB is scanned, half in one read, half in 64 KiB
# pieces, and chunk 2 in 1 KiB pieces (sequential pieces of a chunk are
# not reuse, even four in one 4 KiB part); chunks 0 and 1 still come from
# the cache, so every chunk read was decoded once
mkpattern s.raw $((16 << 20)) $((SEED + 5))
vmback -q repo init --chunk-size 256K srepo
vmback -q backup --repo srepo s.raw
serve_bg sc --repo srepo latest --unix "$T/sc.sock" --cache 2M
cmds=(-c 'read 0 64k' -c 'read 0 64k' -c 'read 256k 64k' -c 'read 256k 64k' -c 'read 1M 7M')
for o in $(seq $((8 << 4)) $(((16 << 4) - 1))); do cmds+=(-c "read $((o << 16)) 64k"); done
for o in $(seq 0 15); do cmds+=(-c "read $(((512 + o) << 10)) 1k"); done   # chunk 2 in 1 KiB
cmds+=(-c 'read 0 64k' -c 'read 256k 64k')
qemu-io -r -f raw "${cmds[@]}" "$URI_sc" > sc.txt
serve_stop sc
read -r reads hits dec cap held reused < <(stats sc.err)
echo "scan: $reads reads, $hits hits, $dec decoded, $held held, $reused reused"
[ "$cap" -eq 8 ]; [ "$dec" -eq 63 ]; [ "$reused" -eq 2 ]; [ $((hits + dec)) -eq "$reads" ]
# the socket file nbdkit leaves behind is reused; a live one is refused
[ -S a.sock ]
serve_bg a2 latest --unix "$T/a.sock"
expect_fail "in use by a running server" vmback serve latest --unix "$T/a.sock"
serve_stop a2

# --- writable overlay -------------------------------------------------------
serve_bg w latest --unix "$T/w.sock" --writable-overlay ov.raw
grep -q "writes to $T/ov.raw" w.out
qemu-io -f raw -c 'write -P 0xab 0 64k' -c 'write -P 0xcd 1500000 1000' "$URI_w"
qemu-io -f raw -c 'read -P 0xab 0 64k' -c 'read -P 0xcd 1500000 1000' "$URI_w"
nbdcopy "$URI_w" w.raw
python3 - d.raw w.raw <<'PY'
import sys
a = bytearray(open(sys.argv[1], 'rb').read()); b = open(sys.argv[2], 'rb').read()
a[0:65536] = b'\xab' * 65536; a[1500000:1501000] = b'\xcd' * 1000
assert a == b, "overlay read-back differs"
PY
# the written block in a zero chunk is data now, the rest of it a hole
nbdinfo --map "$URI_w" | tee wmap.txt
grep -Eq "^ *$((1 << 20)) +$((1441792 - (1 << 20))) +3 +hole,zero" wmap.txt
grep -Eq "^ *1441792 +65536 +0 +data" wmap.txt
serve_stop w
[ -f ov.raw.bitmap ]; [ "$(stat -c %s ov.raw)" -eq $((6 << 20)) ]
# the repository is unchanged
vmback verify
vmback -q restore latest r.raw
[ "$(shaof r.raw)" = "$SHA" ]
# the overlay keeps its writes across a restart
serve_bg w2 latest --unix "$T/w2.sock" --writable-overlay ov.raw
qemu-io -f raw -c 'read -P 0xab 0 64k' -c 'read -P 0xcd 1500000 1000' "$URI_w2"
serve_stop w2

# --- encrypted repository over TLS with a pre-shared key --------------------
export VMBACK_PASSPHRASE="serve-pass $SEED"
vmback -q repo init --encrypt --chunk-size 256K erepo
vmback -q backup --repo erepo d.raw --name enc
echo "alice:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > keys.psk
chmod 600 keys.psk
serve_bg t --repo erepo enc@latest --unix "$T/t.sock" --tls-psk keys.psk
[ "$URI_t" = "nbds+unix://alice@/?socket=$T/t.sock&tls-psk-file=$T/keys.psk" ]
nbdinfo "$URI_t" | grep -q "with TLS"
nbdcopy "$URI_t" t.raw
[ "$(shaof t.raw)" = "$SHA" ]
# AES-GCM rather than GnuTLS's ChaCha20 where the CPU has AES instructions
# (docs/serve.md), for every connection
if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo && [ ! -e /etc/gnutls/config ] \
   && [ -z "${GNUTLS_SYSTEM_PRIORITY_FILE:-}" ]; then
  for i in 1 2; do
    GNUTLS_DEBUG_LEVEL=4 nbdinfo --size "$URI_t" 2> cipher.err
    grep "Selected cipher suite" cipher.err
    grep -q "Selected cipher suite: GNUTLS_AES_128_GCM" cipher.err
  done
else
  echo "NOTE: no AES instructions or a GnuTLS policy here; cipher check skipped"
fi
nbdinfo "nbd+unix:///?socket=$T/t.sock" && exit 1   # plaintext is refused
tr '\0' ' ' < "/proc/$PID_t/cmdline" | grep -qF "$VMBACK_PASSPHRASE" && exit 1
tr '\0' '\n' < "/proc/$PID_t/environ" | grep -qF "$VMBACK_PASSPHRASE" && exit 1
serve_stop t
unset VMBACK_PASSPHRASE

# --- a damaged chunk fails the read ----------------------------------------
cp -a repo brepo
chunk=$(find brepo/chunks -type f -size +100k | head -n 1)
python3 - "$chunk" <<'PY'
import sys
f = open(sys.argv[1], 'r+b'); f.seek(5000); b = f.read(1); f.seek(5000); f.write(bytes([b[0] ^ 0x55]))
PY
serve_bg x --repo brepo latest --unix "$T/x.sock"
nbdcopy "$URI_x" x.raw && exit 1
grep -q "cannot read disk .* of point .*chunk" x.err
# the bad chunk's range fails with EIO; the server still serves the rest
badoff=$(sed -n 's/.*at offset \([0-9]*\) (chunk.*/\1/p' x.err | head -n 1)
qemu-io -r -f raw -c "read $badoff 4k" "$URI_x" 2>&1 | tee xio.txt
grep -q "Input/output error" xio.txt
goodoff=$(( badoff == 0 ? 262144 : 0 ))
qemu-io -r -f raw -c "read -v $goodoff 16" "$URI_x" | grep -q "^[0-9a-f]*:"
serve_stop x

# --- usage errors -----------------------------------------------------------
expect_fail "exactly one of --unix" vmback serve latest
expect_fail "has no disk 'nope'" vmback serve latest --disk nope --unix "$T/n.sock"
expect_fail "no restore point" vmback serve nosuch/20200101T000000Z --unix "$T/n.sock"
VMBACK_NBDKIT_PLUGIN=$T/none.so expect_fail "plugin" vmback serve latest --unix "$T/n.sock"
echo "520-serve OK"
