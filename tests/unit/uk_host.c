/* What the unikernel's drivers need from the rest of the unikernel, for a host thread: the
 * command-line options, the console, CHECK verdicts, the TSC, DMA memory and MMIO. */
#include "tests/unit/uk_host.h"
#include "guest/unikernel/apic.h"
#include "guest/unikernel/arch.h"
#include "guest/unikernel/checks.h"
#include "guest/unikernel/console.h"
#include "guest/unikernel/dma.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* From the unikernel's virtio.h, whose struct virtq would clash with Ember's. */
void virtio_cmdline_device(const char *value, size_t len);

#define MAX_TRANSPORTS 4
#define LOG_MAX	       (1u << 20)

struct options opts;
const char *current_check;

static struct guest_mem gm;
static uint64_t dma_next;
static struct virtio_mmio_dev *transports[MAX_TRANSPORTS];
static unsigned ntransports;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[LOG_MAX], log_copy[LOG_MAX];
static size_t log_len;

static pthread_t guest;
static jmp_buf check_exit;
static void (*running_check)(void);
static _Atomic bool finished;

void uk_host_init(uint64_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(p != MAP_FAILED);
	/* Identity: guest-physical address = host address, as the unikernel's page tables. */
	gm = (struct guest_mem){.fd = -1, .base = p, .total = bytes, .nregions = 1};
	gm.regions[0] =
	    (struct gmem_region){.gpa = (uint64_t)(uintptr_t)p, .size = bytes, .host = p};
	dma_next = 0;
	/* The defaults of the unikernel's parse_cmdline that the drivers read. */
	memset(&opts, 0, sizeof(opts));
	opts.virtio_event_idx = 1;
	opts.vsock_port = 1234;
	opts.vsock_conns = 64;
	opts.vsock_secs = 30;
	opts.vsock_bytes = 16 << 20;
	opts.vsock_cid = 2;
}

struct guest_mem *uk_host_mem(void)
{
	return &gm;
}

void uk_host_attach(struct virtio_mmio_dev *t)
{
	cr_assert(ntransports < MAX_TRANSPORTS);
	transports[ntransports++] = t;
	char token[64];
	int n = snprintf(token, sizeof(token), "4K@0x%llx:%u", (unsigned long long)t->base, t->irq);
	virtio_cmdline_device(token, (size_t)n);
}

static struct virtio_mmio_dev *transport_at(uint64_t addr, uint64_t *offset)
{
	for (unsigned i = 0; i < ntransports; i++) {
		if (addr >= transports[i]->base && addr - transports[i]->base < 0x1000) {
			*offset = addr - transports[i]->base;
			return transports[i];
		}
	}
	check_fail("host harness: MMIO at 0x%lx, where no transport is attached", addr);
}

static void mmio(uint64_t addr, void *data, uint32_t len, bool is_write)
{
	uint64_t off;
	struct virtio_mmio_dev *t = transport_at(addr, &off);
	virtio_mmio_access(t, off, data, len, is_write);
}

uint8_t mmio_read8(uint64_t addr)
{
	uint8_t v;
	mmio(addr, &v, 1, false);
	return v;
}

uint16_t mmio_read16(uint64_t addr)
{
	uint16_t v;
	mmio(addr, &v, 2, false);
	return v;
}

uint32_t mmio_read32(uint64_t addr)
{
	uint32_t v;
	mmio(addr, &v, 4, false);
	return v;
}

void mmio_write32(uint64_t addr, uint32_t v)
{
	mmio(addr, &v, 4, true);
}

/* ---- the console and the verdicts ---- */

void kvprintf(const char *fmt, va_list ap)
{
	pthread_mutex_lock(&log_lock);
	int n = vsnprintf(log_buf + log_len, LOG_MAX - log_len, fmt, ap);
	if (n > 0)
		log_len += (size_t)n < LOG_MAX - log_len ? (size_t)n : LOG_MAX - log_len - 1;
	pthread_mutex_unlock(&log_lock);
}

void kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
}

