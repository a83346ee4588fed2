#!/bin/bash
# NBD sources and targets over loopback, served by nbdkit with TLS-PSK:
# convert from nbds:// equals the local convert (qemu-img compare), map
# agrees with qemu-img map of the served file, the bytes nbdkit served
# (its stats filter) are the allocated data plus a small bound, a wrong
# key fails in one line with no output, a writable export written by
# convert equals the source, and no message shows the URI's query.
. "$(dirname "$0")/lib.sh"
command -v nbdkit >/dev/null 2>&1 || skip "nbdkit is not installed"
need qemu-img jq nbdinfo

. "$(dirname "$0")/nbd_lib.sh"

# A 64 MiB raw disk: random data in three places, an allocated run of zeroes,
# holes elsewhere.
D=$TMP/disk.raw
truncate -s 64M "$D"
head -c 3M /dev/urandom | dd of="$D" bs=1M seek=5 conv=notrunc status=none
head -c 128K /dev/urandom | dd of="$D" bs=64K seek=700 conv=notrunc status=none
head -c 4K /dev/urandom | dd of="$D" bs=4K seek=16383 conv=notrunc status=none
dd if=/dev/zero of="$D" bs=1M seek=20 count=2 conv=notrunc status=none
printf 'p2v:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$TMP/psk"
printf 'p2v:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$TMP/bad.psk"
chmod 600 "$TMP/psk" "$TMP/bad.psk"

serve ro -r --tls=require --tls-psk="$TMP/psk" --filter=stats file "$D" statsfile="$TMP/ro.stats"
U="nbds://p2v@localhost:$PORT/?tls-psk-file=$TMP/psk"
SHOWN="nbds://p2v@localhost:$PORT/"

# nbdinfo (libnbd's own tool) agrees on the size.
[ "$(nbdinfo --size "$U")" = 67108864 ] || fail "nbdinfo size"
"$P2V" info --json "$U" > "$TMP/info.json"
[ "$(jq -r '."virtual-size"' "$TMP/info.json")" = 67108864 ] || fail "info size: $(cat "$TMP/info.json")"
grep -q "tls-psk-file" "$TMP/info.json" && fail "info shows the URI's query"

# map: the data ranges equal qemu-img map's of the served file.
"$P2V" map --json "$U" | jq -c '[.[] | select(.data) | [.start, .length]]' > "$TMP/map.nbd"
qemu-img map --output=json -f raw "$D" | jq -c '[.[] | select(.data) | [.start, .length]]' > "$TMP/map.ref"
cmp -s "$TMP/map.nbd" "$TMP/map.ref" || fail "map differs: $(cat "$TMP/map.nbd") vs qemu-img $(cat "$TMP/map.ref")"
echo "ok: map of the export equals qemu-img map of the file: $(cat "$TMP/map.ref")"

# convert from the export equals the local convert and the file itself.
"$P2V" convert -q -O qcow2 "$U" "$TMP/net.qcow2" 2>"$TMP/convert.err" || fail "convert: $(cat "$TMP/convert.err")"
"$P2V" convert -q -f raw -O qcow2 "$D" "$TMP/local.qcow2"
qemu-img compare "$TMP/net.qcow2" "$TMP/local.qcow2" >/dev/null || fail "NBD convert differs from the local convert"
qemu-img compare -f raw "$D" "$TMP/net.qcow2" >/dev/null || fail "NBD convert differs from the disk"
echo "ok: convert from nbds:// equals the local convert"

# The bytes nbdkit served: no more than the allocated data plus 1 MiB.
stop ro
alloc=$(qemu-img map --output=json -f raw "$D" | jq '[.[] | select(.data) | .length] | add')
random_bytes=$(( (3 << 20) + (128 << 10) + 4096 ))
read_bytes=$(awk '/^read:/ { v = $6; u = $7; sub(/,/, "", u);
	m = (u == "KiB") ? 1024 : (u == "MiB") ? 1048576 : (u == "GiB") ? 1073741824 : 1;
	printf "%.0f\n", v * m }' "$TMP/ro.stats")
[ -n "$read_bytes" ] || fail "no read line in the stats: $(cat "$TMP/ro.stats")"
[ "$read_bytes" -le $((alloc + 1048576)) ] ||
	fail "read $read_bytes bytes over NBD for $alloc allocated"
