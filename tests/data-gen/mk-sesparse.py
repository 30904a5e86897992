#!/usr/bin/env python3
"""Build an ESXi seSparse delta (extent + descriptor) from a raw file.

Usage: mk-sesparse.py [options] RAW OUT.vmdk

Writes OUT.vmdk (text descriptor, createType "seSparse") and the extent
OUT-sesparse.vmdk next to it.  Only non-zero 4 KiB grains of RAW are stored;
all-zero grains stay unallocated (read from the parent, or zeros), unless
--zero-grains marks them as zero grains.  Standard library only.

Layout written (offsets and sizes in 512-byte sectors, see
docs/vdisk-sesparse.md): const header at 0, volatile header at 1, journal
header at 2, journal at 2048, then grain directory, grain tables, free
bitmap, backmap and grains, each region aligned to 2048 sectors (1 MiB).
The file is written sparsely; it ends after the last grain.

Options:
  --parent PATH      set parentFileNameHint=PATH and parentCID from the CID
                     line of that descriptor (PATH relative to OUT's dir)
  --capacity N       capacity in sectors (default: RAW size rounded up)
  --zero-grains      store all-zero grains as zero grains (types 1 and 2
                     alternately) in tables that exist anyway
  --shuffle SEED     store grains in a pseudo-random order
  --slot-base N      leave the first N grain slots unused (tests the split
                     grain index encoding with indices >= 4096)
"""
import argparse
import os
import random
import struct
import sys

SECTOR = 512
GRAIN = 4096                      # 8 sectors
GT_ENTRIES = 4096                 # 64 sectors of 8-byte entries
GT_COVER = GT_ENTRIES * GRAIN     # 16 MiB per grain table
CONST_MAGIC = 0xcafebabe
VOLATILE_MAGIC = 0xcafecafe
VERSION = 0x200000001
ALIGN = 2048                      # sectors


def align(v, a):
    return (v + a - 1) // a * a


def gte_alloc(idx):
    """Encode grain slot idx like ESXi: low 12 bits in 48..59, rest 0..47."""
    return (0x3 << 60) | ((idx & 0xfff) << 48) | (idx >> 12)


