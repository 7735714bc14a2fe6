#include "devices/legacy/serial.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

enum {
	REG_RBR_THR_DLL = 0,
	REG_IER_DLM = 1,
	REG_IIR_FCR = 2,
	REG_LCR = 3,
	REG_MCR = 4,
	REG_LSR = 5,
	REG_MSR = 6,
	REG_SCR = 7,
};

#define IER_RDI	    0x01 /* receive data interrupt */
#define IER_THRI    0x02 /* transmitter empty interrupt */
#define IIR_NONE    0x01
#define IIR_THRI    0x02
#define IIR_RDI	    0x04
#define IIR_FIFO    0xc0
#define LCR_DLAB    0x80
#define FCR_KEPT    0xc9 /* of an FCR write: FIFO enable, DMA mode, trigger level */
#define LSR_DR	    0x01
#define LSR_ERRORS  0x1e /* overrun, parity, framing, break */
#define LSR_THRE    0x20
#define LSR_TEMT    0x40
#define MCR_LOOP    0x10
#define MSR_DEFAULT 0xb0 /* DCD, DSR, CTS: a cable with a listener at the other end */

static const char panic_marker[] = "Kernel panic - not syncing";

void serial_init(struct serial *s, int out_fd, serial_irq_fn set_irq, void *irq_ctx,
		 const struct vm_events *events)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->out_fd = out_fd;
	s->set_irq = set_irq;
	s->irq_ctx = irq_ctx;
	s->events = events;
	s->msr = MSR_DEFAULT;
	s->dll = 0x0c; /* 9600 baud, what firmware leaves behind */
	s->rx_space_efd = -1;
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

static uint8_t current_iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & 1) ? IIR_FIFO : 0;
	if ((s->ier & IER_RDI) && s->rx_count)
		return IIR_RDI | fifo;
	if ((s->ier & IER_THRI) && s->thr_interrupt)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

/* Called with the lock held. The line follows the interrupt condition, so a new condition after
 * the guest has acknowledged the last one makes a new edge. */
static void update_irq(struct serial *s)
{
	int level = (current_iir(s) & IIR_NONE) ? 0 : 1;
	if (level != s->irq_level) {
		s->irq_level = level;
		if (s->set_irq)
			s->set_irq(s->irq_ctx, level);
	}
}

static void watch_line(struct serial *s, uint8_t c)
{
	if (c == '\n') {
		s->line[s->line_len] = 0;
		if (strstr(s->line, panic_marker) && s->events && s->events->panic_seen)
			s->events->panic_seen(s->events->ctx);
		s->line_len = 0;
	} else if (s->line_len < SERIAL_LINE_MAX - 1) {
		s->line[s->line_len++] = (char)c;
	}
}

static void rx_push_locked(struct serial *s, uint8_t c)
{
	if (s->rx_count == SERIAL_RX_BUF)
		return;
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_BUF] = c;
	s->rx_count++;
}

static void transmit(struct serial *s, uint8_t c)
{
	s->tx_bytes++;
	if (s->mcr & MCR_LOOP) {
		rx_push_locked(s, c);
	} else {
		watch_line(s, c);
		if (s->out_fd >= 0) {
			/* A console whose reader went away must not stop the guest. */
			ssize_t w;
			do
				w = write(s->out_fd, &c, 1);
			while (w < 0 && errno == EINTR);
		}
	}
	s->thr_interrupt = true;
}

