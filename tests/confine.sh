#!/bin/bash
# Untrusted images reach no host file (issue 14): every file an image names
# (qcow2 backing file, VMDK parentFileNameHint and FLAT extents, VHD and VHDX
# parent locators) is opened beneath the naming image's directory, by the
# kernel (openat2 RESOLVE_BENEATH), unless --allow-backing DIR or
# --allow-symlinks widen the rule.  Each refusal is checked by its one-line
# message, by the output it did not write, and by strace: the outside file
# is never opened other than O_PATH.
source "$(dirname "$0")/lib.sh"
need qemu-img python3 strace timeout
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$TMP"
OUT=$TMP/outside
mkdir -p "$OUT"
head -c 1048576 /dev/urandom >"$OUT/secret.raw"

# refused NAME REGEX WATCHED -- p2v ARGS...: exit 2 within the time limit,
# one line matching REGEX, no out.raw written, WATCHED never opened for I/O.
refused() {
	local name=$1 re=$2 watched=$3 rc=0
	shift 4
	rm -f out.raw strace.log
	# LeakSanitizer cannot run under ptrace: leaks are checked by allowed()
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		timeout 60 strace -f -y -qq -o strace.log -e trace=openat,openat2,open "$P2V" "$@" >msg 2>&1 || rc=$?
	[ "$rc" -ne 124 ] || fail "$name: hung (timeout)"
	[ "$rc" -eq 2 ] || fail "$name: exit $rc, expected 2: $(cat msg)"
	[ "$(wc -l <msg)" -eq 1 ] || fail "$name: not one line: $(cat msg)"
	grep -Eq -- "$re" msg || fail "$name: message does not match /$re/: $(cat msg)"
	[ ! -e out.raw ] || fail "$name: a refused convert left out.raw"
	opened "$name" "$watched"
	echo "ok (refused): $name: $(cat msg)"
}
# opened NAME FILE: strace.log shows FILE opened only O_PATH (or not at all).
opened() {
	local bad
	bad=$(grep -F -- "$2" strace.log | grep -E "= [0-9]+<" | grep -v O_PATH || true)
	[ -z "$bad" ] || fail "$1: $2 was opened: $bad"
}
# allowed NAME EXPECTED -- p2v convert ARGS... (writing out.raw): exit 0 and
# out.raw reads as EXPECTED.
allowed() {
	local name=$1 want=$2
	shift 3
	rm -f out.raw
	timeout 60 "$P2V" "$@" >msg 2>&1 || fail "$name: $(cat msg)"
	cmp -n "$(stat -c %s "$want")" out.raw "$want" || fail "$name: content differs"
	echo "ok (allowed): $name"
}

# ---- qcow2 backing file: every kind of reference ----
Q=$TMP/q
mkdir -p "$Q"
qc() { qemu-img create -q -f qcow2 -u -b "$1" -F "${2:-raw}" "$Q/a.qcow2" 1M; }
head -c 1048576 /dev/urandom >"$Q/base.raw"
qc base.raw
allowed "qcow2 beside" "$Q/base.raw" -- convert -O raw "$Q/a.qcow2" out.raw
qc /etc/passwd
refused "qcow2 absolute /etc/passwd" \
	'a\.qcow2: backing file "/etc/passwd" is outside the image.s directory \(allow it with --allow-backing /etc\)' \
	/etc/passwd -- convert -O raw "$Q/a.qcow2" out.raw
strace -f -y -qq -o strace.log -e trace=openat,openat2,open env ASAN_OPTIONS=detect_leaks=0 \
	"$P2V" check "$Q/a.qcow2" >/dev/null || fail "check (which opens no backing file)"
opened "check" /etc/passwd
for cmd in "map" "compare -F raw" "info --backing-chain" "measure -O raw"; do
	args=("$Q/a.qcow2")
	[ "$cmd" != "compare -F raw" ] || args+=("$Q/base.raw")
	# shellcheck disable=SC2086
	refused "qcow2 /etc/passwd: $cmd" 'outside the image.s directory' /etc/passwd -- $cmd "${args[@]}"
