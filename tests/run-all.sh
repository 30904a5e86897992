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
export VMBACK="$BUILD/vmback" VMBACK_ROOT="$ROOT" VMBACK_BUILD="$BUILD"
for t in "$ROOT"/tests/e2e/[0-9][0-9][0-9]-*.sh; do
  name=$(basename "$t" .sh)
  log="$BUILD/e2e-$name.log"
  start=$(date +%s)
  if [ -n "${E2E_FILTER:-}" ] && [[ "$name" != *${E2E_FILTER}* ]]; then continue; fi
  bash "$t" > "$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    pass=$((pass+1)); printf "  %-40s OK   %ss\n" "$name" "$secs"
  elif [ $rc -eq 77 ]; then
    skip=$((skip+1)); printf "  %-40s SKIP (%s)\n" "$name" "$(grep -m1 '^SKIP:' "$log" | cut -c7-)"
  else
    fail=$((fail+1)); failed+=("$name"); printf "  %-40s FAIL (exit %d)\n" "$name" "$rc"
    tail -n 40 "$log" | sed 's/^/    | /'
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
