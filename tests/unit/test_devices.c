#include "devices/bus.h"
#include "devices/legacy/boot_timer.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/pvpanic.h"
#include "devices/legacy/serial.h"
#include "devices/virtio_mmio/device.h"
#include "common/err.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

struct recorder {
	int stops[16];
	int nstops;
	int panics;
	int boot_timers;
	int irq_level;
	int irq_edges;
};

static void rec_stop(void *ctx, enum vm_stop_reason r)
{
	struct recorder *rec = ctx;
	rec->stops[rec->nstops++] = r;
}
static void rec_panic(void *ctx)
{
	((struct recorder *)ctx)->panics++;
}
static void rec_boot_timer(void *ctx)
{
	((struct recorder *)ctx)->boot_timers++;
}
static void rec_irq(void *ctx, int level)
{
	struct recorder *rec = ctx;
	if (level && !rec->irq_level)
		rec->irq_edges++;
	rec->irq_level = level;
}

static struct recorder rec;
static struct vm_events events = {rec_stop, rec_panic, rec_boot_timer, &rec};

static void reset_rec(void)
{
	memset(&rec, 0, sizeof(rec));
}

static uint8_t rd(void *dev, bus_access_fn fn, unsigned off)
{
	uint8_t v = 0;
	fn(dev, off, &v, 1, false);
	return v;
}

static void wr(void *dev, bus_access_fn fn, unsigned off, uint8_t v)
{
	fn(dev, off, &v, 1, true);
}

Test(serial, output_reaches_the_console_fd_as_written, .init = reset_rec)
{
	int p[2];
	cr_assert(eq(int, pipe(p), 0));
	struct serial s;
	serial_init(&s, p[1], rec_irq, &rec, &events);
	const char *msg = "hi\n";
	for (const char *c = msg; *c; c++)
		wr(&s, serial_access, 0, (uint8_t)*c);
	char buf[8] = {0};
	cr_assert(eq(i64, read(p[0], buf, sizeof(buf)), 3));
	cr_assert(eq(str, buf, "hi\n"));
	cr_assert(eq(u8, rd(&s, serial_access, 5) & 0x60, 0x60), "THRE and TEMT always set");
	close(p[0]);
	close(p[1]);
	serial_destroy(&s);
}

Test(serial, divisor_latch_hides_thr_and_ier, .init = reset_rec)
{
	struct serial s;
	serial_init(&s, -1, rec_irq, &rec, &events);
	wr(&s, serial_access, 3, 0x80); /* DLAB */
	wr(&s, serial_access, 0, 0x01);
	wr(&s, serial_access, 1, 0x00);
	cr_assert(eq(u8, rd(&s, serial_access, 0), 0x01));
	wr(&s, serial_access, 3, 0x03);
	cr_assert(eq(u64, s.tx_bytes, 0), "divisor writes are not output");
	cr_assert(eq(u8, rd(&s, serial_access, 1), 0));
	serial_destroy(&s);
}

Test(serial, thr_empty_interrupt_follows_16550_rules, .init = reset_rec)
{
	struct serial s;
	serial_init(&s, -1, rec_irq, &rec, &events);
	cr_assert(eq(u8, rd(&s, serial_access, 2) & 0x0f, 0x01), "no interrupt at reset");
	wr(&s, serial_access, 1, 0x02); /* enable THRI: fires at once, THR is empty */
	cr_assert(eq(int, rec.irq_level, 1));
	cr_assert(eq(u8, rd(&s, serial_access, 2) & 0x0f, 0x02));
	cr_assert(eq(int, rec.irq_level, 0), "reading IIR acknowledges THRI");
	wr(&s, serial_access, 0, 'x');
	cr_assert(eq(int, rec.irq_level, 1), "a transmitted byte raises THRI again");
	cr_assert(eq(int, rec.irq_edges, 2));
	serial_destroy(&s);
}

