/* emberctl's output: describe and metrics for people, any reply as JSON. Strings in a reply come
 * from the monitor and reach a terminal, so control characters are shown escaped. */
#include "api/ctl.h"
#include "api/json_writer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- printable strings -------------------------------------------------------------------- */

/* A copy of s with C0 and C1 control characters and DEL written as \xNN (C1 ones are two
 * bytes in UTF-8); NULL when out of memory, which shown() turns into "?". */
static char *printable(const char *s)
{
	if (!s)
		s = "";
	size_t len = strlen(s);
	char *out = malloc(len * 4 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned char next = (unsigned char)s[i + 1];
		if (c == 0xc2 && next >= 0x80 && next <= 0x9f) {
			o += (size_t)sprintf(out + o, "\\x%02x", next);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)sprintf(out + o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = 0;
	return out;
}

static const char *shown(const char *printable_copy)
{
	return printable_copy ? printable_copy : "?";
}

/* Characters on screen, for aligning columns: UTF-8 continuation bytes take no column. */
static size_t columns(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* ---- tables -------------------------------------------------------------------------------- */

#define TABLE_MAX_COLS 9

struct table {
	unsigned ncols;
	unsigned right; /* bit i: column i is numeric, aligned right */
	unsigned nrows;
	char **cells; /* nrows * ncols, each printable() */
};

static void table_row(struct table *t, ...)
{
	char **grown = realloc(t->cells, sizeof(char *) * t->ncols * (t->nrows + 1));
	if (!grown)
		return; /* the row is left out rather than the whole output */
	t->cells = grown;
	va_list ap;
	va_start(ap, t);
	for (unsigned c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = printable(va_arg(ap, const char *));
	va_end(ap);
	t->nrows++;
}

static void table_print(FILE *out, struct table *t)
{
	size_t width[TABLE_MAX_COLS] = {0};
	for (unsigned r = 0; r < t->nrows; r++)
		for (unsigned c = 0; c < t->ncols; c++) {
			size_t w = columns(shown(t->cells[r * t->ncols + c]));
			if (w > width[c])
				width[c] = w;
		}
	for (unsigned r = 0; r < t->nrows; r++) {
		fputs("  ", out);
		for (unsigned c = 0; c < t->ncols; c++) {
			const char *cell = shown(t->cells[r * t->ncols + c]);
			size_t pad = width[c] - columns(cell);
			bool last = c + 1 == t->ncols;
			if (t->right & (1u << c))
				fprintf(out, "%*s%s", (int)pad, "", cell);
			else
				fprintf(out, "%s%*s", cell, last ? 0 : (int)pad, "");
			if (!last)
				fputs("  ", out);
		}
		fputc('\n', out);
	}
	for (unsigned i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

/* ---- describe ------------------------------------------------------------------------------ */

static void field(FILE *out, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One "label  value" line; the value is made printable. */
static void field(FILE *out, const char *label, const char *fmt, ...)
{
	char *raw = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&raw, fmt, ap);
	va_end(ap);
	char *value = printable(n < 0 ? "?" : raw);
	fprintf(out, "%-12s %s\n", label, shown(value));
	free(value);
	if (n >= 0)
		free(raw);
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int value, const char *prefix)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
	if (!v)
		return "unknown";
	size_t plen = strlen(prefix);
	return strncmp(v->name, prefix, plen) == 0 ? v->name + plen : v->name;
}

/* "running" from VM_STATE_RUNNING. */
static void lower_name(char *dst, size_t size, const char *name)
{
	size_t i = 0;
	for (; name[i] && i + 1 < size; i++)
		dst[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
	dst[i] = 0;
}

static const char *file_source_text(const Ember__V1__FileSource *fs, char *buf, size_t size)
{
	if (!fs || fs->source_case == EMBER__V1__FILE_SOURCE__SOURCE__NOT_SET)
		return "-";
	if (fs->source_case == EMBER__V1__FILE_SOURCE__SOURCE_PATH)
		return fs->path;
	snprintf(buf, size, "(file passed by the client, #%" PRIu32 ")", fs->passed_fd);
	return buf;
}

static void print_drives(FILE *out, const Ember__V1__InstanceInfo *info)
{
	if (info->n_drives == 0) {
		field(out, "drives", "none");
		return;
	}
	fprintf(out, "drives\n");
	struct table t = {.ncols = 3};
	table_row(&t, "ID", "MODE", "FILE");
	for (size_t i = 0; i < info->n_drives; i++) {
		const Ember__V1__Drive *d = info->drives[i];
		char buf[64];
		table_row(&t, d->id, d->read_only ? "ro" : "rw",
			  file_source_text(d->file, buf, sizeof(buf)));
	}
	table_print(out, &t);
}

static void print_net(FILE *out, const Ember__V1__InstanceInfo *info)
{
	if (info->n_net == 0) {
		field(out, "net", "none");
		return;
	}
	fprintf(out, "net\n");
	struct table t = {.ncols = 3};
	table_row(&t, "ID", "TAP", "MAC");
	for (size_t i = 0; i < info->n_net; i++) {
		const Ember__V1__NetInterface *n = info->net[i];
		char tap[64];
		if (n->tap_case == EMBER__V1__NET_INTERFACE__TAP_TAP_NAME)
			snprintf(tap, sizeof(tap), "%s", n->tap_name);
		else if (n->tap_case == EMBER__V1__NET_INTERFACE__TAP_TAP_PASSED_FD)
			snprintf(tap, sizeof(tap), "(passed, #%" PRIu32 ")", n->tap_passed_fd);
		else
			snprintf(tap, sizeof(tap), "-");
		table_row(&t, n->id, tap, n->mac && *n->mac ? n->mac : "-");
	}
	table_print(out, &t);
}

void ctl_print_info(FILE *out, const Ember__V1__InstanceInfo *info)
{
	char state[32];
	lower_name(state, sizeof(state),
		   enum_name(&ember__v1__vm_state__descriptor, (int)info->state, "VM_STATE_"));
	field(out, "state", "%s", state);
	field(out, "pid", "%" PRIu32, info->pid);
	field(out, "version", "%s", info->version);

	const Ember__V1__BootSource *b = info->boot_source;
	char buf[64];
	field(out, "kernel", "%s", file_source_text(b ? b->kernel : NULL, buf, sizeof(buf)));
	field(out, "initrd", "%s", file_source_text(b ? b->initrd : NULL, buf, sizeof(buf)));
	field(out, "cmdline", "%s", b && b->cmdline && *b->cmdline ? b->cmdline : "-");
	if (b) {
		char proto[32];
		lower_name(proto, sizeof(proto),
			   enum_name(&ember__v1__boot_protocol__descriptor, (int)b->protocol,
				     "BOOT_PROTOCOL_"));
		field(out, "protocol", "%s", proto);
	}

	const Ember__V1__MachineConfig *m = info->machine_config;
	if (m)
		field(out, "machine", "%" PRIu32 " vCPU%s, %" PRIu64 " MiB", m->vcpus,
		      m->vcpus == 1 ? "" : "s", m->mem_mib);
	else
		field(out, "machine", "-");

	print_drives(out, info);
	print_net(out, info);
	const Ember__V1__Vsock *v = info->vsock;
	if (v)
		field(out, "vsock", "cid %" PRIu64 ", uds %s", v->guest_cid, v->uds_path);
	else
		field(out, "vsock", "none");
}

/* ---- metrics ------------------------------------------------------------------------------- */

static void mib_text(char *buf, size_t size, uint64_t bytes)
{
	snprintf(buf, size, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
}

static void ms_text(char *buf, size_t size, uint64_t us)
{
	snprintf(buf, size, "%" PRIu64 ".%03" PRIu64 " ms", us / 1000, us % 1000);
}

static void u64_text(char *buf, size_t size, uint64_t v)
{
	snprintf(buf, size, "%" PRIu64, v);
}

void ctl_print_metrics(FILE *out, const Ember__V1__Metrics *m)
{
	char a[48], b[48];
	if (m->process_start_to_init_us || m->instance_start_to_init_us) {
		ms_text(a, sizeof(a), m->process_start_to_init_us);
		ms_text(b, sizeof(b), m->instance_start_to_init_us);
		field(out, "boot time", "%s from process start, %s from InstanceStart", a, b);
	} else {
		field(out, "boot time", "the guest has not written the boot timer");
	}
	field(out, "uptime", "%" PRIu64 ".%03" PRIu64 " s", m->uptime_us / 1000000,
	      m->uptime_us / 1000 % 1000);
	mib_text(a, sizeof(a), m->monitor_rss_bytes);
	mib_text(b, sizeof(b), m->guest_rss_bytes);
	field(out, "memory", "monitor RSS %s, guest RAM present %s", a, b);
	field(out, "api", "%" PRIu64 " request%s, %" PRIu64 " error%s", m->api_requests,
	      m->api_requests == 1 ? "" : "s", m->api_errors, m->api_errors == 1 ? "" : "s");

	if (m->n_vcpu_exits == 0) {
		field(out, "vcpu exits", "none");
	} else {
		fprintf(out, "vcpu exits\n");
		struct table t = {.ncols = 2, .right = 1u << 1};
		table_row(&t, "REASON", "COUNT");
		for (size_t i = 0; i < m->n_vcpu_exits; i++) {
			u64_text(a, sizeof(a), m->vcpu_exits[i]->count);
			table_row(&t, m->vcpu_exits[i]->reason, a);
		}
		table_print(out, &t);
	}

	if (m->n_devices == 0) {
		field(out, "devices", "none");
		return;
	}
	fprintf(out, "devices\n");
	struct table t = {.ncols = 9, .right = 0x1fcu};
	table_row(&t, "KIND", "ID", "REQUESTS", "BYTES-TO-GUEST", "BYTES-FROM-GUEST", "ERRORS",
		  "NOTIFIES", "INTERRUPTS", "RESETS");
	for (size_t i = 0; i < m->n_devices; i++) {
		const Ember__V1__DeviceMetrics *d = m->devices[i];
		char n[7][24];
		uint64_t v[7] = {d->requests, d->bytes_to_guest, d->bytes_from_guest, d->errors,
				 d->notifies, d->interrupts,	 d->needs_reset};
		for (unsigned k = 0; k < 7; k++)
			u64_text(n[k], sizeof(n[k]), v[k]);
		table_row(&t, d->kind, d->id, n[0], n[1], n[2], n[3], n[4], n[5], n[6]);
	}
	table_print(out, &t);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static void json_base64(struct json_writer *w, const uint8_t *data, size_t len)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *s = malloc((len + 2) / 3 * 4 + 1);
	if (!s) {
		w->failed = true;
		return;
	}
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)data[i + 1] << 8;
		if (i + 2 < len)
			v |= data[i + 2];
		s[o++] = alphabet[v >> 18 & 63];
		s[o++] = alphabet[v >> 12 & 63];
		s[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
		s[o++] = i + 2 < len ? alphabet[v & 63] : '=';
	}
	json_string_n(w, s, o);
	free(s);
}

static void json_message(struct json_writer *w, const ProtobufCMessage *msg);

/* One value of field f stored at p. */
static void json_value(struct json_writer *w, const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		json_i64(w, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		json_u64(w, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		json_i64(w, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		json_u64(w, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		json_double(w, *(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		json_double(w, *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		json_bool(w, *(const protobuf_c_boolean *)p != 0);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev =
		    protobuf_c_enum_descriptor_get_value(f->descriptor, v);
		if (ev)
			json_string(w, ev->name);
		else
			json_i64(w, v); /* a value a newer monitor knows */
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		json_string(w, *(char *const *)p);
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = p;
		json_base64(w, bd->data, bd->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		json_message(w, *(ProtobufCMessage *const *)p);
		break;
	default:
		w->failed = true;
	}
}

static size_t element_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default: /* the 32-bit numbers and float */
		return sizeof(uint32_t);
	}
}

static void json_message(struct json_writer *w, const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	const char *base = (const char *)msg;
	json_begin_object(w);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = base + f->offset;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
		} else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			const char *items = *(char *const *)p;
			json_key(w, f->name);
			json_begin_array(w);
			for (size_t k = 0; k < n; k++)
				json_value(w, f, items + k * element_size(f->type));
			json_end_array(w);
			continue;
		} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
			   !*(const protobuf_c_boolean *)(base + f->quantifier_offset)) {
			continue; /* proto2's has_ flag */
		}
		/* Sub-messages appear only when set; a string member may be NULL when unset. */
		if (f->type == PROTOBUF_C_TYPE_MESSAGE && !*(ProtobufCMessage *const *)p)
			continue;
		json_key(w, f->name);
		json_value(w, f, p);
	}
	json_end_object(w);
}

int ctl_print_json(FILE *out, const ProtobufCMessage *msg)
{
	struct json_writer w;
	json_init(&w, out);
	json_message(&w, msg);
	return json_finish(&w);
}
