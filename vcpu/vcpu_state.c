#include "vcpu/vcpu_state.h"
#include "common/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

struct msr_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[VCPU_STATE_MAX_MSRS];
};

int vcpu_state_msr_list(int kvm_fd, struct vcpu *v, uint32_t *idx, unsigned *n)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t indices[VCPU_STATE_MAX_MSRS];
	} list = {.hdr.nmsrs = VCPU_STATE_MAX_MSRS};
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return err_errno("KVM_GET_MSR_INDEX_LIST");
	/* KVM_GET_MSRS stops at the first MSR it cannot read (one the vCPU's CPUID does not
	 * have): drop that one and go on from there. */
	struct msr_buf *b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(ENOMEM, "MSR list");
	unsigned kept = 0;
	uint32_t pending[VCPU_STATE_MAX_MSRS];
	unsigned npending = list.hdr.nmsrs;
	memcpy(pending, list.indices, npending * sizeof(uint32_t));
	unsigned at = 0;
	while (at < npending) {
		unsigned batch = npending - at;
		b->hdr.nmsrs = batch;
		for (unsigned i = 0; i < batch; i++)
			b->e[i] = (struct kvm_msr_entry){.index = pending[at + i]};
		int r = ioctl(v->fd, KVM_GET_MSRS, b);
		if (r < 0) {
			free(b);
			return err_errno("KVM_GET_MSRS");
		}
		for (int i = 0; i < r; i++)
			idx[kept++] = pending[at + (unsigned)i];
		at += (unsigned)r + ((unsigned)r < batch ? 1 : 0);
	}
	free(b);
	*n = kept;
	return 0;
}

int vcpu_save_state(struct vcpu *v, const uint32_t *msr_idx, unsigned nmsrs, struct vcpu_state *s)
{
	memset(s, 0, sizeof(*s));
	/* mp_state first: reading it makes KVM settle pending INIT/SIPI events. */
	if (ioctl(v->fd, KVM_GET_MP_STATE, &s->mp_state) < 0)
		return err_errno("vCPU %u: KVM_GET_MP_STATE", v->id);
	if (ioctl(v->fd, KVM_GET_REGS, &s->regs) < 0)
		return err_errno("vCPU %u: KVM_GET_REGS", v->id);
	if (ioctl(v->fd, KVM_GET_SREGS, &s->sregs) < 0)
		return err_errno("vCPU %u: KVM_GET_SREGS", v->id);
	if (ioctl(v->fd, KVM_GET_XSAVE, &s->xsave) < 0)
		return err_errno("vCPU %u: KVM_GET_XSAVE", v->id);
	if (ioctl(v->fd, KVM_GET_XCRS, &s->xcrs) < 0)
		return err_errno("vCPU %u: KVM_GET_XCRS", v->id);
	if (ioctl(v->fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0)
		return err_errno("vCPU %u: KVM_GET_DEBUGREGS", v->id);
	if (ioctl(v->fd, KVM_GET_LAPIC, &s->lapic) < 0)
		return err_errno("vCPU %u: KVM_GET_LAPIC", v->id);
	if (nmsrs > VCPU_STATE_MAX_MSRS)
		return err_set(E2BIG, "vCPU %u: %u MSRs", v->id, nmsrs);
	struct msr_buf *b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(ENOMEM, "MSRs");
	b->hdr.nmsrs = nmsrs;
	for (unsigned i = 0; i < nmsrs; i++)
		b->e[i].index = msr_idx[i];
	int r = ioctl(v->fd, KVM_GET_MSRS, b);
	if (r != (int)nmsrs) {
		int e = r < 0 ? errno : EIO;
		free(b);
		return err_set(e, "vCPU %u: KVM_GET_MSRS read %d of %u", v->id, r, nmsrs);
	}
	memcpy(s->msrs, b->e, nmsrs * sizeof(s->msrs[0]));
	s->nmsrs = nmsrs;
	free(b);
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
		return err_errno("vCPU %u: KVM_GET_VCPU_EVENTS", v->id);
	return 0;
}

int vcpu_restore_state(struct vcpu *v, const struct vcpu_state *s)
{
	if (s->nmsrs > VCPU_STATE_MAX_MSRS)
		return err_set(EINVAL, "vCPU %u: %u MSRs in the snapshot", v->id, s->nmsrs);
	if (ioctl(v->fd, KVM_SET_MP_STATE, &s->mp_state) < 0)
		return err_errno("vCPU %u: KVM_SET_MP_STATE", v->id);
	if (ioctl(v->fd, KVM_SET_REGS, &s->regs) < 0)
		return err_errno("vCPU %u: KVM_SET_REGS", v->id);
	if (ioctl(v->fd, KVM_SET_SREGS, &s->sregs) < 0)
		return err_errno("vCPU %u: KVM_SET_SREGS", v->id);
	if (ioctl(v->fd, KVM_SET_XSAVE, &s->xsave) < 0)
		return err_errno("vCPU %u: KVM_SET_XSAVE", v->id);
	if (ioctl(v->fd, KVM_SET_XCRS, &s->xcrs) < 0)
		return err_errno("vCPU %u: KVM_SET_XCRS", v->id);
	if (ioctl(v->fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0)
		return err_errno("vCPU %u: KVM_SET_DEBUGREGS", v->id);
	if (ioctl(v->fd, KVM_SET_LAPIC, &s->lapic) < 0)
		return err_errno("vCPU %u: KVM_SET_LAPIC", v->id);
	struct msr_buf *b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(ENOMEM, "MSRs");
	b->hdr.nmsrs = s->nmsrs;
	memcpy(b->e, s->msrs, s->nmsrs * sizeof(s->msrs[0]));
	int r = ioctl(v->fd, KVM_SET_MSRS, b);
	if (r != (int)s->nmsrs) {
		int e = r < 0 ? errno : EINVAL;
		uint32_t bad = r >= 0 && (unsigned)r < s->nmsrs ? s->msrs[r].index : 0;
		free(b);
		return err_set(e, "vCPU %u: KVM_SET_MSRS set %d of %u (MSR 0x%x refused)", v->id, r,
			       s->nmsrs, bad);
	}
	free(b);
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &s->events) < 0)
		return err_errno("vCPU %u: KVM_SET_VCPU_EVENTS", v->id);
	return 0;
}