Test(serial, input_is_queued_and_raises_receive_interrupt, .init = reset_rec)
{
	struct serial s;
	serial_init(&s, -1, rec_irq, &rec, &events);
	wr(&s, serial_access, 1, 0x01); /* RDI */
	cr_assert(eq(int, rec.irq_level, 0));
	cr_assert(eq(u32, serial_push_input(&s, (const uint8_t *)"ab", 2), 2));
	cr_assert(eq(int, rec.irq_level, 1));
	cr_assert(eq(u8, rd(&s, serial_access, 5) & 1, 1), "LSR data ready");
	cr_assert(eq(u8, rd(&s, serial_access, 2) & 0x0f, 0x04));
	cr_assert(eq(u8, rd(&s, serial_access, 0), 'a'));
	cr_assert(eq(u8, rd(&s, serial_access, 0), 'b'));
	cr_assert(eq(int, rec.irq_level, 0));
	cr_assert(eq(u8, rd(&s, serial_access, 5) & 1, 0));
	serial_destroy(&s);
}

Test(serial, full_input_buffer_signals_room_once_drained, .init = reset_rec)
{
	int efd[2];
	cr_assert(eq(int, pipe2(efd, O_NONBLOCK), 0));
	struct serial s;
	serial_init(&s, -1, rec_irq, &rec, &events);
	s.rx_space_efd = efd[1];
	static uint8_t big[SERIAL_RX_BUF + 10];
	memset(big, 'z', sizeof(big));
	cr_assert(eq(u32, serial_push_input(&s, big, sizeof(big)), SERIAL_RX_BUF));
	cr_assert(eq(u32, serial_rx_room(&s), 0));
	uint64_t v;
	cr_assert(lt(i64, read(efd[0], &v, 8), 0), "no room signal yet");
	for (unsigned i = 0; i < SERIAL_RX_BUF / 2; i++)
		rd(&s, serial_access, 0);
	cr_assert(eq(i64, read(efd[0], &v, 8), 8), "room signalled");
	close(efd[0]);
	close(efd[1]);
	serial_destroy(&s);
}

Test(serial, loopback_returns_output_as_input, .init = reset_rec)
{
	struct serial s;
	serial_init(&s, -1, rec_irq, &rec, &events);
	wr(&s, serial_access, 4, 0x10 | 0x0b);
	wr(&s, serial_access, 0, 'q');
	cr_assert(eq(u8, rd(&s, serial_access, 0), 'q'));
	cr_assert(eq(u8, rd(&s, serial_access, 6) & 0xf0, 0xb0),
		  "DTR/RTS/OUT2 looped to DSR/CTS/DCD");
	serial_destroy(&s);
}

Test(serial, kernel_panic_line_is_noticed, .init = reset_rec)
{
	struct serial s;
	serial_init(&s, -1, rec_irq, &rec, &events);
	const char *line = "[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n";
	for (const char *c = line; *c; c++)
		wr(&s, serial_access, 0, (uint8_t)*c);
	cr_assert(eq(int, rec.panics, 1));
	const char *other = "Kernel is fine\n";
	for (const char *c = other; *c; c++)
		wr(&s, serial_access, 0, (uint8_t)*c);
	cr_assert(eq(int, rec.panics, 1));
	serial_destroy(&s);
}

Test(i8042, reset_command_stops_the_vm, .init = reset_rec)
{
	struct i8042 k;
	i8042_init(&k, &events);
	wr(&k, i8042_access, 4, 0xaa);
	cr_assert(eq(u8, rd(&k, i8042_access, 4) & 1, 1), "self-test result waiting");
	cr_assert(eq(u8, rd(&k, i8042_access, 0), 0x55));
	cr_assert(eq(int, rec.nstops, 0));
	wr(&k, i8042_access, 4, 0xfe);
	cr_assert(eq(int, rec.nstops, 1));
	cr_assert(eq(int, rec.stops[0], VM_STOP_GUEST_RESET));
}

Test(i8042, control_byte_round_trips, .init = reset_rec)
{
	struct i8042 k;
	i8042_init(&k, &events);
	wr(&k, i8042_access, 4, 0x60);
	wr(&k, i8042_access, 0, 0x21);
	wr(&k, i8042_access, 4, 0x20);
	cr_assert(eq(u8, rd(&k, i8042_access, 0), 0x21));
	cr_assert(eq(int, rec.nstops, 0));
}

