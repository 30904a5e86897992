#!/bin/bash
# Backup, incremental and restore throughput and memory of vmback, side by side
# with borg, restic and a plain `zstd -1 -T2` of the image (compression floor),
# all in one run on the same bytes:
#   input: a 2 GiB ext4 image holding ~1.1 GB of real files (copied from /usr),
#          cached in $BENCH_DIR between runs;
#   (1) first full backup   vmback (monolithicSparse .vmdk with --ctk) vs
#                           borg / restic (the raw image file) vs zstd floor
#   (2) 200 scattered 100 KiB random writes (~1%), applied identically to the
#       .vmdk (vmback disk write, tracked by CBT) and the raw file (dd), then
#       the second backup of each tool
#   (3) full restore of the latest point (vmback restore to raw, borg extract,
#       restic restore), and the `sync` after each (vmback's restore is
#       durable when it exits, the others' data is still in the page cache)
#   (4) peak RSS of vmback backup for the 2 GiB disk and for a 64 GiB sparse
#       disk holding the same data, and their time ratio
# Prints seconds, ratios against vmback's targets and PASS/FAIL.  Every
# restore is compared byte for byte with the source (a mismatch is reported).
#
# usage: bench/backup.sh [BUILD]          (BUILD: vmback build dir, default build)
# env:   BENCH_DIR  cache/work dir (default /var/tmp/vmback-bench)
#        RUNS       repeat the whole sequence N times, keep the best time (1)
#        DATA_MB    MB of files to copy into the image (1100)
# The last run's work directory ($BENCH_DIR/r, ~6 GB) is kept for inspection.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
V="$(cd "$BUILD" && pwd)/vmback"
W=${BENCH_DIR:-/var/tmp/vmback-bench}
RUNS=${RUNS:-1}
export DATA_MB=${DATA_MB:-1100}
[ -x "$V" ] || { echo "no vmback binary at $V" >&2; exit 1; }
mkdir -p "$W"
cd "$W"

have () { command -v "$1" > /dev/null 2>&1; }
log () { echo "[$(date +%T)] $*" >&2; }

# ---------------------------------------------------------------- input image
"$HERE/image.sh" "$W"

DATA_BYTES=$(du -B1 base.raw | cut -f1)
log "base.raw: $(stat -c %s base.raw) bytes, $DATA_BYTES allocated"

# ---------------------------------------------------------------- helpers
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export RESTIC_PASSWORD=bench
RESTIC_COMP=()
if have restic && restic help backup 2>/dev/null | grep -q -- '--compression'; then
  RESTIC_COMP=(--compression auto)
  RESTIC_INIT=(--repository-version 2)
else
  RESTIC_INIT=()
fi

