#!/bin/bash
# Tiny guests on KVM through vmm-min: port and MMIO dispatch with PCI
# enumeration, the Linux boot protocol's entry conventions (a fake bzImage),
# the run-loop exits (timeout, reset request, power-off), and calibration.
source "$(dirname "$0")/lib.sh"
[ -e /dev/kvm ] || skip "/dev/kvm is absent"
need as ld
RUNNER="$P2V_BUILD/tests/vmm_runner"
G="$P2V_SRC/tests/guests"
build() { # build NAME LOAD_ADDRESS
	as --32 -o "$TMP/$1.o" "$G/$1.S"
	ld -m elf_i386 -Ttext="$2" --oformat binary -e _start -o "$TMP/$1.bin" "$TMP/$1.o"
}
run() { # run OUT ARGS...: console to OUT, summary to OUT.sum
	local out=$1; shift
	"$RUNNER" "$@" > "$out" 2> "$out.sum" || fail "vmm_runner $*: $(cat "$out.sum")"
	cat "$out" "$out.sum"
}
head -c 1048576 /dev/zero > "$TMP/disk.img"

# 1. dispatch: COM1, fw_cfg, PCI enumeration, MMIO hole, CMOS, PIIX4 PM power-off
build dispatch 0x7c00
run "$TMP/d" -t 20 -m 64 -f "$TMP/dispatch.bin" -F raw "$TMP/disk.img"
cat > "$TMP/d.want" <<'WANT'
DISPATCH
fw_cfg QEMU
pci 00 8086:1237
pci 01 8086:7000
pci 02 1af4:1001
mmio ff
cmos 0300
pm 8086:7113
BYE
WANT
diff -u "$TMP/d.want" "$TMP/d" || fail "dispatch guest output differs"
grep -q "exit=shutdown" "$TMP/d.sum" || fail "ACPI SLP_EN did not power off"
# without a disk there is no virtio-blk in slot 2
run "$TMP/d2" -t 20 -m 64 -f "$TMP/dispatch.bin"
! grep -q "pci 02" "$TMP/d2" || fail "virtio-blk present without a disk"

# 2. direct Linux boot: entry conventions checked by the fake kernel
build fake_kernel 0
{ printf INRD; head -c 4092 /dev/zero; } > "$TMP/initrd"
run "$TMP/k" -t 20 -m 64 -k "$TMP/fake_kernel.bin" -i "$TMP/initrd" -a "fake=1 console=ttyS0"
grep -qx "LINUX-OK" "$TMP/k" || fail "fake kernel saw a wrong boot_params"
grep -q "exit=shutdown" "$TMP/k.sum" || fail "fake kernel did not power off"
run "$TMP/k2" -t 20 -m 64 -k "$TMP/fake_kernel.bin" -a "fake=1"
grep -qx "LINUX-BAD-9" "$TMP/k2" || fail "no initrd must leave ramdisk_image 0"
run "$TMP/k3" -t 20 -m 64 -k "$TMP/fake_kernel.bin" -i "$TMP/initrd" -a "other"
grep -qx "LINUX-BAD-8" "$TMP/k3" || fail "command line not passed"
expect_fail "not a bzImage" "$RUNNER" -t 5 -m 64 -k "$TMP/dispatch.bin"
expect_fail "initrd beyond RAM" "$RUNNER" -t 5 -m 2 -k "$TMP/fake_kernel.bin" -i "$TMP/disk.img" -a fake
head -c 5000 /dev/zero | tr '\0' x > "$TMP/long"
expect_fail "command line beyond cmdline_size" "$RUNNER" -t 5 -m 64 -k "$TMP/fake_kernel.bin" -a "$(cat "$TMP/long")"

# 3. run-loop exits
printf '\xeb\xfe' > "$TMP/loop.bin"                  # jmp $
run "$TMP/l" -t 0.5 -m 4 -f "$TMP/loop.bin"
grep -q "exit=timeout" "$TMP/l.sum" || fail "endless loop did not time out"
printf '\xb0\xfe\xe6\x64\xf4' > "$TMP/reset.bin"      # mov al, 0xfe; out 0x64, al; hlt
run "$TMP/r" -t 5 -m 4 -f "$TMP/reset.bin"
grep -q "exit=reset" "$TMP/r.sum" || fail "i8042 reset not seen"
printf '\xfa\xf4' > "$TMP/halt.bin"                  # cli; hlt
run "$TMP/h" -t 5 -m 4 -f "$TMP/halt.bin"
grep -q "exit=halted" "$TMP/h.sum" || fail "dead halt not seen"