done
qc "$OUT/secret.raw"
refused "qcow2 absolute outside" "--allow-backing $OUT\)" "$OUT/secret.raw" -- convert -O raw "$Q/a.qcow2" out.raw
allowed "qcow2 absolute under --allow-backing" "$OUT/secret.raw" -- \
	convert --allow-backing "$OUT" -O raw "$Q/a.qcow2" out.raw
qc ../outside/secret.raw
refused "qcow2 ../ outside" '"\.\./outside/secret\.raw" is outside .*--allow-backing '"$OUT" \
	"$OUT/secret.raw" -- convert -O raw "$Q/a.qcow2" out.raw
allowed "qcow2 ../ under --allow-backing" "$OUT/secret.raw" -- \
	convert --allow-backing "$OUT" -O raw "$Q/a.qcow2" out.raw
qc ../q/base.raw
allowed "qcow2 ../ back into its own directory" "$Q/base.raw" -- convert -O raw "$Q/a.qcow2" out.raw
ln -sf "$OUT/secret.raw" "$Q/link.raw"
qc link.raw
refused "qcow2 symlink beside pointing out" 'link\.raw" is a symbolic link .*--allow-symlinks' \
	"$OUT/secret.raw" -- convert -O raw "$Q/a.qcow2" out.raw
refused "qcow2 symlink out with --allow-symlinks" 'leads outside the image.s directory' \
	"$OUT/secret.raw" -- convert --allow-symlinks -O raw "$Q/a.qcow2" out.raw
ln -sf base.raw "$Q/inlink.raw"
qc inlink.raw
refused "qcow2 symlink inside, not allowed" 'allow it with --allow-symlinks' "$Q/base.raw" -- \
	convert -O raw "$Q/a.qcow2" out.raw
allowed "qcow2 symlink inside with --allow-symlinks" "$Q/base.raw" -- \
	convert --allow-symlinks -O raw "$Q/a.qcow2" out.raw
mkfifo "$Q/fifo"
qc fifo
refused "qcow2 FIFO" '"fifo" is a FIFO, not a regular file' "$Q/fifo" -- convert -O raw "$Q/a.qcow2" out.raw
qc /dev/zero
refused "qcow2 /dev/zero" 'outside the image.s directory' /dev/zero -- convert -O raw "$Q/a.qcow2" out.raw
refused "qcow2 /dev/zero under --allow-backing /dev" '"/dev/zero" is a character device, not a regular file' \
	/dev/zero -- convert --allow-backing /dev -O raw "$Q/a.qcow2" out.raw
qc /proc/self/root/etc/passwd
refused "qcow2 /proc/self/root" 'outside the image.s directory' /etc/passwd -- convert -O raw "$Q/a.qcow2" out.raw
refused "qcow2 /proc/self/root under --allow-backing /proc --allow-symlinks" 'magic link' /etc/passwd -- \
	convert --allow-backing /proc --allow-symlinks -O raw "$Q/a.qcow2" out.raw
blk=
for b in /dev/loop0 /dev/vda /dev/sda /dev/nvme0n1; do
	if [ -b "$b" ] && [ -r "$b" ] && head -c 512 "$b" >/dev/null 2>&1; then blk=$b; break; fi
done
if [ -n "$blk" ]; then
	qc "$blk"
	refused "qcow2 block device" 'outside the image.s directory' "$blk" -- convert -O raw "$Q/a.qcow2" out.raw
	refused "qcow2 block device under --allow-backing /dev" 'is a block device' "$blk" -- \
		map --allow-backing /dev "$Q/a.qcow2"
	"$P2V" map --allow-backing "$blk" "$Q/a.qcow2" >/dev/null 2>msg || true
	! grep -q "is a block device\|outside" msg || fail "block device named exactly: $(cat msg)"
	echo "ok (allowed): qcow2 block device named with --allow-backing $blk"
