#!/bin/bash
# raw -> qcow2 -> raw: plain, compressed (zlib, zstd), cluster sizes 512 B,
# 64 KiB and 2 MiB, a size that is not a multiple of the cluster size, an
# all-zero and a full-random disk.  Each: qemu-img compare equal, qemu-img
# check clean, qcowinfo reads it, p2v check clean, back to raw byte-equal.
. "$(dirname "$0")/lib.sh"
need qemu-img qcowinfo cmp sfdisk jq
cd "$TMP"

mkdisk() { # mkdisk FILE SIZE: MBR, random and text data, holes
	truncate -s "$2" "$1"
	printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$1"
	dd if=/dev/urandom of="$1" bs=4k seek=300 count=200 conv=notrunc status=none
	for off in 3000001 9000000 15000000; do
		dd if="$P2V_SRC/README.md" of="$1" bs=1 seek=$off conv=notrunc status=none
	done
	cat "$P2V_SRC"/imgfmt/*.c | dd of="$1" bs=1 seek=5000000 conv=notrunc status=none
	truncate -s "$2" "$1"
}

check_one() { # check_one RAW QCOW2 LABEL
	local raw=$1 q=$2 what=$3
	qemu-img check -f qcow2 "$q" >check.txt 2>&1 || { cat check.txt; fail "$what: qemu-img check"; }
	grep -q "No errors were found" check.txt || { cat check.txt; fail "$what: qemu-img check not clean"; }
	qemu-img compare -f raw -F qcow2 "$raw" "$q" >/dev/null || fail "$what: qemu-img compare"
	if [ "${4:-}" != no-qcowinfo ]; then # libqcow 20201213 predates zstd (feature bit 3)
		qcowinfo "$q" >qi.txt 2>&1 || { cat qi.txt; fail "$what: qcowinfo cannot read it"; }
		grep -q "Media size.*$(stat -c %s "$raw") bytes" qi.txt || { cat qi.txt; fail "$what: qcowinfo size"; }
	fi
	"$P2V" check "$q" >/dev/null || fail "$what: p2v check"
	"$P2V" convert -O raw "$q" back.raw
	cmp -n "$(stat -c %s "$raw")" "$raw" back.raw || fail "$what: back to raw differs"
	rm -f back.raw
	echo "ok: $what ($(stat -c %s "$q") bytes)"
}

mkdisk disk.raw 20M
for cs in 512 64K 2M; do
	"$P2V" convert -f raw -O qcow2 -o cluster_size=$cs disk.raw p-$cs.qcow2
	check_one disk.raw p-$cs.qcow2 "plain cluster_size=$cs"
	"$P2V" convert -f raw -O qcow2 -c -o cluster_size=$cs disk.raw z-$cs.qcow2
	check_one disk.raw z-$cs.qcow2 "zlib cluster_size=$cs"
	"$P2V" convert -f raw -O qcow2 -c -o cluster_size=$cs,compression_type=zstd disk.raw s-$cs.qcow2
	check_one disk.raw s-$cs.qcow2 "zstd cluster_size=$cs" no-qcowinfo
	qemu-img info s-$cs.qcow2 | grep -q "compression type: zstd" || fail "zstd not recorded"
done
# narrow refcounts: a host cluster shared by many compressed clusters fills up
for rb in 1 2; do
	"$P2V" convert -f raw -O qcow2 -c -o cluster_size=4K,refcount_bits=$rb disk.raw rb$rb.qcow2
	check_one disk.raw rb$rb.qcow2 "compressed, refcount_bits=$rb"
done
# zlib itself at QEMU's level, 4 KiB window: QEMU must read it too
"$P2V" convert -f raw -O qcow2 -c -o compression_level=6 disk.raw z6.qcow2
check_one disk.raw z6.qcow2 "zlib level 6"
# ISA-L with a 4 KiB history
"$P2V" convert -f raw -O qcow2 -c -o compression_level=fast disk.raw zf.qcow2
check_one disk.raw zf.qcow2 "zlib fast (ISA-L)"
expect_fail "bad compression_level" "$P2V" convert -f raw -O qcow2 -c -o compression_level=11 disk.raw bad.qcow2
# compression must have happened: the text parts shrink
[ "$(stat -c %s z-64K.qcow2)" -lt "$(stat -c %s p-64K.qcow2)" ] || fail "zlib output not smaller"
[ "$(stat -c %s s-64K.qcow2)" -lt "$(stat -c %s p-64K.qcow2)" ] || fail "zstd output not smaller"
# p2v's own deflate (the default) is no larger than zlib level 6's
[ "$(stat -c %s z-64K.qcow2)" -le "$(stat -c %s z6.qcow2)" ] ||
	fail "default zlib output $(stat -c %s z-64K.qcow2) > zlib level 6's $(stat -c %s z6.qcow2)"

# a size that is no multiple of the cluster size (nor of a sector)
mkdisk odd.raw $((7*1024*1024 + 12345))
"$P2V" convert -f raw -O qcow2 odd.raw odd.qcow2
truncate -s $(( (7*1024*1024 + 12345 + 511) / 512 * 512 )) odd.raw   # QEMU counts sectors
check_one odd.raw odd.qcow2 "odd size"
"$P2V" convert -f raw -O qcow2 -c odd.raw oddc.qcow2
check_one odd.raw oddc.qcow2 "odd size compressed"

# all zero: nothing allocated
truncate -s 64M zero.raw
"$P2V" convert -f raw -O qcow2 zero.raw zero.qcow2
check_one zero.raw zero.qcow2 "all zero"
[ "$(stat -c %s zero.qcow2)" -lt 400000 ] || fail "all-zero image is $(stat -c %s zero.qcow2) bytes"
"$P2V" map --json zero.qcow2 | jq -e 'any(.[]; .data)' >/dev/null && fail "all-zero image has data extents"

# full random: every cluster allocated, compression gives up gracefully
head -c 16M /dev/urandom > rnd.raw
"$P2V" convert -f raw -O qcow2 rnd.raw rnd.qcow2
check_one rnd.raw rnd.qcow2 "full random"
"$P2V" convert -f raw -O qcow2 -c rnd.raw rndc.qcow2
check_one rnd.raw rndc.qcow2 "full random compressed"

# version 2 (compat=0.10) for old hypervisors: plain and compressed
"$P2V" convert -f raw -O qcow2 -o compat=0.10 disk.raw v2.qcow2
qemu-img info v2.qcow2 | grep -q "compat: 0.10" || fail "compat=0.10: not version 2"
check_one disk.raw v2.qcow2 "version 2"
"$P2V" convert -f raw -O qcow2 -c -o compat=0.10 disk.raw v2c.qcow2
check_one disk.raw v2c.qcow2 "version 2 compressed"
expect_fail "compat=0.10 with zstd" "$P2V" convert -f raw -O qcow2 -o compat=0.10,compression_type=zstd disk.raw bad.qcow2
expect_fail "compat=0.9" "$P2V" convert -f raw -O qcow2 -o compat=0.9 disk.raw bad.qcow2

# holes stay holes: the map of the qcow2 matches the raw's data layout
"$P2V" map --json p-64K.qcow2 | jq -e '[.[] | select(.data) | .length] | add | . > 0 and . < 4*1024*1024' \
	>/dev/null || fail "qcow2 map"
# and it is qemu-img's map of the same file, entry for entry
[ "$("$P2V" map --output=json p-64K.qcow2 | jq -c '.[]')" = "$(qemu-img map --output=json p-64K.qcow2 | jq -c '.[]')" ] ||
	fail "qcow2 map differs from qemu-img map"
echo "ok: qcow2 round trips"
