#!/bin/bash
# Instant recovery with a real VM: a Linux guest (tests/guest/make-guest.sh:
# Debian's kernel and a busybox initramfs, QEMU with TCG) boots with its
# disk on `vmback serve --writable-overlay` of a VM backup, over NBD with
# QEMU's own client.  The guest mounts the ext4 file system, prints the
# content of the backed-up files on its console (checked here) and writes
# a file.  Afterwards the repository is unchanged (verify; a restore
# equals the backed-up disk), and a second server with the same overlay
# exports a disk whose file system is clean (e2fsck -n) and holds the
# guest's file, which the point itself does not.
# Skipped (exit 77, with the reason) without QEMU, e2fsprogs, the nbdkit
# plugin, or what the guest needs (busybox-static, cpio, the kernel
# package from apt).  The guest is built once into $VMBACK_GUEST_DIR
# (default BUILD/guest); $VMBACK_GUEST_ACCEL=kvm where KVM works.
. "$(dirname "$0")/functions.sh"
requires qemu-system-x86_64 mke2fs debugfs e2fsck nbdcopy python3
PLUGIN=${VMBACK_NBDKIT_PLUGIN:-$(dirname "$VMBACK")/nbdkit-vmback.so}
[ -f "$PLUGIN" ] || { echo "SKIP: the nbdkit plugin was not built (nbdkit-plugin-dev missing)"; exit 77; }
G=${VMBACK_GUEST_DIR:-$VMBACK_BUILD/guest}
rc=0
"$VMBACK_ROOT/tests/guest/make-guest.sh" "$G" 2> "$T/guest.err" || rc=$?
if [ $rc -eq 77 ]; then echo "SKIP: no test guest: $(cat "$T/guest.err")"; exit 77; fi
[ $rc -eq 0 ] || { cat "$T/guest.err"; exit 1; }
SEED=${SEED:-$RANDOM}; echo "seed=$SEED"
cd "$T"

# the VM: one 64 MiB disk holding an ext4 file system with two files
mkdir root
echo "backed-up-$SEED" > root/hello.txt
mkpattern root/data.bin $((3 << 20)) "$SEED"
DATA=$(sha256sum < root/data.bin | cut -d' ' -f1)
mke2fs -q -F -t ext4 -d root -L data fs.raw 64M
vmback -q vm create vm/g.vmx --disk 64M
vmback disk write vm/g.vmdk < fs.raw
export VMBACK_REPO=$T/repo
vmback -q repo init repo
vmback -q backup vm/g.vmx
find repo -type f -newer fs.raw -exec sha256sum {} + | sort > repo.before

# boot it from the point, writes going to the overlay
serve_bg s g@latest --unix "$T/s.sock" --writable-overlay ov.raw
# TCG by default: a /dev/kvm that opens may still not run guests (nested)
ACCEL=${VMBACK_GUEST_ACCEL:-tcg}
WRITE=written-by-guest-$SEED
timeout 300 qemu-system-x86_64 -machine q35,accel=$ACCEL -m 256 -smp 1 -no-reboot \
  -kernel "$G/vmlinuz" -initrd "$G/initrd.img" \
  -append "console=ttyS0 quiet panic=-1 guest.write=$WRITE" \
  -drive "file=$URI_s,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0 \
  -nodefaults -display none -serial file:console.log -monitor none
cat console.log
grep -q "^GUEST: vda 131072 sectors" console.log
grep -q "^GUEST: mounted" console.log
grep -q "^GUEST: hello backed-up-$SEED" console.log
grep -q "^GUEST: data $DATA" console.log
grep -q "^GUEST: wrote $WRITE" console.log
grep -q "^GUEST: unmounted" console.log
serve_stop s

# the repository is as it was: same objects, verify passes, the point
# restores to the backed-up disk
find repo -type f -newer fs.raw -path 'repo/locks/*' | grep . && exit 1
find repo -type f -newer fs.raw -exec sha256sum {} + | sort | cmp - repo.before
vmback -q verify
vmback -q restore g@latest r.raw
cmp r.raw fs.raw
debugfs -R "cat /guest.txt" r.raw 2>&1 | grep -q "File not found"

# the overlay kept the guest's write: a new server with it exports a
# clean file system holding guest.txt
serve_bg s2 g@latest --unix "$T/s2.sock" --writable-overlay ov.raw
nbdcopy "$URI_s2" after.raw
serve_stop s2
e2fsck -fn after.raw
[ "$(debugfs -R "cat /guest.txt" after.raw 2> /dev/null)" = "$WRITE" ]
[ "$(debugfs -R "cat /hello.txt" after.raw 2> /dev/null)" = "backed-up-$SEED" ]
echo "525-serve-boot OK"
