# Common helpers for the shell tests: source it first.
# Exit 77 means "skipped" to CTest; every skip says why.
set -euo pipefail
: "${P2V:?P2V must point at the p2v binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/p2v-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export P2V_CACHE_DIR=$TMP/cache # vmm-min's POST snapshots: per test, not in ~/.cache
skip() { echo "skipped: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
need() { for t in "$@"; do command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"; done; }
# expect_fail "what" cmd...: the command must exit non-zero with a one-line error.
expect_fail() {
	local what=$1; shift
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || fail "$what: expected failure, got success"
	[ "$rc" -lt 128 ] || fail "$what: died with signal (rc=$rc): $out"
	if echo "$out" | grep -q "Sanitizer\|runtime error"; then fail "$what: sanitizer report: $out"; fi
	echo "ok (refused): $what: $(echo "$out" | tail -n 1)"
}
# mkrandom FILE BYTES: deterministic non-zero data.
mkrandom() { head -c "$2" /dev/urandom > "$1"; }
