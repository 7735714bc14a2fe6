/* The vsock device's insides, shared by vsock.c (the virtio side: queues, packets, the device
 * class) and vsock_conn.c (the connection table and the Unix side of each stream).
 *
 * Threads: everything here is guarded by transport.lock. Packets and resets may arrive on a
 * vCPU thread (register writes), so changes to the event loop's table (adding a new socket,
 * removing a dead one) are made only on the vmm thread, in vsock_sync(); other threads ask for
 * it through sync_efd. Connection sockets are registered edge-triggered (EPOLLET) for
 * IN|OUT|RDHUP and never modified: the device reads a socket only when the guest has both
 * credit and an rx buffer for it, and otherwise simply leaves the bytes in the socket (the
 * socket's own buffer then pushes back on the host writer); readiness it has not consumed is
 * remembered in the connection (data_ready), not re-asked from epoll. Events are hints: a
 * callback may see one meant for an earlier socket in the same slot, so every action checks
 * the state and treats EAGAIN as "nothing". */
#pragma once

#include "devices/virtio_mmio/vsock.h"

#include <linux/virtio_vsock.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VSOCK_MAX_CONNS	   256
#define VSOCK_BUF_ALLOC	   (256u * 1024) /* credit we give the guest, per stream */
#define VSOCK_HDR_LEN	   44
#define VSOCK_MAX_PAYLOAD  (64u * 1024) /* per rx packet, as Linux's largest rx buffer */
#define VSOCK_LINE_MAX	   32		/* "CONNECT 4294967295\n" is 19 */
#define VSOCK_RST_QUEUE	   (VSOCK_MAX_CONNS + 64)
#define VSOCK_FIRST_PORT   1024
#define VSOCK_SHUTDOWN_ALL (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)

enum conn_state {
	CONN_FREE,
	CONN_HANDSHAKE,	  /* host connection accepted, reading "CONNECT <port>\n" */
	CONN_LOCAL_INIT,  /* REQUEST owed or sent to the guest, waiting for its RESPONSE */
	CONN_ESTABLISHED, /* relaying (also while one side has shut down a direction) */
	CONN_CLOSING,	  /* we sent SHUTDOWN both ways; waiting for the guest's RST */
	CONN_ZOMBIE,	  /* gone for the guest; its socket is closed on the vmm thread */
};

/* Control packets a connection owes the guest. */
enum {
	OWE_REQUEST = 1,
	OWE_RESPONSE = 2,
	OWE_CREDIT_REQUEST = 4,
	OWE_SHUTDOWN = 8,
	OWE_CREDIT_UPDATE = 16,
};

struct vsock_conn {
	struct vsock_dev *d;
	enum conn_state state;
	int fd;
	bool registered;  /* in the event loop */
	bool guest_knows; /* the guest has seen this connection (sent or got a REQUEST) */
	bool host_initiated;
	uint32_t local_port;  /* host side (CID 2) */
	uint32_t peer_port;   /* guest side */
	uint64_t deadline_ns; /* 0: none */
	/* host → guest */
	unsigned owed;	   /* OWE_* */
	bool data_ready;   /* the socket may have bytes for the guest */
	bool credit_asked; /* a CREDIT_REQUEST went out since the guest last gave credit */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	uint32_t local_shutdown; /* SHUTDOWN flags we sent */
	/* guest → host */
	uint32_t peer_shutdown; /* SHUTDOWN flags the guest sent */
	uint32_t rx_cnt;	/* payload bytes the guest sent */
	uint32_t fwd_cnt;	/* ... of which written to the socket */
	uint32_t fwd_told;	/* fwd_cnt as last told to the guest */
	bool write_shut;	/* shutdown(SHUT_WR) done, after the guest's SHUTDOWN SEND */
	uint8_t *buf;		/* bytes the socket had no room for: a ring of VSOCK_BUF_ALLOC */
	uint32_t buf_head, buf_len;
	/* handshake */
	char line[VSOCK_LINE_MAX];
	unsigned line_len;
	/* socket readiness that arrived while the device was quiesced, for unquiesce */
	uint32_t deferred_events;
	/* fair turns for the rx queue */
	bool in_ready;
	struct vsock_conn *prev, *next;
};

