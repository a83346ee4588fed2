# Common helpers for the shell tests: source it first.
# Exit 77 means "skipped" to CTest; every skip says why.
set -euo pipefail
: "${P2V:?P2V must point at the p2v binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/p2v-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export P2V_CACHE_DIR=$TMP/cache # vmm-min's POST snapshots: per test, not in ~/.cache
# skip only for what no package provides (no /dev/kvm, not root): in CI only
# hardware reasons may skip.  scripts/test prints each skipped test's reason.
skip() { echo "skipped: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# need TOOL...: called before a test's long work, for every tool it runs that
# the base system lacks.  scripts/install-deps installs them all, so a missing
# one fails the test: a skip would hide a gap in install-deps from CI.
need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || fail "$t is not installed (scripts/install-deps installs it)"
	done
}
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
# keep_result NAME FILE: keeps a copy of FILE as $P2V_TESTDATA/kept/NAME for
# later tests (the hardware-virtualization test bed boots the migrated
# samples); written under a temporary name and renamed.
keep_result() {
	local d=${P2V_TESTDATA:?}/kept
	mkdir -p "$d"
	cp --sparse=always --reflink=auto "$2" "$d/.$1.tmp.$$" && mv "$d/.$1.tmp.$$" "$d/$1" ||
		fail "keeping $2 as $d/$1"
}
# mkrandom FILE BYTES: deterministic non-zero data.
mkrandom() { head -c "$2" /dev/urandom > "$1"; }
