#!/bin/bash
# VMDK grain table entry 1 (issue 14): a zeroed grain only when the header's
# zeroed-grain flag (bit 2) is set; otherwise the grain at sector 1, as
# qemu-img and VMware read it.  monolithicSparse versions 1, 2 and 3, flag
# on and off, one GTE set to 1: p2v convert -O raw must give qemu-img
# convert -O raw's bytes.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io python3 cmp
cd "$TMP"

qemu-img create -q -f vmdk base.vmdk 4M
qemu-io -f vmdk -c "write -P 0x33 0 256k" base.vmdk >/dev/null
for version in 1 2 3; do
	for flag in 0 1; do
		f=v$version-z$flag.vmdk
		python3 - base.vmdk $f $version $flag <<'PY'
import struct, sys
src, dst, version, flag = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = bytearray(open(src, 'rb').read())
assert b[0:4] == b'KDMV'
flags = struct.unpack_from('<I', b, 8)[0] & ~(1 << 2)
struct.pack_into('<II', b, 4, version, flags | (flag << 2))
for gd_at in (48, 56):                      # the redundant GD and the GD
    gd = struct.unpack_from('<Q', b, gd_at)[0] * 512
    gt = struct.unpack_from('<I', b, gd)[0] * 512
    struct.pack_into('<I', b, gt + 4 * 1, 1)  # grain 1 (64 KiB..128 KiB): GTE 1
open(dst, 'wb').write(b)
PY
		qemu-img convert -f vmdk -O raw $f q.raw
		"$P2V" convert -O raw $f p.raw
		cmp q.raw p.raw || fail "$f: p2v and qemu-img differ"
		# what grain 1 reads: zeroes with the flag, the file's sector 1 on without
		if [ $flag = 1 ]; then
			cmp -n 65536 <(tail -c +65537 p.raw) /dev/zero || fail "$f: grain 1 not zeroes"
		else
			cmp -n 65536 <(tail -c +65537 p.raw) <(tail -c +513 $f) || fail "$f: grain 1 is not sector 1"
		fi
		"$P2V" map --json $f > map.json
		qemu-img map -f vmdk --output=json $f > qmap.json
		python3 - map.json qmap.json $flag <<'PY' || fail "$f: map of grain 1"
import json, sys
def at(m, off):
    return next(e for e in m if e['start'] <= off < e['start'] + e['length'])
p, q, flag = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
for m in (p, q):
    e = at(m, 65536)
    assert e['data'] == (flag == '0'), (m is p and 'p2v' or 'qemu-img', e)
PY
		rm -f q.raw p.raw
		echo "ok: $f: GTE 1 read as qemu-img reads it ($([ $flag = 1 ] && echo zeroes || echo sector 1))"
	done
done
echo "vmdk_zero_grain: all passed"
