#!/usr/bin/env python3
"""Write a VHD differencing chain for the tests, independently of the C
driver (qemu-img cannot create vpc differencing images).

usage: vhd_mkdiff.py OUTDIR SCENARIO
Writes OUTDIR/parent.vhd (dynamic), OUTDIR/child.vhd (differencing, parent
locators as SCENARIO says), OUTDIR/grandchild.vhd (differencing of child) and
OUTDIR/expected-child.raw, OUTDIR/expected-grandchild.raw.
Scenarios: relative (W2ru + W2ku), absolute (W2ku only, to another folder),
macx (MacX file URL to a subfolder), baduuid (child records a wrong UUID).
"""
import os
import random
import struct
import sys

SECTOR = 512
SIZE = 6 * 1024 * 1024 + 3 * SECTOR      # not a block multiple
BLOCK = 512 * 1024
W2RU, W2KU, MACX = 0x57327275, 0x57326B75, 0x4D616358


def checksum(buf, at):
    s = sum(buf[:at]) + sum(buf[at + 4:])
    return ~s & 0xFFFFFFFF


def footer(disk_type, uid, size=None):
    size = SIZE if size is None else size
    f = bytearray(512)
    f[0:8] = b'conectix'
    data_offset = 0xFFFFFFFFFFFFFFFF if disk_type == 2 else 512
    struct.pack_into('>IIQI', f, 8, 2, 0x00010000, data_offset, 0x2A000000)
    f[28:32] = b'win '
    struct.pack_into('>I', f, 32, 0x000A0000)
    f[36:40] = b'Wi2k'
    struct.pack_into('>QQHBBI', f, 40, size, size, 1000, 16, 63, disk_type)
    f[68:84] = uid
    struct.pack_into('>I', f, 64, checksum(f, 64))
    return f


