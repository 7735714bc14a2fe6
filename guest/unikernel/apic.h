/* Local APIC, IOAPIC and 8259 PIC, all driven from CPL3 through the
 * user-accessible MMIO mapping and IOPL=3. */
#ifndef UK_APIC_H
#define UK_APIC_H

#include <stdbool.h>
#include <stdint.h>

#define LAPIC_ID	 0x020
#define LAPIC_TPR	 0x080
#define LAPIC_SVR	 0x0f0
#define LAPIC_ICR_LO	 0x300
#define LAPIC_ICR_HI	 0x310
#define LAPIC_LVT_TIMER	 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_DIV	 0x3e0

#define LVT_MASKED	   (1u << 16)
#define LVT_TIMER_PERIODIC (1u << 17)

/* Counted by the CPL0 handlers in vectors.S. */
extern volatile uint64_t lapic_ticks;
extern volatile uint64_t serial_irqs;

uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t v);
void lapic_enable(void);
uint32_t lapic_id(void);
/* Send to all CPUs but this one; false if the ICR stayed busy. */
bool lapic_ipi_all_but_self(uint32_t icr_lo);

void ioapic_route(unsigned pin, uint8_t vector, uint32_t dest_apic_id);
void ioapic_mask(unsigned pin);

void pic_mask_all(void);

#endif
