#!/bin/bash
# The benchmarks' input, built once and cached in DIR (default
# $BENCH_DIR, else /var/tmp/vmback-bench):
#   base.raw     a 2 GiB ext4 image made by mke2fs -d from the first DATA_MB
#                (1100) MB of regular files under /usr, in sorted order
#                (~1.2 GB allocated; deterministic: fixed UUID, hash seed, time)
#   changes.bin  200 x 100 KiB of pseudo-random bytes (fixed seed)
#   changes.txt  200 4 KiB-aligned offsets for them (1% of the disk)
#
#   bench/image.sh [DIR]
set -euo pipefail
W=${1:-${BENCH_DIR:-/var/tmp/vmback-bench}}
DATA_MB=${DATA_MB:-1100}
mkdir -p "$W"
cd "$W"
have () { command -v "$1" > /dev/null 2>&1; }
log () { echo "[$(date +%T)] $*" >&2; }

# base.raw: 2 GiB ext4 built by mke2fs -d from the first DATA_MB MB of regular
# files under /usr (then /var/lib/apt, /var/cache/apt), walked in sorted order.
if [ ! -f base.raw ] || [ ! -f base.ok ]; then
  have mke2fs || { echo "mke2fs missing: apt-get install e2fsprogs" >&2; exit 1; }
  log "building the source tree (${DATA_MB} MB of files from /usr)..."
  rm -rf tree base.raw base.ok
  mkdir tree
  python3 - "$DATA_MB" <<'PY'
import os, shutil, stat, sys
limit = int(sys.argv[1]) * 1000 * 1000
total = 0
def walk(top):
    global total
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for f in sorted(files):
            src = os.path.join(root, f)
            try:
                st = os.lstat(src)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                continue
            if total + st.st_size > limit:
                continue
            dst = os.path.join("tree", os.path.relpath(src, "/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            try:
                shutil.copyfile(src, dst)
            except OSError:
                continue
            total += st.st_size
            if total >= limit * 0.999:
                return True
    return False
for top in ("/usr", "/var/lib/apt", "/var/cache/apt"):
    if walk(top):
        break
print(f"copied {total} bytes", file=sys.stderr)
PY
  log "mke2fs -t ext4 -d tree base.raw 2G..."
  E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 \
    -U 6b1d3a7e-0b7c-4a53-9a55-1f2f3f4f5f6f -E hash_seed=0c6f1c3e-5d1b-4e59-8f0e-1a2b3c4d5e6f \
    -d tree base.raw 2G
  rm -rf tree
  touch base.ok
fi

# the 200 scattered 100 KiB writes: a fixed pseudo-random blob and offsets
if [ ! -f changes.bin ] || [ ! -f changes.txt ]; then
  python3 - <<'PY'
import random
r = random.Random(20240601)
n, sz, disk = 200, 100 * 1024, 2 << 30
open("changes.bin", "wb").write(r.randbytes(n * sz))
offs = sorted(r.sample(range(0, (disk - sz) // 4096), n))
open("changes.txt", "w").write("".join(f"{o * 4096}\n" for o in offs))
PY
fi

