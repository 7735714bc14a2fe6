/* CPL3 main: command line, check dispatch, and the ways out. */
#include "arch.h"
#include "boot.h"
#include "checks.h"
#include "console.h"
#include "lib.h"

struct options opts;
const char *current_check __attribute__((section(".data")));

static const struct {
	const char *name;
	void (*run)(void);
} checks[] = {
    {"hello", check_hello},
    {"bootinfo", check_bootinfo},
    {"timer", check_timer},
    {"smp", check_smp},
    {"mem", check_mem},
    {"counter", check_counter},
    {"triplefault", check_triplefault},
    {"panic", check_panic},
    {"emufail", check_emufail},
    {"echo", check_echo},
};

/* check=NAME[,NAME...] tokens, concatenated in command-line order. */
static char check_list[CMDLINE_MAX];
static size_t check_list_len;

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void parse_token(const char *t, size_t len)
{
	static const struct {
		const char *key;
		uint64_t *value;
	} numbers[] = {
	    {"mem_mib", &opts.mem_mib},
	    {"cpus", &opts.cpus},
	    {"ticks", &opts.ticks},
	    {"tick_us", &opts.tick_us},
	};
	size_t eq = 0;

	while (eq < len && t[eq] != '=')
		eq++;
	if (eq == len)
		return;
	if (str_eq_n(t, eq, "check")) {
		if (check_list_len)
			check_list[check_list_len++] = ',';
		memcpy(check_list + check_list_len, t + eq + 1, len - eq - 1);
		check_list_len += len - eq - 1;
		return;
	}
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		uint64_t v;
		if (str_eq_n(t, eq, numbers[i].key) && parse_u64(t + eq + 1, len - eq - 1, &v))
			*numbers[i].value = v;
	}
}

static void parse_cmdline(const char *s)
{
	opts.mem_mib = 16;
	opts.ticks = 10;
	opts.tick_us = 250; /* KVM stretches periodic LAPIC timers below 200 us */
	while (*s) {
		while (is_space(*s))
			s++;
		size_t len = 0;
		while (s[len] && !is_space(s[len]))
			len++;
		if (len)
			parse_token(s, len);
		s += len;
	}
	if (!check_list_len) {
		memcpy(check_list, "hello", 5);
		check_list_len = 5;
	}
}

static void run_check(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		if (str_eq_n(name, len, checks[i].name)) {
			current_check = checks[i].name;
			checks[i].run();
			current_check = 0;
			return;
		}
	}
	char unknown[64];
	size_t n = len < sizeof(unknown) - 1 ? len : sizeof(unknown) - 1;
	memcpy(unknown, name, n);
	unknown[n] = 0;
	current_check = unknown;
	check_fail("unknown check");
}

__attribute__((noreturn)) void user_main(uint32_t proto, uint64_t info)
{
	*(volatile uint8_t *)(uintptr_t)BOOT_TIMER_ADDR = 123;
	kprintf("ember-unikernel: main\n");
	boot_parse(proto, info);
	parse_cmdline(boot.cmdline);

	for (size_t start = 0; start < check_list_len;) {
		size_t end = start;
		while (end < check_list_len && check_list[end] != ',')
			end++;
		if (end > start)
			run_check(check_list + start, end - start);
		start = end + 1;
	}
	kprintf("ember-unikernel: done\n");
	machine_stop(false);
}

static void report(const char *verdict, const char *fmt, va_list ap)
{
	kprintf("CHECK %s %s ", current_check, verdict);
	kvprintf(fmt, ap);
	kprintf("\n");
}

void check_pass(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report("PASS", fmt, ap);
	va_end(ap);
}

void check_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report("FAIL", fmt, ap);
	va_end(ap);
	machine_stop(true);
}

void check_finish(bool pass, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kprintf("%s ", pass ? "PASS" : "FAIL");
	kvprintf(fmt, ap);
	kprintf("\n");
	va_end(ap);
	if (!pass)
		machine_stop(true);
}

/* pvpanic tells Ember (and QEMU) the run failed; the i8042 reset ends the VM.
 * Should the reset not stop us, halt for good: hlt needs CPL0. */
void machine_stop(bool failed)
{
	console_flush();
	irq_disable();
	if (failed)
		outb(PVPANIC_PORT, 1);
	outb(I8042_CMD, 0xfe);
	for (;;) {
		if (current_cpl() == 0)
			__asm__ volatile("cli; hlt");
		else
			__asm__ volatile("int %0" : : "i"(VEC_SERVICE), "a"(SERVICE_HALT));
	}
}
