/* The API's framing over socketpairs: whole frames, limits, truncation, end of stream, passed
 * descriptors, and the incremental reader fed a byte at a time. Criterion runs each test in a
 * process of its own, so counting this process's open descriptors finds leaks. */
#include "api/frame.h"
#include "common/err.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int sp[2]; /* sp[0] sends, sp[1] receives */

static void setup(void)
{
	cr_assert(eq(int, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0));
}

TestSuite(frame, .init = setup);

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert(ne(ptr, d, NULL));
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

static void write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		cr_assert(gt(sz, n, 0), "write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

static void header(uint8_t hdr[4], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

/* A frame as raw bytes with `nfds` descriptors on its first byte, bypassing api_frame_send's
 * own checks, as a hostile client would send it. */
static void send_raw(int sock, const uint8_t *bytes, size_t len, const int *fds, unsigned nfds)
{
	char control[CMSG_SPACE(sizeof(int) * 16)];
	memset(control, 0, sizeof(control));
	struct iovec iov = {(void *)bytes, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		mh.msg_control = control;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	cr_assert(eq(sz, sendmsg(sock, &mh, 0), (ssize_t)len), "sendmsg: %s", strerror(errno));
}

static void same_file(int a, int b)
{
	struct stat sa, sb;
	cr_assert(eq(int, fstat(a, &sa), 0));
	cr_assert(eq(int, fstat(b, &sb), 0));
	cr_assert(eq(u64, sa.st_dev, sb.st_dev));
	cr_assert(eq(u64, sa.st_ino, sb.st_ino));
}

static int temp_file(void)
{
	char name[] = "/tmp/ember-frame-XXXXXX";
	int fd = mkstemp(name);
	cr_assert(ge(int, fd, 0));
	unlink(name);
	return fd;
}

Test(frame, round_trip)
{
	const char text[] = "a protobuf message, or any bytes";
	cr_assert(eq(int, api_frame_send(sp[0], text, sizeof(text), NULL, 0), 0), "%s", err_msg());
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds = 99;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), 1), "%s", err_msg());
	cr_assert(eq(sz, len, sizeof(text)));
	cr_assert(eq(int, memcmp(msg, text, len), 0));
	cr_assert(eq(u32, nfds, 0));
	free(msg);
}

Test(frame, header_is_big_endian_length)
{
	const uint8_t body[3] = {7, 8, 9};
	cr_assert(eq(int, api_frame_send(sp[0], body, sizeof(body), NULL, 0), 0));
	uint8_t raw[8];
	cr_assert(eq(sz, recv(sp[1], raw, sizeof(raw), MSG_DONTWAIT), 7));
	const uint8_t want[7] = {0, 0, 0, 3, 7, 8, 9};
	cr_assert(eq(int, memcmp(raw, want, sizeof(want)), 0));
}

Test(frame, zero_length)
{
	cr_assert(eq(int, api_frame_send(sp[0], NULL, 0, NULL, 0), 0), "%s", err_msg());
	uint8_t *msg;
	size_t len = 99;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), 1), "%s", err_msg());
	cr_assert(eq(sz, len, 0));
	cr_assert(ne(ptr, msg, NULL));
	free(msg);
}

struct big_send {
	int sock;
	size_t len;
	uint8_t *buf;
	int result;
};

static void *send_thread(void *arg)
{
	struct big_send *b = arg;
	b->result = api_frame_send(b->sock, b->buf, b->len, NULL, 0);
	return NULL;
}

Test(frame, exactly_the_limit)
{
	struct big_send b = {.sock = sp[0], .len = API_FRAME_MAX, .buf = malloc(API_FRAME_MAX)};
	for (size_t i = 0; i < b.len; i++)
		b.buf[i] = (uint8_t)(i * 7 + i / 4096);
	pthread_t t;
	cr_assert(eq(int, pthread_create(&t, NULL, send_thread, &b), 0));
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	int r = api_frame_recv(sp[1], &msg, &len, fds, &nfds);
	pthread_join(t, NULL);
	cr_assert(eq(int, b.result, 0), "%s", err_msg());
	cr_assert(eq(int, r, 1), "%s", err_msg());
	cr_assert(eq(sz, len, API_FRAME_MAX));
	cr_assert(eq(int, memcmp(msg, b.buf, len), 0));
	free(msg);
	free(b.buf);
}

