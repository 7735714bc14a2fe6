/* Putting a guest's boot inputs into its memory: kernel images (vmlinux-style ELF, ELF with a PVH
 * note, bzImage), the initrd, the command line, and the tables the guest reads at entry (Linux
 * boot_params with its e820 map, the PVH hvm_start_info, the MP table). The parsers and table
 * builders are pure functions over buffers so tests can feed them any bytes. */
#pragma once

#include "memory/guest_mem.h"

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum boot_protocol {
	BOOT_PROTOCOL_AUTO, /* PVH when the image carries the note, else the Linux 64-bit protocol
			     */
	BOOT_PROTOCOL_LINUX64,
	BOOT_PROTOCOL_PVH,
};

enum kernel_format { KERNEL_FORMAT_ELF, KERNEL_FORMAT_BZIMAGE };

#define ELF_MAX_LOAD_SEGMENTS 16

struct elf_segment {
	uint64_t file_offset;
	uint64_t file_size;
	uint64_t paddr;
	uint64_t mem_size;
};

struct elf_info {
	uint64_t entry64; /* physical address of e_entry */
	bool has_pvh;
	uint64_t pvh_entry; /* XEN_ELFNOTE_PHYS32_ENTRY */
	unsigned nsegments;
	struct elf_segment segments[ELF_MAX_LOAD_SEGMENTS];
	uint64_t load_start, load_end;
};

struct bzimage_info {
	struct setup_header hdr; /* as the image carries it */
	uint64_t payload_offset; /* the protected-mode part starts here in the file */
	uint64_t payload_size;
	uint64_t min_ram; /* RAM needed for the kernel to decompress in place */
};

/* The outcome of loading a kernel, and what the boot tables need to know about it. */
struct kernel_image {
	enum kernel_format format;
	enum boot_protocol protocol; /* LINUX64 or PVH, never AUTO */
	uint64_t entry;
	uint64_t load_end; /* first free byte above the loaded kernel */
	bool has_setup_header;
	struct setup_header hdr;
	uint64_t cmdline_max; /* including the terminating NUL */
	uint64_t initrd_addr_max;
};

int elf_parse(const uint8_t *img, size_t size, struct elf_info *info);
int bzimage_parse(const uint8_t *img, size_t size, struct bzimage_info *info);
/* Copy a parsed image into guest memory, checking it fits. */
int elf_load(struct guest_mem *gm, const uint8_t *img, const struct elf_info *info);
int bzimage_load(struct guest_mem *gm, const uint8_t *img, const struct bzimage_info *info);

/* Parse `img` (ELF or bzImage), check it fits the guest and copy it in. `name` is used in
 * messages only. */
int kernel_load_image(struct guest_mem *gm, const char *name, const uint8_t *img, size_t size,
		      enum boot_protocol want, struct kernel_image *out);
/* Same, from the file at `path`, or from the open file `fd` unless it is -1 (`path` then only
 * names it in messages). */
int kernel_load_file(struct guest_mem *gm, const char *path, int fd, enum boot_protocol want,
		     struct kernel_image *out);

/* Place the initrd page-aligned at the top of low RAM, above the kernel and below the kernel's
 * initrd_addr_max. */
int initrd_load_file(struct guest_mem *gm, const char *path, int fd, const struct kernel_image *k,
		     uint64_t *addr, uint64_t *size);

/* Join the user's command line and the monitor's fragments ("user fragments", keeping anything
 * after a " -- " last, since Linux hands that to init). Fails if the result (with its NUL) is
 * longer than `max`. */
int cmdline_build(char *out, size_t out_size, const char *user, const char *fragments, size_t max);

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      16

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/* The guest's memory map per the architecture doc; returns the number of entries. */
unsigned e820_build(const struct guest_mem *gm, struct e820_entry *out, unsigned max);

struct boot_inputs {
	uint64_t cmdline_addr;
	uint64_t cmdline_size; /* without the NUL */
	uint64_t initrd_addr;
	uint64_t initrd_size;
	const struct e820_entry *e820;
	unsigned ne820;
};

/* Fill a Linux zero page: the image's setup header when it has one, else a synthetic one. */
void boot_params_build(struct boot_params *bp, const struct kernel_image *k,
		       const struct boot_inputs *in);

#define PVH_START_INFO_MAGIC 0x336ec578u

/* Build hvm_start_info, its module list (the initrd) and memory map into one page whose guest
 * address is `page_gpa`. Returns bytes used, or a negative errno if the map does not fit. */
int pvh_start_info_build(uint8_t *page, size_t page_size, uint64_t page_gpa,
			 const struct boot_inputs *in);

/* An Intel MP table (floating pointer + config table) for `ncpus` CPUs, for a guest placed at
 * `gpa`. Returns its length, or a negative errno if it does not fit in `size`. */
int mptable_build(uint8_t *buf, size_t size, uint64_t gpa, unsigned ncpus);
#define MPTABLE_MAX_CPUS 32

/* Everything above, in order: kernel, initrd, command line, boot tables. */
struct boot_config {
	const char *kernel_path;
	const char *initrd_path;  /* may be NULL */
	int kernel_fd, initrd_fd; /* open files to read instead of the paths, or -1 */
	const char *cmdline;	  /* the user's part; may be NULL */
	const char *fragments;	  /* the monitor's part */
	enum boot_protocol protocol;
	unsigned ncpus;
};

struct boot_result {
	struct kernel_image kernel;
	uint64_t entry;
	uint64_t boot_info_addr; /* rsi (zero page) or ebx (start info) */
	uint64_t initrd_addr, initrd_size;
};

int boot_prepare(struct guest_mem *gm, const struct boot_config *cfg, struct boot_result *out);
