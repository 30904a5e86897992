#!/bin/bash
# Reliability report: runs the fuzz targets (fuzz/run.sh), the fault
# campaign (tests/reliability/faults.sh), the concurrency scenarios
# (tests/e2e/495-concurrency.sh) and the hostile-input test
# (tests/e2e/480-hostile-input.sh), keeps their logs, and prints one table
# of what was measured in that run:
#   fuzz target   | executions      | crashes
#   operation     | faults injected | data lost (and unexpected results)
#   scenario      | rounds          | failures
#   hostile input | tried           | handled
#
#   tests/reliability/report.sh [--quick] [--build DIR] [--out DIR] [--from DIR]
#     --quick      CI sizes: fuzz 10 s per target, 30 faults, 2 rounds
#     --build DIR  the vmback build to test (default build)
#     --out DIR    where the logs go (default a new /tmp/vmback-reliability.*)
#     --from DIR   print the table from the logs of an earlier run
#   FUZZ_SECONDS   seconds per fuzz target (default 600); FUZZ_TARGETS a subset;
#                  FUZZ_BUILD the fuzz build directory (fuzz/run.sh: build-fuzz);
#                  FUZZ_JOBS targets fuzzed at a time (default 1)
#   FAULTS, SEED   faults to inject (default 200) and the campaign's seed
#   ROUNDS         rounds of each concurrency scenario (default 10)
#   SKIP           parts to leave out, e.g. SKIP="fuzz hostile"
# Exit status 1 when anything crashed, lost data or failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=build OUT= FROM= QUICK=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1;;
    --build) BUILD=$2; shift;;
    --out) OUT=$2; shift;;
    --from) FROM=$2; shift;;
    *) echo "usage: $0 [--quick] [--build DIR] [--out DIR] [--from DIR]" >&2; exit 2;;
  esac
  shift
done
FUZZ_SECONDS=${FUZZ_SECONDS:-$([ -n "$QUICK" ] && echo 10 || echo 600)}
FAULTS=${FAULTS:-$([ -n "$QUICK" ] && echo 30 || echo 200)}
ROUNDS=${ROUNDS:-$([ -n "$QUICK" ] && echo 2 || echo 10)}
SEED=${SEED:-$RANDOM}
SKIP=${SKIP:-}
skipped () { [[ " $SKIP " == *" $1 "* ]]; }

if [ -n "$FROM" ]; then
  OUT=$FROM
else
  [ -n "$OUT" ] || OUT=$(mktemp -d /tmp/vmback-reliability.XXXXXX)
  mkdir -p "$OUT"
  cd "$ROOT"
  BUILD=$(cd "$BUILD" && pwd) || { echo "report: no build directory '$BUILD'" >&2; exit 2; }
  export VMBACK="$BUILD/vmback" VMBACK_ROOT="$ROOT" VMBACK_BUILD="$BUILD"
  [ -x "$VMBACK" ] || { echo "report: no $VMBACK (build first)" >&2; exit 2; }
  echo "report: logs in $OUT (fuzz ${FUZZ_SECONDS}s per target, $FAULTS faults, $ROUNDS rounds, seed $SEED)"
  {
    echo "date $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "build $BUILD"
    echo "seed $SEED"
  } > "$OUT/info"
  if ! skipped fuzz; then
    echo "report: fuzzing (${FUZZ_SECONDS}s per target, ${FUZZ_JOBS:-1} at a time)"
    # shellcheck disable=SC2086
    FUZZ_RELIABILITY_SECONDS=$FUZZ_SECONDS "$ROOT/fuzz/run.sh" --reliability ${FUZZ_TARGETS:-} \
      > "$OUT/fuzz.log" 2>&1
    echo "rc $?" >> "$OUT/fuzz.log"
  fi
  if ! skipped faults; then
    echo "report: fault campaign ($FAULTS faults)"
    python3 "$ROOT/tests/reliability/faults.py" ${QUICK:+--quick} --faults "$FAULTS" \
      --seed "$SEED" --vmback "$VMBACK" > "$OUT/faults.log" 2>&1
    echo "rc $?" >> "$OUT/faults.log"
  fi
  if ! skipped concurrency; then
    echo "report: concurrency ($ROUNDS rounds)"
    ROUNDS=$ROUNDS SEED=$SEED bash "$ROOT/tests/e2e/495-concurrency.sh" > "$OUT/concurrency.log" 2>&1
    echo "rc $?" >> "$OUT/concurrency.log"
  fi
  if ! skipped hostile; then
    echo "report: hostile input"
    bash "$ROOT/tests/e2e/480-hostile-input.sh" > "$OUT/hostile.log" 2>&1
    echo "rc $?" >> "$OUT/hostile.log"
  fi
fi