static uint8_t read_reg(struct serial *s, unsigned reg)
{
	switch (reg) {
	case REG_RBR_THR_DLL: {
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (!s->rx_count)
			return 0;
		uint8_t c = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % SERIAL_RX_BUF;
		s->rx_count--;
		s->rx_bytes++;
		if (s->rx_blocked && s->rx_count <= SERIAL_RX_BUF / 2 && s->rx_space_efd >= 0) {
			uint64_t one = 1;
			s->rx_blocked = false;
			ssize_t w = write(s->rx_space_efd, &one, sizeof(one));
			(void)w;
		}
		return c;
	}
	case REG_IER_DLM:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case REG_IIR_FCR: {
		uint8_t iir = current_iir(s);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((iir & 0x0f) == IIR_THRI)
			s->thr_interrupt = false;
		return iir;
	}
	case REG_LCR:
		return s->lcr;
	case REG_MCR:
		return s->mcr;
	case REG_LSR: {
		uint8_t lsr = LSR_THRE | LSR_TEMT | s->lsr_errors | (s->rx_count ? LSR_DR : 0);
		s->lsr_errors = 0;
		return lsr;
	}
	case REG_MSR:
		if (s->mcr & MCR_LOOP) {
			/* Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
			return (uint8_t)(((s->mcr & 0x01) << 5) | ((s->mcr & 0x02) << 3) |
					 ((s->mcr & 0x04) << 4) | ((s->mcr & 0x08) << 4));
		}
		return s->msr;
	case REG_SCR:
		return s->scr;
	}
	return 0;
}

static void write_reg(struct serial *s, unsigned reg, uint8_t v)
{
	switch (reg) {
	case REG_RBR_THR_DLL:
		if (s->lcr & LCR_DLAB)
			s->dll = v;
		else
			transmit(s, v);
		break;
	case REG_IER_DLM:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			/* Enabling THRI while the transmitter is empty raises it at once (16550).
			 */
			if (!(s->ier & IER_THRI) && (v & IER_THRI))
				s->thr_interrupt = true;
			s->ier = v & 0x0f;
		}
		break;
	case REG_IIR_FCR:
		if (v & 0x02) { /* clear receive FIFO */
			s->rx_head = s->rx_count = 0;
		}
		s->fcr = v & FCR_KEPT;
		break;
	case REG_LCR:
		s->lcr = v;
		break;
	case REG_MCR:
		s->mcr = v & 0x1f;
		break;
	case REG_SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

void serial_access(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *s = dev;
	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < len; i++) {
		unsigned reg = (unsigned)((offset + i) & 7);
		if (is_write)
			write_reg(s, reg, data[i]);
		else
			data[i] = read_reg(s, reg);
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

unsigned serial_rx_room(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	unsigned room = SERIAL_RX_BUF - s->rx_count;
	if (room == 0)
		s->rx_blocked = true;
	pthread_mutex_unlock(&s->lock);
	return room;
}

unsigned serial_push_input(struct serial *s, const uint8_t *buf, unsigned len)
{
	pthread_mutex_lock(&s->lock);
	unsigned n = 0;
	while (n < len && s->rx_count < SERIAL_RX_BUF)
		rx_push_locked(s, buf[n++]);
	if (n < len)
		s->rx_blocked = true;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

void serial_save(struct serial *s, struct serial_state *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->lock);
	out->ier = s->ier;
	out->lcr = s->lcr;
	out->mcr = s->mcr;
	out->lsr_errors = s->lsr_errors;
	out->msr = s->msr;
	out->scr = s->scr;
	out->dll = s->dll;
	out->dlm = s->dlm;
	out->fcr = s->fcr;
	out->thr_interrupt = s->thr_interrupt;
	out->rx_head = s->rx_head;
	out->rx_count = s->rx_count;
	memcpy(out->rx, s->rx, sizeof(out->rx));
	pthread_mutex_unlock(&s->lock);
}

/* Whether saved (untrusted) registers are ones the guest could have left: each register holds
 * only the bits write_reg keeps, and the FIFO fits. */
static int check_state(const struct serial_state *in)
{
	static const struct {
		const char *name;
		size_t offset;
		uint8_t allowed;
	} regs[] = {
	    {"IER", offsetof(struct serial_state, ier), 0x0f},
	    {"MCR", offsetof(struct serial_state, mcr), 0x1f},
	    {"FCR", offsetof(struct serial_state, fcr), FCR_KEPT},
	    {"LSR error bits", offsetof(struct serial_state, lsr_errors), LSR_ERRORS},
	    {"THR-empty interrupt flag", offsetof(struct serial_state, thr_interrupt), 0x01},
	};
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		uint8_t v = ((const uint8_t *)in)[regs[i].offset];
		if (v & ~regs[i].allowed)
			return err_set(EINVAL, "serial state: %s 0x%02x has bits a 16550A lacks",
				       regs[i].name, v);
	}
	if (in->reserved)
		return err_set(EINVAL, "serial state: reserved field 0x%x is not zero",
			       in->reserved);
	if (in->rx_head >= SERIAL_RX_BUF || in->rx_count > SERIAL_RX_BUF)
		return err_set(EINVAL, "serial state: receive FIFO at %u+%u of %d", in->rx_head,
			       in->rx_count, SERIAL_RX_BUF);
	return 0;
}

int serial_restore(struct serial *s, const struct serial_state *in)
{
	int r = check_state(in);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	s->ier = in->ier;
	s->lcr = in->lcr;
	s->mcr = in->mcr;
	s->lsr_errors = in->lsr_errors;
	s->msr = in->msr;
	s->scr = in->scr;
	s->dll = in->dll;
	s->dlm = in->dlm;
	s->fcr = in->fcr;
	s->thr_interrupt = in->thr_interrupt;
	s->rx_head = in->rx_head;
	s->rx_count = in->rx_count;
	memcpy(s->rx, in->rx, sizeof(s->rx));
	s->irq_level = -1; /* unknown: update_irq sets the line whatever it was */
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int serial_register(struct serial *s, struct bus *pio)
{
	return bus_register(pio, SERIAL_COM1_PORT, 8, serial_access, s, "serial (COM1)");
}
