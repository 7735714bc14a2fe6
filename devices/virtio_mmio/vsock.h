/* virtio-vsock with a hybrid host side, as Firecracker does it: the host end of every guest
 * stream is a Unix stream socket.
 *
 *   host → guest: connect to the device's socket PATH and write "CONNECT <port>\n"; the answer
 *                 is "OK <host-port>\n" once the guest accepted, then the stream is raw bytes.
 *                 A refused connection (RST from the guest) or a bad line is simply closed.
 *   guest → host: a guest connection to CID 2 port P is a Unix connection to "PATH_P".
 *
 * Stream sockets only (no VIRTIO_VSOCK_F_SEQPACKET); credit-based flow control both ways per
 * virtio 1.2 section 5.10. */
#pragma once

#include "devices/virtio_mmio/device.h"

#include <stdint.h>
#include <sys/un.h>

#define VSOCK_HOST_CID 2
/* "PATH_4294967295" must fit in sun_path. */
#define VSOCK_UDS_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 12)

struct vsock_config {
	uint64_t guest_cid; /* 3 .. 0xfffffffe */
	char uds_path[VSOCK_UDS_PATH_MAX + 1];
	/* How long a host connection may take to send its CONNECT line, the guest to answer a
	 * REQUEST, and a closing connection to finish; milliseconds. Not on the command line. */
	unsigned timeout_ms;
};

struct vsock_stats {
	uint64_t conns_opened; /* streams established, either direction */
	uint64_t conns_closed; /* established streams that ended, any way */
	uint64_t conns_reset; /* ... of which abruptly: RST without shutdown, error, device reset */
	uint64_t conns_refused; /* attempts that never got established, either direction */
	uint64_t bytes_to_guest, bytes_from_guest;
	uint64_t rx_packets;  /* packets the device put in the rx queue */
	uint64_t tx_packets;  /* packets the driver sent on the tx queue */
	uint64_t bad_packets; /* malformed, misaddressed, unexpected, or for no connection */
	uint64_t
	    credit_violations; /* data beyond our advertised credit, or a fwd_cnt from nowhere */
	uint64_t bad_connect_lines; /* host connections closed for a bad, long or missing line */
	uint64_t rst_dropped;	    /* RSTs owed the guest that found the bounded queue full */
	uint64_t transport_resets;  /* TRANSPORT_RESET events delivered (after restores) */
};

#define VSOCK_DEFAULT_TIMEOUT_MS 5000

int vsock_config_parse(const char *spec, struct vsock_config *cfg);
/* A copy of the device's counters (takes the transport lock). The class's metrics() sums them
 * up: requests = rx_packets + tx_packets, the byte counts, errors = bad_packets +
 * credit_violations + bad_connect_lines + rst_dropped. */
void vsock_get_stats(void *dev, struct vsock_stats *out);
