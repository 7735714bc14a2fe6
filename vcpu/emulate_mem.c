/* Operand addresses and guest memory for the emulator: the guest's segmentation (bases only) and
 * paging with its permission checks, accessed and dirty bits, RAM through the checked accessor
 * and every other physical address through the MMIO callback. Every page of an access is
 * translated before any byte moves, so a fault leaves memory untouched. */
#include "vcpu/emulate_impl.h"
#include "common/err.h"

#include <errno.h>

#define CR0_WP	  (1ull << 16)
#define CR0_PG	  (1ull << 31)
#define CR4_PSE	  (1ull << 4)
#define CR4_PAE	  (1ull << 5)
#define CR4_LA57  (1ull << 12)
#define CR4_SMEP  (1ull << 20)
#define CR4_SMAP  (1ull << 21)
#define EFER_NXE  (1ull << 11)
#define EFER_LMA  (1ull << 10)
#define RFLAGS_AC (1ull << 18)

#define PTE_P	  (1ull << 0)
#define PTE_RW	  (1ull << 1)
#define PTE_US	  (1ull << 2)
#define PTE_A	  (1ull << 5)
#define PTE_D	  (1ull << 6)
#define PTE_PS	  (1ull << 7)
#define PTE_XD	  (1ull << 63)
#define ADDR_MASK 0x000ffffffffff000ull

#define PF_P	(1u << 0)
#define PF_W	(1u << 1)
#define PF_U	(1u << 2)
#define PF_RSVD (1u << 3)
#define PF_I	(1u << 4)

#define PAGE_SIZE      4096ull
#define MAX_PAGES      8 /* the largest access: an XSAVE area with AVX-512 spans 2 */
#define MMIO_MAX_CHUNK 8

enum access { ACC_READ, ACC_WRITE, ACC_FETCH };

struct walk {
	const struct emu_cpu *cpu;
	const struct emu_mem *mem;
	struct emu_fault *fault;
	enum access acc;
};

static enum emu_status page_fault(const struct walk *w, uint64_t linear, uint32_t error)
{
	if (w->acc == ACC_WRITE)
		error |= PF_W;
	if (w->cpu->cpl == 3)
		error |= PF_U;
	if (w->acc == ACC_FETCH && (w->cpu->efer & EFER_NXE || w->cpu->cr4 & CR4_SMEP))
		error |= PF_I;
	*w->fault = (struct emu_fault){
	    .vector = EMU_VEC_PF, .has_error = true, .error = error, .cr2 = linear};
	return EMU_FAULT;
}

static void *table_entry(const struct walk *w, uint64_t gpa, unsigned size)
{
	void *p = gmem_ptr(w->mem->gm, gpa, size);
	if (!p)
		err_set(EFAULT, "page table entry at 0x%llx is outside guest RAM",
			(unsigned long long)gpa);
	return p;
}

static uint64_t entry_load(void *p, unsigned size)
{
	if (size == 8)
		return __atomic_load_n((uint64_t *)p, __ATOMIC_ACQUIRE);
	return __atomic_load_n((uint32_t *)p, __ATOMIC_ACQUIRE);
}

/* Set accessed (and, on a leaf for writes, dirty) bits as the CPU does: atomically, since other
 * vCPUs may be walking or editing the same tables. */
static void entry_set(const struct walk *w, void *p, unsigned size, uint64_t old, uint64_t bits)
{
	if ((old & bits) == bits)
		return;
	if (size == 8)
		__atomic_fetch_or((uint64_t *)p, bits, __ATOMIC_ACQ_REL);
	else
		__atomic_fetch_or((uint32_t *)p, (uint32_t)bits, __ATOMIC_ACQ_REL);
	/* KVM's dirty log sees only the guest's own writes; diff snapshots need this one too. */
	gmem_mark_dirty(w->mem->gm, p, size);
}

static enum emu_status translate(const struct walk *w, uint64_t linear, uint64_t *gpa)
{
	const struct emu_cpu *cpu = w->cpu;
	if (!(cpu->cr0 & CR0_PG)) {
		*gpa = linear & 0xffffffffull;
		return EMU_DONE;
	}
	bool nxe = cpu->efer & EFER_NXE;
	unsigned size = 8, levels, bits_per_level = 9;
	uint64_t table;
	if (cpu->efer & EFER_LMA) {
		levels = (cpu->cr4 & CR4_LA57) ? 5 : 4;
		table = cpu->cr3 & ADDR_MASK;
	} else if (cpu->cr4 & CR4_PAE) {
		void *p = table_entry(w, (cpu->cr3 & 0xffffffe0u) + ((linear >> 30) & 3) * 8, 8);
		if (!p)
			return EMU_UNSUPPORTED;
		uint64_t pdpte = entry_load(p, 8);
		if (!(pdpte & PTE_P))
			return page_fault(w, linear, 0);
		levels = 2;
		table = pdpte & ADDR_MASK;
	} else {
		size = 4;
		levels = 2;
		bits_per_level = 10;
		table = cpu->cr3 & 0xfffff000u;
	}

