/* `ember run`: boot a guest from the command line, console on stdin/stdout. */
#include "monitor/cli.h"
#include "monitor/commands.h"
#include "monitor/seccomp.h"
#include "monitor/vm.h"
#include "monitor/vmm.h"
#include "common/err.h"
#include "common/log.h"
#include "common/timing.h"
#include "memory/layout.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void cmd_run_usage(void)
{
	printf(
	    "Usage: ember run --kernel PATH [options]\n"
	    "       ember [run] --api-sock PATH [options]\n"
	    "\n"
	    "Boot a microVM with its serial console on this terminal (guest output on stdout,\n"
	    "stdin to the guest). Ember's own messages go to stderr. With --api-sock and no\n"
	    "--kernel, the monitor waits for its configuration and a start request on the\n"
	    "control API (see emberctl --help); with both, it boots at once and serves the API.\n"
	    "\n"
	    "Options:\n"
	    "  --kernel PATH          guest kernel: vmlinux-style ELF, ELF with a PVH note, or "
	    "bzImage\n"
	    "  --initrd PATH          initial ramdisk, placed at the top of low guest RAM\n"
	    "  --cmdline STR          kernel command line; Ember appends its own part:\n"
	    "                         \"console=ttyS0 reboot=k panic=1 pci=off nomodules "
	    "i8042.*\"\n"
	    "  --vcpus N              number of vCPUs, 1 to %d (default 1)\n"
	    "  --mem-mib M            guest RAM in MiB, 2 to %llu (default %d); untouched pages "
	    "cost\n"
	    "                         the host nothing\n"
	    "  --boot-protocol P      auto (default: PVH if the ELF has a PVH note, else Linux\n"
	    "                         64-bit), linux (64-bit boot protocol), or pvh\n"
	    "  --boot-timer           print the time from process start to the guest's boot-timer\n"
	    "                         write (byte 123 at 0xc0000000) on stderr\n"
	    "  --log-level L          error, warn (default), info or debug\n"
	    "  --log-file PATH        write Ember's log there instead of stderr\n"
	    "  --api-sock PATH        serve the control API on this Unix socket (mode 0600)\n"
	    "  --ksm                  let KSM merge guest pages with identical ones (off by\n"
	    "                         default: merging is a timing side channel between tenants)\n"
	    "  --seccomp MODE         on (a forbidden system call kills the monitor), log\n"
	    "                         (default for now: the kernel logs it and lets it through),\n"
	    "                         or off\n"
	    "  -h, --help             this text\n"
	    "\n"
	    "Devices (virtio-mmio, announced on the kernel command line; repeatable):\n",
	    VM_MAX_VCPUS, LAYOUT_MAX_MEM_MIB, VMM_DEFAULT_MEM_MIB);
	for (unsigned i = 0; virtio_device_classes[i]; i++)
		printf("  --%-6s %s\n", virtio_device_classes[i]->flag,
		       virtio_device_classes[i]->usage);
	printf("\n"
	       "Exit codes:\n"
	       "  0    the guest asked to stop (i8042 reset, e.g. Linux reboot with reboot=k)\n"
	       "  1    monitor error (bad image, KVM failure, ...)\n"
	       "  2    bad command line\n"
	       "  3    guest panic (pvpanic write, or a reset right after a kernel panic message)\n"
	       "  4    triple fault\n"
	       "  5    instruction emulation failure (the report shows the bytes at RIP)\n"
	       "  6    other KVM internal error or failed VM entry\n"
	       "  128+N  stopped by signal N (130 for Ctrl-C)\n");
}

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_VCPUS,
	OPT_MEM,
	OPT_BOOT_TIMER,
	OPT_PROTOCOL,
	OPT_LOG_LEVEL,
	OPT_LOG_FILE,
	OPT_API_SOCK,
	OPT_KSM,
	OPT_SECCOMP,
	OPT_DEVICE_BASE = 512, /* + index into virtio_device_classes */
};