else
	echo "skipped: no readable block device for the block device case"
fi
# a loop a -> b -> a, reported once and in one line
qemu-img create -q -f qcow2 -u -b b.qcow2 -F qcow2 "$Q/a.qcow2" 1M
qemu-img create -q -f qcow2 -u -b a.qcow2 -F qcow2 "$Q/b.qcow2" 1M
refused "qcow2 loop" "^p2v: backing chain loops: $Q/a\.qcow2 -> $Q/b\.qcow2 -> $Q/a\.qcow2\$" /nonexistent -- \
	convert -O raw "$Q/a.qcow2" out.raw
refused "qcow2 loop: info" 'backing chain loops' /nonexistent -- info --backing-chain "$Q/a.qcow2"
qemu-img create -q -f qcow2 -u -b a.qcow2 -F qcow2 "$Q/a.qcow2" 1M
refused "qcow2 names itself" "backing chain loops: $Q/a\.qcow2 -> $Q/a\.qcow2" /nonexistent -- map "$Q/a.qcow2"

# ---- VMDK: parentFileNameHint and FLAT extents ----
V=$TMP/v
mkdir -p "$V"
qemu-img create -q -f vmdk "$V/base.vmdk" 1M
qemu-img create -q -f vmdk -b base.vmdk -F vmdk "$V/child.vmdk"
hint() { # rewrite the child's embedded parentFileNameHint
	python3 - "$V/child.vmdk" "$1" <<'EOF'
import sys
f, ref = sys.argv[1], sys.argv[2].encode()
b = bytearray(open(f, 'rb').read())
key = b'parentFileNameHint="'
i = b.index(key) + len(key)
j = b.index(b'"', i)
end = b.index(b'\0', j)
seg = bytes(b[j:end])
delta = len(ref) - (j - i)
if delta >= 0:
    assert not any(b[end:end + delta])
    b[i:end + delta] = ref + seg
else:
    b[i:end] = ref + seg + bytes(-delta)
open(f, 'wb').write(b)
EOF
}
qemu-img convert -f vmdk -O raw "$V/base.vmdk" "$V/base.raw"
allowed "vmdk parent beside" "$V/base.raw" -- convert -O raw "$V/child.vmdk" out.raw
cp "$V/base.vmdk" "$OUT/base.vmdk"
hint /etc/passwd
refused "vmdk parentFileNameHint /etc/passwd" 'child\.vmdk: backing file "/etc/passwd" is outside .*--allow-backing /etc\)' \
	/etc/passwd -- convert -O raw "$V/child.vmdk" out.raw
hint ../outside/base.vmdk
refused "vmdk parentFileNameHint ../" 'is outside the image.s directory' "$OUT/base.vmdk" -- \
	convert -O raw "$V/child.vmdk" out.raw
allowed "vmdk parentFileNameHint ../ under --allow-backing" "$V/base.raw" -- \
	convert --allow-backing "$OUT" -O raw "$V/child.vmdk" out.raw
ln -sf "$OUT/base.vmdk" "$V/plink.vmdk"
hint plink.vmdk
refused "vmdk parentFileNameHint symlink" 'is a symbolic link' "$OUT/base.vmdk" -- convert -O raw "$V/child.vmdk" out.raw
mkfifo "$V/pfifo"
hint pfifo
refused "vmdk parentFileNameHint FIFO" 'is a FIFO' "$V/pfifo" -- convert -O raw "$V/child.vmdk" out.raw
hint /proc/self/root/etc/passwd
refused "vmdk parentFileNameHint /proc/self/root" 'outside' /etc/passwd -- convert -O raw "$V/child.vmdk" out.raw
flat() { # a descriptor file with one FLAT extent of 1 sector named $1
	printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\n# Extent description\nRW 1 FLAT "%s" 0\n\nddb.virtualHWVersion = "4"\n' "$1" >"$V/flat.vmdk"
}
head -c 512 /dev/urandom >"$V/data.bin"
flat data.bin
allowed "vmdk FLAT extent beside" "$V/data.bin" -- convert -O raw "$V/flat.vmdk" out.raw
flat /etc/passwd
# (the descriptor parser refuses absolute extent names before confinement)
refused "vmdk FLAT extent /etc/passwd" 'flat\.vmdk: .*extent file.*/etc/passwd.* (is outside|absolute path)' \
	/etc/passwd -- convert -O raw "$V/flat.vmdk" out.raw
