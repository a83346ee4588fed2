#!/bin/bash
# p2v rebase and p2v commit against qemu-img on qcow2 chains: a safe rebase
# keeps the guest-visible content (qemu-img compare with a raw copy taken
# before) and qemu-img info shows the new backing file; -u changes only the
# header, as qemu-img rebase -u does; commit leaves the backing file as
# qemu-img commit does on a copy of the same chain, and empties the top
# unless -d; qemu-img check is clean on every result.  Refused in one line,
# changing nothing (sha256 before and after): no backing file, a backing
# file outside the image's directory without --allow-backing, a format
# whose backing reference p2v cannot change.
. "$(dirname "$0")/lib.sh"
need qemu-img qemu-io jq sha256sum
cd "$TMP"
M=$((1 << 20))
bfile() { qemu-img info --output=json "$1" | jq -r '."backing-filename" // "none"'; }
bfmt() { qemu-img info --output=json "$1" | jq -r '."backing-filename-format" // "none"'; }
check() { qemu-img check -q "$1" || fail "$2: qemu-img check $1"; }
sums() { sha256sum "$@"; }

# base <- mid <- top, and another base b2 with other data
mkchain() {
	rm -f base.qcow2 mid.qcow2 top.qcow2 b2.qcow2
	qemu-img create -q -f qcow2 base.qcow2 64M
	qemu-io -f qcow2 -c "write -P 1 0 4M" -c "write -P 2 8M 1M" -c "write -P 9 60M 4M" base.qcow2 >/dev/null
	qemu-img create -q -f qcow2 -o cluster_size=4k -b base.qcow2 -F qcow2 mid.qcow2
	qemu-io -f qcow2 -c "write -P 3 1M 1M" -c "write -z 9M 64k" -c "write -P 3 10M 5k" mid.qcow2 >/dev/null
	qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 72M
	qemu-io -f qcow2 -c "write -P 4 3M 64k" -c "write -z 8M 64k" -c "write -P 4 66M 64k" top.qcow2 >/dev/null
	qemu-img create -q -f qcow2 b2.qcow2 32M
	qemu-io -f qcow2 -c "write -P 1 0 2M" -c "write -P 7 2M 2M" -c "write -P 3 1M 512k" b2.qcow2 >/dev/null
}

# ---- safe rebase: the content stays, the backing changes
for new in base.qcow2 b2.qcow2 ""; do
	mkchain
	qemu-img convert -O raw top.qcow2 before.raw
	"$P2V" rebase -b "$new" top.qcow2
	qemu-img compare -q -f raw -F qcow2 before.raw top.qcow2 || fail "rebase -b '$new': content changed"
	check top.qcow2 "rebase -b '$new'"
	[ "$(bfile top.qcow2)" = "${new:-none}" ] || fail "rebase -b '$new': qemu-img info shows $(bfile top.qcow2)"
	[ "$(bfmt top.qcow2)" = "$([ -n "$new" ] && echo qcow2 || echo none)" ] || fail "rebase -b '$new': format $(bfmt top.qcow2)"
	echo "ok: rebase -b '$new': same content, backing $(bfile top.qcow2)"
done
# a backing file named relative to the image's directory, from another directory
mkchain
mkdir -p d && mv top.qcow2 mid.qcow2 d/ && cp base.qcow2 d/ && cp b2.qcow2 d/nb.qcow2
qemu-img convert -O raw d/top.qcow2 before.raw
"$P2V" rebase -b nb.qcow2 -F qcow2 d/top.qcow2
qemu-img compare -q -f raw before.raw d/top.qcow2 || fail "rebase from another directory: content"
[ "$(bfile d/top.qcow2)" = nb.qcow2 ] || fail "rebase from another directory: $(bfile d/top.qcow2)"
check d/top.qcow2 "rebase from another directory"
echo "ok: the new backing file is relative to the image's directory"
# the header's name moved more than once, a long name too
mkchain
qemu-img convert -O raw top.qcow2 before.raw
long=$(printf 'n%.0s' {1..200}).qcow2
cp mid.qcow2 "$long"
for n in base.qcow2 "$long" mid.qcow2 "$long" base.qcow2; do
	"$P2V" rebase -b "$n" top.qcow2
	[ "$(bfile top.qcow2)" = "$n" ] || fail "repeated rebase to $n: $(bfile top.qcow2)"
	check top.qcow2 "repeated rebase to $n"