# 4. calibration: a positive rate, quickly
start=$(date +%s%N)
mips=$("$RUNNER" -C)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "calibration: $mips MIPS in $ms ms"
awk -v m="$mips" 'BEGIN { exit !(m > 0) }' || fail "calibration gave $mips"
[ "$ms" -lt 3000 ] || fail "calibration took $ms ms"

# 5. virtio-blk driven directly by a C guest (gcc -m16): BAR programming,
#    ring setup, read, write into the overlay, read back, then a read whose
#    completion interrupt arrives through PIRQ routing and the in-kernel PIC,
#    then a descriptor loop (device broken, recovered by a reset); image
#    unchanged.
if gcc -m16 -ffreestanding -fno-pic -fno-pie -nostdlib -no-pie -Os -fno-asynchronous-unwind-tables \
	-Wl,--build-id=none -Wl,-T,"$G/flat16.ld" -o "$TMP/vblk.bin" "$G/vblk_guest.c"; then
	head -c 4194304 /dev/zero > "$TMP/vdisk.img"
	printf '\x01\x00\x00\x00' | dd of="$TMP/vdisk.img" bs=1 seek=512 conv=notrunc status=none
	before=$(sha256sum < "$TMP/vdisk.img")
	run "$TMP/v" -t 20 -m 64 -f "$TMP/vblk.bin" -F raw "$TMP/vdisk.img"
	grep -qx "VBLK-OK" "$TMP/v" || fail "virtio-blk guest failed"
	grep -qx "IRQ-OK" "$TMP/v" || fail "virtio-blk completion interrupt (PIRQC -> IRQ 11 -> PIC) not delivered"
	grep -qx "RECOVER-OK" "$TMP/v" || fail "virtio-blk did not break on a descriptor loop, or did not recover"
	grep -q "device broken: virtio-blk: descriptor chain" "$TMP/v.sum" || fail "no DEVICE_BROKEN event"
	grep -q "reads=4 writes=1 " "$TMP/v.sum" || fail "expected 4 reads and 1 write"
	[ "$(sha256sum < "$TMP/vdisk.img")" = "$before" ] || fail "overlay write reached the image"
	run "$TMP/v2" -t 20 -m 64 -w -f "$TMP/vblk.bin" -F raw "$TMP/vdisk.img"
	grep -qx "VBLK-OK" "$TMP/v2" || fail "virtio-blk guest failed (writable)"
	[ "$(od -An -tx4 -j 1536 -N 4 "$TMP/vdisk.img" | tr -d ' ')" = cafef00d ] ||
		fail "writable run did not write sector 3"
else
	fail "gcc -m16 cannot build the virtio-blk guest"
fi

# 5b. RTC periodic interrupts (IRQ 8) wake a halted guest
gcc -m16 -ffreestanding -fno-pic -fno-pie -nostdlib -no-pie -Os -fno-asynchronous-unwind-tables \
	-Wl,--build-id=none -Wl,-T,"$G/flat16.ld" -o "$TMP/rtc.bin" "$G/rtc_guest.c" ||
	fail "gcc -m16 cannot build the RTC guest"
run "$TMP/rtc" -t 20 -m 4 -f "$TMP/rtc.bin"
grep -qx "RTC-OK" "$TMP/rtc" || fail "RTC periodic interrupts did not arrive"

# 6. console input reaches COM1: an echo guest that stops at 'q'
printf '\xba\xfd\x03\xec\xa8\x01\x74\xf8\xba\xf8\x03\xec\xee\x3c\x71\x75\xef\xba\x01\x05\xee\xfa\xf4' > "$TMP/echo.bin"
printf 'hello q' | "$RUNNER" -t 10 -m 4 -I -f "$TMP/echo.bin" > "$TMP/e" 2> "$TMP/e.sum" || fail "echo run failed"
[ "$(cat "$TMP/e")" = "hello q" ] || fail "echo guest printed '$(cat "$TMP/e")'"
grep -q "exit=shutdown" "$TMP/e.sum" || fail "echo guest did not stop at q"

# 7. refusals
expect_fail "missing disk" "$RUNNER" -t 5 -m 64 "$TMP/nonexistent.img"
expect_fail "missing firmware" "$RUNNER" -t 5 -m 64 -b "$TMP/nonexistent.bin" -F raw "$TMP/disk.img"
expect_fail "firmware of odd size" "$RUNNER" -t 5 -m 64 -b "$TMP/echo.bin" -F raw "$TMP/disk.img"
echo "ok: all tiny guests"
