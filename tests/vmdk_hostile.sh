#!/bin/bash
# Hostile VMDK input: every broken field is refused with a one-line error
# naming it, a non-zero exit and no sanitizer report.
. "$(dirname "$0")/lib.sh"
need qemu-img python3
cd "$TMP"

# poke FILE OFFSET STRUCT-FORMAT VALUE...: little-endian patch in place.
poke() {
	python3 - "$@" <<'PY'
import struct, sys
path, off, fmt = sys.argv[1], int(sys.argv[2], 0), sys.argv[3]
vals = [int(v, 0) for v in sys.argv[4:]]
with open(path, 'r+b') as f:
    f.seek(off); f.write(struct.pack(fmt, *vals))
PY
}
# peek FILE OFFSET STRUCT-FORMAT: print the value.
peek() {
	python3 -c 'import struct,sys; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2],0)); fmt=sys.argv[3]; print(struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0])' "$@"
}
# refused WHAT PATTERN FILE: converting FILE to raw fails with PATTERN in the message.
refused() {
	local what=$1 pattern=$2 file=$3 out
	out=$(expect_fail "$what" "$P2V" convert -O raw "$file" out.raw)
	echo "$out"
	echo "$out" | grep -q -- "$pattern" || fail "$what: message lacks '$pattern'"
	[ ! -e out.raw ] || fail "$what: left out.raw behind"
}
# variant NAME: a fresh copy of the good sparse image.
variant() { cp sparse.vmdk "$1"; }

truncate -s 40M src.raw
dd if=/dev/urandom of=src.raw bs=64k seek=3 count=4 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=64k seek=600 count=2 conv=notrunc status=none
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse src.raw sparse.vmdk
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw qstream.vmdk
"$P2V" convert -f raw -O vmdk -o subformat=streamOptimized src.raw stream.vmdk
gd=$(peek sparse.vmdk 56 '<Q')

