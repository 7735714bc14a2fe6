/* A small JSON emitter for emberctl's --json output: one document, indented, strings escaped
 * and always valid UTF-8 (bytes that are not become U+FFFD), so any strict parser takes it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32

struct json_writer {
	FILE *out;
	unsigned depth;
	bool is_object[JSON_MAX_DEPTH + 1]; /* per open container, 1-based */
	bool has_items[JSON_MAX_DEPTH + 1];
	bool after_key; /* the next value completes the member whose key was written */
	bool started;	/* the document's top-level value has begun */
	bool failed;	/* the calls do not form one document (too deep, unbalanced, ...) */
};

void json_init(struct json_writer *w, FILE *out);
void json_begin_object(struct json_writer *w);
void json_end_object(struct json_writer *w);
void json_begin_array(struct json_writer *w);
void json_end_array(struct json_writer *w);
/* The key of the next member of the open object. */
void json_key(struct json_writer *w, const char *key);
void json_string(struct json_writer *w, const char *s);
void json_string_n(struct json_writer *w, const char *s, size_t len);
void json_u64(struct json_writer *w, uint64_t v);
void json_i64(struct json_writer *w, int64_t v);
/* NaN and the infinities become the strings "NaN", "Infinity", "-Infinity" (as proto3's JSON
 * mapping writes them): JSON has no numbers for them. */
void json_double(struct json_writer *w, double v);
void json_bool(struct json_writer *w, bool v);
void json_null(struct json_writer *w);
/* Ends the document with a newline and flushes. Returns 0, or -1 when the calls did not form
 * one complete document or writing failed. */
int json_finish(struct json_writer *w);