void console_write(const char *s, size_t n)
{
	kprintf("%.*s", (int)n, s);
}

void console_flush(void)
{
}

static void verdict(const char *what, const char *fmt, va_list ap)
{
	kprintf("CHECK %s %s ", current_check ? current_check : "?", what);
	kvprintf(fmt, ap);
	kprintf("\n");
}

void check_pass(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verdict("PASS", fmt, ap);
	va_end(ap);
}

void check_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verdict("FAIL", fmt, ap);
	va_end(ap);
	/* The unikernel would stop the machine; the harness ends the guest thread. */
	longjmp(check_exit, 1);
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
		longjmp(check_exit, 1);
}

static void *guest_main(void *arg)
{
	if (setjmp(check_exit) == 0)
		running_check();
	finished = true;
	return NULL;
}

void uk_host_start(const char *name, void (*check)(void))
{
	running_check = check;
	current_check = name;
	finished = false;
	cr_assert(pthread_create(&guest, NULL, guest_main, NULL) == 0);
}

bool uk_host_seen(const char *needle)
{
	pthread_mutex_lock(&log_lock);
	log_buf[log_len] = 0;
	bool seen = strstr(log_buf, needle) != NULL;
	pthread_mutex_unlock(&log_lock);
	return seen;
}

bool uk_host_done(void)
{
	if (!finished)
		return false;
	pthread_join(guest, NULL);
	return true;
}

const char *uk_host_console(void)
{
	pthread_mutex_lock(&log_lock);
	memcpy(log_copy, log_buf, log_len);
	log_copy[log_len] = 0;
	pthread_mutex_unlock(&log_lock);
	return log_copy;
}

/* ---- CPU, memory ---- */

uint64_t tsc_hz(void)
{
	static uint64_t hz;
	if (hz)
		return hz;
	/* Measured against the monotonic clock: good enough for the drivers' timeouts. */
	struct timespec a, b, pause = {0, 20 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &a);
	uint64_t t0 = rdtsc();
	nanosleep(&pause, NULL);
	uint64_t t1 = rdtsc();
	clock_gettime(CLOCK_MONOTONIC, &b);
	uint64_t ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
		      (uint64_t)a.tv_nsec;
	hz = (t1 - t0) * 1000000000u / (ns ? ns : 1);
	return hz ? hz : 1;
}

uint64_t tsc_after_us(uint64_t us)
{
	return rdtsc() + tsc_hz() * us / 1000000;
}

bool tsc_passed(uint64_t deadline)
{
	return (int64_t)(rdtsc() - deadline) >= 0;
}

void delay_us(uint64_t us)
{
	uint64_t end = tsc_after_us(us);
	while (!tsc_passed(end))
		cpu_relax();
}

uint64_t mapped_top(void)
{
	return MAPPED_TOP_1G;
}

void dma_reset(void)
{
	dma_next = 0;
}

void *dma_alloc(uint64_t size, uint64_t align)
{
	if (align < 16)
		align = 16;
	uint64_t at = (dma_next + align - 1) & ~(align - 1);
	if (at > gm.total || size > gm.total - at)
		check_fail("out of memory for device buffers (wanted %lu bytes)", size);
	dma_next = at + size;
	memset(gm.base + at, 0, size);
	return gm.base + at;
}

uint64_t dma_left(void)
{
	return gm.total - dma_next;
}

/* ---- no interrupt controller ---- */

__attribute__((noreturn)) static void no_interrupts(void)
{
	check_fail("host harness: interrupt mode (virtio_irq=1) needs an interrupt controller");
}

void pic_mask_all(void)
{
	no_interrupts();
}

void lapic_enable(void)
{
	no_interrupts();
}

void lapic_write(uint32_t reg, uint32_t v)
{
	no_interrupts();
}

uint32_t lapic_id(void)
{
	no_interrupts();
}

void ioapic_route(unsigned pin, uint8_t vector, uint32_t dest_apic_id)
{
	no_interrupts();
}

void ioapic_mask(unsigned pin)
{
	no_interrupts();
}
