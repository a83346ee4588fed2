#!/bin/bash
# p2v measure against qemu-img measure (qcow2 and raw: the same JSON, byte
# for byte, for sources and sizes alike), and for the formats qemu-img cannot
# measure (vpc, vhdx, vmdk) against what a conversion really writes: p2v's
# output never exceeds "required", qemu-img's own output is within 10%.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io jq
cd "$TMP"
M=$((1 << 20))

truncate -s $((64 * M)) s.raw
qemu-io -f raw -c "write -P 7 0 9M" -c "write -P 8 30M 1M" -c "write -P 9 50M 64k" -c "write -P 9 60M 512" \
	s.raw >/dev/null
qemu-img create -q -f qcow2 base.qcow2 64M
qemu-io -f qcow2 -c "write -P 1 0 20M" base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
qemu-io -f qcow2 -c "write -P 2 40M 1M" -c "write -z 0 1M" top.qcow2 >/dev/null

# ---- the same numbers and JSON as qemu-img measure
n=0
while read -r args; do
	a=$(qemu-img measure --output=json $args | jq -cS .)
	b=$("$P2V" measure --output=json $args | jq -cS .)
	[ "$a" = "$b" ] || fail "measure $args: qemu-img $a, p2v $b"
	[ "$(qemu-img measure $args)" = "$("$P2V" measure $args)" ] || fail "measure $args: human output differs"
	n=$((n + 1))
done <<'EOF'
-O qcow2 --size 10G
-O qcow2 --size 1
-O qcow2 -o cluster_size=512,refcount_bits=1 --size 1G
-O qcow2 -o cluster_size=2M,refcount_bits=64 --size 5T
-O qcow2 -o compat=0.10 --size 100G
-O qcow2 -f raw s.raw
-O qcow2 -o cluster_size=4k -f raw s.raw
-O qcow2 top.qcow2
-O qcow2 -o compat=0.10 top.qcow2
-O qcow2 base.qcow2
-O qcow2 -o backing_file=base.qcow2,backing_fmt=qcow2 top.qcow2
-O raw --size 10G
-O raw -f raw s.raw
-O raw top.qcow2
EOF
echo "ok: $n measures equal qemu-img's, JSON and text"
"$P2V" measure --output=json -O qcow2 -f raw s.raw | jq -e '.required < ."fully-allocated"' >/dev/null ||
	fail "required is not below fully-allocated for a sparse source"
expect_fail "IMAGE and --size" "$P2V" measure --size 1G s.raw
expect_fail "-O vpc -o cluster_size" "$P2V" measure -O vpc -o cluster_size=4K --size 1G

# ---- formats qemu-img cannot measure: what conversions write
head -c $((16 * M)) < <(yes "p2v measure test") > full.raw
for spec in vpc: vpc:subformat=fixed vhdx: vhdx:subformat=fixed vmdk: vmdk:subformat=streamOptimized qcow2: raw:; do
	f=${spec%%:*} o=${spec#*:}
	for src in s.raw full.raw; do
		m=$("$P2V" measure --output=json -O "$f" ${o:+-o "$o"} -f raw "$src")
		req=$(jq .required <<<"$m") full=$(jq '."fully-allocated"' <<<"$m")
		rm -f p.out q.out
		"$P2V" convert -f raw -O "$f" ${o:+-o "$o"} "$src" p.out
		got=$(stat -c %s p.out)
		[ "$got" -le "$req" ] && [ "$req" -le "$full" ] ||
			fail "$spec from $src: p2v wrote $got bytes, measure says required $req, fully allocated $full"
		if [ "$src" = s.raw ] && [[ $o != *fixed* && $o != *stream* ]]; then
			qemu-img convert -f raw -O "$f" ${o:+-o "$o"} "$src" q.out
			q=$(stat -c %s q.out)
			(( req * 10 <= q * 11 && q * 10 <= req * 11 )) ||
				fail "$spec: measure says $req, qemu-img's conversion is $q bytes (beyond 10%)"
		fi
		echo "ok: $spec from $src: p2v wrote $got, required $req${q:+, qemu-img wrote $q}, fully allocated $full"
		q=
	done
done
