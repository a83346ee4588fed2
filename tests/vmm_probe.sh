#!/bin/bash
# Headline test: a boot-sector probe disk boots through the real SeaBIOS in
# vmm-min (firmware, fw_cfg, PCI, virtio-blk, COM1 together).  The probe
# reads sectors through INT 13h, writes one and reads it back; the write must
# stay in the overlay: the image's sha256 is unchanged.  With -w the write
# reaches the image.
source "$(dirname "$0")/lib.sh"
[ -e /dev/kvm ] || skip "/dev/kvm is absent"
[ -r /usr/share/seabios/bios.bin ] || fail "SeaBIOS is not installed (scripts/install-deps installs the seabios package)"
need as ld python3 sha256sum
RUNNER="$P2V_BUILD/tests/vmm_runner"
G="$P2V_SRC/tests/guests"

as --32 -o "$TMP/probe.o" "$G/probe_mbr.S"
ld -m elf_i386 -Ttext=0x7c00 --oformat binary -e _start -o "$TMP/probe.bin" "$TMP/probe.o"
python3 "$G/mkprobe.py" "$TMP/probe.bin" "$TMP/probe.img" 4
before=$(sha256sum < "$TMP/probe.img")

"$RUNNER" -t 120 -m 128 -l "$TMP/fw.log" "$TMP/probe.img" > "$TMP/console" 2> "$TMP/summary" ||
	fail "vmm_runner failed: $(cat "$TMP/summary")"
cat "$TMP/console" "$TMP/summary"
grep -q "^PROBE-OK" "$TMP/console" || fail "probe marker missing; firmware log tail: $(tail -5 "$TMP/fw.log")"
grep -q "exit=halted" "$TMP/summary" || fail "expected a halt after the marker"
grep -q "writes=1 " "$TMP/summary" || fail "expected exactly one virtio-blk write"
grep -q "Running on QEMU" "$TMP/fw.log" || fail "SeaBIOS did not see the QEMU platform"
grep -q "Booting from Hard Disk" "$TMP/console" || fail "the BIOS screen is not mirrored on COM1 (sercon)"
grep -q "found virtio-blk at 00:02.0" "$TMP/fw.log" || fail "SeaBIOS did not find virtio-blk"
[ "$(sha256sum < "$TMP/probe.img")" = "$before" ] || fail "the image changed under a read-only run"
echo "ok: read-only run left the image unchanged"

# Writable, with two vCPUs: the probe's write reaches the image (sector 2
# starts with 0xdeadbeef) and SeaBIOS brings up the second CPU.
"$RUNNER" -t 120 -m 128 -c 2 -w -F raw -l "$TMP/fw2.log" "$TMP/probe.img" > "$TMP/console2" 2>&1 ||
	fail "writable run failed"
grep -q "^PROBE-OK" "$TMP/console2" || fail "probe marker missing in the writable run"
grep -q "Found 2 cpu(s)" "$TMP/fw2.log" || fail "SeaBIOS did not find 2 CPUs: $(grep -i cpu "$TMP/fw2.log")"
[ "$(od -An -tx4 -j 1024 -N 4 "$TMP/probe.img" | tr -d ' ')" = deadbeef ] ||
	fail "writable run did not write sector 2"
echo "ok: writable run wrote through"
expect_fail "too many vCPUs" "$RUNNER" -t 5 -m 64 -c 99 "$TMP/probe.img"

