/* Which loader an image needs, and the inputs placed around it: initrd and command line. */
#include "memory/boot.h"
#include "memory/layout.h"
#include "common/checked.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Linux's x86 COMMAND_LINE_SIZE: the limit for images that do not state their own. */
#define DEFAULT_CMDLINE_MAX 2048
/* Where an initrd may end for images that do not say (Linux's default initrd_addr_max). */
#define DEFAULT_INITRD_ADDR_MAX 0x7fffffffull

static bool is_elf(const uint8_t *img, size_t size)
{
	return size >= 4 && memcmp(img, "\177ELF", 4) == 0;
}

static bool is_bzimage(const uint8_t *img, size_t size)
{
	return size >= 0x206 && img[0x1fe] == 0x55 && img[0x1ff] == 0xaa &&
	       memcmp(img + 0x202, "HdrS", 4) == 0;
}

static int load_elf(struct guest_mem *gm, const uint8_t *img, size_t size, enum boot_protocol want,
		    struct kernel_image *out)
{
	struct elf_info info;
	int r = elf_parse(img, size, &info);
	if (r < 0)
		return r;
	if (want == BOOT_PROTOCOL_PVH && !info.has_pvh)
		return err_set(EINVAL, "PVH boot asked for, but the image has no PVH entry note "
				       "(XEN_ELFNOTE_PHYS32_ENTRY)");
	r = elf_load(gm, img, &info);
	if (r < 0)
		return r;
	bool pvh = want == BOOT_PROTOCOL_PVH || (want == BOOT_PROTOCOL_AUTO && info.has_pvh);
	out->format = KERNEL_FORMAT_ELF;
	out->protocol = pvh ? BOOT_PROTOCOL_PVH : BOOT_PROTOCOL_LINUX64;
	out->entry = pvh ? info.pvh_entry : info.entry64;
	out->load_end = info.load_end;
	out->cmdline_max = DEFAULT_CMDLINE_MAX;
	out->initrd_addr_max = DEFAULT_INITRD_ADDR_MAX;
	if (pvh && out->entry >= 0x100000000ull)
		return err_set(EINVAL, "PVH entry 0x%llx is above 4 GiB",
			       (unsigned long long)out->entry);
	return 0;
}

static int load_bzimage(struct guest_mem *gm, const uint8_t *img, size_t size,
			enum boot_protocol want, struct kernel_image *out)
{
	if (want == BOOT_PROTOCOL_PVH)
		return err_set(EINVAL, "a bzImage cannot be booted by PVH; use its vmlinux");
	struct bzimage_info info;
	int r = bzimage_parse(img, size, &info);
	if (r < 0)
		return r;
	r = bzimage_load(gm, img, &info);
	if (r < 0)
		return r;
	out->format = KERNEL_FORMAT_BZIMAGE;
	out->protocol = BOOT_PROTOCOL_LINUX64;
	out->entry = LAYOUT_HIMEM_START + 0x200;
	out->load_end = info.min_ram;
	out->has_setup_header = true;
	out->hdr = info.hdr;
	out->cmdline_max =
	    info.hdr.cmdline_size ? (uint64_t)info.hdr.cmdline_size + 1 : DEFAULT_CMDLINE_MAX;
	out->initrd_addr_max =
	    info.hdr.initrd_addr_max ? info.hdr.initrd_addr_max : DEFAULT_INITRD_ADDR_MAX;
	if (info.hdr.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G)
		out->initrd_addr_max = UINT64_MAX;
	return 0;
}

int kernel_load_image(struct guest_mem *gm, const char *name, const uint8_t *img, size_t size,
		      enum boot_protocol want, struct kernel_image *out)
{
	memset(out, 0, sizeof(*out));
	int r;
	if (is_elf(img, size))
		r = load_elf(gm, img, size, want, out);
	else if (is_bzimage(img, size))
		r = load_bzimage(gm, img, size, want, out);
	else
		r = err_set(EINVAL, "unknown kernel format (neither ELF nor bzImage)");
	if (r < 0)
		return err_wrap(r, "kernel %s", name);
	return 0;
}

