#!/usr/bin/env python3
"""Build the boot-sector probe disk: MBR = probe binary, every later sector
starts with its own LBA as a little-endian dword (the rest is a pattern).
usage: mkprobe.py PROBE.bin DISK SIZE_MIB"""
import struct
import sys

mbr = open(sys.argv[1], "rb").read()
assert len(mbr) == 512 and mbr[510:] == b"\x55\xaa", "probe must be one boot sector"
sectors = int(sys.argv[3]) * 2048
with open(sys.argv[2], "wb") as f:
    f.write(mbr)
    fill = bytes((i * 7) & 0xFF for i in range(508))
    for lba in range(1, sectors):
        f.write(struct.pack("<I", lba) + fill)
