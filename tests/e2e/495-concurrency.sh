#!/bin/bash
# Concurrent users of one repository (locks: docs/FORMAT.md "Locks"):
#  - two backups of different VMs at the same time, rounds of full and
#    incremental: both succeed, every point restores to what its VM had;
#  - a backup while prune or gc runs: a backup holding its shared lock
#    (stopped with SIGSTOP) makes prune and gc fail "locked by pid N", an
#    exclusive lock (also an unreadable one) makes the backup fail
#    "locked by pid N"; then rounds
#    of backup and prune/gc started together: each either succeeds or is
#    refused with "locked by pid N", nothing is corrupted;
#  - two `vmback serve` readers of one VM point copied at once (while a
#    backup of the other VM runs): both give the disk's bytes; gc is
#    refused while they serve, their locks go with them;
#  - every command runs under a timeout: a hang (deadlock) fails the test.
. "$(dirname "$0")/functions.sh"
requires python3
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
RANDOM=$SEED
ROUNDS=${ROUNDS:-4}
if [ -d /dev/shm ] && [ -w /dev/shm ]; then   # tmpfs: many short commands
  T=$(mktemp -d /dev/shm/vmback-e2e.XXXXXX)
  cleanup_fn "rm -rf $T"
fi
cd "$T"
export VMBACK_REPO=$T/repo
vmback -q repo init --chunk-size 256K repo
TMO=120                     # seconds any one command may take
HOST=$(python3 -c 'import re,socket; print(re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:63] or "unknown")')