Test(frame, send_refuses_above_the_limit)
{
	uint8_t *buf = calloc(1, API_FRAME_MAX + 1);
	cr_assert(lt(int, api_frame_send(sp[0], buf, API_FRAME_MAX + 1, NULL, 0), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "limit"), NULL), "%s", err_msg());
	uint8_t probe;
	cr_assert(eq(sz, recv(sp[1], &probe, 1, MSG_DONTWAIT), -1), "nothing was sent");
	cr_assert(eq(int, errno, EAGAIN));
	free(buf);
}

Test(frame, recv_refuses_above_the_limit_without_reading_the_body)
{
	uint8_t raw[4 + 16];
	header(raw, API_FRAME_MAX + 1);
	memset(raw + 4, 0xab, 16);
	write_all(sp[0], raw, sizeof(raw));
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), -1));
	cr_assert(ne(ptr, strstr(err_msg(), "limit"), NULL), "%s", err_msg());
	cr_assert(eq(ptr, msg, NULL));
	uint8_t rest[32];
	cr_assert(eq(sz, recv(sp[1], rest, sizeof(rest), MSG_DONTWAIT), 16),
		  "the body stays unread");
}

Test(frame, truncated_header)
{
	const uint8_t raw[2] = {0, 0};
	write_all(sp[0], raw, sizeof(raw));
	close(sp[0]);
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), -1));
	cr_assert(ne(ptr, strstr(err_msg(), "truncated"), NULL), "%s", err_msg());
}

Test(frame, truncated_body)
{
	uint8_t raw[4 + 5];
	header(raw, 10);
	memset(raw + 4, 1, 5);
	unsigned before = open_fds();
	int f = temp_file();
	send_raw(sp[0], raw, sizeof(raw), &f, 1);
	close(f);
	close(sp[0]);
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), -1));
	cr_assert(ne(ptr, strstr(err_msg(), "truncated"), NULL), "%s", err_msg());
	cr_assert(eq(u32, nfds, 0));
	cr_assert(eq(u32, open_fds(), before - 1), "the passed file was closed");
}

Test(frame, end_of_stream_between_frames)
{
	cr_assert(eq(int, api_frame_send(sp[0], "one", 3, NULL, 0), 0));
	cr_assert(eq(int, api_frame_send(sp[0], "two!", 4, NULL, 0), 0));
	close(sp[0]);
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), 1));
	cr_assert(eq(sz, len, 3));
	cr_assert(eq(int, memcmp(msg, "one", 3), 0));
	free(msg);
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), 1));
	cr_assert(eq(sz, len, 4));
	cr_assert(eq(int, memcmp(msg, "two!", 4), 0));
	free(msg);
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), 0));
	cr_assert(eq(ptr, msg, NULL));
}

Test(frame, descriptors_travel_with_the_frame)
{
	int files[3] = {temp_file(), temp_file(), temp_file()};
	cr_assert(eq(int, api_frame_send(sp[0], "x", 1, files, 3), 0), "%s", err_msg());
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), 1), "%s", err_msg());
	cr_assert(eq(u32, nfds, 3));
	for (unsigned i = 0; i < 3; i++) {
		same_file(fds[i], files[i]);
		cr_assert(ne(int, fds[i], files[i]), "a new descriptor");
		cr_assert(ne(int, fcntl(fds[i], F_GETFD) & FD_CLOEXEC, 0), "close-on-exec");
		close(fds[i]);
		close(files[i]);
	}
	free(msg);
}

Test(frame, the_maximum_number_of_descriptors)
{
	int files[API_FRAME_MAXFDS];
	for (unsigned i = 0; i < API_FRAME_MAXFDS; i++)
		files[i] = temp_file();
	cr_assert(eq(int, api_frame_send(sp[0], "", 0, files, API_FRAME_MAXFDS), 0), "%s",
		  err_msg());
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), 1), "%s", err_msg());
	cr_assert(eq(u32, nfds, API_FRAME_MAXFDS));
	for (unsigned i = 0; i < API_FRAME_MAXFDS; i++)
		same_file(fds[i], files[i]);
	free(msg);
}

Test(frame, too_many_descriptors)
{
	int files[API_FRAME_MAXFDS + 1];
	for (unsigned i = 0; i <= API_FRAME_MAXFDS; i++)
		files[i] = temp_file();
	cr_assert(lt(int, api_frame_send(sp[0], "x", 1, files, API_FRAME_MAXFDS + 1), 0));

	/* A client that sends them anyway: the frame is refused and none of them stays open. */
	uint8_t raw[5];
	header(raw, 1);
	raw[4] = 'x';
	send_raw(sp[0], raw, sizeof(raw), files, API_FRAME_MAXFDS + 1);
	unsigned before = open_fds();
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), -1));
	cr_assert(ne(ptr, strstr(err_msg(), "descriptors"), NULL), "%s", err_msg());
	cr_assert(eq(u32, nfds, 0));
	cr_assert(eq(u32, open_fds(), before));
}