/* ---- snapshots of the legacy devices ---- */

Test(serial, save_restore_round_trip, .init = reset_rec)
{
	struct serial s;
	serial_init(&s, -1, rec_irq, &rec, &events);
	wr(&s, serial_access, 3, 0x80); /* DLAB: divisor 0x0301 */
	wr(&s, serial_access, 0, 0x01);
	wr(&s, serial_access, 1, 0x03);
	wr(&s, serial_access, 3, 0x1b); /* 8 data bits, even parity */
	wr(&s, serial_access, 2, 0xc7); /* FIFO on, cleared, trigger 14 */
	wr(&s, serial_access, 4, 0x0b);
	wr(&s, serial_access, 7, 0x5a);
	wr(&s, serial_access, 1, 0x01); /* RDI */
	cr_assert(eq(u32, serial_push_input(&s, (const uint8_t *)"xyz", 3), 3));
	cr_assert(eq(u8, rd(&s, serial_access, 0), 'x'));
	struct serial_state st;
	serial_save(&s, &st);
	serial_destroy(&s);

	reset_rec();
	struct serial n;
	serial_init(&n, -1, rec_irq, &rec, &events);
	cr_assert(eq(int, serial_restore(&n, &st), 0), "%s", err_msg());
	cr_assert(eq(int, rec.irq_level, 1), "the receive interrupt is raised again");
	cr_assert(eq(u8, rd(&n, serial_access, 3), 0x1b));
	cr_assert(eq(u8, rd(&n, serial_access, 4), 0x0b));
	cr_assert(eq(u8, rd(&n, serial_access, 7), 0x5a));
	cr_assert(eq(u8, rd(&n, serial_access, 1), 0x01));
	cr_assert(eq(u8, rd(&n, serial_access, 2), 0xc4), "FIFOs on, receive data interrupt");
	cr_assert(eq(u8, rd(&n, serial_access, 0), 'y'), "the FIFO's bytes, in order");
	cr_assert(eq(u8, rd(&n, serial_access, 0), 'z'));
	cr_assert(eq(u8, rd(&n, serial_access, 5) & 1, 0));
	cr_assert(eq(int, rec.irq_level, 0));
	wr(&n, serial_access, 3, 0x9b);
	cr_assert(eq(u8, rd(&n, serial_access, 0), 0x01));
	cr_assert(eq(u8, rd(&n, serial_access, 1), 0x03));
	serial_destroy(&n);
}

Test(serial, fifo_that_wraps_and_a_pending_thr_interrupt_survive, .init = reset_rec)
{
	struct serial s;
	serial_init(&s, -1, rec_irq, &rec, &events);
	static uint8_t fill[SERIAL_RX_BUF];
	for (unsigned i = 0; i < sizeof(fill); i++)
		fill[i] = (uint8_t)i;
	cr_assert(eq(u32, serial_push_input(&s, fill, 100), 100));
	for (unsigned i = 0; i < 100; i++)
		rd(&s, serial_access, 0);
	cr_assert(eq(u32, serial_push_input(&s, fill, SERIAL_RX_BUF), SERIAL_RX_BUF));
	wr(&s, serial_access, 1, 0x02); /* THRI only: pending at once */
	struct serial_state st;
	serial_save(&s, &st);
	serial_destroy(&s);
	reset_rec();
	struct serial n;
	serial_init(&n, -1, rec_irq, &rec, &events);
	cr_assert(eq(int, serial_restore(&n, &st), 0), "%s", err_msg());
	cr_assert(eq(int, rec.irq_level, 1));
	cr_assert(eq(u8, rd(&n, serial_access, 2) & 0x0f, 0x02));
	for (unsigned i = 0; i < SERIAL_RX_BUF; i++)
		cr_assert(eq(u8, rd(&n, serial_access, 0), (uint8_t)i), "byte %u", i);
	serial_destroy(&n);
}

