#include "lib.h"

#ifndef UK_HOST_HARNESS /* a host test program has libc's */
/* String instructions: compact, fast at CPL3, and immune to the compiler
 * turning a byte loop back into a call to memset itself. */
void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	void *d = dst;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}
#endif

/* Does the length-delimited token a equal the C string b? */
bool str_eq_n(const char *a, size_t alen, const char *b)
{
	size_t i;
	for (i = 0; i < alen; i++)
		if (b[i] != a[i])
			return false;
	return b[i] == 0;
}

/* Decimal or 0x-prefixed hex; the whole token must be a number. */
bool parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0, base = 10;
	size_t i = 0;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == len)
		return false;
	for (; i < len; i++) {
		char c = s[i];
		uint64_t d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

/* IEEE 802.3 CRC-32, reflected, as zlib's crc32(crc, buf, len): pass 0 to
 * start, the previous result to continue. */
uint32_t crc32_ieee_update(uint32_t prev, const void *buf, uint64_t len)
{
	static uint32_t table[256];
	const uint8_t *p = buf;
	uint32_t crc = ~prev;

	if (!table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c >> 1) ^ (0xedb88320 & -(c & 1));
			table[i] = c;
		}
	}
	for (uint64_t i = 0; i < len; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t crc32_ieee(const void *buf, uint64_t len)
{
	return crc32_ieee_update(0, buf, len);
}
