/* The vmm thread: the VM's state machine (not started → running ⇄ paused → stopped), the
 * configuration a platform builds before start, and the event loop that serves the devices,
 * the signals and the control API. `ember run` and `ember --api-sock` both run through it. */
#pragma once

#include "api/server.h"
#include "common/event_loop.h"
#include "monitor/vm.h"
#include "snapshot/snapshot.h"

#include <stdbool.h>
#include <stdint.h>

enum vmm_state {
	VMM_NOT_STARTED,
	VMM_RUNNING,
	VMM_PAUSED,
	VMM_STOPPED,
};

#define VMM_DEFAULT_VCPUS   1
#define VMM_DEFAULT_MEM_MIB 128

/* A file named by path or given as an open descriptor (owned here). */
struct vmm_file {
	char *path; /* the path, or a name for messages ("passed fd 0") */
	int fd;	    /* -1 unless passed */
};

struct vmm {
	struct event_loop loop;
	enum vmm_state state;
	/* What the next start builds; strings and device configs owned here. */
	struct vm_config cfg;
	struct vmm_file kernel, initrd;
	char *cmdline;
	bool boot_source_set;
	struct vm *vm; /* from start until the end */
	int signal_fd;
	struct api_server *api;
	uint64_t instance_start_ns; /* when start was asked for */
	int exit_code;		    /* when ended without a VM */
	bool allow_start;	    /* false in the API fuzz target: configuration only */
	bool allow_file_writes;	    /* false in the API fuzz target: no log files */
	struct snapshot_tracker snap;
};

/* An empty vmm with its loop and signal handling (SIGINT, SIGTERM, SIGHUP end the monitor);
 * console on stdin/stdout. */
int vmm_init(struct vmm *m);
/* Take over a configuration built from the command line (its strings are copied; its device
 * configs become the vmm's and cfg->ndevices is set to 0). */
int vmm_set_config(struct vmm *m, struct vm_config *cfg);
int vmm_open_api(struct vmm *m, const char *sock_path);
/* Build and start the VM from the configuration; refused unless not started. */
int vmm_start(struct vmm *m);
/* Build the VM from a snapshot (opened and checked) instead of booting; refused unless not
 * started. The guest runs at once unless `paused`. */
int vmm_restore(struct vmm *m, struct snapshot *s, const struct snapshot_overrides *o, bool paused);
/* Write a snapshot of the paused VM. */
int vmm_snapshot(struct vmm *m, const struct snapshot_file *state, const struct snapshot_file *mem,
		 bool diff);
/* Serve until the VM stops or a stop is asked for; returns the process exit code. */
int vmm_run(struct vmm *m);
void vmm_destroy(struct vmm *m);

/* Serve one API request (api_handler_fn); in monitor/api_handlers.c. */
void vmm_handle_api_call(void *vmm, struct api_call *call);
