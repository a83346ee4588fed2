#!/bin/bash
# Disks that cannot boot fail fast with "no bootable device": a partition
# table without boot code (caught before booting) and a blank disk (SeaBIOS
# says so).  Also: bad input exits 2, --engine auto explains its choice.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/verify_common.sh"
IMG=$(sample_disk empty-mbr make-empty-mbr-disk.sh)
before=$(sha256sum < "$IMG")
rc=0
start=$(date +%s)
"$P2V" verify "$IMG" --engine qemu > "$TMP/report" 2>&1 || rc=$?
cat "$TMP/report"
[ "$rc" -eq 1 ] || fail "verify exited $rc, expected 1"
grep -q '^verdict: FAIL: no bootable device' "$TMP/report" || fail "no 'no bootable device' reason"
[ "$(sha256sum < "$IMG")" = "$before" ] || fail "verify modified the image"

# A blank disk (a comma in its name, which QEMU needs doubled): the
# firmware itself reports it, within seconds.
truncate -s 4M "$TMP/bl,ank.raw"
rc=0
"$P2V" verify -f raw "$TMP/bl,ank.raw" --engine auto --json --firmware-log "$TMP/fw.log" \
	> "$TMP/blank.json" 2> "$TMP/blank.err" || rc=$?
cat "$TMP/blank.json" "$TMP/blank.err"
[ "$rc" -eq 1 ] || fail "blank disk: verify exited $rc, expected 1"
python3 -m json.tool "$TMP/blank.json" > /dev/null || fail "--json output does not parse"
json_get "$TMP/blank.json" reason | grep -q '^no bootable device: Boot failed: not a bootable disk' \
	|| fail "blank disk: the reason is not SeaBIOS's"
# Here KVM is software-nested (~1 MIPS) or absent: auto says so in one line
# and uses QEMU.  On hardware-speed KVM it says that and uses vmm-min.
if grep -q 'using QEMU TCG' "$TMP/blank.err"; then
	[ "$(json_get "$TMP/blank.json" engine)" = qemu-tcg ] || fail "auto announced QEMU but used another engine"
	[ "$(grep -c 'using QEMU TCG' "$TMP/blank.err")" -eq 1 ] || fail "the notice is not one line"
	grep -Eq '^p2v: (KVM here runs guests at [0-9.]+ MIPS \(software-nested[^)]*\)|KVM is unusable here .*|the vmm-min engine is not built into this p2v); using QEMU TCG$' \
		"$TMP/blank.err" || fail "the notice does not say why"
else
	grep -Eq '^p2v: KVM here runs guests at [0-9]+ MIPS \(hardware virtualization\); using vmm-min' \
		"$TMP/blank.err" || fail "auto chose vmm-min without saying why"
	[ "$(json_get "$TMP/blank.json" engine)" = vmm ] || fail "auto announced vmm-min but used another engine"
fi
grep -q '^SeaBIOS (version' "$TMP/fw.log" || fail "--firmware-log lacks the SeaBIOS banner"
[ $(( $(date +%s) - start )) -lt 30 ] || fail "not fast: $(( $(date +%s) - start )) s"

# A boot sector that triple-faults (int3 with a zero-limit real-mode IDT).
python3 - "$TMP/tf.raw" <<'PY'
import sys
b = bytearray(1 << 20)
code = bytes([0xfa, 0x0f, 0x01, 0x1e, 0x08, 0x7c, 0xcc, 0xf4])  # cli; lidt [0x7c08]; int3; hlt
b[0:len(code)] = code          # the 6-byte IDT descriptor at 0x7c08 stays zero: limit 0
b[510:512] = b"\x55\xaa"
open(sys.argv[1], "wb").write(b)
PY
rc=0
"$P2V" verify "$TMP/tf.raw" --engine qemu > "$TMP/tf.out" 2>&1 || rc=$?
cat "$TMP/tf.out"
[ "$rc" -eq 1 ] || fail "triple fault: exit $rc, expected 1"
grep -q '^verdict: FAIL: triple fault at .*(QEMU: Triple fault)' "$TMP/tf.out" || fail "triple fault not recognised"

