# vpc (VHD) differencing chains written by an independent Python writer:
# parent found through relative (W2ru), absolute Windows (W2ku, by name beside
# the child) and MacX locators; a grandchild; UUID mismatch and missing
# parent refused.  libvhdi cross-checks the structures.
source "$(dirname "$0")/lib.sh"
need python3 vhdiinfo qemu-img jq
MK="$(dirname "$0")/vhd_mkdiff.py"
cd "$TMP"

json() { "$P2V" info --json "$1" | jq -r --arg k "$2" '.[$k] // .["format-specific"].data[$k]'; }

for scen in relative absolute macx; do
	d=$TMP/$scen
	mkdir -p "$d"
	python3 "$MK" "$d" "$scen"
	[ "$(json "$d/child.vhd" subformat)" = differencing ] || fail "$scen: subformat"
	"$P2V" convert -q -O raw "$d/child.vhd" "$d/child.raw" 2>"$d/warn" || fail "$scen: convert: $(cat "$d/warn")"
	cmp "$d/child.raw" "$d/expected-child.raw" || fail "$scen: child content differs"
	"$P2V" compare -f vpc -F raw "$d/child.vhd" "$d/expected-child.raw" >/dev/null 2>&1 ||
		fail "$scen: p2v compare differs"
	vhdiinfo "$d/child.vhd" >"$d/vhdi.txt"
	grep -q "Disk type.*Differential" "$d/vhdi.txt" || fail "$scen: vhdiinfo does not see a differencing image"
	puuid=$(sed -n 's/.*Parent identifier[^:]*: //p' "$d/vhdi.txt")
	[ "$puuid" = "$(json "$d/child.vhd" parent-uuid)" ] || fail "$scen: parent UUID: libvhdi $puuid, p2v $(json "$d/child.vhd" parent-uuid)"
	echo "ok: $scen: $(cat "$d/warn")"
done
grep -q "using 'parent.vhd' beside the image" "$TMP/absolute/warn" ||
	fail "absolute Windows path outside the child's folder was not replaced by the name beside it"
[ ! -s "$TMP/relative/warn" ] || fail "relative locator warned: $(cat "$TMP/relative/warn")"
[ ! -s "$TMP/macx/warn" ] || fail "macx locator warned: $(cat "$TMP/macx/warn")"
[ "$(json "$TMP/relative/child.vhd" backing-filename)" = 'C:\Hyper-V\Disks\parent.vhd' ] ||
	fail "info does not show the parent name: $(json "$TMP/relative/child.vhd" backing-filename)"

# Grandchild over child over parent; map covers the whole disk.
d=$TMP/relative
"$P2V" convert -q -O raw "$d/grandchild.vhd" "$d/gc.raw"
cmp "$d/gc.raw" "$d/expected-grandchild.raw" || fail "grandchild content differs"
# (entries in order, covering it; data in each of the three layers; the
# unallocated rest is the dynamic parent's own zeroes: present, depth 2)
"$P2V" map --json "$d/grandchild.vhd" | jq -e --argjson size $((6 * 1024 * 1024 + 1536)) '
	all(range(length) as $i | .[$i].start == ([.[0:$i][] | .length] | add // 0); .) and
	(map(.length) | add) == $size and
	([.[] | select(.data) | .depth] | unique) == [0, 1, 2] and
	any(.[]; .zero and .present and .depth == 2)' >/dev/null || fail "grandchild map"
echo "ok: grandchild"

# Refusals: missing parent, wrong parent UUID, writing a differencing image.
mkdir -p "$TMP/bad" && python3 "$MK" "$TMP/bad" baduuid
expect_fail "parent UUID mismatch" "$P2V" convert -O raw "$TMP/bad/child.vhd" "$TMP/bad/x.raw"
out=$("$P2V" convert -O raw "$TMP/bad/child.vhd" "$TMP/bad/x.raw" 2>&1) && fail "UUID mismatch accepted"
echo "$out" | grep -q "parent UUID" || fail "no UUID in the message: $out"
rm "$TMP/relative/parent.vhd"
expect_fail "missing parent" "$P2V" convert -O raw "$TMP/relative/child.vhd" "$TMP/x.raw"
"$P2V" info "$TMP/relative/child.vhd" >/dev/null || fail "info needs the parent"
echo "all vhd differencing checks ok"
