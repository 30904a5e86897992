# Shared helpers for the end-to-end tests (source it first).
#   requires CMD...      skip (exit 77) unless every command exists
#   cleanup_fn CMD...    run CMD at exit (register before creating things)
#   expect_fail PATTERN CMD...   CMD must fail and print PATTERN (grep -E) on stderr
#   refute CMD...        CMD must fail (not by a signal); for negative checks,
#                        since "! CMD" never stops a script under set -e
#   mkpattern FILE SIZE SEED     deterministic pseudo-random file
#   s3_fixture           start a Ceph RGW for this test (tests/s3/ceph-fixture.sh),
#                        stopped at exit; its AWS_* variables exported (skip when
#                        Ceph cannot run here); FIXTURE names the script
#   serve_bg NAME ARGS   `vmback serve ARGS` in the background, once it is
#                        ready; sets PID_NAME and URI_NAME; killed at exit
#   serve_stop NAME      SIGTERM that server and wait for it
#   repo_url NAME        where a test's repository NAME lives: $T/NAME, or
#                        NAME under $VMBACK_TEST_S3_REPO (tests/e2e/510-s3-suite.sh)
#   repo_objects NAME    the object names of that repository, either way
#   repo_fetch NAME      a local directory holding every object of it (the
#                        repository itself, or a fresh download from S3)
#   repo_put NAME KEY FILE   store FILE as object KEY of it (a damaged copy)
#   repo_clone NAME NEW  a byte-for-byte copy of repository NAME as NEW
#   chunk_ids NAME       the hex ids of every chunk stored in repository NAME,
#                        sorted, one a line, loose ("chunks/ab/<id>" objects)
#                        or packed (read from its "packidx/" objects)
#   chunk_loc NAME ID    "KEY OFFSET LENGTH": where chunk ID's blob is, the
#                        object "chunks/ab/ID" (offset 0, its whole size) or
#                        its pack "packs/ab/<pack id>" (from the pack index)
set -e
set -x
: "${VMBACK:?VMBACK must point at the vmback binary}"
T=$(mktemp -d /tmp/vmback-e2e.XXXXXX)
_cleanups=("rm -rf $T")
_run_cleanups () { for c in "${_cleanups[@]}"; do eval "$c" || true; done; }
trap _run_cleanups EXIT
cleanup_fn () { _cleanups=("$*" "${_cleanups[@]}"); }

requires () {
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || { echo "SKIP: $c not installed"; exit 77; }
  done
}

vmback () { "$VMBACK" "$@"; }

# CMD must fail with a one-line message matching PATTERN on stderr.
expect_fail () {
  local pat=$1; shift
  local rc=0
  "$@" 2> "$T/stderr" >/dev/null || rc=$?
  cat "$T/stderr"
  if [ $rc -eq 0 ]; then echo "expected failure: $*"; return 1; fi
  if [ $rc -ge 128 ]; then echo "crashed with signal: $*"; return 1; fi
  grep -Eq -- "$pat" "$T/stderr" || { echo "stderr does not match '$pat'"; return 1; }
  [ "$(wc -l < "$T/stderr")" -le 2 ] || { echo "error is not a one-liner"; return 1; }
}

# CMD must fail, without crashing.
refute () {
  local rc=0
  "$@" || rc=$?
  if [ $rc -eq 0 ]; then echo "expected to fail: $*"; return 1; fi
  if [ $rc -ge 128 ]; then echo "crashed with signal: $*"; return 1; fi
}

# Deterministic pseudo-random bytes.
mkpattern () {
  python3 -c "
import random,sys
r=random.Random(int(sys.argv[3])); n=int(sys.argv[2])
with open(sys.argv[1],'wb') as f:
    while n>0:
        k=min(n,1<<20); f.write(r.randbytes(k)); n-=k
" "$1" "$2" "$3"
}

# Write SIZE bytes of pattern SEED at OFFSET into a raw file (no truncation).
poke_pattern () {
  python3 -c "
import random,sys,os
r=random.Random(int(sys.argv[4]))
fd=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT,0o644)
os.pwrite(fd,r.randbytes(int(sys.argv[3])),int(sys.argv[2])); os.close(fd)
" "$1" "$2" "$3" "$4"
}

