/* KVM side of the emulation fallback: vCPU state in and out (sync regs, XSAVE, XCRs, IA32_XSS),
 * the instruction bytes, exception injection and the per-instruction counters. */
#include "vcpu/emulate_kvm.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timing.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define MSR_IA32_TSC	0x10
#define MSR_IA32_XSS	0xda0
#define MSR_TSC_AUX	0xc0000103
#define XSAVE_LEGACY_SZ 4096 /* struct kvm_xsave without KVM_CAP_XSAVE2 */
#define SYNC_STATE	(KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)

static struct emu_xlayout xlayout;
static pthread_once_t xlayout_once = PTHREAD_ONCE_INIT;

static void xlayout_init(void)
{
	emu_xlayout_from_host(&xlayout);
}

void emulate_init(struct vcpu_emulation *e, int kvm_fd, int vm_fd)
{
	int sync = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
	e->sync_regs_ok = sync > 0 && ((unsigned)sync & SYNC_STATE) == SYNC_STATE;
	int size = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	e->xsave2 = size > XSAVE_LEGACY_SZ;
	e->xsave_size = e->xsave2 ? (size_t)size : XSAVE_LEGACY_SZ;
	e->ready = true;
}

void emulate_release(struct vcpu_emulation *e)
{
	free(e->xsave);
	e->xsave = NULL;
}

/* --- state in --- */

static void segment_in(struct emu_segment *s, const struct kvm_segment *k)
{
	*s = (struct emu_segment){
	    .base = k->base, .selector = k->selector, .dpl = k->dpl, .l = k->l, .db = k->db};
}

static void cpu_in(struct emu_cpu *cpu, const struct kvm_regs *r, const struct kvm_sregs *s)
{
	const uint64_t gpr[16] = {r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
				  r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15};
	memcpy(cpu->gpr, gpr, sizeof(gpr));
	cpu->rip = r->rip;
	cpu->rflags = r->rflags;
	cpu->cr0 = s->cr0;
	cpu->cr2 = s->cr2;
	cpu->cr3 = s->cr3;
	cpu->cr4 = s->cr4;
	cpu->efer = s->efer;
	segment_in(&cpu->seg[EMU_ES], &s->es);
	segment_in(&cpu->seg[EMU_CS], &s->cs);
	segment_in(&cpu->seg[EMU_SS], &s->ss);
	segment_in(&cpu->seg[EMU_DS], &s->ds);
	segment_in(&cpu->seg[EMU_FS], &s->fs);
	segment_in(&cpu->seg[EMU_GS], &s->gs);
	cpu->gdt_base = s->gdt.base;
	cpu->gdt_limit = s->gdt.limit;
	cpu->idt_base = s->idt.base;
	cpu->idt_limit = s->idt.limit;
	cpu->tr_base = s->tr.base;
	/* KVM's CPL is SS.DPL (CS.DPL differs for conforming code). */
	cpu->cpl = s->ss.dpl;
	cpu->xlayout = &xlayout;
}

static void regs_out(struct kvm_regs *r, const struct emu_cpu *cpu)
{
	r->rax = cpu->gpr[0];
	r->rcx = cpu->gpr[1];
	r->rdx = cpu->gpr[2];
	r->rbx = cpu->gpr[3];
	r->rsp = cpu->gpr[4];
	r->rbp = cpu->gpr[5];
	r->rsi = cpu->gpr[6];
	r->rdi = cpu->gpr[7];
	r->r8 = cpu->gpr[8];
	r->r9 = cpu->gpr[9];
	r->r10 = cpu->gpr[10];
	r->r11 = cpu->gpr[11];
	r->r12 = cpu->gpr[12];
	r->r13 = cpu->gpr[13];
	r->r14 = cpu->gpr[14];
	r->r15 = cpu->gpr[15];
	r->rip = cpu->rip;
	r->rflags = cpu->rflags;
}

static int get_xsave(struct vcpu_emulation *e, const struct emulate_vcpu *v)
{
	if (!e->xsave) {
		e->xsave = calloc(1, e->xsave_size);
		if (!e->xsave)
			return err_set(ENOMEM, "vCPU %u: %zu bytes for its XSAVE state", v->id,
				       e->xsave_size);
	}
	if (ioctl(v->fd, e->xsave2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, e->xsave) < 0)
		return err_errno("vCPU %u: KVM_GET_XSAVE", v->id);
	return 0;
}

static int get_xcr0(const struct emulate_vcpu *v, uint64_t *xcr0)
{
	struct kvm_xcrs xcrs;
	memset(&xcrs, 0, sizeof(xcrs));
	if (ioctl(v->fd, KVM_GET_XCRS, &xcrs) < 0)
		return err_errno("vCPU %u: KVM_GET_XCRS", v->id);
	*xcr0 = 1; /* x87 only, if KVM reports nothing */
	for (unsigned i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++)
		if (xcrs.xcrs[i].xcr == 0)
			*xcr0 = xcrs.xcrs[i].value;
	return 0;
}

