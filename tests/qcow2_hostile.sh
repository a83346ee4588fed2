#!/bin/bash
# Hostile qcow2 headers and tables: each refused with a one-line error that
# names the field, a non-zero exit and no sanitizer report.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io python3 jq cmp
cd "$TMP"

qemu-img create -q -f qcow2 good.qcow2 4M
qemu-io -f qcow2 -c "write -P 0x11 0 128k" good.qcow2 >/dev/null
qemu-img convert -c -f qcow2 -O qcow2 good.qcow2 comp.qcow2
"$P2V" convert -O raw good.qcow2 ok.raw || fail "the good image must read"

# patch IN OUT OFFSET FORMAT VALUE: write a big-endian field
patch() {
	python3 - "$@" <<'PY'
import struct, sys
src, dst, off, fmt, val = sys.argv[1], sys.argv[2], int(sys.argv[3], 0), sys.argv[4], int(sys.argv[5], 0)
b = bytearray(open(src, 'rb').read())
struct.pack_into('>' + fmt, b, off, val)
open(dst, 'wb').write(b)
PY
}
# l2 OF: the first L2 entry's file offset
l1_off=$(python3 -c "import struct;print(struct.unpack('>Q',open('good.qcow2','rb').read()[40:48])[0])")
l2_off=$(python3 -c "import struct;b=open('good.qcow2','rb').read();print(struct.unpack('>Q',b[$l1_off:$l1_off+8])[0] & 0x00fffffffffffe00)")
cl2_off=$(python3 -c "import struct;b=open('comp.qcow2','rb').read();l1=struct.unpack('>Q',b[40:48])[0];print(struct.unpack('>Q',b[l1:l1+8])[0] & 0x00fffffffffffe00)")

refuse() { # refuse LABEL FILE PATTERN: open+read must fail naming PATTERN
	local out rc=0
	out=$("$P2V" convert --force -O raw "$2" bad.raw 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || fail "$1: accepted"
	[ "$rc" -lt 128 ] || fail "$1: crashed ($rc): $out"
	[ "$(echo "$out" | wc -l)" -eq 1 ] || fail "$1: not one line: $out"
	echo "$out" | grep -q "Sanitizer\|runtime error" && fail "$1: sanitizer: $out"
	echo "$out" | grep -qi -- "$3" || fail "$1: message does not name '$3': $out"
	[ ! -e bad.raw ] || fail "$1: left an output file"
	echo "ok (refused): $1: $out"
}

head -c 50 good.qcow2 > trunc.qcow2
refuse "truncated header" trunc.qcow2 "too short"
head -c 200000 good.qcow2 > trunc2.qcow2
refuse "truncated tables" trunc2.qcow2 "exceeds the file"
patch good.qcow2 v9.qcow2 4 I 9;                 refuse "version 9" v9.qcow2 "version 9"
patch good.qcow2 cb.qcow2 20 I 30;               refuse "cluster_bits 30" cb.qcow2 "cluster_bits"
patch good.qcow2 cb8.qcow2 20 I 8;               refuse "cluster_bits 8" cb8.qcow2 "cluster_bits"
patch good.qcow2 enc.qcow2 32 I 1;               refuse "encryption" enc.qcow2 "encrypt"
patch good.qcow2 l1big.qcow2 36 I 0x7fffffff;    refuse "L1 size huge" l1big.qcow2 "L1 table"
patch good.qcow2 l1small.qcow2 24 Q 0x100000000000; refuse "size beyond L1" l1small.qcow2 "L1 table"
patch good.qcow2 l1off.qcow2 40 Q 0x7fff0000;    refuse "L1 beyond file" l1off.qcow2 "L1 table"
patch good.qcow2 l1hdr.qcow2 40 Q 0;             refuse "L1 over the header" l1hdr.qcow2 "overlaps the header"
patch good.qcow2 l1mis.qcow2 40 Q 0x30001;       refuse "L1 misaligned" l1mis.qcow2 "not cluster-aligned"
patch good.qcow2 rt.qcow2 48 Q 0x7fff0000;       refuse "refcount table beyond file" rt.qcow2 "refcount table"
patch good.qcow2 rtc.qcow2 56 I 0x10000000;      refuse "refcount table clusters" rtc.qcow2 "refcount table"
patch good.qcow2 ro.qcow2 96 I 9;                refuse "refcount_order 9" ro.qcow2 "refcount_order"
# the dirty bit (stale refcounts) and the corrupt bit do not stop reading,
# as in QEMU (writing needs check -r first: unit_qcow2)
patch good.qcow2 dirty.qcow2 72 Q 1
patch good.qcow2 corrupt.qcow2 72 Q 2
for f in dirty corrupt; do
	"$P2V" convert -q -O raw $f.qcow2 $f.raw || fail "$f bit: not read"
	cmp ok.raw $f.raw || fail "$f bit: read differs"
	[ "$("$P2V" info --output=json $f.qcow2 | jq -c '[.["dirty-flag"], .["format-specific"].data.corrupt]')" = \
	  "$(qemu-img info --output=json $f.qcow2 | jq -c '[.["dirty-flag"], .["format-specific"].data.corrupt]')" ] ||
		fail "$f bit: info differs from qemu-img's"
done
patch good.qcow2 df.qcow2 72 Q 4;                refuse "external data file" df.qcow2 "external data"
patch good.qcow2 el2.qcow2 72 Q 16;              refuse "extended L2" el2.qcow2 "extended L2"
patch good.qcow2 unk.qcow2 72 Q 0x100;           refuse "unknown feature" unk.qcow2 "unknown incompatible feature bit 8"
patch good.qcow2 hl.qcow2 100 I 13;              refuse "header_length" hl.qcow2 "header_length"
patch good.qcow2 l2.qcow2 $l2_off Q 0x80000000fff00000; refuse "L2 entry past the end" l2.qcow2 "past the end"
patch comp.qcow2 c.qcow2 $cl2_off Q $(python3 -c "print(hex((1<<62) | (255 << 54) | 0x7ff000))")
refuse "compressed cluster past the end" c.qcow2 "compressed cluster"
patch good.qcow2 bn.qcow2 16 I 5000;             patch bn.qcow2 bn.qcow2 8 Q 0x200
refuse "backing name outside the header cluster" bn.qcow2 "backing file name"

# backing names that are not plain paths are refused before any open
for name in 'json:{"file.filename":"/etc/passwd"}' 'nbd://127.0.0.1/x' 'file:/etc/passwd'; do
	qemu-img create -q -f qcow2 -u -b "$name" -F raw evil.qcow2 1M 2>/dev/null ||
		python3 - "$name" <<'PY'
import struct, sys, subprocess
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "evil.qcow2", "1M"], check=True)
b = bytearray(open("evil.qcow2", "rb").read()); n = sys.argv[1].encode()
b[0x400:0x400 + len(n)] = n; struct.pack_into(">QI", b, 8, 0x400, len(n))
open("evil.qcow2", "wb").write(b)
PY
	refuse "backing '$name'" evil.qcow2 "not a plain path"
