/* boot_prepare: the whole boot input, in the order each step depends on the last. */
#include "memory/boot.h"
#include "memory/layout.h"
#include "common/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int boot_prepare(struct guest_mem *gm, const struct boot_config *cfg, struct boot_result *out)
{
	memset(out, 0, sizeof(*out));
	if (gmem_low_end(gm) < 2 * MiB)
		return err_set(EINVAL, "guest needs at least 2 MiB of RAM");
	int r = kernel_load_file(gm, cfg->kernel_path, cfg->kernel_fd, cfg->protocol, &out->kernel);
	if (r < 0)
		return r;
	const struct kernel_image *k = &out->kernel;

	if (cfg->initrd_path) {
		r = initrd_load_file(gm, cfg->initrd_path, cfg->initrd_fd, k, &out->initrd_addr,
				     &out->initrd_size);
		if (r < 0)
			return r;
	}

	size_t max = k->cmdline_max < LAYOUT_CMDLINE_MAX ? k->cmdline_max : LAYOUT_CMDLINE_MAX;
	char *cmdline = malloc(LAYOUT_CMDLINE_MAX);
	if (!cmdline)
		return err_set(ENOMEM, "command line buffer");
	r = cmdline_build(cmdline, LAYOUT_CMDLINE_MAX, cfg->cmdline, cfg->fragments, max);
	size_t cmdline_len = strlen(cmdline);
	if (r == 0)
		r = gmem_write(gm, LAYOUT_CMDLINE_ADDR, cmdline, cmdline_len + 1);
	free(cmdline);
	if (r < 0)
		return r;

	struct e820_entry map[E820_MAX];
	struct boot_inputs in = {
	    .cmdline_addr = LAYOUT_CMDLINE_ADDR,
	    .cmdline_size = cmdline_len,
	    .initrd_addr = out->initrd_addr,
	    .initrd_size = out->initrd_size,
	    .e820 = map,
	    .ne820 = e820_build(gm, map, E820_MAX),
	};

	uint8_t *mp = gmem_ptr(gm, LAYOUT_MPTABLE_ADDR, LAYOUT_EBDA_END - LAYOUT_MPTABLE_ADDR);
	if (!mp)
		return err_set(EINVAL, "no guest RAM for the MP table");
	r = mptable_build(mp, LAYOUT_EBDA_END - LAYOUT_MPTABLE_ADDR, LAYOUT_MPTABLE_ADDR,
			  cfg->ncpus);
	if (r < 0)
		return r;

	out->entry = k->entry;
	if (k->protocol == BOOT_PROTOCOL_PVH) {
		uint8_t *page = gmem_ptr(gm, LAYOUT_PVH_INFO_ADDR, 4096);
		if (!page)
			return err_set(EINVAL, "no guest RAM for the PVH start info");
		r = pvh_start_info_build(page, 4096, LAYOUT_PVH_INFO_ADDR, &in);
		if (r < 0)
			return r;
		out->boot_info_addr = LAYOUT_PVH_INFO_ADDR;
	} else {
		struct boot_params *bp = gmem_ptr(gm, LAYOUT_ZERO_PAGE_ADDR, sizeof(*bp));
		if (!bp)
			return err_set(EINVAL, "no guest RAM for the zero page");
		boot_params_build(bp, k, &in);
		out->boot_info_addr = LAYOUT_ZERO_PAGE_ADDR;
	}
	return 0;
}