def parent_cid(path):
    with open(path, 'rb') as f:
        text = f.read(1 << 20).decode('latin-1')
    for line in text.splitlines():
        line = line.strip().strip('\0 ')
        if line.startswith('CID='):
            return line[4:].strip().strip('\0 ')
    sys.exit("mk-sesparse: no CID line in '%s'" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('raw')
    ap.add_argument('out')
    ap.add_argument('--parent')
    ap.add_argument('--capacity', type=int)
    ap.add_argument('--zero-grains', action='store_true')
    ap.add_argument('--shuffle', type=int)
    ap.add_argument('--slot-base', type=int, default=0)
    a = ap.parse_args()

    data = open(a.raw, 'rb').read()
    cap = a.capacity if a.capacity else (len(data) + SECTOR - 1) // SECTOR
    if cap * SECTOR < len(data) or cap <= 0:
        sys.exit('mk-sesparse: capacity smaller than the raw file')
    n_gd = (cap * SECTOR + GT_COVER - 1) // GT_COVER
    n_grains = (cap * SECTOR + GRAIN - 1) // GRAIN   # virtual grains
    slots = n_grains + a.slot_base                   # grain region capacity

    # Which grains to store (data) or mark (zero).
    stored, zeroed = [], []
    for g in range(n_grains):
        chunk = data[g * GRAIN:(g + 1) * GRAIN]
        if chunk.strip(b'\0'):
            stored.append(g)
    tables = sorted({g // GT_ENTRIES for g in stored})
    if a.zero_grains:
        have = set(tables)
        sset = set(stored)
        zeroed = [g for g in range(n_grains)
                  if g // GT_ENTRIES in have and g not in sset]

    # Regions (sectors).
    vol_off, vol_size = 1, 1
    jh_off, jh_size = 2, 2
    j_off, j_size = 2048, 2048
    gd_off = align(j_off + j_size, ALIGN)
    gd_size = align(n_gd * 8, SECTOR) // SECTOR
    gt_off = align(gd_off + gd_size, ALIGN)
    gt_size = n_gd * 64
    fb_off = align(gt_off + gt_size, ALIGN)
    fb_size = align((slots + 7) // 8, SECTOR) // SECTOR
    bm_off = align(fb_off + fb_size, ALIGN)
    bm_size = align(slots * 8, SECTOR) // SECTOR
    gr_off = align(bm_off + bm_size, ALIGN)
    gr_size = slots * 8

    hdr = struct.pack('<6Q', CONST_MAGIC, VERSION, cap, 8, 64, 0)
    hdr += b'\0' * 32                                  # reserved1..4
    hdr += struct.pack('<16Q', vol_off, vol_size, jh_off, jh_size,
                       j_off, j_size, gd_off, gd_size, gt_off, gt_size,
                       fb_off, fb_size, bm_off, bm_size, gr_off, gr_size)
    hdr += b'\0' * (SECTOR - len(hdr))
    vol = struct.pack('<4Q', VOLATILE_MAGIC, len(tables), 1, 0)
    vol += b'\0' * (SECTOR - len(vol))

    order = list(stored)
    if a.shuffle is not None:
        random.Random(a.shuffle).shuffle(order)
    slot_of = {g: a.slot_base + i for i, g in enumerate(order)}
    gt_index = {t: i for i, t in enumerate(tables)}

    extent = os.path.splitext(a.out)[0] + '-sesparse.vmdk'
    with open(extent, 'wb') as f:
        f.write(hdr)
        f.seek(vol_off * SECTOR)
        f.write(vol)
        gd = bytearray(gd_size * SECTOR)
        for t, i in gt_index.items():
            struct.pack_into('<Q', gd, t * 8, (0x1 << 60) | i)
        f.seek(gd_off * SECTOR)
        f.write(gd)
        gts = {t: [0] * GT_ENTRIES for t in tables}
        for g in stored:
            gts[g // GT_ENTRIES][g % GT_ENTRIES] = gte_alloc(slot_of[g])
        for k, g in enumerate(zeroed):
            gts[g // GT_ENTRIES][g % GT_ENTRIES] = (1 if k % 2 else 2) << 60
        for t, i in gt_index.items():
            f.seek((gt_off + i * 64) * SECTOR)
            f.write(struct.pack('<%dQ' % GT_ENTRIES, *gts[t]))
        # Free bitmap: bit set = slot in use; backmap: slot -> grain + 1.
        fb = bytearray(fb_size * SECTOR)
        for g, s in slot_of.items():
            fb[s // 8] |= 1 << (s % 8)
        f.seek(fb_off * SECTOR)
        f.write(fb)
        for g, s in slot_of.items():
            f.seek(bm_off * SECTOR + s * 8)
            f.write(struct.pack('<Q', g + 1))
        end = gr_off * SECTOR
        for g, s in slot_of.items():
            chunk = data[g * GRAIN:(g + 1) * GRAIN]
            chunk += b'\0' * (GRAIN - len(chunk))
            pos = (gr_off + s * 8) * SECTOR
            f.seek(pos)
            f.write(chunk)
            end = max(end, pos + GRAIN)
        f.truncate(end)

    lines = ['# Disk DescriptorFile', 'version=1', 'encoding="UTF-8"',
             'CID=%08x' % random.getrandbits(31)]
    if a.parent:
        lines.append('parentCID=%s' % parent_cid(
            os.path.join(os.path.dirname(os.path.abspath(a.out)), a.parent)))
        lines.append('parentFileNameHint="%s"' % a.parent)
    else:
        lines.append('parentCID=ffffffff')
    lines += ['createType="seSparse"', '', '# Extent description',
              'RW %d SESPARSE "%s"' % (cap, os.path.basename(extent)), '',
              '# The Disk Data Base', '#DDB', '',
              'ddb.virtualHWVersion = "14"',
              'ddb.grain = "8"',
              'ddb.longContentID = "%032x"' % random.getrandbits(128), '']
    with open(a.out, 'w') as f:
        f.write('\n'.join(lines))


if __name__ == '__main__':
    main()
