/* Synthetic kernel images for loader tests: small, valid ELF and bzImage buffers that tests then
 * truncate or corrupt. */
#pragma once

#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct test_image {
	uint8_t *data;
	size_t size;
};

/* An x86_64 ET_EXEC with one PT_LOAD of `payload` bytes at `paddr` (memsz = payload + bss),
 * entry at paddr, and optionally a PT_NOTE carrying the PVH entry. */
static inline struct test_image make_elf(uint64_t paddr, size_t payload, size_t bss, bool pvh,
					 uint32_t pvh_entry)
{
	size_t nph = pvh ? 2 : 1;
	size_t note_off = sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr);
	size_t note_size = pvh ? sizeof(Elf64_Nhdr) + 4 + 4 : 0;
	size_t load_off = 0x1000;
	struct test_image img = {.size = load_off + payload};
	img.data = calloc(1, img.size);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img.data;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = paddr;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = (uint16_t)nph;
	Elf64_Phdr *ph = (Elf64_Phdr *)(img.data + eh->e_phoff);
	ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
			     .p_flags = PF_R | PF_X,
			     .p_offset = load_off,
			     .p_vaddr = paddr,
			     .p_paddr = paddr,
			     .p_filesz = payload,
			     .p_memsz = payload + bss,
			     .p_align = 0x1000};
	if (pvh) {
		ph[1] =
		    (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = note_off, .p_filesz = note_size};
		Elf64_Nhdr nh = {.n_namesz = 4, .n_descsz = 4, .n_type = 18};
		uint8_t *p = img.data + note_off;
		memcpy(p, &nh, sizeof(nh));
		memcpy(p + sizeof(nh), "Xen", 4);
		memcpy(p + sizeof(nh) + 4, &pvh_entry, 4);
	}
	for (size_t i = 0; i < payload; i++)
		img.data[load_off + i] = (uint8_t)(i * 7 + 1);
	return img;
}

/* A bzImage-shaped buffer: boot sector with the setup header, 4 setup sectors, `payload` bytes. */
static inline struct test_image make_bzimage(size_t payload, uint16_t version, uint32_t init_size)
{
	const unsigned setup_sects = 4;
	struct test_image img = {.size = (setup_sects + 1) * 512 + payload};
	img.data = calloc(1, img.size);
	uint8_t *d = img.data;
	d[0x1f1] = setup_sects;
	uint32_t syssize = (uint32_t)((payload + 15) / 16);
	memcpy(d + 0x1f4, &syssize, 4);
	d[0x1fe] = 0x55;
	d[0x1ff] = 0xaa;
	d[0x200] = 0xeb; /* jmp */
	d[0x201] = 0x6a; /* header ends at 0x202 + 0x6a = 0x26c */
	memcpy(d + 0x202, "HdrS", 4);
	memcpy(d + 0x206, &version, 2);
	d[0x211] = 0x01; /* loadflags: LOADED_HIGH */
	uint32_t initrd_max = 0x37ffffff;
	memcpy(d + 0x22c, &initrd_max, 4);
	uint32_t align = 0x200000;
	memcpy(d + 0x230, &align, 4);
	d[0x234] = 1;	    /* relocatable */
	uint16_t xlf = 0x1; /* XLF_KERNEL_64 */
	memcpy(d + 0x236, &xlf, 2);
	uint32_t cmdline_size = 2047;
	memcpy(d + 0x238, &cmdline_size, 4);
	uint64_t pref = 0x1000000;
	memcpy(d + 0x258, &pref, 8);
	memcpy(d + 0x260, &init_size, 4);
	for (size_t i = 0; i < payload; i++)
		d[(setup_sects + 1) * 512 + i] = (uint8_t)(i ^ 0x5a);
	return img;
}
