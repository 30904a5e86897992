#!/bin/bash
# Snapshot create/delete/delete-all/revert/consolidate killed (SIGKILL) at
# each of their steps: the VM and every listed snapshot read the same
# bytes, `vm snapshot consolidate` finishes the job, nothing is left over
# (docs/snapshots.md).  tests/e2e/vm_snapshot_crash.py
# lists the cases.
. "$(dirname "$0")/functions.sh"
requires python3
# page cache is what a SIGKILL leaves behind; /dev/shm only saves time
W=$T
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  W=$(mktemp -d /dev/shm/vmback-crash.XXXXXX)
  cleanup_fn "rm -rf $W"
fi
python3 "$VMBACK_ROOT/tests/e2e/vm_snapshot_crash.py" "$VMBACK" "$W" | tee "$T/crash.log"
n=$(sed -n 's/^\([0-9]*\) kill cases passed$/\1/p' "$T/crash.log")
want=20
[ -n "${VMBACK_TEST_QUICK:-}" ] && want=9     # every third case under sanitizers
[ "${n:-0}" -ge $want ]