/* Map a whole open file read-only; the caller munmaps. `name` is for messages. */
static int map_fd(int fd, const char *name, const uint8_t **data, size_t *size)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_errno("stat %s", name);
	if (!S_ISREG(st.st_mode))
		return err_set(EINVAL, "%s is not a regular file", name);
	*size = (size_t)st.st_size;
	*data = NULL;
	if (*size == 0)
		return 0;
	void *p = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return err_errno("mmap %s", name);
	*data = p;
	return 0;
}

/* The file at `path`, or `fd` when it is not -1 (then `path` only names it in messages). */
static int map_file(const char *path, int fd, const uint8_t **data, size_t *size)
{
	if (fd >= 0)
		return map_fd(fd, path, data, size);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno("cannot open %s", path);
	int r = map_fd(fd, path, data, size);
	close(fd);
	return r;
}

int kernel_load_file(struct guest_mem *gm, const char *path, int fd, enum boot_protocol want,
		     struct kernel_image *out)
{
	const uint8_t *img;
	size_t size;
	int r = map_file(path, fd, &img, &size);
	if (r < 0)
		return err_wrap(r, "kernel");
	if (size == 0)
		return err_set(EINVAL, "kernel %s: empty file", path);
	r = kernel_load_image(gm, path, img, size, want, out);
	munmap((void *)img, size);
	return r;
}

int initrd_load_file(struct guest_mem *gm, const char *path, int fd, const struct kernel_image *k,
		     uint64_t *addr, uint64_t *size)
{
	const uint8_t *data;
	size_t len;
	int r = map_file(path, fd, &data, &len);
	if (r < 0)
		return err_wrap(r, "initrd");
	uint64_t top = gmem_low_end(gm);
	if (k->initrd_addr_max < top - 1)
		top = k->initrd_addr_max + 1;
	uint64_t floor = align_up(k->load_end, 4096);
	if (len > top || align_down(top - len, 4096) < floor) {
		if (data)
			munmap((void *)data, len);
		return err_set(E2BIG,
			       "initrd %s (%zu bytes) does not fit between the kernel's end "
			       "(0x%llx) and 0x%llx; give the guest more memory",
			       path, len, (unsigned long long)floor, (unsigned long long)top);
	}
	*addr = align_down(top - len, 4096);
	*size = len;
	if (len) {
		r = gmem_write(gm, *addr, data, len);
		munmap((void *)data, len);
		if (r < 0)
			return err_wrap(r, "initrd %s", path);
	}
	return 0;
}

int cmdline_build(char *out, size_t out_size, const char *user, const char *fragments, size_t max)
{
	user = user ? user : "";
	fragments = fragments ? fragments : "";
	/* Linux passes what follows " -- " to init: the monitor's parts must go before it. */
	const char *init_args = NULL;
	size_t user_len = strlen(user);
	if (strncmp(user, "-- ", 3) == 0 || strcmp(user, "--") == 0) {
		init_args = user;
		user_len = 0;
	} else {
		const char *dd = strstr(user, " -- ");
		if (!dd && user_len >= 3 && strcmp(user + user_len - 3, " --") == 0)
			dd = user + user_len - 3;
		if (dd) {
			init_args = dd + 1;
			user_len = (size_t)(dd - user);
		}
	}
	int n = snprintf(out, out_size, "%.*s%s%s%s%s", (int)user_len, user,
			 user_len && fragments[0] ? " " : "", fragments,
			 init_args && (user_len || fragments[0]) ? " " : "",
			 init_args ? init_args : "");
	if (n < 0 || (size_t)n >= out_size || (size_t)n + 1 > max)
		return err_set(E2BIG,
			       "kernel command line is %d bytes with the monitor's additions; "
			       "the limit for this kernel is %zu",
			       n, max - 1);
	return 0;
}
