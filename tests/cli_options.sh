#!/bin/bash
# Options as declared: each format's create options (-o help, the README's
# table, the values qemu-img reads back from the images they make), the
# command tables (strict numbers, one usage line, help, version), progress
# for programs (-q over -p, --progress=json, SIGUSR1) and a block device
# target that needs --force.
. "$(dirname "$0")/lib.sh"
need qemu-img jq
cd "$TMP"
msg_of() { "$@" 2>&1 || true; } # what a failing command says

# ---- the README's table is what the formats declare
diff <(sed -n '/^<!-- create-options/,/^<!-- end create-options/p' "$P2V_SRC/README.md" | sed '1d;$d') \
	<("$P2V_SRC/scripts/readme-options" "$P2V") || fail "README's options table differs from -o help (regenerate it with scripts/readme-options)"
echo "ok: README's options table = -o help"

# ---- names shared with qemu-img: any other must be one of p2v's own
ours="qcow2:compression_level vpc:azure vpc:block_size vhdx:logical_sector_size
	vhdx:physical_sector_size vmdk:grain_size raw:preallocation"
for f in qcow2 vpc vhdx vmdk raw; do
	qemu_names=$(qemu-img create -f "$f" -o help 2>/dev/null | sed -n 's/^  \([a-z_]*\)=.*/\1/p')
	for n in $("$P2V" create -f "$f" -o help | sed -n 's/^  \([a-z_]*\)=.*/\1/p'); do
		grep -qx "$n" <<<"$qemu_names" || [[ " $(echo $ours) " == *" $f:$n "* ]] ||
			fail "$f option $n is neither qemu-img's nor a known p2v option"
	done
done
echo "ok: option names are qemu-img's (or p2v's own, listed)"

# ---- what qemu-img reads back from images made with the options
"$P2V" create -f qcow2 -o cluster_size=4K,refcount_bits=64,compression_type=zstd q.qcow2 10M
qemu-img info --output=json q.qcow2 > q.json
[ "$(jq '."cluster-size"' q.json)" = 4096 ] || fail "qcow2 cluster_size: $(cat q.json)"
[ "$(jq '."format-specific".data."refcount-bits"' q.json)" = 64 ] || fail "qcow2 refcount_bits"
[ "$(jq -r '."format-specific".data."compression-type"' q.json)" = zstd ] || fail "qcow2 compression_type"
qemu-img check q.qcow2 >/dev/null || fail "qemu-img check of a 64-bit-refcount qcow2"
"$P2V" create -f qcow2 -o compat=0.10 v2.qcow2 10M
[ "$(qemu-img info --output=json v2.qcow2 | jq -r '."format-specific".data.compat')" = 0.10 ] || fail "compat=0.10"

size=$((1000 * 1024 * 1024 + 12345))
vsize() { qemu-img info --output=json "$1" | jq '."virtual-size"'; }
qemu-img create -q -f vpc -o force_size=on qf.vhd $size
"$P2V" create -f vpc -o force_size pf.vhd $size
[ "$(vsize qf.vhd)" = "$(vsize pf.vhd)" ] || fail "vpc force_size: qemu-img $(vsize qf.vhd), p2v $(vsize pf.vhd)"
qemu-img create -q -f vpc q.vhd $size
"$P2V" create -f vpc -o force_size=off p.vhd $size
[ "$(vsize q.vhd)" = "$(vsize p.vhd)" ] || fail "vpc force_size=off: qemu-img $(vsize q.vhd), p2v $(vsize p.vhd)"
[ "$(vsize p.vhd)" != $size ] || fail "force_size=off kept the exact size"
"$P2V" create -f vpc -o subformat=fixed,force_size fixed.vhd 64M
[ "$(stat -c %s fixed.vhd)" = $((64 * 1024 * 1024 + 512)) ] || fail "fixed VHD: data + footer"
"$P2V" create -f vpc -o block_size=1M d.vhd 64M
[ "$(qemu-img info --output=json d.vhd | jq '."cluster-size"')" = 1048576 ] || fail "vpc block_size"
echo "ok: vpc force_size as qemu-img's, subformat, block_size"

"$P2V" create -f vhdx -o block_size=32M,log_size=2M x.vhdx 1G
[ "$(qemu-img info --output=json x.vhdx | jq '."cluster-size"')" = $((32 << 20)) ] || fail "vhdx block_size"
# the VHDX header (spec 2.2.2) at 64 KiB: LogLength is the 32-bit field at 68
[ "$(od -An -tu4 -j $((65536 + 68)) -N4 x.vhdx | tr -d ' ')" = $((2 << 20)) ] || fail "vhdx log_size"
qemu-img check x.vhdx >/dev/null || fail "qemu-img check of the vhdx"

qemu-img create -q -f vmdk -o adapter_type=lsilogic,hwversion=7 q.vmdk 64M
"$P2V" create -f vmdk -o adapter_type=lsilogic,hwversion=7 p.vmdk 64M
for k in ddb.adapterType ddb.virtualHWVersion; do
	a=$(head -c 4096 q.vmdk | tr -d '\0' | grep -a "^$k") b=$(head -c 4096 p.vmdk | tr -d '\0' | grep -a "^$k")
	[ -n "$a" ] && [ "$a" = "$b" ] || fail "vmdk $k: qemu-img '$a', p2v '$b'"
