#!/usr/bin/env python3
"""Build a corpus of broken VMDK files from good ones made by qemu-img.

usage: mk-bad-corpus.py GOOD_SPARSE GOOD_STREAM OUTDIR
Each output NAME.vmdk must make `vmback disk read` fail with a one-line
error (never crash).  The KDMV header offsets used here are those of the
hosted sparse extent header (docs/vdisk-sparse.md)."""
import os
import struct
import sys

good, stream, out = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out, exist_ok=True)
data = open(good, 'rb').read()
sdata = open(stream, 'rb').read()


def poke(name, base, off, fmt, value):
    b = bytearray(base)
    struct.pack_into('<' + fmt, b, off, value)
    open(os.path.join(out, name + '.vmdk'), 'wb').write(b)


def write(name, content):
    open(os.path.join(out, name + '.vmdk'), 'wb' if isinstance(content, bytes) else 'w').write(content)


write('truncated-header', data[:100])
write('header-only', data[:512])
write('truncated-at-gd', data[:4096 * 3])
poke('version-4', data, 4, 'I', 4)
poke('grain-size-0', data, 20, 'Q', 0)
poke('grain-size-3', data, 20, 'Q', 3)
poke('grain-size-huge', data, 20, 'Q', 1 << 40)
poke('capacity-huge', data, 12, 'Q', 1 << 62)
poke('capacity-0', data, 12, 'Q', 0)
poke('gtes-per-gt-0', data, 44, 'I', 0)
poke('gtes-per-gt-huge', data, 44, 'I', 1 << 30)
poke('gd-past-eof', data, 56, 'Q', 1 << 40)
poke('rgd-past-eof', data, 48, 'Q', 1 << 40)
poke('desc-offset-past-eof', data, 28, 'Q', 1 << 40)
poke('desc-size-huge', data, 36, 'Q', 1 << 40)
poke('overhead-huge', data, 64, 'Q', 1 << 50)
poke('stream-gd-at-end-no-footer', sdata[:-1024], 0, '4s', b'KDMV')
poke('stream-compress-algo-9', sdata, 77, 'H', 9)

# A grain table entry pointing far past the end of the file: find the GD
gd = struct.unpack_from('<Q', data, 56)[0]
gt0 = struct.unpack_from('<I', data, gd * 512)[0]
poke('gte-past-eof', data, gt0 * 512, 'I', 0x7fffffff)
poke('gd-entry-past-eof', data, gd * 512, 'I', 0x7fffffff)

# Descriptor-level attacks (text files)
ext = '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
write('extent-dotdot', ext + 'RW 2048 FLAT "../etc/passwd" 0\n')
write('extent-absolute', ext + 'RW 2048 FLAT "/etc/passwd" 0\n')
write('extent-missing', ext + 'RW 2048 FLAT "nonexistent-flat.vmdk" 0\n')
write('extent-size-huge', ext + 'RW 999999999999999999999 FLAT "x-flat.vmdk" 0\n')
write('extent-size-negative', ext + 'RW -5 FLAT "x-flat.vmdk" 0\n')
write('extent-type-bogus', ext + 'RW 2048 BOGUS "x-flat.vmdk" 0\n')
write('extent-unterminated', ext + 'RW 2048 FLAT "x-flat.vmdk\n')
write('no-extents', ext)
write('version-99', ext.replace('version=1', 'version=99') + 'RW 2048 ZERO\n')
write('desc-over-1mib', ext + 'RW 2048 ZERO\n' + ('# padding\n' * 110000))
write('sparse-extent-not-kdmv', ext.replace('monolithicFlat', 'twoGbMaxExtentSparse')
      + 'RW 2048 SPARSE "notsparse-s001.vmdk"\n')
open(os.path.join(out, 'notsparse-s001.vmdk'), 'wb').write(b'KDMX' + bytes(2044))
write('cowd-extent-garbage', ext.replace('monolithicFlat', 'vmfsSparse')
      + 'RW 2048 VMFSSPARSE "garbage-delta.vmdk"\n')
open(os.path.join(out, 'garbage-delta.vmdk'), 'wb').write(b'COWD' + b'\xff' * 2044)
write('sesparse-extent-garbage', ext.replace('monolithicFlat', 'seSparse')
      + 'RW 2048 SESPARSE "garbage-sesparse.vmdk"\n')
open(os.path.join(out, 'garbage-sesparse.vmdk'), 'wb').write(
    struct.pack('<QQ', 0xcafebabe, 0x200000001) + b'\xee' * 4080)
write('parent-missing', ext.replace('monolithicFlat', 'monolithicSparse').replace('ffffffff', '11111111')
      + 'parentFileNameHint="no-such-parent.vmdk"\nRW 2048 ZERO\n')
