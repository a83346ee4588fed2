/* Boot-sector probe: loaded by the BIOS at 0:7C00 with DL = boot drive.
 * Prints PROBE-START on COM1, reads LBA 1..63 through INT 13h AH=42h and
 * checks each sector's first dword equals its LBA, reads the last sector
 * (size from AH=48h) the same way, writes LBA 2 with a new pattern and reads
 * it back, then prints PROBE-OK (or PROBE-FAIL-<letter>) and halts with
 * interrupts off. */
	.code16
	.intel_syntax noprefix
	.text
	.globl _start
_start:
	cli
	cld
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, 0x7c00
	sti
	mov [drive], dl
	lea si, msg_start
	call puts

	/* read LBA 1..63 to 0:8000 */
	mov word ptr [dap_count], 63
	mov dword ptr [dap_lba], 1
	mov ah, 0x42
	call disk_io
	mov al, 'A'
	jc fail
	mov bx, 0x8000
	mov ecx, 1
check_loop:
	cmp [bx], ecx
	mov al, 'B'
	jne fail
	add bx, 512
	inc ecx
	cmp ecx, 64
	jb check_loop

	/* drive parameters: total sectors at offset 16 */
	mov word ptr [params], 0x1e
	mov ah, 0x48
	mov dl, [drive]
	lea si, params
	int 0x13
	mov al, 'C'
	jc fail
	mov eax, [params + 16]
	dec eax
	mov [dap_lba], eax
	mov [last_lba], eax
	mov word ptr [dap_count], 1
	mov ah, 0x42
	call disk_io
	mov al, 'D'
	jc fail
	mov eax, [last_lba]
	cmp [0x8000], eax
	mov al, 'E'
	jne fail

	/* write LBA 2 from 0:8000 with 0xdeadbeef at its start, read back */
	mov dword ptr [0x8000], 0xdeadbeef
	mov dword ptr [dap_lba], 2
	mov ah, 0x43
	xor al, al
	call disk_io
	mov al, 'F'
	jc fail
	mov dword ptr [0x8000], 0
	mov ah, 0x42
	call disk_io
	mov al, 'G'
	jc fail
	cmp dword ptr [0x8000], 0xdeadbeef
	mov al, 'H'
	jne fail

	lea si, msg_ok
	call puts
	jmp halt

fail:
	push ax
	lea si, msg_fail
	call puts
	pop ax
	call putc
	mov al, '\n'
	call putc
halt:
	cli
	hlt
	jmp halt

/* INT 13h with the DAP; AH = function */
disk_io:
	mov dl, [drive]
	lea si, dap
	int 0x13
	ret

puts:
	lodsb
	test al, al
	jz 1f
	call putc
	jmp puts
1:	ret

putc:
	push dx
	push ax
	mov dx, 0x3fd
2:	in al, dx
	test al, 0x20
	jz 2b
	pop ax
	mov dx, 0x3f8
	out dx, al
	pop dx
	ret

msg_start: .asciz "PROBE-START\n"
msg_ok:    .asciz "PROBE-OK\n"
msg_fail:  .asciz "PROBE-FAIL-"
	.balign 4
dap:       .byte 0x10, 0
dap_count: .word 63
dap_buf:   .word 0x8000, 0
dap_lba:   .long 1, 0
drive:     .byte 0x80
	.balign 4
last_lba:  .long 0
	.org 446
params:                  /* 30-byte AH=48h buffer overlays the partition table (unused) */
	.org 510
	.byte 0x55, 0xaa
