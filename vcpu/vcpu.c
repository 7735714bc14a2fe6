#include "vcpu/vcpu.h"
#include "vcpu/boot_regs.h"
#include "common/err.h"
#include "common/log.h"
#include "monitor/seccomp.h"
#include "common/timing.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define VCPU_KICK_SIGNAL SIGUSR1

#define MSR_IA32_TSC	      0x10
#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define MISC_ENABLE_FAST_STRING 1ull
#define MTRR_ENABLE_WB		((1ull << 11) | 6) /* MTRRs on, default type write-back */

#define APIC_LVT_LINT0	 0x350
#define APIC_LVT_LINT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_init_signals(void)
{
	struct sigaction sa = {.sa_handler = kick_handler};
	sigemptyset(&sa.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return err_errno("sigaction for the vCPU kick signal");
	return 0;
}

int vcpu_create(struct vcpu *v, int kvm_fd, int vm_fd, unsigned id, const struct vcpu_env *env)
{
	memset(v, 0, sizeof(*v));
	v->fd = -1;
	v->id = id;
	v->env = env;
	v->fd = ioctl(vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return err_errno("KVM_CREATE_VCPU %u", id);
	int size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return err_errno("KVM_GET_VCPU_MMAP_SIZE");
	v->run_size = (size_t)size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return err_errno("mmap of vCPU %u's kvm_run", id);
	}
	emulate_init(&v->emu, kvm_fd, vm_fd);
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	emulate_release(&v->emu);
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

static int set_cpuid(struct vcpu *v, const struct cpuid_table *supported, unsigned nr_vcpus)
{
	struct cpuid_table t = *supported;
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	struct cpuid_params p = {
	    .vcpu_id = v->id,
	    .nr_vcpus = nr_vcpus,
	    .tsc_khz = khz > 0 ? (uint32_t)khz : 0,
	};
	int r = cpuid_normalize(&t, &p);
	if (r < 0)
		return r;
	if (ioctl(v->fd, KVM_SET_CPUID2, &t) < 0)
		return err_errno("KVM_SET_CPUID2");
	return 0;
}

static int set_msrs(struct vcpu *v)
{
	static const struct {
		uint32_t index;
		uint64_t value;
	} boot_msrs[] = {
	    {MSR_IA32_SYSENTER_CS, 0},
	    {MSR_IA32_SYSENTER_ESP, 0},
	    {MSR_IA32_SYSENTER_EIP, 0},
	    {MSR_STAR, 0},
	    {MSR_LSTAR, 0},
	    {MSR_CSTAR, 0},
	    {MSR_SYSCALL_MASK, 0},
	    {MSR_KERNEL_GS_BASE, 0},
	    {MSR_IA32_TSC, 0},
	    {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	    {MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB},
	};
	enum { N = sizeof(boot_msrs) / sizeof(boot_msrs[0]) };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entries[N];
	} msrs = {.hdr.nmsrs = N};
	for (unsigned i = 0; i < N; i++) {
		msrs.entries[i].index = boot_msrs[i].index;
		msrs.entries[i].data = boot_msrs[i].value;
	}
	int r = ioctl(v->fd, KVM_SET_MSRS, &msrs);
	if (r < 0)
		return err_errno("KVM_SET_MSRS");
	if (r != N)
		return err_set(EINVAL, "KVM_SET_MSRS: MSR 0x%x refused", msrs.entries[r].index);
	return 0;
}

static int set_fpu(struct vcpu *v)
{
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return err_errno("KVM_SET_FPU");
	return 0;
}

static void set_lvt_mode(struct kvm_lapic_state *lapic, unsigned reg, uint32_t mode)
{
	uint32_t val;
	memcpy(&val, lapic->regs + reg, 4);
	val = (val & ~0x700u) | (mode << 8);
	memcpy(lapic->regs + reg, &val, 4);
}

static int set_lapic(struct vcpu *v)
{
	struct kvm_lapic_state lapic;
	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return err_errno("KVM_GET_LAPIC");
	set_lvt_mode(&lapic, APIC_LVT_LINT0, APIC_MODE_EXTINT);
	set_lvt_mode(&lapic, APIC_LVT_LINT1, APIC_MODE_NMI);
	if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
		return err_errno("KVM_SET_LAPIC");
	return 0;
}

int vcpu_configure(struct vcpu *v, const struct cpuid_table *supported, unsigned nr_vcpus)
{
	int r = set_cpuid(v, supported, nr_vcpus);
	if (r == 0)
		r = set_msrs(v);
	if (r == 0)
		r = set_fpu(v);
	if (r == 0)
		r = set_lapic(v);
	return r < 0 ? err_wrap(r, "vCPU %u", v->id) : 0;
}

static int set_boot_state(struct vcpu *v, bool long_mode, uint64_t entry, uint64_t info)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return err_errno("vCPU %u: KVM_GET_SREGS", v->id);
	if (long_mode)
		boot_regs_long_mode(&sregs, &regs, entry, info);
	else
		boot_regs_pvh(&sregs, &regs, entry, info);
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return err_errno("vCPU %u: KVM_SET_SREGS", v->id);
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return err_errno("vCPU %u: KVM_SET_REGS", v->id);
	return 0;
}

int vcpu_set_boot_state_long_mode(struct vcpu *v, uint64_t entry, uint64_t boot_params)
{
	return set_boot_state(v, true, entry, boot_params);
}

int vcpu_set_boot_state_pvh(struct vcpu *v, uint64_t entry, uint64_t start_info)
{
	return set_boot_state(v, false, entry, start_info);
}

void vcpu_describe_failure(struct vcpu *v, char *buf, size_t size)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	size_t n = 0;
#define OUT(...)                                                                                   \
	do {                                                                                       \
		if (n < size)                                                                      \
			n += (size_t)snprintf(buf + n, size - n, __VA_ARGS__);                     \
	} while (0)
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
		OUT("(registers unavailable: %s)", strerror(errno));
		return;
	}
	OUT("rip=0x%llx rsp=0x%llx rflags=0x%llx cr0=0x%llx cr3=0x%llx cr4=0x%llx efer=0x%llx "
	    "cs=0x%x(l=%u db=%u dpl=%u)",
	    (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
	    (unsigned long long)regs.rflags, (unsigned long long)sregs.cr0,
	    (unsigned long long)sregs.cr3, (unsigned long long)sregs.cr4,
	    (unsigned long long)sregs.efer, sregs.cs.selector, sregs.cs.l, sregs.cs.db,
	    sregs.cs.dpl);
	uint64_t linear = sregs.cs.base + regs.rip;
	if (sregs.cs.l)
		linear = regs.rip;
	uint64_t gpa;
	if (vcpu_translate(v->env->gm, &sregs, linear, &gpa) == 0) {
		OUT(" code@0x%llx:", (unsigned long long)gpa);
		for (unsigned i = 0; i < 15; i++) {
			const uint8_t *b = gmem_ptr(v->env->gm, gpa + i, 1);
			if (!b)
				break;
			OUT(" %02x", *b);
		}
	} else {
		OUT(" (RIP not in guest RAM: %s)", err_msg());
	}
#undef OUT
}

