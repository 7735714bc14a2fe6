/* The little of libc the unikernel needs. */
#ifndef UK_LIB_H
#define UK_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
size_t strlen(const char *s);
bool str_eq_n(const char *a, size_t alen, const char *b);
bool parse_u64(const char *s, size_t len, uint64_t *out);
uint32_t crc32_ieee(const void *buf, uint64_t len);
uint32_t crc32_ieee_update(uint32_t crc, const void *buf, uint64_t len);

static inline uint64_t load_u64(const void *p)
{
	uint64_t v;
	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t load_u32(const void *p)
{
	uint32_t v;
	__builtin_memcpy(&v, p, sizeof(v));
	return v;
}

#endif
