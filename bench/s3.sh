#!/bin/bash
# Backup of one disk image into a local repository and into an S3
# repository (a real single-node Ceph RGW on this machine, memstore OSD,
# tests/s3/ceph-fixture.sh), and restic's backup of the same image to the
# same RGW, same run; prints the times and the ratios (targets: S3/local
# <= 1.5, vmback/restic to S3 <= 0.5).
#
#   bench/s3.sh [BUILD] [SIZE_MIB]      (default: build, 512)
#
# The image is SIZE_MIB of random (incompressible) data, so every chunk is
# stored: the worst case for the network path.  Needs root and the Ceph
# packages (scripts/install-deps).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
MIB=${2:-512}
V=$BUILD/vmback
W=$(mktemp -d /tmp/vmback-bench-s3.XXXXXX)
cleanup () { "$ROOT/tests/s3/ceph-fixture.sh" stop "$W/ceph" || true; rm -rf "$W"; }
trap cleanup EXIT
CEPH_FIXTURE_MEMSTORE_BYTES=$(( (MIB * 4 + 1024) << 20 )) "$ROOT/tests/s3/ceph-fixture.sh" start "$W/ceph"
. "$W/ceph/env"
head -c $((MIB << 20)) /dev/urandom > "$W/disk.raw"

secs () { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { print b - a }'; }
div () { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
"$V" -q repo init "$W/local"
"$V" -q repo init "s3://bench/repo"
sync
t_local=$(secs "$V" -q backup --repo "$W/local" "$W/disk.raw")
t_s3=$(secs "$V" -q backup --repo s3://bench/repo "$W/disk.raw")
t_s3_again=$(secs "$V" -q backup --repo s3://bench/repo "$W/disk.raw")
t_restore=$(secs "$V" -q restore --repo s3://bench/repo disk@latest "$W/restored.raw")
cmp "$W/disk.raw" "$W/restored.raw"
t_restic=NA
if command -v restic > /dev/null; then
  export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$W/restic-cache
  restic -q -r "s3:$AWS_ENDPOINT_URL/restic" init --repository-version 2 > /dev/null
  t_restic=$(secs restic -q -r "s3:$AWS_ENDPOINT_URL/restic" backup --compression auto "$W/disk.raw")
fi
printf 'image: %d MiB of random data, chunk size 1 MiB, %s\n' "$MIB" "$(nproc) CPUs"
printf '%-38s %8.2f s  %7.1f MiB/s\n' "backup to a local repository" "$t_local" "$(div "$MIB" "$t_local")"
printf '%-38s %8.2f s  %7.1f MiB/s\n' "backup to S3 (Ceph RGW, loopback)" "$t_s3" "$(div "$MIB" "$t_s3")"
printf '%-38s %8.2f s  %7.1f MiB/s\n' "again to S3 (all chunks present)" "$t_s3_again" "$(div "$MIB" "$t_s3_again")"
printf '%-38s %8.2f s  %7.1f MiB/s\n' "restore from S3" "$t_restore" "$(div "$MIB" "$t_restore")"
printf 'S3 / local backup time: %.2f\n' "$(div "$t_s3" "$t_local")"
if [ "$t_restic" != NA ]; then
  printf '%-38s %8.2f s  %7.1f MiB/s\n' "restic backup to S3 (same RGW)" "$t_restic" "$(div "$MIB" "$t_restic")"
  printf 'vmback / restic backup time to S3: %.2f\n' "$(div "$t_s3" "$t_restic")"
else
  echo "restic: not installed (NOT MEASURED)"
fi
