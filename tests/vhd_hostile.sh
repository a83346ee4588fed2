# vpc (VHD): damaged and hostile images are refused by p2v info and p2v
# convert with a one-line error naming the field, a non-zero exit and no
# sanitizer report; a damaged trailing footer falls back to the copy at 0.
source "$(dirname "$0")/lib.sh"
need python3 qemu-img
cd "$TMP"

# A dynamic image written by qemu-img (4 MiB, 2 MiB blocks, both allocated).
mkrandom a.raw $((4 * 1024 * 1024))
qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on a.raw good.vhd
mkrandom b.raw $((64 * 1024))
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on b.raw fixed.vhd

# mutate NAME SRC PYTHON: b is the file (bytearray), F(at) fixes a footer's
# checksum, H() the dynamic header's; n is the file length.
mutate() {
	python3 - "$2" "$1.vhd" "$3" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
n = len(b)
def csum(at, size, field):
    b[at + field:at + field + 4] = bytes(4)
    s = sum(b[at:at + size]) & 0xFFFFFFFF
    b[at + field:at + field + 4] = struct.pack('>I', ~s & 0xFFFFFFFF)
F = lambda at: csum(at, 512, 64)
H = lambda: csum(512, 1024, 36)
def both(off, fmt, val):
    for at in (0, n - 512):
        struct.pack_into(fmt, b, at + off, val)
        F(at)
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(b)
PY
}

refused() { # NAME TEXT: both info and convert refuse, naming TEXT
	local out
	expect_fail "$1 (info)" "$P2V" info "$1.vhd"
	expect_fail "$1 (convert)" "$P2V" convert -O raw "$1.vhd" "$1.raw"
	out=$("$P2V" convert -O raw "$1.vhd" "$1.raw" 2>&1) || true
	echo "$out" | grep -q -- "$2" || fail "$1: message does not name '$2': $out"
	[ "$(echo "$out" | grep -vc "warning:")" = 1 ] || fail "$1: not one error line: $out"
	[ ! -e "$1.raw" ] || fail "$1: a partial output was left behind"
}

mutate footsum good.vhd 'b[100] ^= 1; b[n - 412] ^= 1'
refused footsum "footer checksum"
mutate hdrsum good.vhd 'b[512 + 100] ^= 1'
refused hdrsum "dynamic header checksum"
mutate blk3m good.vhd 'struct.pack_into(">I", b, 512 + 32, 3 << 20); H()'
refused blk3m "block size"
mutate blk1g good.vhd 'struct.pack_into(">I", b, 512 + 32, 1 << 30); H()'
refused blk1g "block size"
mutate entries good.vhd 'struct.pack_into(">I", b, 512 + 28, 1); H()'
refused entries "max table entries"
mutate entrieshuge good.vhd 'struct.pack_into(">I", b, 512 + 28, 0xFFFFFFFF); H()'
refused entrieshuge "table offset"
mutate tableoff good.vhd 'struct.pack_into(">Q", b, 512 + 16, 1 << 50); H()'
refused tableoff "table offset"
mutate batpast good.vhd 'struct.pack_into(">I", b, 1536 + 4, (n // 512) + 10)'
refused batpast "BAT entry 1"
mutate batover good.vhd 'struct.pack_into(">I", b, 1536, 1)'
refused batover "overlaps"
mutate dataoff good.vhd 'both(16, ">Q", 1 << 62)'
refused dataoff "data offset"
mutate disktype good.vhd 'both(60, ">I", 9)'
refused disktype "disk type"
mutate locator good.vhd 'both(60, ">I", 4); struct.pack_into(">IIIIQ", b, 512 + 576, 0x57327275, 1, 4096, 0, n - 100); H()'
refused locator "parent locator 0"
mutate fixbig fixed.vhd 'struct.pack_into(">Q", b, n - 512 + 48, 1 << 30); F(n - 512)'
refused fixbig "current size"
mutate trunc good.vhd 'del b[n - 300000:]'
refused trunc "BAT entry"
printf 'conectix' > tiny.vhd
expect_fail "tiny" "$P2V" info -f vpc tiny.vhd
out=$("$P2V" info -f vpc tiny.vhd 2>&1) || true
echo "$out" | grep -q "too small for a VHD footer" || fail "tiny: message: $out"

# Trailing footer damaged, copy intact: read with a warning, content intact.
mutate tailbad good.vhd 'b[n - 512 + 300] ^= 0xFF'
out=$("$P2V" convert -O raw tailbad.vhd tailbad.raw 2>&1) || fail "damaged trailing footer: $out"
echo "$out" | grep -q "footer copy at offset 0" || fail "no warning about the footer copy: $out"
cmp a.raw tailbad.raw || fail "content read through the footer copy differs"
echo "all vhd hostile checks ok"
