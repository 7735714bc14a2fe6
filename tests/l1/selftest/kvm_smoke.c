// SPDX-License-Identifier: MIT
// KVM smoke test for the L1 harness (tests/l1/run): proves that /dev/kvm in
// the L1 VM runs a real guest.  Opens /dev/kvm, checks the API version,
// creates a VM with one memslot, loads a few bytes of real-mode code at
// 0x1000:
//     mov $0x3f8, %dx ; mov $'K', %al ; out %al, (%dx) ; hlt
// runs one vCPU and expects KVM_EXIT_IO (port 0x3f8, byte 'K') and then
// KVM_EXIT_HLT.  Exit status 0 on success, 1 on any failure.
//
//   cc -O2 -Wall -o kvm_smoke tests/l1/selftest/kvm_smoke.c
//   tests/l1/run -- ./kvm_smoke

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_SIZE  0x10000
#define CODE_ADDR 0x1000

static int fail(const char *what)
{
	fprintf(stderr, "kvm_smoke: FAIL: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(void)
{
	static const uint8_t code[] = {
	    0xba, 0xf8, 0x03, // mov $0x3f8, %dx
	    0xb0, 'K',	      // mov $'K', %al
	    0xee,	      // out %al, (%dx)
	    0xf4,	      // hlt
	};
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("open /dev/kvm");

	int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	printf("KVM_GET_API_VERSION = %d\n", api);
	if (api != 12) {
		fprintf(stderr, "kvm_smoke: FAIL: API version %d, want 12\n", api);
		return 1;
	}

	int vm = ioctl(kvm, KVM_CREATE_VM, 0UL);
	if (vm < 0)
		return fail("KVM_CREATE_VM");

	uint8_t *mem =
	    mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap guest memory");
	memcpy(mem + CODE_ADDR, code, sizeof(code));

	struct kvm_userspace_memory_region region = {
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = MEM_SIZE,
	    .userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
	if (vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (int)sizeof(struct kvm_run))
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run =
	    mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run");

	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return fail("KVM_SET_SREGS");
	struct kvm_regs regs = {.rip = CODE_ADDR, .rflags = 0x2};
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_REGS");

	int got_io = 0;
	for (int i = 0; i < 16; i++) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0)
			return fail("KVM_RUN");
		switch (run->exit_reason) {
		case KVM_EXIT_IO: {
			const uint8_t *data = (const uint8_t *)run + run->io.data_offset;
			printf("KVM_EXIT_IO: %s port 0x%x size %u count %u data '%c'\n",
			       run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.port,
			       run->io.size, run->io.count, data[0]);
			if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != 0x3f8 ||
			    run->io.size != 1 || data[0] != 'K') {
				fprintf(stderr, "kvm_smoke: FAIL: unexpected I/O exit\n");
				return 1;
			}
			got_io = 1;
			break;
		}
		case KVM_EXIT_HLT:
			printf("KVM_EXIT_HLT\n");
			if (!got_io) {
				fprintf(stderr, "kvm_smoke: FAIL: HLT before the I/O exit\n");
				return 1;
			}
			printf("kvm_smoke: PASS\n");
			return 0;
		default:
			fprintf(stderr, "kvm_smoke: FAIL: exit reason %u (hw reason 0x%llx)\n",
				run->exit_reason, (unsigned long long)run->hw.hardware_exit_reason);
			return 1;
		}
	}
	fprintf(stderr, "kvm_smoke: FAIL: no HLT after 16 exits\n");
	return 1;
}