# serve_bg NAME ARGS...: a server in the background, waiting for its ready
# line (the URI is its last word); PID_NAME and URI_NAME are set
serve_bg () {
  local name=$1 pid i
  shift
  "$VMBACK" serve "$@" > "$T/$name.out" 2> "$T/$name.err" &
  pid=$!
  cleanup_fn "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  for i in $(seq 300); do
    [ -s "$T/$name.out" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then cat "$T/$name.err"; return 1; fi
    sleep 0.1
  done
  cat "$T/$name.out" "$T/$name.err"
  eval "PID_$name=$pid URI_$name=\$(awk '{print \$NF}' \"\$T/\$name.out\")"
}
# serve_stop NAME: SIGTERM, then wait for a clean exit
serve_stop () {
  local pid
  eval "pid=\$PID_$1"
  kill "$pid"
  wait "$pid" || true
}

# A test's repository: a directory, or an S3 prefix when the suite runs
# against S3.
repo_url () {
  if [ -n "${VMBACK_TEST_S3_REPO:-}" ]; then echo "$VMBACK_TEST_S3_REPO/$1"; else echo "$T/$1"; fi
}

# The object names (paths below the repository, e.g. "chunks/ab/ab..."),
# one a line, of repository NAME wherever repo_url puts it: a find of the
# directory, or a ListObjectsV2 of the S3 prefix (curl signs it; the keys
# stay out of the trace).
repo_objects () {
  if [ -z "${VMBACK_TEST_S3_REPO:-}" ]; then
    (cd "$T/$1" && find . -type f | sed 's|^\./||' | sort)
    return
  fi
  local prefix
  prefix=$(_s3_prefix "$1")
  _s3_req "?list-type=2&max-keys=1000&prefix=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$prefix")" \
    -H "x-amz-content-sha256: $_E3" \
    | python3 -c '
import sys, xml.etree.ElementTree as E
r = E.parse(sys.stdin).getroot(); ns = r.tag.split("}")[0] + "}" if r.tag.startswith("{") else ""
assert r.findtext(ns + "IsTruncated") != "true", "more than 1000 objects"
p = sys.argv[1]
print("\n".join(sorted(k.text[len(p):] for k in r.iter(ns + "Key"))))' "$prefix" | sed '/^$/d'
}

