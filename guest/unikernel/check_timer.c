/* timer: LAPIC timer interrupts, then an IOAPIC-routed device interrupt: the
 * UART's THRE interrupt (IRQ 4, IOAPIC pin 4). The second part transmits the
 * start of the result line itself, one byte per THRE interrupt. */
#include "apic.h"
#include "arch.h"
#include "checks.h"
#include "console.h"

#define SERIAL_IRQ_PIN	 4
#define UART_IER	 1
#define UART_MCR	 4
#define UART_LSR	 5
#define IER_THRE	 0x02
#define MCR_DTR_RTS_OUT2 0x0b /* OUT2 gates the IRQ line on PC UARTs */
#define LSR_THRE	 0x20
#define TIMER_DIV_1	 0x0b

static bool wait_count(volatile uint64_t *count, uint64_t target, uint64_t timeout_us)
{
	uint64_t end = tsc_after_us(timeout_us);
	while (*count < target) {
		if (tsc_passed(end))
			return false;
		cpu_relax();
	}
	return true;
}

/* KVM and QEMU run the LAPIC timer at 1 GHz, one count per ns at divide 1. */
static uint64_t lapic_timer_ticks(uint64_t *elapsed_us)
{
	uint64_t start = lapic_ticks, t0 = rdtsc();

	lapic_write(LAPIC_TIMER_DIV, TIMER_DIV_1);
	lapic_write(LAPIC_LVT_TIMER, VEC_TIMER | LVT_TIMER_PERIODIC);
	lapic_write(LAPIC_TIMER_INIT, (uint32_t)(opts.tick_us * 1000));
	wait_count(&lapic_ticks, start + opts.ticks, 2000000 + opts.ticks * opts.tick_us * 4);
	uint64_t got = lapic_ticks - start;
	*elapsed_us = (rdtsc() - t0) * 1000000 / tsc_hz();
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
	lapic_write(LAPIC_TIMER_INIT, 0);
	return got;
}

/* Each byte waits for the THRE interrupt its transmission raises. Some
 * UARTs (QEMU's) also interrupt when THRE is enabled, so count at least one
 * interrupt per byte rather than exactly one. After a timeout the rest goes
 * out unpaced, so the line stays whole either way. */
static uint64_t serial_irq_transmit(const char *s, uint64_t *bytes_acked)
{
	uint64_t start = serial_irqs;
	bool paced = true;

	*bytes_acked = 0;
	outb(COM1 + UART_MCR, MCR_DTR_RTS_OUT2);
	outb(COM1 + UART_IER, IER_THRE);
	for (; *s; s++) {
		uint64_t before = serial_irqs;
		for (int i = 0; i < 100000 && !(inb(COM1 + UART_LSR) & LSR_THRE); i++)
			cpu_relax();
		outb(COM1, *s);
		if (paced && wait_count(&serial_irqs, before + 1, 1000000))
			(*bytes_acked)++;
		else
			paced = false;
	}
	outb(COM1 + UART_IER, 0);
	return serial_irqs - start;
}

void check_timer(void)
{
	uint64_t elapsed_us, acked;

	pic_mask_all();
	lapic_enable();
	irq_enable();
	uint64_t ticks = lapic_timer_ticks(&elapsed_us);

	console_flush();
	ioapic_route(SERIAL_IRQ_PIN, VEC_SERIAL, lapic_id());
	static const char prefix[] = "CHECK timer ";
	uint64_t irqs = serial_irq_transmit(prefix, &acked);
	ioapic_mask(SERIAL_IRQ_PIN);
	irq_disable();

	uint64_t bytes = sizeof(prefix) - 1;
	bool pass = ticks >= opts.ticks && acked == bytes;
	check_finish(
	    pass, "lapic_ticks=%lu lapic_us=%lu serial_irqs=%lu serial_bytes=%lu/%lu%s", ticks,
	    elapsed_us, irqs, acked, bytes,
	    pass ? "" : (ticks < opts.ticks ? " (too few timer ticks)" : " (THRE irq missing)"));
}