[ "$read_bytes" -ge "$random_bytes" ] || fail "read $read_bytes bytes over NBD: less than the $random_bytes of data"
echo "ok: $read_bytes bytes read over NBD for $alloc bytes allocated (64 MiB disk)"

# A wrong key: one line naming the URI without its query, non-zero, no output.
serve ro2 -r --tls=require --tls-psk="$TMP/psk" file "$D"
B="nbds://p2v@localhost:$PORT/?tls-psk-file=$TMP/bad.psk"
rc=0
"$P2V" convert -q -O qcow2 "$B" "$TMP/bad.qcow2" 2>"$TMP/bad.err" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] || fail "wrong key: rc=$rc"
[ "$(wc -l < "$TMP/bad.err")" -eq 1 ] || fail "wrong key: not one line: $(cat "$TMP/bad.err")"
grep -q "nbds://p2v@localhost:$PORT/" "$TMP/bad.err" || fail "wrong key: the URI is not named: $(cat "$TMP/bad.err")"
grep -q "psk" "$TMP/bad.err" && fail "wrong key: the message shows the key file: $(cat "$TMP/bad.err")"
[ -e "$TMP/bad.qcow2" ] && fail "wrong key: an output file was left"
ls -a "$TMP" | grep -q "p2v-tmp" && fail "wrong key: a temporary file was left"
echo "ok (refused): wrong key: $(cat "$TMP/bad.err")"

# Failures of convert name the URIs without their query.
serve rw0 --tls=require --tls-psk="$TMP/psk" memory 1M
rc=0
"$P2V" convert -q "$TMP/local.qcow2" "nbds://p2v@localhost:$PORT/?tls-psk-file=$TMP/psk" 2>"$TMP/small.err" || rc=$?
[ "$rc" -ne 0 ] || fail "convert into a 1 MiB export of a 64 MiB disk succeeded"
grep -q "nbds://p2v@localhost:$PORT/" "$TMP/small.err" || fail "the small target is not named: $(cat "$TMP/small.err")"
grep -q "psk" "$TMP/small.err" && fail "the message shows the key file: $(cat "$TMP/small.err")"
echo "ok (refused): $(cat "$TMP/small.err")"
"$P2V" convert -q --json "$TMP/local.qcow2" "nbds://p2v@localhost:$PORT/?tls-psk-file=$TMP/psk" 2>&1 |
	grep -q psk && fail "convert --json shows the key file"

# capture does not read NBD yet: one line, the URI without its query.
out=$("$P2V" inspect "nbds://p2v@localhost:1/?tls-psk-file=$TMP/psk" 2>&1) && fail "inspect of a URI succeeded"
[ "$(echo "$out" | wc -l)" -eq 1 ] && ! echo "$out" | grep -q psk || fail "inspect of a URI: $out"

# A plain nbd:// to a host other than loopback is refused before connecting.
expect_fail "plain nbd:// to a remote host" "$P2V" info "nbd://192.0.2.1:10809/x"
out=$("$P2V" info "nbd://192.0.2.1:10809/x" 2>&1) || true
echo "$out" | grep -q "insecure-nbd" || fail "the refusal does not name --insecure-nbd"

# A writable export (a file full of garbage) as the target: equal to the source.
head -c 64M /dev/urandom > "$TMP/target.raw"
serve rw --tls=require --tls-psk="$TMP/psk" file "$TMP/target.raw"
T="nbds://p2v@localhost:$PORT/?tls-psk-file=$TMP/psk"
"$P2V" convert -q "$TMP/local.qcow2" "$T" 2>"$TMP/target.err" || fail "convert to NBD: $(cat "$TMP/target.err")"
stop rw
qemu-img compare -f raw -F raw "$D" "$TMP/target.raw" >/dev/null || fail "the NBD target differs from the source"
ls -a "$TMP" | grep -q "p2v-tmp" && fail "a temporary file was left beside the target"
echo "ok: convert into a writable nbds:// export equals the source"

