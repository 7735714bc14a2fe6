/* emberctl: configure and drive an `ember --api-sock` monitor over its control API. The command
 * line becomes one Request (ctl_verbs.c); the Response is printed (ctl_print.c). */
#include "api/client.h"
#include "api/ctl.h"
#include "common/err.h"
#include "monitor/cli.h"

#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef EMBER_VERSION
#define EMBER_VERSION "unknown"
#endif

#define DEFAULT_TIMEOUT_MS 30000

struct ctl_options {
	const char *sock;
	bool json;
	int timeout_ms;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: emberctl [--sock PATH] [--json] [--timeout MS] COMMAND [ARGS]\n"
		"\n"
		"Configure and drive a monitor started as `ember --api-sock PATH`.\n"
		"\n"
		"Options (also accepted after COMMAND):\n"
		"  --sock PATH     the monitor's API socket (default: $EMBER_API_SOCK)\n"
		"  --json          print the whole reply as one JSON document on stdout\n"
		"  --timeout MS    give up when the monitor does not accept, take or answer the\n"
		"                  request for MS milliseconds (default %d; 0: wait forever)\n"
		"  -h, --help      this text; `emberctl COMMAND --help` for a command's own\n"
		"  --version       print the version\n"
		"\n"
		"Commands:\n",
		DEFAULT_TIMEOUT_MS);
	for (const struct ctl_verb *v = ctl_verbs; v->name; v++)
		fprintf(out, "  %-16s %s\n", v->name, v->summary);
	fprintf(
	    out,
	    "\n"
	    "Files: a flag FLAG PATH sends the path, which the monitor opens; its twin\n"
	    "FLAG-fd-from PATH (--fd-from for drives, --tap-fd-from for taps) makes emberctl open\n"
	    "the file (or the tap) itself and pass the descriptor with the request, so a jailed\n"
	    "monitor needs no path into the host.\n"
	    "\n"
	    "Output: nothing on success, except describe and metrics; with --json the reply\n"
	    "(status, message and result) as JSON with the field names of api/ember.proto, enums\n"
	    "by name, every number (zero ones too) as a JSON number. An error reply prints its\n"
	    "status and message on stderr.\n"
	    "\n"
	    "Exit codes:\n"
	    "  0  the monitor answered OK (after `stop` the monitor itself exits with 0)\n"
	    "  1  the monitor answered with an error status\n"
	    "  2  bad command line, or a file to pass did not open; nothing was sent\n"
	    "  3  no answer: no monitor on the socket, a timeout, or a broken connection\n");
}

static void verb_usage(FILE *out, const struct ctl_verb *v)
{
	fprintf(out, "Usage: emberctl [OPTIONS] %s %s\n\n%c%s.\n", v->name, v->synopsis,
		toupper((unsigned char)v->summary[0]), v->summary + 1);
	if (v->details)
		fprintf(out, "%s\n", v->details);
	if (v->flags[0].name) {
		fprintf(out, "\nFlags:\n");
		for (const struct ctl_flag *f = v->flags; f->name; f++) {
			char left[40];
			snprintf(left, sizeof(left), "--%s%s%s", f->name, f->value ? " " : "",
				 f->value ? f->value : "");
			fprintf(out, "  %-22s %s\n", left, f->help);
		}
	}
	fprintf(out, "\nOPTIONS are emberctl's own (--sock, --json, --timeout): see `emberctl "
		     "--help`.\n");
}

static int usage_error(const char *verb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "emberctl%s%s: ", verb ? " " : "", verb ? verb : "");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'emberctl%s%s --help'.\n", verb ? " " : "", verb ? verb : "");
	return CTL_EXIT_USAGE;
}

enum {
	OPT_SOCK = 256,
	OPT_JSON,
	OPT_TIMEOUT,
	OPT_VERSION,
	OPT_VERB_BASE = 512, /* + index into the verb's flags */
};

