# Read errors: sectors 1000..1015 of the source fail (a device-mapper
# "error" target over that part of a loop device, or, where device-mapper is
# unavailable, the reader's P2V_TEST_BAD_SECTORS hook).  The capture narrows
# the failure to exactly those sectors, fills them with zeroes, reports the
# range, and copies everything else; --max-read-errors stops it.
source "$P2V_SRC/tests/lib.sh"
source "$P2V_SRC/tests/capture_lib.sh"
need cmp blockdev

DISK=$TMP/e.img
head -c 64M /dev/urandom > "$DISK"
sfdisk -q "$DISK" <<'EOF2'
label: dos
start=2048, type=83
EOF2
cap_make_files
cap_attach L "$DISK"
mkfs.ext4 -q -F -E nodiscard -d "$TMP/files" "${L}p1"
sync
BAD_START=1000 BAD_N=16
SRC=$L
DM=p2v-bad-$$
total=$(blockdev --getsz "$L")
if dmsetup create "$DM" 2>/dev/null <<EOF2
0 $BAD_START linear $L 0
$BAD_START $BAD_N error
$((BAD_START + BAD_N)) $((total - BAD_START - BAD_N)) linear $L $((BAD_START + BAD_N))
EOF2
then
	CAP_DM+=("$DM")
	SRC=/dev/mapper/$DM
	echo "using device-mapper error target on $SRC"
else
	export P2V_TEST_BAD_SECTORS=$BAD_START-$((BAD_START + BAD_N))
	echo "device-mapper unavailable here; using P2V_TEST_BAD_SECTORS=$P2V_TEST_BAD_SECTORS"
fi

rc=0
"$P2V" capture "$SRC" "$TMP/out.img" --report "$TMP/rep.json" -q > "$TMP/out.txt" 2>&1 || rc=$?
cat "$TMP/out.txt"
[ "$rc" = 1 ] || fail "capture with lost sectors: exit $rc, expected 1"
grep -q "LOST.*bytes $((BAD_START * 512))\.\.$(((BAD_START + BAD_N) * 512 - 1))" "$TMP/out.txt" || fail "lost range not reported"
grep -A3 '"lost_ranges"' "$TMP/rep.json" | grep -q "\"offset_bytes\": $((BAD_START * 512))" || fail "report: lost offset"
grep -A4 '"lost_ranges"' "$TMP/rep.json" | grep -q "\"length_bytes\": $((BAD_N * 512))" || fail "report: lost length"
# Everything else captured: identical outside the lost range, zeroes inside.
cmp -n $((BAD_START * 512)) "$L" "$TMP/out.img" || fail "differs before the lost range"
cmp -n $((BAD_N * 512)) -i $((BAD_START * 512)) /dev/zero "$TMP/out.img" || fail "lost range not zero"
cmp -n $((1048576 - (BAD_START + BAD_N) * 512)) -i $(((BAD_START + BAD_N) * 512)) "$L" "$TMP/out.img" || fail "differs after the lost range"
cap_attach O "$TMP/out.img" -r
cap_ext_check "${O}p1" a.bin dir/b.bin c.odd
cap_detach "$O"

# --max-read-errors: more unreadable sectors than allowed stops the capture.
expect_fail "--max-read-errors 4" "$P2V" capture "$SRC" "$TMP/stop.img" --max-read-errors 4 -q
[ ! -e "$TMP/stop.img" ] || fail "stopped capture left its output"
ls "$TMP" | grep -q "stop.img" && fail "stopped capture left a temporary file"
rc=0
"$P2V" capture "$SRC" "$TMP/ok.img" --max-read-errors 16 -q > /dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "--max-read-errors 16 with 16 bad sectors: exit $rc"
echo "PASS"
