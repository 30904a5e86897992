#!/bin/bash
# Build the libFuzzer targets with clang and run each, one after the
# other (one core), for N seconds starting from the stored corpus.
#   fuzz/run.sh [SECONDS] [TARGET...]        default 60 s, every target
#   fuzz/run.sh --reliability [TARGET...]    600 s each (or
#                     FUZZ_RELIABILITY_SECONDS), then the same table
#   FUZZ_BUILD=dir    build directory (default build-fuzz; configured with
#                     -Dfuzz=true and ASan+UBSan when missing)
#   FUZZ_MAX_LEN=N    largest input (default 262144)
# Prints one line per target: target | executions | crashes (from
# libFuzzer's -print_final_stats=1 "stat::number_of_executed_units").
# New crashes are left in fuzz/crashes/TARGET-*; copy the input into
# fuzz/corpus/TARGET/ once fixed (the corpus is replayed by every build).
# Exit status 1 when any target crashed, leaked or timed out.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=60
if [ "${1:-}" = "--reliability" ]; then
  SECS=${FUZZ_RELIABILITY_SECONDS:-600}
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  SECS=$1
  shift
fi
B=${FUZZ_BUILD:-build-fuzz}
MAXLEN=${FUZZ_MAX_LEN:-262144}
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in fuzz/fuzz-*.c; do targets+=("$(basename "$f" .c)"); done
fi

[ -f "$B/build.ninja" ] || CC=clang meson setup "$B" -Dfuzz=true \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
ninja -C "$B" "${targets[@]}" >/dev/null
mkdir -p fuzz/crashes
status=0
rows=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
for t in "${targets[@]}"; do
  [ -x "$B/$t" ] || { echo "fuzz/run.sh: no target '$t' in $B" >&2; exit 2; }
  work=$(mktemp -d /tmp/vmback-fuzz-corpus.XXXXXX)
  log=$(mktemp /tmp/vmback-fuzz-log.XXXXXX)
  cp fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  echo "== $t for ${SECS}s"
  rc=0
  "$B/$t" -max_total_time="$SECS" -max_len="$MAXLEN" -rss_limit_mb=2048 \
    -timeout=25 -print_final_stats=1 -artifact_prefix=fuzz/crashes/$t- \
    "$work" > "$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(grep -c "Test unit written to" "$log" || true)
  if [ $rc -ne 0 ]; then
    status=1
    grep -E "ERROR: |SUMMARY: |runtime error|Test unit written" "$log" | head -5 || true
  fi
  tail -2 "$log" | grep -v "^stat::" || true
  rows+=("$(printf "%-22s | %12s | %s" "$t" "${execs:-?}" "$([ $rc -eq 0 ] && echo "$crashes" || echo "$crashes (exit $rc)")")")
  rm -rf "$work" "$log"
done
printf "%-22s | %12s | %s\n" target executions crashes
printf -- "-----------------------+--------------+--------\n"
for r in "${rows[@]}"; do echo "$r"; done
exit $status
