/* The CPU state a guest is entered with: long mode with the monitor's page tables for the Linux
 * 64-bit boot protocol, flat 32-bit protected mode for PVH. */
#pragma once

#include "memory/guest_mem.h"

#include <linux/kvm.h>
#include <stdint.h>

/* Write the GDT and the identity-mapping page tables (first 1 GiB, 2 MiB pages) into guest
 * memory. */
int boot_write_long_mode_tables(struct guest_mem *gm);
int boot_write_pvh_gdt(struct guest_mem *gm);

/* Fill sregs/regs for entry; `sregs` comes from KVM_GET_SREGS so other fields keep KVM's
 * values. */
void boot_regs_long_mode(struct kvm_sregs *sregs, struct kvm_regs *regs, uint64_t entry,
			 uint64_t boot_params);
void boot_regs_pvh(struct kvm_sregs *sregs, struct kvm_regs *regs, uint64_t entry,
		   uint64_t start_info);
