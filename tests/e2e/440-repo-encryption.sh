#!/bin/bash
# Encrypted repositories: no plaintext of the backed-up disk (a 1 MiB
# pattern repeated, a compressible and a random variant) is found in any
# repository file, nor plaintext-hash chunk names, nor the passphrase or
# key-file secret; an unencrypted repository of the same disk DOES hold the
# random pattern (the search works). A wrong passphrase or key file gives a
# one-line error and writes nothing; --key-file and $VMBACK_KEY_FILE work;
# repository files are 0600 and directories 0700 even under umask 022.
# A chunk whose blob is damaged, or replaced by another chunk's valid blob,
# fails verify naming that chunk.  Also run on S3 by 510-s3-suite:
# repo_url/repo_fetch/repo_put (functions.sh) reach the objects there; file
# modes are local only.  Locally the repositories are loose (a
# "chunks/ab/<id>" object per chunk), on S3 packed (blobs in "packs/"
# objects found through "packidx/" objects): chunk_ids and chunk_loc
# (functions.sh) see the chunks in either layout.
. "$(dirname "$0")/functions.sh"
requires python3
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
cd "$T"
umask 022
PASS='Corr3ct-horse:battery staple/440'
export VMBACK_PASSPHRASE=$PASS
LOG=$T/out.log
: > "$LOG"
vb () { vmback "$@" >> "$LOG" 2>&1; }   # every output goes to the log

# the patterns: R = 1 MiB random, C = 1 MiB of text (compresses well)
mkpattern R $((1 << 20)) "$SEED"
python3 - C <<'PY'
import sys
out = bytearray(); i = 0
while len(out) < 1 << 20:
    out += b"vmback-secret-line %07d: the quick brown fox jumps over the lazy dog\n" % i; i += 1
open(sys.argv[1], 'wb').write(out[:1 << 20])
PY
# a disk: the pattern 6 times chunk-aligned, then once more at an odd offset
mkdisk () {
  : > "$2"
  for i in 0 1 2 3 4 5; do cat "$1" >> "$2"; done
  head -c 12345 /dev/zero >> "$2"; cat "$1" >> "$2"
  truncate -s 8M "$2"
}
mkdisk R dr.raw
mkdisk C dc.raw
# number of places any of several 64-byte windows of PATTERN occurs in the
# files under DIR (every file, every byte)
count_windows () {
  python3 - "$1" "$2" <<'PY'
import os,sys
pat = open(sys.argv[2], 'rb').read()
wins = [pat[o:o + 64] for o in (0, 1000, 65543, 333333, 524288, len(pat) - 64)]
hits = 0
for root, dirs, files in os.walk(sys.argv[1]):
    for f in files:
        data = open(os.path.join(root, f), 'rb').read()
        for w in wins:
            hits += data.count(w)
print(hits)
PY
}
# CMD must fail (a plain "! CMD" is not checked under set -e)
absent () { if "$@"; then echo "unexpectedly found: $*"; exit 1; fi; }
sha_of () { sha256sum < "$1" | cut -d' ' -f1; }
perms_ok () {   # files 0600, directories 0700 (S3 objects have no modes)
  [ -z "${VMBACK_TEST_S3_REPO:-}" ] || return 0
  set -- "$T/$1"
  [ -z "$(find "$1" -type f ! -perm 600)" ] || { find "$1" -type f ! -perm 600 -ls; return 1; }
  [ -z "$(find "$1" -type d ! -perm 700)" ] || { find "$1" -type d ! -perm 700 -ls; return 1; }
}

# ---- sanity: an unencrypted repository holds the random pattern in clear
PL=$(repo_url plain) EN=$(repo_url enc) KR=$(repo_url kr)
vb repo init "$PL"
vb backup --repo "$PL" dr.raw
[ "$(count_windows "$(repo_fetch plain)" R)" -gt 0 ]
# ... and names the chunk of R after its SHA-256
chunk_ids plain > plain.ids
grep -qx "$(sha_of R)" plain.ids

