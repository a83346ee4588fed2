#!/bin/bash
# p2v info / map / check / compare as a drop-in for qemu-img 7.2: the same
# jq expressions run on both tools' --output=json for the same files (images
# qemu-img wrote, images p2v wrote, a backing chain, split VMDK extents,
# leaked, corrupt and dirty qcow2), and check's and compare -s's exit codes
# are qemu-img's.  check -r repairs what qemu-img check then finds clean,
# without changing what the guest reads.
source "$(dirname "$0")/lib.sh"
need qemu-img qemu-io jq python3 cmp
cd "$TMP"

# q / p CMD FILE [ARGS...]: each tool's JSON (exit codes are checked apart)
q() { qemu-img "$1" --output=json "${@:3}" "$2" 2>/dev/null || true; }
# (the chain's sub/mid.qcow2 names ../q.qcow2, outside its own directory)
p() { "$P2V" "$1" --output=json --allow-backing "$TMP" "${@:3}" "$2" 2>/dev/null || true; }
same() { # same WHAT CMD FILE JQ [ARGS...]: both tools give the same value
	local what=$1 cmd=$2 file=$3 expr=$4 a b
	shift 4
	a=$(q "$cmd" "$file" "$@" | jq -S -c "$expr") || fail "$what: qemu-img $cmd: $(q "$cmd" "$file" "$@")"
	b=$(p "$cmd" "$file" "$@" | jq -S -c "$expr") || fail "$what: p2v $cmd: $(p "$cmd" "$file" "$@")"
	[ "$a" = "$b" ] || fail "$what: '$expr' is $b, qemu-img says $a"
}
# qemu-img's whole JSON is part of p2v's: every key it prints, p2v prints
# with the same value (p2v adds keys of its own only)
subdoc='def sub($a; $b): if ($a|type) == "object" then ($b|type) == "object" and
	all($a|keys[]; . as $k | ($b|has($k)) and sub($a[$k]; $b[$k]))
	elif ($a|type) == "array" then ($b|type) == "array" and ($a|length) == ($b|length) and
	all(range($a|length); sub($a[.]; $b[.]))
	else $a == $b end; sub($q; $p)'
part_of() { # part_of WHAT CMD FILE
	jq -n -e --argjson q "$(q "$2" "$3")" --argjson p "$(p "$2" "$3")" "$subdoc" >/dev/null ||
		fail "$1: qemu-img $2's JSON is not part of p2v's: $(q "$2" "$3" | jq -c .) vs $(p "$2" "$3" | jq -c .)"
}
# human output: every line qemu-img prints, p2v prints in the same order
# (p2v adds lines of its own only)
human_part_of() { # human_part_of WHAT CMD FILE
	local d
	d=$(diff <(qemu-img "$2" "$3" 2>&1) <("$P2V" "$2" --allow-backing "$TMP" "$3" 2>&1) | grep '^<' || true)
	[ -z "$d" ] || fail "$1: qemu-img $2 prints lines p2v does not: $d"
}
exit_codes() { # exit_codes WHAT EXPECTED ARGS...: p2v and qemu-img exit the same, as expected
	local what=$1 want=$2 qrc=0 prc=0
	shift 2
	qemu-img "$@" >/dev/null 2>&1 || qrc=$?
	"$P2V" "$@" >/dev/null 2>&1 || prc=$?
	[ "$qrc" = "$want" ] || fail "$what: qemu-img exits $qrc, the test expects $want"
	[ "$prc" = "$want" ] || fail "$what: p2v $* exits $prc, qemu-img $qrc"
}

INFO='{"virtual-size", format, "cluster-size", "dirty-flag", "backing-filename",
	"full-backing-filename", "backing-filename-format"} +
	(.["format-specific"].data // {} | {compat, "compression-type", "lazy-refcounts", "refcount-bits",
	corrupt, "create-type", cid, "parent-cid", extents})'
MAP='[.[] | {start, length, depth, present, zero, data, offset}]'
NOT_ZERO='[.[] | select(.zero == false) | .length] | add'
CHECK='{"check-errors", corruptions, leaks, "allocated-clusters", "total-clusters",
	"image-end-offset", "fragmented-clusters", "compressed-clusters", "leaks-fixed", "corruptions-fixed"}'

