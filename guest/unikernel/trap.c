/* Exceptions and unexpected vectors: report once and fail. Runs at CPL0. */
#include "arch.h"
#include "checks.h"
#include "console.h"

struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

__attribute__((noreturn)) void trap_report(struct trap_frame *f);

void trap_report(struct trap_frame *f)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	console_flush();
	if (current_check)
		kprintf("CHECK %s FAIL ", current_check);
	else
		kprintf("ember-unikernel: FAIL ");
	kprintf("exception vector=%lu error=0x%lx rip=0x%lx cs=0x%lx rsp=0x%lx cr2=0x%lx\n",
		f->vector, f->error, f->rip, f->cs, f->rsp, cr2);
	machine_stop(true);
}