# ---- encrypted, passphrase from the environment
vb repo init --encrypt "$EN"
vmback --json repo info --repo "$EN" | python3 -c '
import json,sys; j=json.load(sys.stdin); assert j["encrypted"] is True and j["kdf"].startswith("scrypt"), j'
vb backup --repo "$EN" --name rnd dr.raw
vb backup --repo "$EN" --name txt dc.raw
vmback --json list --repo "$EN" | python3 -c '
import json,sys; p=json.load(sys.stdin)["points"]; assert len(p)==2, p'
ENC=$(repo_fetch enc)
for pat in R C; do
  n=$(count_windows "$ENC" $pat); echo "$pat windows in enc: $n"; [ "$n" -eq 0 ]
done
absent grep -rqF "vmback-secret-line" "$ENC"
absent grep -rqF "quick brown fox" "$ENC"
# chunk names are keyed (HMAC), not the plaintext's SHA-256
chunk_ids enc > enc.ids
[ -s enc.ids ]
absent grep -qx "$(sha_of R)" enc.ids
absent grep -qx "$(sha_of C)" enc.ids
# deduplication still works under encryption: 8 MiB of 1 MiB chunks with
# R six times -> far fewer than 16 chunks
nch=$(wc -l < enc.ids); echo "chunks: $nch"; [ "$nch" -le 8 ]
# bit-exact restores
vb restore --repo "$EN" rnd@latest r1.raw
cmp r1.raw dr.raw
vb restore --repo "$EN" txt@latest r2.vmdk
vmback disk read r2.vmdk | cmp - dc.raw
vb verify --repo "$EN"
perms_ok enc
perms_ok plain

# ---- wrong or missing passphrase: one-line error, nothing written
state () {   # every object's name and bytes (and locally: size, mode, time)
  local d; d=$(repo_fetch "$1")
  [ -n "${VMBACK_TEST_S3_REPO:-}" ] || (cd "$d" && find . -printf '%p %s %m %T@\n' | sort)
  (cd "$d" && find . -type f -exec sha256sum {} + | sort)
}
state enc > before
for cmd in "backup --repo $EN --name rnd dr.raw" "list --repo $EN" "verify --repo $EN" \
           "restore --repo $EN rnd@latest w.raw" "gc --repo $EN" "prune --repo $EN --keep-last 1" \
           "repo info --repo $EN"; do
  # shellcheck disable=SC2086
  VMBACK_PASSPHRASE=wrong-passphrase expect_fail "wrong passphrase" vmback $cmd
  cat "$T/stderr" >> "$LOG"
  # shellcheck disable=SC2086
  expect_fail "encrypted|passphrase" env -u VMBACK_PASSPHRASE "$VMBACK" $cmd < /dev/null
  cat "$T/stderr" >> "$LOG"
done
[ ! -e w.raw ]
state enc > after
diff before after
[ -z "$(repo_objects enc | grep '^locks/' || true)" ]

# ---- a damaged encrypted chunk is caught (authentication tag): one byte
# flipped inside its blob (its own object, or its place in a pack)
repo_clone enc enc2
id=$(head -1 enc.ids)
chunk_loc enc2 "$id" > loc
read -r key off len < loc
[ "$len" -gt 41 ]
cp "$(repo_fetch enc2)/$key" bad
python3 -c 'import sys; o=int(sys.argv[2]); f=open(sys.argv[1],"r+b"); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^1]))' bad $((off + 40))
repo_put enc2 "$key" bad
rc=0; vmback verify --repo "$(repo_url enc2)" > /dev/null 2> v.err || rc=$?
cat v.err >> "$LOG"; [ $rc -eq 1 ]; grep -qF "$id" v.err
# a valid blob of another chunk under this chunk's name (the id is bound):
# loose, chunk B's object stored as chunk A's; packed, A's blob in its pack
# overwritten by B's blob of the same length (random 1 MiB chunks encrypt
# to blobs of equal length: dr.raw dedups to one such chunk, so enc3 also
# gets the two of a fresh 2 MiB random disk)
repo_clone enc enc3
mkpattern r2.raw $((2 << 20)) $((SEED + 1))
vb backup --repo "$(repo_url enc3)" --name rnd2 r2.raw
chunk_ids enc3 > enc3.ids
: > locs
while read -r c; do
  chunk_loc enc3 "$c" > loc
  echo "$c $(cat loc)" >> locs