done
qemu-img compare -q -f raw before.raw top.qcow2 || fail "repeated rebases: content"
echo "ok: five rebases in a row, names of 10 and 206 bytes"

# ---- unsafe rebase: the header only, as qemu-img rebase -u
for new in base.qcow2 b2.qcow2 ""; do
	mkchain
	cp top.qcow2 q.qcow2
	qemu-img convert -O raw top.qcow2 before.raw
	F=; [ -n "$new" ] && F="-F qcow2"
	"$P2V" rebase -u -b "$new" $F top.qcow2
	qemu-img rebase -u -b "$new" $F q.qcow2
	[ "$(bfile top.qcow2)" = "$(bfile q.qcow2)" ] || fail "rebase -u -b '$new': $(bfile top.qcow2), qemu-img: $(bfile q.qcow2)"
	[ "$(bfmt top.qcow2)" = "$(bfmt q.qcow2)" ] || fail "rebase -u -b '$new': format $(bfmt top.qcow2), qemu-img: $(bfmt q.qcow2)"
	qemu-img compare -q top.qcow2 q.qcow2 || fail "rebase -u -b '$new': reads differently from qemu-img's"
	check top.qcow2 "rebase -u -b '$new'"
	# the clusters are untouched: the same map of the top layer as before
	[ "$(qemu-img map --output=json top.qcow2 | jq -c '[.[] | select(.depth == 0 and .data)]')" = \
	  "$(qemu-img map --output=json q.qcow2 | jq -c '[.[] | select(.depth == 0 and .data)]')" ] ||
		fail "rebase -u -b '$new': the top layer's clusters changed"
	echo "ok: rebase -u -b '$new' as qemu-img rebase -u: $(bfile top.qcow2)"
done

# ---- commit: the backing file as qemu-img commit leaves it
for keep in "" -d; do
	mkchain
	for s in p q; do
		cp mid.qcow2 ${s}m.qcow2
		qemu-img create -q -f qcow2 -b ${s}m.qcow2 -F qcow2 ${s}t.qcow2 72M
		qemu-io -f qcow2 -c "write -P 5 100k 300k" -c "write -z 1M 64k" -c "write -P 6 70M 1M" ${s}t.qcow2 >/dev/null
	done
	qemu-img convert -O raw pt.qcow2 before.raw
	"$P2V" commit $keep pt.qcow2 | grep -q "^Image committed\.$" || fail "commit $keep: no message"
	qemu-img commit -q $keep qt.qcow2
	qemu-img compare -q pm.qcow2 qm.qcow2 || fail "commit $keep: the backing file differs from qemu-img's"
	[ "$(qemu-img info --output=json pm.qcow2 | jq '."virtual-size"')" = $((72 * M)) ] || fail "commit $keep: the backing file did not grow"
	qemu-img compare -q -f raw before.raw pm.qcow2 || fail "commit $keep: the backing file does not read as the top did"
	qemu-img compare -q -f raw before.raw pt.qcow2 || fail "commit $keep: the top reads differently"
	check pm.qcow2 "commit $keep (backing)"
	check pt.qcow2 "commit $keep (top)"
	top_data=$(qemu-img map --output=json pt.qcow2 | jq '[.[] | select(.depth == 0 and (.data or .zero))] | length')
	qemu_data=$(qemu-img map --output=json qt.qcow2 | jq '[.[] | select(.depth == 0 and (.data or .zero))] | length')
	[ "$top_data" = "$qemu_data" ] || fail "commit $keep: the top holds $top_data extents, qemu-img's $qemu_data"
	if [ -z "$keep" ]; then [ "$top_data" = 0 ] || fail "commit: the top was not emptied"; fi
	echo "ok: commit $keep as qemu-img commit $keep (top holds $top_data extents)"
done

# a raw backing file that grows, as qemu-img commit leaves it (cmp)
for s in p q; do
	qemu-img create -q -f raw ${s}b.raw 8M
	qemu-io -f raw -c "write -P 1 0 8M" ${s}b.raw >/dev/null
	qemu-img create -q -f qcow2 -b ${s}b.raw -F raw ${s}r.qcow2 12M
	qemu-io -f qcow2 -c "write -P 2 1M 1M" -c "write -z 3M 64k" -c "write -P 3 10M 64k" ${s}r.qcow2 >/dev/null
