#!/bin/bash
# In-place changes interrupted at each of their writes (an LD_PRELOAD shim
# ends p2v before its Nth write, ftruncate or fallocate): qemu-img check must
# find no corruption (leaked clusters are allowed) and the disk must read as
# before the change or as after it.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io jq
SHIM=$P2V_BUILD/tests/libcrash_preload.so
[ -f "$SHIM" ] || fail "$SHIM is not built"
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
cd "$TMP"
M=$((1 << 20))

# qcow2's dirty bit (incompatible feature bit 0, byte 79 of the header)
dirty() { [ "$2" = qcow2 ] && (( $(od -An -tu1 -j79 -N1 "$1") & 1 )); }

# consistent IMG FMT: no corruption, and the content of before.raw or after.raw.
# A qcow2 left with its dirty bit set ("refcounts may be stale") is what
# QEMU repairs when it opens it for writing: qemu-img check -r all must.
consistent() {
	local rc=0
	if dirty "$1" "$2"; then
		qemu-img check -q -r all -f "$2" "$1" >/dev/null 2>&1 || return 1
		dirtied=$((dirtied + 1))
	fi
	qemu-img check -q -f "$2" "$1" >/dev/null 2>&1 || rc=$?
	[ $rc = 0 ] || [ $rc = 3 ] || { [ $rc = 63 ] && [ "$2" != qcow2 ]; } || # 63: no checks (vpc)
		{ qemu-img check -f "$2" "$1" | head -5; return 1; }
	qemu-img compare -q -f raw -F "$2" before.raw "$1" 2>/dev/null ||
		qemu-img compare -q -f raw -F "$2" after.raw "$1" 2>/dev/null
}

# crash_each WHAT IMG FMT P2V-ARGS...: IMG.orig is the image before
crash_each() {
	local what=$1 img=$2 fmt=$3 n=1 rc
	shift 3
	dirtied=0
	while :; do
		cp "$img.orig" "$img"
		rc=0; P2V_CRASH_AFTER=$n LD_PRELOAD=$SHIM "$P2V" "$@" >/dev/null 2>&1 || rc=$?
		consistent "$img" "$fmt" || fail "$what: inconsistent after an interruption before change $n (exit $rc)"
		[ $rc = 0 ] && break
		[ $rc = 99 ] || fail "$what: exit $rc with a crash at change $n"
		n=$((n + 1))
	done
	[ $n -gt 2 ] || fail "$what: the shim stopped nothing ($n)"
	dirty "$img" "$fmt" && fail "$what: the dirty bit stays set after the change"
	echo "ok: $what: consistent after an interruption before each of its $((n - 1)) changes ($dirtied with the dirty bit)"
}

qemu-img create -q -f qcow2 -o cluster_size=4k a.qcow2 64M
qemu-io -f qcow2 -c "write -P 1 0 3M" -c "write -P 2 60M 1M" a.qcow2 >/dev/null
qemu-img convert -O raw a.qcow2 before.raw
cp a.qcow2 a.qcow2.orig

cp before.raw after.raw && truncate -s 3G after.raw
crash_each "qcow2 grow (the L1 table moves)" a.qcow2 qcow2 resize a.qcow2 3G
cp before.raw after.raw && truncate -s 30M after.raw
crash_each "qcow2 shrink" a.qcow2 qcow2 resize --shrink a.qcow2 30M

cp before.raw after.raw
crash_each "qcow2 snapshot -c" a.qcow2 qcow2 snapshot -c s1 a.qcow2 # a.qcow2 has s1 now
qemu-io -f qcow2 -c "write -P 3 0 2M" a.qcow2 >/dev/null
qemu-img convert -O raw a.qcow2 before.raw
cp a.qcow2 a.qcow2.orig
qemu-img snapshot -a s1 a.qcow2 && qemu-img convert -O raw a.qcow2 after.raw
crash_each "qcow2 snapshot -a" a.qcow2 qcow2 snapshot -a s1 a.qcow2
cp before.raw after.raw
crash_each "qcow2 snapshot -d" a.qcow2 qcow2 snapshot -d s1 a.qcow2