# ---- the table, from the logs
bad=0
rc_of () { sed -n 's/^rc \([0-9]*\)$/\1/p' "$1" | tail -1; }
row () { printf "%-12s | %-22s | %18s | %s\n" "$@"; }
echo
echo "vmback reliability report: $(sed -n 's/^date //p' "$OUT/info" 2>/dev/null)," \
     "build $(sed -n 's/^build //p' "$OUT/info" 2>/dev/null), seed $(sed -n 's/^seed //p' "$OUT/info" 2>/dev/null)"
row "part" "name" "measured" "result"
echo "-------------+------------------------+--------------------+---------------------------"

if [ -f "$OUT/fuzz.log" ]; then
  # fuzz/run.sh's table: target | executions | crashes
  rows=$(grep -E '^fuzz-[a-z0-9-]+ +\| ' "$OUT/fuzz.log" || true)
  if [ -z "$rows" ]; then
    row fuzz "(no run)" "-" "$(grep -m1 -iE 'error|not found|no target' "$OUT/fuzz.log" | cut -c1-60)"
    bad=1
  fi
  while IFS='|' read -r t e c; do
    [ -n "$t" ] || continue
    t=$(echo $t); e=$(echo $e); c=$(echo $c)
    row fuzz "$t" "$e execs" "$(echo "$c" | sed 's/^\([0-9]*\)/\1 crashes/')"
    [ "${c%% *}" = 0 ] || bad=1
  done <<< "$rows"
  [ "$(rc_of "$OUT/fuzz.log")" = 0 ] || bad=1
fi

if [ -f "$OUT/faults.log" ]; then
  # faults.py: "OP faults N (eio ..) failed N absorbed N not-injected N lost N unexpected N"
  rows=$(grep -E '^[a-z-]+ +faults +[0-9]+ ' "$OUT/faults.log" || true)
  [ -n "$rows" ] || { row faults "(no run)" "-" "$(tail -1 "$OUT/faults.log")"; bad=1; }
  while read -r op _ n rest; do
    [ -n "$op" ] || continue
    lost=$(echo "$rest" | sed -n 's/.* lost \([0-9]*\) .*/\1/p')
    unexp=$(echo "$rest" | sed -n 's/.* unexpected \([0-9]*\)$/\1/p')
    row faults "$op" "$n injected" "$lost data lost, $unexp unexpected"
  done <<< "$rows"
  [ "$(rc_of "$OUT/faults.log")" = 0 ] || bad=1
fi

if [ -f "$OUT/concurrency.log" ]; then
  # 495 prints "== scenario NAME" as it starts each; a failure stops it
  crc=$(rc_of "$OUT/concurrency.log")
  rounds=$(grep -m1 -E '^ROUNDS=|^\+ ROUNDS=' "$OUT/concurrency.log" | sed 's/.*=//')
  last=$(grep -E '^== scenario' "$OUT/concurrency.log" | grep -v done | tail -1 | awk '{print $3}')
  for s in two-vm-backups lock-holders backup-vs-prune-gc serve-readers; do
    if ! grep -qx "== scenario $s" "$OUT/concurrency.log"; then
      row concurrency "$s" "-" "not reached"; bad=1; continue
    fi
    if [ "$s" = serve-readers ] && grep -q "^serve: skipped" "$OUT/concurrency.log"; then
      row concurrency "$s" "-" "skipped (no nbdkit/plugin)"; continue
    fi
    f=0; [ "$crc" != 0 ] && [ "$s" = "$last" ] && f=1 && bad=1
    what="${rounds:-?} rounds"
    [ "$s" = backup-vs-prune-gc ] && what="$(sed -n 's/^backup vs prune\/gc: \([0-9]*\) refusals in \([0-9]*\) rounds/\2 rounds, \1 refused/p' "$OUT/concurrency.log")"
    [ "$s" = lock-holders ] && what="5 refusals"
    [ "$s" = serve-readers ] && what="2 readers"
    row concurrency "$s" "${what:-?}" "$f failures"
  done
fi

if [ -f "$OUT/hostile.log" ]; then
  # every hostile case goes through expect_fail; a failing one ends the test
  tried=$(grep -cE '^\++ expect_fail ' "$OUT/hostile.log")
  hrc=$(rc_of "$OUT/hostile.log")
  handled=$tried
  if [ "$hrc" = 77 ]; then
    row hostile "480-hostile-input" "-" "skipped: $(grep -m1 '^SKIP:' "$OUT/hostile.log" | cut -c7-)"
  else
    [ "$hrc" = 0 ] || { handled=$((tried - 1)); bad=1; }
    row hostile "480-hostile-input" "$tried tried" "$handled handled"
  fi
fi
echo
[ $bad -eq 0 ] && echo "report: all clean" || echo "report: FAILURES (logs in $OUT)"
exit $bad
