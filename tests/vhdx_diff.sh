#!/bin/bash
# Differencing VHDX (read-only): a parent and a child built by unit_vhdx
# mkdiff (full, partial — sector bitmap — , undefined and absent blocks, a
# parent locator with relative and absolute paths).  p2v must read the child
# as expected, and libvhdi (vhdimount), a reader nobody here wrote, agrees.
source "$(dirname "$0")/lib.sh"
helper=$P2V_BUILD/tests/unit_vhdx
[ -x "$helper" ] || fail "$helper is not built"
"$helper" mkdiff "$TMP" >/dev/null || fail "mkdiff"

info=$("$P2V" info "$TMP/child.vhdx") || fail "p2v info child"
grep -q "subformat: differencing" <<<"$info" || fail "info subformat: $info"
grep -q 'parent.vhdx' <<<"$info" || fail "info shows no parent: $info"
"$P2V" convert -q -O raw "$TMP/child.vhdx" "$TMP/ours.raw" || fail "p2v convert child"
cmp "$TMP/ours.raw" "$TMP/child.raw" || fail "child reads wrong"
"$P2V" compare -F raw "$TMP/child.vhdx" "$TMP/child.raw" >/dev/null || fail "p2v compare"
echo "ok: p2v reads the child"

# Without its parent the child does not open (and says why).
mv "$TMP/parent.vhdx" "$TMP/parent.moved"
expect_fail "child without parent" "$P2V" convert -q -O raw "$TMP/child.vhdx" "$TMP/x.raw"
mv "$TMP/parent.moved" "$TMP/parent.vhdx"

need vhdiinfo vhdimount
vinfo=$(vhdiinfo "$TMP/child.vhdx")
grep -q "Disk type.*Differential" <<<"$vinfo" || fail "vhdiinfo: $vinfo"
[ -e /dev/fuse ] || skip "no /dev/fuse for vhdimount (p2v checks above passed)"
mkdir "$TMP/mnt"
unmount() { fusermount -u "$1" 2>/dev/null || umount "$1" 2>/dev/null || true; }
trap 'unmount "$TMP/mnt"; rm -rf "$TMP"' EXIT
vhdimount "$TMP/child.vhdx" "$TMP/mnt" >/dev/null || skip "vhdimount cannot mount here (p2v checks above passed)"
last=$(ls "$TMP/mnt" | sort -V | tail -n 1)
cmp "$TMP/mnt/$last" "$TMP/child.raw" || fail "libvhdi reads the child differently"
echo "ok: libvhdi reads the child the same"
