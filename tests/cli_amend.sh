#!/bin/bash
# p2v amend against qemu-img amend 7.2 (qcow2: compat, lazy_refcounts, size,
# refcount_bits): the same changes on copies
# of the same images give the same format-specific JSON from qemu-img info,
# qemu-img check finds them clean, and they read as before (qemu-img
# compare with a copy taken before).  What qemu-img refuses, p2v refuses;
# a downgrade over a v3-only feature p2v cannot undo (zero clusters in
# internal snapshots too) is refused naming it.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io jq
cd "$TMP"
spec() { qemu-img info --output=json "$1" | jq -c '[."virtual-size", ."format-specific", ."backing-filename"]'; }

# amend_same NAME OPTS: NAME.qcow2 amended by both tools
amend_same() {
	local name=$1 opts=$2
	cp $name.qcow2 before.qcow2; cp $name.qcow2 p.qcow2; cp $name.qcow2 q.qcow2
	"$P2V" amend -o "$opts" p.qcow2 || fail "$name -o $opts: p2v amend failed"
	qemu-img amend -q -o "$opts" q.qcow2
	[ "$(spec p.qcow2)" = "$(spec q.qcow2)" ] || fail "$name -o $opts: p2v $(spec p.qcow2), qemu-img $(spec q.qcow2)"
	qemu-img check -q p.qcow2 || fail "$name -o $opts: qemu-img check"
	qemu-img compare -q before.qcow2 p.qcow2 2>/dev/null ||
		{ [[ $opts == *size=* ]] && qemu-img compare -q q.qcow2 p.qcow2; } || fail "$name -o $opts: content changed"
	echo "ok: $name -o $opts: $(spec p.qcow2)"
}

# v3 with data, zero clusters (plain and preallocated) and a partial last cluster
qemu-img create -q -f qcow2 -o cluster_size=4k v3.qcow2 $((64 << 20 | 512))
qemu-io -f qcow2 -c "write -P 1 0 128k" -c "write -z 64k 8k" -c "write -z 1M 64k" \
	-c "write -P 2 $((64 << 20)) 512" -c "write -z -u 32k 4k" v3.qcow2 >/dev/null
qemu-img info --output=json v3.qcow2 | jq -e '."format-specific".data.compat == "1.1"' >/dev/null
# over a backing file: its zero clusters hide the backing file's data
qemu-img create -q -f raw base.raw 8M
qemu-io -f raw -c "write -P 9 0 8M" base.raw >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw ov.qcow2 8M
qemu-io -f qcow2 -c "write -z 0 1M" -c "write -P 3 2M 64k" ov.qcow2 >/dev/null
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 32M
qemu-io -f qcow2 -c "write -P 5 1M 3M" v2.qcow2 >/dev/null

amend_same v3 compat=0.10
amend_same v3 compat=v2,lazy_refcounts=off
amend_same ov compat=0.10
qemu-img compare -q -f raw base.raw p.qcow2 2>/dev/null && fail "ov: the zero clusters no longer hide the backing data"
amend_same ov compat=1.1,backing_file=base.raw,backing_fmt=raw
amend_same v3 lazy_refcounts=on
amend_same v2 compat=1.1
amend_same v2 compat=1.1,lazy_refcounts=on
amend_same v3 size=100M
amend_same v3 size=10M
amend_same v3 size=100M,compat=0.10
amend_same v2 refcount_bits=16,compat=0.10
for bits in 1 2 4 8 32 64; do amend_same v3 refcount_bits=$bits; done
amend_same v2 compat=1.1,refcount_bits=8
amend_same v3 refcount_bits=4,size=200M,lazy_refcounts=on
cp p.qcow2 w4.qcow2 # 4-bit refcounts: back to 16 and to v2 in one go
amend_same w4 refcount_bits=16,compat=0.10
qemu-io -f qcow2 -c "write -P 4 20M 3M" -c "write -z 64k 1M" p.qcow2 >/dev/null
qemu-img check -q p.qcow2 || fail "a v2 image from 4-bit refcounts: QEMU's writes"
cp v3.qcow2 lz.qcow2; qemu-img amend -o lazy_refcounts=on lz.qcow2
amend_same lz lazy_refcounts=off
amend_same lz compat=0.10

