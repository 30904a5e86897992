#!/bin/bash
# Build the libFuzzer targets with clang and run each for N seconds
# (default 60), starting from the stored corpus.  New crashes are left in
# fuzz/crashes/; copy the input into fuzz/corpus/TARGET/ once fixed.
set -euo pipefail
SECS=${1:-60}
cd "$(dirname "$0")/.."
[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
ninja -C build-fuzz >/dev/null
mkdir -p fuzz/crashes
status=0
for t in fuzz-vmdk-desc fuzz-vdisk-open fuzz-ctk fuzz-vmx fuzz-vmsd; do
  work=$(mktemp -d /tmp/vmback-fuzz-corpus.XXXXXX)
  cp fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  echo "== $t for ${SECS}s"
  if ! build-fuzz/$t -max_total_time="$SECS" -max_len=262144 -rss_limit_mb=2048 \
        -artifact_prefix=fuzz/crashes/$t- "$work" 2>&1 | tail -3; then
    status=1
  fi
  rm -rf "$work"
done
exit $status