Test(frame, descriptors_on_a_later_byte_are_collected)
{
	uint8_t raw[4 + 4];
	header(raw, 4);
	memcpy(raw + 4, "abcd", 4);
	int f = temp_file();
	write_all(sp[0], raw, 6);
	send_raw(sp[0], raw + 6, 2, &f, 1);
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), 1), "%s", err_msg());
	cr_assert(eq(u32, nfds, 1));
	same_file(fds[0], f);
	cr_assert(eq(int, memcmp(msg, "abcd", 4), 0));
	free(msg);
}

/* ---- the incremental reader ------------------------------------------------------------- */

static void nonblocking(int fd)
{
	cr_assert(eq(int, fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0));
}

/* Bytes of one frame: header + body. */
static size_t frame_bytes(uint8_t *out, const void *body, uint32_t len)
{
	header(out, len);
	memcpy(out + 4, body, len);
	return 4 + (size_t)len;
}

Test(frame, reader_one_byte_at_a_time)
{
	nonblocking(sp[1]);
	struct api_frame_reader r;
	api_frame_reader_init(&r);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_AGAIN));

	const char *bodies[] = {"first frame", "", "the third"};
	int f = temp_file();
	for (unsigned k = 0; k < 3; k++) {
		uint8_t raw[64];
		size_t n = frame_bytes(raw, bodies[k], (uint32_t)strlen(bodies[k]));
		for (size_t i = 0; i < n; i++) {
			/* The second frame brings a file on its first byte. */
			send_raw(sp[0], raw + i, 1, &f, k == 1 && i == 0 ? 1 : 0);
			enum api_frame_status s = api_frame_read(&r, sp[1]);
			if (i + 1 < n) {
				cr_assert(eq(int, s, API_FRAME_AGAIN), "frame %u byte %zu", k, i);
				continue;
			}
			cr_assert(eq(int, s, API_FRAME_READY), "frame %u: %s", k, err_msg());
			cr_assert(eq(u32, r.len, strlen(bodies[k])));
			cr_assert(eq(int, memcmp(r.msg, bodies[k], r.len), 0));
			cr_assert(eq(u32, r.nfds, k == 1 ? 1 : 0));
			if (k == 1)
				same_file(r.fds[0], f);
		}
		if (k == 0) {
			/* The caller takes the message; the next read starts a new frame. */
			free(r.msg);
			r.msg = NULL;
		} else {
			api_frame_reader_reset(&r);
		}
	}
	close(sp[0]);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_EOF));
}

Test(frame, reader_stops_at_the_end_of_a_frame)
{
	nonblocking(sp[1]);
	uint8_t raw[64];
	size_t n = frame_bytes(raw, "abc", 3);
	n += frame_bytes(raw + n, "defgh", 5);
	write_all(sp[0], raw, n);
	struct api_frame_reader r;
	api_frame_reader_init(&r);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_READY));
	cr_assert(eq(u32, r.len, 3));
	cr_assert(eq(int, memcmp(r.msg, "abc", 3), 0));
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_READY));
	cr_assert(eq(u32, r.len, 5));
	cr_assert(eq(int, memcmp(r.msg, "defgh", 5), 0));
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_AGAIN));
	api_frame_reader_reset(&r);
}

Test(frame, reader_too_big_reads_no_body)
{
	nonblocking(sp[1]);
	uint8_t raw[4 + 8];
	header(raw, API_FRAME_MAX + 1);
	memset(raw + 4, 0xcd, 8);
	write_all(sp[0], raw, sizeof(raw));
	struct api_frame_reader r;
	api_frame_reader_init(&r);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_TOO_BIG));
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_TOO_BIG), "stays refused");
	uint8_t rest[16];
	cr_assert(eq(sz, recv(sp[1], rest, sizeof(rest), MSG_DONTWAIT), 8));
	api_frame_reader_reset(&r);
}

