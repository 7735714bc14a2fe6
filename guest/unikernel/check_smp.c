/* smp: wake every other vCPU with INIT/SIPI/SIPI; each records its APIC IDs
 * (LAPIC ID register and CPUID leaf 1) in ap_main and parks. */
#include "apic.h"
#include "arch.h"
#include "boot.h"
#include "checks.h"
#include "console.h"
#include "lib.h"

#define ICR_INIT 0x4500 /* INIT, level assert */
#define ICR_SIPI 0x4600 /* start-up, vector = page number */

struct ap_record {
	uint32_t done;
	uint32_t lapic_id, cpuid_id;
};

/* Slots are taken in ap_entry64 (trampoline.S) with lock xadd. */
uint32_t ap_next_slot;
static volatile uint32_t ap_arrived;
static struct ap_record ap_records[MAX_CPUS - 1];

extern const char ap_trampoline[], ap_trampoline_end[];

void ap_main(uint32_t slot);

/* CPL0 on the AP, emulated on kvm_pvm: record and leave. */
void ap_main(uint32_t slot)
{
	uint32_t r[4];

	cpuid(1, 0, r);
	ap_records[slot].cpuid_id = r[1] >> 24;
	ap_records[slot].lapic_id = lapic_id();
	__atomic_store_n(&ap_records[slot].done, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&ap_arrived, 1, __ATOMIC_RELEASE);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static bool is_ram(uint64_t a, uint64_t len)
{
	for (uint32_t i = 0; i < boot.nmem; i++)
		if (boot.mem[i].type == E820_RAM && a >= boot.mem[i].addr &&
		    a + len <= boot.mem[i].addr + boot.mem[i].size)
			return true;
	return !boot.nmem;
}

/* 0x8000 unless the initrd sits there. The loader structures were copied at
 * start; the pages listed here avoid the ones Ember uses (0x500, 0x7000,
 * 0x9000-0xbfff, 0x20000, 0x9fc00) all the same. */
static uint64_t trampoline_page(void)
{
	static const uint32_t candidates[] = {TRAMPOLINE_ADDR, 0x6000, 0x5000, 0x4000,
					      0x3000,	       0x2000, 0x1000};
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		uint64_t p = candidates[i];
		if (is_ram(p, 4096) && !overlaps(p, 4096, boot.initrd_addr, boot.initrd_size))
			return p;
	}
	return 0;
}

static bool wait_arrivals(uint32_t want, uint64_t timeout_us)
{
	uint64_t end = tsc_after_us(timeout_us);
	while (__atomic_load_n(&ap_arrived, __ATOMIC_ACQUIRE) < want) {
		if (tsc_passed(end))
			return false;
		cpu_relax();
	}
	return true;
}

static void start_aps(uint32_t want)
{
	uint64_t page = trampoline_page();

	if (!page)
		check_fail("no free page below 1 MiB for the AP trampoline");
	memcpy((void *)(uintptr_t)page, ap_trampoline, ap_trampoline_end - ap_trampoline);
	if (!lapic_ipi_all_but_self(ICR_INIT))
		check_fail("INIT IPI not delivered (ICR busy)");
	/* KVM orders INIT before SIPI by itself; QEMU's TCG needs a moment. A
	 * CPU the INIT caught late is started by the second SIPI. */
	delay_us(1000);
	for (int sipi = 0; sipi < 2; sipi++) {
		if (!lapic_ipi_all_but_self(ICR_SIPI | (uint32_t)(page >> 12)))
			check_fail("SIPI not delivered (ICR busy)");
		/* A CPU already started ignores the second SIPI. */
		if (wait_arrivals(want, sipi ? 2000000 : 1000))
			return;
	}
}

void check_smp(void)
{
	uint32_t ids[MAX_CPUS], cpuid_ids[MAX_CPUS], r[4], n = 1;
	uint64_t expected = opts.cpus ? opts.cpus : (boot.mp_cpus ? boot.mp_cpus : 1);

	if (expected > MAX_CPUS)
		check_fail("cpus=%lu exceeds the %u this unikernel supports", expected, MAX_CPUS);
	lapic_enable();
	ids[0] = lapic_id();
	cpuid(1, 0, r);
	cpuid_ids[0] = r[1] >> 24;
	if (expected > 1)
		start_aps((uint32_t)expected - 1);

	for (uint32_t s = 0; s < MAX_CPUS - 1 && n < MAX_CPUS; s++) {
		if (!__atomic_load_n(&ap_records[s].done, __ATOMIC_ACQUIRE))
			continue;
		ids[n] = ap_records[s].lapic_id;
		cpuid_ids[n++] = ap_records[s].cpuid_id;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (ids[i] != cpuid_ids[i])
			check_fail("cpus=%u lapic_id=%u but cpuid apic_id=%u", n, ids[i],
				   cpuid_ids[i]);
		for (uint32_t j = 0; j < i; j++)
			if (ids[i] == ids[j])
				check_fail("cpus=%u duplicate apic_id=%u", n, ids[i]);
	}
	if (n != expected)
		check_fail("cpus=%u expected=%lu", n, expected);

	for (uint32_t i = 1; i < n; i++) /* sorted, for a stable line */
		for (uint32_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			uint32_t t = ids[j];
			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}
	kprintf("CHECK smp PASS cpus=%u apic_ids=", n);
	for (uint32_t i = 0; i < n; i++)
		kprintf("%s%u", i ? "," : "", ids[i]);
	kprintf("\n");
}