refused "vmdk FLAT extent /etc/passwd: info" 'outside|absolute' /etc/passwd -- info "$V/flat.vmdk"
flat ../outside/secret.raw
refused "vmdk FLAT extent ../" "leaves the descriptor's directory" "$OUT/secret.raw" -- \
	convert --allow-backing "$OUT" -O raw "$V/flat.vmdk" out.raw
ln -sf "$OUT/secret.raw" "$V/elink"
flat elink
refused "vmdk FLAT extent symlink" 'extent file "elink" is a symbolic link' "$OUT/secret.raw" -- \
	convert -O raw "$V/flat.vmdk" out.raw
refused "vmdk FLAT extent symlink, --allow-symlinks" 'leads outside' "$OUT/secret.raw" -- \
	convert --allow-symlinks -O raw "$V/flat.vmdk" out.raw
mkfifo "$V/efifo"
flat efifo
refused "vmdk FLAT extent FIFO" 'extent file "efifo" is a FIFO' "$V/efifo" -- convert -O raw "$V/flat.vmdk" out.raw
if mknod "$V/zero" c 1 5 2>/dev/null; then # /dev/zero's twin beside the descriptor
	flat zero
	refused "vmdk FLAT extent character device" 'extent file "zero" is a character device' "$V/zero" -- \
		convert -O raw "$V/flat.vmdk" out.raw
else
	ln -s /dev/zero "$V/zero"
	flat zero
	refused "vmdk FLAT extent symlink to /dev/zero" 'outside' /dev/zero -- \
		convert --allow-symlinks -O raw "$V/flat.vmdk" out.raw
fi

# ---- VHD differencing: parent locators ----
MK=$HERE/vhd_mkdiff.py
H=$TMP/h
mkdir -p "$H/m" "$H/r"
python3 "$MK" "$H/m" macx # MacX URL: an absolute path to $H/m/base/parent.vhd
mkdir -p "$H/c"
mv "$H/m/child.vhd" "$H/c/child.vhd" # now the parent lies outside the child's directory
refused "vhd MacX parent outside" "child\.vhd: backing file \"$H/m/base/parent\.vhd\" is outside .*--allow-backing $H/m/base\)" \
	"$H/m/base/parent.vhd" -- convert -O raw "$H/c/child.vhd" out.raw
allowed "vhd MacX parent under --allow-backing" "$H/m/expected-child.raw" -- \
	convert --allow-backing "$H/m" -O raw "$H/c/child.vhd" out.raw
python3 "$MK" "$H/r" plain # W2ru ".\parent.vhd" only
mv "$H/r/parent.vhd" "$OUT/parent.vhd"
ln -s "$OUT/parent.vhd" "$H/r/parent.vhd"
refused "vhd parent symlink" 'is a symbolic link' "$OUT/parent.vhd" -- convert -O raw "$H/r/child.vhd" out.raw
rm "$H/r/parent.vhd"
mkfifo "$H/r/parent.vhd"
refused "vhd parent FIFO" 'is a FIFO' "$H/r/parent.vhd" -- convert -O raw "$H/r/child.vhd" out.raw
rm "$H/r/parent.vhd"
python3 - "$H/r/child.vhd" <<'EOF'
import sys
f = sys.argv[1]
b = open(f, 'rb').read()
old, new = '.\\parent.vhd'.encode('utf-16-le'), '..\\outs\\p.vh'.encode('utf-16-le')
assert old in b and len(old) == len(new)
open(f, 'wb').write(b.replace(old, new))
EOF
mkdir -p "$H/outs" && cp "$OUT/parent.vhd" "$H/outs/p.vh"
refused "vhd W2ru ../ outside" '"\.\./outs/p\.vh" is outside' "$H/outs/p.vh" -- convert -O raw "$H/r/child.vhd" out.raw

