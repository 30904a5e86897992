#!/bin/bash
# Repositories on S3, against a real single-node Ceph RGW (tests/s3/ceph-fixture.sh):
#  - init (the bucket is created), plain and encrypted; a second init is refused;
#  - backup full + incremental, list, restore (sha256), verify, prune, gc;
#  - serve exports a point (ranged GETs of packs), with the endpoint given
#    as --s3-endpoint;
#  - locks: a running backup (SIGSTOPped) keeps gc out; a lock of another
#    host is stale only once its "expires" time has passed;
#  - repo copy local -> S3 (re-encrypted) and S3 -> local, restores from the
#    copies; a rerun sends nothing; a copy killed midway resumes;
#  - repositories on S3 are packed (many chunks per object): a backup
#    stores a few packs and one pack index, deduplicates without asking S3,
#    and gc deletes and rewrites packs;
#  - two backups into one repository at once (shared chunks named once;
#    stored once after the next gc);
#  - with one object per chunk (--pack-size 0), a run of new chunks is
#    stored without asking S3 about each one, and asking resumes once a
#    chunk is found;
#  - injected 503 SlowDown answers and timeouts are retried; endless ones,
#    an unreachable endpoint and a prefix that is no repository give one
#    clear line and write nothing;
#  - https: radosgw's certificate checked against the CA given with
#    --s3-ca or AWS_CA_BUNDLE (bodies go unsigned, TLS guards them); without
#    it one line about the certificate, and nothing written;
#  - radosgw killed mid-backup: a clear error, no partial point; after a
#    restart the next backup succeeds and verify passes.
# Skipped (exit 77) when Ceph is not installed or we are not root.
# e2e: serial
. "$(dirname "$0")/functions.sh"
requires python3 curl
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
s3_fixture
{ set +x; } 2>/dev/null                # keep the keys out of the log
printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$T/curl.cfg"
set -x
PS4='+ $EPOCHREALTIME '
cd "$T"
B=vmback-e2e
E3=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3curl () { curl -sf -K "$T/curl.cfg" --aws-sigv4 "aws:amz:$AWS_REGION:s3" "$@"; }
s3keys () {   # PREFIX (of [a-z./-]): the keys under it (one page is enough here)
  s3curl -H "x-amz-content-sha256: $E3" "$AWS_ENDPOINT_URL/$B?list-type=2&prefix=${1//\//%2F}" \
    | grep -o '<Key>[^<]*</Key>' | sed 's/<Key>\(.*\)<\/Key>/\1/' || true
}
s3put () {    # KEY FILE
  s3curl -T "$2" -H "x-amz-content-sha256: $(sha256sum < "$2" | cut -d' ' -f1)" "$AWS_ENDPOINT_URL/$B/$1" > /dev/null
}
s3del () { s3curl -X DELETE -H "x-amz-content-sha256: $E3" "$AWS_ENDPOINT_URL/$B/$1" > /dev/null; }
sha_of () { sha256sum < "$1" | cut -d' ' -f1; }
npoints () { vmback --json list --repo "$1" | grep -c '"id":' || true; }
jget () { grep -o "\"$2\": [^,}]*" "$1" | head -1 | sed 's/.*: //'; }   # FILE MEMBER (a number or boolean)

# ---- init: the bucket is created; a second init is refused; bad URLs
P=s3://$B/plain
vmback -q repo init --chunk-size 256K "$P"
expect_fail "already holds a repository" vmback repo init "$P"
expect_fail "bucket name" vmback repo init s3://No_Such/x
expect_fail "bad prefix component" vmback repo init "s3://$B/a/../b"
expect_fail "does not exist" vmback repo info --repo s3://vmback-missing/x
AWS_SECRET_ACCESS_KEY=wrong expect_fail "access denied|SignatureDoesNotMatch" vmback repo info --repo "$P"
vmback --json repo info --repo "$P" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["chunk-size"]==262144 and j["points"]==0, j'

