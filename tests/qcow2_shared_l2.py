#!/usr/bin/env python3
# qcow2_shared_l2.py IMAGE: turn an empty qcow2 made by qemu-img create
# (64 KiB clusters, 16-bit refcounts) into a hostile one whose every L1
# entry points at one all-zero L2 table.  The table is a cluster appended at
# the end of the file with refcount 1, so the image has exactly one refcount
# error (one cluster referenced l1_size times) and reads as all zeroes.
import struct, sys

path = sys.argv[1]
with open(path, "r+b") as f:
    h = f.read(104)
    (magic, version, _bfo, _bfs, cbits, _size, _crypt, l1_size, l1_off,
     rt_off, _rt_clusters, _nsnap, _snap_off) = struct.unpack(">IIQIIQIIQQIIQ", h[:72])
    assert magic == 0x514649FB and version == 3 and cbits == 16, "want a v3 qcow2 with 64 KiB clusters"
    refcount_order = struct.unpack(">I", h[96:100])[0]
    assert refcount_order == 4, "want 16-bit refcounts"
    cb = 1 << cbits
    f.seek(0, 2)
    end = f.tell()
    assert end % cb == 0
    l2 = end
    f.write(b"\0" * cb)
    f.seek(rt_off)
    rb = struct.unpack(">Q", f.read(8))[0]
    idx = l2 // cb
    assert rb and idx < cb // 2, "the first refcount block must cover the new table"
    f.seek(rb + 2 * idx)
    f.write(struct.pack(">H", 1))
    entry = struct.pack(">Q", l2 | (1 << 63))  # COPIED: its refcount is 1
    f.seek(l1_off)
    f.write(entry * l1_size)
print(l1_size)
