# vpc (VHD): round trips raw -> vhd (fixed, dynamic, azure) -> raw through
# p2v, cross-checked with qemu-img and libvhdi; images qemu-img writes read
# with the size qemu-img reads; the 2040 GiB limit.
source "$(dirname "$0")/lib.sh"
need qemu-img vhdiinfo python3 jq
cd "$TMP"

json_size() { jq -r '.["virtual-size"]'; }
qemu_size() { qemu-img info -f vpc --output=json "$1" | json_size; }
p2v_size() { "$P2V" info --json "$1" | json_size; }
vhdi_size() { vhdiinfo "$1" | sed -n 's/.*Media size.*(\([0-9]*\) bytes).*/\1/p'; }
p2v_field() { "$P2V" info --json "$1" | jq -r --arg k "$2" '.[$k] // .["format-specific"].data[$k]'; }

# Source: 9 MiB + 3 sectors (neither MiB- nor CHS-aligned): data, hole, data, tail.
size=$((9 * 1024 * 1024 + 1536))
mkrandom a.raw $((3 * 1024 * 1024))
truncate -s "$size" a.raw
dd if=/dev/urandom of=a.raw bs=64K seek=100 count=7 conv=notrunc status=none
printf 'tail' | dd of=a.raw bs=1 seek=$((size - 4)) conv=notrunc status=none

roundtrip() { # NAME OPTIONS EXPECTED_SIZE SUBFORMAT
	local name=$1 opts=$2 want=$3 sub=$4
	"$P2V" convert -q -f raw -O vpc -o "$opts" a.raw "$name.vhd"
	[ "$(p2v_size "$name.vhd")" = "$want" ] || fail "$name: p2v reads $(p2v_size "$name.vhd"), want $want"
	[ "$(qemu_size "$name.vhd")" = "$want" ] || fail "$name: qemu-img reads $(qemu_size "$name.vhd"), want $want"
	[ "$(vhdi_size "$name.vhd")" = "$want" ] || fail "$name: vhdiinfo reads $(vhdi_size "$name.vhd"), want $want"
	[ "$(p2v_field "$name.vhd" subformat)" = "$sub" ] || fail "$name: subformat"
	qemu-img compare -q -f raw -F vpc a.raw "$name.vhd" || fail "$name: qemu-img compare differs"
	"$P2V" compare -f raw a.raw "$name.vhd" >/dev/null || fail "$name: p2v compare differs"
	"$P2V" convert -q -O raw "$name.vhd" "$name.raw"
	qemu-img compare -q -f raw -F raw a.raw "$name.raw" || fail "$name: round trip differs"
	[ "$(stat -c %s "$name.raw")" = "$want" ] || fail "$name: raw back is $(stat -c %s "$name.raw") bytes"
	echo "ok: $name ($opts): $want bytes, file $(stat -c %s "$name.vhd") bytes"
}
roundtrip fixed subformat=fixed "$size" fixed
roundtrip dynamic subformat=dynamic "$size" dynamic
roundtrip small512k subformat=dynamic,block_size=512K "$size" dynamic
roundtrip azure azure=on $((10 * 1024 * 1024)) fixed
[ "$(stat -c %s fixed.vhd)" = $((size + 512)) ] || fail "fixed: file is not size + footer"
# qemu-img probes dynamic VHDs by the footer copy at offset 0 (fixed ones it takes for raw).
probed=$(qemu-img info --output=json dynamic.vhd)
echo "$probed" | grep -q '"format": "vpc"' || fail "qemu-img does not probe our dynamic VHD as vpc: $probed"
[ "$(p2v_field dynamic.vhd creator-app)" = qem2 ] || fail "creator app"
# VHD spec CHS of 18435 sectors: 17 sectors/track, 4 heads, 271 cylinders.
[ "$(p2v_field dynamic.vhd geometry)" = "271/4/17" ] || fail "geometry $(p2v_field dynamic.vhd geometry), want 271/4/17"
[ "$(p2v_field small512k.vhd block-size)" = 524288 ] || fail "block size"
"$P2V" check dynamic.vhd >/dev/null || fail "p2v check on a fresh dynamic image"
# A fixed image is a sparse file here: its holes show in the map.
"$P2V" map --json fixed.vhd | jq -e '[.[0:3][] | .data] == [true, false, true]' >/dev/null ||
	fail "fixed map shows no hole"
