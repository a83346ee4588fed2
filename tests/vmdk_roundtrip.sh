#!/bin/bash
# VMDK round trips: raw -> vmdk (monolithicSparse, streamOptimized) -> raw,
# checked with qemu-img compare/check and vmdkinfo (libvmdk); reading every
# subformat qemu-img writes (sparse, stream, flat, split sparse/flat) and a
# hand-written descriptor mixing FLAT, ZERO and SPARSE extents.
. "$(dirname "$0")/lib.sh"
need qemu-img vmdkinfo python3 sfdisk jq
cd "$TMP"

size=$((24 * 1024 * 1024 + 3 * 512))   # not a whole number of grains
truncate -s $size src.raw
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q src.raw
dd if=/dev/urandom of=src.raw bs=64k seek=20 count=30 conv=notrunc status=none
python3 -c "import sys; sys.stdout.write('compressible text line\n' * 130000)" | dd of=src.raw bs=64k seek=100 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=1 seek=$((size - 700)) count=700 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=1 seek=20000001 count=5000 conv=notrunc status=none

# embedded_desc FILE: the descriptor text inside a sparse extent.
embedded_desc() { dd if="$1" bs=512 skip=1 count=20 status=none | tr -d '\0'; }

for sub in monolithicSparse streamOptimized; do
	out=$sub.vmdk
	"$P2V" convert -f raw -O vmdk -o subformat=$sub src.raw $out
	qemu-img compare -f raw -F vmdk src.raw $out >/dev/null || fail "$sub: qemu-img compare differs"
	qemu-img check -f vmdk $out >/dev/null || fail "$sub: qemu-img check: $(qemu-img check -f vmdk $out 2>&1)"
	vmdkinfo $out > vi.txt 2>&1 || fail "$sub: vmdkinfo failed: $(cat vi.txt)"
	grep -q "Media size.*($size bytes)" vi.txt || fail "$sub: vmdkinfo size: $(cat vi.txt)"
	case $sub in
	monolithicSparse) grep -q "Disk type:.*Monolithic sparse" vi.txt || fail "vmdkinfo type: $(cat vi.txt)" ;;
	streamOptimized) grep -q "Disk type:.*Stream optimized" vi.txt || fail "vmdkinfo type: $(cat vi.txt)" ;;
	esac
	# the same facts through the same jq expression from both tools
	facts='[.["virtual-size"], .format, .["format-specific"].data["create-type"],
		(.["format-specific"].data.extents[] | [.["cluster-size"], .compressed, .format])]'
	for tool in "qemu-img info --output=json" "$P2V info --json"; do
		$tool $out | jq -c "$facts"
	done > facts.txt
	[ "$(sed -n 1p facts.txt)" = "$(sed -n 2p facts.txt)" ] || fail "$sub: info differs: $(cat facts.txt)"
	head -n 1 facts.txt | jq -e --argjson size $size --arg sub $sub \
		'.[0] == $size and .[2] == $sub and .[3][0] == 65536' >/dev/null || fail "$sub: info: $(cat facts.txt)"
	embedded_desc $out > desc.txt
	grep -qx 'createType="'$sub'"' desc.txt || fail "$sub: createType: $(cat desc.txt)"
	grep -qx "RW $((size / 512)) SPARSE \"$out\"" desc.txt || fail "$sub: extent line: $(cat desc.txt)"
	grep -qx 'parentCID=ffffffff' desc.txt || fail "$sub: parentCID"
	grep -q 'ddb.adapterType = "ide"' desc.txt || fail "$sub: adapter type"
	"$P2V" convert -O raw $out back-$sub.raw
	cmp src.raw back-$sub.raw || fail "$sub: round trip differs"
	# Holes are kept: mostly unallocated source, small output.
	[ "$(stat -c %s $out)" -lt $((8 * 1024 * 1024)) ] || fail "$sub: output too big: $(stat -c %s $out)"
	echo "ok: $sub round trip ($(stat -c %s $out) bytes)"
done

