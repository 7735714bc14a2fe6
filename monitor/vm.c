#include "monitor/vm.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timing.h"
#include "monitor/seccomp.h"
#include "memory/layout.h"
#include "vcpu/boot_regs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define KVM_API_VERSION_EXPECTED 12

/* The monitor's own command-line fragments (ARCHITECTURE.md, "Booting"). The i8042 options
 * stop Linux probing for a keyboard and mouse that are not there. */
static const char MONITOR_CMDLINE[] =
    "console=ttyS0 reboot=k panic=1 pci=off nomodules i8042.noaux i8042.nomux i8042.dumbkbd";

static int kvm_check_cap(int kvm_fd, int cap, const char *name)
{
	int r = ioctl(kvm_fd, KVM_CHECK_EXTENSION, cap);
	if (r <= 0)
		return err_set(ENOTSUP, "KVM lacks %s, which Ember needs", name);
	return 0;
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason)
{
	int none = VM_STOP_NONE;
	if (atomic_compare_exchange_strong(&vm->stop_reason, &none, (int)reason)) {
		uint64_t one = 1;
		ssize_t w = write(vm->stop_efd, &one, sizeof(one));
		(void)w;
	}
}

static void on_stop(void *ctx, enum vm_stop_reason reason)
{
	vm_request_stop(ctx, reason);
}

void vm_stop_by_signal(struct vm *vm, int signo)
{
	log_info("signal %d: stopping the VM", signo);
	int none = 0;
	atomic_compare_exchange_strong(&vm->stop_signal, &none, signo);
	vm_request_stop(vm, VM_STOP_SIGNAL);
}

static void on_panic_seen(void *ctx)
{
	struct vm *vm = ctx;
	atomic_store(&vm->panic_seen, true);
}

static void on_boot_timer(void *ctx)
{
	struct vm *vm = ctx;
	uint64_t now = timing_now_ns();
	uint64_t zero = 0;
	if (!atomic_compare_exchange_strong(&vm->metrics.boot_timer_ns, &zero, now))
		return;
	double since_start = (double)(now - timing_start_ns()) / 1e6;
	uint64_t first = atomic_load(&vm->metrics.first_run_ns);
	double since_vcpu = first ? (double)(now - first) / 1e6 : 0.0;
	if (vm->cfg.boot_timer_report) {
		char line[160];
		int n = snprintf(line, sizeof(line),
				 "ember: boot time: guest init %.3f ms after process start "
				 "(%.3f ms after the first vCPU entry)\n",
				 since_start, since_vcpu);
		ssize_t w = write(STDERR_FILENO, line, (size_t)n);
		(void)w;
	}
	log_info("boot timer written %.3f ms after process start", since_start);
}

static void serial_set_irq(void *ctx, int level)
{
	struct vm *vm = ctx;
	struct kvm_irq_level irq = {.irq = SERIAL_COM1_IRQ, .level = (uint32_t)level};
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE %u: %s", irq.irq, strerror(errno));
}