# amend: a downgrade writes the zero clusters out, then switches the header
qemu-img create -q -f qcow2 -o cluster_size=4k am.qcow2 16M
qemu-io -f qcow2 -c "write -P 1 0 1M" -c "write -z 64k 64k" -c "write -z 8M 32k" am.qcow2 >/dev/null
qemu-img convert -O raw am.qcow2 before.raw
cp before.raw after.raw
cp am.qcow2 am.qcow2.orig
crash_each "qcow2 amend compat=0.10" am.qcow2 qcow2 amend -o compat=0.10 am.qcow2
compat() { qemu-img info --output=json "$1" | jq -r '."format-specific".data.compat'; }
[ "$(compat am.qcow2)" = 0.10 ] || fail "amend compat=0.10: compat $(compat am.qcow2)"
cp am.qcow2 am.qcow2.orig
truncate -s 40M after.raw
crash_each "qcow2 amend compat=1.1,lazy_refcounts=on,size=40M" am.qcow2 qcow2 amend -o compat=1.1,lazy_refcounts=on,size=40M am.qcow2
[ "$(compat am.qcow2)" = 1.1 ] || fail "amend compat=1.1: compat $(compat am.qcow2)"
cp am.qcow2 am.qcow2.orig
crash_each "qcow2 amend refcount_bits=4" am.qcow2 qcow2 amend -o refcount_bits=4 am.qcow2
qemu-img info --output=json am.qcow2 | jq -e '."format-specific".data."refcount-bits" == 4' >/dev/null ||
	fail "amend refcount_bits=4: not 4 bits"

"$P2V" convert -f raw -O vpc before.raw v.vhd
qemu-img convert -f vpc -O raw v.vhd before.raw
cp v.vhd v.vhd.orig
cp before.raw after.raw && truncate -s 1G after.raw
crash_each "vpc grow (the BAT moves)" v.vhd vpc resize v.vhd 1G
"$P2V" convert -f raw -O vhdx before.raw x.vhdx
cp x.vhdx x.vhdx.orig
crash_each "vhdx grow" x.vhdx vhdx resize x.vhdx 1G

# ---- rebase and commit (qcow2 chains): interrupted before each write, the
# top names the old backing file or the new one and reads as before (safe
# rebase, commit) or as with the one it names (rebase -u); commit resets
# both files each time.
bfile() { qemu-img info --output=json "$1" | jq -r '."backing-filename" // "none"'; }
qemu-img create -q -f qcow2 cb.qcow2 16M
qemu-io -f qcow2 -c "write -P 1 0 2M" -c "write -P 2 8M 1M" cb.qcow2 >/dev/null
qemu-img create -q -f qcow2 -o cluster_size=4k -b cb.qcow2 -F qcow2 cm.qcow2
qemu-io -f qcow2 -c "write -P 3 1M 2M" -c "write -z 8M 64k" cm.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b cm.qcow2 -F qcow2 ct.qcow2
qemu-io -f qcow2 -c "write -P 4 512k 64k" ct.qcow2 >/dev/null
qemu-img convert -O raw ct.qcow2 before.raw
cp cb.qcow2 cb.qcow2.orig; cp cm.qcow2 cm.qcow2.orig; cp ct.qcow2 ct.qcow2.orig
for spec in "safe:cb.qcow2" "safe:none" "unsafe:cb.qcow2" "commit:" "commit-d:"; do
	mode=${spec%%:*} new=${spec#*:} n=1
	while :; do
		cp cb.qcow2.orig cb.qcow2; cp cm.qcow2.orig cm.qcow2; cp ct.qcow2.orig ct.qcow2
		case $mode in
		safe) args=(rebase -b "${new/none/}" ct.qcow2) ;;
		unsafe) args=(rebase -u -b "$new" -F qcow2 ct.qcow2) ;;
		commit) args=(commit ct.qcow2) ;;
		commit-d) args=(commit -d ct.qcow2) ;;
		esac
		rc=0; P2V_CRASH_AFTER=$n LD_PRELOAD=$SHIM "$P2V" "${args[@]}" >/dev/null 2>&1 || rc=$?
		name=$(bfile ct.qcow2)
		[ "$name" = cm.qcow2 ] || [ "$name" = "${new:-cm.qcow2}" ] ||
			fail "$mode $new: names '$name' after an interruption before write $n"
		for f in ct.qcow2 cm.qcow2; do
			rc2=0; qemu-img check -q $f >/dev/null 2>&1 || rc2=$?
			[ $rc2 = 0 ] || [ $rc2 = 3 ] || fail "$mode $new: $f corrupt after an interruption before write $n"
		done
		if [ $mode = unsafe ] && [ "$name" = cb.qcow2 ]; then
			qemu-img compare -q ct.qcow2 cb.qcow2 >/dev/null 2>&1 || true # content follows the name
		else
			qemu-img compare -q -f raw before.raw ct.qcow2 ||
				fail "$mode $new: content changed after an interruption before write $n (exit $rc)"
		fi
		[ $rc = 0 ] && break
		[ $rc = 99 ] || fail "$mode $new: exit $rc with a crash at write $n"
		n=$((n + 1))
	done
	[ $n -gt 2 ] || fail "$mode $new: the shim stopped nothing ($n)"
	echo "ok: ${args[*]}: consistent after an interruption before each of its $((n - 1)) writes"
done
