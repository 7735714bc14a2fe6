#include "monitor/vmm.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timing.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

static void on_signal(void *ctx, uint32_t events)
{
	struct vmm *m = ctx;
	struct signalfd_siginfo si;
	if (read(m->signal_fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (m->vm) {
		vm_stop_by_signal(m->vm, (int)si.ssi_signo);
		return;
	}
	log_info("signal %u: ending the monitor", si.ssi_signo);
	m->exit_code = EMBER_EXIT_SIGNAL_BASE + (int)si.ssi_signo;
	m->state = VMM_STOPPED;
	m->loop.quit = true;
}

int vmm_init(struct vmm *m)
{
	memset(m, 0, sizeof(*m));
	m->signal_fd = -1;
	m->kernel.fd = m->initrd.fd = -1;
	m->cfg = (struct vm_config){
	    .protocol = BOOT_PROTOCOL_AUTO,
	    .vcpus = VMM_DEFAULT_VCPUS,
	    .mem_mib = VMM_DEFAULT_MEM_MIB,
	    .console_out_fd = STDOUT_FILENO,
	    .console_in_fd = STDIN_FILENO,
	    .kernel_fd = -1,
	    .initrd_fd = -1,
	    .restore_mem_fd = -1,
	};
	m->allow_start = true;
	m->allow_file_writes = true;
	int r = event_loop_init(&m->loop);
	if (r < 0)
		return r;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* Blocked before any other thread exists, so every thread inherits the mask and these
	 * signals arrive only through the signalfd. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return err_set(EINVAL, "pthread_sigmask");
	m->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (m->signal_fd < 0)
		return err_errno("signalfd");
	return event_loop_add(&m->loop, m->signal_fd, EPOLLIN, on_signal, m);
}

static int dup_string(char **dst, const char *src)
{
	free(*dst);
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : err_set(ENOMEM, "out of memory");
}

int vmm_set_config(struct vmm *m, struct vm_config *cfg)
{
	int r = dup_string(&m->kernel.path, cfg->kernel_path);
	if (r == 0)
		r = dup_string(&m->initrd.path, cfg->initrd_path);
	if (r == 0)
		r = dup_string(&m->cmdline, cfg->cmdline);
	if (r < 0)
		return r;
	m->boot_source_set = cfg->kernel_path != NULL;
	m->cfg.protocol = cfg->protocol;
	m->cfg.vcpus = cfg->vcpus;
	m->cfg.mem_mib = cfg->mem_mib;
	m->cfg.boot_timer_report = cfg->boot_timer_report;
	m->cfg.ksm = cfg->ksm;
	m->cfg.console_out_fd = cfg->console_out_fd;
	m->cfg.console_in_fd = cfg->console_in_fd;
	for (unsigned i = 0; i < cfg->ndevices; i++)
		m->cfg.devices[i] = cfg->devices[i];
	m->cfg.ndevices = cfg->ndevices;
	cfg->ndevices = 0;
	return 0;
}

int vmm_open_api(struct vmm *m, const char *sock_path)
{
	return api_server_start(&m->api, sock_path, &m->loop, vmm_handle_api_call, m);
}

int vmm_start(struct vmm *m)
{
	if (m->state != VMM_NOT_STARTED)
		return err_set(EALREADY, "the VM has already been started");
	if (!m->boot_source_set)
		return err_set(EINVAL, "no boot source: set the kernel first");
	m->instance_start_ns = timing_now_ns();
	struct vm_config cfg = m->cfg;
	cfg.kernel_path = m->kernel.path;
	cfg.kernel_fd = m->kernel.fd;
	cfg.initrd_path = m->initrd.path;
	cfg.initrd_fd = m->initrd.fd;
	cfg.cmdline = m->cmdline;
	struct vm *vm = malloc(sizeof(*vm));
	if (!vm)
		return err_set(ENOMEM, "out of memory for the VM");
	int r = vm_create(vm, &cfg, &m->loop);
	if (r == 0)
		r = vm_start(vm, false);
	if (r < 0) {
		/* Nothing of the failed VM survives; the configuration stays for another try. */
		vm_destroy(vm);
		free(vm);
		return r;
	}
	m->vm = vm;
	m->state = VMM_RUNNING;
	log_info("VM started %.3f ms after process start: %s entry 0x%llx, %u vCPU(s), %llu MiB",
		 timing_ms_since_start(),
		 vm->boot.kernel.protocol == BOOT_PROTOCOL_PVH ? "PVH" : "Linux 64-bit",
		 (unsigned long long)vm->boot.entry, cfg.vcpus, (unsigned long long)cfg.mem_mib);
	return 0;
}

static void free_device_configs(struct vm_config *cfg);

int vmm_restore(struct vmm *m, struct snapshot *s, const struct snapshot_overrides *o, bool paused)
{
	if (m->state != VMM_NOT_STARTED)
		return err_set(EALREADY, "the VM has already been started");
	uint64_t t0 = timing_now_ns();
	m->instance_start_ns = t0;
	struct vm_config cfg = m->cfg;
	int r = snapshot_vm_config(s, o, &cfg);
	if (r < 0) {
		free_device_configs(&cfg);
		return r;
	}
	/* The snapshot's machine and devices replace whatever was configured. */
	free_device_configs(&m->cfg);
	m->cfg = cfg;
	m->cfg.restore_mem_fd = -1; /* the VM keeps its own copy of the mapping */
	struct vm *vm = malloc(sizeof(*vm));
	if (!vm)
		return err_set(ENOMEM, "out of memory for the VM");
	r = vm_create(vm, &cfg, &m->loop);
	if (r == 0)
		r = snapshot_restore(s, vm);
	if (r == 0)
		r = vm_start(vm, paused);
	if (r < 0) {
		vm_destroy(vm);
		free(vm);
		return r;
	}
	m->vm = vm;
	m->state = paused ? VMM_PAUSED : VMM_RUNNING;
	log_info("VM restored in %.3f ms (%.3f ms after process start), %s",
		 (double)(timing_now_ns() - t0) / 1e6, timing_ms_since_start(),
		 paused ? "paused" : "running");
	return 0;
}

int vmm_snapshot(struct vmm *m, const struct snapshot_file *state, const struct snapshot_file *mem,
		 bool diff)
{
	if (m->state != VMM_PAUSED)
		return err_set(EALREADY, "snapshots are taken of a paused VM (pause it first)");
	return snapshot_create(m->vm, &m->snap, state, mem, diff);
}

int vmm_run(struct vmm *m)
{
	int r = event_loop_run(&m->loop);
	if (r < 0) {
		log_error("%s", err_msg());
		if (m->vm)
			vm_request_stop(m->vm, VM_STOP_MONITOR_ERROR);
		else
			m->exit_code = EMBER_EXIT_MONITOR_ERROR;
	}
	if (!m->vm)
		return m->exit_code;
	struct vm *vm = m->vm;
	enum vm_stop_reason why = vm_finish(vm);
	m->state = VMM_STOPPED;
	int code = vm_exit_code(vm, why);
	double stop_ms = (double)(vm->metrics.stop_ns - timing_start_ns()) / 1e6;
	/* The API goes first: a client's stop reply is delivered before the VM is torn down. */
	api_server_stop(m->api);
	m->api = NULL;
	vm_log_stats(vm);
	vm_destroy(vm);
	double teardown_ms = (double)vm->metrics.teardown_ns / 1e6;
	free(vm);
	m->vm = NULL;
	if (code != EMBER_EXIT_OK && code < EMBER_EXIT_SIGNAL_BASE)
		fprintf(stderr, "ember: VM stopped: %s (exit code %d)\n", vm_stop_reason_name(why),
			code);
	log_info("VM stopped (%s) %.3f ms after process start; teardown took %.3f ms",
		 vm_stop_reason_name(why), stop_ms, teardown_ms);
	if (m->cfg.boot_timer_report)
		fprintf(stderr,
			"ember: exit: guest stopped %.3f ms after process start, KVM "
			"teardown %.3f ms\n",
			stop_ms, teardown_ms);
	return code;
}

static void free_device_configs(struct vm_config *cfg)
{
	for (unsigned i = 0; i < cfg->ndevices; i++) {
		const struct virtio_device_class *cls = cfg->devices[i].cls;
		if (cls->free_config)
			cls->free_config(cfg->devices[i].config);
		else
			free(cfg->devices[i].config);
	}
	cfg->ndevices = 0;
}

void vmm_destroy(struct vmm *m)
{
	api_server_stop(m->api);
	m->api = NULL;
	if (m->vm) {
		vm_destroy(m->vm);
		free(m->vm);
		m->vm = NULL;
	}
	free_device_configs(&m->cfg);
	snapshot_tracker_free(&m->snap);
	struct vmm_file *files[] = {&m->kernel, &m->initrd};
	for (unsigned i = 0; i < 2; i++) {
		free(files[i]->path);
		files[i]->path = NULL;
		if (files[i]->fd >= 0)
			close(files[i]->fd);
		files[i]->fd = -1;
	}
	free(m->cmdline);
	m->cmdline = NULL;
	if (m->signal_fd >= 0)
		close(m->signal_fd);
	m->signal_fd = -1;
	event_loop_destroy(&m->loop);
}