static int create_kvm(struct vm *vm)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		if (errno == ENOENT)
			return err_set(ENOENT, "/dev/kvm does not exist: this host offers no KVM "
					       "(load kvm_intel or kvm_amd, or run where "
					       "virtualization is available)");
		return err_errno("cannot open /dev/kvm");
	}
	int v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION_EXPECTED)
		return err_set(ENOTSUP, "KVM API version %d, expected %d", v,
			       KVM_API_VERSION_EXPECTED);
	static const struct {
		int cap;
		const char *name;
	} caps[] = {
	    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
	    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
	    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
	};
	for (unsigned i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		int r = kvm_check_cap(vm->kvm_fd, caps[i].cap, caps[i].name);
		if (r < 0)
			return r;
	}
	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0)
		return err_errno("KVM_CREATE_VM");

	vm->supported_cpuid = calloc(1, sizeof(*vm->supported_cpuid));
	if (!vm->supported_cpuid)
		return err_set(ENOMEM, "CPUID table");
	vm->supported_cpuid->hdr.nent = CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->supported_cpuid) < 0)
		return err_errno("KVM_GET_SUPPORTED_CPUID");

	/* VMX needs these pages for real-mode emulation; elsewhere they are no-ops. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_KVM_TSS_ADDR) < 0)
		return err_errno("KVM_SET_TSS_ADDR");
	uint64_t identity = LAYOUT_KVM_IDENTITY_ADDR;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		return err_errno("KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE, .args = {1}};
		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			return err_errno("KVM_ENABLE_CAP EXIT_ON_EMULATION_FAILURE");
	}
	return 0;
}

static void on_uffd_failure(void *ctx)
{
	vm_request_stop(ctx, VM_STOP_MONITOR_ERROR);
}

static int create_memory(struct vm *vm)
{
	const struct vm_config *c = &vm->cfg;
	if (c->restore_mem_fd >= 0 && (c->uffd_record_path || c->uffd_prefetch_path)) {
		struct uffd_options o = {.record_path = c->uffd_record_path,
					 .prefetch_path = c->uffd_prefetch_path,
					 .record_ms = c->uffd_record_ms,
					 .run_since_ns = &vm->metrics.first_run_ns,
					 .on_failure = on_uffd_failure,
					 .ctx = vm};
		return uffd_pager_start(&vm->uffd, &vm->mem, c->mem_mib * MiB, c->restore_mem_fd,
					c->restore_mem_offset, &o);
	}
	int r = vm->cfg.restore_mem_fd >= 0
		    ? gmem_create_private(&vm->mem, vm->cfg.mem_mib * MiB, vm->cfg.restore_mem_fd,
					  vm->cfg.restore_mem_offset)
		    : gmem_create(&vm->mem, vm->cfg.mem_mib * MiB);
	if (r == 0 && vm->cfg.ksm && madvise(vm->mem.base, vm->mem.total, MADV_MERGEABLE) < 0)
		return err_errno("madvise(MADV_MERGEABLE) on guest memory (is KSM built in?)");
	return r;
}

static int set_memslots(struct vm *vm, uint32_t flags)
{
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *rg = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
		    .slot = i,
		    .flags = flags,
		    .guest_phys_addr = rg->gpa,
		    .memory_size = rg->size,
		    .userspace_addr = (uint64_t)(uintptr_t)rg->host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return err_errno("KVM_SET_USER_MEMORY_REGION slot %u (0x%llx+0x%llx)", i,
					 (unsigned long long)rg->gpa, (unsigned long long)rg->size);
	}
	return 0;
}

int vm_enable_dirty_logging(struct vm *vm)
{
	if (vm->dirty_logging)
		return 0;
	int r = gmem_track_dirty(&vm->mem, true);
	if (r == 0)
		r = set_memslots(vm, KVM_MEM_LOG_DIRTY_PAGES);
	if (r == 0)
		vm->dirty_logging = true;
	return r;
}

int vm_collect_dirty(struct vm *vm, uint64_t *bitmap)
{
	if (!vm->dirty_logging)
		return err_set(EINVAL, "dirty-page logging is off");
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *rg = &vm->mem.regions[i];
		uint64_t pages = rg->size / 4096;
		uint64_t *slot_bits = calloc((pages + 63) / 64, sizeof(uint64_t));
		if (!slot_bits)
			return err_set(ENOMEM, "dirty log");
		struct kvm_dirty_log log = {.slot = i, .dirty_bitmap = slot_bits};
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
			free(slot_bits);
			return err_errno("KVM_GET_DIRTY_LOG slot %u", i);
		}
		uint64_t first = rg->file_offset / 4096;
		for (uint64_t p = 0; p < pages; p++)
			if (slot_bits[p / 64] & (1ull << (p % 64)))
				bitmap[(first + p) / 64] |= 1ull << ((first + p) % 64);
		free(slot_bits);
	}
	uint64_t total = vm->mem.total / 4096;
	for (uint64_t p = 0; p < total; p++)
		if (gmem_test_clear_dirty(&vm->mem, p))
			bitmap[p / 64] |= 1ull << (p % 64);
	return 0;
}

static int create_memslots(struct vm *vm)
{
	/* Every memslot is set before the irqchip exists: each io-bus registration queues an
	 * SRCU grace period that the next memslot change would wait for. */
	return set_memslots(vm, 0);
}