/* MSRs KVM does not have read as 0. */
static int get_msrs(const struct emulate_vcpu *v, const uint32_t *index, uint64_t *value,
		    unsigned n)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entry[2];
	} m;
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = n;
	for (unsigned i = 0; i < n; i++)
		m.entry[i].index = index[i];
	int r = ioctl(v->fd, KVM_GET_MSRS, &m);
	if (r < 0)
		return err_errno("vCPU %u: KVM_GET_MSRS 0x%x", v->id, index[0]);
	for (unsigned i = 0; i < n; i++)
		value[i] = (int)i < r ? m.entry[i].data : 0;
	return 0;
}

/* --- memory --- */

static void mmio_access(void *ctx, uint64_t gpa, uint8_t *data, uint32_t len, bool is_write)
{
	bus_access(ctx, gpa, data, len, is_write);
}

/* KVM's copy of the instruction bytes when it gave one, else (kvm_pvm gives none for some
 * failures) the bytes at RIP, through the guest's page tables. */
static enum emu_status decode_at_rip(const struct emulate_vcpu *v, struct emu_cpu *cpu,
				     const struct emu_mem *mem, struct emu_insn *in,
				     struct emu_fault *fault)
{
	const struct kvm_run *run = v->run;
	uint8_t bytes[EMU_MAX_INSN];
	size_t have = 0;
	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		have = run->emulation_failure.insn_size;
		if (have > EMU_MAX_INSN)
			have = EMU_MAX_INSN;
		memcpy(bytes, run->emulation_failure.insn_bytes, have);
	}
	uint64_t linear = cpu->seg[EMU_CS].l ? cpu->rip : (cpu->seg[EMU_CS].base + cpu->rip);
	for (;;) {
		int r = emu_decode(cpu, bytes, have, in);
		if (r == 0)
			return EMU_DONE;
		if (r != -EAGAIN || have == EMU_MAX_INSN)
			return EMU_UNSUPPORTED;
		/* Fetch up to the end of the page first, so that a next page that is not mapped
		 * only faults if the instruction really reaches into it. */
		uint64_t at = linear + have;
		size_t chunk = 4096 - (at & 4095);
		if (chunk > EMU_MAX_INSN - have)
			chunk = EMU_MAX_INSN - have;
		enum emu_status s = emu_fetch(cpu, mem, at, bytes + have, chunk, fault);
		if (s != EMU_DONE)
			return s;
		have += chunk;
	}
}

/* --- state out --- */

static int inject(const struct emulate_vcpu *v, const struct emu_fault *f)
{
	if (f->vector == EMU_VEC_PF) {
		struct kvm_sregs s;
		if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
			return err_errno("vCPU %u: KVM_GET_SREGS", v->id);
		s.cr2 = f->cr2;
		if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
			return err_errno("vCPU %u: KVM_SET_SREGS", v->id);
	}
	struct kvm_vcpu_events ev;
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return err_errno("vCPU %u: KVM_GET_VCPU_EVENTS", v->id);
	/* This replaces the #UD KVM queued when its emulator gave up. */
	ev.exception.injected = 1;
	ev.exception.pending = 0;
	ev.exception.nr = f->vector;
	ev.exception.has_error_code = f->has_error;
	ev.exception.error_code = f->error;
	ev.exception_has_payload = 0;
	ev.exception_payload = 0;
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return err_errno("vCPU %u: KVM_SET_VCPU_EVENTS", v->id);
	return 0;
}

static int put_state(struct vcpu_emulation *e, const struct emulate_vcpu *v,
		     const struct emu_cpu *cpu, struct kvm_regs *regs, bool synced)
{
	if ((cpu->dirty & EMU_DIRTY_FPU) && ioctl(v->fd, KVM_SET_XSAVE, e->xsave) < 0)
		return err_errno("vCPU %u: KVM_SET_XSAVE", v->id);
	if (cpu->dirty & EMU_DIRTY_SREGS) {
		struct kvm_sregs s;
		if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
			return err_errno("vCPU %u: KVM_GET_SREGS", v->id);
		s.cs.selector = cpu->seg[EMU_CS].selector;
		s.cs.dpl = cpu->seg[EMU_CS].dpl;
		s.cs.l = cpu->seg[EMU_CS].l;
		s.cs.db = cpu->seg[EMU_CS].db;
		s.cs.base = cpu->seg[EMU_CS].base;
		if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
			return err_errno("vCPU %u: KVM_SET_SREGS", v->id);
	}
	/* Writing the registers also drops the #UD KVM queued when its emulator gave up. */
	regs_out(regs, cpu);
	if (synced) {
		v->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
		return 0;
	}
	if (ioctl(v->fd, KVM_SET_REGS, regs) < 0)
		return err_errno("vCPU %u: KVM_SET_REGS", v->id);
	return 0;
}