# ---- backup full + incremental, list, restore, verify
export VMBACK_REPO=$P
vmback disk create --type monolithicSparse --size 24M --ctk d.vmdk
poke_pattern p0 0 $((8 << 20)) "$SEED"
vmback disk write d.vmdk --offset 1M < p0
vmback -q backup d.vmdk
vmback disk read d.vmdk > s1.raw
poke_pattern p1 0 300000 $((SEED + 1))
vmback disk write d.vmdk --offset 5000000 < p1
vmback disk write d.vmdk --zero --offset $((6 << 20)) --length $((1 << 20))
vmback --json backup d.vmdk > i1.json
grep -q '"change-id-used": "[0-9a-f-]*/' i1.json      # an incremental
vmback disk read d.vmdk > s2.raw
[ "$(npoints "$P")" -eq 2 ]
mapfile -t ids < <(vmback --json list | python3 -c 'import json,sys;[print(p["id"]) for p in json.load(sys.stdin)["points"]]')
vmback -q restore "${ids[0]}" r1.raw; cmp r1.raw s1.raw
vmback -q restore "${ids[1]}" r2.vmdk; vmback disk read r2.vmdk | cmp - s2.raw
vmback verify
s3keys plain/snapshots/ | grep -q "/manifest$"
[ "$(s3keys plain/locks/ | wc -l)" -eq 0 ]            # every lock released

# ---- serve: a point of the packed repository over NBD (chunks read with
# ranged GETs), the endpoint given as an option (the server must use it:
# the environment names a port where nothing listens)
PLUGIN=$(dirname "$VMBACK")/nbdkit-vmback.so
if command -v nbdcopy > /dev/null && [ -f "$PLUGIN" ]; then
  EP=$AWS_ENDPOINT_URL
  AWS_ENDPOINT_URL=http://127.0.0.1:9 "$VMBACK" --s3-endpoint "$EP" serve d@latest \
    --unix "$T/s.sock" > serve.out 2> serve.err &
  SPID=$!
  cleanup_fn "kill $SPID 2>/dev/null"
  for _ in $(seq 300); do
    [ -s serve.out ] && break
    kill -0 "$SPID" 2>/dev/null || { cat serve.err; exit 1; }
    sleep 0.1
  done
  nbdcopy "nbd+unix:///?socket=$T/s.sock" served.raw
  cmp served.raw s2.raw
  kill "$SPID"; wait "$SPID" || true
  [ "$(s3keys plain/locks/ | wc -l)" -eq 0 ]          # its shared lock is gone
else
  echo "serve on S3 not checked: nbdcopy or the nbdkit plugin is missing"
fi

# ---- encrypted repository on S3
export VMBACK_PASSPHRASE=e2e-secret
E=s3://$B/enc
vmback -q repo init --encrypt "$E"
vmback -q backup --repo "$E" d.vmdk
rm -f re.raw; vmback -q restore --repo "$E" d@latest re.raw; cmp re.raw s2.raw
VMBACK_PASSPHRASE=wrong expect_fail "wrong passphrase" vmback list --repo "$E"
vmback -q verify --repo "$E"
unset VMBACK_PASSPHRASE

# ---- prune + gc
vmback -q prune --keep-last 1
vmback --json gc > gc.json
[ "$(jget gc.json deleted)" -gt 0 ]
[ "$(s3keys plain/packidx/ | wc -l)" -eq 1 ]; [ -z "$(s3keys plain/chunks/)" ]
vmback verify
rm -f r2b.raw; vmback -q restore d@latest r2b.raw; cmp r2b.raw s2.raw
expect_fail "no restore point" vmback restore "${ids[0]}" gone.raw