done
"$P2V" commit -q pr.qcow2
qemu-img commit -q qr.qcow2
cmp pb.raw qb.raw || fail "commit into raw: the backing file differs from qemu-img's"
check pr.qcow2 "commit into raw"
echo "ok: commit into a raw backing file that grows: byte for byte as qemu-img's"
# a top with an internal snapshot and a compressed cluster: emptied, the
# snapshot still reads as qemu-img's after the same commit
mkchain
for s in p q; do
	cp base.qcow2 ${s}sb.qcow2
	qemu-img create -q -f qcow2 -b ${s}sb.qcow2 -F qcow2 ${s}st.qcow2
	qemu-io -f qcow2 -c "write -P 5 0 1M" ${s}st.qcow2 >/dev/null
	qemu-img snapshot -c s1 ${s}st.qcow2
	qemu-io -f qcow2 -c "write -P 6 512k 1M" -c "write -c -P 7 4M 64k" ${s}st.qcow2 >/dev/null
done
"$P2V" commit -q pst.qcow2
qemu-img commit -q qst.qcow2
qemu-img compare -q psb.qcow2 qsb.qcow2 || fail "commit with a snapshot: the backing file differs from qemu-img's"
check pst.qcow2 "commit with a snapshot"
qemu-img snapshot -a s1 pst.qcow2 && qemu-img snapshot -a s1 qst.qcow2
qemu-img compare -q pst.qcow2 qst.qcow2 || fail "commit with a snapshot: the snapshot reads differently"
check pst.qcow2 "commit with a snapshot, applied"
echo "ok: commit of a top with an internal snapshot and a compressed cluster"
# qcow2 version 2 (compat=0.10): rebase safe and -u, commit
mkchain
qemu-img amend -q -f qcow2 -o compat=0.10 top.qcow2 2>/dev/null ||
	{ qemu-img convert -O qcow2 -o compat=0.10 -B mid.qcow2 -F qcow2 top.qcow2 v2.qcow2 && mv v2.qcow2 top.qcow2; }
[ "$(qemu-img info --output=json top.qcow2 | jq -r '."format-specific".data.compat')" = 0.10 ] || fail "no v2 image"
qemu-img convert -O raw top.qcow2 before.raw
"$P2V" rebase -b b2.qcow2 top.qcow2
qemu-img compare -q -f raw before.raw top.qcow2 || fail "v2 rebase: content"
check top.qcow2 "v2 rebase"
"$P2V" rebase -u -b base.qcow2 -F qcow2 top.qcow2
[ "$(bfile top.qcow2)" = base.qcow2 ] || fail "v2 rebase -u: $(bfile top.qcow2)"
check top.qcow2 "v2 rebase -u"
qemu-img convert -O raw top.qcow2 before.raw
"$P2V" rebase -b b2.qcow2 top.qcow2
qemu-img compare -q -f raw before.raw top.qcow2 || fail "v2 rebase back: content"
check top.qcow2 "v2 rebase back"
echo "ok: qcow2 v2: rebase, rebase -u"

# ---- refusals: one line, nothing changed
mkchain
before=$(sums base.qcow2 mid.qcow2 top.qcow2)
expect_fail "commit without a backing file" "$P2V" commit base.qcow2
grep -q "no backing file" <<<"$("$P2V" commit base.qcow2 2>&1 || true)" || fail "commit without a backing file: message"
expect_fail "rebase without -b" "$P2V" rebase top.qcow2
mkdir -p in out
cp base.qcow2 out/ob.qcow2
qemu-img create -q -f qcow2 -b ../out/ob.qcow2 -F qcow2 in/x.qcow2
qemu-io -f qcow2 -c "write -P 8 0 64k" in/x.qcow2 >/dev/null
before=$(sums base.qcow2 mid.qcow2 top.qcow2 out/ob.qcow2 in/x.qcow2)
qemu-img create -q -f qcow2 in/y.qcow2 64M
before=$(sums base.qcow2 mid.qcow2 top.qcow2 out/ob.qcow2 in/x.qcow2 in/y.qcow2)
for cmd in "commit in/x.qcow2" "rebase -b base.qcow2 in/x.qcow2" "rebase -b ../out/ob.qcow2 -F qcow2 in/y.qcow2" \
	   "rebase -u -b ../out/ob.qcow2 -F qcow2 in/y.qcow2" "rebase -b ../base.qcow2 in/y.qcow2"; do
	out=$("$P2V" $cmd 2>&1) && fail "$cmd: accepted a backing file outside the directory"
	[ "$(echo "$out" | wc -l)" = 1 ] || fail "$cmd: not one line: $out"
	grep -q -- "--allow-backing" <<<"$out" || fail "$cmd: does not name --allow-backing: $out"
	echo "ok (refused): $cmd: $out"
