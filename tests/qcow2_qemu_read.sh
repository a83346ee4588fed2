#!/bin/bash
# Reading what qemu-img writes: v2 (compat=0.10), v3, zlib and zstd
# compressed clusters, zero clusters, and a backing chain of three with
# relative paths and a backing smaller than its overlay.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io cmp jq

same_as_qemu() { # NAME IMAGE [P2V OPTIONS...]
	qemu-img convert -O raw "$2" "$TMP/$1.ref"
	"$P2V" convert -q "${@:3}" -O raw "$2" "$TMP/$1.ours" || fail "$1: p2v cannot read it"
	cmp "$TMP/$1.ref" "$TMP/$1.ours" || fail "$1: our read differs from qemu-img's"
	"$P2V" check "$2" >/dev/null || fail "$1: p2v check reports problems on a clean image"
	echo "ok: $1"
}

truncate -s 6M "$TMP/src.raw"
head -c 1000000 /dev/urandom | dd of="$TMP/src.raw" conv=notrunc status=none
{ yes "compressible" | head -c 2000000 || true; } | dd of="$TMP/src.raw" bs=1M seek=2 conv=notrunc status=none

qemu-img convert -f raw -O qcow2 -o compat=0.10 "$TMP/src.raw" "$TMP/v2.qcow2"
qemu-img convert -f raw -O qcow2 "$TMP/src.raw" "$TMP/v3.qcow2"
qemu-img convert -c -f raw -O qcow2 "$TMP/src.raw" "$TMP/zlib.qcow2"
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$TMP/src.raw" "$TMP/zstd.qcow2"
qemu-img convert -c -f raw -O qcow2 -o cluster_size=4K "$TMP/src.raw" "$TMP/zlib4k.qcow2"
for n in v2 v3 zlib zstd zlib4k; do same_as_qemu "$n" "$TMP/$n.qcow2"; done
"$P2V" info "$TMP/v2.qcow2" | grep -q "v2" || fail "info does not say v2"

# Zero clusters (plain and "zero + allocated") over data.
cp "$TMP/v3.qcow2" "$TMP/zero.qcow2"
qemu-io -c "write -z 0 128k" -c "write -z -u 256k 64k" -c "write -z 2M 1M" "$TMP/zero.qcow2" >/dev/null
same_as_qemu zero "$TMP/zero.qcow2"
"$P2V" map --output=json "$TMP/zero.qcow2" | jq -e 'any(.[]; .zero and .present)' >/dev/null ||
	fail "map shows no zero extent"

# base (4M) <- mid (6M, in a subdirectory) <- top (8M), relative names.
mkdir -p "$TMP/a/b"
mkrandom "$TMP/base.raw" 4194304
qemu-img convert -f raw -O qcow2 "$TMP/base.raw" "$TMP/a/base.qcow2"
qemu-img create -q -f qcow2 -b ../base.qcow2 -F qcow2 "$TMP/a/b/mid.qcow2" 6M
qemu-io -c "write -P 0x11 1M 512k" -c "write -z 2M 64k" -c "write -P 0x22 5M 100k" "$TMP/a/b/mid.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b b/mid.qcow2 -F qcow2 "$TMP/a/top.qcow2" 8M
qemu-io -c "write -P 0x33 3M 64k" -c "write -z -u 0 64k" -c "write -P 0x44 7M 4k" "$TMP/a/top.qcow2" >/dev/null
# b/mid.qcow2 names ../base.qcow2, outside its own directory: allowed
same_as_qemu chain "$TMP/a/top.qcow2" --allow-backing "$TMP/a"
qemu-img compare -q -f raw -F qcow2 "$TMP/chain.ours" "$TMP/a/top.qcow2" || fail "qemu-img compare of the chain"
# Beyond the 4M base and the 6M mid, unallocated areas read as zeroes (holes).
"$P2V" map --allow-backing "$TMP/a" --output=json "$TMP/a/top.qcow2" | jq -e '[.[] | select(.start >= 6291456 and .data)] | length == 1' \
	>/dev/null || fail "map beyond the backing files should show only the written cluster as data"
# qemu-img map's table of data ranges, line for line
[ "$("$P2V" map --allow-backing "$TMP/a" "$TMP/a/top.qcow2")" = "$(qemu-img map "$TMP/a/top.qcow2")" ] ||
	fail "map of the chain differs from qemu-img map's"

# Internal snapshots: the active layer reads as qemu-img's, check is clean.
cp "$TMP/v3.qcow2" "$TMP/snap.qcow2"
qemu-img snapshot -c s1 "$TMP/snap.qcow2"
qemu-io -c "write -P 0x55 0 1M" "$TMP/snap.qcow2" >/dev/null
qemu-img snapshot -c s2 "$TMP/snap.qcow2"
qemu-io -c "write -P 0x56 2M 512k" "$TMP/snap.qcow2" >/dev/null
same_as_qemu snapshots "$TMP/snap.qcow2"

# check finds what qemu-img check finds: the header's refcount (qemu-img puts
# the refcount block at 0x20000) set to 0 is an error, set to 2 a leak.
put16() { printf "\\x$(printf %02x $(( $3 >> 8 )))\\x$(printf %02x $(( $3 & 255 )))" |
	dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
cp "$TMP/v3.qcow2" "$TMP/err.qcow2"; put16 "$TMP/err.qcow2" $(( 0x20000 )) 0
rc=0; qemu-img check -q "$TMP/err.qcow2" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "qemu-img check should see a corruption (rc $rc)"
rc=0; out=$("$P2V" check "$TMP/err.qcow2" 2>&1) || rc=$?
[ "$rc" = 2 ] && echo "$out" | grep -q "^1 errors were found on the image" || fail "p2v check missed the error: $out"
cp "$TMP/v3.qcow2" "$TMP/leak.qcow2"; put16 "$TMP/leak.qcow2" $(( 0x20000 )) 2
rc=0; qemu-img check -q "$TMP/leak.qcow2" >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "qemu-img check should see a leak (rc $rc)"
rc=0; out=$("$P2V" check "$TMP/leak.qcow2" 2>&1) || rc=$?
[ "$rc" = 3 ] && echo "$out" | grep -q "^1 leaked clusters were found on the image" || fail "p2v check missed the leak: $out"
echo "ok: check finds an error and a leak"
