#include "apic.h"

#include "arch.h"

volatile uint64_t lapic_ticks;
volatile uint64_t serial_irqs;

#define ICR_BUSY	 (1u << 12)
#define ICR_ALL_BUT_SELF (3u << 18)

#define IOAPIC_REGSEL	  0x00
#define IOAPIC_WINDOW	  0x10
#define IOAPIC_REDIR(pin) (0x10 + 2 * (pin))
#define REDIR_MASKED	  (1u << 16)

uint32_t lapic_read(uint32_t reg)
{
	return mmio_read32(LAPIC_BASE + reg);
}

void lapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(LAPIC_BASE + reg, v);
}

/* The APIC is globally enabled from reset (IA32_APIC_BASE); software enable
 * is the SVR bit, which CPL3 reaches without touching an MSR. */
void lapic_enable(void)
{
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
}

uint32_t lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

static bool icr_idle(void)
{
	uint64_t end = tsc_after_us(10000);
	while (lapic_read(LAPIC_ICR_LO) & ICR_BUSY) {
		if (tsc_passed(end))
			return false;
		cpu_relax();
	}
	return true;
}

bool lapic_ipi_all_but_self(uint32_t icr_lo)
{
	if (!icr_idle())
		return false;
	lapic_write(LAPIC_ICR_HI, 0);
	lapic_write(LAPIC_ICR_LO, icr_lo | ICR_ALL_BUT_SELF);
	return icr_idle();
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
	mmio_write32(IOAPIC_BASE + IOAPIC_WINDOW, v);
}

/* Fixed delivery, physical destination, active high, edge: an ISA IRQ. */
void ioapic_route(unsigned pin, uint8_t vector, uint32_t dest_apic_id)
{
	ioapic_write(IOAPIC_REDIR(pin) + 1, dest_apic_id << 24);
	ioapic_write(IOAPIC_REDIR(pin), vector);
}

void ioapic_mask(unsigned pin)
{
	ioapic_write(IOAPIC_REDIR(pin), REDIR_MASKED);
}

/* Legacy PIC out of the way, so ISA IRQs arrive only through the IOAPIC. */
void pic_mask_all(void)
{
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}