def write_vhd(path, disk_type, uid, parent_uid, parent_name, locators, blocks,
              size=SIZE, block=BLOCK):
    """blocks: {index: (sector_bitmap_bits as set of sectors, data bytes)}"""
    n = (size + block - 1) // block
    bat_at, loc_at = 1536, 1536 + 512
    loc_data = b''.join(d + bytes(-len(d) % 512) for _, d in locators)
    data_at = loc_at + len(loc_data)
    hdr = bytearray(1024)
    hdr[0:8] = b'cxsparse'
    struct.pack_into('>QQIII', hdr, 8, 0xFFFFFFFFFFFFFFFF, bat_at, 0x00010000, n, block)
    hdr[40:56] = parent_uid
    name16 = parent_name.encode('utf-16-be')
    hdr[64:64 + len(name16)] = name16
    off = loc_at
    for i, (code, d) in enumerate(locators):
        struct.pack_into('>IIIIQ', hdr, 576 + 24 * i, code, (len(d) + 511) // 512, len(d), 0, off)
        off += len(d) + (-len(d) % 512)
    struct.pack_into('>I', hdr, 36, checksum(hdr, 36))
    bat = bytearray(b'\xff' * 512 * ((n * 4 + 511) // 512))
    body = bytearray()
    # allocate in reverse order: physical order need not follow virtual order
    for k, blk in enumerate(sorted(blocks, reverse=True)):
        sectors, data = blocks[blk]
        bm = bytearray(max(512, (block // 512 + 7) // 8 + 511) // 512 * 512)
        for s in sectors:
            bm[s // 8] |= 0x80 >> (s % 8)
        struct.pack_into('>I', bat, blk * 4, (data_at + len(body)) // 512)
        body += bm + data
    f = footer(disk_type, uid, size)
    with open(path, 'wb') as out:
        out.write(f + hdr + bat + loc_data + body + f)


def utf16(s):
    return s.encode('utf-16-le')


def seeds(outdir):
    """Small fuzz seeds: dynamic and differencing with 4 KiB blocks, fixed of 64 KiB."""
    size, block = 64 * 1024, 4096
    os.makedirs(outdir, exist_ok=True)
    blocks = {0: (range(8), b'\x11' * block), 5: ([0, 3, 7], b'\x22' * block),
              15: (range(8), b'\x33' * block)}
    write_vhd(os.path.join(outdir, 'dynamic.vhd'), 3, b'\x01' * 16, bytes(16), '', [], blocks,
              size, block)
    write_vhd(os.path.join(outdir, 'diff.vhd'), 4, b'\x02' * 16, b'\x01' * 16, 'dynamic.vhd',
              [(W2RU, utf16('.\\dynamic.vhd')), (W2KU, utf16('C:\\x\\dynamic.vhd')),
               (MACX, b'file://localhost/tmp/dynamic.vhd')], blocks, size, block)
    with open(os.path.join(outdir, 'fixed.vhd'), 'wb') as out:
        out.write(bytes(range(256)) * (size // 256) + footer(2, b'\x03' * 16, size))


def main():
    outdir, scenario = sys.argv[1], sys.argv[2]
    if scenario == 'seeds':
        return seeds(outdir)
    rnd = random.Random(42)
    puid, cuid, guid = (bytes(rnd.randrange(256) for _ in range(16)) for _ in range(3))
    nblocks = (SIZE + BLOCK - 1) // BLOCK

    # parent: blocks 0, 1, 5 and the last (partial) one fully present
    pblocks, content = {}, bytearray(SIZE)
    for b in (0, 1, 5, nblocks - 1):
        data = bytes(rnd.randrange(1, 256) for _ in range(64)) * (BLOCK // 64)
        pblocks[b] = (range(BLOCK // SECTOR), data)
        end = min(SIZE, (b + 1) * BLOCK)
        content[b * BLOCK:end] = data[:end - b * BLOCK]
    pdir = outdir
    if scenario == 'macx':
        pdir = os.path.join(outdir, 'base')
    os.makedirs(pdir, exist_ok=True)
    write_vhd(os.path.join(pdir, 'parent.vhd'), 3, puid, bytes(16), '', [], pblocks)

    # child: some sectors in block 1 (over parent data), block 3 (over a hole)
    cblocks = {}
    for b, sectors in ((1, range(8, 40)), (3, list(range(0, 4)) + list(range(1000, 1024)))):
        data = bytearray(BLOCK)
        for s in sectors:
            data[s * SECTOR:(s + 1) * SECTOR] = bytes([b * 16 + s % 16 + 1]) * SECTOR
            content[b * BLOCK + s * SECTOR:b * BLOCK + (s + 1) * SECTOR] = data[s * SECTOR:(s + 1) * SECTOR]
        cblocks[b] = (sectors, bytes(data))
    if scenario == 'relative':
        locs = [(W2KU, utf16('C:\\Hyper-V\\Disks\\parent.vhd')), (W2RU, utf16('.\\parent.vhd'))]
        pname = 'C:\\Hyper-V\\Disks\\parent.vhd'
    elif scenario == 'absolute':
        locs = [(W2KU, utf16('D:\\elsewhere\\parent.vhd'))]
        pname = 'D:\\elsewhere\\parent.vhd'
    elif scenario == 'macx':
        url = 'file://localhost' + os.path.abspath(pdir).replace(' ', '%20') + '/parent.vhd'
        locs = [(MACX, url.encode())]
        pname = 'parent.vhd'
    else:
        locs = [(W2RU, utf16('.\\parent.vhd'))]
        pname = 'parent.vhd'
    want_puid = puid if scenario != 'baduuid' else bytes(16)
    write_vhd(os.path.join(outdir, 'child.vhd'), 4, cuid, want_puid, pname, locs, cblocks)
    with open(os.path.join(outdir, 'expected-child.raw'), 'wb') as out:
        out.write(content)

    # grandchild: whole block 5 sector 0 and sector 20 of block 1
    gblocks = {1: ([20], bytes(20 * SECTOR) + b'\x77' * SECTOR + bytes(BLOCK - 21 * SECTOR)),
               5: ([0], b'\x66' * SECTOR + bytes(BLOCK - SECTOR))}
    content[BLOCK + 20 * SECTOR:BLOCK + 21 * SECTOR] = b'\x77' * SECTOR
    content[5 * BLOCK:5 * BLOCK + SECTOR] = b'\x66' * SECTOR
    write_vhd(os.path.join(outdir, 'grandchild.vhd'), 4, guid, cuid, 'child.vhd',
              [(W2RU, utf16('.\\child.vhd'))], gblocks)
    with open(os.path.join(outdir, 'expected-grandchild.raw'), 'wb') as out:
        out.write(content)


if __name__ == '__main__':
    main()