# POST snapshots: the first run with a cache dir saves the machine at the
# firmware's first disk request, the second resumes there (same console,
# same disk traffic, image unchanged); a blank disk of the same size resumes
# from the same snapshot and fails as a blank disk must (the disk is this
# run's); a damaged snapshot is dropped and POST runs again.
post=$TMP/post
python3 "$G/mkprobe.py" "$TMP/probe.bin" "$TMP/fresh.img" 4
before=$(sha256sum < "$TMP/fresh.img")
"$RUNNER" -t 120 -m 128 -P "$post" -S "$TMP/sc1" "$TMP/fresh.img" > "$TMP/pc1" 2> "$TMP/ps1" || fail "post: cold run: $(cat "$TMP/ps1")"
grep -q "post=saved" "$TMP/ps1" || fail "post: no snapshot saved: $(cat "$TMP/ps1")"
"$RUNNER" -t 120 -m 128 -P "$post" -S "$TMP/sc2" "$TMP/fresh.img" > "$TMP/pc2" 2> "$TMP/ps2" || fail "post: warm run: $(cat "$TMP/ps2")"
cat "$TMP/ps1" "$TMP/ps2"
grep -q "post=restored" "$TMP/ps2" || fail "post: not resumed: $(cat "$TMP/ps2")"
# COM1 (the guest's) must be the same; the BIOS screen (COM2) is flushed
# lazily by SeaBIOS, so the run that halted first may have less of it: the
# shorter must begin the longer, and both hold SeaBIOS's banner (replayed
# from the snapshot in the resumed run).
cmp -s "$TMP/pc1" "$TMP/pc2" || fail "post: the resumed COM1 output differs from the cold one"
n1=$(stat -c %s "$TMP/sc1") n2=$(stat -c %s "$TMP/sc2")
n=$(( n1 < n2 ? n1 : n2 ))
cmp -s -n "$n" "$TMP/sc1" "$TMP/sc2" || fail "post: the resumed screen is not a prefix of the cold one (or the reverse)"
grep -q "SeaBIOS (version" "$TMP/sc1" && grep -q "SeaBIOS (version" "$TMP/sc2" ||
	fail "post: the BIOS banner is missing from a screen: $(head -c 200 "$TMP/sc2")"
grep -q "^PROBE-OK" "$TMP/pc2" && grep -q "reads=4 writes=1 " "$TMP/ps2" || fail "post: resumed probe"
[ "$(sha256sum < "$TMP/fresh.img")" = "$before" ] || fail "post: the image changed"
truncate -s "$(stat -c %s "$TMP/fresh.img")" "$TMP/blank.img"
"$RUNNER" -t 120 -m 128 -F raw -P "$post" "$TMP/blank.img" > "$TMP/pcb" 2> "$TMP/psb" || fail "post: blank"
grep -q "post=restored" "$TMP/psb" && grep -q "exit=reset" "$TMP/psb" || fail "post: blank disk: $(cat "$TMP/psb")"
grep -q "Boot failed: not a bootable disk" "$TMP/pcb" || fail "post: the blank disk was not read"
snap=$(ls "$post"/post-*.snap)
[ "$(ls "$post" | wc -l)" -eq 1 ] || fail "post: expected one snapshot: $(ls "$post")"
truncate -s $(( $(stat -c %s "$snap") / 2 )) "$snap"
"$RUNNER" -t 120 -m 128 -P "$post" "$TMP/fresh.img" > "$TMP/pcd" 2> "$TMP/psd" || fail "post: damaged"
grep -q "post=saved" "$TMP/psd" && grep -q "^PROBE-OK" "$TMP/pcd" || fail "post: damaged snapshot: $(cat "$TMP/psd")"
echo "ok: POST snapshot saved, resumed, per-disk, and replaced when damaged"

# An unbootable disk (no boot signature): SeaBIOS gives up and reboots at
# once (etc/boot-fail-wait is 0), which ends the run as a reset.
head -c 1048576 /dev/zero > "$TMP/zero.img"
"$RUNNER" -t 120 -m 64 -F raw -l "$TMP/fw0.log" "$TMP/zero.img" > "$TMP/console0" 2> "$TMP/summary0" ||
	fail "unbootable run failed: $(cat "$TMP/summary0")"
cat "$TMP/summary0"
grep -q "exit=reset" "$TMP/summary0" || fail "an unbootable disk must end in a reset"
grep -q "No bootable device" "$TMP/fw0.log" || fail "SeaBIOS did not report the unbootable disk"
grep -q "Boot failed: not a bootable disk" "$TMP/console0" || fail "the boot failure is not on COM1"
