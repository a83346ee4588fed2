#!/bin/bash
# p2v convert ... - : raw and fixed VHD streamed to stdout read as qemu-img's
# conversions (raw: the same bytes as qemu-img convert -O raw; VHD: qemu-img
# compare against the input, and the same bytes as p2v's own fixed VHD file
# but the footer's timestamp and checksum).  Other formats, a dynamic VHD,
# a terminal, and options with nowhere to go are refused in one line; the
# progress bar stays off stdout.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io script
cd "$TMP"
M=$((1 << 20))

qemu-img create -q -f raw in.raw $((10 * M + 1536))
qemu-io -f raw -c "write -P 7 0 3M" -c "write -P 3 $((5 * M + 100)) 1k" -c "write -P 9 $((9 * M)) $((M + 1536))" \
	in.raw >/dev/null
qemu-img convert -f raw -O qcow2 -o cluster_size=4k in.raw in.qcow2
qemu-img convert -f raw -O vpc in.raw in.vhd

for in in in.raw in.qcow2 in.vhd; do
	"$P2V" convert -q -O raw $in - 2>/dev/null | cmp - <(qemu-img convert -O raw $in q.raw; cat q.raw) ||
		fail "convert -O raw $in -: differs from qemu-img convert -O raw"
	echo "ok: convert -O raw $in - is qemu-img's raw conversion"
done
"$P2V" convert -O raw -p in.qcow2 - 2>bar.txt | cmp - in.raw || fail "-p: stdout is not the image"
grep -q . bar.txt || fail "-p: no progress on stderr"
echo "ok: -p draws on stderr, stdout is the image"

for o in subformat=fixed azure=on subformat=fixed,force_size=off; do
	"$P2V" convert -O vpc -o $o in.qcow2 - >s.vhd
	qemu-img compare -q -f raw -F vpc in.raw s.vhd || fail "vpc -o $o to stdout: qemu-img compare"
	rm -f f.vhd
	"$P2V" convert -O vpc -o $o in.qcow2 f.vhd
	[ "$(qemu-img info --output=json f.vhd | jq '."virtual-size"')" = "$(qemu-img info --output=json s.vhd | jq '."virtual-size"')" ] ||
		fail "vpc -o $o: stdout's virtual size differs from the file's"
	cmp -s <(head -c -512 s.vhd) <(head -c -512 f.vhd) || fail "vpc -o $o: stdout's data differs from the file's"
	echo "ok: convert -O vpc -o $o in.qcow2 - reads as the input ($(stat -c %s s.vhd) bytes)"
done

for args in "-O qcow2" "-O vhdx" "-O vmdk" "-O vpc" "-O raw -c" "-O raw --json" "-O raw -n"; do
	out=$("$P2V" convert -f raw $args in.raw - 2>&1 >/dev/null) && fail "convert $args - accepted"
	[ "$(grep -c . <<<"$out")" = 1 ] || fail "convert $args -: not one line: $out"
	echo "ok (refused): convert $args -: $out"
done
grep -q qcow2 <<<"$("$P2V" convert -f raw -O qcow2 in.raw - 2>&1 >/dev/null)" || fail "the refusal does not name qcow2"
out=$(script -qec "$P2V convert -f raw -O raw in.raw -" /dev/null) && fail "stdout a terminal: accepted"
grep -q terminal <<<"$out" || fail "stdout a terminal: $out"
[ $(wc -c <<<"$out") -lt 300 ] || fail "stdout a terminal: the image was written to it"
echo "ok (refused): a terminal: $out"
echo PASS