Test(serial, corrupted_states_are_refused, .init = reset_rec)
{
	struct serial s;
	serial_init(&s, -1, rec_irq, &rec, &events);
	struct serial_state good;
	serial_save(&s, &good);
	static const struct {
		size_t offset;
		uint8_t value;
		const char *why;
	} bad[] = {
	    {offsetof(struct serial_state, ier), 0x10, "IER 0x10"},
	    {offsetof(struct serial_state, mcr), 0x20, "MCR 0x20"},
	    {offsetof(struct serial_state, fcr), 0x02, "FCR 0x02"},
	    {offsetof(struct serial_state, lsr_errors), 0x01, "LSR error bits 0x01"},
	    {offsetof(struct serial_state, thr_interrupt), 2, "THR-empty interrupt flag 0x02"},
	    {offsetof(struct serial_state, reserved), 1, "reserved field"},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct serial_state st = good;
		((uint8_t *)&st)[bad[i].offset] = bad[i].value;
		cr_assert(lt(int, serial_restore(&s, &st), 0), "accepted: %s", bad[i].why);
		cr_assert(ne(ptr, strstr(err_msg(), bad[i].why), NULL), "%s", err_msg());
	}
	struct serial_state st = good;
	st.rx_head = SERIAL_RX_BUF;
	cr_assert(lt(int, serial_restore(&s, &st), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "receive FIFO at 4096+0"), NULL), "%s", err_msg());
	st = good;
	st.rx_count = SERIAL_RX_BUF + 1;
	cr_assert(lt(int, serial_restore(&s, &st), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "receive FIFO"), NULL), "%s", err_msg());
	cr_assert(eq(int, rec.irq_edges, 0), "a refused state changes nothing");
	cr_assert(eq(u8, rd(&s, serial_access, 5) & 1, 0));
	serial_destroy(&s);
}

Test(i8042, save_restore_round_trip, .init = reset_rec)
{
	struct i8042 k;
	i8042_init(&k, &events);
	wr(&k, i8042_access, 4, 0x60);
	wr(&k, i8042_access, 0, 0x31);
	wr(&k, i8042_access, 4, 0xaa); /* self-test answer waiting in the output buffer */
	wr(&k, i8042_access, 4, 0x60); /* and a command waiting for its data byte */
	struct i8042_state st;
	i8042_save(&k, &st);
	struct i8042 n;
	i8042_init(&n, &events);
	cr_assert(eq(int, i8042_restore(&n, &st), 0), "%s", err_msg());
	cr_assert(eq(u8, rd(&n, i8042_access, 4), 0x04 | 0x08 | 0x01),
		  "system flag, command pending, output full");
	cr_assert(eq(u8, rd(&n, i8042_access, 0), 0x55));
	wr(&n, i8042_access, 0, 0x25); /* the data byte for the pending 0x60 */
	wr(&n, i8042_access, 4, 0x20);
	cr_assert(eq(u8, rd(&n, i8042_access, 0), 0x25));
	/* The first controller's control byte comes back as it was written there. */
	i8042_save(&k, &st);
	st.pending_cmd = 0;
	cr_assert(eq(int, i8042_restore(&n, &st), 0), "%s", err_msg());
	wr(&n, i8042_access, 4, 0x20);
	cr_assert(eq(u8, rd(&n, i8042_access, 0), 0x31));
	cr_assert(eq(int, rec.nstops, 0));
}

Test(i8042, corrupted_states_are_refused, .init = reset_rec)
{
	struct i8042 k;
	i8042_init(&k, &events);
	struct i8042_state st;
	i8042_save(&k, &st);
	st.out_full = 2;
	cr_assert(lt(int, i8042_restore(&k, &st), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "output-full flag 2"), NULL), "%s", err_msg());
	i8042_save(&k, &st);
	st.pending_cmd = 0xaa;
	cr_assert(lt(int, i8042_restore(&k, &st), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "command 0xaa waits for a data byte"), NULL), "%s",
		  err_msg());
	cr_assert(eq(u8, k.pending_cmd, 0), "a refused state changes nothing");
	cr_assert(eq(u8, k.control, 0x45));
}