static void report_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char state[512];
	vcpu_describe_failure(v, state, sizeof(state));
	char extra[256] = "";
	size_t n = 0;
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n += (size_t)snprintf(extra, sizeof(extra), " instruction bytes from KVM:");
		unsigned len = run->emulation_failure.insn_size;
		if (len > sizeof(run->emulation_failure.insn_bytes))
			len = sizeof(run->emulation_failure.insn_bytes);
		for (unsigned i = 0; i < len && n < sizeof(extra); i++)
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, " %02x",
					      run->emulation_failure.insn_bytes[i]);
	} else {
		unsigned nd = run->internal.ndata < 16 ? run->internal.ndata : 16;
		for (unsigned i = 0; i < nd && n < sizeof(extra); i++)
			n += (size_t)snprintf(extra + n, sizeof(extra) - n, " data[%u]=0x%llx", i,
					      (unsigned long long)run->internal.data[i]);
	}
	const char *what = run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
			       ? "instruction emulation failed"
			       : "KVM internal error";
	log_error("vCPU %u: %s (suberror %u): %s%s", v->id, what, run->internal.suberror, state,
		  extra);
}

/* Serve one exit; returns the reason the VM must stop, or VM_STOP_NONE to go on. */
static enum vm_stop_reason handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		v->exits[VCPU_EXIT_IO]++;
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
		/* data_offset and the string count come from KVM, sized to the kvm_run page. */
		for (uint32_t i = 0; i < run->io.count; i++) {
			bus_access(v->env->pio, run->io.port, data, run->io.size, is_write);
			data += run->io.size;
		}
		return VM_STOP_NONE;
	}
	case KVM_EXIT_MMIO:
		v->exits[VCPU_EXIT_MMIO]++;
		bus_access(v->env->mmio, run->mmio.phys_addr, run->mmio.data,
			   run->mmio.len <= 8 ? run->mmio.len : 8, run->mmio.is_write);
		return VM_STOP_NONE;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; ours has one. A halted CPU with nothing to
		 * wake it is stuck, which the user ends with Ctrl-C. */
		v->exits[VCPU_EXIT_HLT]++;
		usleep(1000);
		return VM_STOP_NONE;
	case KVM_EXIT_SHUTDOWN: {
		v->exits[VCPU_EXIT_SHUTDOWN]++;
		char state[512];
		vcpu_describe_failure(v, state, sizeof(state));
		log_error("vCPU %u: triple fault (KVM_EXIT_SHUTDOWN): %s", v->id, state);
		return VM_STOP_TRIPLE_FAULT;
	}
	case KVM_EXIT_INTERNAL_ERROR:
		v->exits[VCPU_EXIT_INTERNAL_ERROR]++;
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
			const struct emulate_vcpu ev = {v->fd, v->id, run, v->env->gm,
							v->env->mmio};
			enum emulate_result r = emulate_after_failure(&v->emu, &ev);
			if (r == EMULATE_RESUMED) {
				/* New registers wait in kvm_run for the next KVM_RUN: a pause must
				 * enter it first, as for a pending access. */
				v->completion_pending = true;
				return VM_STOP_NONE;
			}
			log_error("vCPU %u: %s%s", v->id,
				  r == EMULATE_ERROR ? "emulation fallback failed: "
						     : "Ember cannot emulate it either: ",
				  err_msg());
		}
		report_internal_error(v);
		return run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
			   ? VM_STOP_EMULATION_FAILURE
			   : VM_STOP_INTERNAL_ERROR;
	case KVM_EXIT_FAIL_ENTRY:
		v->exits[VCPU_EXIT_OTHER]++;
		log_error("vCPU %u: VM entry failed, hardware reason 0x%llx", v->id,
			  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return VM_STOP_INTERNAL_ERROR;
	case KVM_EXIT_SYSTEM_EVENT:
		v->exits[VCPU_EXIT_SYSTEM_EVENT]++;
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
		case KVM_SYSTEM_EVENT_RESET:
			return VM_STOP_GUEST_RESET;
		case KVM_SYSTEM_EVENT_CRASH:
			return VM_STOP_GUEST_PANIC;
		default:
			log_warn("vCPU %u: system event %u ignored", v->id, run->system_event.type);
			return VM_STOP_NONE;
		}
	case KVM_EXIT_INTR:
		v->exits[VCPU_EXIT_INTR]++;
		return VM_STOP_NONE;
	default:
		v->exits[VCPU_EXIT_OTHER]++;
		log_error("vCPU %u: unexpected KVM exit reason %u", v->id, run->exit_reason);
		return VM_STOP_INTERNAL_ERROR;
	}
}

