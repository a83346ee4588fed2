#!/bin/bash
# raw -> vhdx (p2v) -> raw: dynamic and fixed, 1 MiB and 256 MiB blocks,
# 4096-byte logical sectors.  Checked with qemu-img compare/check (qemu reads
# 512-byte-sector VHDX only), vhdiinfo (libvhdi) and our own read back.
source "$(dirname "$0")/lib.sh"
need qemu-img vhdiinfo

raw=$TMP/in.raw
mkrandom "$raw" $((3 * 1024 * 1024))
dd if=/dev/urandom of="$raw" bs=1M seek=9 count=2 conv=notrunc status=none
dd if=/dev/urandom of="$raw" bs=512 seek=$((15 * 2048 - 3)) count=5 conv=notrunc status=none
truncate -s 24M "$raw"
size=$(stat -c %s "$raw")

roundtrip() { # roundtrip OPTIONS SUBFORMAT LSS
	local opts=$1 sub=$2 lss=$3 img=$TMP/o.vhdx back=$TMP/back.raw
	rm -f "$img" "$back"
	"$P2V" convert -q -f raw -O vhdx -o "$opts" "$raw" "$img" || fail "convert -o $opts"
	local info vinfo
	info=$("$P2V" info "$img") || fail "$opts: p2v info"
	grep -q "subformat: $sub" <<<"$info" || fail "$opts: p2v info does not say $sub: $info"
	"$P2V" check "$img" >/dev/null || fail "$opts: p2v check"
	vinfo=$(vhdiinfo "$img") || fail "$opts: vhdiinfo"
	grep -q "Media size.*($size bytes)" <<<"$vinfo" || fail "$opts: vhdiinfo size: $vinfo"
	grep -q "Bytes per sector.*: $lss bytes" <<<"$vinfo" || fail "$opts: vhdiinfo sector size: $vinfo"
	if [ "$lss" = 512 ]; then
		qemu-img check -q -f vhdx "$img" || fail "$opts: qemu-img check"
		qemu-img compare -q -f raw -F vhdx "$raw" "$img" || fail "$opts: qemu-img compare"
	fi
	"$P2V" convert -q -O raw "$img" "$back" || fail "$opts: convert back"
	cmp "$raw" "$back" || fail "$opts: round trip differs"
	echo "ok: $opts ($(du -k "$img" | cut -f1) KiB allocated)"
}

roundtrip subformat=dynamic dynamic 512
roundtrip subformat=fixed fixed 512
roundtrip subformat=dynamic,block_size=1M dynamic 512
roundtrip subformat=fixed,block_size=1M fixed 512
roundtrip subformat=dynamic,block_size=256M dynamic 512
roundtrip subformat=fixed,block_size=256M,log_size=2M fixed 512
roundtrip subformat=dynamic,logical_sector_size=4096,block_size=2M dynamic 4096
roundtrip subformat=fixed,logical_sector_size=4096,physical_sector_size=512 fixed 4096

# Output size close to qemu's for the same block size (allocated bytes).
for sub in dynamic fixed; do
	rm -f "$TMP/q.vhdx" "$TMP/p.vhdx"
	qemu-img convert -f raw -O vhdx -o subformat=$sub,block_size=8M "$raw" "$TMP/q.vhdx"
	"$P2V" convert -q -f raw -O vhdx -o subformat=$sub,block_size=8M "$raw" "$TMP/p.vhdx"
	q=$(du -k "$TMP/q.vhdx" | cut -f1); p=$(du -k "$TMP/p.vhdx" | cut -f1)
	[ $((p * 100)) -le $((q * 102)) ] || fail "$sub: p2v output $p KiB vs qemu $q KiB (more than 2% larger)"
	echo "ok: $sub size p2v $p KiB, qemu $q KiB"
done

# A fresh image reads as zeroes and maps as one hole.
"$P2V" create -f vhdx "$TMP/empty.vhdx" 64M >/dev/null || fail "p2v create"
truncate -s 64M "$TMP/zero.raw"
qemu-img compare -q -f raw -F vhdx "$TMP/zero.raw" "$TMP/empty.vhdx" || fail "fresh image not zero"
qemu-img check -q -f vhdx "$TMP/empty.vhdx" || fail "qemu-img check of a fresh image"
echo "all vhdx round trips passed"
