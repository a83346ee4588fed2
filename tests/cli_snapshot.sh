#!/bin/bash
# p2v snapshot -l/-c/-a/-d on qcow2 internal snapshots, with qemu-img as the
# reference: it lists what p2v creates (and p2v lists as it does, text and
# qemu-img info's JSON), applies it, and finds every image clean (qemu-img
# check) after each step; p2v applies qemu-img's snapshots; the disk reads
# as it was when each snapshot was taken.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io jq
cd "$TMP"
export TZ=UTC
M=$((1 << 20))
check() { qemu-img check -q "$1" || fail "$2: qemu-img check"; }
same() { qemu-img compare -q -f raw -F qcow2 "$1" "$2" || fail "$3: content differs"; }

for variant in plain compressed v2; do
	rm -f a.qcow2
	case $variant in
	plain) qemu-img create -q -f qcow2 -o cluster_size=64k a.qcow2 32M
		qemu-io -f qcow2 -c "write -P 1 0 3M" -c "write -P 1 20M 64k" a.qcow2 >/dev/null ;;
	compressed) head -c $((4 * M)) < <(yes "snapshot test") > c.raw
		"$P2V" convert -c -f raw -O qcow2 c.raw a.qcow2
		"$P2V" resize a.qcow2 32M >/dev/null ;;
	v2) qemu-img create -q -f qcow2 -o compat=0.10 a.qcow2 32M
		qemu-io -f qcow2 -c "write -P 1 0 3M" a.qcow2 >/dev/null ;;
	esac
	qemu-img convert -O raw a.qcow2 state1.raw
	"$P2V" snapshot -c s1 a.qcow2
	check a.qcow2 "$variant: after -c s1"
	[ "$(qemu-img snapshot -l a.qcow2 | awk 'NR == 3 { print $1, $2 }')" = "1 s1" ] || fail "$variant: qemu-img does not list s1"
	# the active disk changes by QEMU's hand and by p2v's; s1 keeps the old state
	qemu-io -f qcow2 -c "write -P 2 1M 2M" -c "write -z 20M 64k" a.qcow2 >/dev/null
	"$P2V" snapshot -c s2 a.qcow2
	qemu-img convert -O raw a.qcow2 state2.raw
	head -c $((2 * M)) < <(yes "p2v writes") > w.raw && truncate -s 32M w.raw
	"$P2V" convert -n -f raw -O qcow2 w.raw a.qcow2
	check a.qcow2 "$variant: p2v writing under two snapshots"
	qemu-img snapshot -c q3 a.qcow2 # one of QEMU's
	qemu-img convert -O raw a.qcow2 state3.raw
	diff <("$P2V" snapshot -l a.qcow2) <(qemu-img snapshot -l a.qcow2) || fail "$variant: -l differs from qemu-img's"
	diff <("$P2V" snapshot -l --output=json a.qcow2 | jq -cS .) <(qemu-img info --output=json a.qcow2 | jq -cS .snapshots) ||
		fail "$variant: -l --json differs from qemu-img info's snapshots"
	"$P2V" snapshot -a s1 a.qcow2
	check a.qcow2 "$variant: after -a s1"
	same state1.raw a.qcow2 "$variant: -a s1"
	qemu-img snapshot -a s2 a.qcow2 # QEMU applies p2v's snapshot
	same state2.raw a.qcow2 "$variant: qemu-img -a s2"
	"$P2V" snapshot -a q3 a.qcow2
	same state3.raw a.qcow2 "$variant: -a q3 (qemu-img's)"
	"$P2V" snapshot -d 1 a.qcow2 # by ID
	"$P2V" snapshot -d s2 a.qcow2
	check a.qcow2 "$variant: after deleting s1 and s2"
	same state3.raw a.qcow2 "$variant: active after the deletes"
	[ "$(qemu-img snapshot -l a.qcow2 | awk 'NR > 2 { print $2 }')" = q3 ] || fail "$variant: remaining snapshots: $(qemu-img snapshot -l a.qcow2)"
	"$P2V" snapshot -d q3 a.qcow2
	check a.qcow2 "$variant: no snapshots left"
	[ -z "$("$P2V" snapshot -l a.qcow2)" ] || fail "$variant: -l of an image without snapshots prints something"
	# with no snapshot left, writes go in place again (COPIED flags set back)
	before=$(stat -c %s a.qcow2)
	qemu-io -f qcow2 -c "write -P 5 0 1M" a.qcow2 >/dev/null
	[ "$(stat -c %s a.qcow2)" = "$before" ] || [ $variant = compressed ] || fail "$variant: a write after the deletes allocated new clusters"
	echo "ok: $variant: create, list, apply (p2v's and qemu-img's), delete; qemu-img check clean throughout"
done

"$P2V" snapshot -c dup a.qcow2
expect_fail "a name that exists" "$P2V" snapshot -c dup a.qcow2
expect_fail "-a of no such snapshot" "$P2V" snapshot -a nosuch a.qcow2
expect_fail "-d of no such snapshot" "$P2V" snapshot -d nosuch a.qcow2
expect_fail "-U with -c" "$P2V" snapshot -U -c x a.qcow2
expect_fail "two actions" "$P2V" snapshot -l -c x a.qcow2
expect_fail "a raw image" "$P2V" snapshot -f raw -c x state1.raw
qemu-io -f qcow2 a.qcow2 -c "sleep 5000" & held=$!
sleep 1
expect_fail "an image a VM holds" "$P2V" snapshot -c x a.qcow2
"$P2V" snapshot -U -l a.qcow2 | grep -q dup || fail "-U -l of an image a VM holds"
kill $held; wait $held 2>/dev/null || true
check a.qcow2 "after the refusals"