	bool writable = true, user = true, xd = false;
	for (unsigned level = levels; level >= 1; level--) {
		unsigned shift = 12 + bits_per_level * (level - 1);
		uint64_t idx = (linear >> shift) & ((1u << bits_per_level) - 1);
		void *p = table_entry(w, table + idx * size, size);
		if (!p)
			return EMU_UNSUPPORTED;
		uint64_t e = entry_load(p, size);
		if (!(e & PTE_P))
			return page_fault(w, linear, 0);
		bool leaf = level == 1;
		if (!leaf && (e & PTE_PS)) {
			if (size == 8 && level >= 4)
				return page_fault(w, linear, PF_P | PF_RSVD);
			/* 1 GiB and 2 MiB pages; 4 MiB ones in 32-bit paging with CR4.PSE */
			leaf = size == 8 || (cpu->cr4 & CR4_PSE);
		}
		if (size == 8 && (e & PTE_XD) && !nxe)
			return page_fault(w, linear, PF_P | PF_RSVD);
		writable = writable && (e & PTE_RW);
		user = user && (e & PTE_US);
		xd = xd || (size == 8 && (e & PTE_XD));
		if (!leaf) {
			entry_set(w, p, size, e, PTE_A);
			table = size == 8 ? e & ADDR_MASK : e & 0xfffff000u;
			continue;
		}

		bool sup = cpu->cpl < 3;
		if (!sup && !user)
			return page_fault(w, linear, PF_P);
		if (w->acc == ACC_WRITE && !writable && (!sup || (cpu->cr0 & CR0_WP)))
			return page_fault(w, linear, PF_P);
		if (w->acc == ACC_FETCH) {
			if (xd && nxe)
				return page_fault(w, linear, PF_P);
			if (sup && user && (cpu->cr4 & CR4_SMEP))
				return page_fault(w, linear, PF_P);
		} else if (sup && user && (cpu->cr4 & CR4_SMAP) && !(cpu->rflags & RFLAGS_AC)) {
			return page_fault(w, linear, PF_P);
		}
		entry_set(w, p, size, e, PTE_A | (w->acc == ACC_WRITE ? PTE_D : 0));
		uint64_t page_mask = (1ull << shift) - 1;
		uint64_t base = size == 8 ? e & ADDR_MASK : e & 0xfffff000u;
		if (size == 4 &&
		    shift == 22) /* 4 MiB page: PSE-36 bits 13-20 give address bits 32-39 */
			base = (e & 0xffc00000u) | ((e >> 13) & 0xffull) << 32;
		*gpa = (base & ~page_mask) | (linear & page_mask);
		return EMU_DONE;
	}
	return page_fault(w, linear, 0);
}

void emu_phys_access(const struct emu_mem *mem, uint64_t gpa, void *buf, size_t len, bool is_write)
{
	uint8_t *host = gmem_ptr(mem->gm, gpa, len);
	if (host) {
		if (is_write) {
			memcpy(host, buf, len);
			gmem_mark_dirty(mem->gm, host, len);
		} else {
			memcpy(buf, host, len);
		}
		return;
	}
	/* MMIO in the pieces KVM would hand out: at most 8 bytes each. */
	uint8_t *b = buf;
	while (len) {
		uint32_t n = len < MMIO_MAX_CHUNK ? (uint32_t)len : MMIO_MAX_CHUNK;
		if (mem->mmio)
			mem->mmio(mem->ctx, gpa, b, n, is_write);
		else if (!is_write)
			memset(b, 0xff, n);
		gpa += n;
		b += n;
		len -= n;
	}
}

static bool is_canonical(const struct emu_cpu *cpu, uint64_t linear)
{
	unsigned bits = (cpu->cr4 & CR4_LA57) ? 57 : 48;
	return (uint64_t)((int64_t)(linear << (64 - bits)) >> (64 - bits)) == linear;
}

static bool long_mode(const struct emu_cpu *cpu)
{
	return (cpu->efer & EFER_LMA) && cpu->seg[EMU_CS].l;
}

