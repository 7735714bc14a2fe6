#include "memory/boot.h"
#include "memory/layout.h"
#include "common/err.h"
#include "tests/unit/image_builders.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <unistd.h>

static struct guest_mem gm;

static void setup_64m(void)
{
	cr_assert(gmem_create(&gm, 64 * MiB) == 0, "%s", err_msg());
}

static void teardown_mem(void)
{
	gmem_destroy(&gm);
}

TestSuite(loaders, .init = setup_64m, .fini = teardown_mem);

Test(loaders, elf_without_pvh_note_boots_linux64)
{
	struct test_image img = make_elf(0x200000, 4096, 8192, false, 0);
	struct kernel_image k;
	cr_assert(
	    eq(int, kernel_load_image(&gm, "t", img.data, img.size, BOOT_PROTOCOL_AUTO, &k), 0),
	    "%s", err_msg());
	cr_assert(eq(int, k.protocol, BOOT_PROTOCOL_LINUX64));
	cr_assert(eq(u64, k.entry, 0x200000));
	cr_assert(eq(u64, k.load_end, 0x200000 + 4096 + 8192));
	uint8_t *p = gmem_ptr(&gm, 0x200000, 4096);
	cr_assert(eq(u8, p[5], (uint8_t)(5 * 7 + 1)));
	free(img.data);
}

Test(loaders, elf_with_pvh_note_prefers_pvh_unless_told)
{
	struct test_image img = make_elf(0x100000, 256, 0, true, 0x100040);
	struct kernel_image k;
	cr_assert(
	    eq(int, kernel_load_image(&gm, "t", img.data, img.size, BOOT_PROTOCOL_AUTO, &k), 0));
	cr_assert(eq(int, k.protocol, BOOT_PROTOCOL_PVH));
	cr_assert(eq(u64, k.entry, 0x100040));
	cr_assert(
	    eq(int, kernel_load_image(&gm, "t", img.data, img.size, BOOT_PROTOCOL_LINUX64, &k), 0));
	cr_assert(eq(int, k.protocol, BOOT_PROTOCOL_LINUX64));
	cr_assert(eq(u64, k.entry, 0x100000));
	free(img.data);
}

Test(loaders, pvh_requested_without_note_fails)
{
	struct test_image img = make_elf(0x100000, 256, 0, false, 0);
	struct kernel_image k;
	cr_assert(
	    lt(int, kernel_load_image(&gm, "img", img.data, img.size, BOOT_PROTOCOL_PVH, &k), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "no PVH entry note"), NULL), "%s", err_msg());
	cr_assert(ne(ptr, strstr(err_msg(), "kernel img"), NULL), "%s", err_msg());
	free(img.data);
}

Test(loaders, truncated_elf_is_refused_at_every_length)
{
	struct test_image img = make_elf(0x100000, 512, 0, true, 0x100000);
	struct kernel_image k;
	/* Every prefix shorter than the whole file must fail cleanly, never read past it. */
	for (size_t len = 0; len < img.size; len += (len < 256 ? 1 : 61)) {
		uint8_t *copy = malloc(len ? len : 1);
		memcpy(copy, img.data, len);
		cr_assert(
		    lt(int, kernel_load_image(&gm, "t", copy, len, BOOT_PROTOCOL_AUTO, &k), 0),
		    "length %zu accepted", len);
		free(copy);
	}
	free(img.data);
}

