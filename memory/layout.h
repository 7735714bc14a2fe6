/* The guest physical memory map (see ARCHITECTURE.md). Every fixed address the monitor writes
 * to lives here, so nothing else picks its own. */
#pragma once

#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

#define LAYOUT_GDT_ADDR	       0x500ull
#define LAYOUT_PVH_INFO_ADDR   0x6000ull /* hvm_start_info, modlist and memmap: one page */
#define LAYOUT_ZERO_PAGE_ADDR  0x7000ull /* Linux boot_params */
#define LAYOUT_PML4_ADDR       0x9000ull
#define LAYOUT_PDPT_ADDR       0xa000ull
#define LAYOUT_PD_ADDR	       0xb000ull
#define LAYOUT_BOOT_STACK_ADDR 0x8ff0ull /* rsp/esp at entry; guests set their own at once */
#define LAYOUT_CMDLINE_ADDR    0x20000ull
#define LAYOUT_CMDLINE_MAX     0x10000ull /* 64 KiB; kernels state smaller limits */
#define LAYOUT_MPTABLE_ADDR    0x9fc00ull /* start of the EBDA: Linux scans its first KiB */
#define LAYOUT_EBDA_END	       0xa0000ull
#define LAYOUT_HIMEM_START     0x100000ull /* 1 MiB: where kernels load */

#define LAYOUT_MMIO_GAP_START	0xc0000000ull
#define LAYOUT_MMIO_GAP_END	0x100000000ull
#define LAYOUT_BOOT_TIMER_ADDR	0xc0000000ull
#define LAYOUT_VIRTIO_MMIO_BASE 0xc0001000ull
#define LAYOUT_VIRTIO_MMIO_SIZE 0x1000ull
#define LAYOUT_IOAPIC_ADDR	0xfec00000ull
#define LAYOUT_LAPIC_ADDR	0xfee00000ull
#define LAYOUT_HIGH_RAM_START	LAYOUT_MMIO_GAP_END

/* KVM on VMX wants three pages for its real-mode TSS and one for the identity map, inside the
 * MMIO gap where no RAM can be: near its top, clear of the IOAPIC and LAPIC pages. */
#define LAYOUT_KVM_TSS_ADDR	 0xfeffd000ull
#define LAYOUT_KVM_IDENTITY_ADDR 0xfeffc000ull

#define LAYOUT_MAX_MEM_MIB (1024ull * 1024) /* 1 TiB */