# ---- locks
HOST=$(python3 -c 'import re,socket; print(re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:63] or "unknown")')
# a running backup holds a shared lock: gc is refused, verify goes on
mkpattern big.raw $((48 << 20)) $((SEED + 7))
BPID=
cleanup_fn '[ -z "$BPID" ] || kill -9 "$BPID" 2>/dev/null'
"$VMBACK" -q backup big.raw &
BPID=$!
for _ in $(seq 500); do [ -z "$(s3keys plain/locks/shared-)" ] || break; done
kill -STOP "$BPID"
[ -n "$(s3keys plain/locks/shared-)" ]
expect_fail "locked by pid $BPID on $HOST \(backup\)" vmback gc
vmback -q list
kill -CONT "$BPID"; wait "$BPID"; BPID=
[ "$(npoints "$P")" -eq 2 ]
# another host's lock: live until its expiry time, then stale and removed
now=$(date +%s)
printf '{"pid":4242,"host":"otherhost.example","op":"backup","time":%d,"expires":%d}' "$now" $((now + 600)) > lk
s3put plain/locks/exclusive-otherhost.example-4242-0badf00d lk
expect_fail "locked by pid 4242 on otherhost.example" vmback backup d.vmdk
expect_fail "locked by pid 4242 on otherhost.example" vmback gc
printf '{"pid":4242,"host":"otherhost.example","op":"backup","time":%d,"expires":%d}' $((now - 700)) $((now - 100)) > lk
s3put plain/locks/exclusive-otherhost.example-4242-0badf00d lk
vmback -q gc                                           # expired: removed
[ "$(s3keys plain/locks/ | wc -l)" -eq 0 ]
# without "expires" (an older vmback) another host's lock never expires
printf '{"pid":4242,"host":"otherhost.example","op":"backup","time":1}' > lk
s3put plain/locks/shared-otherhost.example-4242-0badf00d lk
expect_fail "locked by pid 4242" vmback gc
s3del plain/locks/shared-otherhost.example-4242-0badf00d
# our own lock carries an expiry that the holder refreshes
mkpattern big2.raw $((48 << 20)) $((SEED + 9))
VMBACK_LOCK_TTL=6 "$VMBACK" -q backup big2.raw &
BPID=$!
for _ in $(seq 500); do [ -z "$(s3keys plain/locks/shared-)" ] || break; done
kill -STOP "$BPID"
lkey=$(s3keys plain/locks/shared- | head -1)
s3curl -H "x-amz-content-sha256: $E3" "$AWS_ENDPOINT_URL/$B/$lkey" > mine.json
kill -CONT "$BPID"; wait "$BPID"; BPID=
python3 - mine.json "$now" <<'PY'
import json,sys; j=json.load(open(sys.argv[1])); now=int(sys.argv[2])
assert j["op"] == "backup" and now <= j["expires"] <= j["time"] + 7 + 60, j
PY

# ---- repo copy: local -> S3 (encrypted: re-encrypted), S3 -> local
export VMBACK_REPO=
vmback -q repo init --chunk-size 256K loc
vmback -q backup --repo loc d.vmdk
poke_pattern p2 0 500000 $((SEED + 2))
vmback disk write d.vmdk --offset 9000000 < p2
vmback -q backup --repo loc d.vmdk
vmback disk read d.vmdk > s3.raw
C=s3://$B/copy
VMBACK_PASSPHRASE=copy-secret vmback -q repo init --encrypt --chunk-size 256K "$C"
VMBACK_DST_PASSPHRASE=copy-secret vmback --json repo copy loc "$C" > c1.json
[ "$(jget c1.json points-copied)" -eq 2 ]; [ "$(jget c1.json reencrypted)" = true ]
[ "$(jget c1.json chunks-sent)" -gt 0 ]
VMBACK_DST_PASSPHRASE=copy-secret vmback --json repo copy loc "$C" > c2.json
[ "$(jget c2.json points-present)" -eq 2 ]; [ "$(jget c2.json chunks-sent)" -eq 0 ]
export VMBACK_PASSPHRASE=copy-secret
[ "$(npoints "$C")" -eq 2 ]
rm -f rc.raw; vmback -q restore --repo "$C" d@latest rc.raw; cmp rc.raw s3.raw
vmback -q verify --repo "$C"
unset VMBACK_PASSPHRASE
VMBACK_DST_PASSPHRASE=e2e-secret expect_fail "chunk sizes must be equal" vmback repo copy loc "$E"
vmback -q repo init --chunk-size 256K back            # S3 (plain) -> local
vmback --json repo copy "$P" back > c3.json
[ "$(jget c3.json points-copied)" -eq 3 ]          # d, big and big2
[ "$(jget c3.json reencrypted)" = false ]
rm -f rb.raw; vmback -q restore --repo back d@latest rb.raw; cmp rb.raw s2.raw
rm -f rb.raw; vmback -q restore --repo back big@latest rb.raw; cmp rb.raw big.raw
vmback -q verify --repo back