# run_bg NAME CMD...: CMD in the background under the timeout, its pid in
# PID_NAME, its output in NAME.out / NAME.err
run_bg () {
  local name=$1; shift
  timeout -s KILL $TMO "$VMBACK" "$@" > "$name.out" 2> "$name.err" &
  eval "PID_$name=$!"
}
# wait_ok NAME: the command succeeded (124/137: it hung)
wait_rc () {
  local pid rc=0; eval "pid=\$PID_$1"
  wait "$pid" || rc=$?
  cat "$1.err"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "$1: no answer within $TMO s (deadlock?)"; exit 1; fi
  if [ $rc -ge 128 ]; then echo "$1: died with signal $((rc - 128))"; exit 1; fi
  return $rc
}
# refused_or_ok NAME: success (DONE=1), or a one-line refusal naming the
# holder's pid (DONE=0); anything else fails the test
refused_or_ok () {
  local rc=0
  DONE=1
  wait_rc "$1" || rc=$?
  [ $rc -eq 0 ] && return 0
  DONE=0
  grep -Eq "locked by pid [0-9]+ on $HOST \((backup|prune|gc|verify|restore|serve)\)" "$1.err" \
    || { echo "$1 failed, but not because of a lock"; exit 1; }
  [ "$(wc -l < "$1.err")" -le 2 ] || { echo "$1: error is not a one-liner"; exit 1; }
  REFUSED=$((REFUSED + 1))
}
cur () { echo "$(dirname "$1")/$(sed -n "s/^$2\.fileName = \"\(.*\)\"$/\1/p" "$1")"; }
vsha () { timeout $TMO "$VMBACK" disk read "$1" | sha256sum | cut -d' ' -f1; }
newest () { vmback --json list "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["points"][-1]["id"])'; }
declare -A SHA CHECKED        # "POINT KEY" -> sha of the disk at backup time / restored
record () {                   # VM: its newest point holds what its disks have now
  local v=$1 id; id=$(newest "$(basename "$v" .vmx)")
  for key in scsi0:0 scsi0:1; do SHA["$id $key"]=$(vsha "$(cur "$v" $key)"); done
}
check_points () {             # verify, then every recorded point restores bit-exactly
  timeout $TMO "$VMBACK" -q verify
  local k id key
  vmback --json list | python3 -c 'import json,sys; [print(p["id"]) for p in json.load(sys.stdin)["points"]]' > ids
  for k in "${!SHA[@]}"; do
    id=${k% *}; key=${k#* }
    grep -qx "$id" ids || continue                        # pruned
    [ -z "${CHECKED[$k]:-}" ] || continue                 # restored once; verify covers its chunks
    rm -f r.raw
    timeout $TMO "$VMBACK" -q restore "$id" r.raw --disk "$key"
    [ "$(sha256sum < r.raw | cut -d' ' -f1)" = "${SHA[$k]}" ] || { echo "point $id $key differs"; exit 1; }
    CHECKED[$k]=1
  done
}
scribble () {                 # VM ROUND: new data in both disks
  local v=$1 i=$2
  rm -f w; poke_pattern w 0 $(( (RANDOM % 4 + 1) << 18 )) $((SEED + i))
  vmback disk write "$(cur "$v" scsi0:0)" --offset $(( (RANDOM % 40) << 18 )) < w
  vmback disk write "$(cur "$v" scsi0:1)" --offset $(( (RANDOM % 20) << 18 )) < w
}

A=ds/a/a.vmx B=ds/b/b.vmx
vmback -q vm create $A --disk 12M:vmfs --disk 6M --ctk
vmback -q vm create $B --disk 12M --disk 6M:vmfs --ctk

# ---- two VMs backed up at the same time
echo "== scenario two-vm-backups"
for i in $(seq "$ROUNDS"); do
  scribble $A $((i * 2)); scribble $B $((i * 2 + 1))
  full=""; [ "$i" -eq 3 ] && full=--full
  run_bg ba -q backup $full $A
  run_bg bb -q backup $B
  wait_rc ba; wait_rc bb
  record $A; record $B
  [ "$(vmback vm snapshot list $A)" = "no snapshots" ]; [ "$(vmback vm snapshot list $B)" = "no snapshots" ]
done
[ -z "$(ls -A repo/locks)" ]
check_points

# ---- a backup holding its lock: prune and gc refused with its pid
echo "== scenario lock-holders"
mkpattern big.raw $((48 << 20)) "$SEED"
start_stopped () {            # a disk backup, SIGSTOPped once its lock exists
  "$VMBACK" -q backup big.raw &
  BPID=$!
  while kill -0 "$BPID" 2>/dev/null && ! compgen -G "repo/locks/shared-*" > /dev/null; do :; done
  kill -STOP "$BPID" || { echo "backup finished before its lock was seen"; return 1; }
}
BPID=
cleanup_fn '[ -z "$BPID" ] || kill -9 "$BPID" 2>/dev/null'
start_stopped
expect_fail "locked by pid $BPID on $HOST \(backup\)" timeout $TMO "$VMBACK" prune --keep-last 1
expect_fail "locked by pid $BPID on $HOST \(backup\)" timeout $TMO "$VMBACK" gc
timeout $TMO "$VMBACK" -q backup $A              # another shared user goes on
record $A
kill -CONT "$BPID"; wait "$BPID"; BPID=
[ -z "$(ls -A repo/locks)" ]
# an exclusive lock (prune's and gc's kind, held by a live process):
# backups are refused with its pid
sleep 300 & SPID=$!
cleanup_fn "kill $SPID 2>/dev/null"
printf '{"pid":%d,"host":"%s","op":"gc","time":%d}' $SPID "$HOST" "$(date +%s)" > "repo/locks/exclusive-$HOST-$SPID-0badf00d"
expect_fail "locked by pid $SPID on $HOST \(gc\)" timeout $TMO "$VMBACK" backup $B
expect_fail "locked by pid $SPID on $HOST \(gc\)" timeout $TMO "$VMBACK" backup big.raw
kill $SPID; wait $SPID 2>/dev/null || true
rm -f "repo/locks/exclusive-$HOST-$SPID-0badf00d"
# an unreadable lock: never taken for stale, its pid named from its name
echo garbage > repo/locks/exclusive-other-host-4242-0badf00d
expect_fail "locked by pid 4242 \(unreadable lock" timeout $TMO "$VMBACK" backup $B
rm repo/locks/exclusive-other-host-4242-0badf00d
check_points

# ---- backups and prune / gc started together
echo "== scenario backup-vs-prune-gc"
REFUSED=0
for i in $(seq $((ROUNDS * 2))); do
  scribble $A $((100 + i))
  op=gc; [ $((i % 2)) -eq 0 ] && op="prune --keep-last 3"
  run_bg bk -q backup $A
  sleep "0.0$((RANDOM % 10))"
  run_bg mt -q $op
  refused_or_ok bk
  [ $DONE -eq 0 ] || record $A          # a refused backup made no point
  refused_or_ok mt
  [ -z "$(ls -A repo/locks)" ]
  timeout $TMO "$VMBACK" -q verify
done
echo "backup vs prune/gc: $REFUSED refusals in $((ROUNDS * 2)) rounds"
timeout $TMO "$VMBACK" -q gc
check_points

# ---- two servers of one VM point, read at once, while B is backed up
echo "== scenario serve-readers"
if command -v nbdkit > /dev/null && command -v nbdcopy > /dev/null \
   && [ -f "${VMBACK_NBDKIT_PLUGIN:-$(dirname "$VMBACK")/nbdkit-vmback.so}" ]; then
  P=$(newest a)
  serve () {                  # NAME: a server of P's scsi0:0 on NAME.sock
    "$VMBACK" serve "$P" --disk scsi0:0 --unix "$T/$1.sock" > "$1.sout" 2> "$1.serr" &
    eval "SPID_$1=$!"
    cleanup_fn "kill $! 2>/dev/null"
    for _ in $(seq 300); do [ -s "$1.sout" ] && return 0; sleep 0.1; done
    cat "$1.serr"; echo "server $1 did not start"; exit 1
  }
  serve s1; serve s2
  [ "$(find repo/locks -type f | wc -l)" -eq 2 ]
  scribble $B 200
  run_bg bb -q backup $B
  timeout $TMO nbdcopy "nbd+unix:///?socket=$T/s1.sock" c1.raw & c1=$!
  timeout $TMO nbdcopy "nbd+unix:///?socket=$T/s2.sock" c2.raw & c2=$!
  wait $c1; wait $c2
  wait_rc bb; record $B
  [ "$(sha256sum < c1.raw | cut -d' ' -f1)" = "${SHA["$P scsi0:0"]}" ]
  [ "$(sha256sum < c2.raw | cut -d' ' -f1)" = "${SHA["$P scsi0:0"]}" ]
  expect_fail "locked by pid ($SPID_s1|$SPID_s2) on $HOST \(serve\)" timeout $TMO "$VMBACK" gc
  kill "$SPID_s1" "$SPID_s2"
  wait "$SPID_s1" || true; wait "$SPID_s2" || true
  [ -z "$(ls -A repo/locks)" ]
else
  echo "serve: skipped (nbdkit, nbdcopy or the plugin missing)"
fi
check_points
echo "== scenarios done"
echo OK