variant v.vmdk; poke v.vmdk 20 '<Q' 3
refused "grain size not a power of two" "grainSize 3" v.vmdk
variant v.vmdk; poke v.vmdk 20 '<Q' 0x100000
refused "absurd grain size" "grainSize" v.vmdk
variant v.vmdk; poke v.vmdk 44 '<I' 4096
refused "numGTEsPerGT not 512" "numGTEsPerGT 4096" v.vmdk
variant v.vmdk; poke v.vmdk 12 '<Q' 0xffffffffffffff
refused "absurd capacity" "capacity" v.vmdk
variant v.vmdk; poke v.vmdk 56 '<Q' 0x7fffffffffff
refused "gdOffset outside the file" "gdOffset" v.vmdk
variant v.vmdk; poke v.vmdk 48 '<Q' 0x7fffffffffff
refused "rgdOffset outside the file" "rgdOffset" v.vmdk
variant v.vmdk; poke v.vmdk 28 '<Q' 0x7fffffffffff
refused "descriptor outside the file" "descriptorOffset" v.vmdk
variant v.vmdk; poke v.vmdk 4 '<I' 77
refused "unknown version" "version 77" v.vmdk
variant v.vmdk; poke v.vmdk $((gd * 512)) '<I' 0xfffffff0
refused "grain directory entry past the end" "grain directory entry 0" v.vmdk
variant v.vmdk; poke v.vmdk $((gd * 512 + 4)) '<I' "$(peek sparse.vmdk $((gd * 512)) '<I')"
refused "grain table loop (two GD entries, one table)" "overlap" v.vmdk
variant v.vmdk; poke v.vmdk $((gd * 512 + 4)) '<I' "$(( $(peek sparse.vmdk $((gd * 512)) '<I') + 1 ))"
refused "overlapping grain tables" "overlap" v.vmdk
gt0=$(peek sparse.vmdk $((gd * 512)) '<I')
variant v.vmdk; poke v.vmdk $((gt0 * 512 + 3 * 4)) '<I' 0xfffffff0
refused "grain table entry past the end" "past the end" v.vmdk
# Two grains sharing one sector read fine but are a corruption for check.
variant v.vmdk; poke v.vmdk $((gt0 * 512 + 4 * 4)) '<I' "$(peek sparse.vmdk $((gt0 * 512 + 3 * 4)) '<I')"
rc=0; out=$("$P2V" check v.vmdk 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "check of shared grains: rc=$rc (qemu-img's 2 for a corruption): $out"
echo "$out" | grep -q "used by two grains" || fail "check of shared grains: $out"
"$P2V" check sparse.vmdk >/dev/null || fail "check of a good image"
variant v.vmdk; printf 'RW 99999999999999999999999 SPARSE "v.vmdk"\n\0' | dd of=v.vmdk bs=1 seek=512 conv=notrunc status=none
refused "extent sectors overflow" "extent sectors" v.vmdk

# streamOptimized: compressed grain running past EOF, bad markers.
grain=$(python3 - stream.vmdk <<'PY'
import struct,sys
f=open(sys.argv[1],'rb').read()
gd=struct.unpack_from('<Q',f,len(f)-1024+56)[0]
gts=[g for g in struct.unpack_from('<2I',f,gd*512) if g]
print(max(max(struct.unpack_from('<512I',f,g*512)) for g in gts))  # the last grain
PY
)
cp stream.vmdk s.vmdk; poke s.vmdk $((grain * 512 + 8)) '<I' 0x20000
refused "compressed grain past EOF" "runs past the end" s.vmdk
cp stream.vmdk s.vmdk; poke s.vmdk $((grain * 512 + 8)) '<I' 0x7fffffff
refused "absurd compressed grain size" "size 2147483647" s.vmdk
cp stream.vmdk s.vmdk; poke s.vmdk $((grain * 512)) '<Q' 12345
refused "grain marker with the wrong lba" "lba 12345" s.vmdk
cp stream.vmdk s.vmdk; poke s.vmdk $((grain * 512 + 12)) '<I' 0x12345678
refused "corrupt zlib stream" "corrupt compressed data" s.vmdk
len=$(stat -c %s stream.vmdk)
cp stream.vmdk s.vmdk; poke s.vmdk $((len - 1536 + 8)) '<I' 77
refused "footer marker with a size" "marker at sector" s.vmdk
cp stream.vmdk s.vmdk; poke s.vmdk $((len - 512 + 12)) '<I' 2
refused "end-of-stream marker of the wrong type" "type 2" s.vmdk
cp stream.vmdk s.vmdk; poke s.vmdk $((len - 1024 + 56)) '<Q' 0xffffffffffffffff
refused "footer gdOffset GD_AT_END again" "GD_AT_END" s.vmdk
cp stream.vmdk s.vmdk; poke s.vmdk $((len - 1024 + 56)) '<Q' 3
refused "footer gdOffset not after a GD marker" "marker" s.vmdk
cp stream.vmdk s.vmdk; poke s.vmdk $((len - 1024 + 77)) '<H' 9
refused "unknown compression algorithm" "compressAlgorithm 9" s.vmdk
truncate -s 1000 s.vmdk
refused "truncated stream" "footer\|outside\|short" s.vmdk
# qemu's stream layout (GD at the front) with a grain marker size past EOF.
qgrain=$(python3 - qstream.vmdk <<'PY'
import struct,sys
f=open(sys.argv[1],'rb').read()
gd=struct.unpack_from('<Q',f,56)[0]
gts=[g for g in struct.unpack_from('<2I',f,gd*512) if g]
print(max(max(struct.unpack_from('<512I',f,g*512)) for g in gts))  # the last grain
PY
)
cp qstream.vmdk s.vmdk; poke s.vmdk $((qgrain * 512 + 8)) '<I' 0x1f000
refused "qemu stream: compressed grain past EOF" "runs past the end" s.vmdk

# Text descriptors: extents outside the directory, absurd sizes, too many.
mkdir -p d/inner
head -c 1M /dev/zero > d/flat.bin
desc() { printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n\n# Extent description\n%s\n' "$1" > d/inner/x.vmdk; }
desc 'RW 2048 FLAT "/etc/passwd" 0'
refused "absolute extent path" "absolute path" d/inner/x.vmdk
desc 'RW 2048 FLAT "../flat.bin" 0'
refused "extent path leaving the directory" "leaves the descriptor's directory" d/inner/x.vmdk
desc 'RW 2048 FLAT "a/../../flat.bin" 0'
refused "extent path leaving the directory via a/../.." "leaves the descriptor's directory" d/inner/x.vmdk
cp d/flat.bin d/inner/flat.bin
desc 'RW 4096 FLAT "flat.bin" 0'
refused "flat extent larger than its file" "needs" d/inner/x.vmdk
desc 'RW 2048 FLAT "flat.bin" 18446744073709551615'
refused "flat extent offset overflow" "extent offset" d/inner/x.vmdk
desc 'RW 2048 FLAT "missing.bin" 0'
refused "missing extent file" "missing.bin" d/inner/x.vmdk
desc 'RW 18446744073709551616 FLAT "flat.bin" 0'
refused "extent sectors overflow (text)" "extent sectors" d/inner/x.vmdk
desc "$(for i in $(seq 1 1001); do echo 'RW 1 FLAT "flat.bin" 0'; done)"
refused "more extents than the limit" "more than 1000 extents" d/inner/x.vmdk
desc "$(printf 'RW 1099511627776 FLAT "flat.bin" 0\nRW 1099511627776 FLAT "flat.bin" 0')"
refused "extent sizes adding up past the limit" "add up" d/inner/x.vmdk
desc 'RW 2048 SESPARSE "flat.bin"'
refused "unsupported extent type" "SESPARSE" d/inner/x.vmdk
cp sparse.vmdk d/inner/s.vmdk
desc 'RW 99999999 SPARSE "s.vmdk"'
refused "sparse extent larger than its capacity" "capacity" d/inner/x.vmdk
head -c 2000000 /dev/zero | tr '\0' 'x' > d/inner/x.vmdk
sed -i '1s/^/# Disk DescriptorFile\n/' d/inner/x.vmdk
refused "descriptor longer than 1 MiB" "exceeds" d/inner/x.vmdk
echo "all hostile inputs refused"
