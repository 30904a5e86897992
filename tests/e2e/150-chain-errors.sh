#!/bin/bash
# Broken chains give one-line errors: CID mismatch, missing parent, loops.
. "$(dirname "$0")/functions.sh"
cd "$T"
vmback disk create --type monolithicSparse --size 1M base.vmdk
vmback disk child base.vmdk c1.vmdk
vmback disk read c1.vmdk > /dev/null
# writing the parent after the child was made changes its CID
echo hello | vmback disk write base.vmdk --offset 0
expect_fail "CID mismatch: 'c1.vmdk' expects parent CID" vmback disk read c1.vmdk
# missing parent
vmback disk create --type monolithicSparse --size 1M b2.vmdk
vmback disk child b2.vmdk c2.vmdk
rm b2.vmdk
expect_fail "cannot open parent 'b2.vmdk' of 'c2.vmdk'" vmback disk info c2.vmdk
# a loop: a descriptor whose parent is itself, and a two-step loop
cat > loop1.vmdk <<D
# Disk DescriptorFile
version=1
CID=11111111
parentCID=22222222
createType="monolithicFlat"
parentFileNameHint="loop2.vmdk"
RW 2048 FLAT "l-flat.vmdk" 0
D
sed -e 's/loop2/loop1/' -e 's/CID=11111111/CID=22222222/' -e 's/parentCID=22222222/parentCID=11111111/' loop1.vmdk > loop2.vmdk
truncate -s 1M l-flat.vmdk
expect_fail "loops back" vmback disk read loop1.vmdk
sed -e 's/loop2/self/' loop1.vmdk > self.vmdk
expect_fail "loops back" vmback disk read self.vmdk
