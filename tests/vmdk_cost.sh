#!/bin/bash
# VMDK (monolithicSparse) cost follows what is allocated, not the virtual
# size (issue 14): map and convert of an empty 1 TiB image from qemu-img
# create (every grain table present and zero) and of a partly written one
# make a bounded number of reads (strace) in bounded memory (peak RSS), map
# as qemu-img map, and convert to the bytes qemu-img convert makes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cost_lib.sh"
need qemu-img qemu-io strace jq
[ -x /usr/bin/time ] || fail "/usr/bin/time is not installed (scripts/install-deps installs it)"
cd "$TMP"
LIMIT=1000
RSS_KIB=$((64 * 1024))

qemu-img create -q -f vmdk e1t.vmdk 1T
cp e1t.vmdk p1t.vmdk
qemu-io -f vmdk -c 'write -P 0xab 1G 1M' -c 'write -P 0xcd 100G 64k' -c 'write -P 0xef 1023G 96k' \
	p1t.vmdk >/dev/null
# a small one for content: grains in several tables, partial grains
qemu-img create -q -f vmdk p4g.vmdk 4G
qemu-io -f vmdk -c 'write -P 0xab 1G 1M' -c 'write -P 0x11 32M 4k' -c 'write -P 0x22 4095M 1M' \
	p4g.vmdk >/dev/null

# rss WHAT CMD...: CMD's peak RSS must stay below RSS_KIB.
rss() {
	local what=$1 kib
	shift
	/usr/bin/time -f %M -o rss.txt "$@" >/dev/null || fail "$what: $* failed"
	kib=$(tail -n 1 rss.txt)
	[ "$kib" -lt $RSS_KIB ] || fail "$what: peak RSS $kib KiB, expected below $RSS_KIB"
	echo "ok: $what: peak RSS $kib KiB (< $RSS_KIB)"
}

for f in e1t p1t p4g; do
	same_map $f.vmdk
	bounded "$f: map" "$(reads "$P2V" map --output=json $f.vmdk)" $LIMIT
	rss "$f: map" "$P2V" map --output=json $f.vmdk
	rm -f $f.raw
	bounded "$f: convert -O raw" "$(reads "$P2V" convert -O raw $f.vmdk $f.raw)" $LIMIT
	rm -f $f.raw
	rss "$f: convert -O raw" "$P2V" convert -O raw $f.vmdk $f.raw
	rm -f $f.qcow2
	bounded "$f: convert -O qcow2" "$(reads "$P2V" convert -O qcow2 $f.vmdk $f.qcow2)" $LIMIT
	qemu-img compare -q -f vmdk -F qcow2 $f.vmdk $f.qcow2 || fail "$f: converted qcow2 differs"
done
qemu-img convert -f vmdk -O raw p4g.vmdk p4g.qemu.raw
cmp p4g.qemu.raw p4g.raw || fail "p4g: convert -O raw differs from qemu-img convert's"
echo "ok: convert -O raw as qemu-img convert"
