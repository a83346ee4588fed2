#!/bin/bash
# Reading what qemu-img writes: v2 and v3, compressed with zlib and zstd,
# refcount widths, cluster sizes, zero clusters, and a backing chain of three
# with relative paths and a smaller base.  p2v's reading must equal qemu's.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io cmp python3 jq
cd "$TMP"

truncate -s 24M src.raw
dd if=/dev/urandom of=src.raw bs=64k seek=3 count=40 conv=notrunc status=none
cat "$P2V_SRC"/imgfmt/*.c | dd of=src.raw bs=1 seek=9000000 conv=notrunc status=none
truncate -s 24M src.raw

same_as_qemu() { # same_as_qemu IMAGE LABEL [P2V OPTIONS...]
	qemu-img convert -O raw "$1" q.raw
	"$P2V" convert "${@:3}" --force -O raw "$1" p.raw
	cmp q.raw p.raw || fail "$2: p2v reads $1 differently from qemu-img"
	"$P2V" compare "${@:3}" -F raw "$1" q.raw >/dev/null || fail "$2: p2v compare"
	echo "ok: $2"
}

qemu-img convert -f raw -O qcow2 -o compat=0.10 src.raw v2.qcow2
same_as_qemu v2.qcow2 "version 2"
"$P2V" info v2.qcow2 | grep -q "compat: 0.10" || fail "v2 not reported"
qemu-img convert -f raw -O qcow2 -o compat=1.1 src.raw v3.qcow2
same_as_qemu v3.qcow2 "version 3"
qemu-img convert -c -f raw -O qcow2 src.raw zlib.qcow2
same_as_qemu zlib.qcow2 "compressed zlib"
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd src.raw zstd.qcow2
same_as_qemu zstd.qcow2 "compressed zstd"
for rb in 1 8 64; do
	qemu-img convert -f raw -O qcow2 -o refcount_bits=$rb src.raw rb$rb.qcow2
	same_as_qemu rb$rb.qcow2 "refcount_bits=$rb"
	"$P2V" check rb$rb.qcow2 >/dev/null || fail "p2v check of refcount_bits=$rb"
done
for cs in 512 2M; do
	qemu-img convert -c -f raw -O qcow2 -o cluster_size=$cs src.raw cs$cs.qcow2
	same_as_qemu cs$cs.qcow2 "compressed cluster_size=$cs"
done

# zero clusters, and zero clusters that keep their allocation
qemu-img convert -f raw -O qcow2 src.raw zc.qcow2
qemu-io -f qcow2 -c "write -z 256k 512k" -c "write -z -u 1M 256k" zc.qcow2 >/dev/null
same_as_qemu zc.qcow2 "zero clusters"
# the map as qemu-img's, entry for entry (plain zero clusters, allocated
# ones with their offset, data)
[ "$("$P2V" map --output=json zc.qcow2 | jq -c '.[]')" = "$(qemu-img map --output=json zc.qcow2 | jq -c '.[]')" ] ||
	fail "map of zero clusters differs from qemu-img's"
"$P2V" map --json zc.qcow2 | jq -e 'any(.[]; .zero and .present)' >/dev/null || fail "zero clusters not in the map"

# backing chain of three, relative names, the base smaller than the overlays
mkdir -p chain/sub
head -c 4M /dev/urandom > chain/base.raw
qemu-img convert -f raw -O qcow2 chain/base.raw chain/base.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 chain/mid.qcow2 16M
qemu-io -f qcow2 -c "write -P 0x5a 3M 2M" chain/mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../mid.qcow2 -F qcow2 chain/sub/top.qcow2 24M
qemu-io -f qcow2 -c "write -P 0xa5 1M 64k" -c "write -P 0x33 20M 1M" chain/sub/top.qcow2 >/dev/null
# sub/top.qcow2 names ../mid.qcow2, outside its own directory: allowed
same_as_qemu chain/sub/top.qcow2 "backing chain of three" --allow-backing chain
chain_keys='[.[] | {filename, "virtual-size", "backing-filename", "full-backing-filename", "backing-filename-format"}]'
[ "$("$P2V" info --backing-chain --json --allow-backing chain chain/sub/top.qcow2 | jq -c "$chain_keys")" = \
  "$(qemu-img info --backing-chain --output=json chain/sub/top.qcow2 | jq -c "$chain_keys")" ] ||
	fail "info --backing-chain differs from qemu-img's"
"$P2V" info --backing-chain --json --allow-backing chain chain/sub/top.qcow2 | jq -e 'length == 3 and .[0]["backing-filename"] == "../mid.qcow2"' \
	>/dev/null || fail "info --backing-chain"
[ "$("$P2V" map --output=json --allow-backing chain chain/sub/top.qcow2 | jq -c '.[]')" = \
  "$(qemu-img map --output=json chain/sub/top.qcow2 | jq -c '.[]')" ] ||
	fail "map of the chain (depth, offsets) differs from qemu-img's"

# info never opens the backing file unless asked; reading needs it
mv chain/mid.qcow2 chain/mid.moved
"$P2V" info chain/sub/top.qcow2 | grep -q "backing file: ../mid.qcow2" || fail "info without backing"
expect_fail "missing backing file" "$P2V" convert --force -O raw --allow-backing chain chain/sub/top.qcow2 p.raw
expect_fail "missing backing file (--backing-chain)" "$P2V" info --backing-chain --allow-backing chain chain/sub/top.qcow2

# persistent dirty bitmaps (incremental backups) are referenced clusters,
# not leaks; an image whose bitmaps are stale (autoclear bit clear) has them
# as leaks for qemu-img too
qemu-img create -q -f qcow2 bm.qcow2 256M
qemu-img bitmap --add bm.qcow2 b0
qemu-img bitmap --add -g 512 bm.qcow2 b1
qemu-io -f qcow2 -c "write -P 7 0 64M" -c "write -P 9 100M 1M" bm.qcow2 >/dev/null
qemu-img check bm.qcow2 | grep -q "No errors" || fail "qemu-img check of the bitmap image"
"$P2V" check bm.qcow2 | grep -q "No errors were found" || fail "check with bitmaps: $("$P2V" check bm.qcow2 2>&1)"
same_as_qemu bm.qcow2 "image with persistent bitmaps"
echo "ok: qemu-made images read as qemu reads them"
