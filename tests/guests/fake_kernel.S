/* A fake bzImage for the direct-boot path: a real setup header (protocol
 * 2.15, setup_sects 1) and 32-bit code that the VMM enters at 1 MiB.  The
 * code checks the boot protocol's entry conventions: protected mode, flat
 * __BOOT_CS/__BOOT_DS, ESI = zero page with the header copied in, loader type,
 * e820 map, command line and initrd, then prints LINUX-OK (or LINUX-BAD-<n>)
 * on COM1 and powers off through port 0x501. */
	.intel_syntax noprefix
	.code16
	.text
	.globl _start
_start:
	.org 0x1f1
	.byte 1                   /* setup_sects */
	.word 0                   /* root_flags */
	.long 0                   /* syssize */
	.word 0                   /* ram_size */
	.word 0xffff              /* vid_mode */
	.word 0                   /* root_dev */
	.word 0xaa55              /* boot_flag */
	.byte 0xeb, 0x66          /* jump: header ends at 0x268 */
	.ascii "HdrS"
	.word 0x020f              /* version */
	.long 0                   /* realmode_swtch */
	.word 0, 0                /* start_sys_seg, kernel_version */
	.byte 0                   /* type_of_loader */
	.byte 0x01                /* loadflags: LOADED_HIGH */
	.word 0                   /* setup_move_size */
	.long 0x100000            /* code32_start */
	.long 0, 0                /* ramdisk_image, ramdisk_size */
	.long 0                   /* bootsect_kludge */
	.word 0                   /* heap_end_ptr */
	.byte 0, 0                /* ext_loader_ver, ext_loader_type */
	.long 0                   /* cmd_line_ptr */
	.long 0x37ffffff          /* initrd_addr_max */
	.long 0x200000            /* kernel_alignment */
	.byte 0, 0                /* relocatable_kernel, min_alignment */
	.word 0                   /* xloadflags */
	.long 2048                /* cmdline_size */
	.org 0x260
	.long 0x20000             /* init_size */

	.org 0x400
	.code32
pm_entry:
	mov esp, 0x90000          /* the protocol gives no stack; a kernel makes its own */
	call 1f
1:	pop ebp                   /* ebp = run-time address of 1: (code is loaded at 1 MiB) */
	mov eax, cr0
	test al, 1
	mov bl, '1'
	jz bad
	mov ax, cs
	cmp ax, 0x10
	mov bl, '2'
	jne bad
	mov ax, ds
	cmp ax, 0x18
	mov bl, '3'
	jne bad
	cmp dword ptr [esi + 0x202], 0x53726448   /* "HdrS" copied into the zero page */
	mov bl, '4'
	jne bad
	cmp byte ptr [esi + 0x210], 0xff          /* type_of_loader */
	mov bl, '5'
	jne bad
	cmp byte ptr [esi + 0x1e8], 3             /* e820 entries */
	mov bl, '6'
	jb bad
	cmp dword ptr [esi + 0x2d0 + 16], 1       /* entry 0: RAM at 0 */
	mov bl, '7'
	jne bad
	mov edi, [esi + 0x228]                    /* cmd_line_ptr */
	cmp dword ptr [edi], 0x656b6166           /* "fake" */
	mov bl, '8'
	jne bad
	mov edi, [esi + 0x218]                    /* ramdisk_image */
	test edi, edi
	mov bl, '9'
	jz bad
	cmp dword ptr [edi], 0x44524e49           /* "INRD" */
	mov bl, 'a'
	jne bad
	cmp dword ptr [esi + 0x21c], 4096         /* ramdisk_size */
	mov bl, 'b'
	jne bad
	lea edi, [ebp + msg_ok - 1b]
	call puts
	jmp done
bad:
	lea edi, [ebp + msg_bad - 1b]
	call puts
	mov al, bl
	call putc
done:
	mov al, 10
	call putc
	mov dx, 0x501
	out dx, al
	cli
	hlt

puts:
	mov al, [edi]
	inc edi
	test al, al
	jz 2f
	call putc
	jmp puts
2:	ret

putc:
	mov dx, 0x3f8
	out dx, al
	ret

msg_ok:  .asciz "LINUX-OK"
msg_bad: .asciz "LINUX-BAD-"
	.org 0x600
