#!/bin/bash
# The image commands on raw images: convert round trip, holes kept, compare
# exit codes, map/info JSON, refusals (existing target, unknown format, full
# disk leaves nothing behind, raw guessed only without a signature).
. "$(dirname "$0")/lib.sh"
need qemu-img jq
cd "$TMP"

truncate -s 32M src.raw
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q src.raw
dd if=/dev/urandom of=src.raw bs=64k seek=20 count=40 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=1 seek=20000001 count=5000 conv=notrunc status=none
truncate -s $((32*1024*1024 + 1234)) src.raw   # size not a multiple of anything

"$P2V" convert -f raw -O raw src.raw out.raw
cmp src.raw out.raw || fail "raw -> raw differs"
qemu-img compare -f raw -F raw src.raw out.raw >/dev/null || fail "qemu-img compare disagrees"
alloc=$(du -k out.raw | cut -f1)
[ "$alloc" -lt 4000 ] || fail "holes not kept: $alloc KiB allocated"

"$P2V" compare src.raw out.raw | grep -q identical || fail "compare equal"
printf 'X' | dd of=out.raw bs=1 seek=30000000 conv=notrunc status=none
rc=0; out=$("$P2V" compare src.raw out.raw) || rc=$?
[ "$rc" -eq 1 ] || fail "compare of different images: rc=$rc"
echo "$out" | grep -q "offset 30000000" || fail "first difference not reported: $out"

# qemu-img map's entries: covering the image in order, data and holes
# (zero: true), neighbours differing (the file's offsets continue)
"$P2V" map --json src.raw | jq -e --argjson size $((32*1024*1024+1234)) '
	.[0].start == 0 and (map(.length) | add) == $size and
	any(.[]; .data) and any(.[]; .data | not) and all(.[]; .present and .zero != .data) and
	all(range(1; length) as $i | [.[$i - 1], .[$i]] |
	    .[0].start + .[0].length == .[1].start and .[0].data != .[1].data; .)' >/dev/null || fail "map --json"
"$P2V" info --json src.raw | jq -e --argjson size $((32*1024*1024+1234)) \
	'.format == "raw" and .["virtual-size"] == $size and .["dirty-flag"] == false' >/dev/null || fail "info --json"

expect_fail "existing target" "$P2V" convert -f raw -O raw src.raw out.raw
"$P2V" convert --force -f raw -O raw src.raw out.raw && cmp src.raw out.raw || fail "--force"
head -c 1M /dev/zero > blank.bin
# no signature at all: read as raw with a note; writing needs -f raw
# (cli_probe.sh has the rules in full)
"$P2V" info blank.bin 2>&1 >/dev/null | grep -q "has no image signature; reading it as raw" ||
	fail "no signature: raw with a note"
expect_fail "writing to a guessed raw image" "$P2V" resize blank.bin 2M
"$P2V" info -f raw blank.bin >/dev/null || fail "-f raw accepted"
expect_fail "unknown output format" "$P2V" convert -f raw -O nosuch src.raw x.nosuch
expect_fail "no output format from the name" "$P2V" convert -f raw src.raw x.unknownext
expect_fail "missing input" "$P2V" info nonexistent.img
expect_fail "bad size" "$P2V" create -O raw c.raw 12Q
expect_fail "unknown option" "$P2V" create -O raw -o bogus=1 c.raw 1M
[ ! -e c.raw ] || fail "failed create left a file"

# A full output disk: clear one-line error, no file under the target name,
# no temporary left behind.
mkdir full && mount -t tmpfs -o size=2M tmpfs full || skip "cannot mount tmpfs"
trap 'umount "$TMP/full" 2>/dev/null || true; rm -rf "$TMP"' EXIT
head -c 6M /dev/urandom > big.raw
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q big.raw
expect_fail "output disk full" "$P2V" convert -f raw -O raw big.raw full/out.raw
[ -z "$(ls -A full)" ] || fail "full disk: left $(ls -A full)"
umount full

# Ctrl-C: interrupted conversion leaves nothing under the target name.
head -c 1G < <(yes p2v-interrupt-test) > huge.raw
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q huge.raw
"$P2V" convert -f raw -O raw huge.raw int.raw & pid=$!
# the signal goes once the copy has begun (its temporary file exists): sent
# earlier, on a slow machine, it would find SIGINT still ignored (a
# background job's) and p2v without its handler
for _ in $(seq 200); do ls -A | grep -q p2v-tmp && break; sleep 0.05; done
kill -INT $pid 2>/dev/null || true; rc=0; wait $pid || rc=$?
echo "interrupted convert: rc=$rc"
if [ "$rc" -ne 0 ]; then
	[ ! -e int.raw ] || fail "interrupted convert left the target"
	[ -z "$(ls -A . | grep p2v-tmp)" ] || fail "interrupted convert left a temporary file"
else
	cmp huge.raw int.raw || fail "convert finished before the signal but differs"
fi
rm -f huge.raw int.raw
echo "cli_raw: all passed"
