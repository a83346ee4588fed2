#!/bin/bash
# A VHDX with a non-empty log: take a qemu-made image, add a log entry
# (unit_vhdx mklog: maps block 1 at the end of the file with new data and
# zeroes the first 4 KiB of block 0, through a BAT sector in the log).
# p2v must replay it in memory when reading (the file stays unchanged) and
# read what qemu reads after qemu replays the log itself.
source "$(dirname "$0")/lib.sh"
need qemu-img
helper=$P2V_BUILD/tests/unit_vhdx
[ -x "$helper" ] || fail "$helper is not built"

mkrandom "$TMP/in.raw" $((3 * 1024 * 1024))
truncate -s 8M "$TMP/in.raw"
qemu-img convert -f raw -O vhdx -o block_size=1M "$TMP/in.raw" "$TMP/q.vhdx"
"$helper" mklog "$TMP/q.vhdx" "$TMP/log.vhdx" 1048576 || fail "mklog"
sum_before=$(md5sum < "$TMP/log.vhdx")

info=$("$P2V" info "$TMP/log.vhdx") || fail "p2v info on an image with a log"
grep -q "log: replayed in memory" <<<"$info" || fail "info does not report the replay: $info"
"$P2V" convert -q -O raw "$TMP/log.vhdx" "$TMP/ours.raw" || fail "p2v convert of an image with a log"
[ "$(md5sum < "$TMP/log.vhdx")" = "$sum_before" ] || fail "reading changed the file"
if cmp -s "$TMP/ours.raw" "$TMP/in.raw"; then fail "the log was ignored"; fi

# qemu replays the log when it opens the image read-write.
cp "$TMP/log.vhdx" "$TMP/qemu-replayed.vhdx"
qemu-img check -q -r all -f vhdx "$TMP/qemu-replayed.vhdx" || true
[ "$(md5sum < "$TMP/qemu-replayed.vhdx")" != "$sum_before" ] || fail "qemu did not replay the log"
qemu-img convert -f vhdx -O raw "$TMP/qemu-replayed.vhdx" "$TMP/qemu.raw"
cmp "$TMP/ours.raw" "$TMP/qemu.raw" || fail "our in-memory replay differs from qemu's replay"
# and the replayed file reads the same through p2v, with an empty log
"$P2V" convert -q -O raw "$TMP/qemu-replayed.vhdx" "$TMP/ours2.raw"
cmp "$TMP/ours2.raw" "$TMP/qemu.raw" || fail "p2v read of qemu's replayed image differs"
grep -q "log: empty" <<<"$("$P2V" info "$TMP/qemu-replayed.vhdx")" || fail "log not empty after qemu's replay"
echo "log replay matches qemu"
