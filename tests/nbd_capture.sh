#!/bin/bash
# p2v capture / inspect from an NBD source (issue 17): nbdkit serves a
# lived-in data disk (ext4, garbage in free space, a deleted file) read-only
# with TLS-PSK.  capture from nbds:// equals the local capture of the same
# file (qemu-img compare); the bytes nbdkit served (its stats filter) are no
# more than the filesystem's used blocks (dumpe2fs) plus what lies before
# the partition and a small probe bound, and well under the disk; inspect
# --json over NBD equals the local one but for the source path (which shows
# no query).  A DOS disk with logical partitions (EBR chain beyond the first
# MiB) inspects the same over NBD.
. "$(dirname "$0")/lib.sh"
command -v nbdkit >/dev/null 2>&1 || skip "nbdkit is not installed"
need qemu-img jq dumpe2fs sfdisk mkfs.ext4 mkfs.vfat

. "$(dirname "$0")/nbd_lib.sh"
# read_bytes STATSFILE: bytes nbdkit's stats filter counted as read.
read_bytes() {
	awk '/^read:/ { v = $6; u = $7; sub(/,/, "", u);
		m = (u == "KiB") ? 1024 : (u == "MiB") ? 1048576 : (u == "GiB") ? 1073741824 : 1;
		printf "%.0f\n", v * m }' "$1"
}

printf 'p2v:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$TMP/psk"
chmod 600 "$TMP/psk"

D=$TMP/data.raw
sh "$(dirname "$0")/../samples/make-data-disk.sh" "$D" 96 /usr/share/doc/bash
disk_bytes=$(stat -c %s "$D")

# Local references first.
"$P2V" capture -q "$D" "$TMP/local.qcow2" || fail "local capture"
"$P2V" inspect --json "$D" > "$TMP/local.json" || fail "local inspect"

# capture over NBD, alone on its server so that the stats are its own.
serve cap -r --tls=require --tls-psk="$TMP/psk" --filter=stats file "$D" statsfile="$TMP/cap.stats"
U="nbds://p2v@localhost:$PORT/?tls-psk-file=$TMP/psk"
"$P2V" capture "$U" "$TMP/net.qcow2" > "$TMP/cap.out" 2>&1 || fail "capture from NBD: $(cat "$TMP/cap.out")"
grep -q "tls-psk-file" "$TMP/cap.out" && fail "capture showed the URI's query: $(cat "$TMP/cap.out")"
stop cap
qemu-img compare "$TMP/local.qcow2" "$TMP/net.qcow2" >/dev/null || fail "NBD capture differs from the local capture"
echo "ok: capture from nbds:// equals the local capture"

# Bytes served: the filesystem's used blocks (dumpe2fs, not p2v) plus the
# 1 MiB before the partition, plus at most 4 MiB of probing.
part_off=1048576
fs_used=$(dumpe2fs -h "$D?offset=$part_off" 2>/dev/null | awk -F: '
	/^Block count/ { n = $2 } /^Free blocks/ { f = $2 } /^Block size/ { b = $2 }
	END { printf "%.0f\n", (n - f) * b }')
[ "$fs_used" -gt 0 ] || fail "dumpe2fs gave no used size"
got=$(read_bytes "$TMP/cap.stats")
[ -n "$got" ] || fail "no read line in the stats: $(cat "$TMP/cap.stats")"
bound=$((fs_used + part_off + (4 << 20)))
[ "$got" -le "$bound" ] || fail "read $got bytes over NBD; used $fs_used + $part_off + 4 MiB = $bound"
[ "$got" -ge "$fs_used" ] || fail "read $got bytes over NBD: less than the $fs_used bytes used"
[ "$got" -le $((disk_bytes / 2)) ] || fail "read $got bytes over NBD of a $disk_bytes-byte disk"
echo "ok: $got bytes read over NBD for $fs_used bytes used by ext4 ($disk_bytes-byte disk)"

# inspect over NBD: the same JSON but for the source path, shown without its query.
serve insp -r --tls=require --tls-psk="$TMP/psk" file "$D"
U="nbds://p2v@localhost:$PORT/?tls-psk-file=$TMP/psk"
"$P2V" inspect --json "$U" > "$TMP/net.json" || fail "inspect from NBD"
stop insp
[ "$(jq -r .source.path "$TMP/net.json")" = "nbds://p2v@localhost:$PORT/" ] ||
	fail "inspect's source path: $(jq -r .source.path "$TMP/net.json")"
diff <(jq -S 'del(.source.path)' "$TMP/local.json") <(jq -S 'del(.source.path)' "$TMP/net.json") ||
	fail "inspect over NBD differs from the local inspect"
echo "ok: inspect over nbds:// equals the local inspect"

# DOS with logical partitions (EBRs at 32 MiB and 49 MiB): ext4, FAT, ext4.
M=$TMP/logical.raw
truncate -s 80M "$M"
printf 'label: dos\nstart=2048, size=30M, type=83\nstart=32M, size=46M, type=5\nstart=33M, size=15M, type=c\nstart=50M, size=20M, type=83\n' |
	sfdisk -q "$M"
sfdisk -d "$M" > "$TMP/logical.table"
start_of() { sfdisk -d "$M" | awk -v p="$M$1" '$1 == p { sub(/,/, "", $4); print $4 }'; }
size_of() { sfdisk -d "$M" | awk -v p="$M$1" '$1 == p { sub(/,/, "", $6); print $6 }'; }
mkfs.ext4 -q -F -E offset=$(( $(start_of 1) * 512 )) -L one "$M" $(( $(size_of 1) / 2 ))k >/dev/null
mkfs.vfat --offset="$(start_of 5)" -n FIVE "$M" $(( $(size_of 5) / 2 )) >/dev/null
mkfs.ext4 -q -F -E offset=$(( $(start_of 6) * 512 )) -L six "$M" $(( $(size_of 6) / 2 ))k >/dev/null
"$P2V" inspect --json "$M" > "$TMP/mlocal.json" || fail "local inspect of the logical disk"
[ "$(jq '.partitions | length' "$TMP/mlocal.json")" -eq 4 ] ||
	fail "local inspect does not list 4 partitions: $(cat "$TMP/mlocal.json")"
serve logical -r --tls=require --tls-psk="$TMP/psk" file "$M"
U="nbds://p2v@localhost:$PORT/?tls-psk-file=$TMP/psk"
"$P2V" inspect --json "$U" > "$TMP/mnet.json" || fail "inspect of the logical disk from NBD"
"$P2V" capture -q "$U" "$TMP/mnet.qcow2" || fail "capture of the logical disk from NBD"
stop logical
"$P2V" capture -q "$M" "$TMP/mlocal.qcow2" || fail "local capture of the logical disk"
diff <(jq -S 'del(.source.path)' "$TMP/mlocal.json") <(jq -S 'del(.source.path)' "$TMP/mnet.json") ||
	fail "inspect of logical partitions over NBD differs from the local inspect"
qemu-img compare "$TMP/mlocal.qcow2" "$TMP/mnet.qcow2" >/dev/null ||
	fail "NBD capture of the logical disk differs from the local capture"
echo "ok: logical partitions (EBR chain) inspect and capture the same over nbds://"
