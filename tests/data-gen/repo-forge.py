#!/usr/bin/env python3
"""Forge hostile objects in an unencrypted vmback repository, re-MACed with
the repository's own key so that the parsers behind the MAC are what a
test exercises (docs/FORMAT-index-manifest.md, docs/FORMAT-chunks.md).

Usage:
  repo-forge.py manifest REPO POINT EXPR
      evaluate the Python statement EXPR with `m` bound to the manifest
      (a dict without "hmac"), then write it back with a valid "hmac"
  repo-forge.py index REPO POINT DISK [--disk-size N] [--n N] [--extra K]
      rewrite the header of POINT's index of DISK (and append K extra ids),
      recompute its trailing HMAC and bind it again in the manifest
  repo-forge.py chunk FILE [--plain-len N] [--zstd-fcs N]
      set the plain length of a chunk blob, or replace its body with a zstd
      frame that announces N bytes, and fix the CRC (no MAC to redo: an
      encrypted blob is then still refused by its tag, after the checks
      of the header)
The manifest and index need the mac_key, read from REPO/keys/repokey
(only unencrypted repositories keep it in clear).  Standard library only.
"""
import argparse
import hashlib
import hmac
import json
import os
import struct
import sys
import zlib


def mac_key(repo):
    k = json.load(open(os.path.join(repo, 'keys', 'repokey')))
    if k.get('encrypted'):
        sys.exit('repo-forge: %s is encrypted: its mac key is wrapped' % repo)
    return bytes.fromhex(k['mac_key'])


def mac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def manifest_path(repo, point):
    return os.path.join(repo, 'snapshots', point, 'manifest')


def load_manifest(repo, point):
    m = json.load(open(manifest_path(repo, point)))
    m.pop('hmac', None)
    return m


def write_manifest(repo, point, m, key):
    body = json.dumps(m, separators=(',', ':')).encode()
    h = mac(key, body).hex()
    text = body[:-1] + b',"hmac":"' + h.encode() + b'"}\n'
    p = manifest_path(repo, point)
    os.chmod(p, 0o600)
    with open(p, 'wb') as f:
        f.write(text)


def cmd_manifest(a):
    key = mac_key(a.repo)
    m = load_manifest(a.repo, a.point)
    exec(a.expr, {'m': m})
    write_manifest(a.repo, a.point, m, key)


def cmd_index(a):
    key = mac_key(a.repo)
    m = load_manifest(a.repo, a.point)
    d = [d for d in m['disks'] if d['key'] == a.disk][0]
    p = os.path.join(a.repo, d['index_key'])
    b = bytearray(open(p, 'rb').read()[:-32])
    if a.disk_size is not None:
        struct.pack_into('<Q', b, 16, a.disk_size)
    if a.n is not None:
        struct.pack_into('<Q', b, 24, a.n)
    b += bytes(range(32)) * a.extra
    b += mac(key, bytes(b))
    with open(p, 'wb') as f:
        f.write(b)
    d['index_mac'] = mac(key, bytes(b)).hex()
    write_manifest(a.repo, a.point, m, key)


def cmd_chunk(a):
    b = bytearray(open(a.file, 'rb').read())
    if a.plain_len is not None:
        struct.pack_into('<I', b, 8, a.plain_len)
    if a.zstd_fcs is not None:
        # magic, descriptor 0xe0 (single segment, 8-byte content size),
        # the size, one empty last raw block
        frame = struct.pack('<IBQ', 0xFD2FB528, 0xE0, a.zstd_fcs) + b'\x01\x00\x00'
        enc = b[5] & 2
        payload = (bytes(12) + frame + bytes(16)) if enc else frame
        b = b[:20] + payload
        b[5] |= 1
        struct.pack_into('<I', b, 12, len(payload))
    # version 2 covers the chunk id (the file's name) between header and payload
    crc = zlib.crc32(bytes(b[:16]))
    if b[4] == 2:
        crc = zlib.crc32(bytes.fromhex(os.path.basename(a.file)), crc)
    crc = zlib.crc32(bytes(b[20:]), crc)
    struct.pack_into('<I', b, 16, crc)
    os.chmod(a.file, 0o600)
    with open(a.file, 'wb') as f:
        f.write(b)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('manifest')
    s.add_argument('repo'); s.add_argument('point'); s.add_argument('expr')
    s.set_defaults(fn=cmd_manifest)
    s = sub.add_parser('index')
    s.add_argument('repo'); s.add_argument('point'); s.add_argument('disk')
    s.add_argument('--disk-size', type=lambda s: int(s, 0)); s.add_argument('--n', type=lambda s: int(s, 0))
    s.add_argument('--extra', type=lambda s: int(s, 0), default=0)
    s.set_defaults(fn=cmd_index)
    s = sub.add_parser('chunk')
    s.add_argument('file')
    s.add_argument('--plain-len', type=lambda s: int(s, 0))
    s.add_argument('--zstd-fcs', type=lambda s: int(s, 0))
    s.set_defaults(fn=cmd_chunk)
    a = ap.parse_args()
    a.fn(a)


if __name__ == '__main__':
    main()
