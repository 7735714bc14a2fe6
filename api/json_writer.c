#include "api/json_writer.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void json_init(struct json_writer *w, FILE *out)
{
	memset(w, 0, sizeof(*w));
	w->out = out;
}

static void newline_indent(struct json_writer *w)
{
	fputc('\n', w->out);
	for (unsigned i = 0; i < w->depth; i++)
		fputs("  ", w->out);
}

/* Separators before a value (or a key): a value needs a key inside an object, a comma after a
 * sibling inside an array, and there is only one value at the top. */
static bool before_value(struct json_writer *w)
{
	if (w->failed)
		return false;
	if (w->after_key) {
		w->after_key = false;
		return true;
	}
	if (w->depth == 0) {
		if (w->started) {
			w->failed = true;
			return false;
		}
		w->started = true;
		return true;
	}
	if (w->is_object[w->depth]) {
		w->failed = true; /* a member without a key */
		return false;
	}
	if (w->has_items[w->depth])
		fputc(',', w->out);
	w->has_items[w->depth] = true;
	newline_indent(w);
	return true;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if there is none: overlong
 * forms, surrogates and code points above U+10FFFF are not valid. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

static void write_escaped(FILE *out, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', out);
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc(c, out);
			i++;
		} else if (c < 0x20) {
			switch (c) {
			case '\n':
				fputs("\\n", out);
				break;
			case '\r':
				fputs("\\r", out);
				break;
			case '\t':
				fputs("\\t", out);
				break;
			case '\b':
				fputs("\\b", out);
				break;
			case '\f':
				fputs("\\f", out);
				break;
			default:
				fprintf(out, "\\u%04x", c);
			}
			i++;
		} else {
			size_t n = utf8_sequence(s + i, len - i);
			if (n == 0) {
				fputs("\\ufffd", out);
				i++;
			} else {
				fwrite(s + i, 1, n, out);
				i += n;
			}
		}
	}
	fputc('"', out);
}

static void begin(struct json_writer *w, bool object)
{
	if (!before_value(w))
		return;
	if (w->depth == JSON_MAX_DEPTH) {
		w->failed = true;
		return;
	}
	fputc(object ? '{' : '[', w->out);
	w->depth++;
	w->is_object[w->depth] = object;
	w->has_items[w->depth] = false;
}

static void end(struct json_writer *w, bool object)
{
	if (w->failed)
		return;
	if (w->depth == 0 || w->is_object[w->depth] != object || w->after_key) {
		w->failed = true;
		return;
	}
	bool had_items = w->has_items[w->depth];
	w->depth--;
	if (had_items)
		newline_indent(w);
	fputc(object ? '}' : ']', w->out);
}

void json_begin_object(struct json_writer *w)
{
	begin(w, true);
}

void json_end_object(struct json_writer *w)
{
	end(w, true);
}

void json_begin_array(struct json_writer *w)
{
	begin(w, false);
}

void json_end_array(struct json_writer *w)
{
	end(w, false);
}

void json_key(struct json_writer *w, const char *key)
{
	if (w->failed)
		return;
	if (w->depth == 0 || !w->is_object[w->depth] || w->after_key) {
		w->failed = true;
		return;
	}
	if (w->has_items[w->depth])
		fputc(',', w->out);
	w->has_items[w->depth] = true;
	newline_indent(w);
	write_escaped(w->out, key, strlen(key));
	fputs(": ", w->out);
	w->after_key = true;
}

void json_string_n(struct json_writer *w, const char *s, size_t len)
{
	if (before_value(w))
		write_escaped(w->out, s, len);
}

void json_string(struct json_writer *w, const char *s)
{
	json_string_n(w, s ? s : "", s ? strlen(s) : 0);
}

void json_u64(struct json_writer *w, uint64_t v)
{
	if (before_value(w))
		fprintf(w->out, "%" PRIu64, v);
}

void json_i64(struct json_writer *w, int64_t v)
{
	if (before_value(w))
		fprintf(w->out, "%" PRId64, v);
}

void json_double(struct json_writer *w, double v)
{
	if (isnan(v))
		json_string(w, "NaN");
	else if (isinf(v))
		json_string(w, v > 0 ? "Infinity" : "-Infinity");
	else if (before_value(w))
		fprintf(w->out, "%.17g", v);
}

void json_bool(struct json_writer *w, bool v)
{
	if (before_value(w))
		fputs(v ? "true" : "false", w->out);
}

void json_null(struct json_writer *w)
{
	if (before_value(w))
		fputs("null", w->out);
}

int json_finish(struct json_writer *w)
{
	if (w->failed || w->depth != 0 || !w->started || w->after_key)
		return -1;
	fputc('\n', w->out);
	if (fflush(w->out) != 0 || ferror(w->out))
		return -1;
	return 0;
}