struct vsock_rst {
	uint32_t local_port, peer_port;
};

struct vsock_dev {
	struct virtio_mmio_dev transport;
	struct virtio_device_ops ops;
	struct vsock_config cfg;
	struct event_loop *loop;
	pthread_t vmm_thread;
	int listen_fd, timer_fd, sync_efd;
	bool bound;  /* we created cfg.uds_path and remove it at the end */
	bool active; /* DRIVER_OK since the last reset */
	bool timer_armed;
	bool needs_sync;
	/* Snapshots: no queue is served and no socket read while quiesced. */
	bool quiesced;
	/* A TRANSPORT_RESET event waits for a buffer in the event queue (after a restore). */
	bool reset_event_owed;
	uint32_t next_port;
	struct vsock_conn *ready_head, *ready_tail;
	struct vsock_rst rsts[VSOCK_RST_QUEUE];
	unsigned rst_head, rst_count;
	struct vsock_stats stats;
	struct vsock_conn conns[VSOCK_MAX_CONNS];
};

/* vsock_conn.c */
struct vsock_conn *vsock_conn_new(struct vsock_dev *d, int fd, enum conn_state state);
/* The live connection the guest knows by (local port, guest port), or NULL. */
struct vsock_conn *vsock_conn_find(struct vsock_dev *d, uint32_t local_port, uint32_t peer_port);
/* A free host port (≥ 1024) no live connection uses. */
uint32_t vsock_alloc_port(struct vsock_dev *d);
void vsock_set_deadline(struct vsock_conn *c);
/* Put the connection in line for the rx queue if it owes the guest anything. */
void vsock_conn_kick(struct vsock_conn *c);
/* Whether it owes the guest a packet now (may decide to ask for credit). */
bool vsock_conn_has_work(struct vsock_conn *c);
void vsock_ready_remove(struct vsock_conn *c);
/* Owe the guest an RST for (local, peer); false if the bounded queue is full. */
void vsock_queue_rst(struct vsock_dev *d, uint32_t local_port, uint32_t peer_port);
/* End a connection: an RST to the guest if it knows the connection and `rst`; counted as
 * abrupt if `abrupt`. The socket is closed later, on the vmm thread. */
void vsock_conn_end(struct vsock_conn *c, bool rst, bool abrupt);
/* Credit the guest still gives us, in bytes. */
uint32_t vsock_peer_credit(const struct vsock_conn *c);
/* Fill one rx chain with the next packet the connection owes; 0 if it owes none now. */
uint32_t vsock_conn_packet(struct vsock_conn *c, const struct virtq_chain *chain);
/* The guest's RW payload (chain bytes from VSOCK_HDR_LEN) toward the socket. */
void vsock_conn_from_guest(struct vsock_conn *c, const struct virtq_chain *chain, uint32_t len);
/* The guest's SHUTDOWN flags. */
void vsock_conn_peer_shutdown(struct vsock_conn *c, uint32_t flags);
/* Socket readiness (edge-triggered hints). */
void vsock_conn_event(struct vsock_conn *c, uint32_t events);
/* Connections past their deadline; returns whether any deadline remains. */
bool vsock_expire(struct vsock_dev *d, uint64_t now_ns);
/* On the vmm thread: register new sockets, close dead ones. */
void vsock_sync(struct vsock_dev *d);
/* Close every connection's socket at once (destroy). */
void vsock_close_all(struct vsock_dev *d);

/* vsock.c */
/* End of every entry point: fill the rx queue, and get the event loop in step. */
void vsock_after(struct vsock_dev *d);
