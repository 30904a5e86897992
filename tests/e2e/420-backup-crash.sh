#!/bin/bash
# Crash safety: backups SIGKILLed at random moments (KILLS times, default
# 20; 8 in the sanitizer run, VMBACK_TEST_QUICK) leave the repository
# verifiable and every completed point restorable bit-exactly; the next
# backup succeeds.  Also run on S3 by 510-s3-suite (repo_url).
. "$(dirname "$0")/functions.sh"
KILLS=${KILLS:-$([ -n "${VMBACK_TEST_QUICK:-}" ] && echo 8 || echo 20)}
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
RANDOM=$SEED
cd "$T"
VMBACK_REPO=$(repo_url repo); export VMBACK_REPO VMBACK_QUIET_FALLBACK=1
vmback -q repo init --chunk-size 256K "$VMBACK_REPO"
vmback disk create --type monolithicSparse --size 96M --ctk d.vmdk
poke_pattern p 0 $((40 << 20)) $SEED
vmback disk write d.vmdk --offset 0 < p
vmback -q backup d.vmdk
declare -A sha
record () {   # sha of the disk for every point that exists now
  for id in $(vmback --json list | python3 -c 'import json,sys;[print(p["id"]) for p in json.load(sys.stdin)["points"]]'); do
    [ -n "${sha[$id]:-}" ] || sha[$id]=$1
  done
}
record "$(vmback disk read d.vmdk | sha256sum | cut -d' ' -f1)"
killed=0
for i in $(seq "$KILLS"); do
  # change the disk, so every backup has new chunks to write
  rm -f w; poke_pattern w 0 $(( (RANDOM % 8 + 1) << 20 )) $((SEED + i))
  vmback disk write d.vmdk --offset $(( (RANDOM % 88) << 20 )) < w   # <= 87 + 8 MiB: inside the 96 MiB disk
  cur=$(vmback disk read d.vmdk | sha256sum | cut -d' ' -f1)
  full=""; [ $((i % 3)) -eq 0 ] && full=--full
  "$VMBACK" -q backup $full d.vmdk &   # the binary itself, so kill hits it
  pid=$!
  sleep "0.$(printf '%03d' $((RANDOM % 600)))"
  kill -9 $pid 2>/dev/null && killed=$((killed + 1)) || true
  wait $pid 2>/dev/null || true
  record "$cur"
  vmback -q verify
done
echo "killed $killed of $KILLS backups mid-run"
# every point that exists restores to the disk as it was
for id in "${!sha[@]}"; do
  rm -f out.raw
  vmback -q restore "$id" out.raw
  [ "$(sha256sum < out.raw | cut -d' ' -f1)" = "${sha[$id]}" ] || { echo "point $id differs"; exit 1; }
done
# and the next backup (incremental or not) succeeds and restores
vmback -q backup d.vmdk
rm -f out.raw
vmback -q restore d@latest out.raw
vmback disk read d.vmdk | cmp - out.raw
# gc after all this removes the orphans of killed runs (and in a local
# repository their temporary files) and keeps every point
vmback -q gc
vmback verify
if [ -z "${VMBACK_TEST_S3_REPO:-}" ]; then [ -z "$(find repo -name '.tmp-*')" ]; fi
