/* emberctl's parts: the verbs (ctl_verbs.c) turn a command line into a Request and the files
 * to pass with it; the printers (ctl_print.c) show a Response to people or as JSON. */
#pragma once

#include "api/ember.pb-c.h"
#include "api/frame.h"

#include <stdio.h>

#define CTL_MAX_FLAGS 12
#define CTL_MAX_FILES 4 /* FileSources in one request */

/* emberctl's exit codes. */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_REPLY_ERROR = 1, /* the monitor answered with a status other than OK */
	CTL_EXIT_USAGE = 2,	  /* bad command line; nothing was sent */
	CTL_EXIT_NO_REPLY = 3,	  /* no monitor there, a timeout, or a broken exchange */
};

/* A request under construction and the storage its parts point into. Strings point into argv. */
struct ctl_request {
	Ember__V1__Request req;
	Ember__V1__Empty empty;
	Ember__V1__BootSource boot_source;
	Ember__V1__MachineConfig machine_config;
	Ember__V1__Drive drive;
	Ember__V1__DriveUpdate drive_update;
	Ember__V1__NetInterface net;
	Ember__V1__Vsock vsock;
	Ember__V1__Logger logger;
	Ember__V1__SnapshotCreate snapshot_create;
	Ember__V1__SnapshotLoad snapshot_load;
	Ember__V1__FileSource files[CTL_MAX_FILES];
	unsigned nfiles;
	int fds[API_FRAME_MAXFDS]; /* opened by emberctl, passed with SCM_RIGHTS */
	unsigned nfds;
};

void ctl_request_init(struct ctl_request *rq);
void ctl_request_close_fds(struct ctl_request *rq);

struct ctl_flag {
	const char *name;  /* without the dashes */
	const char *value; /* the value's name in help ("PATH"); NULL for a switch */
	const char *help;
};

/* What a verb's reply holds worth showing. */
enum ctl_show { CTL_SHOW_STATUS, CTL_SHOW_INFO, CTL_SHOW_METRICS };

struct ctl_verb;

/* The flags given to a verb: value[i] belongs to verb->flags[i] (a switch given reads ""). */
struct ctl_args {
	const struct ctl_verb *verb;
	const char *value[CTL_MAX_FLAGS];
};

struct ctl_verb {
	const char *name;	      /* one or two words: "start", "drive add" */
	const char *synopsis;	      /* the flags, for the usage line */
	const char *summary;	      /* one line for `emberctl --help` */
	const char *details;	      /* more for `emberctl VERB --help`; may be NULL */
	const struct ctl_flag *flags; /* ends with a {NULL} entry */
	/* Fill rq (opening files to pass). Returns 0, or a negative errno with err set: a bad
	 * value, a missing flag, a file that does not open. */
	int (*build)(const struct ctl_args *a, struct ctl_request *rq);
	enum ctl_show show;
};

extern const struct ctl_verb ctl_verbs[]; /* ends with a {NULL} entry */

/* Human-readable forms of the replies to describe and metrics. */
void ctl_print_info(FILE *out, const Ember__V1__InstanceInfo *info);
void ctl_print_metrics(FILE *out, const Ember__V1__Metrics *m);
/* The whole reply as one JSON document: proto field names as keys, enums by name, every scalar
 * (zero ones too), sub-messages and oneof members only when set. Returns 0 or -1. */
int ctl_print_json(FILE *out, const ProtobufCMessage *msg);
