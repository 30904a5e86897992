#!/bin/bash
# A short libFuzzer run of every fuzz target of the build under test
# (FUZZ_SMOKE_SECONDS each, default 3, one target at a time), starting from
# fuzz/corpus/TARGET/.  The targets exist when the build was configured
# with -Dfuzz=true and clang can link -fsanitize=fuzzer (make check-asan
# does both); otherwise this test skips and says why.  A crash, leak or
# timeout fails the test; the input is kept in BUILD/fuzz-crashes/ (copy
# it into fuzz/corpus/TARGET/ once fixed).  `make fuzz` runs longer.
. "$(dirname "$0")/functions.sh"
SECS=${FUZZ_SMOKE_SECONDS:-3}
BUILD=${VMBACK_BUILD:-$(dirname "$VMBACK")}
targets=()
for src in "$VMBACK_ROOT"/fuzz/fuzz-*.c; do
  t=$(basename "$src" .c)
  [ -x "$BUILD/$t" ] && targets+=("$t")
done
if [ ${#targets[@]} -eq 0 ]; then
  echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' > "$T/t.c"
  if ! clang -fsanitize=fuzzer "$T/t.c" -o "$T/t" 2>/dev/null; then
    echo "SKIP: clang with libFuzzer is not available"
  else
    echo "SKIP: $BUILD has no fuzz targets (configure it with -Dfuzz=true, as make check-asan does)"
  fi
  exit 77
fi
n=$(ls "$VMBACK_ROOT"/fuzz/fuzz-*.c | wc -l)
[ ${#targets[@]} -eq "$n" ] || { echo "only ${#targets[@]} of $n fuzz targets built"; exit 1; }
mkdir -p "$BUILD/fuzz-crashes"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
fail=0
for t in "${targets[@]}"; do
  mkdir "$T/$t"
  cp "$VMBACK_ROOT/fuzz/corpus/$t"/* "$T/$t"/ 2>/dev/null || true
  rc=0
  "$BUILD/$t" -max_total_time="$SECS" -max_len=262144 -rss_limit_mb=2048 \
    -timeout=25 -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-crashes/$t-" \
    "$T/$t" > "$T/$t.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T/$t.log" | tail -1)
  { set +x; } 2>/dev/null
  printf "%-22s %10s executions  exit %d\n" "$t" "${execs:-?}" "$rc"
  set -x
  if [ $rc -ne 0 ]; then
    fail=1
    grep -E "ERROR: |SUMMARY: |runtime error|Test unit written" "$T/$t.log" | head -5
  fi
  rm -rf "${T:?}/$t"
done
exit $fail