Test(loaders, corrupted_elf_headers_are_refused)
{
	struct kernel_image k;
	struct {
		size_t off;
		uint8_t val;
		const char *msg;
	} cases[] = {
	    {EI_CLASS, ELFCLASS32, "64-bit"},
	    {offsetof(Elf64_Ehdr, e_machine), 3 /* EM_386 */, "not x86_64"},
	    {offsetof(Elf64_Ehdr, e_type), ET_DYN, "not an executable"},
	    {offsetof(Elf64_Ehdr, e_phentsize), 12, "program header size"},
	    {offsetof(Elf64_Ehdr, e_phoff) + 3, 0x7f, "program headers"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct test_image img = make_elf(0x100000, 256, 0, false, 0);
		img.data[cases[i].off] = cases[i].val;
		cr_assert(
		    lt(int, kernel_load_image(&gm, "t", img.data, img.size, BOOT_PROTOCOL_AUTO, &k),
		       0));
		cr_assert(ne(ptr, strstr(err_msg(), cases[i].msg), NULL), "case %zu: %s", i,
			  err_msg());
		free(img.data);
	}
}

Test(loaders, elf_segment_past_end_of_ram_is_refused)
{
	struct test_image img = make_elf(63 * MiB, 4096, 2 * MiB, false, 0);
	struct kernel_image k;
	cr_assert(
	    lt(int, kernel_load_image(&gm, "t", img.data, img.size, BOOT_PROTOCOL_AUTO, &k), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "does not fit"), NULL), "%s", err_msg());
	free(img.data);
}

Test(loaders, elf_segment_below_1mib_is_refused)
{
	struct test_image img = make_elf(0x8000, 256, 0, false, 0);
	struct kernel_image k;
	cr_assert(
	    lt(int, kernel_load_image(&gm, "t", img.data, img.size, BOOT_PROTOCOL_AUTO, &k), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "below 1 MiB"), NULL), "%s", err_msg());
	free(img.data);
}

Test(loaders, bzimage_loads_protected_mode_part_at_1mib)
{
	struct test_image img = make_bzimage(8192, 0x020f, 16 * MiB);
	struct kernel_image k;
	cr_assert(
	    eq(int, kernel_load_image(&gm, "bz", img.data, img.size, BOOT_PROTOCOL_AUTO, &k), 0),
	    "%s", err_msg());
	cr_assert(eq(int, k.format, KERNEL_FORMAT_BZIMAGE));
	cr_assert(eq(u64, k.entry, 0x100200));
	cr_assert(eq(u64, k.cmdline_max, 2048));
	uint8_t *p = gmem_ptr(&gm, 0x100000, 16);
	cr_assert(eq(u8, p[3], 3 ^ 0x5a));
	cr_assert(eq(u32, k.hdr.header, 0x53726448));
	free(img.data);
}

Test(loaders, bzimage_problems_are_named)
{
	struct kernel_image k;
	struct test_image old = make_bzimage(4096, 0x0206, 16 * MiB);
	cr_assert(
	    lt(int, kernel_load_image(&gm, "bz", old.data, old.size, BOOT_PROTOCOL_AUTO, &k), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "too old"), NULL), "%s", err_msg());
	free(old.data);

	struct test_image big = make_bzimage(4096, 0x020f, 128 * MiB);
	cr_assert(
	    lt(int, kernel_load_image(&gm, "bz", big.data, big.size, BOOT_PROTOCOL_AUTO, &k), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "MiB of RAM"), NULL), "%s", err_msg());
	free(big.data);

	struct test_image cut = make_bzimage(8192, 0x020f, 16 * MiB);
	cr_assert(
	    lt(int, kernel_load_image(&gm, "bz", cut.data, cut.size - 4096, BOOT_PROTOCOL_AUTO, &k),
	       0));
	cr_assert(ne(ptr, strstr(err_msg(), "truncated"), NULL), "%s", err_msg());
	cr_assert(
	    lt(int, kernel_load_image(&gm, "bz", cut.data, 0x300, BOOT_PROTOCOL_AUTO, &k), 0));
	cr_assert(
	    lt(int, kernel_load_image(&gm, "bz", cut.data, cut.size, BOOT_PROTOCOL_PVH, &k), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "PVH"), NULL), "%s", err_msg());
	free(cut.data);
}

Test(loaders, unknown_format_is_named)
{
	uint8_t junk[4096];
	memset(junk, 0x90, sizeof(junk));
	struct kernel_image k;
	cr_assert(lt(
	    int, kernel_load_image(&gm, "/x/junk", junk, sizeof(junk), BOOT_PROTOCOL_AUTO, &k), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "/x/junk: unknown kernel format"), NULL), "%s",
		  err_msg());
}

