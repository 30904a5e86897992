#!/bin/bash
# A real single-node Ceph cluster (1 mon, 1 OSD on memstore, radosgw; no
# mgr: S3 does not need one) as an S3 endpoint for tests, everything in
# one directory and bound to 127.0.0.1.
#
#   tests/s3/ceph-fixture.sh start DIR [PORT]   start; writes DIR/env
#   tests/s3/ceph-fixture.sh stop DIR           stop every daemon of DIR
#   tests/s3/ceph-fixture.sh rgw-kill DIR       SIGKILL radosgw (a crash)
#   tests/s3/ceph-fixture.sh rgw-start DIR [PORT]  start it again, wait
#                                               until it answers
#
# DIR/env holds shell assignments (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION, CEPH_CONF): `. DIR/env`.  radosgw
# also answers https on PORT+1 with a certificate for 127.0.0.1 signed by
# a CA made for the run (FIXTURE_HTTPS_URL, FIXTURE_CA in DIR/env).  start
# prints nothing else on success; on failure it prints one line naming
# the step and the log to read, stops what it started and exits 1 (exit 77
# when Ceph is not installed or we are not root, so tests can skip).
# Needs: ceph-mon ceph-osd radosgw ceph-common (scripts/install-deps).
set -euo pipefail

cmd=${1:-}
DIR=${2:-}
PORT=${3:-${CEPH_FIXTURE_PORT:-7480}}
TLS_PORT=$((PORT + 1))
# the monitor's port moves with PORT, so fixtures on other ports can run
# side by side (7480 -> 3300, 7490 -> 3310, ...)
MON_PORT=$((3300 + PORT - 7480))
if [ -z "$cmd" ] || [ -z "$DIR" ]; then
  echo "usage: $0 start|stop|rgw-kill|rgw-start DIR [PORT]" >&2
  exit 2
fi

# Stop the daemons listed in DIR/pids: radosgw first (its shutdown talks to
# the OSD), then the OSD (it waits for the mon's ack), then the mon; each
# phase is waited for, SIGKILL after 5 s.
stop_all () {
  local d=$1
  [ -f "$d/pids" ] || return 0
  local phase name pid
  for phase in radosgw osd mon; do
    local wait_for=()
    while read -r name pid; do
      [ "$name" = "$phase" ] || continue
      if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_for+=("$pid")
      fi
    done < "$d/pids"
    local p
    for p in "${wait_for[@]}"; do
      local i=0
      while alive "$p" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
      if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    done
  done
  rm -f "$d/pids"
}

# True if pid runs and is not a zombie.
alive () {
  local st
  st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# Fail: name the step, stop everything, exit 1.
die () {
  echo "ceph-fixture: $1 (logs in $DIR/log)" >&2
  stop_all "$DIR"
  exit 1
}

# Wait up to $1 seconds for the command after it to succeed.
wait_for () {
  local secs=$1; shift
  local end=$(( $(date +%s%N) + secs * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -lt "$end" ] || return 1
    sleep 0.05
  done
}

# glibc's malloc serves each 1 MiB message buffer with its own mmap and
# hands freed heap tops back to the kernel, so every request faults its
# buffers in afresh (and page faults are dear in a VM): half of the OSD's
# CPU went there.  Keep freed memory in the daemons' heaps instead.
# (Ceph is usually built with tcmalloc; Debian's packages use glibc.)
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824}

if [ "$cmd" = stop ]; then
  stop_all "$DIR"
  exit 0
fi
if [ "$cmd" = rgw-kill ]; then
  pid=$(awk '$1 == "radosgw" {print $2}' "$DIR/pids")
  [ -n "$pid" ] || { echo "ceph-fixture: no radosgw in $DIR/pids" >&2; exit 1; }
  kill -KILL "$pid"
  while alive "$pid"; do sleep 0.05; done
  sed -i '/^radosgw /d' "$DIR/pids"
  exit 0
fi
if [ "$cmd" = rgw-start ]; then
  radosgw -c "$DIR/ceph.conf" -n client.rgw.gw -f >> "$DIR/log/radosgw.out" 2>&1 &
  echo "radosgw $!" >> "$DIR/pids"
  wait_for 60 curl -sf -o /dev/null "http://127.0.0.1:$PORT/" || { echo "ceph-fixture: radosgw did not answer" >&2; exit 1; }
  exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop|rgw-kill|rgw-start DIR [PORT]" >&2; exit 2; }

for c in ceph-mon ceph-osd radosgw ceph-authtool monmaptool ceph radosgw-admin curl openssl; do
  command -v "$c" >/dev/null 2>&1 || { echo "ceph-fixture: $c is not installed (scripts/install-deps)" >&2; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "ceph-fixture: needs root" >&2; exit 77; }
for p in $PORT $TLS_PORT $MON_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "ceph-fixture: port $p on 127.0.0.1 is in use" >&2
    exit 1
  fi
done

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
rm -rf "${DIR:?}"/{mon,osd,rgw,run,crash,log,keyring,monmap,ceph.conf,env,pids,tls}
mkdir -p "$DIR"/{mon/ceph-a,osd/ceph-0,rgw/ceph-rgw.gw,run,crash,log,keyring,tls}
FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
CONF=$DIR/ceph.conf
# memstore (the default) starts fastest and holds everything in RAM;
# CEPH_FIXTURE_STORE=bluestore puts the OSD on a sparse file instead
# (slower to start, memory stays flat: for benchmarks and big tests).
case ${CEPH_FIXTURE_STORE:-memstore} in
  memstore) STORE_CONF="osd objectstore = memstore