static const struct option base_options[] = {
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"initrd", required_argument, NULL, OPT_INITRD},
    {"cmdline", required_argument, NULL, OPT_CMDLINE},
    {"vcpus", required_argument, NULL, OPT_VCPUS},
    {"mem-mib", required_argument, NULL, OPT_MEM},
    {"boot-timer", no_argument, NULL, OPT_BOOT_TIMER},
    {"boot-protocol", required_argument, NULL, OPT_PROTOCOL},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"api-sock", required_argument, NULL, OPT_API_SOCK},
    {"ksm", no_argument, NULL, OPT_KSM},
    {"seccomp", required_argument, NULL, OPT_SECCOMP},
    {"help", no_argument, NULL, 'h'},
};

#define NBASE_OPTIONS (sizeof(base_options) / sizeof(base_options[0]))
#define MAX_CLASSES   16

/* The base options plus one per device class (--drive, --net, --vsock ...). */
static const struct option *run_options(void)
{
	static struct option opts[NBASE_OPTIONS + MAX_CLASSES + 1];
	unsigned n = 0;
	for (; n < NBASE_OPTIONS; n++)
		opts[n] = base_options[n];
	for (unsigned i = 0; virtio_device_classes[i] && i < MAX_CLASSES; i++)
		opts[n++] = (struct option){virtio_device_classes[i]->flag, required_argument, NULL,
					    OPT_DEVICE_BASE + (int)i};
	opts[n] = (struct option){NULL, 0, NULL, 0};
	return opts;
}

static void free_device_config(const struct virtio_device_class *cls, void *config)
{
	if (cls->free_config)
		cls->free_config(config);
	else
		free(config);
}

static int add_device(struct vm_config *cfg, const struct virtio_device_class *cls,
		      const char *spec)
{
	if (cfg->ndevices == VIRTIO_MMIO_MAX_DEVICES)
		return err_set(ENOSPC, "--%s %s: too many devices (at most %d in all)", cls->flag,
			       spec, VIRTIO_MMIO_MAX_DEVICES);
	void *config;
	int r = cls->parse(spec, &config);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < cfg->ndevices; i++) {
		const struct vm_device_spec *other = &cfg->devices[i];
		const char *why = other->cls == cls && cls->conflict
				      ? cls->conflict(other->config, config)
				      : NULL;
		if (why) {
			free_device_config(cls, config);
			return err_set(EEXIST, "--%s %s: %s", cls->flag, spec, why);
		}
	}
	cfg->devices[cfg->ndevices++] = (struct vm_device_spec){cls, config};
	return 0;
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "ember run: %s\nTry 'ember run --help'.\n", msg);
	return EMBER_EXIT_USAGE;
}