# Only written blocks are allocated: 2 MiB blocks 0, 1 (data), 3 and 4 (data, tail).
extents=$("$P2V" map --json dynamic.vhd | jq -r '
	reduce .[] as $e ([]; if length > 0 and .[-1].data == $e.data then .[-1].length += $e.length else . + [$e] end) |
	map("\(if .data then "data" else "hole" end):\(.start):\(.length)") | join(" ")')
[ "$extents" = "data:0:4194304 hole:4194304:2097152 data:6291456:$((size - 6291456))" ] ||
	fail "dynamic map: $extents"
# qemu-img maps the same dynamic file the same way, block offsets included
# (a fixed one's holes it calls data and zero at once)
[ "$("$P2V" map --output=json dynamic.vhd | jq -c '.[]')" = "$(qemu-img map -f vpc --output=json dynamic.vhd | jq -c '.[]')" ] ||
	fail "dynamic.vhd: map differs from qemu-img's"

# Images qemu-img writes: we read the size qemu-img reads, and the content.
for sub in fixed dynamic; do
	for fs in on off; do
		q=q-$sub-$fs.vhd
		qemu-img convert -f raw -O vpc -o subformat=$sub,force_size=$fs a.raw "$q"
		[ "$(p2v_size "$q")" = "$(qemu_size "$q")" ] ||
			fail "$q: p2v reads $(p2v_size "$q"), qemu-img $(qemu_size "$q")"
		[ "$(p2v_field "$q" subformat)" = "$sub" ] || fail "$q: subformat"
		[ $sub = fixed ] || "$P2V" check "$q" >/dev/null || fail "$q: p2v check finds problems"
		"$P2V" convert -q -O raw "$q" "$q.raw"
		qemu-img compare -q -f raw -F vpc "$q.raw" "$q" || fail "$q: content differs from qemu's reading"
		qemu-img compare -q -f raw -F raw a.raw "$q.raw" || fail "$q: content differs from the source"
		echo "ok: qemu-img $sub force_size=$fs: $(p2v_size "$q") bytes"
	done
done

# Old tools: current size 0 means the CHS product (qemu's "qemu" creator reads CHS too).
python3 - q-dynamic-off.vhd old.vhd <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
for at in (0, len(b) - 512):
    b[at + 48:at + 56] = bytes(8)
    b[at + 64:at + 68] = bytes(4)
    s = sum(b[at:at + 512]) & 0xFFFFFFFF
    b[at + 64:at + 68] = struct.pack('>I', ~s & 0xFFFFFFFF)
open(sys.argv[2], 'wb').write(b)
PY
[ "$(p2v_size old.vhd)" = "$(qemu_size old.vhd)" ] || fail "current size 0: p2v $(p2v_size old.vhd), qemu $(qemu_size old.vhd)"
echo "ok: current size 0 read as CHS: $(p2v_size old.vhd) bytes"

# Through p2v create, then a 2040 GiB sparse image (BAT only), then the limit.
"$P2V" create -O vhd -o subformat=dynamic big.vhd 2040G >/dev/null
[ "$(qemu_size big.vhd)" = $((2040 * 1024 * 1024 * 1024)) ] || fail "2040 GiB image size"
[ "$(stat -c %s big.vhd)" -lt $((5 * 1024 * 1024)) ] || fail "2040 GiB dynamic image is not sparse"
out=$("$P2V" create -O vpc huge.vhd 2041G 2>&1) && fail "2041 GiB VHD was created"
echo "$out" | grep -q VHDX || fail "limit message does not suggest VHDX: $out"
[ ! -e huge.vhd ] || fail "failed create left a file"
expect_fail "2041 GiB" "$P2V" create -O vpc huge.vhd 2041G
expect_fail "bad block size" "$P2V" create -O vpc -o block_size=3M x.vhd 10M
echo "all vhd conversions ok"
