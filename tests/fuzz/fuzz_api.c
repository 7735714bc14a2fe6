/* libFuzzer target: arbitrary bytes as an API frame's message, decoded and dispatched exactly as
 * the API thread and the vmm thread do it, against a monitor that has no VM (start is refused
 * here; everything else, configuration included, runs). The first byte says how many open
 * descriptors (/dev/null) came with the request. Nothing may crash, leak or hang. */
#include "api/server.h"
#include "common/log.h"
#include "monitor/vmm.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static struct vmm vmm;
static unsigned iterations;

static int fresh_vmm(void)
{
	int r = vmm_init(&vmm);
	vmm.allow_start = false;       /* no KVM, no threads */
	vmm.allow_file_writes = false; /* no log files named by the fuzzer */
	return r;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return fresh_vmm();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	Ember__V1__Request *req = ember__v1__request__unpack(NULL, size - 1, data + 1);
	if (!req)
		return 0;
	struct api_call call = {.req = req, .nfds = data[0] % 3};
	for (unsigned i = 0; i < call.nfds; i++)
		call.fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (req->op_case != EMBER__V1__REQUEST__OP__NOT_SET)
		vmm_handle_api_call(&vmm, &call);
	free(call.reply);
	for (unsigned i = 0; i < call.nfds; i++)
		if (call.fds[i] >= 0)
			close(call.fds[i]);
	ember__v1__request__free_unpacked(req, NULL);
	/* The configuration only grows up to its limits; start afresh now and then anyway. */
	if (++iterations % 4096 == 0) {
		vmm_destroy(&vmm);
		fresh_vmm();
	}
	log_set_level(LOG_ERROR);
	return 0;
}