# refused as qemu-img refuses them (both tools fail; the image is unchanged)
refused_both() {
	local name=$1 opts=$2 fmt=${3:-qcow2}
	cp $name.qcow2 p.qcow2; cp $name.qcow2 q.qcow2
	qemu-img amend -q -f $fmt -o "$opts" q.qcow2 2>/dev/null && fail "$name -o $opts: qemu-img accepts it"
	expect_fail "$name -o $opts (as qemu-img)" "$P2V" amend -f $fmt -o "$opts" p.qcow2
	cmp -s $name.qcow2 p.qcow2 || fail "$name -o $opts: refused but the image changed"
}
refused_both v3 cluster_size=4k
refused_both v3 no_such_option=1
refused_both v3 lazy_refcounts=maybe
refused_both v3 compat=0.10,lazy_refcounts=on
refused_both v2 lazy_refcounts=on
refused_both v2 refcount_bits=8
refused_both v3 backing_file=base.raw
refused_both ov backing_fmt=qcow2
refused_both v3 data_file=d.raw
refused_both v3 size=1G raw
qemu-img create -q -f qcow2 -o refcount_bits=8 r8.qcow2 16M
refused_both r8 compat=0.10
cp v3.qcow2 s1.qcow2; qemu-img snapshot -c s1 s1.qcow2 # refcounts of 2
refused_both s1 refcount_bits=1
expect_fail "amend without -o" "$P2V" amend v3.qcow2

# refused by p2v only, each naming what stands in the way
refused() {
	local name=$1 opts=$2 word=$3 out
	cp $name.qcow2 p.qcow2
	out=$("$P2V" amend -o "$opts" p.qcow2 2>&1) && fail "$name -o $opts: accepted"
	grep -q "$word" <<<"$out" || fail "$name -o $opts: the refusal does not name $word: $out"
	[ "$(grep -c . <<<"$out")" = 1 ] || fail "$name -o $opts: more than one line: $out"
	cmp -s $name.qcow2 p.qcow2 || fail "$name -o $opts: refused but the image changed"
	echo "ok (refused): $name -o $opts: $out"
}
qemu-img create -q -f qcow2 -o compression_type=zstd zs.qcow2 16M
refused zs compat=0.10 zstd
cp v3.qcow2 bm.qcow2; qemu-img bitmap --add bm.qcow2 b0
refused bm compat=0.10 bitmaps
cp v3.qcow2 sn.qcow2; qemu-img snapshot -c s1 sn.qcow2
refused sn compat=0.10 snapshots
# internal snapshots without zero clusters: downgraded, the snapshot intact
qemu-img create -q -f qcow2 sd.qcow2 16M
qemu-io -f qcow2 -c "write -P 1 0 1M" sd.qcow2 >/dev/null
qemu-img snapshot -c s1 sd.qcow2
qemu-io -f qcow2 -c "write -P 2 512k 1M" -c "write -z 4M 128k" sd.qcow2 >/dev/null
amend_same sd compat=0.10
qemu-img snapshot -a s1 p.qcow2 && qemu-img snapshot -a s1 q.qcow2
qemu-img compare -q p.qcow2 q.qcow2 || fail "sd: the snapshot reads differently after the downgrade"
qemu-img check -q p.qcow2 || fail "sd: check after applying the snapshot"
echo "ok: a downgrade keeps an internal snapshot without zero clusters"

# -o help: the options qemu-img amend lists for qcow2 (p2v: a subset)
"$P2V" amend -o help v3.qcow2 >help.txt
head -1 help.txt | grep -qx "Amend options for 'qcow2':" || fail "-o help: heading $(head -1 help.txt)"
qemu-img amend -o help v3.qcow2 >qhelp.txt
for o in $(sed -n 's/^  \([a-z_.-]*\)=.*/\1/p' help.txt); do
	grep -q "^  $o=" qhelp.txt || fail "-o help: qemu-img amend has no option $o"
done
for o in compat lazy_refcounts refcount_bits size backing_file backing_fmt; do
	grep -q "^  $o=" help.txt || fail "-o help: $o missing"
done
cmp -s help.txt <("$P2V" amend -f qcow2 -o help) || fail "-f qcow2 -o help without an image differs"
expect_fail "-o help without -f or an image" "$P2V" amend -o help
echo "ok: -o help lists $(grep -c '^  ' help.txt) options, each one qemu-img amend has"

# qemu-img amend's other options, as its scripts pass them
cp v3.qcow2 p.qcow2
"$P2V" amend -p -t none -f qcow2 -o lazy_refcounts=on p.qcow2 2>/dev/null || fail "amend -p -t none"
"$P2V" amend -q -o lazy_refcounts=off p.qcow2 >out.txt 2>&1 || fail "amend -q"
[ ! -s out.txt ] || fail "amend -q printed: $(cat out.txt)"
echo "ok: -p, -t, -q as qemu-img amend takes them"

# locked: an image a VM holds is refused
qemu-io -f qcow2 v3.qcow2 -c "sleep 5000" & held=$!
sleep 1
expect_fail "an image a VM holds" "$P2V" amend -o lazy_refcounts=on v3.qcow2
kill $held; wait $held 2>/dev/null || true
echo PASS
