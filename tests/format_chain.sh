#!/bin/bash
# Conversions between every format p2v writes, qcow2 -> vhdx -> vmdk -> vhd
# (dynamic) -> qcow2, preserve the content exactly (qemu-img compare at each
# step) and keep holes as holes: the data extents of the last image are
# those of the first (p2v map), and each intermediate maps the untouched
# 32 MiB stretches as holes.  Data sits on 32 MiB boundaries so that the
# coarsest allocation unit (VHDX blocks) does not blur the layout.
. "$(dirname "$0")/lib.sh"
need qemu-img jq
cd "$TMP"
MiB=$((1 << 20))
truncate -s 256M src.raw
put() { mkrandom chunk "$2"; dd if=chunk of=src.raw bs=1M seek="$1" conv=notrunc status=none; }
put 0 $((32 * MiB))           # [0, 32M): random
put 96 $((3 * MiB))           # [96M, 99M): random, the block is data
put 224 $((32 * MiB))         # [224M, 256M): random, the last block
dd if=/dev/zero of=src.raw bs=1M seek=160 count=32 conv=notrunc status=none # zeroes written: a hole
"$P2V" convert -f raw -O qcow2 src.raw a.qcow2

data_extents() { # data_extents IMG: "start+len" of data extents, merged
	"$P2V" map --json "$1" | jq -r '
		reduce (.[] | select(.data)) as $e ([];
			if length > 0 and .[-1][0] + .[-1][1] == $e.start then .[-1][1] += $e.length
			else . + [[$e.start, $e.length]] end) |
		map("\(.[0])+\(.[1])") | join(" ")'
}
holes_cover() { # holes_cover IMG START_MIB LEN_MIB: no data in that range
	"$P2V" map --json "$1" | jq -e --argjson lo $(($2 << 20)) --argjson hi $((($2 + $3) << 20)) \
		'all(.[]; (.data and .start < $hi and .start + .length > $lo) | not)' >/dev/null
}

first=$(data_extents a.qcow2)
echo "data extents of a.qcow2: $first"
prev=a.qcow2
for step in "vhdx b.vhdx" "vmdk c.vmdk" "vpc d.vhd" "qcow2 e.qcow2"; do
	set -- $step
	"$P2V" convert -O "$1" "$prev" "$2" || fail "convert $prev -> $2"
	qemu-img compare -f raw src.raw "$2" >/dev/null || fail "$2 differs from the source"
	for hole in "32 64" "128 32" "160 32" "192 32"; do
		holes_cover "$2" $hole || fail "$2: data where the source has a hole ($hole MiB): $(data_extents "$2")"
	done
	echo "ok: $prev -> $2: identical, holes kept ($(data_extents "$2"))"
	prev=$2
done
last=$(data_extents e.qcow2)
[ "$last" = "$first" ] || fail "data extents changed: $first -> $last"
qemu-img check e.qcow2 >/dev/null || fail "qemu-img check e.qcow2"
echo "ok: qcow2 -> vhdx -> vmdk -> vhd -> qcow2 keeps content and holes"