# ---- a copy killed midway resumes: the rerun skips the chunks already sent
vmback -q backup --repo loc big.raw
K=s3://$B/resume
# small packs: a pack index names every 8 packs sent, so a killed copy
# leaves most of what it sent findable
vmback -q repo init --chunk-size 256K --pack-size 256K "$K"
CPID=
cleanup_fn '[ -z "$CPID" ] || kill -9 "$CPID" 2>/dev/null'
"$VMBACK" -q repo copy loc "$K" big &
CPID=$!
for _ in $(seq 500); do [ "$(s3keys resume/packidx/ | wc -l)" -lt 2 ] || break; sleep 0.02; done
kill -9 "$CPID"; wait "$CPID" || true; CPID=
sent1=$(vmback --json repo info --repo "$K" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])')
echo "chunks before the kill: $sent1"
[ "$sent1" -gt 0 ]
[ "$(npoints "$K")" -eq 0 ]                             # no point yet
vmback --json repo copy loc "$K" big > c4.json
cat c4.json
[ "$(jget c4.json points-copied)" -eq 1 ]; [ "$(jget c4.json chunks-present)" -ge "$sent1" ]
[ "$(npoints "$K")" -eq 1 ]
rm -f rk.raw; vmback -q restore --repo "$K" big@latest rk.raw; cmp rk.raw big.raw
# the killed copy's shared lock (a dead pid of this host) goes with the next
# exclusive locker; gc keeps every chunk of the copied point
[ "$(s3keys resume/locks/ | wc -l)" -eq 1 ]
vmback -q gc --repo "$K"
[ "$(s3keys resume/locks/ | wc -l)" -eq 0 ]
vmback -q verify --repo "$K"

# ---- two proxies: backups of two disks into one repository at once;
# both points restore, verify passes, the 8 chunks they share are named
# once; each may have stored them in its own pack (neither sees the
# other's packs before they are indexed), and the next gc keeps one copy
TW=s3://$B/two
vmback -q repo init --chunk-size 256K "$TW"
poke_pattern shared 0 $((2 << 20)) $((SEED + 20))
poke_pattern ua 0 $((1 << 20)) $((SEED + 21))
poke_pattern ub 0 $((1 << 20)) $((SEED + 22))
cat shared ua > a.raw; cat shared ub > b.raw
"$VMBACK" -q backup --repo "$TW" a.raw & PA=$!
"$VMBACK" -q backup --repo "$TW" b.raw & PB=$!
wait $PA; wait $PB
[ "$(npoints "$TW")" -eq 2 ]
vmback --json repo info --repo "$TW" > tw.json
[ "$(jget tw.json chunks)" -eq 16 ]                     # 8 shared + 4 + 4
for d in a b; do rm -f r$d.raw; vmback -q restore --repo "$TW" $d@latest r$d.raw; cmp r$d.raw $d.raw; done
vmback -q verify --repo "$TW"
vmback -q gc --repo "$TW"
vmback --json repo info --repo "$TW" > tw.json
# 16 random 256 KiB chunks, stored once each: their blobs plus pack trailers
[ "$(jget tw.json chunks)" -eq 16 ]; [ "$(jget tw.json chunk-bytes)" -le $((16 * (256 * 1024 + 200))) ]
[ "$(s3keys two/packidx/ | wc -l)" -eq 1 ]             # gc made one index
for d in a b; do rm -f r$d.raw; vmback -q restore --repo "$TW" $d@latest r$d.raw; cmp r$d.raw $d.raw; done
vmback -q verify --repo "$TW"

