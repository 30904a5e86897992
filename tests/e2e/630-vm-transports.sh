#!/bin/bash
# Transports (docs/transports.md): the same VM backed up through san, hotadd,
# nbd and nbdssl moves the same bytes; auto falls through san -> hotadd ->
# nbd and records what it used; an incremental over nbd reads only the
# changed chunks; nbdssl refuses a server without TLS and its export
# refuses clients without the key; an NBD server that dies mid-disk fails
# the backup cleanly (no snapshot left, no point, earlier points intact).
. "$(dirname "$0")/functions.sh"
requires python3 nbdkit nbdinfo
cd "$T"
export VMBACK_REPO=$T/repo
vmback -q repo init --chunk-size 256K repo
[ -e "$VMBACK_BUILD/nbdkit-vmback-vdisk.so" ] || { echo "SKIP: nbdkit plugin not built"; exit 77; }

cur () { echo "$(dirname "$1")/$(sed -n "s/^$2\.fileName = \"\(.*\)\"$/\1/p" "$1")"; }
vsha () { vmback disk read "$1" | sha256sum | cut -d' ' -f1; }
jget () { python3 -c "import json,sys; j=json.load(open('$1')); print($2)"; }
npoints () { vmback --json list | python3 -c "import json,sys; print(len(json.load(sys.stdin)['points']))"; }
no_snapshots () { [ "$(vmback vm snapshot list "$1")" = "no snapshots" ]; }
# sha256 of disk KEY of point P, restored to a raw file
psha () { vmback -q restore --disk "$2" "$1" --to "r-$3" >/dev/null; vsha "$(cur r-$3/v.vmx "$2")"; rm -rf "r-$3"; }

# a VM with a flat (vmfs) disk and a hosted sparse one, with data
V=ds/v/v.vmx
vmback -q vm create $V --disk 48M:vmfs --disk 32M --ctk
mkpattern p1 $((5 << 20)) 1
vmback disk write "$(cur $V scsi0:0)" --offset $((1 << 20)) < p1
vmback disk write "$(cur $V scsi0:1)" --offset $((7 << 20)) < p1
S0=$(vsha "$(cur $V scsi0:0)"); S1=$(vsha "$(cur $V scsi0:1)")

# can this host attach loop devices (root, /dev/loop-control)?
HOTADD=0
truncate -s 1M lt.img
if L=$(losetup -r -f --show lt.img 2>/dev/null); then losetup -d "$L"; HOTADD=1; fi

# ---- each transport: a full backup of the same state, the same bytes
for t in san nbd nbdssl; do
  vmback --json backup --full --transport $t $V > b-$t.json 2> b-$t.err
  cat b-$t.err
  [ "$(jget b-$t.json 'j["transport"]')" = "$t" ]
  grep -q "disk scsi0:1: transport $t" b-$t.err
  no_snapshots $V
  P=$(jget b-$t.json 'j["id"]')
  [ "$(psha "$P" scsi0:0 $t)" = "$S0" ]
  [ "$(psha "$P" scsi0:1 $t)" = "$S1" ]
  # same chunks read whatever the transport (holes skipped by block status)
  [ "$(jget b-$t.json 'j["disks"][0]["chunks-read"]')" = "$(jget b-san.json 'j["disks"][0]["chunks-read"]')" ]
done

# hotadd: a flat disk only; the sparse one says why it cannot
N=$(npoints)
if [ $HOTADD = 1 ]; then
  expect_fail "scsi0:1: hotadd: unavailable: .*not one flat extent" \
    vmback -q backup --transport hotadd $V
  no_snapshots $V
  [ "$(npoints)" = "$N" ]
  # a VM with flat disks only
  W=ds/w/w.vmx
  vmback -q vm create $W --disk 16M:vmfs --disk 8M:vmfs
  vmback disk write "$(cur $W scsi0:1)" --offset 4096 < p1 2>/dev/null || \
    head -c $((3 << 20)) p1 | vmback disk write "$(cur $W scsi0:1)" --offset 4096
  vmback --json backup --transport hotadd $W > b-hot.json
  [ "$(jget b-hot.json 'j["transport"]')" = hotadd ]
  no_snapshots $W
  WP=$(jget b-hot.json 'j["id"]')
  vmback -q restore "$WP" --to rw
  [ "$(vsha "$(cur rw/w.vmx scsi0:1)")" = "$(vsha "$(cur $W scsi0:1)")" ]
  refute grep -q "$T/" <(losetup -a)   # nothing left attached
