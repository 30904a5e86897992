#!/bin/bash
# Build the libFuzzer targets with clang and run each, one after the
# other (one core), for N seconds starting from the stored corpus.
#   fuzz/run.sh [SECONDS] [TARGET...]        default 60 s, every target
#   fuzz/run.sh --reliability [TARGET...]    600 s each (or
#                     FUZZ_RELIABILITY_SECONDS), then the same table
#   FUZZ_BUILD=dir    build directory (default build-fuzz; configured with
#                     -Dfuzz=true and ASan+UBSan when missing)
#   FUZZ_MAX_LEN=N    largest input (default 262144)
#   FUZZ_JOBS=N       targets fuzzed at a time (default 1)
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
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
rowdir=$(mktemp -d /tmp/vmback-fuzz-rows.XXXXXX)
trap 'rm -rf "$rowdir"' EXIT

# fuzz_one TARGET: run it, print its findings, leave its table row and
# exit status in $rowdir
fuzz_one () {
  local t=$1 work log rc=0 execs crashes
  work=$(mktemp -d /tmp/vmback-fuzz-corpus.XXXXXX)
  log=$(mktemp /tmp/vmback-fuzz-log.XXXXXX)
  cp fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  echo "== $t for ${SECS}s"
  "$B/$t" -max_total_time="$SECS" -max_len="$MAXLEN" -rss_limit_mb=2048 \
    -timeout=25 -print_final_stats=1 -artifact_prefix=fuzz/crashes/$t- \
    "$work" > "$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # crash, leak and timeout inputs; a "slow-unit-" (an input that took
  # longer than -report_slow_units, 10 s: usually a loaded machine) is
  # kept too but is not a failure: counted apart
  crashes=$(grep "Test unit written to" "$log" | grep -vc "slow-unit-" || true)
  slow=$(grep "Test unit written to" "$log" | grep -c "slow-unit-" || true)
  if [ $rc -ne 0 ]; then
    grep -E "ERROR: |SUMMARY: |runtime error|Test unit written" "$log" | head -5 || true
  fi
  tail -2 "$log" | grep -v "^stat::" || true
  printf "%-22s | %12s | %s\n" "$t" "${execs:-?}" \
    "$crashes$([ "$slow" -eq 0 ] || echo " ($slow slow unit)")$([ $rc -eq 0 ] || echo " (exit $rc)")" > "$rowdir/$t"
  echo $rc > "$rowdir/$t.rc"
  rm -rf "$work" "$log"
}

# FUZZ_JOBS targets at a time (default 1: one core, steady exec counts)
JOBS=${FUZZ_JOBS:-1}
for t in "${targets[@]}"; do
  [ -x "$B/$t" ] || { echo "fuzz/run.sh: no target '$t' in $B" >&2; exit 2; }
done
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait
status=0
printf "%-22s | %12s | %s\n" target executions crashes
printf -- "-----------------------+--------------+--------\n"
for t in "${targets[@]}"; do
  cat "$rowdir/$t" 2>/dev/null || printf "%-22s | %12s | %s\n" "$t" "?" "no result"
  [ "$(cat "$rowdir/$t.rc" 2>/dev/null)" = 0 ] || status=1
done
exit $status