/* Translate every page of [linear, linear+len) before touching any of it. */
static enum emu_status access(const struct walk *w, uint64_t linear, void *buf, size_t len)
{
	uint64_t gpas[MAX_PAGES];
	size_t sizes[MAX_PAGES];
	unsigned n = 0;
	bool wide = long_mode(w->cpu);
	if (len == 0)
		return EMU_DONE;
	if (wide && !is_canonical(w->cpu, linear + len - 1)) {
		*w->fault = (struct emu_fault){.vector = EMU_VEC_GP, .has_error = true};
		return EMU_FAULT;
	}
	for (uint64_t at = linear, left = len; left;) {
		if (n == MAX_PAGES) {
			err_set(E2BIG, "a %zu-byte memory operand", len);
			return EMU_UNSUPPORTED;
		}
		if (!wide)
			at &= 0xffffffffull;
		uint64_t chunk = PAGE_SIZE - (at & (PAGE_SIZE - 1));
		if (chunk > left)
			chunk = left;
		enum emu_status s = translate(w, at, &gpas[n]);
		if (s != EMU_DONE)
			return s;
		sizes[n++] = chunk;
		at += chunk;
		left -= chunk;
	}
	uint8_t *b = buf;
	for (unsigned i = 0; i < n; i++) {
		/* Code is never fetched from MMIO: a device read may have side effects. */
		if (w->acc == ACC_FETCH && !gmem_ptr(w->mem->gm, gpas[i], sizes[i])) {
			err_set(EFAULT, "instruction fetch from 0x%llx, which is not guest RAM",
				(unsigned long long)gpas[i]);
			return EMU_UNSUPPORTED;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		emu_phys_access(w->mem, gpas[i], b, sizes[i], w->acc == ACC_WRITE);
		b += sizes[i];
	}
	return EMU_DONE;
}

enum emu_status emu_read(struct emu_ctx *c, uint64_t linear, void *buf, size_t len)
{
	struct walk w = {c->cpu, c->mem, c->fault, ACC_READ};
	return access(&w, linear, buf, len);
}

enum emu_status emu_write(struct emu_ctx *c, uint64_t linear, const void *buf, size_t len)
{
	struct walk w = {c->cpu, c->mem, c->fault, ACC_WRITE};
	return access(&w, linear, (void *)buf, len);
}

static enum emu_status check_range(const struct walk *w, uint64_t linear, size_t len)
{
	bool wide = long_mode(w->cpu);
	if (wide && !is_canonical(w->cpu, linear + len - 1)) {
		*w->fault = (struct emu_fault){.vector = EMU_VEC_GP, .has_error = true};
		return EMU_FAULT;
	}
	/* One byte per page is enough: permissions are per page. */
	for (uint64_t at = linear & ~(PAGE_SIZE - 1); at < linear + len; at += PAGE_SIZE) {
		uint64_t gpa, probe = at < linear ? linear : at;
		enum emu_status s = translate(w, wide ? probe : probe & 0xffffffffull, &gpa);
		if (s != EMU_DONE)
			return s;
	}
	return EMU_DONE;
}

enum emu_status emu_check_read(struct emu_ctx *c, uint64_t linear, size_t len)
{
	struct walk w = {c->cpu, c->mem, c->fault, ACC_READ};
	return check_range(&w, linear, len);
}

enum emu_status emu_check_write(struct emu_ctx *c, uint64_t linear, size_t len)
{
	struct walk w = {c->cpu, c->mem, c->fault, ACC_WRITE};
	return check_range(&w, linear, len);
}

enum emu_status emu_rmw(struct emu_ctx *c, uint64_t linear, size_t len, void **host, uint64_t *gpa)
{
	struct walk w = {c->cpu, c->mem, c->fault, ACC_WRITE};
	if (long_mode(c->cpu) && !is_canonical(c->cpu, linear + len - 1))
		return emu_raise_err(c, EMU_VEC_GP, 0);
	enum emu_status s = translate(&w, linear, gpa);
	if (s != EMU_DONE)
		return s;
	*host = gmem_ptr(c->mem->gm, *gpa, len);
	return EMU_DONE;
}

enum emu_status emu_ea(struct emu_ctx *c, uint64_t extra, uint64_t *linear)
{
	const struct emu_insn *in = c->in;
	const struct emu_cpu *cpu = c->cpu;
	uint64_t ea = (uint64_t)in->disp;
	if (in->base == 16)
		ea += cpu->rip + in->len;
	else if (in->base >= 0)
		ea += cpu->gpr[in->base];
	if (in->index >= 0)
		ea += cpu->gpr[in->index] << in->scale;
	ea += extra;
	if (in->addrsize == 4)
		ea &= 0xffffffffull;

	int seg = in->seg;
	bool stack = in->base == 4 || in->base == 5;
	if (seg < 0)
		seg = stack ? EMU_SS : EMU_DS;
	if (in->long64) {
		if (seg == EMU_FS || seg == EMU_GS)
			ea += cpu->seg[seg].base;
		if (!is_canonical(cpu, ea))
			return emu_raise_err(c, seg == EMU_SS ? EMU_VEC_SS : EMU_VEC_GP, 0);
	} else {
		ea = (ea + cpu->seg[seg].base) & 0xffffffffull;
	}
	*linear = ea;
	return EMU_DONE;
}

enum emu_status emu_fetch(const struct emu_cpu *cpu, const struct emu_mem *mem, uint64_t linear,
			  uint8_t *buf, size_t len, struct emu_fault *fault)
{
	struct walk w = {cpu, mem, fault, ACC_FETCH};
	return access(&w, linear, buf, len);
}
