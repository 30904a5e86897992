#!/bin/bash
# A > 4 GiB sparse disk, both directions (offsets past 32 bits).
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

img="$T/big-q.vmdk"
qemu-img create -q -f vmdk -o subformat=monolithicSparse "$img" 6G
qemu-io -f vmdk -c "write -P 0x5a 4294901760 131072" -c "write -P 0x33 6442385408 65536" "$img" >/dev/null
vmback disk read "$img" --offset 4294901760 --length 131072 | cmp - <(head -c 131072 /dev/zero | tr '\0' '\132')
vmback disk read "$img" --offset 6442385408 --length 65536 | cmp - <(head -c 65536 /dev/zero | tr '\0' '\063')

v="$T/big-v.vmdk"
vmback disk create --type monolithicSparse --size 6G "$v"
head -c 131072 /dev/zero | tr '\0' '\132' | vmback disk write "$v" --offset 4294901760
head -c 65536 /dev/zero | tr '\0' '\063' | vmback disk write "$v" --offset 6442385408
qemu-img check -f vmdk "$v"
qemu-img compare -f vmdk -F vmdk "$img" "$v"
vmback disk map "$v" > "$T/map"
diff -u "$T/map" - <<MAP
4294901760 131072
6442385408 65536
MAP
