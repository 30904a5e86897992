#!/bin/bash
# Snapshot delete (merge) throughput, vmback vs qemu-img, in one run:
# a VM disk of 4 GiB (monolithicSparse base holding 1 GiB) with a
# snapshot whose delta holds 1 GiB of changes in 64 MiB runs.  vmback
# deletes the snapshot (`vm snapshot delete`: merge into the base, then
# remove the delta); qemu-img commits the same chain (`commit -d`: merge
# only, the delta stays).  Each run starts from a fresh copy of the
# chain; best-of-N wall times and the ratio vmback / qemu-img are printed
# (target <= 1.3).  usage: bench/snapshot.sh [BUILD] [RUNS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-3}
V="$(cd "$BUILD" && pwd)/vmback"
W=${BENCH_DIR:-/var/tmp/vmback-bench}/snapshot
rm -rf "$W"
mkdir -p "$W"
cd "$W"
for c in qemu-img bc; do command -v $c >/dev/null || { echo "$c is needed"; exit 1; }; done

echo "making the VM (4 GiB disk, 1 GiB base data, 1 GiB in the delta)..." >&2
head -c $((64 << 20)) /dev/urandom > blob
"$V" -q vm create tpl/vm.vmx --disk 4G
for i in $(seq 0 15); do                       # base data: every 4th 64 MiB run
  "$V" disk write tpl/vm.vmdk --offset $(( i * 256 << 20 )) < blob
done
"$V" -q vm snapshot create tpl/vm.vmx snap
for i in $(seq 0 15); do                       # delta: other runs, half overlapping
  "$V" disk write tpl/vm-000001.vmdk --offset $(( (i * 256 + (i % 2) * 128) << 20 )) < blob
done
du -sh tpl >&2

t_vm=999999 t_q=999999
for r in $(seq 1 "$RUNS"); do
  rm -rf a b
  cp -a --sparse=always tpl a
  cp -a --sparse=always tpl b
  sync
  s=$(date +%s.%N)
  "$V" -q vm snapshot delete a/vm.vmx snap
  e=$(date +%s.%N)
  t=$(echo "$e - $s" | bc)
  t_vm=$(echo "if ($t < $t_vm) $t else $t_vm" | bc)
  s=$(date +%s.%N)
  qemu-img commit -q -d -f vmdk b/vm-000001.vmdk
  e=$(date +%s.%N)
  t=$(echo "$e - $s" | bc)
  t_q=$(echo "if ($t < $t_q) $t else $t_q" | bc)
  # both merged images read the same
  qemu-img compare -q -f vmdk -F vmdk a/vm.vmdk b/vm.vmdk
done
rm -rf a b
ratio=$(echo "scale=3; $t_vm / $t_q" | bc)
ok=$(echo "$ratio <= 1.3" | bc)
printf "snapshot delete, 1 GiB delta on a 4 GiB disk (best of %s)\n" "$RUNS"
printf "  vmback vm snapshot delete  %8.3f s  %6.0f MiB/s\n" "$t_vm" "$(echo "1024 / $t_vm" | bc -l)"
printf "  qemu-img commit            %8.3f s  %6.0f MiB/s\n" "$t_q" "$(echo "1024 / $t_q" | bc -l)"
printf "  ratio vmback/qemu-img      %8.3f  (target <= 1.3: %s)\n" "$ratio" "$([ "$ok" = 1 ] && echo PASS || echo FAIL)"