static const struct option global_options[] = {
    {"sock", required_argument, NULL, OPT_SOCK},       {"json", no_argument, NULL, OPT_JSON},
    {"timeout", required_argument, NULL, OPT_TIMEOUT}, {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
};
#define NGLOBAL (sizeof(global_options) / sizeof(global_options[0]))

/* A global option seen before or after the verb. Returns 0, or an exit code. */
static int global_option(int c, const char *verb, struct ctl_options *o)
{
	uint64_t v;
	switch (c) {
	case OPT_SOCK:
		o->sock = optarg;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_TIMEOUT:
		if (cli_parse_u64("--timeout", optarg, 0, INT_MAX, &v) < 0)
			return usage_error(verb, "%s", err_msg());
		o->timeout_ms = (int)v;
		return 0;
	default:
		return usage_error(verb, "unknown option");
	}
}

/* getopt_long said '?': name the option and what is wrong with it. */
static int bad_option(const char *verb, int argc, char **argv, const struct option *opts)
{
	const char *given = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
	for (const struct option *opt = opts; optopt && opt->name; opt++) {
		if (opt->val != optopt)
			continue;
		if (opt->has_arg == no_argument)
			return usage_error(verb, "--%s takes no value", opt->name);
		return usage_error(verb, "--%s needs a value", opt->name);
	}
	return usage_error(verb, "unknown option '%s'", given);
}

/* The verb named by argv[0] (and argv[1] for two-word verbs). *words gets 1 or 2. */
static const struct ctl_verb *find_verb(int argc, char **argv, int *words)
{
	for (const struct ctl_verb *v = ctl_verbs; v->name; v++) {
		const char *space = strchr(v->name, ' ');
		if (!space) {
			if (strcmp(v->name, argv[0]) == 0) {
				*words = 1;
				return v;
			}
			continue;
		}
		size_t group = (size_t)(space - v->name);
		if (argc >= 2 && strlen(argv[0]) == group &&
		    strncmp(v->name, argv[0], group) == 0 && strcmp(space + 1, argv[1]) == 0) {
			*words = 2;
			return v;
		}
	}
	return NULL;
}

/* "drive": a word that only starts two-word verbs. */
static bool is_group(const char *word)
{
	size_t len = strlen(word);
	for (const struct ctl_verb *v = ctl_verbs; v->name; v++)
		if (strncmp(v->name, word, len) == 0 && v->name[len] == ' ')
			return true;
	return false;
}

/* A group without a known second word: its verbs, as help (problem NULL) or as an error. */
static int group_usage(const char *group, const char *problem)
{
	FILE *out = problem ? stderr : stdout;
	if (problem)
		fprintf(out, "emberctl %s: %s. The %s commands are:\n", group, problem, group);
	else
		fprintf(out, "The %s commands are:\n", group);
	size_t len = strlen(group);
	for (const struct ctl_verb *v = ctl_verbs; v->name; v++)
		if (strncmp(v->name, group, len) == 0 && v->name[len] == ' ')
			fprintf(out, "  emberctl %s %s\n", v->name, v->synopsis);
	return problem ? CTL_EXIT_USAGE : CTL_EXIT_OK;
}

static int group_error(int argc, char **argv)
{
	char problem[160];
	if (argc < 2)
		return group_usage(argv[0], "a sub-command is needed");
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
		return group_usage(argv[0], NULL);
	snprintf(problem, sizeof(problem), "unknown sub-command '%s'", argv[1]);
	return group_usage(argv[0], problem);
}

/* Parse the verb's flags (and global options among them) from argv, which starts at the verb's
 * last word. Returns 0, -1 after --help, or an exit code. */
static int parse_verb_flags(const struct ctl_verb *v, int argc, char **argv, struct ctl_args *a,
			    struct ctl_options *o)
{
	struct option opts[CTL_MAX_FLAGS + NGLOBAL + 1];
	unsigned n = 0;
	for (; v->flags[n].name; n++)
		opts[n] = (struct option){v->flags[n].name,
					  v->flags[n].value ? required_argument : no_argument, NULL,
					  OPT_VERB_BASE + (int)n};
	for (unsigned g = 0; g < NGLOBAL; g++)
		opts[n + g] = global_options[g];
	opts[n + NGLOBAL] = (struct option){NULL, 0, NULL, 0};

	optind = 0; /* glibc: start over, forgetting the previous scan */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c >= OPT_VERB_BASE) {
			unsigned i = (unsigned)(c - OPT_VERB_BASE);
			if (a->value[i])
				return usage_error(v->name, "--%s given twice", v->flags[i].name);
			a->value[i] = optarg ? optarg : "";
			continue;
		}
		if (c == 'h') {
			verb_usage(stdout, v);
			return -1;
		}
		if (c == '?')
			return bad_option(v->name, argc, argv, opts);
		int r = global_option(c, v->name, o);
		if (r)
			return r;
	}
	if (optind < argc)
		return usage_error(v->name, "unexpected argument '%s'", argv[optind]);
	return 0;
}