# ---- dedup questions: with one object per chunk (--pack-size 0) each "is
# this chunk there?" on S3 is a request, so a run of new chunks stops
# asking (after 32 misses only every 16th is asked about, the rest are
# sent); one hit resumes asking, so a disk made mostly of chunks the
# repository holds is not sent again.  A local repository asks about every
# chunk, and so does a packed one (its pack indexes answer, no request).
DP=s3://$B/probe
vmback -q repo init --chunk-size 256K --pack-size 0 "$DP"
poke_pattern old 0 $((40 << 18)) $((SEED + 30))
poke_pattern new 0 $((40 << 18)) $((SEED + 31))
cat new old > mix.raw
vmback -q backup --repo "$DP" old
vmback --json backup --repo "$DP" mix.raw > mix.json
pnew=$(jget mix.json chunks-new); preused=$(jget mix.json chunks-reused)
[ $((pnew + preused)) -eq 80 ]
[ "$pnew" -gt 40 ]; [ "$pnew" -le 60 ]     # some sent unasked, then asked again
vmback -q restore --repo "$DP" mix@latest rmix.raw; cmp rmix.raw mix.raw
vmback -q verify --repo "$DP"
vmback -q repo init --chunk-size 256K lprobe
vmback -q backup --repo lprobe old
vmback --json backup --repo lprobe mix.raw > lmix.json
[ "$(jget lmix.json chunks-new)" -eq 40 ]; [ "$(jget lmix.json chunks-reused)" -eq 40 ]
PP=s3://$B/pprobe
vmback -q repo init --chunk-size 256K "$PP"
vmback -q backup --repo "$PP" old
vmback --json backup --repo "$PP" mix.raw > pmix.json
[ "$(jget pmix.json chunks-new)" -eq 40 ]; [ "$(jget pmix.json chunks-reused)" -eq 40 ]
# 40 new chunks of 256 KiB in 16 MiB packs: one pack, and one pack index a backup
[ "$(s3keys pprobe/packs/ | wc -l)" -eq 2 ]; [ "$(s3keys pprobe/packidx/ | wc -l)" -eq 2 ]
[ -z "$(s3keys pprobe/chunks/)" ]
vmback -q restore --repo "$PP" mix@latest rpmix.raw; cmp rpmix.raw mix.raw
# An incremental starts out not asking (what the change tracker reports
# is new data far more often than not): 30 changed chunks that the
# repository already holds (from another point) are sent unasked until the
# 16th, asked about, is found; then asking resumes.  Bytes rewritten
# unchanged are the previous point's chunks: neither asked about nor sent.
IP=s3://$B/incr
vmback -q repo init --chunk-size 256K --pack-size 0 "$IP"
vmback disk create --type monolithicSparse --size 16M --ctk inc.vmdk
poke_pattern ibase 0 $((4 << 20)) $((SEED + 32))
vmback disk write inc.vmdk --offset 0 < ibase
poke_pattern known 0 $((30 << 18)) $((SEED + 33))
vmback -q backup --repo "$IP" inc.vmdk
vmback -q backup --repo "$IP" known
vmback disk write inc.vmdk --offset $((8 << 20)) < known
vmback disk write inc.vmdk --offset 0 < ibase
vmback --json backup --repo "$IP" inc.vmdk > inc.json
[ "$(jget inc.json chunks-read)" -eq 46 ]                # 30 + the 16 rewritten
inew=$(jget inc.json chunks-new)
[ "$inew" -ge 15 ]; [ "$inew" -lt 30 ]
vmback -q restore --repo "$IP" inc@latest rinc.raw
cmp rinc.raw <(vmback disk read inc.vmdk)
vmback -q verify --repo "$IP"

# ---- injected 503 SlowDown answers and timeouts are retried and succeed
poke_pattern p4 0 $((2 << 20)) $((SEED + 23))
cat p4 >> a.raw
VMBACK_DEBUG=1 VMBACK_FAIL_AT='s3-503:2,s3-503:3,s3-503:9,s3-timeout:5,s3-timeout:14' \
  "$VMBACK" -q backup --repo "$TW" a.raw 2> retry.err
