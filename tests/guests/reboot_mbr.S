/* Boot sector that prints "REBOOT-OK" on COM1 and then reboots the machine
 * by the path METHOD names (as --defsym METHOD=n): 1 the PIIX reset control
 * register 0xCF9, 2 the keyboard controller (command 0xFE), 3 ACPI power-off
 * is not a reboot: port 0x501 (isa-debug-exit).  The verdict must tell which
 * way the run ended. */
	.code16
	.intel_syntax noprefix
	.text
	.globl _start
_start:
	cli
	xor ax, ax
	mov ds, ax
	mov ss, ax
	mov sp, 0x7c00
	lea si, msg
next:
	lodsb
	test al, al
	jz done
	mov ah, al
	mov dx, 0x3fd
1:	in al, dx
	test al, 0x20
	jz 1b
	mov al, ah
	mov dx, 0x3f8
	out dx, al
	jmp next
done:
.if METHOD == 1
	mov dx, 0xcf9
	mov al, 0x06
	out dx, al
.elseif METHOD == 2
	mov al, 0xfe
	out 0x64, al
.else
	mov dx, 0x501
	mov al, 0x01
	out dx, al
.endif
	sti
idle:
	hlt
	jmp idle

msg:	.asciz "REBOOT-OK\r\n"

	.org 510
	.word 0xaa55
