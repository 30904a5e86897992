#!/bin/bash
# Whole-VM flows, measured side by side in one run:
#  1. transports: a full backup of the demo VM (a 1 GiB vmfs disk and a
#     512 MiB hosted sparse one, 768 MiB of data) read through san, nbd
#     and nbdssl, each into a fresh repository; throughput ratios
#     nbd/san and nbdssl/san (target nbd >= 0.8).
#  2. instant recovery: `vmback serve` of the point vs `nbdkit file` of
#     a raw restore of the same disk, both read whole with nbdcopy
#     (target serve >= 0.8 x nbdkit file), and once more from a serve
#     whose --cache holds the whole disk (decoded once, then from memory).
#  3. in-place restore after 1% of the VM changed vs a full restore of
#     the point to a new directory (target <= 0.1).
# Best of RUNS wall times.  usage: bench/vm.sh [BUILD] [RUNS]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-3}
V="$(cd "$BUILD" && pwd)/vmback"
W=${BENCH_DIR:-/var/tmp/vmback-bench}/vm
rm -rf "$W"
mkdir -p "$W"
cd "$W"
for c in bc nbdkit nbdcopy python3; do command -v $c >/dev/null || { echo "$c is needed"; exit 1; }; done
now () { date +%s.%N; }
min () { echo "if ($1 < $2) $1 else $2" | bc; }
cur () { echo "$(dirname "$1")/$(sed -n "s/^$2\.fileName = \"\(.*\)\"$/\1/p" "$1")"; }
pass () { [ "$(echo "$1" | bc)" = 1 ] && echo PASS || echo FAIL; }

echo "making the VM (1 GiB vmfs + 512 MiB sparse disk, 768 MiB of data)..." >&2
VMX=vm/demo.vmx
"$V" -q vm create $VMX --disk 1G:vmfs --disk 512M --ctk
# 64 MiB runs, each different: half random, half repetitive text (it
# compresses like real data and does not deduplicate)
blob () {
  python3 -c "
import random, sys
r = random.Random($1)
for i in range(128):
    t = b'vmback %06d %06d ' % ($1, i)
    sys.stdout.buffer.write(r.randbytes(1 << 19) if i % 2 else (t * 25000)[:1 << 19])"
}
for i in $(seq 0 7); do blob $i | "$V" disk write "$(cur $VMX scsi0:0)" --offset $(( i * 128 << 20 )); done
for i in 0 2 4 6; do blob $((100 + i)) | "$V" disk write "$(cur $VMX scsi0:1)" --offset $(( i * 64 << 20 )); done
DATA=$(( 768 << 20 ))

# ---- 1. transports
declare -A T
for t in san nbd nbdssl; do T[$t]=999999; done
for r in $(seq 1 "$RUNS"); do
  for t in san nbd nbdssl; do
    rm -rf repo-$t
    "$V" -q repo init repo-$t
    sync
    s=$(now)
    "$V" -q backup --repo repo-$t --transport $t $VMX
    e=$(now)
    T[$t]=$(min "$(echo "$e - $s" | bc)" "${T[$t]}")
  done
done
P=$("$V" --json list --repo repo-san | python3 -c "import json,sys; print(json.load(sys.stdin)['points'][-1]['id'])")

# ---- 2. serve vs nbdkit file
"$V" -q restore --repo repo-san "$P" disk0.raw --disk scsi0:0
serve_t=999999 file_t=999999
"$V" serve --repo repo-san "$P" --disk scsi0:0 --unix "$W/s.sock" > s.out 2> s.err &
SP=$!
nbdkit -f -U "$W/f.sock" -P "$W/f.pid" -r file disk0.raw &
trap 'kill $SP $(cat "$W/f.pid" 2>/dev/null) 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -s s.out ] && [ -S f.sock ] && break; sleep 0.1; done
for r in $(seq 1 "$RUNS"); do
  s=$(now); nbdcopy "nbd+unix:///?socket=$W/s.sock" null:; e=$(now)
  serve_t=$(min "$(echo "$e - $s" | bc)" "$serve_t")
  s=$(now); nbdcopy "nbd+unix:///?socket=$W/f.sock" null:; e=$(now)
  file_t=$(min "$(echo "$e - $s" | bc)" "$file_t")