static int create_irqchip(struct vm *vm)
{
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return err_errno("KVM_CREATE_IRQCHIP");
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return err_errno("KVM_CREATE_PIT2");
	return 0;
}

static int create_devices(struct vm *vm)
{
	bus_init(&vm->pio, "port");
	bus_init(&vm->mmio, "mmio");
	serial_init(&vm->serial, vm->cfg.console_out_fd, serial_set_irq, vm, &vm->events);
	vm->serial.rx_space_efd = vm->rx_room_efd;
	i8042_init(&vm->i8042, &vm->events);
	pvpanic_init(&vm->pvpanic, &vm->events);
	boot_timer_init(&vm->boot_timer, &vm->events);
	int r = serial_register(&vm->serial, &vm->pio);
	if (r == 0)
		r = i8042_register(&vm->i8042, &vm->pio);
	if (r == 0)
		r = pvpanic_register(&vm->pvpanic, &vm->pio);
	if (r == 0)
		r = boot_timer_register(&vm->boot_timer, &vm->mmio);
	return r;
}

static int create_vcpus(struct vm *vm)
{
	vm->vcpu_env = (struct vcpu_env){
	    .pio = &vm->pio,
	    .mmio = &vm->mmio,
	    .gm = &vm->mem,
	    .events = &vm->events,
	    .stopping = &vm->stopping,
	    .first_run_ns = &vm->metrics.first_run_ns,
	    .pause = &vm->pause,
	};
	for (unsigned i = 0; i < vm->cfg.vcpus; i++) {
		int r = vcpu_create(&vm->vcpus[i], vm->kvm_fd, vm->vm_fd, i, &vm->vcpu_env);
		vm->nvcpus = i + 1;
		if (r == 0)
			r = vcpu_configure(&vm->vcpus[i], vm->supported_cpuid, vm->cfg.vcpus);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Open every device's backend, so a missing image or busy socket is reported before boot. */
static int create_virtio_devices(struct vm *vm)
{
	for (unsigned i = 0; i < vm->cfg.ndevices; i++) {
		const struct vm_device_spec *spec = &vm->cfg.devices[i];
		struct vm_device *d = &vm->devices[i];
		d->cls = spec->cls;
		int r = spec->cls->create(spec->config, i, &vm->mem, &d->dev, &d->transport);
		if (r < 0)
			return r;
		vm->ndevices = i + 1;
	}
	return 0;
}

static int attach_virtio_devices(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ndevices; i++) {
		struct vm_device *d = &vm->devices[i];
		int r = virtio_mmio_attach(d->transport, vm->vm_fd, &vm->mmio, vm->loop);
		if (r == 0)
			r = d->cls->start(d->dev, vm->loop);
		if (r < 0)
			return r;
	}
	return 0;
}

static int load_guest(struct vm *vm)
{
	/* The monitor's fragments, then one virtio_mmio.device= per device. */
	char fragments[sizeof(MONITOR_CMDLINE) + VIRTIO_MMIO_MAX_DEVICES * 64];
	size_t n = (size_t)snprintf(fragments, sizeof(fragments), "%s", MONITOR_CMDLINE);
	for (unsigned i = 0; i < vm->ndevices && n + 1 < sizeof(fragments); i++) {
		fragments[n++] = ' ';
		int w = virtio_mmio_cmdline(vm->devices[i].transport, fragments + n,
					    sizeof(fragments) - n);
		if (w < 0)
			return err_set(ENOSPC, "device list too long for the command line");
		n += (size_t)w;
	}
	struct boot_config bc = {
	    .kernel_path = vm->cfg.kernel_path,
	    .initrd_path = vm->cfg.initrd_path,
	    .kernel_fd = vm->cfg.kernel_fd,
	    .initrd_fd = vm->cfg.initrd_fd,
	    .cmdline = vm->cfg.cmdline,
	    .fragments = fragments,
	    .protocol = vm->cfg.protocol,
	    .ncpus = vm->cfg.vcpus,
	};
	int r = boot_prepare(&vm->mem, &bc, &vm->boot);
	if (r < 0)
		return r;
	if (vm->boot.kernel.protocol == BOOT_PROTOCOL_PVH)
		return boot_write_pvh_gdt(&vm->mem);
	return boot_write_long_mode_tables(&vm->mem);
}

static int set_boot_vcpu(struct vm *vm)
{
	struct vcpu *bsp = &vm->vcpus[0];
	if (vm->boot.kernel.protocol == BOOT_PROTOCOL_PVH)
		return vcpu_set_boot_state_pvh(bsp, vm->boot.entry, vm->boot.boot_info_addr);
	return vcpu_set_boot_state_long_mode(bsp, vm->boot.entry, vm->boot.boot_info_addr);
}

int vm_create(struct vm *vm, const struct vm_config *cfg, struct event_loop *loop)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->loop = loop;
	vm->kvm_fd = vm->vm_fd = vm->stop_efd = vm->rx_room_efd = -1;
	vm->mem.fd = -1;
	vm->events = (struct vm_events){
	    .stop = on_stop,
	    .panic_seen = on_panic_seen,
	    .boot_timer = on_boot_timer,
	    .ctx = vm,
	};
	vm->metrics.start_ns = timing_now_ns();
	if (cfg->vcpus == 0 || cfg->vcpus > VM_MAX_VCPUS)
		return err_set(EINVAL, "%u vCPUs asked for; 1 to %d supported", cfg->vcpus,
			       VM_MAX_VCPUS);
	int r = vcpu_pause_init(&vm->pause);
	if (r < 0)
		return r;
	vm->pause_ready = true;
	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->rx_room_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0 || vm->rx_room_efd < 0)
		return err_errno("eventfd");
	/* Images are checked and loaded into fresh guest memory before KVM is touched, so a bad
	 * image is reported as such on any host. */
	r = create_memory(vm);
	if (r == 0)
		r = create_virtio_devices(vm);
	if (r == 0 && cfg->restore_mem_fd < 0)
		r = load_guest(vm);
	if (r == 0)
		r = create_kvm(vm);
	if (r == 0)
		r = create_memslots(vm);
	if (r == 0)
		r = create_irqchip(vm);
	if (r == 0)
		r = create_devices(vm);
	if (r == 0)
		r = attach_virtio_devices(vm);
	if (r == 0)
		r = create_vcpus(vm);
	if (r == 0 && cfg->restore_mem_fd < 0)
		r = set_boot_vcpu(vm);
	return r;
}