const char *const vcpu_exit_kind_names[VCPU_EXIT_KINDS] = {
    "io", "mmio", "hlt", "intr", "shutdown", "internal", "system_event", "other"};

int vcpu_pause_init(struct vcpu_pause *p)
{
	memset(p, 0, sizeof(*p));
	int r = pthread_mutex_init(&p->lock, NULL);
	if (r != 0)
		return err_set(r, "pthread_mutex_init: %s", strerror(r));
	r = pthread_cond_init(&p->cond, NULL);
	if (r != 0) {
		pthread_mutex_destroy(&p->lock);
		return err_set(r, "pthread_cond_init: %s", strerror(r));
	}
	return 0;
}

void vcpu_pause_destroy(struct vcpu_pause *p)
{
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}

void vcpu_pause_all(struct vcpu_pause *p, struct vcpu *vcpus, unsigned n)
{
	atomic_store(&p->requested, true);
	for (unsigned i = 0; i < n; i++)
		vcpu_kick(&vcpus[i]);
	pthread_mutex_lock(&p->lock);
	while (p->parked + p->gone < n)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

void vcpu_pause_release(struct vcpu_pause *p)
{
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->requested, false);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* KVM finishes an IN or MMIO read (writes the value to the guest register) on the next KVM_RUN;
 * with immediate_exit set it does that and returns at once, so the parked state is complete. */
static int complete_pending_exit(struct vcpu *v)
{
	if (!v->completion_pending)
		return 0;
	v->completion_pending = false;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	int r = ioctl(v->fd, KVM_RUN, 0);
	v->run->immediate_exit = 0;
	if (r < 0 && errno != EINTR && errno != EAGAIN)
		return err_errno("vCPU %u: KVM_RUN to complete an access", v->id);
	return 0;
}

static void park(struct vcpu *v)
{
	struct vcpu_pause *p = v->env->pause;
	if (complete_pending_exit(v) < 0) {
		log_error("%s", err_msg());
		v->env->events->stop(v->env->events->ctx, VM_STOP_MONITOR_ERROR);
	}
	pthread_mutex_lock(&p->lock);
	p->parked++;
	pthread_cond_broadcast(&p->cond);
	while (atomic_load(&p->requested) && !atomic_load(v->env->stopping))
		pthread_cond_wait(&p->cond, &p->lock);
	p->parked--;
	pthread_mutex_unlock(&p->lock);
}

static void thread_gone(struct vcpu *v)
{
	struct vcpu_pause *p = v->env->pause;
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->gone++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	char name[16];
	snprintf(name, sizeof(name), "ember-vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	seccomp_install_or_exit(SECCOMP_VCPU);

	const struct vm_events *ev = v->env->events;
	while (!atomic_load(v->env->stopping)) {
		/* The kick that follows a pause request makes KVM_RUN return at once, so a request
		 * seen false here is caught on the next round. */
		if (v->env->pause && atomic_load(&v->env->pause->requested)) {
			park(v);
			continue;
		}
		if (v->id == 0 && v->env->first_run_ns && !atomic_load(v->env->first_run_ns))
			atomic_store(v->env->first_run_ns, timing_now_ns());
		int r = ioctl(v->fd, KVM_RUN, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* KVM completes a pending access before it looks at immediate_exit.
				 */
				v->completion_pending = false;
				v->exits[VCPU_EXIT_INTR]++;
				v->run->immediate_exit = 0;
				continue;
			}
			err_errno("vCPU %u: KVM_RUN", v->id);
			log_error("%s", err_msg());
			ev->stop(ev->ctx, VM_STOP_MONITOR_ERROR);
			break;
		}
		v->completion_pending =
		    v->run->exit_reason == KVM_EXIT_IO || v->run->exit_reason == KVM_EXIT_MMIO;
		enum vm_stop_reason why = handle_exit(v);
		if (why != VM_STOP_NONE) {
			ev->stop(ev->ctx, why);
			break;
		}
	}
	thread_gone(v);
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	/* The kick signal stays blocked outside vCPU threads, so it only interrupts KVM_RUN. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return err_set(r, "vCPU %u: pthread_create: %s", v->id, strerror(r));
	v->thread_started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->thread_started)
		return;
	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *v)
{
	if (v->thread_started)
		pthread_join(v->thread, NULL);
	v->thread_started = false;
}