# A boot sector that halts with interrupts off: dead, reported as a halt
# within seconds, not at the timeout.
python3 - "$TMP/halt.raw" <<'PY'
import sys
b = bytearray(1 << 20)
b[0:3] = bytes([0xfa, 0xf4, 0xeb])  # cli; hlt; (jmp back, never reached)
b[3] = 0xfd
b[510:512] = b"\x55\xaa"
open(sys.argv[1], "wb").write(b)
PY
rc=0; t0=$(date +%s)
"$P2V" verify "$TMP/halt.raw" --engine qemu --timeout 120 > "$TMP/halt.out" 2>&1 || rc=$?
cat "$TMP/halt.out"
[ "$rc" -eq 1 ] || fail "halt: exit $rc, expected 1"
grep -q '^verdict: FAIL: guest halted with interrupts disabled' "$TMP/halt.out" || fail "halt not recognised"
[ $(( $(date +%s) - t0 )) -lt 60 ] || fail "halt: not fast ($(( $(date +%s) - t0 )) s)"

# Could not run: exit 2.
expect_fail "missing image" "$P2V" verify "$TMP/nonexistent.raw" --engine qemu
rc=0; "$P2V" verify "$TMP/nonexistent.raw" --engine qemu 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "missing image: exit $rc, expected 2"
# a QED image (a format p2v does not read) is refused, naming it
{ printf 'QED\0'; head -c 4092 /dev/urandom; } > "$TMP/foreign.bin"
rc=0; "$P2V" verify "$TMP/foreign.bin" --engine qemu 2>"$TMP/foreign.err" || rc=$?
[ "$rc" -eq 2 ] || fail "foreign format: exit $rc, expected 2"
grep -q 'this is a qed image, which p2v does not read' "$TMP/foreign.err" ||
	fail "foreign format: $(cat "$TMP/foreign.err")"
rc=0; P2V_QEMU=/nonexistent/qemu "$P2V" verify "$IMG" --engine qemu 2>"$TMP/noqemu" || rc=$?
[ "$rc" -eq 2 ] || fail "no QEMU: exit $rc, expected 2"
grep -q 'no engine can run' "$TMP/noqemu" || fail "no QEMU: no explanation"
rc=0; "$P2V" verify "$IMG" --expect '([a' 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "bad regex: exit $rc, expected 2"
# --engine vmm: refused when vmm-min is not built in or the host has no KVM
# (could not run: exit 2, saying why), else the same verdict.
rc=0; "$P2V" verify -f raw "$TMP/bl,ank.raw" --engine vmm --timeout 90 > "$TMP/vmm.out" 2>&1 || rc=$?
cat "$TMP/vmm.out"
if grep -q 'not built into' "$TMP/vmm.out"; then
	[ "$rc" -eq 2 ] || fail "--engine vmm without vmm-min: exit $rc, expected 2"
elif [ ! -e /dev/kvm ]; then
	[ "$rc" -eq 2 ] || fail "--engine vmm without /dev/kvm: exit $rc, expected 2"
	grep -q '/dev/kvm' "$TMP/vmm.out" || fail "--engine vmm without /dev/kvm: no explanation"
	echo "skipped: the vmm-min half (no /dev/kvm on this host); its refusal was checked"
else
	[ "$rc" -eq 1 ] || fail "--engine vmm on a blank disk: exit $rc, expected 1"
	grep -q '^verdict: FAIL: no bootable device' "$TMP/vmm.out" || fail "--engine vmm: wrong reason"
	grep -q '^engine: vmm' "$TMP/vmm.out" || fail "--engine vmm: the report does not name the engine"
	# again: POST resumes from the snapshot the first run left, same verdict
	rc=0; "$P2V" verify -f raw "$TMP/bl,ank.raw" --engine vmm --timeout 90 > "$TMP/vmm2.out" 2>&1 || rc=$?
	cat "$TMP/vmm2.out"
	[ "$rc" -eq 1 ] && grep -q '^verdict: FAIL: no bootable device' "$TMP/vmm2.out" || fail "--engine vmm, resumed: wrong verdict"
	grep -q '^engine: vmm — vmm-min (KVM), POST resumed from a snapshot' "$TMP/vmm2.out" ||
		fail "--engine vmm: the second run did not resume POST"
	rc=0; "$P2V" verify -f raw "$TMP/bl,ank.raw" --engine vmm --no-post-cache --timeout 90 > "$TMP/vmm3.out" 2>&1 || rc=$?
	grep -q 'POST resumed' "$TMP/vmm3.out" && fail "--no-post-cache resumed anyway"
fi
echo "ok: unbootable disks fail fast; bad input exits 2"
