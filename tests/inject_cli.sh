# p2v inject: command-line handling that needs no appliance.
. "$(dirname "$0")/lib.sh"
"$P2V" inject --help | grep -q "usage: p2v inject" || fail "--help"
expect_fail "no image" "$P2V" inject
expect_fail "two images" "$P2V" inject a b
expect_fail "unknown option" "$P2V" inject --bogus x.img
expect_fail "missing image" "$P2V" inject "$TMP/nonexistent.img"
out=$("$P2V" inject "$TMP/nonexistent.img" 2>&1 || true)
echo "$out" | grep -q "nonexistent.img" || fail "error does not name the image: $out"
expect_fail "--virtio-win without DIR" "$P2V" inject x.img --virtio-win