static void on_stop_event(void *ctx, uint32_t events)
{
	struct vm *vm = ctx;
	uint64_t v;
	ssize_t n = read(vm->stop_efd, &v, sizeof(v));
	(void)n;
	vm->loop->quit = true;
}

static void read_console_input(struct vm *vm)
{
	unsigned room = serial_rx_room(&vm->serial);
	if (room == 0) {
		/* Wait for the guest to drain what it has before reading more. */
		event_loop_modify(vm->loop, vm->cfg.console_in_fd, 0);
		return;
	}
	uint8_t buf[512];
	ssize_t n = read(vm->cfg.console_in_fd, buf, room < sizeof(buf) ? room : sizeof(buf));
	if (n > 0) {
		serial_push_input(&vm->serial, buf, (unsigned)n);
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		/* End of input: the guest keeps running without a keyboard. */
		event_loop_remove(vm->loop, vm->cfg.console_in_fd);
	}
}

static void on_console_input(void *ctx, uint32_t events)
{
	read_console_input(ctx);
}

static void on_rx_room(void *ctx, uint32_t events)
{
	struct vm *vm = ctx;
	uint64_t v;
	ssize_t n = read(vm->rx_room_efd, &v, sizeof(v));
	(void)n;
	event_loop_modify(vm->loop, vm->cfg.console_in_fd, EPOLLIN);
}

