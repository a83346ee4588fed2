# Consistency: a source with a filesystem mounted read-write is refused
# (naming the mount); --allow-mounted warns (and the live ext4's bitmap is
# not trusted: journal needs recovery); --freeze freezes it for the capture,
# yields a clean filesystem with data written just before, and thaws it.
# An output on the source disk or on a filesystem to be frozen is refused.
source "$P2V_SRC/tests/lib.sh"
source "$P2V_SRC/tests/capture_lib.sh"
need mount umount timeout

DISK=$TMP/m.img
head -c 64M /dev/urandom > "$DISK"
truncate -s 160M "$DISK"   # a zero tail: the read-back (SHA-256) lasts long enough to interrupt
sfdisk -q "$DISK" <<'EOF2'
label: dos
start=2048, size=40MiB, type=83
type=83
EOF2
cap_make_files
cap_attach L "$DISK"
mkfs.ext4 -q -F -E nodiscard -d "$TMP/files" "${L}p1"
mkfs.ext4 -q -F -E nodiscard "${L}p2"
mkdir -p "$TMP/mnt"
mount "${L}p1" "$TMP/mnt"
CAP_MOUNTS+=("$TMP/mnt")

out=$("$P2V" capture "$L" "$TMP/x.img" 2>&1) && fail "capture of a mounted disk succeeded"
echo "$out" | grep -q "$TMP/mnt" || fail "refusal does not name the mount: $out"
echo "ok (refused): $out"
[ ! -e "$TMP/x.img" ] || fail "refused capture left an output"
# The mounted partition itself as the source.
out=$("$P2V" capture "${L}p1" "$TMP/x.img" 2>&1) && fail "capture of a mounted partition succeeded"
echo "$out" | grep -q "$TMP/mnt" || fail "partition refusal does not name the mount: $out"
# inspect works on a mounted disk and says so.
"$P2V" inspect "$L" 2>&1 >/dev/null | grep -q "mounted read-write: ${L}p1 on $TMP/mnt" || fail "inspect does not mention the mount"

# Output on the source disk itself.
expect_fail "output on the source disk" "$P2V" capture "$L" "$TMP/mnt/x.img" --allow-mounted
expect_fail "output on a filesystem to be frozen" "$P2V" capture "$L" "$TMP/mnt/x.img" --freeze
expect_fail "output is the source" "$P2V" capture "$DISK" "$DISK" --force

# --allow-mounted: warns, captures; the live ext4 is copied whole.
"$P2V" capture "$L" "$TMP/live.img" --allow-mounted --json -q > "$TMP/live.json" 2> "$TMP/live.err"
grep -q "mounted read-write" "$TMP/live.err" || fail "no warning for --allow-mounted"
grep -q "needs recovery" "$TMP/live.err" || { cat "$TMP/live.err"; fail "live ext4 bitmap trusted"; }
echo "ok: --allow-mounted warned: $(head -n 1 "$TMP/live.err")"

# --freeze: data written just before the capture must be in the image.
head -c 2M /dev/urandom > "$TMP/files/fresh.bin"
cp "$TMP/files/fresh.bin" "$TMP/mnt/fresh.bin"   # still in the page cache
"$P2V" capture "$L" "$TMP/frz.img" --freeze --verify --report "$TMP/frz.json" -q
grep -q '"verify_mismatch_bytes": 0' "$TMP/frz.json" || fail "verify mismatch under --freeze"
[ "$(grep -c '"method": "used-blocks"' "$TMP/frz.json")" = 2 ] || fail "frozen ext4 not captured by its bitmap"
timeout 20 sh -c "echo after > '$TMP/mnt/after.txt' && sync" || fail "filesystem left frozen"
echo "ok: thawed after --freeze"
cap_attach O "$TMP/frz.img" -r
cap_ext_check "${O}p1" a.bin dir/b.bin fresh.bin
cap_detach "$O"

# SIGTERM in the middle of a --freeze capture: no output, no temporary
# file, the filesystem thawed.
"$P2V" capture "$L" "$TMP/int.img" --freeze --all-blocks --verify -q > /dev/null 2> "$TMP/int.err" &
pid=$!
for _ in $(seq 200); do ls -a "$TMP" | grep -q '^\.int\.img\.p2v-tmp' && break; sleep 0.05; done
ls -a "$TMP" | grep -q '^\.int\.img\.p2v-tmp' || fail "capture did not start its output"
sleep 0.2
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
cat "$TMP/int.err"
[ "$rc" = 2 ] || fail "interrupted capture: exit $rc, expected 2"
grep -q "interrupted" "$TMP/int.err" || fail "no interruption message"
ls -a "$TMP" | grep -q "int\.img" && fail "interrupted capture left a file"
timeout 20 sh -c "echo after2 > '$TMP/mnt/after2.txt' && sync" || fail "filesystem left frozen after SIGTERM"
echo "ok: SIGTERM: output removed, filesystem thawed"
umount "$TMP/mnt"

# A read-only mount is no obstacle.
mount -o ro "${L}p1" "$TMP/mnt"
"$P2V" capture "$L" "$TMP/ro.img" -q > /dev/null || fail "read-only mount refused"
umount "$TMP/mnt"
echo "PASS"