done
kill $SP; wait $SP 2>/dev/null || true
# the same reads from a serve whose cache holds the whole disk, filled by a
# first read: decoded data in memory, as the page cache holds the raw file
# for nbdkit file (not a target: it shows what decoding costs)
rm -f s.out
"$V" serve --repo repo-san "$P" --disk scsi0:0 --unix "$W/c.sock" --cache 1G > s.out 2> s.err &
SP=$!
for i in $(seq 100); do [ -s s.out ] && break; sleep 0.1; done
nbdcopy "nbd+unix:///?socket=$W/c.sock" null:
warm_t=999999
for r in $(seq 1 "$RUNS"); do
  s=$(now); nbdcopy "nbd+unix:///?socket=$W/c.sock" null:; e=$(now)
  warm_t=$(min "$(echo "$e - $s" | bc)" "$warm_t")
done
kill $SP "$(cat f.pid)"; wait $SP 2>/dev/null || true
trap - EXIT

# ---- 3. in-place restore after 1% change vs a full restore
full_t=999999 inpl_t=999999
for r in $(seq 1 "$RUNS"); do
  rm -rf full
  sync
  s=$(now); "$V" -q restore --repo repo-san "$P" --to full; e=$(now)
  full_t=$(min "$(echo "$e - $s" | bc)" "$full_t")
  # the guest changes 1% of its 1.5 GiB: 15 runs of 1 MiB spread over both disks
  head -c $((1 << 20)) /dev/urandom > one
  for i in $(seq 0 9); do "$V" disk write "$(cur $VMX scsi0:0)" --offset $(( (i * 100 + 3) << 20 )) < one; done
  for i in $(seq 0 4); do "$V" disk write "$(cur $VMX scsi0:1)" --offset $(( (i * 100 + 5) << 20 )) < one; done
  sync
  s=$(now); "$V" -q restore --repo repo-san "$P" --in-place $VMX; e=$(now)
  inpl_t=$(min "$(echo "$e - $s" | bc)" "$inpl_t")
done
# the VM equals the point again
for k in scsi0:0 scsi0:1; do
  cmp <("$V" disk read "$(cur $VMX $k)") <("$V" disk read "$(cur full/demo.vmx $k)")
done

mib () { echo "$DATA / 1048576 / $1" | bc -l; }
r_nbd=$(echo "scale=3; ${T[san]} / ${T[nbd]}" | bc)
r_ssl=$(echo "scale=3; ${T[san]} / ${T[nbdssl]}" | bc)
r_srv=$(echo "scale=3; $file_t / $serve_t" | bc)
r_inp=$(echo "scale=3; $inpl_t / $full_t" | bc)
r_warm=$(echo "scale=3; $file_t / $warm_t" | bc)
printf "vmback VM flows (demo VM: 1.5 GiB of disks, 768 MiB of data; best of %s)\n" "$RUNS"
printf "  full backup via san       %8.3f s  %6.0f MiB/s of data\n" "${T[san]}" "$(mib "${T[san]}")"
printf "  full backup via nbd       %8.3f s  %6.0f MiB/s\n" "${T[nbd]}" "$(mib "${T[nbd]}")"
printf "  full backup via nbdssl    %8.3f s  %6.0f MiB/s\n" "${T[nbdssl]}" "$(mib "${T[nbdssl]}")"
printf "  ratio nbd/san throughput     %6.3f  (target >= 0.8: %s)\n" "$r_nbd" "$(pass "$r_nbd >= 0.8")"
printf "  ratio nbdssl/san throughput  %6.3f\n" "$r_ssl"
printf "  read 1 GiB: vmback serve  %8.3f s   nbdkit file (raw restore) %8.3f s\n" "$serve_t" "$file_t"
printf "  ratio serve/nbdkit file      %6.3f  (target >= 0.8: %s)\n" "$r_srv" "$(pass "$r_srv >= 0.8")"
printf "  read 1 GiB: serve --cache 1G %6.3f s   (disk held decoded; ratio to file %.3f, no target)\n" "$warm_t" "$r_warm"
printf "  restore: full --to        %8.3f s   --in-place after 1%% change %8.3f s\n" "$full_t" "$inpl_t"
printf "  ratio in-place/full          %6.3f  (target <= 0.1: %s)\n" "$r_inp" "$(pass "$r_inp <= 0.1")"