memstore device bytes = ${CEPH_FIXTURE_MEMSTORE_BYTES:-4294967296}" ;;
  bluestore) STORE_CONF="osd objectstore = bluestore
bluestore block create = true
bluestore block size = ${CEPH_FIXTURE_BLUESTORE_BYTES:-21474836480}
bluestore fsck on mkfs = false
osd memory target = 1073741824" ;;
  *) echo "ceph-fixture: CEPH_FIXTURE_STORE must be memstore or bluestore" >&2; exit 2 ;;
esac
cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = $DIR/run
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000

[mon]
mon data = $DIR/mon/\$cluster-\$id
mon data avail warn = 1
mon data avail crit = 0
mgr initial modules = iostat
paxos propose interval = 0.05
paxos min wait = 0.01

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd crush update on start = true
osd crush initial weight = 1
$STORE_CONF

[client.admin]
keyring = $DIR/keyring/client.admin.keyring

[client.rgw.gw]
keyring = $DIR/keyring/client.rgw.gw.keyring
rgw data = $DIR/rgw/\$cluster-\$id
rgw frontends = beast endpoint=127.0.0.1:$PORT ssl_endpoint=127.0.0.1:$TLS_PORT ssl_certificate=$DIR/tls/rgw.pem ssl_private_key=$DIR/tls/rgw.key tcp_nodelay=1
EOF

# TLS: a CA for this run and radosgw's certificate for 127.0.0.1 (an IP
# subjectAltName: what curl checks for an IP endpoint)
T=$DIR/tls
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vmback test CA" \
  -keyout "$T/ca.key" -out "$T/ca.pem" > "$DIR/log/tls.out" 2>&1 || die "openssl (CA) failed"
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$T/rgw.key" \
  -out "$T/rgw.csr" >> "$DIR/log/tls.out" 2>&1 || die "openssl (request) failed"
printf 'subjectAltName=IP:127.0.0.1\n' > "$T/ext"
openssl x509 -req -in "$T/rgw.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
  -days 2 -extfile "$T/ext" -out "$T/rgw.pem" >> "$DIR/log/tls.out" 2>&1 || die "openssl (sign) failed"

# keys: all made before the mon's mkfs and imported into its keyring
K=$DIR/keyring
ceph-authtool --create-keyring "$K/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$K/client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool --create-keyring "$DIR/osd/ceph-0/keyring" --gen-key -n osd.0 \
  --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
ceph-authtool --create-keyring "$K/client.rgw.gw.keyring" --gen-key -n client.rgw.gw \
  --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
for k in client.admin client.rgw.gw; do
  ceph-authtool "$K/mon.keyring" --import-keyring "$K/$k.keyring" >/dev/null
done
ceph-authtool "$K/mon.keyring" --import-keyring "$DIR/osd/ceph-0/keyring" >/dev/null

monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$K/mon.keyring" \
  > "$DIR/log/mon-mkfs.out" 2>&1 || die "ceph-mon --mkfs failed"
: > "$DIR/pids"
ceph-mon -c "$CONF" -i a -f > "$DIR/log/mon.a.out" 2>&1 &
echo "mon $!" >> "$DIR/pids"
ceph -c "$CONF" --connect-timeout 30 osd new "$OSD_UUID" 0 > "$DIR/log/osd-new.out" 2>&1 \
  || die "ceph osd new failed"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" > "$DIR/log/osd-mkfs.out" 2>&1 \
  || die "ceph-osd --mkfs failed"
ceph-osd -c "$CONF" -i 0 -f > "$DIR/log/osd.0.out" 2>&1 &
echo "osd $!" >> "$DIR/pids"
radosgw -c "$CONF" -n client.rgw.gw -f > "$DIR/log/radosgw.out" 2>&1 &
echo "radosgw $!" >> "$DIR/pids"

osd_up () { ceph -c "$CONF" --connect-timeout 5 osd dump 2>/dev/null | grep -q '^osd.0 up'; }
wait_for 60 osd_up || die "osd.0 did not come up"
wait_for 60 curl -sf -o /dev/null "http://127.0.0.1:$PORT/" || die "radosgw did not answer"

AK=vmbacktest$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
SK=$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n')
radosgw-admin -c "$CONF" -n client.admin user create --uid=test --display-name=test \
  --access-key="$AK" --secret-key="$SK" > "$DIR/log/user.out" 2>&1 || die "radosgw-admin user create failed"
E3=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
signed_ls () {
  curl -sf -o /dev/null --user "$AK:$SK" --aws-sigv4 aws:amz:us-east-1:s3 \
    -H "x-amz-content-sha256: $E3" "http://127.0.0.1:$PORT/"
}
wait_for 30 signed_ls || die "signed ListBuckets did not succeed"

umask 077
cat > "$DIR/env" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export FIXTURE_HTTPS_URL=https://127.0.0.1:$TLS_PORT
export FIXTURE_CA=$DIR/tls/ca.pem
export AWS_ACCESS_KEY_ID=$AK
export AWS_SECRET_ACCESS_KEY=$SK
export AWS_REGION=us-east-1
export CEPH_CONF=$CONF
EOF
