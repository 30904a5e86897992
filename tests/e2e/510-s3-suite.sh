#!/bin/bash
# The repository end-to-end tests again, with every repository on S3 (a real
# single-node Ceph RGW, tests/s3/ceph-fixture.sh): repository basics (400),
# disk backup round trips (410), backups killed at random moments (420),
# encrypted repositories (440: no plaintext in any object, damage caught),
# in-place restores (460), whole-VM backup
# and restore (600) and VM disks added, removed, grown or failing (620) run
# unchanged except that repo_url (functions.sh) puts their repositories
# under s3://vmback-suite/<test>/ (repo_objects lists their objects,
# repo_fetch downloads them, repo_put replaces one).
# Skipped (exit 77) when Ceph is not installed or we are not root, and in
# the sanitizer run
# (VMBACK_TEST_QUICK): there 500-s3-repo covers the S3 backend's code.
# e2e: serial
. "$(dirname "$0")/functions.sh"
requires python3 curl
[ -z "${VMBACK_TEST_QUICK:-}" ] || { echo "SKIP: sanitizer run (500-s3-repo covers the S3 backend)"; exit 77; }
s3_fixture
tests="400-repo-basics 410-backup-roundtrip 420-backup-crash 440-repo-encryption 460-restore-in-place 600-vm-backup-restore 620-vm-backup-disk-changes"
for t in $tests; do
  rc=0
  VMBACK_TEST_S3_REPO=s3://vmback-suite/$t bash "$(dirname "$0")/$t.sh" > "$T/$t.log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    tail -n 30 "$T/$t.log"
    echo "$t failed on S3 (exit $rc)"
    exit 1
  fi
  # it really used S3: its points are listed there
  name=repo; [ "$t" != 440-repo-encryption ] || name=plain
  [ "$(vmback --json list --repo "s3://vmback-suite/$t/$name" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))')" -gt 0 ]
  echo "$t: OK on S3"
done
echo OK
