/* Framing on the API's Unix stream socket, for the server and the client alike: a 4-byte
 * big-endian length, then that many bytes of protobuf. Open files travel as SCM_RIGHTS on the
 * first byte of a frame. Errors go through common/err.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_FRAME_MAX	 (1u << 20) /* bytes of message; a larger length is refused */
#define API_FRAME_MAXFDS 8	    /* descriptors with one frame */

/* Send one frame (blocking; retries short writes and EINTR; MSG_NOSIGNAL). `fds` go with the
 * first byte. Returns 0, or -1 with err set. */
int api_frame_send(int sock, const void *msg, size_t len, const int *fds, unsigned nfds);

/* Receive one whole frame (blocking). On success *msg is malloc'd (caller frees), *len its size,
 * fds[0..*nfds) the descriptors that came with it (O_CLOEXEC; caller closes). Returns 1 for a
 * frame, 0 for end of stream before any byte of a frame, -1 with err set for an error,
 * a truncated frame, or a length above API_FRAME_MAX (nothing of it is read then). */
int api_frame_recv(int sock, uint8_t **msg, size_t *len, int fds[API_FRAME_MAXFDS], unsigned *nfds);

/* Incremental reader for a non-blocking socket: the server keeps one per connection. */
struct api_frame_reader {
	uint8_t hdr[4];
	size_t have; /* bytes of header + message read so far */
	uint32_t len;
	uint8_t *msg; /* malloc'd once the header is complete */
	int fds[API_FRAME_MAXFDS];
	unsigned nfds;
};

enum api_frame_status {
	API_FRAME_ERROR = -1,	/* read error, or descriptors beyond API_FRAME_MAXFDS (closed) */
	API_FRAME_TOO_BIG = -2, /* the header announced more than API_FRAME_MAX */
	API_FRAME_EOF = 0,	/* end of stream (a partial frame is dropped) */
	API_FRAME_AGAIN = 1,	/* no whole frame yet */
	API_FRAME_READY = 2,	/* reader->msg holds reader->len bytes, reader->fds its files */
};

void api_frame_reader_init(struct api_frame_reader *r);
/* Read what the socket has (recvmsg, MSG_CMSG_CLOEXEC), up to the end of one frame. After
 * READY the caller takes msg and fds (sets them to NULL / nfds 0) or calls reset. */
enum api_frame_status api_frame_read(struct api_frame_reader *r, int sock);
/* Free the message and close unclaimed descriptors; ready for the next frame. */
void api_frame_reader_reset(struct api_frame_reader *r);

/* Zero-length frames are allowed (an empty protobuf message is valid). */
