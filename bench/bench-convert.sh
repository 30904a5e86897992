#!/bin/bash
# Convert throughput, vmback vs qemu-img, side by side in one run:
#   raw -> monolithicSparse and monolithicSparse -> raw of a 2 GiB image
#   holding ~1 GiB of data (64 KiB-1 MiB runs of random data between holes),
# and the cost of change tracking on writes (ctk on vs off).
# Prints best-of-N wall times and ratios (vmback / qemu-img: <= 1.0 means
# as fast or faster).  usage: bench/bench-convert.sh [BUILD] [RUNS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-3}
V="$(cd "$BUILD" && pwd)/vmback"
W=${BENCH_DIR:-/var/tmp/vmback-bench}
mkdir -p "$W"
cd "$W"

if [ ! -f src.raw ] || [ "$(stat -c %s src.raw)" != $((2 << 30)) ]; then
  echo "making src.raw (2 GiB, ~1 GiB data)..." >&2
  python3 - <<'PY'
import os, random
r = random.Random(42)
size = 2 << 30
fd = os.open("src.raw", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, size)
off, data = 0, 0
blob = r.randbytes(8 << 20)
while off < size:
    run = r.randrange(1, 17) * 65536
    if r.random() < 0.5:
        n = min(run, size - off)
        s = r.randrange(0, len(blob) - n)
        os.pwrite(fd, blob[s:s + n], off)
        data += n
    off += run
os.close(fd)
print(f"data bytes: {data}")
PY
fi

# best-of-RUNS wall time of a command, in seconds
best () {
  local b=999999
  for _ in $(seq "$RUNS"); do
    rm -f out.* out-*
    local t0 t1
    t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
    b=$(python3 -c "print(min($b, $t1 - $t0))")
  done
  echo "$b"
}

printf "%-40s %10s %10s %8s\n" "case" "vmback s" "qemu-img s" "ratio"
row () {
  printf "%-40s %10.3f %10.3f %8.2f\n" "$1" "$2" "$3" "$(python3 -c "print($2/$3)")"
}

qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse src.raw src.vmdk
sync

a=$(best "$V" disk convert --type monolithicSparse src.raw out.vmdk)
b=$(best qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse src.raw out.vmdk)
row "raw -> monolithicSparse" "$a" "$b"

a=$(best "$V" disk convert --type raw src.vmdk out.raw)
b=$(best qemu-img convert -f vmdk -O raw src.vmdk out.raw)
row "monolithicSparse -> raw" "$a" "$b"

a=$(best "$V" disk convert --type streamOptimized src.raw out.vmdk)
b=$(best qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw out.vmdk)
row "raw -> streamOptimized" "$a" "$b"

# change tracking cost: the same 1 GiB of writes into a flat disk, on vs off
head -c $((1 << 30)) src.raw > w.bin
"$V" disk create --type monolithicFlat --size 1G t-off.vmdk 2>/dev/null || true
"$V" disk create --type monolithicFlat --size 1G --ctk t-on.vmdk 2>/dev/null || true
# (stdin is opened anew for every run: sh -c)
off=$(best sh -c "\"$V\" disk write t-off.vmdk --offset 0 < w.bin")
on=$(best sh -c "\"$V\" disk write t-on.vmdk --offset 0 < w.bin")
printf "%-40s %10.3f %10.3f %8.2f   (ctk on / off; target <= 1.05)\n" \
  "write 1 GiB, change tracking on vs off" "$on" "$off" "$(python3 -c "print($on/$off)")"
