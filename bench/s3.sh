#!/bin/bash
# vmback with its repository on S3 (a real single-node Ceph RGW started on
# this machine by tests/s3/ceph-fixture.sh, bluestore OSD on a sparse file)
# against the same on a local directory and against restic on the same RGW,
# in one run, on the input of bench/backup.sh (a 2 GiB ext4 image holding
# ~1.1 GB of files from /usr, as a monolithicSparse .vmdk with change
# tracking):
#   (1) full backup: vmback to a local repository, vmback to S3, restic
#       (--compression auto) of the raw image to S3
#   (2) 200 scattered 100 KiB writes (1%), then a CBT incremental to S3
#   (3) repo copy local -> a new S3 repository: first the full point (every
#       chunk missing in DST), then the incremental (most chunks present):
#       the cost per chunk sent should not depend on how many were present
#   (4) restore of the latest point from S3, compared byte for byte
#   (5) peak RSS of every vmback command that talks to S3
#   (6) the Ceph daemons' CPU for the same 160 MiB PUT as 400 objects of
#       400 KiB and as 10 objects of 16 MiB (what each object costs)
# Prints the times, the client's and Ceph's CPU of (1) and (2), the ratios
# against the targets and PASS/FAIL.
#
#   bench/s3.sh [BUILD]
# env: BENCH_DIR (input cache, default /var/tmp/vmback-bench), RUNS (repeat,
#      keep each measurement's best; 1), CEPH_FIXTURE_STORE (bluestore).
# Needs root, the Ceph packages (scripts/install-deps) and restic.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
V=$BUILD/vmback
RUNS=${RUNS:-1}
IN=${BENCH_DIR:-/var/tmp/vmback-bench}
[ -x "$V" ] || { echo "no vmback binary at $V" >&2; exit 1; }
"$ROOT/bench/image.sh" "$IN"
W=$(mktemp -d /var/tmp/vmback-bench-s3.XXXXXX)
cleanup () { "$ROOT/tests/s3/ceph-fixture.sh" stop "$W/ceph" || true; rm -rf "$W"; }
trap cleanup EXIT
log () { echo "[$(date +%T)] $*" >&2; }

log "starting Ceph (${CEPH_FIXTURE_STORE:-bluestore})..."
CEPH_FIXTURE_STORE=${CEPH_FIXTURE_STORE:-bluestore} \
  CEPH_FIXTURE_MEMSTORE_BYTES=$(( (RUNS * 2048 + 2048) << 20 )) \
  "$ROOT/tests/s3/ceph-fixture.sh" start "$W/ceph"
. "$W/ceph/env"
cd "$W"

declare -A T      # best wall seconds per measurement
declare -A CCPU   # client CPU seconds (user+sys) of the best run per measurement
declare -A SCPU   # Ceph daemons' CPU seconds during the best run
RSS_MAX=0         # KiB, over every vmback command that talks to S3
FAILED=()
HZ=$(getconf CLK_TCK)

# ceph_ticks: CPU ticks (user+sys) used so far by the fixture's daemons
ceph_ticks () {
  local name pid sum=0 u s
  while read -r name pid; do
    read -r u s < <(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null || echo 0 0)
    sum=$((sum + u + s))
  done < "$W/ceph/pids"
  echo "$sum"
}