Test(frame, reader_exactly_the_limit)
{
	nonblocking(sp[1]);
	struct big_send b = {.sock = sp[0], .len = API_FRAME_MAX, .buf = malloc(API_FRAME_MAX)};
	for (size_t i = 0; i < b.len; i++)
		b.buf[i] = (uint8_t)(i ^ (i >> 9));
	pthread_t t;
	cr_assert(eq(int, pthread_create(&t, NULL, send_thread, &b), 0));
	struct api_frame_reader r;
	api_frame_reader_init(&r);
	enum api_frame_status s;
	while ((s = api_frame_read(&r, sp[1])) == API_FRAME_AGAIN) {
		struct pollfd p = {.fd = sp[1], .events = POLLIN};
		cr_assert(eq(int, poll(&p, 1, -1), 1));
	}
	pthread_join(t, NULL);
	cr_assert(eq(int, b.result, 0));
	cr_assert(eq(int, s, API_FRAME_READY), "%s", err_msg());
	cr_assert(eq(u32, r.len, API_FRAME_MAX));
	cr_assert(eq(int, memcmp(r.msg, b.buf, r.len), 0));
	api_frame_reader_reset(&r);
	free(b.buf);
}

Test(frame, reader_partial_frame_then_end_of_stream)
{
	nonblocking(sp[1]);
	uint8_t raw[16];
	size_t n = frame_bytes(raw, "abcdefgh", 8);
	int f = temp_file();
	unsigned before = open_fds();
	send_raw(sp[0], raw, n - 3, &f, 1);
	struct api_frame_reader r;
	api_frame_reader_init(&r);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_AGAIN));
	cr_assert(eq(u32, r.nfds, 1));
	close(sp[0]);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_EOF));
	cr_assert(eq(u32, r.nfds, 0));
	cr_assert(eq(ptr, r.msg, NULL));
	cr_assert(eq(u32, open_fds(), before - 1), "the passed file was dropped");
}

Test(frame, reader_too_many_descriptors)
{
	nonblocking(sp[1]);
	int files[API_FRAME_MAXFDS + 1];
	for (unsigned i = 0; i <= API_FRAME_MAXFDS; i++)
		files[i] = temp_file();
	uint8_t raw[8];
	size_t n = frame_bytes(raw, "abcd", 4);
	send_raw(sp[0], raw, n, files, API_FRAME_MAXFDS + 1);
	unsigned before = open_fds();
	struct api_frame_reader r;
	api_frame_reader_init(&r);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_ERROR));
	cr_assert(eq(u32, r.nfds, 0));
	cr_assert(eq(u32, open_fds(), before));
	api_frame_reader_reset(&r);
}

Test(frame, reader_descriptors_across_reads_are_capped)
{
	/* Two bursts of files within one frame, together one more than allowed. */
	nonblocking(sp[1]);
	int files[API_FRAME_MAXFDS + 1];
	for (unsigned i = 0; i <= API_FRAME_MAXFDS; i++)
		files[i] = temp_file();
	uint8_t raw[8];
	size_t n = frame_bytes(raw, "abcd", 4);
	send_raw(sp[0], raw, 4, files, API_FRAME_MAXFDS);
	struct api_frame_reader r;
	api_frame_reader_init(&r);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_AGAIN));
	cr_assert(eq(u32, r.nfds, API_FRAME_MAXFDS));
	unsigned before = open_fds();
	send_raw(sp[0], raw + 4, n - 4, files + API_FRAME_MAXFDS, 1);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_ERROR));
	cr_assert(eq(u32, r.nfds, 0));
	cr_assert(eq(u32, open_fds(), before - API_FRAME_MAXFDS));
	api_frame_reader_reset(&r);
}

Test(frame, reader_reset_closes_unclaimed_descriptors)
{
	nonblocking(sp[1]);
	int f = temp_file();
	uint8_t raw[8];
	size_t n = frame_bytes(raw, "ab", 2);
	send_raw(sp[0], raw, n, &f, 1);
	unsigned before = open_fds();
	struct api_frame_reader r;
	api_frame_reader_init(&r);
	cr_assert(eq(int, api_frame_read(&r, sp[1]), API_FRAME_READY));
	cr_assert(eq(u32, open_fds(), before + 1));
	api_frame_reader_reset(&r);
	cr_assert(eq(u32, open_fds(), before));
	cr_assert(eq(ptr, r.msg, NULL));
}

Test(frame, blocking_recv_times_out)
{
	struct timeval tv = {.tv_sec = 0, .tv_usec = 1000};
	cr_assert(eq(int, setsockopt(sp[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0));
	uint8_t *msg;
	size_t len;
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
	cr_assert(eq(int, api_frame_recv(sp[1], &msg, &len, fds, &nfds), -1));
	cr_assert(ne(ptr, strstr(err_msg(), "timed out"), NULL), "%s", err_msg());
}
