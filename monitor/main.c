/* ember: a microVM monitor. One process runs one microVM. */
#include "monitor/commands.h"
#include "common/vm_event.h"

#include <stdio.h>
#include <string.h>

#ifndef EMBER_VERSION
#define EMBER_VERSION "unknown"
#endif

static void usage(FILE *out)
{
	fprintf(out, "Usage: ember COMMAND [options]\n"
		     "\n"
		     "Commands:\n"
		     "  run        boot a microVM from the command line (ember run --help)\n"
		     "  restore    resume a microVM from a snapshot (ember restore --help)\n"
		     "  --api-sock PATH [options]\n"
		     "             start a monitor that waits for its VM's configuration on the\n"
		     "             control API (the same as ember run --api-sock PATH)\n"
		     "  version    print the version\n"
		     "  help       this text\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EMBER_EXIT_USAGE;
	}
	const char *verb = argv[1];
	if (strcmp(verb, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(verb, "restore") == 0)
		return cmd_restore(argc - 1, argv + 1);
	/* `ember --api-sock S ...`: the form platforms and the jailer use. */
	if (strncmp(verb, "--api-sock", 10) == 0)
		return cmd_run(argc, argv);
	if (strcmp(verb, "help") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
		usage(stdout);
		return EMBER_EXIT_OK;
	}
	if (strcmp(verb, "version") == 0 || strcmp(verb, "--version") == 0) {
		printf("ember %s\n", EMBER_VERSION);
		return EMBER_EXIT_OK;
	}
	fprintf(stderr, "ember: unknown command '%s'\n", verb);
	usage(stderr);
	return EMBER_EXIT_USAGE;
}
