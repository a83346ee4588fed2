#!/bin/bash
# qcow2 cost follows what is allocated, not the virtual size (issue 14): map,
# check and convert of empty 8 TiB and 1 PiB images and of hostile ones
# whose every L1 entry points at one zero L2 table (16384 and 2^21 entries)
# make a bounded number of reads (strace), agree with qemu-img map and
# qemu-img check, and convert to images qemu-img finds clean and equal.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cost_lib.sh"
need qemu-img qemu-io strace jq python3
cd "$TMP"
LIMIT=1000

qemu-img create -q -f qcow2 e8t.qcow2 8T
qemu-img create -q -f qcow2 e1p.qcow2 1P
qemu-img create -q -f qcow2 s8t.qcow2 8T
[ "$(python3 "$P2V_SRC/tests/qcow2_shared_l2.py" s8t.qcow2)" = 16384 ] || fail "s8t: L1 size"
qemu-img create -q -f qcow2 s1p.qcow2 1P
[ "$(python3 "$P2V_SRC/tests/qcow2_shared_l2.py" s1p.qcow2)" = 2097152 ] || fail "s1p: L1 size"
# allocated here and there: data across an L2 table boundary (512 MiB per
# table), zero clusters, a discarded range, data near the end
qemu-img create -q -f qcow2 p8t.qcow2 8T
qemu-io -f qcow2 -c 'write -P 1 0 1M' -c 'write -P 2 1023M 2M' -c 'write -z 5G 192k' \
	-c 'write -P 3 6G 1M' -c 'discard 6G 64k' -c 'write -P 4 8191G 1M' p8t.qcow2 >/dev/null

# qemu-img map takes about 20 s per 1 PiB image: the hostile one, which
# reads as all unallocated, is compared with the empty one's
same_map s1p.qcow2 e1p.qcow2
for f in e8t s8t p8t e1p s1p; do
	[ $f = s1p ] || same_map $f.qcow2
	bounded "$f: map" "$(reads "$P2V" map --output=json $f.qcow2)" $LIMIT
	bounded "$f: check" "$(reads "$P2V" check $f.qcow2)" $LIMIT
	cp out $f.check
	rm -f $f.out.qcow2
	bounded "$f: convert" "$(reads "$P2V" convert -O qcow2 $f.qcow2 $f.out.qcow2)" $LIMIT
	qemu-img check -q $f.out.qcow2 || fail "$f: qemu-img check of the converted image"
done

# check: as qemu-img check where it can count (16-bit refcounts overflow past
# 65535 references in qemu's count, so the 2^21-entry image is compared
# with the one error it has: its shared L2 table)
for f in e8t e1p p8t; do
	grep -q "^No errors were found" $f.check || fail "$f: check: $(cat $f.check)"
done
qemu-img check s8t.qcow2 >s8t.qcheck 2>&1 && fail "qemu-img check found no error in s8t"
grep "^ERROR\|errors were found" s8t.qcheck >s8t.want
grep "^ERROR\|errors were found" s8t.check >s8t.got
diff s8t.want s8t.got || fail "s8t: check differs from qemu-img check"
grep -q "^1 errors were found" s1p.check && grep -q "refcount=1 reference=2097152" s1p.check ||
	fail "s1p: check: $(head -n 5 s1p.check)"
echo "ok: check as qemu-img check"

# content: the converted images equal their sources (qemu-img compare)
for f in e8t s8t p8t; do
	qemu-img compare -q $f.qcow2 $f.out.qcow2 || fail "$f: converted image differs"
done
"$P2V" compare e1p.qcow2 s1p.out.qcow2 >/dev/null || fail "s1p: converted image is not empty"
bounded "s1p: compare" "$(reads "$P2V" compare s1p.qcow2 e1p.qcow2)" $LIMIT
echo "ok: converted images equal their sources"
