/* Boot sector for the console-interleaving test: puts text on the BIOS
 * screen through INT 10h (SeaBIOS's serial mirror keeps it pending and
 * flushes its last character on the next INT 10h call or timer tick), then
 * writes the marker "MBR-OK" straight to COM1 with one more INT 10h call and
 * timer ticks between its first byte and the rest, then idles with
 * interrupts on.  Were the BIOS screen mirrored on COM1, screen text would
 * land inside the marker ("Mt!BR-OK"). */
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
	sti
	lea si, screen_text
screen:
	lodsb
	test al, al
	jz marker
	mov ah, 0x0e
	mov bx, 0x0007
	int 0x10
	jmp screen
marker:
	mov al, 'M'
	call com1
	mov ax, 0x0e21       /* one more screen character: its INT 10h call    */
	mov bx, 0x0007       /* flushes the one still pending, and it stays      */
	int 0x10             /* pending itself until the timer ticks below       */
	mov cx, 3            /* three timer ticks (18.2 Hz) */
ticks:
	mov bx, [0x46c]
wait_tick:
	hlt
	cmp bx, [0x46c]
	je wait_tick
	loop ticks
	lea si, marker_rest
rest:
	lodsb
	test al, al
	jz idle
	call com1
	jmp rest
idle:
	hlt
	jmp idle

/* AL to COM1 when its transmitter is empty */
com1:
	mov dx, 0x3fd
	mov ah, al
1:	in al, dx
	test al, 0x20
	jz 1b
	mov al, ah
	mov dx, 0x3f8
	out dx, al
	ret

screen_text: .asciz "P2V screen text from the boot sector"
marker_rest: .asciz "BR-OK\r\n"

	.org 510
	.word 0xaa55