static int setup_loop(struct vm *vm)
{
	int r = event_loop_add(vm->loop, vm->stop_efd, EPOLLIN, on_stop_event, vm);
	if (r == 0)
		r = event_loop_add(vm->loop, vm->rx_room_efd, EPOLLIN, on_rx_room, vm);
	if (r == 0 && vm->cfg.console_in_fd >= 0) {
		int fl = fcntl(vm->cfg.console_in_fd, F_GETFL);
		if (fl >= 0)
			fcntl(vm->cfg.console_in_fd, F_SETFL, fl | O_NONBLOCK);
		if (event_loop_add(vm->loop, vm->cfg.console_in_fd, EPOLLIN, on_console_input, vm) <
		    0) {
			/* Regular files and /dev/null cannot be polled: no console input then. */
			log_debug("console input not pollable: %s", err_msg());
			vm->cfg.console_in_fd = -1;
		}
	}
	return r;
}

int vm_start(struct vm *vm, bool paused)
{
	int r = vcpu_init_signals();
	if (r == 0)
		r = setup_loop(vm);
	if (r == 0 && paused) {
		atomic_store(&vm->pause.requested, true);
		for (unsigned i = 0; i < vm->ndevices; i++)
			if (vm->devices[i].cls->quiesce)
				vm->devices[i].cls->quiesce(vm->devices[i].dev);
		vm->paused = true;
	}
	for (unsigned i = 0; r == 0 && i < vm->nvcpus; i++)
		r = vcpu_start(&vm->vcpus[i]);
	if (r == 0) /* after the vCPU threads exist: they install their own filter */
		r = seccomp_install(SECCOMP_VMM);
	vm->started = r == 0;
	return r;
}

void vm_pause(struct vm *vm)
{
	if (vm->paused)
		return;
	vcpu_pause_all(&vm->pause, vm->vcpus, vm->nvcpus);
	/* With the vCPUs parked nothing new reaches the devices from the guest; quiescing
	 * finishes what is in flight and stops the host side writing into guest memory. */
	for (unsigned i = 0; i < vm->ndevices; i++)
		if (vm->devices[i].cls->quiesce)
			vm->devices[i].cls->quiesce(vm->devices[i].dev);
	vm->paused = true;
}

void vm_resume(struct vm *vm)
{
	if (!vm->paused)
		return;
	for (unsigned i = 0; i < vm->ndevices; i++)
		if (vm->devices[i].cls->unquiesce)
			vm->devices[i].cls->unquiesce(vm->devices[i].dev);
	vcpu_pause_release(&vm->pause);
	vm->paused = false;
}

enum vm_stop_reason vm_finish(struct vm *vm)
{
	if (!vm->metrics.stop_ns)
		vm->metrics.stop_ns = timing_now_ns();
	atomic_store(&vm->stopping, true);
	if (vm->pause_ready)
		vcpu_pause_release(&vm->pause);
	vm->paused = false;
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_join(&vm->vcpus[i]);
	return (enum vm_stop_reason)atomic_load(&vm->stop_reason);
}

