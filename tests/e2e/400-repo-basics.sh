#!/bin/bash
# Repository basics: init, info, first backup full, then incremental by
# change tracking, dedup without tracking, list --json order, restore.
. "$(dirname "$0")/functions.sh"
cd "$T"
R=$(repo_url repo)
vmback repo init "$R"
expect_fail "already holds a repository" vmback repo init "$R"
expect_fail "chunk size" vmback repo init --chunk-size 3000 "$(repo_url repo2)"
vmback repo init --chunk-size 256K --compression 5 "$(repo_url repo3)"
vmback --json repo info --repo "$(repo_url repo3)" | python3 -c '
import json,sys; j=json.load(sys.stdin); assert j["chunk-size"]==262144 and j["compression-level"]==5, j'
export VMBACK_REPO=$R
if [ -z "${VMBACK_TEST_S3_REPO:-}" ]; then   # modes (objects have none on S3)
  [ "$(stat -c %a repo)" = 700 ]
  [ "$(stat -c %a repo/config)" = 600 ]
fi
[ "$(repo_objects repo | tr "\n" " ")" = "config keys/repokey " ]

# a tracked disk: full, then an incremental that reads only changed chunks
vmback disk create --type monolithicSparse --size 64M --ctk d.vmdk
poke_pattern p 0 $((10 << 20)) 1
vmback disk write d.vmdk --offset 0 < p
vmback --json backup d.vmdk > b1.json
python3 - b1.json <<'PY'
import json,sys; j=json.load(open(sys.argv[1])); d=j["disks"][0]
assert d["change-id-used"]=="*" and d["chunks-new"]==10 and d["chunks-zero"]==54, d
PY
echo x | vmback disk write d.vmdk --offset $((40 << 20))
vmback --json backup d.vmdk > b2.json
python3 - b2.json <<'PY'
import json,sys; j=json.load(open(sys.argv[1])); d=j["disks"][0]
assert d["change-id-used"]!="*", d
assert d["chunks-read"]==1 and d["bytes-read"]==1<<20 and d["chunks-reused"]==10, d
PY
# an untracked raw disk: full reads each time, but only new chunks are stored
vmback disk convert d.vmdk r.raw
vmback --json backup r.raw > b3.json
vmback --json backup r.raw > b4.json
python3 - b3.json b4.json <<'PY'
import json,sys
a=json.load(open(sys.argv[1]))["disks"][0]; b=json.load(open(sys.argv[2]))["disks"][0]
assert a["chunks-new"]==0 and a["chunks-reused"]==11, a   # same bytes as d.vmdk: all deduplicated
assert b["chunks-new"]==0 and b["change-id-used"]=="*", b
PY
vmback --json list > l.json
python3 - l.json <<'PY'
import json,sys; p=json.load(open(sys.argv[1]))["points"]
assert len(p)==4, p
assert [x["source"] for x in p]==["d","d","r","r"], p
assert p[1]["parent"]==p[0]["id"]
PY
vmback list d | grep -c "^d/" | grep -qx 2
vmback restore d@latest out.vmdk
vmback disk read d.vmdk | cmp - <(vmback disk read out.vmdk)
vmback restore latest out2.raw
cmp out2.raw r.raw
expect_fail "file exists" vmback restore latest out2.raw
expect_fail "no restore point|not found|no point" vmback restore nosuch out3.raw
[ ! -e out3.raw ]
unset VMBACK_REPO
expect_fail "no repository" vmback list
# S3 support is a module next to the binary, loaded on first use
mkdir nomod
expect_fail "^vmback: s3://b/p: S3 repositories need the S3 module: .*nomod/vmback-s3.so: cannot open" \
  env VMBACK_MODULE_DIR=$PWD/nomod "$VMBACK" list --repo s3://b/p
[ "$(VMBACK_MODULE_DIR=$PWD/nomod "$VMBACK" list --repo s3://b/p 2>&1 | wc -l)" = 1 ]
[ -e "$(dirname "$VMBACK")/vmback-s3.so" ]