done
"$P2V" create -f raw -o preallocation=falloc r.raw 8M
[ "$(stat -c %b r.raw)" -ge $((8 * 2048)) ] || fail "raw preallocation=falloc left the file sparse"
echo "ok: qcow2, vhdx, vmdk, raw options as qemu-img reads them"

expect_fail "refcount_bits=12" "$P2V" create -f qcow2 -o refcount_bits=12 e.qcow2 1M
msg_of "$P2V" create -f qcow2 -o refcount_bits=16x e.qcow2 1M | grep -q "'16x' is not a number" || fail "strict option number"
msg_of "$P2V" create -f vpc -o nosuch=1 e.vhd 1M | grep -q "it has subformat, block_size, azure, force_size" ||
	fail "an unknown option does not list the format's options"

# ---- the command tables
version=$(sed -n 's/^project(p2v VERSION \([0-9.]*\).*/\1/p' "$P2V_SRC/CMakeLists.txt")
[ "$("$P2V" --version)" = "p2v $version" ] && [ "$("$P2V" -V)" = "p2v $version" ] || fail "--version: $("$P2V" --version), CMake says $version"
for c in info convert create measure resize snapshot rebase commit amend dd compare check map capture inspect inject migrate serve; do
	[ "$("$P2V" help $c)" = "$("$P2V" $c --help)" ] || fail "p2v help $c"
	"$P2V" $c --help | grep -q "^usage: p2v $c" || fail "$c --help"
	n=$(msg_of "$P2V" $c --no-such-option | grep -c '^usage:') || true
	[ "$n" = 1 ] || fail "$c prints its usage line $n times on a bad option"
done
expect_fail "--threads 3x" "$P2V" convert --threads 3x a b
expect_fail "-m 0" "$P2V" convert -m 0 a b
expect_fail "-S 4k5" "$P2V" convert -S 4k5 a b
expect_fail "--progress=xml" "$P2V" convert --progress=xml a b
msg_of "$P2V" capture --max-read-errors 1e3 a b | grep -q "'1e3' is not a whole number" || fail "--max-read-errors 1e3"
echo "ok: help, version, strict numbers, one usage line"

# ---- progress: -q wins, -p draws even when piped, JSON lines, SIGUSR1
head -c $((64 << 20)) < <(yes "p2v progress test data") > src.raw
"$P2V" convert -q -p -f raw src.raw a.qcow2 2> err.txt
[ ! -s err.txt ] || fail "-q -p printed: $(cat err.txt)"
"$P2V" convert -p -f raw src.raw b.qcow2 2> err.txt
grep -q "converting \[" err.txt || fail "-p drew no bar when piped"
"$P2V" convert -f raw src.raw c.qcow2 2> err.txt
[ ! -s err.txt ] || fail "no -p, piped: $(cat err.txt)"
"$P2V" convert --progress=json -m 2 -f raw src.raw d.qcow2 2> prog.json
jq -e -s 'length >= 2 and all(has("progress") and has("bytes") and has("total")) and
	(map(.progress) | . == sort) and (last | .progress == 100 and .bytes == .total and .total == 67108864)' \
	prog.json >/dev/null || fail "--progress=json: $(cat prog.json)"
echo "ok: -q over -p, -p piped, --progress=json ($(wc -l < prog.json) lines)"

# SIGUSR1 once the handler is in place (/proc: SigCgt bit 10), repeatedly
# until the copy ends: at least one progress line, and no death by signal.
# (On a loaded machine the copy may end before this shell sends anything:
# then it runs again, up to 5 times.)
head -c $((128 << 20)) < <(yes "p2v signal test data") > big.raw
for try in 1 2 3 4 5; do
	rm -f big.qcow2
	"$P2V" convert -f raw -m 2 big.raw big.qcow2 2> usr1.txt & pid=$!
	for _ in $(seq 200); do
		mask=$(sed -n 's/^SigCgt:\t//p' /proc/$pid/status 2>/dev/null) || break
		[ -n "$mask" ] && (( (16#$mask >> 9) & 1 )) && break
		sleep 0.01
	done
	sent=0
	while kill -USR1 $pid 2>/dev/null; do sent=$((sent + 1)); sleep 0.05; done
	wait $pid || fail "convert under SIGUSR1 exited $?: $(cat usr1.txt)"
	[ $sent -gt 0 ] && break
done
grep -q "^p2v: converting: .* of 128.0 MiB (.*%)" usr1.txt || fail "SIGUSR1 printed no progress line: $(cat usr1.txt)"
echo "ok: SIGUSR1: $(grep -c '^p2v: converting:' usr1.txt) progress line(s)"
rm -f big.raw big.qcow2

# ---- a block device target needs --force, as a file does
if dev=$(losetup -f --show "$(truncate -s 64M blk.img && echo blk.img)" 2>/dev/null); then
	trap 'losetup -d "$dev"; rm -rf "$TMP"' EXIT
	rc=0; "$P2V" convert -O raw -f raw src.raw "$dev" 2> err.txt || rc=$?
	[ $rc = 2 ] && grep -q "block device.*--force" err.txt || fail "block device target without --force: rc $rc $(cat err.txt)"
	"$P2V" convert --force -O raw -f raw src.raw "$dev"
	cmp -n $((64 << 20)) src.raw "$dev" || fail "block device target content"
	echo "ok: block device target needs --force"
else
	fail "no loop device for the block device target"
fi