void vm_destroy(struct vm *vm)
{
	vm_finish(vm);
	for (unsigned i = 0; i < vm->nvcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	vm->nvcpus = 0;
	for (unsigned i = 0; i < vm->ndevices; i++)
		vm->devices[i].cls->destroy(vm->devices[i].dev);
	vm->ndevices = 0;
	if (vm->loop && vm->stop_efd >= 0)
		event_loop_remove(vm->loop, vm->stop_efd);
	if (vm->loop && vm->rx_room_efd >= 0)
		event_loop_remove(vm->loop, vm->rx_room_efd);
	if (vm->loop && vm->cfg.console_in_fd >= 0 && vm->started)
		event_loop_remove(vm->loop, vm->cfg.console_in_fd);
	int fds[] = {vm->stop_efd, vm->rx_room_efd};
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	uint64_t t0 = timing_now_ns();
	/* Closing the VM waits for the SRCU grace periods the irqchip and PIT queued. */
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	/* Last user of guest memory gone (vCPUs, devices, KVM): the pager may stop serving. */
	uffd_pager_stop(vm->uffd);
	vm->uffd = NULL;
	gmem_destroy(&vm->mem);
	vm->metrics.teardown_ns = timing_now_ns() - t0;
	serial_destroy(&vm->serial);
	free(vm->supported_cpuid);
	vm->supported_cpuid = NULL;
	if (vm->pause_ready)
		vcpu_pause_destroy(&vm->pause);
	vm->pause_ready = false;
	vm->vm_fd = vm->kvm_fd = -1;
}

void vm_log_stats(const struct vm *vm)
{
	const char *const *names = vcpu_exit_kind_names;
	uint64_t total[VCPU_EXIT_KINDS] = {0};
	for (unsigned i = 0; i < vm->nvcpus; i++)
		for (unsigned k = 0; k < VCPU_EXIT_KINDS; k++)
			total[k] += atomic_load(&vm->vcpus[i].exits[k]);
	char line[256];
	size_t n = 0;
	for (unsigned k = 0; k < VCPU_EXIT_KINDS && n < sizeof(line); k++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%llu", names[k],
				      (unsigned long long)total[k]);
	log_info("vCPU exits:%s", line);
	for (unsigned i = 0; i < vm->ndevices; i++) {
		const struct virtio_mmio_dev *t = vm->devices[i].transport;
		log_info("%s at 0x%llx: notifies=%llu interrupts=%llu needs_reset=%llu",
			 t->ops->name, (unsigned long long)t->base,
			 (unsigned long long)t->stats.notifies,
			 (unsigned long long)t->stats.interrupts,
			 (unsigned long long)t->stats.needs_reset_events);
	}
}

const char *vm_stop_reason_name(enum vm_stop_reason reason)
{
	switch (reason) {
	case VM_STOP_NONE:
		return "running";
	case VM_STOP_GUEST_RESET:
		return "guest reset";
	case VM_STOP_GUEST_PANIC:
		return "guest panic";
	case VM_STOP_TRIPLE_FAULT:
		return "triple fault";
	case VM_STOP_EMULATION_FAILURE:
		return "emulation failure";
	case VM_STOP_INTERNAL_ERROR:
		return "KVM internal error";
	case VM_STOP_MONITOR_ERROR:
		return "monitor error";
	case VM_STOP_SIGNAL:
		return "stopped by signal";
	case VM_STOP_REQUEST:
		return "stopped on request";
	}
	return "unknown";
}

int vm_exit_code(const struct vm *vm, enum vm_stop_reason reason)
{
	switch (reason) {
	case VM_STOP_GUEST_RESET:
		return atomic_load(&vm->panic_seen) ? EMBER_EXIT_GUEST_PANIC : EMBER_EXIT_OK;
	case VM_STOP_REQUEST:
		return EMBER_EXIT_OK;
	case VM_STOP_GUEST_PANIC:
		return EMBER_EXIT_GUEST_PANIC;
	case VM_STOP_TRIPLE_FAULT:
		return EMBER_EXIT_TRIPLE_FAULT;
	case VM_STOP_EMULATION_FAILURE:
		return EMBER_EXIT_EMULATION_FAILURE;
	case VM_STOP_INTERNAL_ERROR:
		return EMBER_EXIT_INTERNAL_ERROR;
	case VM_STOP_SIGNAL:
		return EMBER_EXIT_SIGNAL_BASE + atomic_load(&vm->stop_signal);
	case VM_STOP_NONE:
	case VM_STOP_MONITOR_ERROR:
		break;
	}
	return EMBER_EXIT_MONITOR_ERROR;
}
