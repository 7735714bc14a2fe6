/* Intel MultiProcessor Specification 1.4 tables, so guests without ACPI find their CPUs, the
 * IOAPIC and how ISA interrupts reach it. IRQ n goes to IOAPIC pin n, matching KVM's default GSI
 * routing. */
#include "memory/boot.h"
#include "memory/layout.h"
#include "common/err.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#define MP_IRQ_PINS    24
#define APIC_VERSION   0x14
#define IOAPIC_VERSION 0x11

struct __attribute__((packed)) mpf_intel {
	char signature[4]; /* "_MP_" */
	uint32_t physptr;
	uint8_t length; /* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature[5];
};

struct __attribute__((packed)) mpc_table {
	char signature[4]; /* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount; /* number of entries */
	uint32_t lapic;
	uint16_t reserved_ext_len;
	uint8_t reserved_ext_checksum;
	uint8_t reserved;
};

struct __attribute__((packed)) mpc_cpu {
	uint8_t type; /* 0 */
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
};

struct __attribute__((packed)) mpc_bus {
	uint8_t type; /* 1 */
	uint8_t busid;
	char bustype[6];
};

struct __attribute__((packed)) mpc_ioapic {
	uint8_t type; /* 2 */
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
};

struct __attribute__((packed)) mpc_intsrc {
	uint8_t type; /* 3: I/O interrupt, 4: local interrupt */
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
};

enum { MP_IRQTYPE_INT = 0, MP_IRQTYPE_NMI = 1, MP_IRQTYPE_EXTINT = 3 };

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return (uint8_t)-sum;
}

int mptable_build(uint8_t *buf, size_t size, uint64_t gpa, unsigned ncpus)
{
	if (ncpus == 0 || ncpus > MPTABLE_MAX_CPUS)
		return err_set(EINVAL, "MP table: %u CPUs (1 to %d supported)", ncpus,
			       MPTABLE_MAX_CPUS);
	size_t need = sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
		      ncpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
		      sizeof(struct mpc_ioapic) + (MP_IRQ_PINS + 2) * sizeof(struct mpc_intsrc);
	if (need > size)
		return err_set(E2BIG, "MP table needs %zu bytes, has %zu", need, size);
	memset(buf, 0, need);

	uint8_t *tbl = buf + sizeof(struct mpf_intel);
	uint8_t *p = tbl + sizeof(struct mpc_table);
	uint16_t count = 0;
	const uint8_t ioapic_id = (uint8_t)ncpus;

	for (unsigned i = 0; i < ncpus; i++) {
		struct mpc_cpu c = {
		    .type = 0,
		    .apicid = (uint8_t)i,
		    .apicver = APIC_VERSION,
		    .cpuflag = 1 /* enabled */ | (i == 0 ? 2 /* bootstrap */ : 0),
		    .cpufeature = 0x600,		  /* family 6 */
		    .featureflag = (1u << 0) | (1u << 9), /* FPU, APIC */
		};
		memcpy(p, &c, sizeof(c));
		p += sizeof(c);
		count++;
	}
	struct mpc_bus bus = {.type = 1, .busid = 0, .bustype = {'I', 'S', 'A', ' ', ' ', ' '}};
	memcpy(p, &bus, sizeof(bus));
	p += sizeof(bus);
	count++;
	struct mpc_ioapic io = {.type = 2,
				.apicid = ioapic_id,
				.apicver = IOAPIC_VERSION,
				.flags = 1,
				.apicaddr = (uint32_t)LAYOUT_IOAPIC_ADDR};
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	count++;
	for (unsigned irq = 0; irq < MP_IRQ_PINS; irq++) {
		struct mpc_intsrc s = {.type = 3,
				       .irqtype = MP_IRQTYPE_INT,
				       .srcbus = 0,
				       .srcbusirq = (uint8_t)irq,
				       .dstapic = ioapic_id,
				       .dstirq = (uint8_t)irq};
		memcpy(p, &s, sizeof(s));
		p += sizeof(s);
		count++;
	}
	/* LINT0 takes the 8259's ExtINT, LINT1 the NMI, on every CPU (0xff). */
	struct mpc_intsrc lint0 = {
	    .type = 4, .irqtype = MP_IRQTYPE_EXTINT, .dstapic = 0xff, .dstirq = 0};
	struct mpc_intsrc lint1 = {
	    .type = 4, .irqtype = MP_IRQTYPE_NMI, .dstapic = 0xff, .dstirq = 1};
	memcpy(p, &lint0, sizeof(lint0));
	p += sizeof(lint0);
	memcpy(p, &lint1, sizeof(lint1));
	p += sizeof(lint1);
	count += 2;

	struct mpc_table h = {
	    .signature = {'P', 'C', 'M', 'P'},
	    .length = (uint16_t)(p - tbl),
	    .spec = 4,
	    .oem = {'E', 'M', 'B', 'E', 'R', ' ', ' ', ' '},
	    .productid = {'E', 'M', 'B', 'E', 'R', '-', 'V', 'M', ' ', ' ', ' ', ' '},
	    .oemcount = count,
	    .lapic = (uint32_t)LAYOUT_LAPIC_ADDR,
	};
	memcpy(tbl, &h, sizeof(h));
	tbl[offsetof(struct mpc_table, checksum)] = checksum(tbl, h.length);

	struct mpf_intel f = {
	    .signature = {'_', 'M', 'P', '_'},
	    .physptr = (uint32_t)(gpa + sizeof(struct mpf_intel)),
	    .length = 1,
	    .specification = 4,
	};
	memcpy(buf, &f, sizeof(f));
	buf[offsetof(struct mpf_intel, checksum)] = checksum(buf, sizeof(f));
	return (int)(p - buf);
}