Test(pvpanic, write_reports_a_panic, .init = reset_rec)
{
	struct pvpanic p;
	pvpanic_init(&p, &events);
	cr_assert(eq(u8, rd(&p, pvpanic_access, 0), 1));
	wr(&p, pvpanic_access, 0, 0);
	cr_assert(eq(int, rec.nstops, 0));
	wr(&p, pvpanic_access, 0, 1);
	cr_assert(eq(int, rec.stops[0], VM_STOP_GUEST_PANIC));
}

Test(boot_timer, only_the_magic_byte_counts, .init = reset_rec)
{
	struct boot_timer t;
	boot_timer_init(&t, &events);
	wr(&t, boot_timer_access, 0, 122);
	wr(&t, boot_timer_access, 1, 123);
	cr_assert(eq(int, rec.boot_timers, 0));
	wr(&t, boot_timer_access, 0, 123);
	cr_assert(eq(int, rec.boot_timers, 1));
}

static int hits;
static void count_access(void *dev, uint64_t off, uint8_t *d, uint32_t len, bool w)
{
	hits++;
	if (!w)
		d[0] = (uint8_t)off;
}

Test(bus, dispatch_overlap_and_unknown_addresses)
{
	struct bus b;
	bus_init(&b, "port");
	cr_assert(eq(int, bus_register(&b, 0x3f8, 8, count_access, NULL, "a"), 0));
	cr_assert(lt(int, bus_register(&b, 0x3fc, 8, count_access, NULL, "b"), 0));
	cr_assert(ne(ptr, strstr(err_msg(), "overlaps"), NULL));
	uint8_t v = 0;
	cr_assert(bus_access(&b, 0x3fa, &v, 1, false));
	cr_assert(eq(u8, v, 2));
	cr_assert(not(bus_access(&b, 0x80, &v, 1, false)));
	cr_assert(eq(u8, v, 0xff), "unserved reads see all ones");
	cr_assert(not(bus_access(&b, 0x80, &v, 1, true)));
	cr_assert(eq(u32, b.nunknown, 1), "logged once per address");
	cr_assert(eq(u64, b.unknown_accesses, 2));
	for (unsigned i = 0; i < 1000; i++)
		bus_access(&b, 0x1000 + i, &v, 1, true);
	cr_assert(eq(u32, b.nunknown, 64), "a guest cannot grow the log without bound");
}

/* The monitor and the API call every hook without checking for NULL. */
Test(virtio_classes, every_class_offers_every_hook)
{
	unsigned n = 0;
	for (const struct virtio_device_class *const *c = virtio_device_classes; *c; c++, n++) {
		const struct virtio_device_class *k = *c;
		cr_assert(ne(ptr, (void *)k->flag, NULL));
		cr_assert(ne(ptr, (void *)k->usage, NULL), "--%s", k->flag);
		cr_assert(ne(ptr, (void *)k->parse, NULL), "--%s", k->flag);
		cr_assert(ne(ptr, (void *)k->conflict, NULL), "--%s", k->flag);
		cr_assert(ne(ptr, (void *)k->create, NULL), "--%s", k->flag);
		cr_assert(ne(ptr, (void *)k->start, NULL), "--%s", k->flag);
		cr_assert(ne(ptr, (void *)k->destroy, NULL), "--%s", k->flag);
		cr_assert(ne(ptr, (void *)k->metrics, NULL), "--%s", k->flag);
		/* Snapshots quiesce every device; `restored` may be NULL. */
		cr_assert(ne(ptr, (void *)k->quiesce, NULL), "--%s", k->flag);
		cr_assert(ne(ptr, (void *)k->unquiesce, NULL), "--%s", k->flag);
	}
	cr_assert(eq(u32, n, 4));
	cr_assert(ne(ptr, (void *)virtio_vsock_class.restored, NULL));
	/* Configs that own a descriptor close it in their free_config. */
	cr_assert(ne(ptr, (void *)virtio_block_class.free_config, NULL));
	cr_assert(ne(ptr, (void *)virtio_net_class.free_config, NULL));
	cr_assert(ne(ptr, strstr(virtio_block_class.usage, "fd=N"), NULL));
	cr_assert(ne(ptr, strstr(virtio_net_class.usage, "fd=N"), NULL));
}
