/* What the loader told us, copied out of its structures at start so that
 * later checks may overwrite low memory (only the initrd stays in place). */
#ifndef UK_BOOT_H
#define UK_BOOT_H

#include <stdbool.h>
#include <stdint.h>

#define CMDLINE_MAX 4096
#define MEM_MAX	    128
#define E820_RAM    1

struct mem_range {
	uint64_t addr, size;
	uint32_t type;
};

struct boot_info {
	uint32_t proto; /* BOOT_PROTO_* */
	uint64_t info_addr;
	bool info_valid; /* magic found: "HdrS" or the PVH start-info magic */
	char cmdline[CMDLINE_MAX];
	uint32_t nmem;
	struct mem_range mem[MEM_MAX];
	uint64_t initrd_addr, initrd_size;
	uint32_t mp_cpus; /* enabled processors in an MP table, 0 without one */
};

extern struct boot_info boot;

void boot_parse(uint32_t proto, uint64_t info);
const char *boot_proto_name(void);
uint64_t boot_ram_bytes(void);

#endif