_E3=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855   # sha256 of ""
# The key prefix of repository NAME in the bucket of $VMBACK_TEST_S3_REPO.
_s3_prefix () { local u=${VMBACK_TEST_S3_REPO#s3://}/$1; echo "${u#*/}/"; }
# A signed request for PATH after the bucket ("/key" or "?query"):
# _s3_req PATH CURL-ARGS...  (the keys stay out of the trace)
_s3_req () {
  local bucket=${VMBACK_TEST_S3_REPO#s3://} path=$1; shift
  { set +x; } 2>/dev/null
  printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$T/.curl-objects"
  set -x
  curl -sf -K "$T/.curl-objects" --aws-sigv4 "aws:amz:${AWS_REGION:-us-east-1}:s3" "$@" \
    "${AWS_ENDPOINT_URL%/}/${bucket%%/*}$path"
}

# Every object of repository NAME in a local directory (printed): the
# repository's own directory, or a fresh download of its objects from S3.
repo_fetch () {
  if [ -z "${VMBACK_TEST_S3_REPO:-}" ]; then echo "$T/$1"; return; fi
  local d=$T/.fetch/$1 k
  rm -rf "$d"; mkdir -p "$d"
  for k in $(repo_objects "$1"); do
    mkdir -p "$d/$(dirname "$k")"
    _s3_req "/$(_s3_prefix "$1")$k" -o "$d/$k" -H "x-amz-content-sha256: $_E3"
  done
  echo "$d"
}

# Store FILE as object KEY of repository NAME (to damage it on purpose).
repo_put () {
  if [ -z "${VMBACK_TEST_S3_REPO:-}" ]; then cp "$3" "$T/$1/$2"; return; fi
  _s3_req "/$(_s3_prefix "$1")$2" -T "$3" -H "x-amz-content-sha256: $(sha256sum < "$3" | cut -d' ' -f1)" > /dev/null
}

# Repository NEW as a byte-for-byte copy of repository NAME.
repo_clone () {
  if [ -z "${VMBACK_TEST_S3_REPO:-}" ]; then rm -rf "${T:?}/$2"; cp -a "$T/$1" "$T/$2"; return; fi
  local d k
  d=$(repo_fetch "$1")
  for k in $(repo_objects "$1"); do repo_put "$2" "$k" "$d/$k"; done
}

# The bytes of object KEY of repository NAME, on stdout.
_repo_cat () {
  if [ -z "${VMBACK_TEST_S3_REPO:-}" ]; then cat "$T/$1/$2"; return; fi
  _s3_req "/$(_s3_prefix "$1")$2" -H "x-amz-content-sha256: $_E3"
}

# Every entry of every pack index object of repository NAME, in key order
# and in each in its own order: "CHUNK-ID PACK-ID OFFSET LENGTH" (hex ids),
# one a line, into file OUT.  A reader of its own (src/repo/packidx.c),
# not vmback's: little-endian "VMBPKIX1", packs P (u32), 0 (u32), entries
# N (u64), P pack ids of 32 bytes, N entries of 48 bytes (chunk id 32,
# pack number u32, length u32, offset u64), HMAC (32; not checked here).
_packidx_entries () {
  local d=$T/.packidx/$1 k n=0
  rm -rf "$d"; mkdir -p "$d"
  repo_objects "$1" > "$d.keys" || { echo "cannot list $1" >&2; return 1; }
  for k in $(grep '^packidx/' "$d.keys" || true); do
    n=$((n + 1))
    _repo_cat "$1" "$k" > "$d/$(printf %06d $n)" || { echo "cannot read $k of $1" >&2; return 1; }
  done
  python3 - "$d" > "$2" <<'PY' || { echo "bad pack index in $1" >&2; return 1; }
import os, struct, sys
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    b = open(os.path.join(d, f), 'rb').read()
    assert len(b) >= 24 + 32 and b[:8] == b"VMBPKIX1", (f, "not a pack index")
    np, zero, n = struct.unpack_from("<IIQ", b, 8)
    assert zero == 0 and 24 + 32 * np + 48 * n + 32 == len(b), (f, np, n, len(b))
    packs = [b[24 + 32 * i:56 + 32 * i].hex() for i in range(np)]
    for i in range(n):
        o = 24 + 32 * np + 48 * i
        cid = b[o:o + 32].hex()
        pack, ln, off = struct.unpack_from("<IIQ", b, o + 32)
        assert pack < np and ln > 0, (f, i, pack, ln)
        print(cid, packs[pack], off, ln)
PY
}

# The ids of the chunks of repository NAME: loose objects and pack index
# entries (a repository has one kind or the other).
chunk_ids () {
  local e=$T/.chunk-entries
  _packidx_entries "$1" "$e" || return 1
  { sed -n 's|^chunks/\([0-9a-f][0-9a-f]\)/\(\1[0-9a-f]\{62\}\)$|\2|p' "$T/.packidx/$1.keys"
    cut -d' ' -f1 "$e"; } | sort -u
}

# Where chunk ID of repository NAME is: "KEY OFFSET LENGTH" (the first pack
# index entry of it counts, as for vmback).
chunk_loc () {
  local key=chunks/${2:0:2}/$2 e=$T/.chunk-entries n
  if repo_objects "$1" | grep -qx "$key"; then
    n=$(_repo_cat "$1" "$key" | wc -c)
    [ "$n" -gt 0 ] || { echo "cannot read $key of $1" >&2; return 1; }
    echo "$key 0 $n"
    return
  fi
  _packidx_entries "$1" "$e" || return 1
  awk -v id="$2" '$1 == id { print "packs/" substr($2, 1, 2) "/" $2, $3, $4; found = 1; exit }
                  END { exit !found }' "$e" || { echo "no chunk $2 in $1" >&2; return 1; }
}

# A real S3 endpoint for this test: a single-node Ceph RGW in $T/ceph.
s3_fixture () {
  FIXTURE=$VMBACK_ROOT/tests/s3/ceph-fixture.sh
  local rc=0
  "$FIXTURE" start "$T/ceph" 2> "$T/fixture.err" || rc=$?
  if [ $rc -eq 77 ]; then echo "SKIP: $(cat "$T/fixture.err")"; exit 77; fi
  cleanup_fn "$FIXTURE" stop "$T/ceph"
  [ $rc -eq 0 ] || { cat "$T/fixture.err"; exit 1; }
  { set +x; } 2>/dev/null              # keep the keys out of the log
  . "$T/ceph/env"
  set -x
}
