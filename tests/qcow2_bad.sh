#!/bin/bash
# Hostile qcow2 images: each refused with a one-line error naming the field,
# a non-zero exit and no sanitizer report.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io

put_be() { # FILE OFFSET BYTES VALUE: big-endian integer into the file
	local hex i out=""
	hex=$(printf "%0$(( $3 * 2 ))x" "$4")
	for (( i = 0; i < $3 * 2; i += 2 )); do out+="\\x${hex:i:2}"; done
	printf "$out" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# refused NAME PATTERN FILE: p2v convert must fail and the message match.
refused() {
	local out rc=0
	out=$("$P2V" convert -q -O raw "$3" "$TMP/out.raw" --force 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || fail "$1: accepted"
	[ "$rc" -lt 128 ] || fail "$1: died with a signal: $out"
	! echo "$out" | grep -q "Sanitizer\|runtime error" || fail "$1: sanitizer report: $out"
	[ "$(echo "$out" | wc -l)" -eq 1 ] || fail "$1: not a one-line error: $out"
	echo "$out" | grep -q -- "$2" || fail "$1: message does not match '$2': $out"
	echo "ok (refused): $1: $out"
}
variant() { cp "$TMP/good.qcow2" "$TMP/$1.qcow2"; echo "$TMP/$1.qcow2"; }

truncate -s 4M "$TMP/src.raw"
head -c 1M /dev/urandom | dd of="$TMP/src.raw" bs=1M seek=1 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$TMP/src.raw" "$TMP/good.qcow2" # L1 at 0x30000
truncate -s 2M "$TMP/text.raw"
{ yes "compressible text" | head -c 1M || true; } | dd of="$TMP/text.raw" bs=1M seek=1 conv=notrunc status=none
qemu-img convert -c -f raw -O qcow2 "$TMP/text.raw" "$TMP/goodz.qcow2"
"$P2V" convert -q -O raw "$TMP/good.qcow2" "$TMP/out.raw" || fail "the good image is refused"

f=$(variant trunc); truncate -s 50 "$f"; refused truncated "too short for a qcow2 header" "$f"
f=$(variant cb8); put_be "$f" 20 4 8; refused "cluster_bits 8" "cluster_bits 8" "$f"
f=$(variant cb22); put_be "$f" 20 4 22; refused "cluster_bits 22" "cluster_bits 22" "$f"
f=$(variant ver); put_be "$f" 4 4 4; refused "version 4" "version 4" "$f"
f=$(variant l1big); put_be "$f" 36 4 1000000; refused "L1 beyond the file" "L1 table" "$f"
f=$(variant l1small); put_be "$f" 24 8 $(( 1 << 40 )); refused "size vs l1_size" "too small for" "$f"
f=$(variant l1hdr); put_be "$f" 40 8 0; refused "L1 overlapping the header" "L1 table at offset 0 overlaps the header" "$f"
f=$(variant l1mis); put_be "$f" 40 8 512; refused "L1 misaligned" "not cluster-aligned" "$f"
f=$(variant rtbig); put_be "$f" 56 4 100; refused "refcount table beyond the file" "refcount table" "$f"
f=$(variant rthdr); put_be "$f" 48 8 0; refused "refcount table overlapping the header" "refcount table at offset 0 overlaps" "$f"
f=$(variant crypt); put_be "$f" 32 4 2; refused encryption "crypt_method 2" "$f"
f=$(variant datafile); put_be "$f" 72 8 4; refused "external data file" "external data file" "$f"
f=$(variant extl2); put_be "$f" 72 8 16; refused "extended L2" "extended L2" "$f"
f=$(variant unknown); put_be "$f" 72 8 $(( 1 << 40 )); refused "unknown incompatible bit" "bit 40" "$f"
f=$(variant zstdbit); put_be "$f" 72 8 8; refused "compression bit without type" "compression_type 0 disagrees" "$f"
f=$(variant hlen); put_be "$f" 100 4 100; refused "header_length" "header_length 100" "$f"
f=$(variant snap); put_be "$f" 60 4 5; put_be "$f" 64 8 $(( 1 << 30 )); refused "snapshot table" "snapshot table" "$f"
f=$(variant bfoff); put_be "$f" 8 8 65500; put_be "$f" 16 4 100; refused "backing name outside cluster 0" "backing file name" "$f"
# L2 entry pointing past the end: L1 at 0x30000 -> L2 at 0x40000; entry 16 (1 MiB).
f=$(variant l2past); put_be "$f" $(( 0x40000 + 16 * 8 )) 8 $(( (1 << 63) | (1 << 40) )); refused "L2 entry past the end" "past the end of the file" "$f"
f=$(variant l2mis); put_be "$f" $(( 0x40000 + 16 * 8 )) 8 $(( (1 << 63) | 0x50200 )); refused "L2 entry misaligned" "misaligned" "$f"
# A compressed cluster whose length runs past the end of the file.
f=$TMP/zpast.qcow2; cp "$TMP/goodz.qcow2" "$f"
# The last compressed cluster (guest cluster 31) gets the largest sector count.
e=$(od -An -tx8 --endian=big -j $(( 0x40000 + 31 * 8 )) -N8 "$f" | tr -d ' ')
[ $(( (0x$e >> 62) & 1 )) = 1 ] || fail "guest cluster 31 of the compressed image is not compressed"
put_be "$f" $(( 0x40000 + 31 * 8 )) 8 $(( 0x$e | (0xff << 54) ))
refused "compressed cluster past the end" "runs past the end" "$f"
# Backing names that are not plain paths.
qemu-img create -q -f qcow2 -b 'json:{"file.filename":"/etc/passwd"}' -F raw -u "$TMP/json.qcow2" 1M
refused "json: backing" "not a plain path" "$TMP/json.qcow2"
qemu-img create -q -f qcow2 -b 'nbd://localhost/x' -F raw -u "$TMP/nbd.qcow2" 1M
refused "nbd:// backing" "not a plain path" "$TMP/nbd.qcow2"
