/* The checks that need no device: hello, bootinfo, and the three that end
 * the VM on purpose (panic, triplefault, emufail). */
#include "arch.h"
#include "boot.h"
#include "checks.h"
#include "console.h"
#include "lib.h"

void check_hello(void)
{
	check_pass("hello from %s entry", boot_proto_name());
}

void check_bootinfo(void)
{
	if (!boot.info_valid)
		check_fail("proto=%s no boot information at 0x%lx", boot_proto_name(),
			   boot.info_addr);
	if (!boot.nmem)
		check_fail("proto=%s empty memory map", boot_proto_name());

	uint64_t ram = boot_ram_bytes();
	kprintf("CHECK bootinfo PASS proto=%s ram_mib=%lu e820=%u", boot_proto_name(),
		(ram + (1 << 19)) >> 20, boot.nmem);
	if (!boot.initrd_size) {
		kprintf(" initrd=none");
	} else if (boot.initrd_addr + boot.initrd_size > mapped_top() ||
		   boot.initrd_addr + boot.initrd_size < boot.initrd_addr) {
		kprintf("\n");
		check_fail("initrd=0x%lx+%lu outside the mapped memory", boot.initrd_addr,
			   boot.initrd_size);
	} else {
		const void *p = (const void *)(uintptr_t)boot.initrd_addr;
		kprintf(" initrd=0x%lx+%lu crc32=%08x", boot.initrd_addr, boot.initrd_size,
			crc32_ieee(p, boot.initrd_size));
	}
	kprintf(" info=0x%lx mp_cpus=%u tsc_khz=%lu map=", boot.info_addr, boot.mp_cpus,
		tsc_hz() / 1000);
	for (uint32_t i = 0; i < boot.nmem; i++)
		kprintf("%s0x%lx+0x%lx:%u", i ? "," : "", boot.mem[i].addr, boot.mem[i].size,
			boot.mem[i].type);
	kprintf(" cmdline=\"%s\"\n", boot.cmdline);
}

void check_panic(void)
{
	check_fail("requested");
}

/* lidt needs CPL0: the service gate loads an empty IDT and raises #UD. */
void check_triplefault(void)
{
	kprintf("triplefault: empty IDT, then #UD\n");
	__asm__ volatile("int %0" : : "i"(VEC_SERVICE), "a"(SERVICE_TRIPLE_FAULT));
	check_fail("still running after the triple fault");
}

/* Nothing backs 0xc0100000, so the hypervisor cannot fetch the instruction.
 * Where reads there return zeros instead (QEMU TCG), rax is non-canonical so
 * that the "add %al,(%rax)" those zeros decode to faults at once. */
void check_emufail(void)
{
	kprintf("emufail: jumping to 0x%x\n", EMUFAIL_ADDR);
	__asm__ volatile("jmp *%1" : : "a"(0x8000000000000000ull), "r"((uint64_t)EMUFAIL_ADDR));
	check_fail("returned from 0x%x", EMUFAIL_ADDR);
}
