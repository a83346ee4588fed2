#!/bin/bash
# p2v migrate on a disk with no OS: capture succeeds, inject refuses, and
# neither the output nor any temporary file is left; usage errors are clear.
. "$(dirname "$0")/lib.sh"
need python3 sfdisk
cd "$TMP"
expect_fail "no operands" "$P2V" migrate
expect_fail "unknown output format" "$P2V" migrate x.img out.unknownext
touch exists.qcow2
expect_fail "existing output" "$P2V" migrate x.img exists.qcow2
bash "$P2V_SRC/samples/make-empty-mbr-disk.sh" "$TMP/empty.img"
rc=0; "$P2V" migrate --json empty.img out.qcow2 > report.json 2> err.txt || rc=$?
[ "$rc" -eq 2 ] || { cat err.txt; fail "migrate of an OS-less disk: exit $rc, expected 2"; }
grep -q "inject failed" err.txt || { cat err.txt; fail "the failing step is not named"; }
python3 -c '
import json; r=json.load(open("report.json"))
assert r["verdict"]=="FAIL" and r["output"] is None, r
assert [s["step"] for s in r["steps"]]==["capture","inject"] and r["steps"][0]["exit"]==0, r
assert r["capture"]["partitions"][0]["start_bytes"]==1048576, r["capture"]' ||
	fail "JSON report"
[ ! -e out.qcow2 ] || fail "output written despite the failure"
ls -A | grep -q p2v- && fail "temporary files left: $(ls -A)"
echo "ok: migrate stops at the failing step and leaves nothing"
