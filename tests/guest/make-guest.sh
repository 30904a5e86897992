#!/bin/bash
# Build a tiny Linux guest for tests that boot a real VM under QEMU
# (TCG: no /dev/kvm needed): Debian 12's kernel and a busybox initramfs
# whose /init mounts the ext4 file system on /dev/vda (virtio-blk), prints
# what the test asks for on the serial console, writes a file and powers
# off.  Nothing is committed: the kernel package is fetched with
# `apt-get download` into OUT, once.
#
# usage: tests/guest/make-guest.sh OUT
#   makes OUT/vmlinuz and OUT/initrd.img (kept when both exist).
# Exit 77 (skip) with the reason on stderr when a part is missing here:
# busybox-static, the kernel package, cpio.
#
# The guest's /init (tests/guest/init) reads from the kernel command line
#   guest.write=TEXT   written to /mnt/guest.txt after the checks
# and prints lines starting "GUEST: " on the console (ttyS0).
set -euo pipefail
OUT=${1:?usage: make-guest.sh OUT}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ]; then exit 0; fi
skip () { echo "$*" >&2; exit 77; }
BB=/bin/busybox
[ -x "$BB" ] && ! readelf -l "$BB" 2> /dev/null | grep -q "program interpreter" ||
  skip "no static busybox (package busybox-static)"
command -v cpio > /dev/null || skip "no cpio"
mkdir -p "$OUT"
W=$(mktemp -d "$OUT/work.XXXXXX")
trap 'rm -rf "$W"' EXIT

# the kernel: the version linux-image-amd64 points at, unpacked
PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
[ -n "$PKG" ] || skip "apt-cache knows no linux-image-amd64"
(cd "$W" && apt-get download -q "$PKG" > download.log 2>&1) || skip "cannot download $PKG: $(tail -n 1 "$W/download.log")"
dpkg-deb -x "$W"/"$PKG"_*.deb "$W/k"
VER=${PKG#linux-image-}
MODDIR=$W/k/lib/modules/$VER

# the initramfs: busybox, the modules virtio-blk and ext4 need, /init
R=$W/root
mkdir -p "$R/bin" "$R/lib/modules" "$R/proc" "$R/sys" "$R/dev" "$R/mnt" "$R/tmp"
cp "$BB" "$R/bin/busybox"
for m in virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci \
         virtio_blk crc32c_generic jbd2 mbcache crc16 ext4; do
  f=$(find "$MODDIR" -name "$m.ko*" | head -n 1)
  [ -n "$f" ] || continue                 # built into this kernel
  case "$f" in
    *.xz) xz -dc "$f" > "$R/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" > "$R/lib/modules/$m.ko" ;;
    *) cp "$f" "$R/lib/modules/$m.ko" ;;
  esac
  echo "$m" >> "$R/lib/modules/order"
done
install -m 0755 "$HERE/init" "$R/init"
(cd "$R" && find . -print0 | LC_ALL=C sort -z |
  cpio --null -o -H newc -R 0:0 --quiet) | gzip -9 -n > "$W/initrd.img"

cp "$W/k/boot/vmlinuz-$VER" "$W/vmlinuz"
mv "$W/initrd.img" "$OUT/initrd.img"
mv "$W/vmlinuz" "$OUT/vmlinuz"