# run KEY CMD...: time CMD; keep the best wall time under KEY, with the
# client's and the Ceph daemons' CPU of that run; vmback's peak RSS goes
# into RSS_MAX; CMD's stdout is left in out.log
run () {
  local key=$1; shift
  local c0 c1
  c0=$(ceph_ticks)
  if ! /usr/bin/time -o time.tmp -f '%e %M %U %S' "$@" > out.log 2> err.log; then
    echo "FAILED: $key: $*" >&2; tail -5 err.log >&2; FAILED+=("$key"); return 0
  fi
  c1=$(ceph_ticks)
  local t rss us sy
  read -r t rss us sy < <(tail -1 time.tmp)
  if [ -z "${T[$key]:-}" ] || awk -v a="$t" -v b="${T[$key]}" 'BEGIN { exit !(a < b) }'; then
    T[$key]=$t
    CCPU[$key]=$(awk -v u="$us" -v s="$sy" 'BEGIN { printf "%.2f", u + s }')
    SCPU[$key]=$(awk -v d=$((c1 - c0)) -v hz="$HZ" 'BEGIN { printf "%.2f", d / hz }')
  fi
  if [ "$1" = "$V" ] && [ "$rss" -gt "$RSS_MAX" ]; then RSS_MAX=$rss; fi
}
# s3_objects URL: objects holding the chunks of a repository (chunk
# objects, or packs)
s3_objects () { "$V" --json repo info --repo "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunk-objects"])'; }
declare -A OBJ
jget () { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' out.log "$1"; }

export RESTIC_PASSWORD=bench
declare -A SENT
for i in $(seq "$RUNS"); do
  log "=== run $i/$RUNS"
  rm -rf r && mkdir r
  cp --sparse=always "$IN/base.raw" r/cur.raw
  "$V" disk convert --ctk r/cur.raw r/cur.vmdk > /dev/null
  sync
  cat r/cur.raw r/cur.vmdk > /dev/null
  "$V" -q repo init r/local
  "$V" -q repo init "s3://bench$i/vmback"
  run local_full "$V" -q backup --repo r/local r/cur.vmdk
  run s3_full "$V" --json backup --repo "s3://bench$i/vmback" r/cur.vmdk
  OBJ[s3_full]=$(s3_objects "s3://bench$i/vmback")
  OBJ0=${OBJ[s3_full]}
  if command -v restic > /dev/null; then
    export RESTIC_CACHE_DIR=$W/r/restic-cache
    restic -q -r "s3:$AWS_ENDPOINT_URL/bench$i-restic" init --repository-version 2 > /dev/null
    run restic_full restic -q -r "s3:$AWS_ENDPOINT_URL/bench$i-restic" backup \
      --compression auto r/cur.raw
  fi

  log "200 x 100 KiB writes"
  n=0
  while read -r off; do
    dd if="$IN/changes.bin" bs=100K skip=$n count=1 status=none |
      "$V" disk write r/cur.vmdk --offset "$off" > /dev/null
    n=$((n + 1))
  done < "$IN/changes.txt"
  sync
  run s3_incr "$V" --json backup --repo "s3://bench$i/vmback" r/cur.vmdk
  OBJ[s3_incr]=$(( $(s3_objects "s3://bench$i/vmback") - OBJ0 ))
  "$V" -q backup --repo r/local r/cur.vmdk

  mapfile -t P < <("$V" list --repo r/local --json |
    python3 -c 'import json,sys; print("\n".join(p["id"] for p in json.load(sys.stdin)["points"]))')
  "$V" -q repo init "s3://bench$i/copy"
  run copy_all "$V" repo copy --json r/local "s3://bench$i/copy" "${P[0]}"
  SENT[all]=$(jget chunks-sent)
  run copy_part "$V" repo copy --json r/local "s3://bench$i/copy" "${P[1]}"
  SENT[part]=$(jget chunks-sent); SENT[part_present]=$(jget chunks-present)

  run s3_restore "$V" -q restore --repo "s3://bench$i/vmback" latest r/out.raw
  "$V" disk read r/cur.vmdk | cmp -s - r/out.raw || FAILED+=("restore from S3 differs from the disk")
done

# ---- (6) what Ceph spends per object: the same 160 MiB PUT as 400
# objects of 400 KiB (the size of vmback's chunk objects here) and as 10
# objects of 16 MiB, by one curl keeping 8 connections busy
put_many () { # N SIZE -> Ceph CPU ticks used
  local n=$1 size=$2 c0 c1 sha i
  local bucket=cost$size
  head -c "$size" /dev/urandom > obj.bin
  sha=$(sha256sum obj.bin | cut -d' ' -f1)
  local sig=(--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" --aws-sigv4 "aws:amz:$AWS_REGION:s3")
  curl -sf "${sig[@]}" -H "x-amz-content-sha256: $(sha256sum < /dev/null | cut -d' ' -f1)" \
    -X PUT "$AWS_ENDPOINT_URL/$bucket" > /dev/null
  local args=()
  for i in $(seq "$n"); do args+=(-T obj.bin "$AWS_ENDPOINT_URL/$bucket/o$i"); done
  c0=$(ceph_ticks)
  curl -sfS -o /dev/null --no-progress-meter --parallel --parallel-max 8 "${sig[@]}" \
    -H "x-amz-content-sha256: $sha" "${args[@]}"
  c1=$(ceph_ticks)
  echo $((c1 - c0))
}
log "Ceph CPU per object..."
PUT_SMALL=$(put_many 400 409600)
PUT_LARGE=$(put_many 10 16777216)

div () { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
MIB=$(( $(du -B1 "$IN/base.raw" | cut -f1) >> 20 ))
echo
echo "vmback S3 benchmark  $(date -u +%FT%RZ)  $(uname -m), $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: 2 GiB ext4 image, $MIB MiB allocated, as monolithicSparse .vmdk with change tracking; 1 MiB chunks, zstd 1"
echo "S3: Ceph RGW $(radosgw --version 2>/dev/null | awk '{print $3}') on 127.0.0.1, ${CEPH_FIXTURE_STORE:-bluestore} OSD, same machine; $(restic version 2>/dev/null | cut -d' ' -f1-2)"
echo "best of $RUNS run(s)"
echo
row () { printf '%-44s %8s s\n' "$1" "${T[$2]:-NA}"; }
row "(1) full backup, vmback to local directory" local_full
row "(1) full backup, vmback to S3" s3_full
row "(1) full backup, restic to S3" restic_full
row "(2) CBT incremental (1% changed), to S3" s3_incr
row "(3) repo copy, all ${SENT[all]} chunks missing" copy_all
row "(3) repo copy, ${SENT[part]} missing, ${SENT[part_present]} present" copy_part
row "(4) restore from S3 (info)" s3_restore
printf '%-44s %8.1f MiB\n' "(5) peak RSS of vmback with S3" "$(awk -v k="$RSS_MAX" 'BEGIN { print k / 1024 }')"
echo
echo "where the CPU goes (2 CPUs are shared by the client and Ceph):"
printf '%-44s %8s %10s %8s %8s\n' "" "wall s" "client CPU" "Ceph CPU" "objects"
cpu_row () { printf '%-44s %8s %10s %8s %8s\n' "$1" "${T[$2]:-NA}" "${CCPU[$2]:-NA}" "${SCPU[$2]:-NA}" "${3:--}"; }
cpu_row "(1) vmback to local directory" local_full
cpu_row "(1) vmback to S3" s3_full "${OBJ[s3_full]:-}"
cpu_row "(1) restic to S3" restic_full
cpu_row "(2) vmback CBT incremental to S3" s3_incr "${OBJ[s3_incr]:-}"
printf '%-44s %8s %10s %8s %8s\n' "(6) 160 MiB as 400 objects of 400 KiB" - - \
  "$(awk -v t="$PUT_SMALL" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')" 400
printf '%-44s %8s %10s %8s %8s\n' "(6) 160 MiB as 10 objects of 16 MiB" - - \
  "$(awk -v t="$PUT_LARGE" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')" 10
echo
per_all=$(div "${T[copy_all]}" "${SENT[all]}")
per_part=$(div "${T[copy_part]}" "$(( SENT[part] > 0 ? SENT[part] : 1 ))")
verdict () { # NAME VALUE OP LIMIT
  local ok
  ok=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN { print (op == "<=" ? v <= l : v >= l) ? "PASS" : "FAIL" }')
  printf '%-44s %7s %4s %-5s %s\n' "$1" "$2" "$3" "$4" "$ok"
}
printf '%-44s %7s %10s %s\n' "target" "ratio" "limit" "verdict"
verdict "full: S3 / local" "$(div "${T[s3_full]}" "${T[local_full]}")" "<=" 1.5
[ -n "${T[restic_full]:-}" ] && verdict "full to S3: vmback / restic" "$(div "${T[s3_full]}" "${T[restic_full]}")" "<=" 0.5
verdict "S3: incremental / full" "$(div "${T[s3_incr]}" "${T[s3_full]}")" "<=" 0.15
verdict "copy: s per chunk sent, mostly-present / all" "$(div "$per_part" "$per_all")" "<=" 1.5
verdict "peak RSS / 150 MiB" "$(div "$RSS_MAX" 153600)" "<=" 1.0
for f in "${FAILED[@]}"; do echo "WRONG: $f"; done
[ ${#FAILED[@]} -eq 0 ]
