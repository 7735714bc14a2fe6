/* One microVM: KVM objects, guest memory, devices and vCPUs, and its lifecycle. Built in levels
 * (KVM and memory, then the in-kernel irqchip, then devices and vCPUs, then the boot image) and
 * torn down in reverse. */
#pragma once

#include "common/vm_event.h"
#include "devices/bus.h"
#include "devices/legacy/boot_timer.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/pvpanic.h"
#include "devices/legacy/serial.h"
#include "devices/virtio_mmio/device.h"
#include "memory/boot.h"
#include "memory/guest_mem.h"
#include "snapshot/uffd.h"
#include "common/event_loop.h"
#include "vcpu/cpuid.h"
#include "vcpu/vcpu.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define VM_MAX_VCPUS MPTABLE_MAX_CPUS

struct vm_device_spec {
	const struct virtio_device_class *cls;
	void *config; /* from cls->parse */
};

struct vm_device {
	const struct virtio_device_class *cls;
	void *dev;
	struct virtio_mmio_dev *transport;
};

struct vm_config {
	const char *kernel_path;
	const char *initrd_path;
	int kernel_fd, initrd_fd; /* open files to use instead of the paths (which then only name
				   * them in messages), or -1 */
	const char *cmdline;
	enum boot_protocol protocol;
	unsigned vcpus;
	uint64_t mem_mib;
	bool boot_timer_report; /* print the boot time when the guest writes the boot timer */
	int console_out_fd;
	int console_in_fd; /* -1: no console input */
	unsigned ndevices;
	struct vm_device_spec devices[VIRTIO_MMIO_MAX_DEVICES];
	/* Restore instead of boot: guest RAM is this memory file, mapped privately from
	 * restore_mem_offset; no image is loaded and no boot registers are set (the snapshot
	 * module loads the saved state after vm_create). -1: boot. */
	int restore_mem_fd;
	uint64_t restore_mem_offset;
	/* Offer guest RAM to KSM (MADV_MERGEABLE): clones' identical pages are merged. Off by
	 * default: merging is a timing side channel between tenants. */
	bool ksm;
	/* Restore through userfaultfd (snapshot/uffd.h) instead of mapping the file, when either
	 * path is set: record the pages the guest touches first, or prefetch such a list. */
	const char *uffd_record_path;
	const char *uffd_prefetch_path;
	uint64_t uffd_record_ms; /* 0: UFFD_RECORD_MS_DEFAULT */
};

struct vm_metrics {
	uint64_t start_ns;		/* vm_run() began */
	_Atomic uint64_t first_run_ns;	/* vCPU 0 first entered KVM_RUN */
	_Atomic uint64_t boot_timer_ns; /* the guest wrote the boot-timer byte */
	uint64_t stop_ns;		/* the stop was requested */
	uint64_t teardown_ns;		/* KVM objects closed */
};

struct vm {
	struct vm_config cfg;
	int kvm_fd, vm_fd;
	struct guest_mem mem;
	struct uffd_pager *uffd; /* fills mem on first touch; NULL: mem is mapped */
	struct bus pio, mmio;
	struct cpuid_table *supported_cpuid;
	struct vcpu vcpus[VM_MAX_VCPUS];
	unsigned nvcpus;
	struct vcpu_env vcpu_env;
	struct vm_events events;
	struct serial serial;
	struct i8042 i8042;
	struct pvpanic pvpanic;
	struct boot_timer boot_timer;
	struct vm_device devices[VIRTIO_MMIO_MAX_DEVICES];
	unsigned ndevices;
	struct boot_result boot;
	struct event_loop *loop; /* the vmm thread's, shared with the monitor around the VM */
	int stop_efd;		 /* written by whoever asks the VM to stop */
	int rx_room_efd;	 /* the serial port has room for input again */
	struct vcpu_pause pause;
	bool pause_ready;
	bool started;
	bool paused;
	bool dirty_logging; /* memslots carry KVM_MEM_LOG_DIRTY_PAGES */
	atomic_bool stopping;
	_Atomic int stop_reason;
	_Atomic int stop_signal;
	atomic_bool panic_seen;
	struct vm_metrics metrics;
};

/* Build the VM from its configuration, up to the moment before vCPUs start; its devices and
 * its stop event are served by `loop` (run by the caller, on the vmm thread). */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct event_loop *loop);
/* Start the vCPUs (parked at once, devices quiesced, when `paused`). When the VM stops (guest
 * reset, panic, failure, vm_request_stop) the loop is told to quit. */
int vm_start(struct vm *vm, bool paused);
/* Park every vCPU at a consistent point (pending port/MMIO accesses completed); returns when
 * all have parked. The guest's devices stay served. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* Snapshots: turn KVM's dirty-page logging on for every memslot (and the devices' own
 * tracking), and collect the pages written since the last call into `bitmap` (OR-ed in; one bit
 * per 4 KiB of guest_mem's layout). */
int vm_enable_dirty_logging(struct vm *vm);
int vm_collect_dirty(struct vm *vm, uint64_t *bitmap);
/* Ask the VM to stop (any thread); the first reason given wins. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason);
void vm_stop_by_signal(struct vm *vm, int signo);
/* Stop and join every vCPU; returns why the VM stopped. */
enum vm_stop_reason vm_finish(struct vm *vm);
void vm_destroy(struct vm *vm);
/* Log what the VM did: vCPU exits by reason and each device's transport counters. */
void vm_log_stats(const struct vm *vm);
/* The `ember` exit code for a stop reason. */
int vm_exit_code(const struct vm *vm, enum vm_stop_reason reason);
const char *vm_stop_reason_name(enum vm_stop_reason reason);