else
  echo "NOTE: loop devices cannot be attached here; hotadd checks skipped"
  expect_fail "hotadd: unavailable" vmback -q backup --transport hotadd $V
fi

# ---- auto: san first; with san failing, hotadd for the flat disk, nbd
# for the sparse one (nbd for both where loop devices are unavailable)
vmback --json backup $V > b-auto.json 2> b-auto.err
[ "$(jget b-auto.json 'j["transport"]')" = san ]
VMBACK_FAIL_AT='transport-san:1+' vmback --json backup $V > b-auto2.json 2> b-auto2.err
cat b-auto2.err
grep -q "note: san: unavailable: .*; trying the next transport" b-auto2.err
if [ $HOTADD = 1 ]; then
  [ "$(jget b-auto2.json 'j["transport"]')" = "hotadd+nbd" ]
  grep -q "disk scsi0:0: transport hotadd" b-auto2.err
else
  [ "$(jget b-auto2.json 'j["transport"]')" = "nbd" ]
fi
grep -q "disk scsi0:1: transport nbd" b-auto2.err
P=$(jget b-auto2.json 'j["id"]')
[ "$(psha "$P" scsi0:0 a)" = "$S0" ]; [ "$(psha "$P" scsi0:1 a)" = "$S1" ]
# without the nbd module next to the binary: nbd is unavailable, auto
# still works through san
N=$(npoints)
mkdir nomod
expect_fail "nbd: unavailable: .*nomod/vmback-nbd.so: cannot open" \
  env VMBACK_MODULE_DIR=$T/nomod "$VMBACK" -q backup --transport nbd $V
no_snapshots $V
[ "$(npoints)" = "$N" ]
VMBACK_MODULE_DIR=$T/nomod vmback --json backup $V > b-nomod.json
[ "$(jget b-nomod.json 'j["transport"]')" = san ]
N=$(npoints)
# every transport failing: a clear error, no point, no snapshot
expect_fail "no transport can read" env VMBACK_FAIL_AT='transport-san:1+,transport-hotadd:1+,transport-nbd:1+' \
  "$VMBACK" -q backup $V
no_snapshots $V
[ "$(npoints)" = "$N" ]

# ---- incremental over nbd reads only the changed chunks (256 KiB each)
head -c 100 /dev/urandom | vmback disk write "$(cur $V scsi0:0)" --offset $((20 << 20))
head -c 300 /dev/urandom | vmback disk write "$(cur $V scsi0:1)" --offset $(( (3 << 20) - 100 ))
vmback --json backup --transport nbd $V > b-inc.json
[ "$(jget b-inc.json 'j["disks"][0]["chunks-read"]')" = 1 ]
[ "$(jget b-inc.json 'j["disks"][1]["chunks-read"]')" = 2 ]
[ "$(jget b-inc.json 'j["disks"][0]["change-id-used"]')" != "*" ]
P=$(jget b-inc.json 'j["id"]')
[ "$(psha "$P" scsi0:1 i)" = "$(vsha "$(cur $V scsi0:1)")" ]

# ---- a disk image through a transport
vmback disk create --size 8M img.vmdk >/dev/null
head -c $((2 << 20)) p1 | vmback disk write img.vmdk --offset 65536
vmback --json backup --transport nbdssl img.vmdk > b-img.json
[ "$(jget b-img.json 'j["transport"]')" = nbdssl ]
vmback -q restore "$(jget b-img.json 'j["id"]')" img-r.raw
cmp img-r.raw <(vmback disk read img.vmdk)

