/* bzImage: the setup header at 0x1f1 describes the image; the protected-mode part follows the
 * setup sectors and is entered at its 64-bit entry (load address + 0x200). */
#include "memory/boot.h"
#include "memory/layout.h"
#include "common/checked.h"
#include "common/err.h"

#include <errno.h>
#include <string.h>

#define SETUP_HEADER_OFFSET 0x1f1
#define BZIMAGE_MIN_VERSION 0x020c /* first with xloadflags, so the 64-bit entry is known */

int bzimage_parse(const uint8_t *img, size_t size, struct bzimage_info *info)
{
	memset(info, 0, sizeof(*info));
	if (size < SETUP_HEADER_OFFSET + sizeof(struct setup_header))
		return err_set(EINVAL,
			       "truncated bzImage: %zu bytes, shorter than its setup header", size);
	memcpy(&info->hdr, img + SETUP_HEADER_OFFSET, sizeof(info->hdr));
	/* The header ends where the byte after its jump at 0x200 says; what follows in the file is
	 * code, not header fields this kernel knows about. */
	size_t hdr_len = 0x202 + (size_t)img[0x201] - SETUP_HEADER_OFFSET;
	if (hdr_len < sizeof(info->hdr))
		memset((uint8_t *)&info->hdr + hdr_len, 0, sizeof(info->hdr) - hdr_len);
	struct setup_header *h = &info->hdr;
	if (h->boot_flag != 0xaa55 || h->header != 0x53726448 /* "HdrS" */)
		return err_set(EINVAL, "not a bzImage (no boot flag or HdrS signature)");
	if (h->version < BZIMAGE_MIN_VERSION)
		return err_set(EINVAL, "boot protocol %u.%02u is too old (need 2.12 or later)",
			       h->version >> 8, h->version & 0xff);
	if (!(h->xloadflags & XLF_KERNEL_64))
		return err_set(EINVAL, "kernel has no 64-bit entry point (XLF_KERNEL_64 unset)");
	if (!(h->loadflags & LOADED_HIGH))
		return err_set(EINVAL, "zImage (loaded low) is not supported");
	unsigned setup_sects = h->setup_sects ? h->setup_sects : 4;
	info->payload_offset = (uint64_t)(setup_sects + 1) * 512;
	if (info->payload_offset >= size)
		return err_set(EINVAL, "truncated bzImage: %u setup sectors but only %zu bytes",
			       setup_sects, size);
	info->payload_size = size - info->payload_offset;
	/* syssize counts 16-byte paragraphs of the protected-mode part. */
	if ((uint64_t)h->syssize * 16 > info->payload_size)
		return err_set(EINVAL,
			       "truncated bzImage: header says %llu bytes of kernel, file has "
			       "%llu",
			       (unsigned long long)h->syssize * 16,
			       (unsigned long long)info->payload_size);
	if (h->init_size == 0)
		return err_set(EINVAL, "corrupted bzImage: init_size is 0");
	uint64_t base = h->pref_address > LAYOUT_HIMEM_START ? h->pref_address : LAYOUT_HIMEM_START;
	if (add_overflows(base, h->init_size, &info->min_ram))
		return err_set(EINVAL, "corrupted bzImage: init_size overflows");
	return 0;
}

int bzimage_load(struct guest_mem *gm, const uint8_t *img, const struct bzimage_info *info)
{
	if (info->min_ram > gmem_low_end(gm))
		return err_set(E2BIG,
			       "kernel needs %llu MiB of RAM to unpack, the guest has %llu "
			       "MiB below the MMIO gap",
			       (unsigned long long)((info->min_ram + MiB - 1) / MiB),
			       (unsigned long long)(gmem_low_end(gm) / MiB));
	return gmem_write(gm, LAYOUT_HIMEM_START, img + info->payload_offset, info->payload_size);
}
