#!/bin/bash
# The CLI answers --help everywhere and fails cleanly on misuse.
. "$(dirname "$0")/functions.sh"

vmback --help | grep -q "usage: vmback"
vmback --version | grep -Eq "^vmback [0-9]"
vmback disk --help | grep -q "vmback disk convert"
for sub in info create convert read write grow shrink defrag rename rm child merge map check; do
  vmback disk $sub --help | grep -q "usage: vmback disk $sub"
done
vmback cbt --help | grep -q "cbt query"
rc=0; vmback nosuchcommand 2>/dev/null || rc=$?; [ $rc -eq 2 ]
rc=0; vmback disk nosuch 2>/dev/null || rc=$?; [ $rc -eq 2 ]
rc=0; vmback disk create --size 1M 2>/dev/null || rc=$?; [ $rc -eq 2 ]
expect_fail "unknown disk type 'bogus'" vmback disk create --type bogus --size 1M "$T/x.vmdk"
expect_fail "cannot open '$T/missing.vmdk': No such file" vmback disk info "$T/missing.vmdk"
