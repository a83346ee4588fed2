# Helpers for the capture tests: test disks built with Debian tools on loop
# devices, always detached (with their mounts and dm targets) on exit.
# Source after lib.sh.
[ "$(id -u)" = 0 ] || skip "needs root for loop devices"
need losetup partx sfdisk mkfs.ext4 debugfs e2fsck python3

CAP_LOOPS=()
CAP_MOUNTS=()
CAP_DM=()
cap_cleanup() {
	local rc=$?
	set +e
	for m in "${CAP_MOUNTS[@]}"; do fsfreeze -u "$m" 2>/dev/null; umount "$m" 2>/dev/null; done
	for d in "${CAP_DM[@]}"; do dmsetup remove "$d" 2>/dev/null; done
	for l in "${CAP_LOOPS[@]}"; do partx -d "$l" 2>/dev/null; losetup -d "$l" 2>/dev/null; done
	rm -rf "$TMP"
	exit $rc
}
trap cap_cleanup EXIT

# cap_attach VAR FILE [-r]: attach FILE, partitions scanned; VAR = the device.
# (Not through $(...): the cleanup list must be updated in this shell.)
cap_attach() {
	local dev want have
	dev=$(losetup -f --show ${3:-} "$2")
	CAP_LOOPS+=("$dev")
	want=$(partx -g -o NR "$dev" 2>/dev/null | wc -l)
	# partx can lose a race with a concurrent probe of the new device: retry
	# until every partition of the table has its node.
	for _ in $(seq 20); do
		partx -a "$dev" 2>/dev/null || partx -u "$dev" 2>/dev/null || true
		have=$(ls "$dev"p* 2>/dev/null | wc -l)
		[ "$have" -lt "$want" ] || break
		sleep 0.2
	done
	[ "$have" -ge "$want" ] || fail "partx: $have of $want partitions of $dev appeared"
	printf -v "$1" '%s' "$dev"
}

# cap_detach DEV (and forget it, so the exit trap never touches a reused number)
cap_detach() {
	local keep=() l
	partx -d "$1" 2>/dev/null || true
	losetup -d "$1"
	for l in "${CAP_LOOPS[@]}"; do [ "$l" = "$1" ] || keep+=("$l"); done
	CAP_LOOPS=("${keep[@]}")
}

# Files to put on the filesystems: random content, a sub-directory, and one
# file that gets deleted again (its blocks become free garbage).
cap_make_files() {
	mkdir -p "$TMP/files/dir" "$TMP/files2"
	head -c 3M /dev/urandom > "$TMP/files/a.bin"
	head -c 5M /dev/urandom > "$TMP/files/dir/b.bin"
	head -c 1234567 /dev/urandom > "$TMP/files/c.odd"
	head -c 4M /dev/urandom > "$TMP/files/deleted.bin"
	cp "$TMP/files/a.bin" "$TMP/files2/a.bin"
}

# ... | cap_has PATTERN: like grep -q, but reads all its input, so the writer
# never dies of SIGPIPE (which pipefail would report as a failure).
cap_has() { grep -e "$1" > /dev/null; }

# cap_md5 FILE
cap_md5() { md5sum < "$1" | cut -d' ' -f1; }

# cap_ext_check DEV PATH...: e2fsck clean, each file equal to $TMP/files/PATH.
cap_ext_check() {
	local dev=$1; shift
	e2fsck -fn "$dev" > "$TMP/fsck.log" 2>&1 || { cat "$TMP/fsck.log"; fail "e2fsck -fn $dev"; }
	for f in "$@"; do
		debugfs -R "dump /$f $TMP/out.file" "$dev" 2>/dev/null
		[ "$(cap_md5 "$TMP/out.file")" = "$(cap_md5 "$TMP/files/$f")" ] || fail "$dev: /$f differs"
	done
	echo "ok: ext on $dev clean, files $* identical"
}

# cap_alloc_bytes FILE: bytes the file occupies on the host.
cap_alloc_bytes() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

# cap_json_u64 FILE KEY: first numeric value of KEY in a JSON file.
cap_json_u64() { grep -m1 "\"$2\":" "$1" | sed 's/.*: *\([0-9]*\).*/\1/'; }

# cap_ntfs_set_dirty DEV: set VOLUME_IS_DIRTY in $Volume's VOLUME_INFORMATION
# (MFT record 3, and its copy in $MFTMirr), as Windows leaves a volume that
# was not shut down cleanly.
cap_ntfs_set_dirty() {
	python3 - "$1" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    boot = f.read(512)
    bps = struct.unpack_from("<H", boot, 0x0B)[0]
    cluster = bps * boot[0x0D]
    mft_lcn, mirr_lcn = struct.unpack_from("<qq", boot, 0x30)
    cpr = struct.unpack_from("<b", boot, 0x40)[0]
    rec = cpr * cluster if cpr > 0 else 1 << -cpr
    for lcn in (mft_lcn, mirr_lcn):
        off = lcn * cluster + 3 * rec
        f.seek(off)
        r = bytearray(f.read(rec))
        assert r[:4] == b"FILE", "not an MFT record"
        a = struct.unpack_from("<H", r, 0x14)[0]
        while True:
            typ, length = struct.unpack_from("<II", r, a)
            assert typ != 0xFFFFFFFF and length > 0, "no VOLUME_INFORMATION"
            if typ == 0x70:
                v = a + struct.unpack_from("<H", r, a + 0x14)[0]
                flags_at = v + 10
                assert flags_at % bps < bps - 2, "flags under a fixup"
                r[flags_at] |= 1
                break
            a += length
        f.seek(off)
        f.write(r)
PY
}