# ---- VHDX differencing: parent locator ----
X=$TMP/x
mkdir -p "$X"
"$P2V_BUILD/tests/unit_vhdx" mkdiff "$X" >/dev/null || fail "unit_vhdx mkdiff"
allowed "vhdx parent beside" "$X/child.raw" -- convert -O raw "$X/child.vhdx" out.raw
mkdir -p "$X/c"
vx() { # the child in $X/c with $2 (default "parent.vhdx") in its locator replaced by $1, as long
	python3 - "$X/child.vhdx" "$X/c/child.vhdx" "$1" "${2:-parent.vhdx}" <<'EOF'
import sys
src, dst, ref, old = sys.argv[1:]
b = open(src, 'rb').read()
old, new = old.encode('utf-16-le'), ref.encode('utf-16-le')
assert old in b and len(old) == len(new), ref
open(dst, 'wb').write(b.replace(old, new))
EOF
}
vx /etc/./passwd '.\parent.vhdx' # the relative_path key
refused "vhdx parent /etc/passwd" 'child\.vhdx: backing file "/etc/\./passwd" is outside .*--allow-backing /etc\)' \
	/etc/passwd -- convert -O raw "$X/c/child.vhdx" out.raw
cp "$X/parent.vhdx" "$OUT/p.vhdx"
mkdir -p "$X/outs" && cp "$X/parent.vhdx" "$X/outs/p.vhd"
vx ../outs/p.vhd '.\parent.vhdx'
refused "vhdx parent ../" '"\.\./outs/p\.vhd" is outside the image.s directory' "$X/outs/p.vhd" -- \
	convert -O raw "$X/c/child.vhdx" out.raw
allowed "vhdx parent ../ under --allow-backing" "$X/child.raw" -- \
	convert --allow-backing "$X/outs" -O raw "$X/c/child.vhdx" out.raw
ln -sf "$OUT/p.vhdx" "$X/c/plinkk.vhdx"
vx plinkk.vhdx
refused "vhdx parent symlink" 'is a symbolic link' "$OUT/p.vhdx" -- convert -O raw "$X/c/child.vhdx" out.raw
mkfifo "$X/c/pfifoo.vhdx"
vx pfifoo.vhdx
refused "vhdx parent FIFO" 'is a FIFO' "$X/c/pfifoo.vhdx" -- convert -O raw "$X/c/child.vhdx" out.raw
cp "$X/parent.vhdx" "$X/c/pbeside.vhd"
vx pbeside.vhd
allowed "vhdx parent beside under another name" "$X/child.raw" -- convert -O raw "$X/c/child.vhdx" out.raw

# ---- a kernel without openat2 (strace makes every openat2 fail ENOSYS) ----
# The reference beside the image is refused then: never opened another way.
qc base.raw
rm -f out.raw
rc=0
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 timeout 60 strace -f -y -qq -o strace.log \
	-e trace=openat,openat2,open -e inject=openat2:error=ENOSYS \
	"$P2V" convert -O raw "$Q/a.qcow2" out.raw >msg 2>&1 || rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <msg)" -eq 1 ] || fail "no openat2: exit $rc: $(cat msg)"
grep -q 'is refused: this kernel has no openat2()' msg || fail "no openat2: $(cat msg)"
[ ! -e out.raw ] || fail "no openat2: out.raw written"
grep -q 'openat2(.*ENOSYS' strace.log || fail "no openat2: strace injected nothing"
opened "no openat2" "$Q/base.raw"
echo "ok (refused): no openat2: $(cat msg)"
echo "all confinement cases passed"
