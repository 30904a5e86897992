#!/bin/bash
# Run every test: cmocka unit tests (through meson) and the shell
# end-to-end tests in tests/e2e/ (NNN-name.sh; exit 77 = skipped).
# Ends with the line "N passed, N failed, N skipped".
set -uo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
pass=0 fail=0 skip=0 failed=()

echo "== unit tests"
meson test -C "$BUILD" --suite unit --print-errorlogs --num-processes 2 > "$BUILD/unit.log" 2>&1
sed '/Summary of Failures/,$d' "$BUILD/unit.log" | grep -E "^ *[0-9]+/[0-9]+ " || true
while read -r line; do
  name=$(echo "$line" | awk '{print $2}' | sed 's/^vmback://')
  case "$line" in
    *" OK "*) pass=$((pass+1));;
    *" SKIP "*) skip=$((skip+1));;
    *) fail=$((fail+1)); failed+=("$name");;
  esac
done < <(sed '/Summary of Failures/,$d' "$BUILD/unit.log" | grep -E "^ *[0-9]+/[0-9]+ ")
if grep -qE "FAIL|ERROR|TIMEOUT" "$BUILD/unit.log"; then
  sed -n '/stdout:/,$p' "$BUILD/unit.log" | head -200
fi

echo "== end-to-end tests"
# VMBACK_TEST_JOBS tests at a time (default 2: most wait on fsync, child
# processes and sockets); a test whose header has the line "# e2e: serial"
# (a fixed port, a machine-wide resource, timing) runs alone.
export VMBACK="$BUILD/vmback" VMBACK_ROOT="$ROOT" VMBACK_BUILD="$BUILD"
JOBS=${VMBACK_TEST_JOBS:-2}
names=()
for t in "$ROOT"/tests/e2e/[0-9][0-9][0-9]-*.sh; do
  name=$(basename "$t" .sh)
  if [ -n "${E2E_FILTER:-}" ] && [[ "$name" != *${E2E_FILTER}* ]]; then continue; fi
  rm -f "$BUILD/e2e-$name.rc"
  names+=("$name")
done

# run_one NAME: the test, its exit status and seconds in e2e-NAME.rc
run_one () {
  local start rc=0
  start=$(date +%s)
  bash "$ROOT/tests/e2e/$1.sh" > "$BUILD/e2e-$1.log" 2>&1 || rc=$?
  echo "$rc $(( $(date +%s) - start ))" > "$BUILD/e2e-$1.rc.tmp"
  mv "$BUILD/e2e-$1.rc.tmp" "$BUILD/e2e-$1.rc"
}

# report NAME RC SECS: one line, and the log's end when it failed
report () {
  local name=$1 rc=$2 secs=$3 log="$BUILD/e2e-$1.log" cut
  if [ "$rc" -eq 0 ]; then
    pass=$((pass+1)); printf "  %-40s OK   %ss\n" "$name" "$secs"
  elif [ "$rc" -eq 77 ]; then
    skip=$((skip+1)); printf "  %-40s SKIP (%s)\n" "$name" "$(grep -m1 '^SKIP:' "$log" | cut -c7-)"
  else
    fail=$((fail+1)); failed+=("$name"); printf "  %-40s FAIL (exit %d)\n" "$name" "$rc"
    # what failed is just before the EXIT trap's trace (the cleanups)
    cut=$(grep -n -m1 '^+ _run_cleanups' "$log" | cut -d: -f1)
    if [ -n "$cut" ]; then
      head -n $((cut - 1)) "$log" | tail -n 40 | sed 's/^/    | /'
      echo "    | (cleanups: $(( $(wc -l < "$log") - cut + 1 )) lines)"
    else
      tail -n 40 "$log" | sed 's/^/    | /'
    fi
  fi
}

# flush: report finished tests in order, up to the first still running
next=0
flush () {
  while [ $next -lt ${#names[@]} ] && [ -f "$BUILD/e2e-${names[$next]}.rc" ]; do
    # shellcheck disable=SC2046
    report "${names[$next]}" $(cat "$BUILD/e2e-${names[$next]}.rc")
    next=$((next + 1))
  done
}

for name in "${names[@]}"; do
  if grep -qx '# e2e: serial' "$ROOT/tests/e2e/$name.sh"; then
    wait; flush
    run_one "$name"
  else
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; flush; done
    run_one "$name" &
  fi
  flush
done
wait; flush

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