# ---- nbdssl's cipher: with a pre-shared key GnuTLS alone settles on
# ChaCha20-Poly1305; where the CPU has AES instructions the server is told
# to prefer AES-GCM, unless the system has a GnuTLS policy of its own
if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo && [ ! -e /etc/gnutls/config ] \
   && [ -z "${GNUTLS_SYSTEM_PRIORITY_FILE:-}" ]; then
  GNUTLS_DEBUG_LEVEL=4 vmback -q backup --transport nbdssl img.vmdk 2> cipher.err
  grep "Selected cipher suite" cipher.err
  grep -q "Selected cipher suite: GNUTLS_AES_128_GCM" cipher.err
  refute grep -q "Selected cipher suite: GNUTLS_CHACHA20" cipher.err
  : > policy.conf     # a system policy (empty): left as it is
  GNUTLS_SYSTEM_PRIORITY_FILE=$T/policy.conf GNUTLS_DEBUG_LEVEL=4 \
    vmback -q backup --transport nbdssl img.vmdk 2> cipher2.err
  grep "Selected cipher suite" cipher2.err
  grep -q "Selected cipher suite: GNUTLS_CHACHA20_POLY1305" cipher2.err
else
  echo "NOTE: no AES instructions or a GnuTLS policy here; cipher checks skipped"
fi

# ---- nbdssl: refuses a server that offers no TLS ...
cat > notls.sh <<'SH'
#!/bin/bash
args=(); for a in "$@"; do case $a in --tls*) ;; *) args+=("$a") ;; esac; done
exec nbdkit "${args[@]}"
SH
chmod +x notls.sh
N=$(npoints)
expect_fail "nbdssl: .*(TLS|tls)" env VMBACK_NBDKIT=$T/notls.sh "$VMBACK" -q backup --transport nbdssl $V
no_snapshots $V
[ "$(npoints)" = "$N" ]
# ... and the export it starts refuses clients without the right key
echo "vmback:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > good.psk
echo "vmback:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > bad.psk
chmod 600 good.psk bad.psk
nbdkit -f -U "$T/tls.sock" -P "$T/tls.pid" --tls=require --tls-psk="$T/good.psk" -r \
  "$VMBACK_BUILD/nbdkit-vmback-vdisk.so" file="$(cur $V scsi0:0)" &
cleanup_fn "kill \$(cat $T/tls.pid) 2>/dev/null"
for i in $(seq 50); do [ -S tls.sock ] && break; sleep 0.1; done
refute nbdinfo --size "nbd+unix:///?socket=$T/tls.sock" 2> plain.err
refute nbdinfo --size "nbds+unix://vmback@/?socket=$T/tls.sock&tls-psk-file=$T/bad.psk" 2> bad.err
[ "$(nbdinfo --size "nbds+unix://vmback@/?socket=$T/tls.sock&tls-psk-file=$T/good.psk")" = $((48 << 20)) ]
kill "$(cat tls.pid)"

# ---- the NBD server dies mid-disk
P_BEFORE=$(vmback --json list v | python3 -c "import json,sys; print(json.load(sys.stdin)['points'][-1]['id'])")
N=$(npoints)
# (the first server's pid: the next disk's server starts while a disk is read)
cat > slow.sh <<SH
#!/bin/bash
(set -C; echo \$\$ > $T/slow.pid) 2> /dev/null
exec nbdkit --filter=delay "\$@" rdelay=30ms
SH
chmod +x slow.sh
rm -f slow.pid
VMBACK_NBDKIT=$T/slow.sh vmback backup --full --transport nbd $V > /dev/null 2> died.err &
BG=$!
for i in $(seq 100); do [ -s slow.pid ] && break; sleep 0.05; done
sleep 0.5
kill -9 "$(cat slow.pid)"
rc=0; wait $BG || rc=$?
cat died.err
[ $rc = 1 ]
grep -q "^vmback: disk scsi0:0: nbd" died.err
no_snapshots $V
[ "$(npoints)" = "$N" ]
# a read that fails mid-disk (injected), the same
expect_fail "transport-read|read at" env VMBACK_FAIL_AT='transport-read:5=ECONNRESET' \
  "$VMBACK" -q backup --full --transport nbd $V
no_snapshots $V
[ "$(npoints)" = "$N" ]
vmback -q verify
[ "$(psha "$P_BEFORE" scsi0:1 b)" = "$(vsha "$(cur $V scsi0:1)")" ]
# the next run succeeds
vmback -q backup --transport nbd $V
[ "$(npoints)" = $((N + 1)) ]
echo OK
