#!/bin/bash
# convert -n (an existing target), --target-is-zero, -B (a backing file: only
# what differs is written), -S (zero detection granularity, 0 = allocate
# all), checked with qemu-img: it reads the results, and its own convert
# with the same options allocates the same.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io jq
cd "$TMP"
M=$((1 << 20))
# allocated data ranges as qemu-img sees them: "start length" lines
data_map() { qemu-img map --output=json "$@" | jq -r '.[] | select(.data) | "\(.start) \(.length)"'; }
data_bytes() { qemu-img map --output=json "$@" | jq '[.[] | select(.data) | .length] | add // 0'; }

# a 16 MiB source: data, a zero MiB, data, 12K with written zeroes in its middle 4K, a 4K island
truncate -s $((16 * M)) src.raw
qemu-io -f raw -c "write -P 0x11 0 4M" -c "write -P 0x22 5M 3M" -c "write -P 0x33 12M 4k" \
	-c "write -P 0x66 8M 12k" -c "write -P 0 8196k 4k" src.raw >/dev/null # 4K of written zeroes

# ---- -n over an image full of other data: zero ranges are written too
qemu-img create -q -f qcow2 t.qcow2 16M
qemu-io -f qcow2 -c "write -P 0xee 0 16M" t.qcow2 >/dev/null
"$P2V" convert -n -f raw -O qcow2 src.raw t.qcow2
qemu-img compare -q -f raw -F qcow2 src.raw t.qcow2 || fail "-n: target differs from the source"
qemu-img check -q t.qcow2 || fail "-n: qemu-img check"
expect_fail "-n into a smaller target" "$P2V" convert -n -f raw src.raw "$(qemu-img create -q -f qcow2 small.qcow2 8M; echo small.qcow2)"
expect_fail "--target-is-zero without -n" "$P2V" convert --target-is-zero -f raw src.raw x.qcow2
expect_fail "-n and -o" "$P2V" convert -n -o cluster_size=4K -f raw src.raw t.qcow2
echo "ok: -n"

# ---- --target-is-zero: the same allocation as qemu-img's
for tool in p2v qemu; do
	qemu-img create -q -f qcow2 z-$tool.qcow2 16M
	if [ $tool = p2v ]; then
		"$P2V" convert -n --target-is-zero -f raw -O qcow2 src.raw z-$tool.qcow2
	else
		qemu-img convert -n --target-is-zero -f raw -O qcow2 src.raw z-$tool.qcow2
	fi
	qemu-img compare -q -f raw -F qcow2 src.raw z-$tool.qcow2 || fail "--target-is-zero ($tool): content"
done
[ "$(data_map z-p2v.qcow2)" = "$(data_map z-qemu.qcow2)" ] ||
	fail "--target-is-zero: p2v allocates $(data_map z-p2v.qcow2 | tr '\n' ' '), qemu-img $(data_map z-qemu.qcow2 | tr '\n' ' ')"
echo "ok: --target-is-zero allocates as qemu-img: $(data_map z-p2v.qcow2 | tr '\n' ' ')"

# ---- -B: a copy-on-write image over base holding only what differs
"$P2V" convert -f raw -O qcow2 src.raw base.qcow2
cp src.raw new.raw
qemu-io -f raw -c "write -P 0x44 1M 64k" -c "write -z 13M 1M" -c "write -P 0x55 14M 4k" new.raw >/dev/null
qemu-io -f raw -c "write -z 5M 64k" new.raw >/dev/null # zeroes over base data
"$P2V" convert -B base.qcow2 -F qcow2 -f raw -O qcow2 new.raw top.qcow2
qemu-img info --output=json top.qcow2 > top.json
[ "$(jq -r '."backing-filename"' top.json)" = base.qcow2 ] || fail "-B: backing file $(jq '."backing-filename"' top.json)"
[ "$(jq -r '."backing-filename-format"' top.json)" = qcow2 ] || fail "-B: backing format"
qemu-img compare -q -f raw -F qcow2 new.raw top.qcow2 || fail "-B: top (over base) differs from the source"
qemu-img check -q top.qcow2 || fail "-B: qemu-img check"
# only the changed clusters are in the top layer: 64K + 4K's cluster (data)
# and the zeroed 64K at 5M (a zero cluster)
top_data=$(qemu-img map --output=json top.qcow2 | jq '[.[] | select(.depth == 0 and .data) | .length] | add')
top_zero=$(qemu-img map --output=json top.qcow2 | jq '[.[] | select(.depth == 0 and .zero) | .length] | add')
[ "$top_data" = $((128 << 10)) ] && [ "$top_zero" = $((64 << 10)) ] ||
	fail "-B: the top layer holds $top_data data and $top_zero zero bytes, expected 131072 and 65536"
# a base in another directory, named relative to the output
mkdir sub && cp base.qcow2 sub/
"$P2V" convert -B base.qcow2 -f raw -O qcow2 new.raw sub/top2.qcow2
qemu-img compare -q -f raw new.raw sub/top2.qcow2 || fail "-B relative to the output's directory"
echo "ok: -B writes only what differs ($top_data data, $top_zero zero bytes in the top)"

# ---- -S: 0 allocates everything; a size sets the zero granularity, as qemu-img
for S in 0 4k 64k; do
	"$P2V" convert -S $S -f raw -O raw src.raw s-p2v-$S.raw
	qemu-img convert -S $S -f raw -O raw src.raw s-qemu-$S.raw
	cmp s-p2v-$S.raw src.raw || fail "-S $S: content"
	[ "$(data_bytes -f raw s-p2v-$S.raw)" = "$(data_bytes -f raw s-qemu-$S.raw)" ] ||
		fail "-S $S: p2v allocates $(data_bytes -f raw s-p2v-$S.raw) bytes, qemu-img $(data_bytes -f raw s-qemu-$S.raw)"
	echo "ok: -S $S allocates $(data_bytes -f raw s-p2v-$S.raw) bytes, as qemu-img"
done
expect_fail "-S 1000" "$P2V" convert -S 1000 -f raw src.raw x.raw
