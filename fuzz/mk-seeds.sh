#!/bin/bash
# Rebuild the seed corpora of the disk and repository fuzz targets from
# real files: qemu-img output, disks made by vmback, a compact seSparse
# extent from tests/data-gen/mk-sesparse.py, repository configs from
# `vmback repo init`, and indexes, manifests, chunk blobs, key files, pack
# indexes and packs from our own encoders (mk-seeds.c, with the fixed fuzz
# keys).
#   fuzz/mk-seeds.sh [BUILD]     (BUILD: a plain build dir, default build)
# Seeds are kept small (tiny disks, < 64 KiB where the format allows).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-build}" && pwd)
C=$ROOT/fuzz/corpus
V=$BUILD/vmback
W=$(mktemp -d /tmp/vmback-mkseeds.XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W"
mkdir -p "$C"/{fuzz-vmdk-sparse,fuzz-vmdk-stream,fuzz-vmdk-cowd,fuzz-vmdk-sesparse,fuzz-keyfile,fuzz-repo-config,fuzz-index,fuzz-packidx,fuzz-manifest,fuzz-chunk}

# --- encoders ----------------------------------------------------------------
cc -std=c11 -D_GNU_SOURCE -I"$ROOT/include" -I"$ROOT/src" -I"$BUILD" \
  "$ROOT/fuzz/mk-seeds.c" "$BUILD/libvmback.a" -o mk-seeds \
  -lzstd -lz -ldeflate -lcrypto -ljson-c -luuid -lpthread \
  $(pkg-config --libs libcurl libxml-2.0 2>/dev/null)
./mk-seeds "$C"

# an encrypted key file with cheap scrypt parameters and passphrase "fuzz"
# (what crypto_keyfile_write would write with N=16 r=1 p=1)
python3 - "$C/fuzz-keyfile/encrypted-n16.json" <<'PY'
import hashlib, json, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
salt, nonce = bytes(range(16)), bytes(range(12))
keys = b'\x11' * 32 + b'\x22' * 32 + b'\x33' * 32
wk = hashlib.scrypt(b'fuzz', salt=salt, n=16, r=1, p=1, dklen=32)
ct = AESGCM(wk).encrypt(nonce, keys, b'vmback-repokey-v1')
o = {"format": 1, "encrypted": True, "kdf": "scrypt", "n": 16, "r": 1,
     "p": 1, "salt": salt.hex(), "nonce": nonce.hex(),
     "wrapped": ct[:-16].hex(), "tag": ct[-16:].hex()}
open(sys.argv[1], 'w').write(json.dumps(o, indent=2) + '\n')
PY

# --- repository configs --------------------------------------------------------
"$V" -q repo init plain
cp plain/config "$C/fuzz-repo-config/plain.json"
VMBACK_PASSPHRASE=fuzz "$V" -q repo init enc --encrypt
cp enc/config "$C/fuzz-repo-config/encrypted.json"
"$V" -q repo init big --chunk-size 8M --compression 19
cp big/config "$C/fuzz-repo-config/chunk-8m.json"

# --- disks -----------------------------------------------------------------------
python3 -c "
import sys
b = bytearray(1 << 20)
for o in (0, 70000, 600000, (1 << 20) - 4096):
    b[o:o + 3000] = bytes((i * 7 + o) & 255 for i in range(3000))
open('data.raw', 'wb').write(b)"
small=$C/fuzz-vmdk-sparse
qemu-img create -q -f vmdk q-empty.vmdk 1M
cp q-empty.vmdk "$small/qemu-empty.vmdk"
head -c 131072 data.raw > data2.raw
qemu-img convert -q -f raw -O vmdk data2.raw q-data.vmdk
cp q-data.vmdk "$small/qemu-data.vmdk"
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse q2g.vmdk 1M
cp q2g-s001.vmdk "$small/qemu-2gb-s001.vmdk"
"$V" disk create --type monolithicSparse --grain 8 --size 1M v.vmdk
"$V" disk write v.vmdk --offset 0 < <(head -c 3000 data.raw)
"$V" disk write v.vmdk --offset 600000 < <(head -c 603000 data.raw | tail -c 3000)
cp v.vmdk "$small/vmback-grain8.vmdk"

st=$C/fuzz-vmdk-stream
qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized data.raw qs.vmdk
cp qs.vmdk "$st/qemu-data.vmdk"
qemu-img create -q -f vmdk -o subformat=streamOptimized qse.vmdk 1M
cp qse.vmdk "$st/qemu-empty.vmdk"
"$V" disk create --type streamOptimized --size 1M vse.vmdk
cp vse.vmdk "$st/vmback-empty.vmdk"
"$V" disk convert --type streamOptimized data.raw vs.vmdk
cp vs.vmdk "$st/vmback-data.vmdk"
"$V" disk create --type streamOptimized --grain 8 --size 1M vs8.vmdk
"$V" disk write vs8.vmdk --offset 0 < data.raw
cp vs8.vmdk "$st/vmback-grain8.vmdk"

"$V" disk create --type vmfs --size 1M base.vmdk
"$V" disk child base.vmdk base-000001.vmdk
cp base-000001-delta.vmdk "$C/fuzz-vmdk-cowd/empty-delta.vmdk"
"$V" disk write base-000001.vmdk --offset 777 < <(head -c 3000 data.raw)
"$V" disk write base-000001.vmdk --offset 600000 < <(head -c 603000 data.raw | tail -c 3000)
cp base-000001-delta.vmdk "$C/fuzz-vmdk-cowd/written-delta.vmdk"

# seSparse: the real generator with its 1 MiB region alignment removed
sed -e 's/^ALIGN = 2048 /ALIGN = 1 /' -e 's/j_off, j_size = 2048, 2048/j_off, j_size = 4, 4/' \
  "$ROOT/tests/data-gen/mk-sesparse.py" > mk-se-compact.py
head -c 65536 data.raw > se.raw
python3 mk-se-compact.py se.raw se.vmdk
cp se-sesparse.vmdk "$C/fuzz-vmdk-sesparse/compact.vmdk"
python3 mk-se-compact.py --zero-grains --capacity 4096 se.raw sez.vmdk
cp sez-sesparse.vmdk "$C/fuzz-vmdk-sesparse/zero-grains.vmdk"

# the generic open target gets one of each binary format too
cp "$C/fuzz-vmdk-cowd/written-delta.vmdk" "$C/fuzz-vdisk-open/cowd-delta.vmdk"
cp "$C/fuzz-vmdk-sesparse/compact.vmdk" "$C/fuzz-vdisk-open/sesparse-compact.vmdk"
cp "$C/fuzz-vmdk-sparse/vmback-grain8.vmdk" "$C/fuzz-vdisk-open/sparse-grain8.vmdk"

ls -l "$C"/fuzz-{vmdk-sparse,vmdk-stream,vmdk-cowd,vmdk-sesparse,keyfile,repo-config,index,packidx,manifest,chunk}
