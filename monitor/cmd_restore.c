/* `ember restore`: a microVM from a snapshot, in the foreground, console on stdin/stdout. */
#include "common/err.h"
#include "common/log.h"
#include "common/vm_event.h"
#include "monitor/cli.h"
#include "monitor/commands.h"
#include "monitor/seccomp.h"
#include "monitor/vmm.h"
#include "snapshot/snapshot.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(void)
{
	printf(
	    "Usage: ember restore --state FILE --mem FILE [options]\n"
	    "\n"
	    "Resume a microVM from a snapshot (emberctl snapshot create). Guest RAM is the memory\n"
	    "file mapped copy-on-write: pages load as the guest touches them, and every clone\n"
	    "restored from the same files shares the pages it has not written. The files are\n"
	    "never modified. The guest's clocks move forward by the time since the snapshot.\n"
	    "\n"
	    "Options:\n"
	    "  --state FILE        the snapshot's state file\n"
	    "  --mem FILE          its memory file (for a diff snapshot: the base's)\n"
	    "  --diff-mem FILE     a diff snapshot's own memory file, layered on --mem\n"
	    "  --vsock-uds PATH    this clone's vsock host socket (the saved one may be in use)\n"
	    "  --vsock-cid N       this clone's guest CID\n"
	    "  --tap NAME          this clone's tap for the first network device\n"
	    "  --mac MAC           this clone's MAC for the first network device\n"
	    "  --paused            stay paused (resume through the API)\n"
	    "  --uffd-record FILE  fill guest RAM on first touch through userfaultfd, and write\n"
	    "                      the pages touched first (in order) to FILE\n"
	    "  --uffd-record-ms N  how much guest run time to record (default 1000)\n"
	    "  --uffd-prefetch FILE  through userfaultfd too, copying FILE's pages in before the\n"
	    "                      guest runs (a list from --uffd-record of the same snapshot)\n"
	    "  --api-sock PATH     serve the control API on this Unix socket\n"
	    "  --log-level L       error, warn (default), info or debug\n"
	    "  --log-file PATH     write Ember's log there instead of stderr\n"
	    "  --seccomp MODE      on, log (default for now) or off, as for ember run\n"
	    "  -h, --help          this text\n"
	    "\n"
	    "Exit codes are those of ember run (ember run --help).\n");
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "ember restore: %s\nTry 'ember restore --help'.\n", msg);
	return EMBER_EXIT_USAGE;
}

enum {
	O_STATE = 256,
	O_MEM,
	O_DIFF_MEM,
	O_VSOCK_UDS,
	O_VSOCK_CID,
	O_TAP,
	O_MAC,
	O_PAUSED,
	O_KSM,
	O_API_SOCK,
	O_LOG_LEVEL,
	O_LOG_FILE,
	O_SECCOMP,
	O_UFFD_RECORD,
	O_UFFD_RECORD_MS,
	O_UFFD_PREFETCH,
};

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, O_STATE},
	    {"mem", required_argument, NULL, O_MEM},
	    {"diff-mem", required_argument, NULL, O_DIFF_MEM},
	    {"vsock-uds", required_argument, NULL, O_VSOCK_UDS},
	    {"vsock-cid", required_argument, NULL, O_VSOCK_CID},
	    {"tap", required_argument, NULL, O_TAP},
	    {"mac", required_argument, NULL, O_MAC},
	    {"paused", no_argument, NULL, O_PAUSED},
	    {"ksm", no_argument, NULL, O_KSM},
	    {"api-sock", required_argument, NULL, O_API_SOCK},
	    {"log-level", required_argument, NULL, O_LOG_LEVEL},
	    {"log-file", required_argument, NULL, O_LOG_FILE},
	    {"seccomp", required_argument, NULL, O_SECCOMP},
	    {"uffd-record", required_argument, NULL, O_UFFD_RECORD},
	    {"uffd-record-ms", required_argument, NULL, O_UFFD_RECORD_MS},
	    {"uffd-prefetch", required_argument, NULL, O_UFFD_PREFETCH},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *state = NULL, *mem = NULL, *diff_mem = NULL, *api_sock = NULL;
	struct snapshot_overrides ov = {.tap_fd = -1};
	bool paused = false, ksm = false;
	const char *uffd_record = NULL, *uffd_prefetch = NULL;
	uint64_t uffd_record_ms = 0;
	uint64_t v;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_STATE:
			state = optarg;
			break;
		case O_MEM:
			mem = optarg;
			break;
		case O_DIFF_MEM:
			diff_mem = optarg;
			break;
		case O_VSOCK_UDS:
			ov.vsock_uds = optarg;
			break;
		case O_VSOCK_CID:
			if (cli_parse_u64("--vsock-cid", optarg, 3, UINT32_MAX - 1, &v) < 0)
				return usage_error(err_msg());
			ov.vsock_cid = v;
			break;
		case O_TAP:
			ov.tap = optarg;
			break;
		case O_MAC:
			ov.mac = optarg;
			break;
		case O_PAUSED:
			paused = true;
			break;
		case O_KSM:
			ksm = true;
			break;
		case O_API_SOCK:
			api_sock = optarg;
			break;
		case O_LOG_LEVEL: {
			enum log_level level;
			if (log_parse_level(optarg, &level) < 0)
				return usage_error(
				    "--log-level: expected error, warn, info or debug");
			log_set_level(level);
			break;
		}
		case O_LOG_FILE: {
			FILE *f = fopen(optarg, "ae");
			if (!f) {
				fprintf(stderr, "ember restore: --log-file %s: %m\n", optarg);
				return EMBER_EXIT_USAGE;
			}
			log_set_file(f);
			break;
		}
		case O_SECCOMP: {
			enum seccomp_mode mode;
			if (seccomp_parse_mode(optarg, &mode) < 0)
				return usage_error(err_msg());
			seccomp_set_mode(mode);
			break;
		}
		case O_UFFD_RECORD:
			uffd_record = optarg;
			break;
		case O_UFFD_RECORD_MS:
			if (cli_parse_u64("--uffd-record-ms", optarg, 1, 3600 * 1000, &v) < 0)
				return usage_error(err_msg());
			uffd_record_ms = v;
			break;
		case O_UFFD_PREFETCH:
			uffd_prefetch = optarg;
			break;
		case 'h':
			usage();
			return EMBER_EXIT_OK;
		default: {
			char msg[160];
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
	if (!state || !mem)
		return usage_error("--state and --mem are required");
	if (uffd_record && uffd_prefetch)
		return usage_error("--uffd-record and --uffd-prefetch exclude each other");
	if (uffd_record_ms && !uffd_record)
		return usage_error("--uffd-record-ms needs --uffd-record");

	static struct vmm vmm; /* large; kept off the stack */
	struct snapshot *snap = NULL;
	struct snapshot_file sf = {state, -1}, mf = {mem, -1}, df = {diff_mem, -1};
	/* Everything is read and checked before any part of a VM exists. */
	int r = snapshot_open(&snap, &sf, &mf, diff_mem ? &df : NULL);
	if (r == 0)
		r = vmm_init(&vmm);
	vmm.cfg.ksm = ksm;
	vmm.cfg.uffd_record_path = uffd_record;
	vmm.cfg.uffd_prefetch_path = uffd_prefetch;
	vmm.cfg.uffd_record_ms = uffd_record_ms;
	if (r == 0 && api_sock)
		r = vmm_open_api(&vmm, api_sock);
	if (r == 0)
		r = vmm_restore(&vmm, snap, &ov, paused);
	snapshot_close(snap);
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
