#!/bin/bash
# VMDK (monolithicSparse) cost follows what is allocated, not the virtual
# size (issue 14): map and convert of an empty 1 TiB image from qemu-img
# create (every grain table present and zero) and of a partly written one
# make a bounded number of reads (strace) in bounded memory (peak RSS), map
# as qemu-img map, and convert to the bytes qemu-img convert makes; check
# reads the redundant grain tables in runs too, with qemu-img check's verdict.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cost_lib.sh"
need qemu-img qemu-io strace jq python3
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

# check: the redundant grain tables are read in runs, as the primary ones
# at open (one pread per up to 256 adjacent tables), an all-zero pair is
# compared in one memcmp: an empty 1 TiB image costs about 275 reads (it
# was 32,915, one per redundant table). The verdict and exit code on the
# clean images are qemu-img check's: no errors, exit 0.
CHECK_LIMIT=400
# verdict WHAT RC_P2V RC_QEMU IMG: check's exit codes.
verdict() {
	local rc=0 qrc=0
	"$P2V" check "$4" >check.p2v 2>&1 || rc=$?
	qemu-img check -f vmdk "$4" >check.qemu 2>&1 || qrc=$?
	[ "$rc" = "$2" ] || fail "$1: p2v check exited $rc, expected $2: $(head -n 3 check.p2v)"
	[ "$qrc" = "$3" ] || fail "$1: qemu-img check exited $qrc, expected $3: $(head -n 3 check.qemu)"
	echo "ok: $1: p2v check exit $rc, qemu-img check exit $qrc"
}
# corrupt IMG TABLE ENTRY VALUE: entry ENTRY of redundant grain table TABLE
# (located through the header's rgdOffset) := VALUE.
corrupt() {
	python3 - "$@" <<'PY'
import struct, sys
img, t, j, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with open(img, 'r+b') as f:
    h = f.read(512)
    assert h[:4] == b'KDMV', 'not a VMDK sparse extent'
    rgd = struct.unpack_from('<Q', h, 0x30)[0]
    f.seek(rgd * 512 + 4 * t)
    s = struct.unpack('<I', f.read(4))[0]
    assert s, 'redundant grain table absent'
    f.seek(s * 512 + 4 * j)
    f.write(struct.pack('<I', v))
PY
}
for f in e1t p1t; do
	bounded "$f: check" "$(reads "$P2V" check $f.vmdk)" $CHECK_LIMIT
	verdict "$f: check (clean)" 0 0 $f.vmdk
done
# Hand-corrupted copies: one redundant grain-table entry differs from its
# primary, in an all-zero table of the empty image (entry 7 of table 20000
# := sector 128) and in a written table of the other (entry 3 of table 32,
# the grain at 1 GiB + 192 KiB, := 0). p2v check reports exactly that
# entry and exits 2 (errors found). qemu-img check (7.2) does not read the
# redundant grain directory or tables at all (its VMDK check only checks
# the primary tables' grain offsets against the file size): it reports both
# copies clean and exits 0, so its exit code is asserted as 0 here.
cp e1t.vmdk ec.vmdk
corrupt ec.vmdk 20000 7 128
cp p1t.vmdk pc.vmdk
corrupt pc.vmdk 32 3 0
for c in "ec 20000 7" "pc 32 3"; do
	set -- $c
	bounded "$1: check (corrupted)" "$(reads "$P2V" check $1.vmdk)" $CHECK_LIMIT
	verdict "$1: check (corrupted)" 2 0 $1.vmdk
	grep -q "redundant grain table $2 differs at entry $3" check.p2v ||
		fail "$1: p2v check does not report redundant table $2 entry $3: $(head -n 3 check.p2v)"
	[ "$(grep -c differs check.p2v)" = 1 ] || fail "$1: p2v check reports more than the one entry: $(head -n 5 check.p2v)"
	grep -q "No errors" check.qemu || fail "$1: qemu-img check: $(head -n 3 check.qemu)"
	echo "ok: $1: p2v check reports table $2 entry $3; qemu-img check reports no error"
done
