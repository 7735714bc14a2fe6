/* Checks: each prints exactly one "CHECK <name> PASS|FAIL ..." line. A
 * failure ends the run at once (pvpanic, then reset). */
#ifndef UK_CHECKS_H
#define UK_CHECKS_H

#include <stdbool.h>
#include <stdint.h>

struct options {
	uint64_t mem_mib; /* mem: MiB to touch (default 16) */
	uint64_t cpus;	  /* smp: expected CPUs, 0 = MP table or 1 */
	uint64_t ticks;	  /* timer: LAPIC interrupts to wait for (default 10) */
	uint64_t tick_us; /* timer: LAPIC timer period (default 250) */

	/* virtio devices (virtio.c) */
	uint64_t virtio_irq;	   /* 1: interrupts and hlt; 0: CPL3 polling (default) */
	uint64_t virtio_event_idx; /* 0: do not negotiate VIRTIO_RING_F_EVENT_IDX */
	/* blk */
	uint64_t blk_read_sectors, blk_write_at, blk_write_sectors, blk_seed;
	/* blk_bench */
	uint64_t blk_bench_mib, blk_bench_qd, blk_bench_secs;
	/* net */
	uint32_t ip; /* host byte order: 10.0.2.15 = 0x0a00020f */
	uint64_t net_secs, udp_port;
	/* vsock_server, vsock_client */
	uint64_t vsock_port, vsock_conns, vsock_secs, vsock_expect;
	uint64_t vsock_bytes, vsock_sink, vsock_cid;
	/* sse */
	uint64_t sse_fep; /* 1: also run forms behind KVM's forced-emulation prefix */
};

extern struct options opts;
/* Name of the running check, for the exception report; in .data so that it
 * reads as null even before BSS is cleared. */
extern const char *current_check;

void check_pass(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void check_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* For a check that already printed "CHECK <name> " itself. */
void check_finish(bool pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

__attribute__((noreturn)) void machine_stop(bool failed);

void check_hello(void);
void check_bootinfo(void);
void check_timer(void);
void check_smp(void);
void check_mem(void);
void check_counter(void);
void check_clone(void);
void check_triplefault(void);
void check_panic(void);
void check_emufail(void);
void check_echo(void);
void check_blk(void);
void check_blk_bench(void);
void check_net(void);
void check_vsock_server(void);
void check_vsock_client(void);
void check_rng(void);
void check_sse(void);
void check_sse_unknown(void);

#endif
