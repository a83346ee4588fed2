#!/bin/bash
# p2v resize against qemu-img: raw and qcow2 resized by both tools read the
# same (qemu-img compare) and check clean; vpc and vhdx, which qemu-img
# cannot resize, read as the raw disk resized (qemu-img compare, check, and
# the virtual size qemu-img reports).  --shrink is needed to shrink; an
# image a VM holds is refused.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io jq
cd "$TMP"
M=$((1 << 20))
vsize() { qemu-img info --output=json "$@" | jq '."virtual-size"'; }

# 100 MiB + 1 KiB (not a whole cluster): data at both ends
qemu-img create -q -f raw r.raw $((100 * M + 1024))
qemu-io -f raw -c "write -P 0x5a 0 1M" -c "write -P 0x6b $((100 * M - 4096)) 5k" r.raw >/dev/null

# ---- raw and qcow2: the same as qemu-img resize
for f in raw qcow2; do
	opts=; [ $f = qcow2 ] && opts="-o cluster_size=4k"
	qemu-img convert -f raw -O $f $opts r.raw a.$f
	for step in +1G -512M +3k 50M 2G; do
		cp a.$f p.$f
		cp a.$f q.$f
		shrink=; [[ $step == -* || $step == 50M ]] && shrink=--shrink
		"$P2V" resize $shrink -f $f p.$f $step >/dev/null
		qemu-img resize -q $shrink -f $f q.$f $step
		[ "$(vsize p.$f)" = "$(vsize q.$f)" ] || fail "$f resize $step: p2v $(vsize p.$f), qemu-img $(vsize q.$f)"
		qemu-img compare -q -f $f -F $f p.$f q.$f || fail "$f resize $step: content differs from qemu-img's"
		[ $f = raw ] || qemu-img check -q p.$f || fail "$f resize $step: qemu-img check"
		cp p.$f a.$f # the next step starts from this one
	done
	echo "ok: $f grows and shrinks as qemu-img resize does (+1G, -512M, +3k, 50M, 2G)"
done
# the L1 table outgrows its cluster (4 KiB clusters: 1 GiB per L1 cluster)
qemu-img convert -f raw -O qcow2 -o cluster_size=4k r.raw l1.qcow2
"$P2V" resize l1.qcow2 20G >/dev/null
qemu-img check -q l1.qcow2 || fail "qcow2 with a moved L1 table: check"
[ "$(vsize l1.qcow2)" = $((20 << 30)) ] || fail "moved L1: size $(vsize l1.qcow2)"
qemu-img compare -q -f raw r.raw l1.qcow2 || fail "moved L1: content"
qemu-io -f qcow2 -c "write -P 7 $((19 << 30)) 64k" l1.qcow2 >/dev/null
qemu-img check -q l1.qcow2 || fail "moved L1: check after a write at 19 GiB"
# the old last cluster's tail reads as zeroes after shrinking into it and growing
"$P2V" resize --shrink l1.qcow2 $((100 * M - 2048)) >/dev/null
"$P2V" resize l1.qcow2 $((100 * M)) >/dev/null
qemu-io -f qcow2 -c "read -P 0 $((100 * M - 2048)) 2048" l1.qcow2 | grep -q "^read 2048" || fail "stale tail after shrink and grow"
echo "ok: qcow2 L1 moved, tail zeroed"

expect_fail "shrink without --shrink" "$P2V" resize a.qcow2 -1M
qemu-img snapshot -c s1 a.qcow2
expect_fail "qcow2 with internal snapshots" "$P2V" resize a.qcow2 +1M
qemu-img snapshot -d s1 a.qcow2
qemu-io -f qcow2 a.qcow2 -c "sleep 5000" & held=$!
sleep 1
expect_fail "an image a VM holds" "$P2V" resize a.qcow2 +1M
kill $held; wait $held 2>/dev/null || true

# ---- vpc and vhdx: as the raw disk resized (-f: qemu-img takes a fixed VHD for raw)
for spec in vpc: vpc:subformat=fixed vhdx: vhdx:subformat=fixed; do
	f=${spec%%:*} o=${spec#*:}
	rm -f img.$f
	"$P2V" convert -f raw -O $f ${o:+-o $o} r.raw img.$f
	cp r.raw ref.raw
	for step in +100M +200M; do
		"$P2V" resize -f $f img.$f $step >/dev/null
		qemu-img resize -q -f raw ref.raw $step
		[ "$(vsize -f $f img.$f)" = "$(vsize -f raw ref.raw)" ] ||
			fail "$spec resize $step: qemu-img sees $(vsize -f $f img.$f), the raw disk is $(vsize -f raw ref.raw)"
		qemu-img compare -q -f raw -F $f ref.raw img.$f || fail "$spec resize $step: content"
		qemu-img check -q -f $f img.$f 2>/dev/null || [ $? = 63 ] || fail "$spec resize $step: qemu-img check"
	done
	qemu-io -f $f -c "write -P 9 $((350 * M)) 64k" img.$f >/dev/null
	qemu-io -f raw -c "write -P 9 $((350 * M)) 64k" ref.raw >/dev/null
	qemu-img compare -q -f raw -F $f ref.raw img.$f || fail "$spec: a write by QEMU in the new space"
	echo "ok: $spec grows (+100M, +200M) and QEMU writes into the new space"
done
# qemu-img's own VHD (creator "qemu": QEMU takes its size from the CHS geometry)
qemu-img create -q -f vpc qv.vhd 100M
"$P2V" resize qv.vhd $((3000 * M + 512)) >/dev/null
[ "$(vsize qv.vhd)" = $((3000 * M + 512)) ] || fail "qemu-img's VHD resized: qemu-img sees $(vsize qv.vhd)"
"$P2V" convert -f raw -O vpc -o subformat=fixed r.raw fx.vhd
"$P2V" resize --shrink fx.vhd 50M >/dev/null
qemu-img compare -q -f raw -F vpc "$(qemu-img resize -q -f raw --shrink r.raw 50M; echo r.raw)" fx.vhd || fail "fixed VHD shrunk"
"$P2V" convert -f raw -O vpc r.raw dyn.vhd
"$P2V" convert -f raw -O vhdx r.raw dyn.vhdx
expect_fail "a dynamic VHD shrunk" "$P2V" resize --shrink dyn.vhd 10M
expect_fail "a VHDX shrunk" "$P2V" resize --shrink dyn.vhdx 10M
echo "ok: qemu-img's VHD, fixed VHD shrink; dynamic VHD and VHDX refuse to shrink"
