#!/usr/bin/env python3
"""Write the seed corpus of fuzz_virtio_blk into vblk-seeds/: byte 0 picks
QUEUE_PFN (1: the ring at 0x1000), the rest is guest RAM from address 0."""
import os
import struct

Q = 128
DESC, AVAIL = 0x1000, 0x1000 + 16 * Q


def image(chains, heads, avail_idx=None):
    ram = bytearray(AVAIL + 4 + 2 * Q + 2)
    struct.pack_into("<IIQ", ram, 0x100, 0, 0, 1)          # IN, sector 1
    struct.pack_into("<IIQ", ram, 0x110, 1, 0, 2)          # OUT, sector 2
    for i, (addr, length, flags, nxt) in chains.items():
        struct.pack_into("<QIHH", ram, DESC + 16 * i, addr, length, flags, nxt)
    for n, h in enumerate(heads):
        struct.pack_into("<H", ram, AVAIL + 4 + 2 * n, h)
    struct.pack_into("<H", ram, AVAIL + 2, len(heads) if avail_idx is None else avail_idx)
    return bytes([1]) + bytes(ram)


seeds = {
    "read": image({0: (0x100, 16, 1, 1), 1: (0x200, 512, 3, 2), 2: (0x500, 1, 2, 0)}, [0]),
    "write": image({0: (0x110, 16, 1, 1), 1: (0x200, 512, 1, 2), 2: (0x500, 1, 2, 0)}, [0]),
    "two": image({0: (0x100, 16, 1, 1), 1: (0x200, 512, 3, 2), 2: (0x500, 1, 2, 0),
                  3: (0x110, 16, 1, 4), 4: (0x200, 512, 1, 5), 5: (0x501, 1, 2, 0)}, [0, 3]),
    "loop": image({0: (0x100, 16, 1, 1), 1: (0x200, 512, 3, 0)}, [0]),
    "huge": image({0: (0x100, 16, 1, 1), 1: (0x200, 0xffffffff, 3, 2), 2: (0x500, 1, 2, 0)}, [0]),
    "runaway": image({0: (0x100, 16, 1, 1)}, [0], avail_idx=0x8000),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vblk-seeds")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
