/* Fixed guest-physical layout, selectors and vectors of the test unikernel.
 * Shared by the assembly entries and the C code, and documented in README.md:
 * the monitor must keep [TRAMPOLINE_ADDR, +4 KiB) and [KERNEL_BASE, KERNEL_END) free. */
#ifndef UK_LAYOUT_H
#define UK_LAYOUT_H

#define KERNEL_BASE  0x100000 /* linked here; the vector stubs come first */
#define VECTOR_STUBS KERNEL_BASE
#define STUB_SIZE    16
/* The TSS sits at a fixed address in the stub page so its GDT descriptor can be
 * a link-time constant: the CPU never writes a 64-bit TSS. */
#define TSS_ADDR	(KERNEL_BASE + 0x400)
#define TSS_SIZE	104
#define COUNTER_ADDR	0x1ff000 /* the `counter` check's 64-bit counter */
#define KERNEL_END	0x200000 /* everything the unikernel owns lies below this */
#define TRAMPOLINE_ADDR 0x8000	 /* AP real-mode entry (SIPI vector 0x08) */

#define MAX_CPUS       64
#define KSTACK_SIZE    16384
#define DFSTACK_SIZE   4096
#define USTACK_SIZE    32768
#define AP_STACK_SHIFT 12 /* 4 KiB per AP */

/* GDT: null, kernel code64, kernel data, user data, user code64, TSS. */
#define KCODE_SEL 0x08
#define KDATA_SEL 0x10
#define UDATA_SEL 0x18
#define UCODE_SEL 0x20
#define TSS_SEL	  0x28
/* The AP trampoline's own GDT (real mode -> 32-bit protected mode). */
#define AP_CODE32_SEL 0x08
#define AP_DATA32_SEL 0x10

#define VEC_TIMER    0x20 /* LAPIC timer */
#define VEC_SERIAL   0x21 /* IOAPIC pin 4: the UART's THRE interrupt */
#define VEC_SPURIOUS 0x2f /* LAPIC spurious; low nibble 0xf suits older APICs too */
#define VEC_SERVICE  0x30 /* DPL3 gate: the few requests CPL3 cannot do itself */
#define NUM_VECTORS  0x31

/* virtio-mmio devices in interrupt mode (virtio_irq=1): vector base + irq % 8,
 * routed from the IOAPIC pin the command line names. */
#define VEC_VIRTIO_BASE 0x22
#define VIRTIO_VECTORS	8

#define SERVICE_HALT	     0
#define SERVICE_TRIPLE_FAULT 1
#define SERVICE_WAIT	     2 /* sti; hlt: wait for the next interrupt, then return */
#define SERVICE_CALL	     3 /* call rdi(rsi) at CPL0, interrupts off; for checks */

/* 1 GiB pages identity-map 0-64 GiB; without them, 2 MiB pages map 0-4 GiB. */
#define PDPT_STATIC_ENTRIES 64
#define MAPPED_TOP_1G	    (64ull << 30)
#define MAPPED_TOP_2M	    (4ull << 30)

#define PTE_P	0x1
#define PTE_W	0x2
#define PTE_U	0x4
#define PTE_PWT 0x8
#define PTE_PCD 0x10
#define PTE_PS	0x80

#define CR0_PE	       0x1
#define CR0_PG	       0x80000000
#define CR4_PAE	       0x20
#define CR4_OSFXSR     0x200
#define CR4_OSXMMEXCPT 0x400
/* The SSE-enabled build (UK_SSE, compiled with SSE code generation) turns SSE on at entry, as
 * unikernels such as Unikraft and OSv do. */
#ifdef UK_SSE
#define CR4_BOOT (CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT)
#else
#define CR4_BOOT CR4_PAE
#endif
#define MSR_EFER     0xc0000080
#define EFER_LME     0x100
#define RFLAGS_IOPL3 0x3000
#define RFLAGS_IF    0x200

#define BOOT_PROTO_PVH	   1
#define BOOT_PROTO_LINUX64 2

#define LAPIC_BASE	0xfee00000
#define LAPIC_EOI	(LAPIC_BASE + 0xb0)
#define IOAPIC_BASE	0xfec00000
#define BOOT_TIMER_ADDR 0xc0000000
#define EMUFAIL_ADDR	0xc0100000

#define COM1	     0x3f8
#define PVPANIC_PORT 0x505
#define I8042_CMD    0x64

#endif
