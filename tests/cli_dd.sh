#!/bin/bash
# p2v dd against qemu-img dd 7.2: the same arguments on the same inputs give
# outputs of the same size and raw content (qemu-img convert -O raw of
# each, compared byte for byte), in the output format asked for; what
# qemu-img dd refuses, p2v refuses.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io
cd "$TMP"
M=$((1 << 20))

# 10 MiB + 1536 bytes: data, a hole, zeroes and a partial last block
qemu-img create -q -f raw in.raw $((10 * M + 1536))
qemu-io -f raw -c "write -P 7 0 3M" -c "write -P 3 $((3 * M + 100)) 1k" -c "write -P 9 $((9 * M)) $((M + 1536))" \
	in.raw >/dev/null
qemu-img convert -f raw -O qcow2 -o cluster_size=4k in.raw in.qcow2

# same IN OUTFMT ARGS...: p2v dd and qemu-img dd with ARGS
same() {
	local in=$1 ofmt=$2; shift 2
	rm -f p.out q.out
	"$P2V" dd -O $ofmt if=$in of=p.out "$@" 2>p.err || fail "p2v dd $in -O $ofmt $*: $(cat p.err)"
	qemu-img dd -O $ofmt if=$in of=q.out "$@" 2>/dev/null || fail "qemu-img dd $in -O $ofmt $* failed"
	[ "$(qemu-img info --output=json -f $ofmt p.out | jq -r .format)" = $ofmt ] || fail "dd -O $ofmt: not $ofmt"
	qemu-img convert -f $ofmt -O raw p.out p.raw
	qemu-img convert -f $ofmt -O raw q.out q.raw
	# vpc: qemu-img rounds a new VHD's size up to its CHS geometry, p2v
	# keeps it exact (as convert does): the content must agree, the rest zero
	if [ $ofmt = vpc ]; then
		qemu-img compare -q -f raw -F raw p.raw q.raw
	else
		cmp -s p.raw q.raw
	fi || fail "dd $in -O $ofmt $*: content differs from qemu-img dd's ($(stat -c %s p.raw) vs $(stat -c %s q.raw) bytes)"
	case $ofmt in qcow2|vhdx) qemu-img check -q -f $ofmt p.out || fail "dd -O $ofmt $*: qemu-img check" ;; esac
	echo "ok: dd $in -O $ofmt $*: $(stat -c %s q.raw) bytes, as qemu-img dd"
}
for in in in.raw in.qcow2; do
	same $in raw
	same $in raw bs=1M
	same $in raw bs=1M count=4
	same $in raw bs=1M count=4 skip=1
	same $in raw bs=1M skip=3
	same $in raw bs=3k count=1k skip=5
	same $in raw bs=1M count=3 skip=3
	same $in raw bs=1M skip=20 # past the end: empty, with a warning
	same $in raw count=0
	same $in raw bs=4097 skip=2
done
same in.qcow2 qcow2 bs=64k count=100 skip=7
same in.raw vpc bs=1M skip=2
same in.raw vhdx bs=512 count=8k

# refused as qemu-img refuses
for args in "bs=0" "bs=1x" "count=-1" "foo=1" "if=in.raw" "of=x.raw"; do
	case $args in if=*|of=*) all=$args ;; *) all="if=in.raw of=x.raw $args" ;; esac
	qemu-img dd $all 2>/dev/null && fail "qemu-img dd $all succeeds"
	expect_fail "dd $all (as qemu-img)" "$P2V" dd $all
	[ ! -e x.raw ] || fail "dd $all: refused but x.raw exists"
done
# an existing OUT needs --force (p2v's rule for every output)
cp in.raw old.raw
expect_fail "dd over an existing file" "$P2V" dd if=in.raw of=old.raw bs=1M count=1
cmp -s in.raw old.raw || fail "dd refused but old.raw changed"
"$P2V" dd --force if=in.raw of=old.raw bs=1M count=1
[ "$(stat -c %s old.raw)" = $M ] || fail "dd --force: $(stat -c %s old.raw) bytes"
# no temporary file left behind
ls -a | grep -q '\.p2v-' && fail "a temporary file remains: $(ls -a | grep '\.p2v-')"
echo PASS