[ "$(grep -c 'retrying in' retry.err)" -ge 5 ]
rm -f ra.raw; vmback -q restore --repo "$TW" a@latest ra.raw; cmp ra.raw a.raw
vmback -q verify --repo "$TW"
# a server that keeps answering 503 or never answers: one clear error
# (each waits out the whole backoff: not in the sanitizer run)
if [ -z "${VMBACK_TEST_QUICK:-}" ]; then
  expect_fail "SlowDown|503" env VMBACK_FAIL_AT='s3-503:1+' "$VMBACK" repo info --repo "$TW"
  expect_fail "timed out.*after retries" env VMBACK_FAIL_AT='s3-timeout:1+' "$VMBACK" repo info --repo "$TW"
fi

# ---- https (the fixture's radosgw also listens with TLS, its certificate
# made for 127.0.0.1 by a CA of this run)
HS="--s3-endpoint $FIXTURE_HTTPS_URL --s3-ca $FIXTURE_CA"
poke_pattern tls.raw 0 $((3 << 20)) $((SEED + 40))
vmback $HS -q repo init --chunk-size 256K "s3://$B/tls"
vmback $HS -q backup --repo "s3://$B/tls" tls.raw
vmback $HS -q restore --repo "s3://$B/tls" latest rtls.raw
cmp rtls.raw tls.raw
AWS_CA_BUNDLE=$FIXTURE_CA vmback --s3-endpoint "$FIXTURE_HTTPS_URL" -q verify --repo "s3://$B/tls"
n_tls=$(s3keys tls/ | wc -l)
expect_fail "certificate.*--s3-ca FILE or .AWS_CA_BUNDLE" vmback --s3-endpoint "$FIXTURE_HTTPS_URL" backup --repo "s3://$B/tls" tls.raw
expect_fail "certificate" vmback --s3-endpoint "$FIXTURE_HTTPS_URL" repo init "s3://$B/tls2"
[ "$(s3keys tls/ | wc -l)" -eq "$n_tls" ]; [ -z "$(s3keys tls2/)" ]

# ---- bad input: an unreachable endpoint; a prefix that holds objects but
# no repository; nothing is written by either
expect_fail "connect|refused" vmback --s3-endpoint http://127.0.0.1:9 repo info --repo "$TW"
n_before=$(s3keys two/ | wc -l)
expect_fail "not a vmback repository|no repository|does not hold" vmback repo info --repo "$TW/chunks"
expect_fail "not a vmback repository|no repository|does not hold" vmback -q backup --repo "$TW/chunks" a.raw
[ "$(s3keys two/ | wc -l)" -eq "$n_before" ]

# ---- radosgw killed mid-backup: the backup fails with a clear error and
# no partial point is visible; after a restart the next backup succeeds
poke_pattern big2 0 $((96 << 20)) $((SEED + 30))   # 6 packs: the kill comes after the first
npts=$(npoints "$TW")
"$VMBACK" -q backup --repo "$TW" big2 > kb.out 2> kb.err & KB=$!
np0=$(s3keys two/packs/ | wc -l)
for _ in $(seq 500); do [ "$(s3keys two/packs/ | wc -l)" -le "$np0" ] || break; sleep 0.02; done
"$FIXTURE" rgw-kill "$T/ceph"
rc=0; wait $KB || rc=$?
cat kb.err
[ $rc = 1 ]; [ "$(wc -l < kb.err)" -le 2 ]; grep -q "s3://\|bucket\|connect" kb.err
"$FIXTURE" rgw-start "$T/ceph"
[ "$(npoints "$TW")" -eq "$npts" ]
vmback -q backup --repo "$TW" big2
[ "$(npoints "$TW")" -eq $((npts + 1)) ]
vmback -q verify --repo "$TW"
rm -f rbig2; vmback -q restore --repo "$TW" big2@latest rbig2; cmp rbig2 big2
echo OK