static int show_reply(const struct ctl_verb *v, const struct ctl_options *o,
		      const Ember__V1__Response *resp)
{
	if (o->json && ctl_print_json(stdout, &resp->base) < 0) {
		fprintf(stderr, "emberctl: writing the JSON reply failed\n");
		return CTL_EXIT_NO_REPLY;
	}
	if (resp->status != EMBER__V1__STATUS__OK) {
		fprintf(stderr, "emberctl %s: %s: %s\n", v->name, api_status_name(resp->status),
			resp->message && *resp->message ? resp->message : "(no message)");
		return CTL_EXIT_REPLY_ERROR;
	}
	if (o->json)
		return CTL_EXIT_OK;
	if (resp->message && *resp->message)
		printf("%s\n", resp->message);
	if (v->show == CTL_SHOW_INFO && resp->result_case == EMBER__V1__RESPONSE__RESULT_INFO)
		ctl_print_info(stdout, resp->info);
	else if (v->show == CTL_SHOW_METRICS &&
		 resp->result_case == EMBER__V1__RESPONSE__RESULT_METRICS)
		ctl_print_metrics(stdout, resp->metrics);
	else if (v->show != CTL_SHOW_STATUS)
		fprintf(stderr, "emberctl %s: the reply is OK but holds no %s\n", v->name,
			v->show == CTL_SHOW_INFO ? "instance info" : "metrics");
	if (fflush(stdout) != 0) {
		fprintf(stderr, "emberctl: writing the reply failed\n");
		return CTL_EXIT_NO_REPLY;
	}
	return CTL_EXIT_OK;
}

static int run_verb(const struct ctl_verb *v, const struct ctl_args *a, const struct ctl_options *o)
{
	static struct ctl_request rq;
	ctl_request_init(&rq);
	if (v->build(a, &rq) < 0) {
		ctl_request_close_fds(&rq);
		return usage_error(v->name, "%s", err_msg());
	}
	size_t size = ember__v1__request__get_packed_size(&rq.req);
	if (size > API_FRAME_MAX) {
		ctl_request_close_fds(&rq);
		return usage_error(v->name, "the request would be %zu bytes; the limit is %u", size,
				   API_FRAME_MAX);
	}
	Ember__V1__Response *resp;
	int r = api_client_request(o->sock, o->timeout_ms, &rq.req, rq.fds, rq.nfds, &resp);
	ctl_request_close_fds(&rq);
	if (r < 0) {
		fprintf(stderr, "emberctl %s: %s\n", v->name, err_msg());
		return CTL_EXIT_NO_REPLY;
	}
	int code = show_reply(v, o, resp);
	ember__v1__response__free_unpacked(resp, NULL);
	return code;
}

int main(int argc, char **argv)
{
	struct ctl_options o = {.timeout_ms = DEFAULT_TIMEOUT_MS};
	optind = 0;
	opterr = 0;
	int c;
	struct option opts[NGLOBAL + 1];
	memcpy(opts, global_options, sizeof(global_options));
	opts[NGLOBAL] = (struct option){NULL, 0, NULL, 0};
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return CTL_EXIT_OK;
		}
		if (c == OPT_VERSION) {
			printf("emberctl %s\n", EMBER_VERSION);
			return CTL_EXIT_OK;
		}
		if (c == '?')
			return bad_option(NULL, argc, argv, opts);
		int r = global_option(c, NULL, &o);
		if (r)
			return r;
	}
	if (optind == argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	int rest = argc - optind, words;
	char **args = argv + optind;
	const struct ctl_verb *v = find_verb(rest, args, &words);
	if (!v) {
		if (strcmp(args[0], "help") == 0) {
			usage(stdout);
			return CTL_EXIT_OK;
		}
		if (is_group(args[0]))
			return group_error(rest, args);
		return usage_error(NULL, "unknown command '%s'", args[0]);
	}
	struct ctl_args a = {.verb = v};
	int r = parse_verb_flags(v, rest - words + 1, args + words - 1, &a, &o);
	if (r < 0)
		return CTL_EXIT_OK; /* --help */
	if (r)
		return r;
	if (!o.sock || !*o.sock)
		o.sock = getenv("EMBER_API_SOCK");
	if (!o.sock || !*o.sock)
		return usage_error(v->name,
				   "no API socket: give --sock PATH or set EMBER_API_SOCK");
	return run_verb(v, &a, &o);
}
