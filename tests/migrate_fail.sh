#!/bin/bash
# p2v migrate on a disk with no OS: capture succeeds, inject refuses, and
# neither the output nor any temporary file is left; usage errors are clear.
# The same from an nbds:// source (nbdkit, TLS-PSK): capture over NBD passes,
# inject refuses, the report shows the URI without its query.
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

# From NBD: the capture step reads the export, the report hides the query.
command -v nbdkit >/dev/null 2>&1 || { echo "no nbdkit: NBD case not run"; exit 0; }
printf 'p2v:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$TMP/psk"
chmod 600 "$TMP/psk"
for port in $(shuf -i 20000-60000 -n 20); do
	nbdkit -i 127.0.0.1 -p "$port" -P "$TMP/nbdkit.pid" -r --tls=require --tls-psk="$TMP/psk" \
		file "$TMP/empty.img" 2>/dev/null && break
	port=
done
[ -n "$port" ] || fail "nbdkit would not start"
for _ in $(seq 50); do [ -s "$TMP/nbdkit.pid" ] && break; sleep 0.1; done
trap 'kill "$(cat "$TMP/nbdkit.pid")" 2>/dev/null; rm -rf "$TMP"' EXIT
rc=0; "$P2V" migrate --json "nbds://p2v@localhost:$port/?tls-psk-file=$TMP/psk" out.qcow2 \
	> nreport.json 2> nerr.txt || rc=$?
[ "$rc" -eq 2 ] || { cat nerr.txt; fail "migrate from NBD of an OS-less disk: exit $rc, expected 2"; }
grep -q "tls-psk-file" nreport.json nerr.txt && fail "the URI's query was shown"
python3 -c '
import json, sys; r=json.load(open("nreport.json"))
assert r["source"]=="nbds://p2v@localhost:'"$port"'/" and r["verdict"]=="FAIL", r
assert [s["step"] for s in r["steps"]]==["capture","inject"] and r["steps"][0]["exit"]==0, r
assert r["capture"]["partitions"][0]["start_bytes"]==1048576, r["capture"]' ||
	fail "JSON report of the NBD migrate"
[ ! -e out.qcow2 ] || fail "output written despite the failure"
ls -A | grep -q p2v- && fail "temporary files left: $(ls -A)"
echo "ok: migrate from nbds:// captures over NBD, stops at inject, leaves nothing"
