#!/bin/bash
# Retention, garbage collection and locks.
#  - prune --keep-last 2 of 5 points: --dry-run changes nothing, the real
#    run keeps exactly the 2 newest; prune without a rule is refused;
#  - gc deletes exactly the chunks no remaining point uses (--dry-run
#    counts them and deletes nothing); verify passes; the kept points
#    restore bit-exactly;
#  - locks (docs: locks/<shared|exclusive>-<host>-<pid>-<rand>, JSON
#    {"pid","host","op","time"}): a live shared lock (fake, or a real backup
#    stopped with SIGSTOP) makes gc fail "locked by pid N" and lets other
#    shared users in; a live exclusive lock keeps backups out; a lock of a
#    dead pid on this host is removed automatically; a lock of another host
#    is never taken for stale.
. "$(dirname "$0")/functions.sh"
requires python3
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
cd "$T"
export VMBACK_REPO=$T/repo
vmback -q repo init --chunk-size 256K repo
sha_of () { sha256sum < "$1" | cut -d' ' -f1; }
state () { (cd repo && find . ! -path './locks*' -printf '%p %s\n' | sort); }
ids () {   # non-zero chunk ids of index files
  python3 - "$@" <<'PY'
import sys
for f in sys.argv[1:]:
    b = open(f, 'rb').read(); n = int.from_bytes(b[24:32], 'little')
    for i in range(n):
        h = b[32 + 32 * i:64 + 32 * i].hex()
        if h != '0' * 64: print(h)
PY
}
chunk_files () { find repo/chunks -type f -printf '%f\n' | sort; }

