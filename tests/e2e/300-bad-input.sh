#!/bin/bash
# A corpus of broken files: each gives a one-line error, never a crash
# (under the ASan build a memory error aborts and fails this test).
. "$(dirname "$0")/functions.sh"
requires qemu-img python3
cd "$T"
truncate -s 3M src.raw
poke_pattern src.raw 0 1000000 1
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse src.raw good.vmdk
"$VMBACK" disk convert --type streamOptimized src.raw stream.vmdk   # VMware layout: GD at the end, footer
python3 "$VMBACK_ROOT/tests/data-gen/mk-bad-corpus.py" good.vmdk stream.vmdk bad
n=0
for f in bad/*.vmdk; do
  case "$f" in bad/notsparse-s001.vmdk|bad/garbage-*) continue;; esac
  rc=0
  "$VMBACK" disk read "$f" > /dev/null 2> err || rc=$?
  "$VMBACK" disk info "$f" > /dev/null 2>> err || true
  "$VMBACK" disk check "$f" > /dev/null 2>> err || true
  echo "$f -> rc=$rc: $(head -1 err)"
  if [ $rc -ge 128 ] || grep -q "AddressSanitizer\|runtime error" err; then
    echo "CRASH on $f"; cat err; exit 1
  fi
  case "$f" in
    # header damage the format tolerates (redundant copies) may still read
    bad/rgd-past-eof.vmdk|bad/gd-entry-past-eof.vmdk|bad/gte-past-eof.vmdk) ;;
    *) [ $rc -eq 1 ] || { echo "expected failure for $f"; exit 1; } ;;
  esac
  [ "$(head -1 err | wc -c)" -gt 10 ]
  n=$((n+1))
done
echo "$n broken files handled"
[ $n -ge 30 ]
# the specific messages users will see
expect_fail "unsafe extent file name '../etc/passwd'" "$VMBACK" disk info bad/extent-dotdot.vmdk
expect_fail "unsafe extent file name '/etc/passwd'" "$VMBACK" disk info bad/extent-absolute.vmdk
expect_fail "too large" "$VMBACK" disk info bad/desc-over-1mib.vmdk
expect_fail "cannot open extent 'nonexistent-flat.vmdk'" "$VMBACK" disk info bad/extent-missing.vmdk
