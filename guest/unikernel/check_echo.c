/* echo: read one line from the console (polling the UART at CPL3) and print
 * it back, proving host input reaches the guest. */
#include "arch.h"
#include "checks.h"
#include "console.h"

#define UART_LSR	5
#define LSR_DATA_READY	0x01
#define ECHO_TIMEOUT_US 30000000
#define POLL_GAP_US	20 /* a UART poll is an exit; a TSC spin is not */

void check_echo(void)
{
	char line[128];
	size_t n = 0;
	uint64_t end = tsc_after_us(ECHO_TIMEOUT_US);

	kprintf("echo: waiting for a line on the console\n");
	for (;;) {
		if (!(inb(COM1 + UART_LSR) & LSR_DATA_READY)) {
			if (tsc_passed(end))
				check_fail("no line within %u s (%lu bytes read)",
					   ECHO_TIMEOUT_US / 1000000, (uint64_t)n);
			delay_us(POLL_GAP_US);
			continue;
		}
		char c = (char)inb(COM1);
		if (c == '\n' || c == '\r') {
			if (n)
				break;
			continue;
		}
		if (n < sizeof(line) - 1)
			line[n++] = (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	line[n] = 0;
	check_pass("line=\"%s\"", line);
}
