/* Flat real-mode guest (loaded and entered at 0:7C00 by vmm_run_flat):
 * exercises port dispatch (COM1, fw_cfg, CMOS), PCI enumeration through
 * 0xCF8/0xCFC and an MMIO exit (a write/read in the unmapped VGA hole),
 * prints what it finds, then powers off through port 0x501. */
	.code16
	.intel_syntax noprefix
	.text
	.globl _start
_start:
	cli
	cld
	xor ax, ax
	mov ds, ax
	mov ss, ax
	mov sp, 0x7c00
	lea si, msg_hello
	call puts

	/* fw_cfg signature */
	lea si, msg_fwcfg
	call puts
	mov dx, 0x510
	xor ax, ax
	out dx, ax
	mov dx, 0x511
	mov cx, 4
1:	in al, dx
	call putc
	loop 1b
	call newline

	/* PCI bus 0: every slot with a device */
	xor ebx, ebx
pci_loop:
	mov eax, ebx
	shl eax, 11
	or eax, 0x80000000
	mov dx, 0xcf8
	out dx, eax
	mov dx, 0xcfc
	in eax, dx
	cmp eax, 0xffffffff
	je pci_next
	push eax
	lea si, msg_pci
	call puts
	mov al, bl
	call hex8
	mov al, ' '
	call putc
	pop eax
	push eax
	mov ax, ax
	call hex16
	mov al, ':'
	call putc
	pop eax
	shr eax, 16
	call hex16
	call newline
pci_next:
	inc ebx
	cmp ebx, 32
	jb pci_loop

	/* MMIO: the VGA hole is not RAM; a write is dropped, a read gives 0xff */
	lea si, msg_mmio
	call puts
	mov ax, 0xa000
	mov es, ax
	mov byte ptr es:[0x10], 0x5a
	mov al, es:[0x10]
	call hex8
	call newline

	/* CMOS 0x34/0x35: RAM above 16 MiB in 64 KiB units */
	lea si, msg_cmos
	call puts
	mov al, 0x35
	out 0x70, al
	in al, 0x71
	call hex8
	mov al, 0x34
	out 0x70, al
	in al, 0x71
	call hex8
	call newline

	lea si, msg_bye
	call puts
	mov dx, 0x501
	mov al, 1
	out dx, al
	cli
	hlt

newline:
	mov al, '\n'
putc:
	push dx
	mov dx, 0x3f8
	out dx, al
	pop dx
	ret

puts:
	lodsb
	test al, al
	jz 2f
	call putc
	jmp puts
2:	ret

hex16:
	push ax
	mov al, ah
	call hex8
	pop ax
hex8:
	push ax
	shr al, 4
	call hex4
	pop ax
hex4:
	push ax
	and al, 0x0f
	add al, '0'
	cmp al, '9'
	jbe 3f
	add al, 'a' - '9' - 1
3:	call putc
	pop ax
	ret

msg_hello: .asciz "DISPATCH\n"
msg_fwcfg: .asciz "fw_cfg "
msg_pci:   .asciz "pci "
msg_mmio:  .asciz "mmio "
msg_cmos:  .asciz "cmos "
msg_bye:   .asciz "BYE\n"