static int parse_run_args(int argc, char **argv, struct vm_config *cfg, const char **api_sock)
{
	uint64_t v;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", run_options(), NULL)) != -1) {
		if (c >= OPT_DEVICE_BASE) {
			if (add_device(cfg, virtio_device_classes[c - OPT_DEVICE_BASE], optarg) < 0)
				return usage_error(err_msg());
			continue;
		}
		switch (c) {
		case OPT_KERNEL:
			cfg->kernel_path = optarg;
			break;
		case OPT_INITRD:
			cfg->initrd_path = optarg;
			break;
		case OPT_CMDLINE:
			cfg->cmdline = optarg;
			break;
		case OPT_VCPUS:
			if (cli_parse_u64("--vcpus", optarg, 1, VM_MAX_VCPUS, &v) < 0)
				return usage_error(err_msg());
			cfg->vcpus = (unsigned)v;
			break;
		case OPT_MEM:
			if (cli_parse_u64("--mem-mib", optarg, 2, LAYOUT_MAX_MEM_MIB, &v) < 0)
				return usage_error(err_msg());
			cfg->mem_mib = v;
			break;
		case OPT_BOOT_TIMER:
			cfg->boot_timer_report = true;
			break;
		case OPT_PROTOCOL:
			if (strcmp(optarg, "auto") == 0)
				cfg->protocol = BOOT_PROTOCOL_AUTO;
			else if (strcmp(optarg, "linux") == 0)
				cfg->protocol = BOOT_PROTOCOL_LINUX64;
			else if (strcmp(optarg, "pvh") == 0)
				cfg->protocol = BOOT_PROTOCOL_PVH;
			else
				return usage_error("--boot-protocol: expected auto, linux or pvh");
			break;
		case OPT_LOG_LEVEL: {
			enum log_level level;
			if (log_parse_level(optarg, &level) < 0)
				return usage_error(
				    "--log-level: expected error, warn, info or debug");
			log_set_level(level);
			break;
		}
		case OPT_LOG_FILE: {
			FILE *f = fopen(optarg, "ae");
			if (!f) {
				fprintf(stderr, "ember run: --log-file %s: %m\n", optarg);
				return EMBER_EXIT_USAGE;
			}
			log_set_file(f);
			break;
		}
		case OPT_API_SOCK:
			*api_sock = optarg;
			break;
		case OPT_KSM:
			cfg->ksm = true;
			break;
		case OPT_SECCOMP: {
			enum seccomp_mode mode;
			if (seccomp_parse_mode(optarg, &mode) < 0)
				return usage_error(err_msg());
			seccomp_set_mode(mode);
			break;
		}
		case 'h':
			cmd_run_usage();
			return -1;
		case '?':
		default: {
			char msg[128];
			if (optopt)
				snprintf(msg, sizeof(msg),
					 "option -%c is unknown or lacks its value", optopt);
			else
				snprintf(msg, sizeof(msg), "unknown option or missing value: %s",
					 argv[optind - 1]);
			return usage_error(msg);
		}
		}
	}
	if (optind < argc) {
		char msg[256];
		snprintf(msg, sizeof(msg), "unexpected argument '%s'", argv[optind]);
		return usage_error(msg);
	}
	if (!cfg->kernel_path && !*api_sock)
		return usage_error(
		    "--kernel is required (or --api-sock, to configure the VM through "
		    "the control API)");
	return 0;
}

static int run_vm(struct vm_config *cfg, const char *api_sock);

int cmd_run(int argc, char **argv)
{
	struct vm_config cfg = {
	    .protocol = BOOT_PROTOCOL_AUTO,
	    .vcpus = VMM_DEFAULT_VCPUS,
	    .mem_mib = VMM_DEFAULT_MEM_MIB,
	    .console_out_fd = STDOUT_FILENO,
	    .console_in_fd = STDIN_FILENO,
	    .kernel_fd = -1,
	    .initrd_fd = -1,
	    .restore_mem_fd = -1,
	};
	const char *api_sock = NULL;
	int r = parse_run_args(argc, argv, &cfg, &api_sock);
	if (r == 0)
		r = run_vm(&cfg, api_sock);
	else if (r < 0)
		r = EMBER_EXIT_OK; /* --help */
	for (unsigned i = 0; i < cfg.ndevices; i++)
		free_device_config(cfg.devices[i].cls, cfg.devices[i].config);
	return r;
}

static int run_vm(struct vm_config *cfg, const char *api_sock)
{
	static struct vmm vmm; /* large; kept off the stack */
	int r = vmm_init(&vmm);
	if (r == 0)
		r = vmm_set_config(&vmm, cfg);
	if (r == 0 && api_sock)
		r = vmm_open_api(&vmm, api_sock);
	if (r == 0 && cfg->kernel_path)
		r = vmm_start(&vmm);
	if (r < 0) {
		fprintf(stderr, "ember: error: %s\n", err_msg());
		vmm_destroy(&vmm);
		return EMBER_EXIT_MONITOR_ERROR;
	}
	cli_console_enter(vmm.cfg.console_in_fd);
	int code = vmm_run(&vmm);
	cli_console_leave();
	vmm_destroy(&vmm);
	return code;
}
