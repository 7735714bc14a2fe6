/* ELF kernels: vmlinux-style images entered in long mode at e_entry, and images carrying Xen's
 * PVH note entered in 32-bit protected mode. Every offset and size read from the image is
 * checked against the file before use. */
#include "memory/boot.h"
#include "memory/layout.h"
#include "common/checked.h"
#include "common/err.h"

#include <elf.h>
#include <errno.h>
#include <string.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18

static int parse_notes(const uint8_t *img, size_t size, const Elf64_Phdr *ph, struct elf_info *info)
{
	if (!range_within(ph->p_offset, ph->p_filesz, size))
		return err_set(EINVAL,
			       "note segment at file offset 0x%llx+0x%llx runs past the end "
			       "of the file (%zu bytes)",
			       (unsigned long long)ph->p_offset, (unsigned long long)ph->p_filesz,
			       size);
	const uint8_t *p = img + ph->p_offset;
	uint64_t left = ph->p_filesz;
	while (left >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		memcpy(&nh, p, sizeof(nh));
		uint64_t name_len = align_up(nh.n_namesz, 4);
		uint64_t desc_len = align_up(nh.n_descsz, 4);
		uint64_t total = sizeof(nh) + name_len + desc_len;
		if (total > left)
			return err_set(EINVAL, "truncated ELF note (type %u)", nh.n_type);
		const uint8_t *name = p + sizeof(nh);
		const uint8_t *desc = name + name_len;
		if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    memcmp(name, "Xen", 4) == 0) {
			if (nh.n_descsz == 4) {
				uint32_t e;
				memcpy(&e, desc, 4);
				info->pvh_entry = e;
			} else if (nh.n_descsz == 8) {
				memcpy(&info->pvh_entry, desc, 8);
			} else {
				return err_set(EINVAL, "PVH entry note has a %u-byte value",
					       nh.n_descsz);
			}
			info->has_pvh = true;
		}
		p += total;
		left -= total;
	}
	return 0;
}

int elf_parse(const uint8_t *img, size_t size, struct elf_info *info)
{
	memset(info, 0, sizeof(*info));
	Elf64_Ehdr eh;
	if (size < sizeof(eh))
		return err_set(EINVAL, "truncated ELF header (%zu bytes)", size);
	memcpy(&eh, img, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return err_set(EINVAL, "not an ELF file");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return err_set(EINVAL, "not a 64-bit little-endian ELF");
	if (eh.e_machine != EM_X86_64)
		return err_set(EINVAL, "ELF machine %u is not x86_64", eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return err_set(EINVAL, "ELF type %u is not an executable", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return err_set(EINVAL, "ELF program header size %u, expected %zu", eh.e_phentsize,
			       sizeof(Elf64_Phdr));
	if (eh.e_phnum == 0)
		return err_set(EINVAL, "ELF has no program headers");
	if (!range_within(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), size))
		return err_set(EINVAL,
			       "ELF program headers (offset 0x%llx, %u entries) run past the "
			       "end of the file (%zu bytes): truncated image?",
			       (unsigned long long)eh.e_phoff, eh.e_phnum, size);

	info->load_start = UINT64_MAX;
	bool entry_found = false;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, img + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_NOTE) {
			int r = parse_notes(img, size, &ph, info);
			if (r < 0)
				return err_wrap(r, "program header %u", i);
			continue;
		}
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			return err_set(EINVAL,
				       "program header %u: file size 0x%llx above memory size "
				       "0x%llx",
				       i, (unsigned long long)ph.p_filesz,
				       (unsigned long long)ph.p_memsz);
		if (!range_within(ph.p_offset, ph.p_filesz, size))
			return err_set(EINVAL,
				       "program header %u: segment at file offset 0x%llx+0x%llx "
				       "runs past the end of the file (%zu bytes): "
				       "truncated image?",
				       i, (unsigned long long)ph.p_offset,
				       (unsigned long long)ph.p_filesz, size);
		uint64_t end;
		if (add_overflows(ph.p_paddr, ph.p_memsz, &end))
			return err_set(EINVAL, "program header %u: address overflows", i);
		if (info->nsegments == ELF_MAX_LOAD_SEGMENTS)
			return err_set(EINVAL, "more than %d loadable segments",
				       ELF_MAX_LOAD_SEGMENTS);
		info->segments[info->nsegments++] = (struct elf_segment){
		    .file_offset = ph.p_offset,
		    .file_size = ph.p_filesz,
		    .paddr = ph.p_paddr,
		    .mem_size = ph.p_memsz,
		};
		if (ph.p_paddr < info->load_start)
			info->load_start = ph.p_paddr;
		if (end > info->load_end)
			info->load_end = end;
		/* vmlinux's e_entry is physical; other linkers give a virtual one. Accept either.
		 */
		if (!entry_found && eh.e_entry >= ph.p_paddr && eh.e_entry < end) {
			info->entry64 = eh.e_entry;
			entry_found = true;
		} else if (!entry_found && eh.e_entry >= ph.p_vaddr &&
			   eh.e_entry - ph.p_vaddr < ph.p_memsz) {
			info->entry64 = ph.p_paddr + (eh.e_entry - ph.p_vaddr);
			entry_found = true;
		}
	}
	if (info->nsegments == 0)
		return err_set(EINVAL, "ELF has no loadable segments");
	if (!entry_found)
		return err_set(EINVAL, "entry point 0x%llx is outside every loadable segment",
			       (unsigned long long)eh.e_entry);
	return 0;
}

int elf_load(struct guest_mem *gm, const uint8_t *img, const struct elf_info *info)
{
	for (unsigned i = 0; i < info->nsegments; i++) {
		const struct elf_segment *s = &info->segments[i];
		if (s->paddr < LAYOUT_HIMEM_START)
			return err_set(EINVAL,
				       "segment at 0x%llx is below 1 MiB, where the monitor "
				       "keeps the boot tables",
				       (unsigned long long)s->paddr);
		uint8_t *dst = gmem_ptr(gm, s->paddr, s->mem_size);
		if (!dst)
			return err_set(E2BIG,
				       "segment at 0x%llx+0x%llx does not fit in guest RAM "
				       "(%llu MiB below the MMIO gap)",
				       (unsigned long long)s->paddr,
				       (unsigned long long)s->mem_size,
				       (unsigned long long)(gmem_low_end(gm) / MiB));
		memcpy(dst, img + s->file_offset, s->file_size);
		/* The tail (bss) is already zero: guest memory is fresh. */
	}
	return 0;
}