enum emulate_result emulate_after_failure(struct vcpu_emulation *e, const struct emulate_vcpu *v)
{
	uint64_t t0 = timing_now_ns();
	pthread_once(&xlayout_once, xlayout_init);
	if (!e->ready) {
		err_set(EINVAL, "vCPU %u: emulation fallback not initialized", v->id);
		return EMULATE_ERROR;
	}
	struct kvm_run *run = v->run;
	struct kvm_regs regs_buf, *regs = &regs_buf;
	struct kvm_sregs sregs_buf, *sregs = &sregs_buf;
	bool synced = (run->kvm_valid_regs & SYNC_STATE) == SYNC_STATE;
	if (synced) {
		regs = &run->s.regs.regs;
		sregs = &run->s.regs.sregs;
	} else {
		if (ioctl(v->fd, KVM_GET_REGS, regs) < 0 ||
		    ioctl(v->fd, KVM_GET_SREGS, sregs) < 0) {
			err_errno("vCPU %u: KVM_GET_REGS/SREGS", v->id);
			return EMULATE_ERROR;
		}
		/* A guest that needed the fallback once usually needs it again: from the next exit
		 * on, KVM hands the registers over in kvm_run. */
		if (e->sync_regs_ok)
			run->kvm_valid_regs |= SYNC_STATE;
	}

	struct emu_cpu cpu;
	memset(&cpu, 0, sizeof(cpu));
	cpu_in(&cpu, regs, sregs);
	struct emu_mem mem = {.gm = v->gm, .mmio = mmio_access, .ctx = v->mmio};
	struct emu_insn in;
	struct emu_fault fault;
	memset(&fault, 0, sizeof(fault));
	enum emu_status s = decode_at_rip(v, &cpu, &mem, &in, &fault);
	if (s == EMU_UNSUPPORTED)
		return EMULATE_UNSUPPORTED;
	if (s == EMU_DONE) {
		unsigned need = emu_needs(&in);
		if ((need & EMU_NEED_FPU) && get_xsave(e, v) < 0)
			return EMULATE_ERROR;
		if ((need & EMU_NEED_XCR0) && get_xcr0(v, &cpu.xcr0) < 0)
			return EMULATE_ERROR;
		static const uint32_t xss_msr[] = {MSR_IA32_XSS};
		static const uint32_t tsc_msrs[] = {MSR_IA32_TSC, MSR_TSC_AUX};
		if ((need & EMU_NEED_XSS) && get_msrs(v, xss_msr, &cpu.xss, 1) < 0)
			return EMULATE_ERROR;
		uint64_t tsc[2];
		if (need & EMU_NEED_TSC) {
			if (get_msrs(v, tsc_msrs, tsc, 2) < 0)
				return EMULATE_ERROR;
			cpu.tsc = tsc[0];
			cpu.tsc_aux = tsc[1];
		}
		if (need & EMU_NEED_FPU) {
			cpu.fpu = (uint8_t *)e->xsave->region;
			cpu.fpu_size = e->xsave_size;
		}
		s = emu_execute(&cpu, &in, &mem, &fault);
		if (s == EMU_UNSUPPORTED)
			return EMULATE_UNSUPPORTED;
		unsigned form = emu_insn_form_index(&in);
		if (form < EMULATE_MAX_FORMS)
			e->counts[form]++;
	}

	int r;
	if (s == EMU_DONE) {
		r = put_state(e, v, &cpu, regs, synced);
	} else {
		/* A fault changes nothing but MXCSR flags (an unmasked SIMD exception). */
		r = 0;
		if ((cpu.dirty & EMU_DIRTY_FPU) && ioctl(v->fd, KVM_SET_XSAVE, e->xsave) < 0)
			r = err_errno("vCPU %u: KVM_SET_XSAVE", v->id);
		if (r == 0)
			r = inject(v, &fault);
		e->faults++;
	}
	if (r < 0)
		return EMULATE_ERROR;
	uint64_t ns = timing_now_ns() - t0;
	e->total++;
	e->total_ns += ns;
	if (s == EMU_DONE)
		log_debug("vCPU %u: emulated %s at rip=0x%llx in %.1f us", v->id,
			  emu_insn_name(&in), (unsigned long long)regs->rip, ns / 1000.0);
	else
		log_debug("vCPU %u: %s at rip=0x%llx raised vector %u (error 0x%x) in %.1f us",
			  v->id, in.form ? emu_insn_name(&in) : "instruction fetch",
			  (unsigned long long)cpu.rip, fault.vector, fault.error, ns / 1000.0);
	return EMULATE_RESUMED;
}

size_t emulate_counts(const struct vcpu_emulation *e, struct emulate_count *out, size_t max)
{
	size_t n = 0;
	unsigned forms = emu_form_count();
	for (unsigned f = 0; f < forms && f < EMULATE_MAX_FORMS; f++) {
		uint64_t c = e->counts[f];
		if (!c)
			continue;
		const char *name = emu_form_name(f);
		size_t k = 0;
		while (k < n && strcmp(out[k].name, name) != 0)
			k++;
		if (k < n) {
			out[k].count += c;
		} else if (n < max) {
			out[n++] = (struct emulate_count){name, c};
		}
	}
	return n;
}