done < enc3.ids
cat locs
E3=$(repo_fetch enc3)
if grep -q ' chunks/' locs; then
  mapfile -t cs < <(head -2 enc3.ids)
  read -r _ akey _ _ < <(grep "^${cs[0]} " locs)
  read -r _ bkey _ _ < <(grep "^${cs[1]} " locs)
  repo_put enc3 "$akey" "$E3/$bkey"
  victim=${cs[0]}
else
  # the first two chunks whose blobs have the same length
  read -r victim akey aoff alen bkey boff blen < <(python3 - locs <<'PY'
import sys
seen = {}
for line in open(sys.argv[1]):
    c, key, off, ln = line.split()
    if ln in seen:
        print(*seen[ln], key, off, ln)
        break
    seen[ln] = (c, key, off, ln)
PY
  ) || true
  [ -n "${victim:-}" ] || { echo "no two chunks with blobs of equal length in enc3"; exit 1; }
  [ "$alen" -eq "$blen" ]
  cp "$E3/$akey" swapped
  python3 - swapped "$aoff" "$E3/$bkey" "$boff" "$blen" <<'PY'
import sys
f = open(sys.argv[3], 'rb'); f.seek(int(sys.argv[4])); blob = f.read(int(sys.argv[5]))
assert len(blob) == int(sys.argv[5])
g = open(sys.argv[1], 'r+b'); g.seek(int(sys.argv[2])); old = g.read(len(blob))
assert len(old) == len(blob) and old != blob
g.seek(int(sys.argv[2])); g.write(blob)
PY
  repo_put enc3 "$akey" swapped
fi
rc=0; vmback verify --repo "$(repo_url enc3)" > /dev/null 2> v.err || rc=$?
cat v.err >> "$LOG"; [ $rc -eq 1 ]; grep -qF "$victim" v.err

# ---- --key-file: the file's bytes are the secret
head -c 48 /dev/urandom | base64 -w0 > kf; echo >> kf; chmod 600 kf
SECRET=$(head -1 kf)
head -c 48 /dev/urandom | base64 -w0 > badkf
unset VMBACK_PASSPHRASE
vb repo init --encrypt --key-file kf "$KR"
vb backup --repo "$KR" --key-file kf dr.raw
VMBACK_KEY_FILE=$T/kf vb backup --repo "$KR" --name txt dc.raw
vb list --repo "$KR" --key-file kf
expect_fail "wrong passphrase|key file" vmback list --repo "$KR" --key-file badkf
expect_fail "wrong passphrase|key file" vmback backup --repo "$KR" --key-file badkf dc.raw
expect_fail "no such file|cannot (open|read)" vmback list --repo "$KR" --key-file nosuch
expect_fail "encrypted|passphrase|key" vmback list --repo "$KR" < /dev/null
# a passphrase is not the key file
VMBACK_PASSPHRASE=$PASS expect_fail "wrong passphrase" vmback list --repo "$KR"
vb restore --repo "$KR" --key-file kf dr@latest k1.raw
cmp k1.raw dr.raw
VMBACK_KEY_FILE=$T/kf vb restore --repo "$KR" txt@latest k2.raw
cmp k2.raw dc.raw
vb verify --repo "$KR" --key-file kf
KRD=$(repo_fetch kr)
for pat in R C; do [ "$(count_windows "$KRD" $pat)" -eq 0 ]; done
perms_ok kr

# ---- the secrets appear in no output and no repository file
cat "$LOG"
[ -s "$LOG" ]
absent grep -qF "$PASS" "$LOG"
ALL=("$(repo_fetch enc)" "$KRD" "$(repo_fetch plain)")
absent grep -rqF "$PASS" "${ALL[@]}"
absent grep -qF "$SECRET" "$LOG"
absent grep -rqF "$SECRET" "${ALL[@]}"
grep -qF "$SECRET" kf     # (the search itself works)