# a 24 MiB disk: data, text, holes, a tail that is not cluster-aligned
truncate -s $((24 * 1048576 + 4096)) src.raw
dd if=/dev/urandom of=src.raw bs=64k seek=3 count=20 conv=notrunc status=none
cat "$P2V_SRC"/imgfmt/*.c | head -c 3M | dd of=src.raw bs=1M seek=9 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=4k seek=$((24 * 256)) count=1 conv=notrunc status=none

# images qemu-img wrote, and images p2v wrote, of every format
qemu-img convert -f raw -O qcow2 src.raw q.qcow2
qemu-io -c "write -z 2M 256k" -c "write -z -u 4M 64k" q.qcow2 >/dev/null # zero clusters
qemu-img convert -f raw -O qcow2 -c src.raw qc.qcow2
qemu-img convert -f raw -O qcow2 -o compat=0.10 src.raw q2.qcow2
qemu-img convert -f raw -O vpc src.raw q.vhd
qemu-img convert -f raw -O vhdx src.raw q.vhdx
qemu-img convert -f raw -O vmdk src.raw q.vmdk
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw qs.vmdk
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse qsplit.vmdk 5G
"$P2V" convert -q -f raw -O qcow2 src.raw p.qcow2
"$P2V" convert -q -f raw -O qcow2 -c src.raw pc.qcow2
"$P2V" convert -q -f raw -O qcow2 -o compat=0.10 src.raw p2.qcow2
"$P2V" convert -q -f raw -O vpc src.raw p.vhd
"$P2V" convert -q -f raw -O vhdx src.raw p.vhdx
"$P2V" convert -q -f raw -O vmdk src.raw p.vmdk
"$P2V" convert -q -f raw -O vmdk -o subformat=streamOptimized src.raw ps.vmdk
# internal snapshots: taken by qemu-img and by p2v (copies without holes:
# qemu-img map calls a data cluster over a hole of the file zero as well)
cp --sparse=never q.qcow2 qsnap.qcow2 && qemu-img snapshot -c first qsnap.qcow2 && qemu-img snapshot -c second qsnap.qcow2
cp --sparse=never p.qcow2 psnap.qcow2 && "$P2V" snapshot -c first psnap.qcow2
# a chain: top -> mid (in a subdirectory) -> base, relative names
mkdir -p sub
qemu-img create -q -f qcow2 -b ../q.qcow2 -F qcow2 sub/mid.qcow2
qemu-io -c "write -P 0x11 1M 512k" -c "write -z 12M 64k" sub/mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b sub/mid.qcow2 -F qcow2 top.qcow2
qemu-io -c "write -P 0x22 3M 64k" -c "write -z -u 9M 64k" top.qcow2 >/dev/null

for f in q.qcow2 qc.qcow2 q2.qcow2 q.vhd q.vhdx q.vmdk qs.vmdk qsplit.vmdk qsnap.qcow2 \
	 p.qcow2 pc.qcow2 p2.qcow2 p.vhd p.vhdx p.vmdk ps.vmdk psnap.qcow2 top.qcow2 sub/mid.qcow2; do
	same "$f: info" info "$f" "$INFO"
	part_of "$f: info" info "$f"
	human_part_of "$f: info" info "$f"
	case $f in
	*.vhdx) ;; # qemu-img 7.2 maps a VHDX as data from end to end; p2v reads its BAT
	*) same "$f: map" map "$f" "$MAP"
	   same "$f: bytes not zero" map "$f" "$NOT_ZERO" ;;
	esac
	case $f in
	*.qcow2) same "$f: check" check "$f" "$CHECK"
		 exit_codes "$f: check" 0 check "$f"
		 human_part_of "$f: check" check "$f" ;;
	esac
	case $f in # qemu-img gives up on the human map of compressed clusters
	*.vhdx|qc.*|pc.*|qs.*|ps.*) ;;
	*) human_part_of "$f: map" map "$f" ;;
	esac
	echo "ok: $f"
done
same "chain: info --backing-chain" info top.qcow2 "[.[] | $INFO]" --backing-chain
[ "$("$P2V" map --allow-backing "$TMP" top.qcow2)" = "$(qemu-img map top.qcow2)" ] || fail "chain: human map differs"
[ "$("$P2V" info --output=json q.qcow2)" = "$("$P2V" info --json q.qcow2)" ] || fail "--output=json is not --json"

# check: what has no metadata, leaks, corruption, a dirty image
exit_codes "raw: check" 63 check -f raw src.raw
mkbad() { # mkbad IMAGE leak|corrupt: edit the first refcount block
	python3 - "$@" <<'PY'
import os, struct, sys
path, mode = sys.argv[1], sys.argv[2]
f = open(path, "r+b")
h = f.read(104)
cs = 1 << struct.unpack(">I", h[20:24])[0]
f.seek(struct.unpack(">Q", h[48:56])[0])
rb = struct.unpack(">Q", f.read(8))[0]
def setref(c, v):
    f.seek(rb + 2 * c)
    f.write(struct.pack(">H", v))
if mode == "leak":  # two clusters past the end: counted, used by nothing
    n = (os.path.getsize(path) + cs - 1) // cs
    setref(n, 1); setref(n + 1, 1)
    f.truncate((n + 2) * cs)
else:               # the first data cluster's refcount drops to 0
    f.seek(struct.unpack(">Q", h[40:48])[0])
    l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
    f.seek(l2 + 3 * 8)
    setref((struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00) // cs, 0)
PY
}
cp q.qcow2 leak.qcow2 && mkbad leak.qcow2 leak
cp q.qcow2 corrupt.qcow2 && mkbad corrupt.qcow2 corrupt
qemu-img create -q -f qcow2 -o lazy_refcounts=on dirty.qcow2 16M
(qemu-io -c "write -P 0x5a 0 1M" -c "abort" dirty.qcow2 || true) >/dev/null 2>&1 # dies dirty
same "dirty: info" info dirty.qcow2 '.["dirty-flag"]'
human_part_of "dirty: info" info dirty.qcow2
[ "$(p info dirty.qcow2 | jq '.["dirty-flag"]')" = true ] || fail "the dirty image is not dirty"
for f in leak corrupt dirty; do
	same "$f: check" check $f.qcow2 "$CHECK"
done
exit_codes "leaks" 3 check leak.qcow2
exit_codes "corruption" 2 check corrupt.qcow2
exit_codes "dirty" 2 check dirty.qcow2
out=$("$P2V" check leak.qcow2 2>&1 || true)
echo "$out" | grep -q "^2 leaked clusters were found on the image.$" || fail "leaks: human output: $out"

# check -r: p2v repairs, qemu-img finds the result clean, the guest reads the same
for f in leak corrupt dirty; do cp $f.qcow2 $f-r.qcow2; done
rc=0; "$P2V" check -r leaks corrupt-r.qcow2 >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "check -r leaks of a corruption: exit $rc, want 2 (not repaired)"
"$P2V" check -r leaks --output=json leak-r.qcow2 2>/dev/null | jq -e '.["leaks-fixed"] == 2 and (has("leaks") | not)' >/dev/null ||
	fail "check -r leaks: $("$P2V" check -r leaks --output=json leak.qcow2)"
for f in leak corrupt dirty; do
	[ $f = leak ] || "$P2V" check -r all $f-r.qcow2 >/dev/null 2>&1 || fail "$f: check -r all exits non-zero"
	qemu-img check $f-r.qcow2 >/dev/null || fail "$f: qemu-img check after p2v check -r: $(qemu-img check $f-r.qcow2 2>&1)"
	qemu-img compare -q $f.qcow2 $f-r.qcow2 || fail "$f: the repair changed the content"
done
same "dirty, repaired: info" info dirty-r.qcow2 '.["dirty-flag"]'
[ "$(p info dirty-r.qcow2 | jq '.["dirty-flag"]')" = false ] || fail "the repair left the dirty flag"
exit_codes "check -r on a format that cannot repair" 63 check -r all q.vmdk

# compare -s: size and allocation must match too
qemu-img create -q -f qcow2 big.qcow2 25M
exit_codes "compare -s, same file" 0 compare -s q.qcow2 q.qcow2
exit_codes "compare -s, sizes differ" 1 compare -s q.qcow2 big.qcow2
exit_codes "compare -s, allocation differs" 1 compare -s -F raw q.qcow2 src.raw
exit_codes "compare without -s, same content" 0 compare -F raw q.qcow2 src.raw
[ "$("$P2V" compare -s q.qcow2 big.qcow2)" = "$(qemu-img compare -s q.qcow2 big.qcow2)" ] ||
	fail "compare -s: the message differs"
[ "$("$P2V" compare -s -F raw q.qcow2 src.raw)" = "$(qemu-img compare -s -F raw q.qcow2 src.raw)" ] ||
	fail "compare -s: the first block status mismatch differs: $("$P2V" compare -s -F raw q.qcow2 src.raw)"
echo "qemu_compat: all passed"