# The redundant grain directory of monolithicSparse matches the primary one.
python3 - monolithicSparse.vmdk <<'PY' || fail "redundant grain directory"
import struct,sys
f=open(sys.argv[1],'rb').read()
cap,grain=struct.unpack_from('<QQ',f,12); rgd,gd=struct.unpack_from('<QQ',f,48)
flags=struct.unpack_from('<I',f,8)[0]
assert flags & 2, hex(flags)
n=-(-cap//grain)//512 + (1 if -(-cap//grain)%512 else 0)
g=struct.unpack_from('<%dI'%n,f,gd*512); r=struct.unpack_from('<%dI'%n,f,rgd*512)
assert g!=r
for a,b in zip(g,r): assert f[a*512:a*512+2048]==f[b*512:b*512+2048]
assert any(f[a*512:a*512+2048].strip(b'\0') for a in g)
PY

# Options: adapter, hardware version, grain size; -c on monolithicSparse.
"$P2V" convert -c -f raw -O vmdk -o adapter_type=lsilogic,hwversion=7,grain_size=16K src.raw opt.vmdk
embedded_desc opt.vmdk > desc.txt
grep -q 'ddb.adapterType = "lsilogic"' desc.txt || fail "adapter_type option"
grep -q 'ddb.geometry.heads = "255"' desc.txt || fail "scsi geometry"
grep -q 'ddb.virtualHWVersion = "7"' desc.txt || fail "hwversion option"
qemu-img compare -f raw -F vmdk src.raw opt.vmdk >/dev/null || fail "16K grains: qemu-img compare"
qemu-img check -f vmdk opt.vmdk >/dev/null || fail "16K grains: qemu-img check"
expect_fail "monolithicFlat cannot be written" "$P2V" convert -f raw -O vmdk -o subformat=monolithicFlat src.raw flat.vmdk
expect_fail "unknown adapter" "$P2V" create -O vmdk -o adapter_type=scsi x.vmdk 1M

# Reading what qemu-img writes, compared with qemu's own reading.
for sub in monolithicSparse streamOptimized monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat; do
	mkdir q-$sub
	qemu-img convert -f raw -O vmdk -o subformat=$sub src.raw q-$sub/d.vmdk
	"$P2V" info q-$sub/d.vmdk | grep -q "subformat: $sub" || fail "qemu $sub: info: $("$P2V" info q-$sub/d.vmdk)"
	"$P2V" convert -O raw q-$sub/d.vmdk q-$sub/back.raw
	cmp src.raw q-$sub/back.raw || fail "qemu $sub: content differs"
	qemu-img compare -f vmdk -F raw q-$sub/d.vmdk q-$sub/back.raw >/dev/null || fail "qemu $sub: qemu disagrees"
	"$P2V" compare q-$sub/d.vmdk src.raw | grep -q identical || fail "qemu $sub: p2v compare"
	echo "ok: reads qemu's $sub"
done

# Split images with several extents (a 4.5 GiB mostly empty disk).
truncate -s 4608M big.raw
dd if=/dev/urandom of=big.raw bs=64k seek=$((2047 * 16)) count=40 conv=notrunc status=none
dd if=/dev/urandom of=big.raw bs=64k seek=$((4600 * 16)) count=3 conv=notrunc status=none
mkdir split && qemu-img convert -f raw -O vmdk -o subformat=twoGbMaxExtentSparse big.raw split/d.vmdk
"$P2V" info --json split/d.vmdk | jq -e '.["virtual-size"] == 4608*1048576 and
	.["format-specific"].data["create-type"] == "twoGbMaxExtentSparse" and
	.["format-specific"].data.extents[2].filename == "split/d-s003.vmdk"' >/dev/null || fail "split: info"
[ "$("$P2V" info --json split/d.vmdk | jq -S -c '.["format-specific"]')" = \
  "$(qemu-img info --output=json split/d.vmdk | jq -S -c '.["format-specific"] | .data += {"adapter-type": "ide", "hw-version": "4", "version": 1}')" ] ||
	fail "split: format-specific information differs from qemu-img's"
"$P2V" convert -O raw split/d.vmdk split/back.raw
qemu-img compare -f raw -F raw big.raw split/back.raw >/dev/null || fail "split: content differs"
# data in the first two extent files (across the 2 GiB boundary) and the third
"$P2V" map --json split/d.vmdk | jq -e '[.[] | select(.data)] | length == 3' >/dev/null ||
	fail "split: map: $("$P2V" map --json split/d.vmdk)"
[ "$("$P2V" map --json split/d.vmdk | jq -c '.[]')" = "$(qemu-img map --output=json split/d.vmdk | jq -c '.[]')" ] ||
	fail "split: map differs from qemu-img's"

# A hand-written descriptor: FLAT with an offset, ZERO, SPARSE, in a subdirectory.
mkdir -p hand/sub
head -c $((2048 * 512)) /dev/urandom > hand/a.bin
head -c $((1024 * 512 + 4096)) /dev/urandom > hand/sub/b.bin
"$P2V" convert -f raw -O vmdk src.raw hand/s.vmdk
cat > hand/d.vmdk <<EOF
# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="twoGbMaxExtentFlat"

# Extent description (qemu misreads the extents without this comment line)
RW 2048 FLAT "a.bin" 0
RW 4096 ZERO
RDONLY 1024 FLAT "sub/../sub/b.bin" 8
RW $((size / 512)) SPARSE "s.vmdk"

# The Disk Data Base (qemu needs a line after the last extent)
ddb.adapterType = "lsilogic"
EOF
"$P2V" convert -O raw hand/d.vmdk hand/back.raw
cmp -n $((2048 * 512)) hand/a.bin hand/back.raw || fail "FLAT extent"
cmp -n $((1024 * 512)) -i 4096:$((6144 * 512)) hand/sub/b.bin hand/back.raw || fail "FLAT extent with offset"
cmp -i 0:$((7168 * 512)) src.raw hand/back.raw || fail "SPARSE extent"
"$P2V" map --json hand/d.vmdk | jq -e '.[0].data and .[0].length == 2048*512 and .[0].offset == 0 and
	.[1].zero and .[1].present and .[1].length == 4096*512 and (.[1] | has("offset") | not) and
	.[2].offset == 4096' >/dev/null || fail "hand-written descriptor: map"
# qemu skips ZERO and RDONLY extent lines: without them it must agree.
grep -v ZERO hand/d.vmdk | sed "s/^RDONLY/RW/" > hand/e.vmdk
"$P2V" convert -O raw hand/e.vmdk hand/back-e.raw
qemu-img compare -f vmdk -F raw hand/e.vmdk hand/back-e.raw >/dev/null || fail "hand-written descriptor: qemu disagrees"
echo "ok: split and hand-written descriptors"

# A delta disk (parentFileNameHint): unallocated grains come from the parent.
need qemu-io
mkdir delta && cd delta
truncate -s 8M base.raw
dd if=/dev/urandom of=base.raw bs=64k count=20 conv=notrunc status=none
qemu-img convert -f raw -O vmdk base.raw base.vmdk
qemu-img create -q -f vmdk -b base.vmdk -F vmdk delta.vmdk
qemu-io -f vmdk -c "write -P 0x55 100k 200k" delta.vmdk >/dev/null
"$P2V" info delta.vmdk | grep -q "backing file: base.vmdk" || fail "delta: backing file not shown"
"$P2V" convert -O raw delta.vmdk d.raw
qemu-img compare -f vmdk -F raw delta.vmdk d.raw >/dev/null || fail "delta: content differs from qemu's reading"
cmp -n 102400 base.raw d.raw || fail "delta: parent data"
echo "ok: delta disk over its parent"

# streamOptimized layout as VMware writes it: each grain table follows its
# grains, then GD, footer and end-of-stream markers close the file.
cd "$TMP"
truncate -s 100M m.raw
for mib in 10 50 90; do dd if=/dev/urandom of=m.raw bs=1M seek=$mib count=1 conv=notrunc status=none; done
"$P2V" convert -f raw -O vmdk -o subformat=streamOptimized m.raw m.vmdk
qemu-img compare -f raw -F vmdk m.raw m.vmdk >/dev/null || fail "3-table stream: qemu-img compare"
python3 - m.vmdk <<'PY' || fail "stream layout"
import struct, sys
f = open(sys.argv[1], 'rb').read()
sec = struct.unpack_from('<Q', f, 64)[0]          # overHead: the first grain
seen = []                                          # ('g', table) / ('m', type)
while sec * 512 < len(f):
    val, size = struct.unpack_from('<QI', f, sec * 512)
    if size:
        seen.append(('g', val // 128 // 512)); sec += (12 + size + 511) // 512
    else:
        t = struct.unpack_from('<I', f, sec * 512 + 12)[0]; seen.append(('m', t)); sec += 1 + val
        if t == 0: break
marks = [x for x in seen if x[0] == 'm']
assert marks == [('m', 1)] * 3 + [('m', 2), ('m', 3), ('m', 0)], marks
i = seen.index(('m', 1)); assert set(seen[:i]) == {('g', 0)}, seen[:i]
assert sec * 512 == len(f), (sec, len(f))
PY
echo "ok: stream layout (grains, GT after its grains, GD, footer, EOS)"