Test(loaders, missing_file_is_named)
{
	struct kernel_image k;
	cr_assert(
	    lt(int, kernel_load_file(&gm, "/nonexistent/vmlinux", -1, BOOT_PROTOCOL_AUTO, &k), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "/nonexistent/vmlinux"), NULL), "%s", err_msg());
}

static char *write_temp(size_t size)
{
	char *path = strdup("/tmp/ember-test-XXXXXX");
	int fd = mkstemp(path);
	cr_assert(ge(int, fd, 0));
	uint8_t *buf = malloc(size ? size : 1);
	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(i * 13);
	cr_assert(eq(i64, write(fd, buf, size), (ssize_t)size));
	free(buf);
	close(fd);
	return path;
}

Test(loaders, initrd_goes_page_aligned_to_top_of_low_ram)
{
	struct test_image img = make_elf(0x100000, 4096, 0, false, 0);
	struct kernel_image k;
	cr_assert(
	    eq(int, kernel_load_image(&gm, "t", img.data, img.size, BOOT_PROTOCOL_AUTO, &k), 0));
	char *path = write_temp(10000);
	uint64_t addr, size;
	cr_assert(eq(int, initrd_load_file(&gm, path, -1, &k, &addr, &size), 0), "%s", err_msg());
	cr_assert(eq(u64, size, 10000));
	cr_assert(eq(u64, addr % 4096, 0));
	cr_assert(le(u64, addr + size, 64 * MiB));
	cr_assert(gt(u64, addr + size, 64 * MiB - 4096 * 2));
	uint8_t *p = gmem_ptr(&gm, addr, size);
	cr_assert(eq(u8, p[9999], (uint8_t)(9999 * 13)));
	unlink(path);
	free(path);
	free(img.data);
}

Test(loaders, initrd_that_does_not_fit_is_refused)
{
	struct test_image img = make_elf(0x100000, 4096, 0, false, 0);
	struct kernel_image k;
	cr_assert(
	    eq(int, kernel_load_image(&gm, "t", img.data, img.size, BOOT_PROTOCOL_AUTO, &k), 0));
	char *path = write_temp(64 * MiB);
	uint64_t addr, size;
	cr_assert(lt(int, initrd_load_file(&gm, path, -1, &k, &addr, &size), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "does not fit"), NULL), "%s", err_msg());
	cr_assert(ne(ptr, strstr(err_msg(), path), NULL), "%s", err_msg());
	unlink(path);
	free(path);
	free(img.data);
}

Test(cmdline, monitor_fragments_follow_user_and_precede_init_args)
{
	char out[256];
	cr_assert(
	    eq(int, cmdline_build(out, sizeof(out), "root=/dev/vda", "console=ttyS0", 256), 0));
	cr_assert(eq(str, out, "root=/dev/vda console=ttyS0"));
	cr_assert(
	    eq(int, cmdline_build(out, sizeof(out), "quiet -- init arg", "console=ttyS0", 256), 0));
	cr_assert(eq(str, out, "quiet console=ttyS0 -- init arg"));
	cr_assert(eq(int, cmdline_build(out, sizeof(out), "-- a", "console=ttyS0", 256), 0));
	cr_assert(eq(str, out, "console=ttyS0 -- a"));
	cr_assert(eq(int, cmdline_build(out, sizeof(out), NULL, "console=ttyS0", 256), 0));
	cr_assert(eq(str, out, "console=ttyS0"));
}

Test(cmdline, too_long_is_refused_with_the_limit)
{
	char out[4096];
	char user[3000];
	memset(user, 'a', sizeof(user) - 1);
	user[sizeof(user) - 1] = 0;
	cr_assert(lt(int, cmdline_build(out, sizeof(out), user, "console=ttyS0", 2048), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "limit for this kernel is 2047"), NULL), "%s",
		  err_msg());
}
