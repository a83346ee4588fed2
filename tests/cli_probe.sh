#!/bin/bash
# Probing against qemu-img's own (issue 14; CVE-2008-2004): a file carrying
# any signature QEMU 7.2 probes for, plus the MBR boot signature 55 AA at
# byte 510, is never read as raw.  For a format p2v does not read, info and
# convert refuse in one line naming it, and convert writes nothing; the
# formats p2v reads are opened as what qemu-img calls them.  A file without
# any signature is read as raw with a note, and refused for writing without
# -f raw.
. "$(dirname "$0")/lib.sh"
need qemu-img jq python3
cd "$TMP"

# poke FILE: 55 AA at byte 510, the file at least 1 MiB
poke() {
	python3 - "$1" <<'EOF'
import sys
f = sys.argv[1]
b = bytearray(open(f, 'rb').read())
b += bytes(max(0, (1 << 20) - len(b)))
b[510:512] = b'\x55\xaa'
open(f, 'wb').write(b)
EOF
}

# Hand-made headers, complete enough for qemu-img to open them.
python3 - <<'EOF'
import struct
M = 1 << 20
def put(b, off, data): b[off:off + len(data)] = data
def write(name, b):
    b[510:512] = b'\x55\xaa'
    open(name, 'wb').write(b)
b = bytearray(M)            # bochs: growing redolog v2, an empty catalog
put(b, 0, b"Bochs Virtual HD Image"); put(b, 32, b"Redolog"); put(b, 48, b"Growing")
put(b, 64, struct.pack('<IIIIIIQ', 0x20000, 512, 256, 1, 4096, 0, M))
put(b, 512, b'\xff' * 1024)
write('s.bochs', b)
b = bytearray(M)            # cloop: the V2.0 preamble, one block
put(b, 0, b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n")
put(b, 128, struct.pack('>IIQQ', 4096, 1, 152, 252))
write('s.cloop', b)
for name, at in (('s.dmg', M - 512), ('s-early.dmg', M - 1000)):
    b = bytearray(M)        # dmg: a "koly" trailer and an empty plist
    put(b, 1024, b"<plist></plist>")
    put(b, at, b"koly" + struct.pack('>II', 4, 512))
    put(b, at + 0xd8, struct.pack('>QQ', 1024, 15))
    write(name, b)
# LUKS1 with the field values qemu-img create -f luks writes (aes-xts-plain64,
# sha256, slot 0 active, the others at QEMU's offsets, payload at sector
# 4040), made here: qemu-img's own create benchmarks PBKDF2 against the CPU
# clock, which fails on some machines ("Unable to get accurate CPU usage").
b = bytearray(4040 * 512 + M)
put(b, 0, b"LUKS\xba\xbe\x00\x01"); put(b, 8, b"aes"); put(b, 40, b"xts-plain64")
put(b, 72, b"sha256"); put(b, 104, struct.pack('>II', 4040, 64))
put(b, 112, bytes(range(1, 53))); put(b, 164, struct.pack('>I', 1000))
put(b, 168, b"5d94408a-46a9-4c4f-9a91-19ac1f971375")
for i in range(8):
    put(b, 208 + 48 * i, struct.pack('>II', 0xac71f3 if i == 0 else 0xdead, 1000 if i == 0 else 0))
    put(b, 208 + 48 * i + 40, struct.pack('>II', 8 + 504 * i, 4000))
write('s.luks', b)
b = bytearray(M)            # LUKS2: QEMU 7.2 reads LUKS1 only, but it is a header
put(b, 0, b"LUKS\xba\xbe\x00\x02")
write('s.luks2', b)
EOF

qemu-img create -q -f qcow s.qcow 1M
qemu-img create -q -f qed s.qed 1M
qemu-img create -q -f vdi s.vdi 1M
qemu-img create -q -f parallels s.parallels 1M
cp s.parallels s.parallels-ext # the extended magic
printf 'WithouFreSpacExt' | dd of=s.parallels-ext conv=notrunc status=none
for f in s.qcow s.qed s.vdi s.parallels s.parallels-ext; do poke $f; done

# Formats p2v does not read: qemu-img's probe names them; p2v refuses in
# one line naming the same format, and convert leaves no output behind.
for case in bochs:s.bochs cloop:s.cloop dmg:s.dmg dmg:s-early.dmg luks:s.luks luks:s.luks2 \
	    parallels:s.parallels parallels:s.parallels-ext qcow:s.qcow qed:s.qed vdi:s.vdi; do
	fmt=${case%%:*} f=${case#*:}
	[ "$(head -c 512 $f | tail -c 2 | od -An -tx1 | tr -d ' \n')" = 55aa ] || fail "$f: no 55 AA at 510"
	if [ $f != s.luks2 ]; then # QEMU 7.2 does not know LUKS2 (it says raw)
		q=$(qemu-img info --output=json $f 2>/dev/null | jq -r .format) || true
		[ "$q" = "$fmt" ] || fail "$f: qemu-img info says '$q', expected $fmt"
	fi
	rc=0; out=$("$P2V" info $f 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "$f: p2v info accepted it: $out"
	[ "$(echo "$out" | wc -l)" -eq 1 ] || fail "$f: not one line: $out"
	[ "$out" = "p2v: $f: this is a $fmt image, which p2v does not read" ] ||
		fail "$f: p2v info said: $out"
	rc=0; out=$("$P2V" convert -O raw $f out.raw 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "$f: p2v convert accepted it"
	[ "$out" = "p2v: $f: this is a $fmt image, which p2v does not read" ] ||
		fail "$f: p2v convert said: $out"
	[ -z "$(ls -A | grep -e '^out' -e p2v-tmp)" ] || fail "$f: convert left $(ls -A | grep -e '^out' -e p2v-tmp)"
	echo "ok: $f: qemu-img and p2v both say $fmt"
done

# Formats p2v reads, 55 AA at 510 all the same: the format, not raw.
qemu-img create -q -f qcow2 r.qcow2 1M
qemu-img create -q -f vhdx r.vhdx 1M
qemu-img create -q -f vmdk r.vmdk 1M
qemu-img create -q -f vmdk -o subformat=monolithicFlat r-desc.vmdk 1M
for f in r.qcow2 r.vhdx r.vmdk r-desc.vmdk; do
	poke $f
	q=$(qemu-img info --output=json $f | jq -r .format)
	p=$("$P2V" info --json $f | jq -r .format)
	[ "$q" = "$p" ] && [ "$p" != raw ] || fail "$f: qemu-img says $q, p2v says $p"
	echo "ok: $f: both say $p"
done
# A descriptor as QEMU's probe reads it (comments and blank lines, then
# "version="), without "# Disk DescriptorFile": vmdk, never raw.
printf '# made by hand\n   \nversion=1\n' > t.vmdk
poke t.vmdk
rc=0; out=$("$P2V" info --json t.vmdk 2>&1) || rc=$?
if [ $rc -eq 0 ]; then
	[ "$(echo "$out" | jq -r .format)" = vmdk ] || fail "t.vmdk: $out"
else
	! echo "$out" | grep -q "as raw" || fail "t.vmdk read as raw: $out"
fi
echo "ok: a VMDK descriptor without its first line: not raw ($(echo "$out" | tail -n 1))"

# No signature at all: read-only commands read it as raw with a note;
# writable opens want -f raw.
head -c 1M /dev/zero > none.img
poke none.img
cp none.img blank.img && truncate -s 0 blank.img && truncate -s 1M blank.img
for f in none.img blank.img; do
	out=$("$P2V" info --json $f 2>err.txt) || fail "$f: info refused: $(cat err.txt)"
	[ "$(echo "$out" | jq -r .format)" = raw ] || fail "$f: info: $out"
	[ "$(cat err.txt)" = "p2v: warning: $f has no image signature; reading it as raw (give -f raw to say so)" ] ||
		fail "$f: info's note: $(cat err.txt)"
	"$P2V" info -f raw $f >/dev/null 2>err.txt && [ ! -s err.txt ] || fail "$f: -f raw: $(cat err.txt)"
	"$P2V" convert -O qcow2 $f out.qcow2 2>err.txt || fail "$f: convert refused: $(cat err.txt)"
	grep -q "has no image signature; reading it as raw" err.txt || fail "$f: convert's note: $(cat err.txt)"
	qemu-img compare -f raw -F qcow2 $f out.qcow2 >/dev/null || fail "$f: converted content differs"
	rm -f out.qcow2
	rc=0; out=$("$P2V" resize $f 2M 2>&1) || rc=$?
	[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q -- "-f raw" ||
		fail "$f: writable open without -f raw: rc=$rc $out"
	[ "$(stat -c %s $f)" -eq $((1 << 20)) ] || fail "$f: resized anyway"
	"$P2V" resize -f raw $f 2M >/dev/null || fail "$f: resize -f raw"
	[ "$(stat -c %s $f)" -eq $((2 << 20)) ] || fail "$f: resize -f raw did not resize"
	echo "ok: $f: raw with the note, writes need -f raw"
done
echo "cli_probe: all passed"