done
[ "$(sums base.qcow2 mid.qcow2 top.qcow2 out/ob.qcow2 in/x.qcow2 in/y.qcow2)" = "$before" ] || fail "a refusal changed a file"
echo "ok: refusals changed nothing (sha256)"
# with --allow-backing they go through
"$P2V" commit -q --allow-backing "$TMP/out" in/x.qcow2
qemu-io -f qcow2 -c "read -P 8 0 64k" out/ob.qcow2 | grep -q "^read 65536" || fail "commit --allow-backing: data not in the backing file"
check out/ob.qcow2 "commit --allow-backing"
"$P2V" rebase --allow-backing "$TMP" -b ../base.qcow2 -F qcow2 in/x.qcow2
[ "$(bfile in/x.qcow2)" = ../base.qcow2 ] || fail "rebase --allow-backing: $(bfile in/x.qcow2)"
check in/x.qcow2 "rebase --allow-backing"
echo "ok: --allow-backing lets commit and rebase through"
# a symbolic link as the new backing file: refused unless --allow-symlinks
ln -s base.qcow2 link.qcow2
expect_fail "rebase onto a symbolic link" "$P2V" rebase -b link.qcow2 top.qcow2
"$P2V" rebase --allow-symlinks -b link.qcow2 -F qcow2 top.qcow2
[ "$(bfile top.qcow2)" = link.qcow2 ] || fail "rebase --allow-symlinks"
# an image a VM holds is refused, even with -U (which only shares the backing files)
mkchain
before=$(sums top.qcow2)
qemu-io -f qcow2 top.qcow2 -c "sleep 120000" & held=$!
for i in $(seq 50); do qemu-img info top.qcow2 >/dev/null 2>&1 || break; sleep 0.1; done
expect_fail "rebase of an image a VM holds" "$P2V" rebase -b base.qcow2 top.qcow2
expect_fail "rebase -U of an image a VM holds" "$P2V" rebase -U -b base.qcow2 top.qcow2
expect_fail "commit of an image a VM holds" "$P2V" commit top.qcow2
kill $held; wait $held 2>/dev/null || true
[ "$(sums top.qcow2)" = "$before" ] || fail "a locked image changed"
# -U: the backing files may be held by a VM (read-only there)
qemu-io -r -f qcow2 base.qcow2 -c "sleep 120000" & held=$!
sleep 1
qemu-img convert -O raw top.qcow2 before.raw
"$P2V" rebase -U -b "" top.qcow2
kill $held; wait $held 2>/dev/null || true
qemu-img compare -q -f raw before.raw top.qcow2 || fail "rebase -U: content"
echo "ok: locks: the image is always locked, -U shares the backing files"
# VMDK: p2v cannot change its backing reference
qemu-img create -q -f vmdk vb.vmdk 16M
qemu-img create -q -f vmdk -b vb.vmdk -F vmdk v.vmdk
before=$(sums v.vmdk vb.vmdk)
out=$("$P2V" rebase -b "" v.vmdk 2>&1) && fail "rebase of a VMDK accepted"
[ "$(echo "$out" | wc -l)" = 1 ] && grep -q vmdk <<<"$out" || fail "rebase of a VMDK: $out"
echo "ok (refused): $out"
expect_fail "commit emptying a VMDK" "$P2V" commit v.vmdk
[ "$(sums v.vmdk vb.vmdk)" = "$before" ] || fail "a VMDK refusal changed a file"
"$P2V" help | grep -q "^  rebase " || fail "p2v help does not list rebase"
"$P2V" help | grep -q "^  commit " || fail "p2v help does not list commit"
echo "ok: p2v help lists rebase and commit"
