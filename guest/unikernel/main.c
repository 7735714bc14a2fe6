/* CPL3 main: command line, check dispatch, and the ways out. */
#include "arch.h"
#include "boot.h"
#include "checks.h"
#include "console.h"
#include "lib.h"
#include "virtio.h"

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
    {"clone", check_clone},
    {"triplefault", check_triplefault},
    {"panic", check_panic},
    {"emufail", check_emufail},
    {"echo", check_echo},
    {"blk", check_blk},
    {"blk_bench", check_blk_bench},
    {"net", check_net},
    {"vsock_server", check_vsock_server},
    {"vsock_client", check_vsock_client},
    {"rng", check_rng},
    {"sse", check_sse},
    {"sse_unknown", check_sse_unknown},
};

/* check=NAME[,NAME...] tokens, concatenated in command-line order. */
static char check_list[CMDLINE_MAX];
static size_t check_list_len;

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ip=A.B.C.D, or Linux's ip=<client>:<server>:<gw>:... (the first field). */
static void parse_ipv4(const char *s, size_t len, uint32_t *out)
{
	uint32_t ip = 0;
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start = i;
		while (i < len && s[i] != '.' && s[i] != ':')
			i++;
		uint64_t v;
		if (!parse_u64(s + start, i - start, &v) || v > 255)
			return;
		ip = ip << 8 | (uint32_t)v;
		if (part < 3) {
			if (i >= len || s[i] != '.')
				return;
			i++;
		}
	}
	if (i == len || s[i] == ':')
		*out = ip;
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
	    {"virtio_irq", &opts.virtio_irq},
	    {"virtio_event_idx", &opts.virtio_event_idx},
	    {"blk_read_sectors", &opts.blk_read_sectors},
	    {"blk_write_at", &opts.blk_write_at},
	    {"blk_write_sectors", &opts.blk_write_sectors},
	    {"blk_seed", &opts.blk_seed},
	    {"blk_bench_mib", &opts.blk_bench_mib},
	    {"blk_bench_qd", &opts.blk_bench_qd},
	    {"blk_bench_secs", &opts.blk_bench_secs},
	    {"net_secs", &opts.net_secs},
	    {"udp_port", &opts.udp_port},
	    {"vsock_port", &opts.vsock_port},
	    {"vsock_conns", &opts.vsock_conns},
	    {"vsock_secs", &opts.vsock_secs},
	    {"vsock_expect", &opts.vsock_expect},
	    {"vsock_bytes", &opts.vsock_bytes},
	    {"vsock_sink", &opts.vsock_sink},
	    {"vsock_cid", &opts.vsock_cid},
	    {"sse_fep", &opts.sse_fep},
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
	if (str_eq_n(t, eq, "virtio_mmio.device")) {
		virtio_cmdline_device(t + eq + 1, len - eq - 1);
		return;
	}
	if (str_eq_n(t, eq, "ip")) {
		parse_ipv4(t + eq + 1, len - eq - 1, &opts.ip);
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
	opts.virtio_event_idx = 1;
	opts.blk_read_sectors = 64;
	opts.blk_write_at = 64;
	opts.blk_write_sectors = 64;
	opts.blk_seed = 1;
	opts.blk_bench_mib = 64;
	opts.blk_bench_qd = 16;
	opts.blk_bench_secs = 1;
	opts.ip = 0x0a00020f; /* 10.0.2.15 */
	opts.net_secs = 10;
	opts.udp_port = 7;
	opts.vsock_port = 1234;
	opts.vsock_conns = 64;
	opts.vsock_secs = 30;
	opts.vsock_bytes = 16 << 20;
	opts.vsock_cid = 2;
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
