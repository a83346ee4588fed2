#!/bin/bash
# Reading VHDX images written by qemu-img (create and convert; dynamic and
# fixed; several block sizes): our read must equal qemu's.
source "$(dirname "$0")/lib.sh"
need qemu-img qemu-io jq

raw=$TMP/in.raw
mkrandom "$raw" $((2 * 1024 * 1024))
dd if=/dev/urandom of="$raw" bs=1M seek=7 count=3 conv=notrunc status=none
dd if=/dev/urandom of="$raw" bs=4096 seek=$((40 * 256 + 1)) count=1 conv=notrunc status=none
truncate -s 48M "$raw"

check_same() { # check_same IMAGE WHAT
	local img=$1 what=$2
	rm -f "$TMP/ours.raw" "$TMP/qemu.raw"
	"$P2V" convert -q -O raw "$img" "$TMP/ours.raw" || fail "$what: p2v convert"
	qemu-img convert -f vhdx -O raw "$img" "$TMP/qemu.raw"
	cmp "$TMP/ours.raw" "$TMP/qemu.raw" || fail "$what: our read differs from qemu's"
	"$P2V" compare -F raw "$img" "$TMP/qemu.raw" >/dev/null || fail "$what: p2v compare"
	"$P2V" check "$img" >/dev/null || fail "$what: p2v check"
	echo "ok: $what"
}

for sub in dynamic fixed; do
	for bs in 1M 8M 32M 256M; do
		rm -f "$TMP/q.vhdx"
		qemu-img convert -f raw -O vhdx -o subformat=$sub,block_size=$bs "$raw" "$TMP/q.vhdx"
		check_same "$TMP/q.vhdx" "qemu convert $sub block_size=$bs"
		cmp "$raw" "$TMP/ours.raw" || fail "$sub $bs: content differs from the source"
	done
	rm -f "$TMP/e.vhdx"
	qemu-img create -q -f vhdx -o subformat=$sub,block_size=2M "$TMP/e.vhdx" 20M
	check_same "$TMP/e.vhdx" "qemu create $sub (empty)"
	info=$("$P2V" info "$TMP/e.vhdx")
	grep -q "subformat: $sub" <<<"$info" || fail "info subformat: $info"
	grep -q "block size: 2097152" <<<"$info" || fail "info block size: $info"
	grep -q "creator: QEMU" <<<"$info" || fail "info creator: $info"
	grep -q "log: empty" <<<"$info" || fail "info log: $info"
done

# An image qemu wrote to after creation (it updates the BAT through its log,
# then replays and clears it).
qemu-img create -q -f vhdx -o block_size=1M "$TMP/w.vhdx" 16M
qemu-io -f vhdx -c "write -P 0x5a 3M 1536K" -c "write -P 0x17 12M 4k" "$TMP/w.vhdx" >/dev/null
check_same "$TMP/w.vhdx" "qemu-io writes"

# An empty dynamic image maps as zero/hole only.
map=$("$P2V" map --json "$TMP/w.vhdx")
jq -e 'any(.[]; .data)' <<<"$map" >/dev/null || fail "map shows no data: $map"
map=$("$P2V" map --json "$TMP/e.vhdx")
if jq -e 'any(.[]; .data)' <<<"$map" >/dev/null; then
	grep -q "subformat: fixed" <<<"$("$P2V" info "$TMP/e.vhdx")" || fail "empty dynamic image maps data: $map"
fi


# Writing into a qemu-made image (read-write open of an existing file): qemu
# must find it clean and read what we wrote; the untouched data stays.
helper=$P2V_BUILD/tests/unit_vhdx
rm -f "$TMP/w.vhdx" "$TMP/want.raw"
qemu-img convert -f raw -O vhdx -o block_size=1M "$raw" "$TMP/w.vhdx"
off=$((5 * 1048576 + 100)) len=$((2 * 1048576 + 3))
"$helper" write "$TMP/w.vhdx" $off $len 7 || fail "write into a qemu-made image"
"$helper" pattern "$TMP/pat" 0 $len 7
cp "$raw" "$TMP/want.raw"
dd if="$TMP/pat" of="$TMP/want.raw" bs=64K oflag=seek_bytes seek=$off conv=notrunc status=none
qemu-img check -q -f vhdx "$TMP/w.vhdx" || fail "qemu-img check after our write"
qemu-img compare -q -f raw -F vhdx "$TMP/want.raw" "$TMP/w.vhdx" || fail "qemu reads something else than we wrote"
"$P2V" compare -F raw "$TMP/w.vhdx" "$TMP/want.raw" >/dev/null || fail "p2v reads something else than we wrote"
echo "ok: write into a qemu-made image"
echo "all qemu-made images read (and written) correctly"