# ---- five points; point k rewrites MiB k, so old chunks stay shared
mkpattern d.raw $((8 << 20)) "$SEED"
declare -a P SHA
for k in 1 2 3 4 5; do
  [ $k -eq 1 ] || poke_pattern d.raw $((k << 20)) $((1 << 20)) $((SEED + k))
  P[$k]=$(vmback --json backup d.raw | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  SHA[$k]=$(sha_of d.raw)
done
vmback --json list | python3 -c '
import json,sys; print("\n".join(p["id"] for p in json.load(sys.stdin)["points"]))' > listed
printf '%s\n' "${P[@]:1}" | diff - listed

# ---- prune: refused without a rule; --dry-run changes nothing
expect_fail "no retention rule" vmback prune
expect_fail "no retention rule" vmback prune --keep-last 0
expect_fail "no retention rule" vmback prune --dry-run
state > s0
vmback --json prune --keep-last 2 --dry-run > dry.json
python3 - dry.json "${P[@]:1}" <<'PY'
import json,sys
j = json.load(open(sys.argv[1])); p = sys.argv[2:]
assert j["dry-run"] is True and j["kept"] == 2 and j["removed"] == 3, j
text = "\n".join(j["decisions"])
for x in p[:3]: assert ("would remove " + x) in text, (x, text)
for x in p[3:]: assert ("keep   " + x) in text, (x, text)
PY
state > s1
diff s0 s1
[ "$(vmback --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))')" -eq 5 ]

# ---- prune for real
vmback -q prune --keep-last 2
vmback --json list | python3 -c '
import json,sys; print("\n".join(p["id"] for p in json.load(sys.stdin)["points"]))' > listed
printf '%s\n' "${P[4]}" "${P[5]}" | diff - listed
for k in 1 2 3; do [ ! -e "repo/snapshots/${P[$k]}" ] || [ -z "$(ls -A "repo/snapshots/${P[$k]}")" ]; done
expect_fail "no restore point|not found" vmback restore "${P[3]}" gone.raw
[ ! -e gone.raw ]

# ---- gc: exactly the chunks no remaining point uses
chunk_files > before
ids repo/snapshots/"${P[4]}"/disk0.index repo/snapshots/"${P[5]}"/disk0.index | sort -u > live
comm -23 live before | diff - /dev/null          # every live chunk is stored
comm -13 live before > garbage                    # stored but unused
ngarbage=$(wc -l < garbage); echo "garbage: $ngarbage"; [ "$ngarbage" -ge 3 ]
vmback --json gc --dry-run > gcd.json
python3 -c 'import json,sys; j=json.load(open("gcd.json")); assert j["deleted"]==int(sys.argv[1]) and j["dry-run"] is True, j' "$ngarbage"
chunk_files | diff - before
vmback --json gc > gc.json
python3 -c 'import json,sys; j=json.load(open("gc.json")); assert j["deleted"]==int(sys.argv[1]) and j["chunks"]==int(sys.argv[2]), j' "$ngarbage" "$(wc -l < before)"
chunk_files | diff - live
vmback verify
vmback --json gc | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["deleted"]==0, j'
for k in 4 5; do
  rm -f r.raw
  vmback -q restore "${P[$k]}" r.raw
  [ "$(sha_of r.raw)" = "${SHA[$k]}" ]
done

# ---- gc also deletes what killed writers leave: the temporary files
# (".tmp-PID-RAND") of puts that never finished; a fake one here
d=$(find repo/chunks -mindepth 1 -maxdepth 1 -type d | head -1)
head -c 5000 /dev/urandom > "$d/.tmp-999999-00000000deadbeef"
vmback --json gc --dry-run | python3 -c '
import json,sys; j=json.load(sys.stdin); assert j["temporary-files"]==1 and j["temporary-bytes"]==5000, j'
[ -e "$d/.tmp-999999-00000000deadbeef" ]
vmback gc > gc2.txt; cat gc2.txt
grep -q "^1 temporary file of interrupted writes deleted (5000 bytes)" gc2.txt
[ ! -e "$d/.tmp-999999-00000000deadbeef" ]
vmback verify

# ---- locks
HOST=$(python3 -c 'import re,socket; print(re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:63] or "unknown")')
fake_lock () {   # KIND PID [HOST]: write a lock object as vmback does
  local h=${3:-$HOST}
  printf '{"pid":%d,"host":"%s","op":"backup","time":%d}' "$2" "$h" "$(date +%s)" \
    > "repo/locks/$1-$h-$2-0badf00d"
  chmod 600 "repo/locks/$1-$h-$2-0badf00d"
  echo "repo/locks/$1-$h-$2-0badf00d"
}
SPID=
cleanup_fn '[ -z "$SPID" ] || kill "$SPID" 2>/dev/null'   # evaluated at exit
sleep 300 & SPID=$!
# a live shared lock: gc and a real prune are refused, shared users go on
lk=$(fake_lock shared $SPID)
expect_fail "locked by pid $SPID on $HOST \(backup\)" vmback gc
expect_fail "locked by pid $SPID" vmback gc --dry-run
expect_fail "locked by pid $SPID" vmback prune --keep-last 1
[ "$(vmback --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))')" -eq 2 ]
vmback -q prune --keep-last 1 --dry-run
vmback -q verify
poke_pattern d.raw 0 4096 $((SEED + 9))
vmback -q backup d.raw
SHA6=$(sha_of d.raw)
rm -f r.raw; vmback -q restore d@latest r.raw; [ "$(sha_of r.raw)" = "$SHA6" ]
[ -f "$lk" ]                                      # a live lock is left alone
# its holder dies: the lock is stale and removed by the next locker
kill "$SPID"; wait "$SPID" 2>/dev/null || true; DEADPID=$SPID; SPID=
if kill -0 "$DEADPID" 2>/dev/null; then echo "pid $DEADPID still alive"; exit 1; fi
vmback -q gc
[ ! -e "$lk" ]
[ -z "$(ls -A repo/locks)" ]

# a live exclusive lock keeps every other user out, writes nothing
sleep 300 & SPID=$!
lk=$(fake_lock exclusive $SPID)
state > s0
expect_fail "locked by pid $SPID" vmback backup d.raw
expect_fail "locked by pid $SPID" vmback verify
expect_fail "locked by pid $SPID" vmback restore d@latest x.raw
[ ! -e x.raw ]
expect_fail "locked by pid $SPID" vmback gc
state > s1
diff s0 s1
[ "$(ls repo/locks)" = "$(basename "$lk")" ]
kill "$SPID"; wait "$SPID" 2>/dev/null || true; DEADPID=$SPID; SPID=
vmback -q verify                                   # the stale one is removed
[ -z "$(ls -A repo/locks)" ]

# a stale lock of a dead pid, shared and exclusive: removed automatically
( exit 0 ) & DEAD=$!; wait $DEAD
if kill -0 "$DEAD" 2>/dev/null; then echo "pid $DEAD still alive"; exit 1; fi
fake_lock shared $DEAD > /dev/null
fake_lock exclusive $DEAD > /dev/null
vmback -q gc
[ -z "$(ls -A repo/locks)" ]
# a lock of another host is never stale, even with a pid that is dead here
lk=$(fake_lock shared $DEAD otherhost.example)
expect_fail "locked by pid $DEAD on otherhost.example" vmback gc
rm "$lk"
# an unreadable lock is not guessed about either
echo garbage > repo/locks/exclusive-x-1-2
expect_fail "locked|lock" vmback backup d.raw
rm repo/locks/exclusive-x-1-2

# ---- a real backup holding its shared lock (stopped with SIGSTOP): gc
# fails naming it; the backup then finishes; killed, it leaves a stale
# lock the next gc removes
mkpattern big.raw $((64 << 20)) $((SEED + 7))
# start a backup in the background and SIGSTOP it once its lock exists
# (a busy loop of builtins: the backup takes about a second or more)
start_stopped () {
  "$VMBACK" -q backup big.raw &
  BPID=$!
  while kill -0 "$BPID" 2>/dev/null && ! compgen -G "repo/locks/shared-*" > /dev/null; do :; done
  kill -STOP "$BPID" || { echo "backup finished before its lock was seen"; return 1; }
}
BPID=
cleanup_fn '[ -z "$BPID" ] || kill -9 "$BPID" 2>/dev/null'   # evaluated at exit
start_stopped
grep -q "\"pid\":$BPID," repo/locks/shared-*
expect_fail "locked by pid $BPID on $HOST \(backup\)" vmback gc
vmback -q verify                                  # shared: allowed
kill -CONT "$BPID"
wait "$BPID"                                      # and it completes
BPID=
[ -z "$(ls -A repo/locks)" ]
vmback --json list big | python3 -c 'import json,sys; assert len(json.load(sys.stdin)["points"])==1'
rm -f r.raw; vmback -q restore big@latest r.raw; cmp r.raw big.raw
# killed while holding the lock
poke_pattern big.raw $((10 << 20)) $((20 << 20)) $((SEED + 8))
start_stopped
kill -9 "$BPID"
rc=0; wait "$BPID" || rc=$?; BPID=; [ $rc -eq 137 ]
[ -n "$(ls -A repo/locks)" ]
vmback -q gc                                      # removes the stale lock
[ -z "$(ls -A repo/locks)" ]
vmback verify
vmback --json list big | python3 -c 'import json,sys; assert len(json.load(sys.stdin)["points"])==1'
