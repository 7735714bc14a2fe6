/* 16550A UART: the guest console. Output goes to a file descriptor as each byte arrives; input
 * is buffered and raised to the guest through the UART's receive interrupt. */
#pragma once

#include "common/vm_event.h"
#include "devices/bus.h"

#include <pthread.h>
#include <stdint.h>

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ	 4
#define SERIAL_RX_BUF	 4096
#define SERIAL_LINE_MAX	 160

struct serial;
typedef void (*serial_irq_fn)(void *ctx, int level);

struct serial {
	pthread_mutex_t lock;
	/* registers */
	uint8_t ier, lcr, mcr, lsr_errors, msr, scr, dll, dlm, fcr;
	bool thr_interrupt; /* THR-empty interrupt pending until IIR is read or THR written */
	int irq_level;
	/* input waiting for the guest */
	uint8_t rx[SERIAL_RX_BUF];
	unsigned rx_head, rx_count;
	bool rx_blocked;  /* the host side has more than fits; tell it when room appears */
	int rx_space_efd; /* written when room appears after rx_blocked; -1 for none */
	/* output */
	int out_fd;
	uint64_t tx_bytes, rx_bytes;
	char line[SERIAL_LINE_MAX]; /* the current output line, for panic detection */
	unsigned line_len;
	serial_irq_fn set_irq;
	void *irq_ctx;
	const struct vm_events *events;
};

/* The guest-visible state, as plain data for snapshots (fixed-size fields: it is saved as
 * bytes). */
struct serial_state {
	uint8_t ier, lcr, mcr, lsr_errors, msr, scr, dll, dlm, fcr;
	uint8_t thr_interrupt;
	uint16_t reserved;
	uint32_t rx_head, rx_count;
	uint8_t rx[SERIAL_RX_BUF];
};

void serial_save(struct serial *s, struct serial_state *out);
/* Load saved (untrusted) state; refuses impossible FIFO positions. Raises the interrupt line
 * again if the restored registers say it is up. */
int serial_restore(struct serial *s, const struct serial_state *in);

void serial_init(struct serial *s, int out_fd, serial_irq_fn set_irq, void *irq_ctx,
		 const struct vm_events *events);
void serial_destroy(struct serial *s);
int serial_register(struct serial *s, struct bus *pio);
/* Room for host input; when there is none, rx_space_efd is written once room appears. */
unsigned serial_rx_room(struct serial *s);
/* Queue host input for the guest; returns how many bytes fitted. */
unsigned serial_push_input(struct serial *s, const uint8_t *buf, unsigned len);
/* The register interface, for the bus and for tests. */
void serial_access(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
