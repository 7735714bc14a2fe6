/* Test-only stand-in for a monitor's Linux 64-bit boot, so QEMU can exercise
 * the unikernel's ELF entry: QEMU boots this shim through PVH, with the
 * unikernel's segments loaded by "-device loader,file=..." and its e_entry
 * stored at ENTRY_SLOT by a second loader device. The shim lays out what
 * Ember does (boot_params at 0x7000, GDT at 0x500, a supervisor-only 1 GiB
 * identity map at 0x9000-0xbfff, CR4.PGE on) and jumps to e_entry with
 * rsi = boot_params. */

#define BP_FINAL 0x7000
#define BP bp_scratch /* built aside: QEMU's modlist may sit in the 0x7000 page */
#define GDT 0x500
#define PML4 0x9000
#define PDPT 0xa000
#define PD 0xb000
#define ENTRY_SLOT 0x6ff8

	.section .note.Xen, "a", @note
	.balign 4
	.long 4, 4, 18
	.asciz "Xen"
	.long shim_entry32

	.text
	.code32
	.globl shim_entry32
shim_entry32:
	cli
	cld
	mov %ebx, %ebp /* hvm_start_info */

	mov $BP, %edi
	xor %eax, %eax
	mov $1024, %ecx
	rep stosl
	movw $0xaa55, BP + 0x1fe /* boot_flag */
	movl $0x53726448, BP + 0x202 /* "HdrS" */
	movb $0xff, BP + 0x210 /* type_of_loader: undefined */
	mov 24(%ebp), %eax
	mov %eax, BP + 0x228 /* cmd_line_ptr */
	mov 28(%ebp), %eax
	mov %eax, BP + 0x0c8 /* ext_cmd_line_ptr */
	cmpl $0, 12(%ebp)
	je 1f
	mov 16(%ebp), %esi /* first module: the initrd */
	mov (%esi), %eax
	mov %eax, BP + 0x218
	mov 4(%esi), %eax
	mov %eax, BP + 0x0c0
	mov 8(%esi), %eax
	mov %eax, BP + 0x21c
	mov 12(%esi), %eax
	mov %eax, BP + 0x0c4
1:	mov 40(%ebp), %esi /* memmap: 24-byte entries become 20-byte e820 ones */
	mov 48(%ebp), %edx
	mov %dl, BP + 0x1e8
	mov $(BP + 0x2d0), %edi
2:	test %edx, %edx
	jz 3f
	mov $5, %ecx
	rep movsl
	add $4, %esi
	dec %edx
	jmp 2b

3:	mov $bp_scratch, %esi
	mov $BP_FINAL, %edi
	mov $1024, %ecx
	rep movsl

	movl $0, GDT
	movl $0, GDT + 4
	movl $0x0000ffff, GDT + 8 /* 0x08: 64-bit code */
	movl $0x00af9a00, GDT + 12
	movl $0x0000ffff, GDT + 16 /* 0x10: data */
	movl $0x00cf9200, GDT + 20

	mov $PML4, %edi
	xor %eax, %eax
	mov $3072, %ecx
	rep stosl
	movl $(PDPT | 3), PML4
	movl $(PD | 3), PDPT
	mov $PD, %edi
	mov $0x83, %eax /* present, writable, 2 MiB, supervisor only */
	mov $512, %ecx
4:	mov %eax, (%edi)
	add $0x200000, %eax
	add $8, %edi
	dec %ecx
	jnz 4b

	lgdt gdtr
	mov $0xa0, %eax /* PAE | PGE, as a monitor might leave it */
	mov %eax, %cr4
	mov $PML4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax
	mov %eax, %cr0
	ljmp $0x08, $shim_entry64

	.code64
shim_entry64:
	mov $0x10, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov $BP_FINAL, %esi
	mov ENTRY_SLOT, %rax
	pushq $2
	popfq
	jmp *%rax

	.balign 8
gdtr:
	.word 23
	.long GDT

	.balign 4096
bp_scratch:
	.fill 4096, 1, 0

	.section .note.GNU-stack, "", @progbits
