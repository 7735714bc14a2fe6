/* Why a VM stops, and the exit codes `ember` reports for each. Devices and vCPU threads report
 * events to the VM through a vm_events sink; only the VM decides what they mean. */
#pragma once

enum vm_stop_reason {
	VM_STOP_NONE = 0,
	VM_STOP_GUEST_RESET,	   /* i8042 reset or KVM system event: the guest asked to stop */
	VM_STOP_GUEST_PANIC,	   /* pvpanic, or a reset right after a kernel panic message */
	VM_STOP_TRIPLE_FAULT,	   /* KVM_EXIT_SHUTDOWN */
	VM_STOP_EMULATION_FAILURE, /* KVM could not emulate an instruction */
	VM_STOP_INTERNAL_ERROR,	   /* other KVM internal errors, failed VM entry */
	VM_STOP_MONITOR_ERROR,	   /* the monitor itself failed */
	VM_STOP_SIGNAL,		   /* SIGINT/SIGTERM/SIGHUP: the user stopped it */
	VM_STOP_REQUEST,	   /* a client asked the monitor to stop */
};

/* `ember` exit codes; documented in --help and the README. */
enum ember_exit_code {
	EMBER_EXIT_OK = 0,
	EMBER_EXIT_MONITOR_ERROR = 1,
	EMBER_EXIT_USAGE = 2,
	EMBER_EXIT_GUEST_PANIC = 3,
	EMBER_EXIT_TRIPLE_FAULT = 4,
	EMBER_EXIT_EMULATION_FAILURE = 5,
	EMBER_EXIT_INTERNAL_ERROR = 6,
	EMBER_EXIT_SIGNAL_BASE = 128, /* + signal number, as shells report it */
};

struct vm_events {
	/* Stop the VM; the first reason reported wins. */
	void (*stop)(void *ctx, enum vm_stop_reason reason);
	/* The guest's console showed a kernel panic: a reset that follows is a panic exit. */
	void (*panic_seen)(void *ctx);
	/* The guest wrote the boot-timer byte. */
	void (*boot_timer)(void *ctx);
	void *ctx;
};