# A qcow2 target must not be a URI: the export holds raw content.
expect_fail "qcow2 into an NBD export" "$P2V" convert -O qcow2 "$TMP/local.qcow2" "nbd://localhost:1/"
expect_fail "create options for an NBD export" "$P2V" convert -o preallocation=falloc "$TMP/local.qcow2" "nbd://localhost:1/"
# nbd+unix:// (a Unix socket: no TLS needed) reads the same.
nbdkit -U "$TMP/nbd.sock" -P "$TMP/unix.pid" -r file "$D"
PIDS+=("$(cat "$TMP/unix.pid")")
"$P2V" compare "nbd+unix:///?socket=$TMP/nbd.sock" "$TMP/local.qcow2" >/dev/null ||
	fail "nbd+unix:// differs from the local image"
echo "ok: nbd+unix:// reads the same as the local image"
rc=0
out=$("$P2V" check --json "nbd+unix:///?socket=$TMP/nbd.sock&tls-psk-file=$TMP/psk" 2>&1) || rc=$?
[ "$rc" = 63 ] || fail "check of an export: rc $rc (want 63, nothing to check): $out"
echo "$out" | grep -q psk && fail "check shows the URI's query: $out"

# A URI named inside an image (a backing file) is refused, unlike one on the
# command line.
qemu-img create -q -f qcow2 -u -b "nbd+unix:///?socket=$TMP/nbd.sock&tls-psk-file=$TMP/psk" -F raw \
	"$TMP/top.qcow2" 64M
expect_fail "a backing file that is an NBD URI" "$P2V" convert -O raw "$TMP/top.qcow2" "$TMP/top.raw"
out=$("$P2V" convert -O raw "$TMP/top.qcow2" "$TMP/top.raw" 2>&1) || true
echo "$out" | grep -q "not a plain path" || fail "the backing URI refusal does not say why: $out"
echo "$out" | grep -q "psk" && fail "the backing URI refusal shows the URI's query: $out"

# A dropped connection: nbdkit (slowed by its delay filter: 1 s a read, so
# the copy of 24 MiB in 256 KiB requests takes several seconds) is killed
# mid-copy and started again on the same port; the copy completes, equal.
G=$TMP/big.raw
truncate -s 64M "$G"
head -c 24M /dev/urandom | dd of="$G" bs=1M seek=8 conv=notrunc status=none
serve slow -r --tls=require --tls-psk="$TMP/psk" --filter=delay file "$G" rdelay=1000ms
SLOW="nbds://p2v@localhost:$PORT/?tls-psk-file=$TMP/psk"
"$P2V" convert -O qcow2 "$SLOW" "$TMP/drop.qcow2" 2>"$TMP/drop.err" &
cpid=$!
sleep 1
stop slow
kill -0 "$cpid" 2>/dev/null || fail "the copy ended before the server was killed: $(cat "$TMP/drop.err")"
sleep 2
nbdkit -i 127.0.0.1 -p "$PORT" -P "$TMP/slow.pid" -r --tls=require --tls-psk="$TMP/psk" \
	--filter=delay file "$G" rdelay=1000ms || fail "nbdkit would not start again on port $PORT"
PIDS+=("$(cat "$TMP/slow.pid")")
wait "$cpid" || fail "the copy failed across a dropped connection: $(cat "$TMP/drop.err")"
grep -q "connection lost" "$TMP/drop.err" || fail "no word of the dropped connection: $(cat "$TMP/drop.err")"
qemu-img compare -f raw "$G" "$TMP/drop.qcow2" >/dev/null || fail "the copy across a dropped connection differs"
echo "ok: a copy across a dropped connection completes, equal: $(grep "connection lost" "$TMP/drop.err")"

# Not back within IMGFMT_NBD_RETRY_SECONDS: failure, nothing under the name.
rc=0
IMGFMT_NBD_RETRY_SECONDS=2 "$P2V" convert -q -O qcow2 "$SLOW" "$TMP/gone.qcow2" 2>"$TMP/gone.err" &
cpid=$!
sleep 1
stop slow
wait "$cpid" || rc=$?
[ "$rc" -ne 0 ] || fail "a copy from a server that never came back succeeded"
[ -e "$TMP/gone.qcow2" ] && fail "a failed copy left its target"
ls -a "$TMP" | grep -q "p2v-tmp" && fail "a failed copy left a temporary file"
echo "ok (refused): server gone: $(tail -n 1 "$TMP/gone.err")"
echo "PASS"