declare -A T CPU RSS SZ   # best wall s, least CPU s, peak RSS KiB, repo bytes per key
lt () { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
MISMATCH=()

# run KEY CMD...: time CMD (wall), record its CPU seconds (user+sys) and peak
# RSS; of RUNS repetitions keep the best wall time and the least CPU time
run () {
  local key=$1; shift
  local t0 t1 dt cpu rss
  t0=$(date +%s.%N)
  if ! /usr/bin/time -o rss.tmp -f '%M %U %S' "$@" > out.log 2> err.log; then
    echo "FAILED: $key: $*" >&2
    tail -5 err.log >&2
    T[$key]=ERR
    return 0
  fi
  t1=$(date +%s.%N)
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  read -r rss u sy < <(tail -1 rss.tmp)
  cpu=$(awk -v a="$u" -v b="$sy" 'BEGIN { printf "%.2f", a + b }')
  if [ -z "${T[$key]:-}" ] || [ "${T[$key]}" = ERR ] || lt "$dt" "${T[$key]}"; then
    T[$key]=$dt
  fi
  if [ -z "${CPU[$key]:-}" ] || lt "$cpu" "${CPU[$key]}"; then
    CPU[$key]=$cpu
  fi
  if [ -z "${RSS[$key]:-}" ] || [ "$rss" -gt "${RSS[$key]}" ]; then
    RSS[$key]=$rss
  fi
  log "$key: ${dt}s wall, ${cpu}s CPU, peak RSS ${rss} KiB, load $(cut -d' ' -f1 /proc/loadavg)"
}

# same KEY FILE: compare a restored file with the expected image
same () {
  if ! cmp -s "$2" cur.raw; then
    MISMATCH+=("$1: restored bytes differ from the source image")
    log "MISMATCH: $1"
  fi
}

# warm: read a file so every tool starts with it in the page cache
warm () { cat "$@" > /dev/null; }

# ---------------------------------------------------------------- the runs
for run_i in $(seq "$RUNS"); do
  log "=== run $run_i/$RUNS"
  rm -rf r && mkdir r && cd r
  cp --sparse=always ../base.raw cur.raw
  "$V" disk convert --ctk cur.raw cur.vmdk > /dev/null
  sync

  # (1) first full backup
  warm cur.raw cur.vmdk
  "$V" -q repo init vrepo > /dev/null
  run v_full "$V" -q backup --repo vrepo cur.vmdk
  if have borg; then
    export BORG_BASE_DIR=$PWD/borgbase
    borg init -e none brepo > /dev/null 2>&1
    run b_full borg create --compression zstd,1 brepo::p1 cur.raw
  fi
  if have restic; then
    export RESTIC_CACHE_DIR=$PWD/resticcache
    restic init -q "${RESTIC_INIT[@]}" -r rrepo > /dev/null
    run r_full restic -q -r rrepo backup "${RESTIC_COMP[@]}" cur.raw
  fi
  run z_full zstd -q -f -1 -T2 cur.raw -o floor.zst
  SZ[zstd]=$(stat -c %s floor.zst); rm -f floor.zst

  # (2) the same 200 x 100 KiB writes into the .vmdk and the raw file
  i=0
  while read -r off; do
    dd if=../changes.bin bs=100K skip=$i count=1 status=none |
      "$V" disk write cur.vmdk --offset "$off" > /dev/null
    dd if=../changes.bin of=cur.raw bs=100K skip=$i count=1 seek="$off" \
      oflag=seek_bytes conv=notrunc status=none
    i=$((i + 1))
  done < ../changes.txt
  "$V" disk read cur.vmdk | cmp -s - cur.raw ||
    MISMATCH+=("vmback disk write: .vmdk content differs from the raw image after the writes")
  sync
  warm cur.raw cur.vmdk
  run v_incr "$V" -q backup --repo vrepo cur.vmdk
  have borg && run b_incr borg create --compression zstd,1 brepo::p2 cur.raw
  have restic && run r_incr restic -q -r rrepo backup "${RESTIC_COMP[@]}" cur.raw
  SZ[vmback]=$(du -sb vrepo | cut -f1)
  have borg && SZ[borg]=$(du -sb brepo | cut -f1)
  have restic && SZ[restic]=$(du -sb rrepo | cut -f1)

  # (3) full restore of the latest point
  # X_sync: the `sync` right after each restore, i.e. the time until the
  # restored data is on disk (vmback fsyncs before it exits; borg and
  # restic leave their data in the page cache)
  sync
  run v_rest "$V" -q restore --repo vrepo latest v.raw
  run v_sync sync
  same "vmback restore" v.raw; rm -f v.raw
  if have borg; then
    rm -rf bx && mkdir bx && cd bx
    sync
    run b_rest borg extract ../brepo::p2
    run b_sync sync
    cd .. ; same "borg extract" bx/cur.raw; rm -rf bx
  fi
  if have restic; then
    sync
    run r_rest restic -q -r rrepo restore latest --target rx
    run r_sync sync
    same "restic restore" rx/cur.raw; rm -rf rx
  fi

  # (4) 64 GiB sparse disk holding the same data: convert, then grow
  cp --sparse=always ../base.raw big.raw
  "$V" disk convert --ctk big.raw big.vmdk > /dev/null
  "$V" disk grow big.vmdk --size 64G > /dev/null
  rm -f big.raw
  sync
  "$V" -q repo init vrepo2 > /dev/null
  "$V" -q repo init vrepo64 > /dev/null
  warm ../base.raw cur.vmdk big.vmdk
  # the 2 GiB one again on the pristine data, so both read the same bytes
  cp --sparse=always ../base.raw small.raw
  "$V" disk convert --ctk small.raw small.vmdk > /dev/null
  rm -f small.raw
  warm small.vmdk
  run v_2g "$V" -q backup --repo vrepo2 small.vmdk
  run v_64g "$V" -q backup --repo vrepo64 big.vmdk

  cd ..
  [ "$RUNS" -gt "$run_i" ] && rm -rf r
done

# ---------------------------------------------------------------- the table
ver () { "$@" 2>/dev/null | head -1 || echo missing; }
isnum () { [[ "${1:-}" =~ ^[0-9.]+$ ]]; }
t () { echo "${T[$1]:-MISSING}"; }
c () { echo "${CPU[$1]:-MISSING}"; }
# tsum A B: best wall time of A plus that of B
tsum () { isnum "${T[$1]:-}" && isnum "${T[$2]:-}" && awk -v a="${T[$1]}" -v b="${T[$2]}" 'BEGIN { printf "%.3f", a + b }' || echo MISSING; }
mib () { isnum "${1:-}" && awk -v a="$1" 'BEGIN { printf "%.0f", a / 1048576 }' || echo MISSING; }
kmib () { isnum "${1:-}" && awk -v a="$1" 'BEGIN { printf "%.1f", a / 1024 }' || echo MISSING; }
row () { printf "%-30s %10s %10s %10s %10s\n" "$@"; }
echo
echo "vmback backup benchmark  $(date -u +%Y-%m-%dT%H:%MZ)  $(uname -m), $(nproc) CPUs," \
     "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)," \
     "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: 2 GiB ext4 image, $DATA_BYTES bytes allocated; change: 200 x 100 KiB random writes"
echo "tools: vmback ($("$V" --version 2>/dev/null || echo ?), repo defaults);" \
     "$(have borg && ver borg --version || echo 'borg: MISSING') (-e none, zstd,1);" \
     "$(have restic && ver restic version | cut -d' ' -f1-2 || echo 'restic: MISSING')" \
     "(${RESTIC_COMP[*]:-no compression support}); $(ver zstd -V | sed 's/^[*]* *//; s/, by .*//')"
echo "best of $RUNS run(s); page cache warm for every tool; wall = elapsed, CPU = user+sys"
echo
row "wall seconds" "vmback" "borg" "restic" "zstd -1 -T2"
row "(1) first full backup" "$(t v_full)" "$(t b_full)" "$(t r_full)" "$(t z_full)"
row "(2) backup after 1% change" "$(t v_incr)" "$(t b_incr)" "$(t r_incr)" "-"
row "(3) full restore (latest)" "$(t v_rest)" "$(t b_rest)" "$(t r_rest)" "-"
row "(3) restore, then sync" "$(tsum v_rest v_sync)" "$(tsum b_rest b_sync)" "$(tsum r_rest r_sync)" "-"
echo
row "CPU seconds (user+sys)" "vmback" "borg" "restic" "zstd -1 -T2"
row "(1) first full backup" "$(c v_full)" "$(c b_full)" "$(c r_full)" "$(c z_full)"
row "(2) backup after 1% change" "$(c v_incr)" "$(c b_incr)" "$(c r_incr)" "-"
row "(3) full restore (latest)" "$(c v_rest)" "$(c b_rest)" "$(c r_rest)" "-"
echo
row "repo size after (2), MiB" "$(mib "${SZ[vmback]:-}")" "$(mib "${SZ[borg]:-}")" \
  "$(mib "${SZ[restic]:-}")" "$(mib "${SZ[zstd]:-}")"
row "peak RSS of (1), MiB" "$(kmib "${RSS[v_full]:-}")" "$(kmib "${RSS[b_full]:-}")" \
  "$(kmib "${RSS[r_full]:-}")" "$(kmib "${RSS[z_full]:-}")"
echo
echo "(4) vmback backup into a fresh repository:"
printf "    %-26s %10s s wall %8s s CPU %8s MiB peak RSS\n" \
  "2 GiB monolithicSparse" "$(t v_2g)" "$(c v_2g)" "$(kmib "${RSS[v_2g]:-}")" \
  "64 GiB monolithicSparse" "$(t v_64g)" "$(c v_64g)" "$(kmib "${RSS[v_64g]:-}")"
echo

# check NAME A B LIMIT: ratio A/B against the target LIMIT, PASS/FAIL
FAILS=0
check () {
  local name=$1 a=$2 b=$3 lim=$4 r verdict
  if ! isnum "$a" || ! isnum "$b"; then
    printf "%-40s %8s %8s  %s\n" "$name" "n/a" "<= $lim" "NOT MEASURED ($a / $b)"
    FAILS=$((FAILS + 1))
    return
  fi
  r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
  if awk -v r="$r" -v l="$lim" 'BEGIN { exit !(r <= l) }'; then verdict=PASS
  else verdict=FAIL; FAILS=$((FAILS + 1)); fi
  printf "%-40s %8s %8s  %s\n" "$name" "$r" "<= $lim" "$verdict"
}
# info NAME A B: a ratio without a target
info () {
  local r=n/a
  isnum "$2" && isnum "$3" && r=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.3f", a / b }')
  printf "%-40s %8s %8s  %s\n" "$1" "$r" "-" "(info)"
}
printf "%-40s %8s %8s  %s\n" "target (wall-time ratios)" "ratio" "limit" "verdict"
check "full: vmback / borg"                  "$(t v_full)" "$(t b_full)" 0.5
check "full: vmback / zstd floor"            "$(t v_full)" "$(t z_full)" 1.2
check "incremental: vmback / borg 2nd run"   "$(t v_incr)" "$(t b_incr)" 0.15
check "restore: vmback / borg extract"       "$(t v_rest)" "$(t b_rest)" 0.5
check "RSS 2 GiB backup / 100 MiB"           "${RSS[v_2g]:-MISSING}" 102400 0.999
check "RSS 64 GiB backup / 100 MiB"          "${RSS[v_64g]:-MISSING}" 102400 0.999
check "time 64 GiB / 2 GiB backup"           "$(t v_64g)" "$(t v_2g)" 1.3
info  "full: vmback / restic"                "$(t v_full)" "$(t r_full)"
info  "incremental: vmback / restic 2nd run" "$(t v_incr)" "$(t r_incr)"
info  "restore: vmback / restic restore"     "$(t v_rest)" "$(t r_rest)"
info  "restore+sync: vmback / borg"          "$(tsum v_rest v_sync)" "$(tsum b_rest b_sync)"
info  "restore+sync: vmback / restic"        "$(tsum v_rest v_sync)" "$(tsum r_rest r_sync)"
info  "CPU full: vmback / borg"              "$(c v_full)" "$(c b_full)"
info  "CPU full: vmback / zstd floor"        "$(c v_full)" "$(c z_full)"
info  "CPU incremental: vmback / borg"       "$(c v_incr)" "$(c b_incr)"
info  "CPU restore: vmback / borg"           "$(c v_rest)" "$(c b_rest)"
info  "CPU 64 GiB / 2 GiB backup"            "$(c v_64g)" "$(c v_2g)"
if [ ${#MISMATCH[@]} -gt 0 ]; then
  echo
  for m in "${MISMATCH[@]}"; do echo "WRONG: $m"; done
  FAILS=$((FAILS + 1))
fi
echo
echo "$FAILS target(s) failed or not measured"
