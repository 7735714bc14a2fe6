/* virtio-blk end to end: the unikernel's driver against Ember's device and a host file. */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIMEOUT_S 120.0

static unsigned long crc32_range(const char *path, off_t off, size_t len)
{
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	unsigned char *buf = malloc(len);
	cr_assert(eq(i64, pread(fd, buf, len, off), (ssize_t)len));
	close(fd);
	unsigned long crc = 0xffffffffu;
	for (size_t i = 0; i < len; i++) {
		crc ^= buf[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
	}
	free(buf);
	return crc ^ 0xffffffffu;
}

/* The pattern the blk check writes: byte i of the region = i * 31 + seed. */
static void assert_pattern(const char *path, off_t off, size_t len, unsigned seed)
{
	int fd = open(path, O_RDONLY);
	unsigned char *buf = malloc(len);
	cr_assert(eq(i64, pread(fd, buf, len, off), (ssize_t)len));
	close(fd);
	for (size_t i = 0; i < len; i++)
		cr_assert(eq(u8, buf[i], (unsigned char)(i * 31 + seed)),
			  "byte %zu of the written region", i);
	free(buf);
}

static void run_blk(struct ember_run *r, const char *drive_spec, const char *cmdline,
		    const struct ember_trigger *trigger)
{
	const char *args[] = {"run",	 "--kernel", unikernel_path(), "--mem-mib", "128",
			      "--drive", drive_spec, "--cmdline",      cmdline,	    NULL};
	ember_exec(r, args, TIMEOUT_S, NULL, trigger);
}

Test(block_it, guest_reads_writes_and_flushes_the_host_file)
{
	require_kvm();
	char *img = temp_file_with(1 << 20, 11);
	unsigned long want = crc32_range(img, 0, 64 * 512);
	char spec[256], crc[32];
	snprintf(spec, sizeof(spec), "path=%s,id=itest-disk", img);
	snprintf(crc, sizeof(crc), "read_crc32=%08lx", want);
	struct ember_run r;
	run_blk(&r, spec, "check=blk blk_seed=5", NULL);
	cr_assert(ne(ptr, strstr(r.out, "CHECK blk PASS"), NULL), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, crc), NULL), "want %s:\n%s", crc, ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "capacity=2048"), NULL), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "id=\"itest-disk\""), NULL), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "flushed=1"), NULL), "%s", ember_run_describe(&r));
	cr_assert(eq(int, r.exit_code, 0), "%s", ember_run_describe(&r));
	assert_pattern(img, 64 * 512, 64 * 512, 5);
	ember_run_free(&r);
	unlink(img);
	free(img);
}

Test(block_it, read_only_drive_fails_guest_writes_and_keeps_the_file)
{
	require_kvm();
	char *img = temp_file_with(1 << 20, 12);
	unsigned long before = crc32_range(img, 0, 1 << 20);
	char spec[256];
	snprintf(spec, sizeof(spec), "path=%s,ro", img);
	struct ember_run r;
	run_blk(&r, spec, "check=blk", NULL);
	cr_assert(ne(ptr, strstr(r.out, "CHECK blk PASS"), NULL), "%s", ember_run_describe(&r));
	cr_assert(ne(ptr, strstr(r.out, "ro=1 write_refused=1"), NULL), "%s",
		  ember_run_describe(&r));
	cr_assert(eq(u64, crc32_range(img, 0, 1 << 20), before), "read-only file changed");
	ember_run_free(&r);
	unlink(img);
	free(img);
}

Test(block_it, flushed_data_survives_sigkill_of_the_monitor)
{
	require_kvm();
	char *img = temp_file_with(1 << 20, 13);
	char spec[256];
	snprintf(spec, sizeof(spec), "path=%s", img);
	/* The guest prints its PASS line only after FLUSH completed: kill the monitor then. */
	struct ember_trigger t = {"CHECK blk PASS", SIGKILL};
	struct ember_run r;
	run_blk(&r, spec, "check=blk,counter blk_seed=9", &t);
	cr_assert(eq(int, r.term_signal, SIGKILL), "%s", ember_run_describe(&r));
	assert_pattern(img, 64 * 512, 64 * 512, 9);
	ember_run_free(&r);
	unlink(img);
	free(img);
}