done
# The snapshot table (issue 14): absurd entries of an image with one
# snapshot refused at open naming the entry and the field.  qemu-img info
# refuses the same where QEMU 7.2 checks at open (nb_snapshots, extra data);
# the rest it opens, and qemu-img check finds them corrupt.
qemu-img create -q -f qcow2 snap.qcow2 4M
qemu-io -f qcow2 -c "write -P 0x22 0 64k" snap.qcow2 >/dev/null
qemu-img snapshot -c s1 snap.qcow2
st=$(python3 -c "import struct;print(struct.unpack('>Q',open('snap.qcow2','rb').read()[64:72])[0])")
"$P2V" info snap.qcow2 >/dev/null || fail "the image with a snapshot must open"
for c in "60 I 65537 nb_snapshots info" "60 I 2 nb_snapshots check" \
	 "$((st + 8)) I 0xFFFFFFFF l1_size check" "$((st + 8)) I 0x400001 l1_size check" \
	 "$((st + 12)) H 0xFFFF id_str_size check" "$((st + 14)) H 0xFFFF name_size check" \
	 "$((st + 36)) I 0xFFFFFFFF extra_data_size info" "$((st + 36)) I 1025 extra_data_size info" \
	 "$st Q 0x123 'L1 table offset' check"; do
	eval "set -- $c"
	patch snap.qcow2 sn.qcow2 $1 $2 $3
	if [ $5 = info ]; then
		! qemu-img info sn.qcow2 >/dev/null 2>&1 || fail "qemu-img info accepts $4 $3"
	else
		rc=0; qemu-img check sn.qcow2 >/dev/null 2>&1 || rc=$?
		[ $rc -ne 0 ] || fail "qemu-img check finds nothing wrong with $4 $3"
	fi
	[ $4 = nb_snapshots ] && [ $3 = 2 ] && want="entry 1" || want="entry 0: $4"
	[ $4 = nb_snapshots ] && [ $3 = 65537 ] && want="nb_snapshots 65537"
	refuse "snapshot $4 $3" sn.qcow2 "$want"
	out=$("$P2V" info sn.qcow2 2>&1) && fail "info opened $4 $3"
	echo "$out" | grep -q "$want" || fail "info: $out"
done
echo "ok: hostile qcow2 refused"
