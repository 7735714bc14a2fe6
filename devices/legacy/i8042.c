#include "devices/legacy/i8042.h"
#include "common/err.h"

#include <errno.h>
#include <string.h>

enum {
	CMD_READ_CONTROL = 0x20,
	CMD_WRITE_CONTROL = 0x60,
	CMD_DISABLE_AUX = 0xa7,
	CMD_ENABLE_AUX = 0xa8,
	CMD_TEST_AUX = 0xa9,
	CMD_SELF_TEST = 0xaa,
	CMD_TEST_KBD = 0xab,
	CMD_DISABLE_KBD = 0xad,
	CMD_ENABLE_KBD = 0xae,
	CMD_READ_OUTPUT_PORT = 0xd0,
	CMD_WRITE_OUTPUT_PORT = 0xd1,
	CMD_PULSE_RESET = 0xfe,
};

#define STATUS_OUT_FULL 0x01
#define STATUS_SYSTEM	0x04 /* POST passed */
#define STATUS_CMD_DATA 0x08 /* last write was to the command port */

void i8042_init(struct i8042 *k, const struct vm_events *events)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->events = events;
	k->control = 0x45; /* kbd interrupt, system flag, translation: what firmware leaves */
}

static void put_output(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->out_full = true;
}

static void command(struct i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case CMD_READ_CONTROL:
		put_output(k, k->control);
		break;
	case CMD_WRITE_CONTROL:
	case CMD_WRITE_OUTPUT_PORT:
		k->pending_cmd = cmd;
		break;
	case CMD_SELF_TEST:
		put_output(k, 0x55);
		break;
	case CMD_TEST_KBD:
	case CMD_TEST_AUX:
		put_output(k, 0x00);
		break;
	case CMD_READ_OUTPUT_PORT:
		put_output(k, 0x01); /* reset line not asserted */
		break;
	case CMD_PULSE_RESET:
		if (k->events && k->events->stop)
			k->events->stop(k->events->ctx, VM_STOP_GUEST_RESET);
		break;
	default: /* enable/disable and the rest: accepted, nothing to do without a keyboard */
		break;
	}
}

static void data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending_cmd;
	k->pending_cmd = 0;
	if (cmd == CMD_WRITE_CONTROL) {
		k->control = v;
	} else if (cmd == CMD_WRITE_OUTPUT_PORT) {
		/* Output port bit 0 low holds the CPU in reset. */
		if (!(v & 1) && k->events && k->events->stop)
			k->events->stop(k->events->ctx, VM_STOP_GUEST_RESET);
	}
	/* Bytes for a keyboard nobody has attached are dropped. */
}

void i8042_access(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = dev;
	bool is_cmd_port = offset == I8042_COMMAND_PORT - I8042_DATA_PORT;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		if (is_cmd_port)
			command(k, data[0]);
		else if (offset == 0)
			data_write(k, data[0]);
	} else {
		uint8_t v = 0;
		if (is_cmd_port) {
			v = STATUS_SYSTEM | (k->out_full ? STATUS_OUT_FULL : 0) |
			    (k->pending_cmd ? STATUS_CMD_DATA : 0);
		} else if (offset == 0) {
			v = k->out;
			k->out_full = false;
		}
		memset(data, 0, len);
		data[0] = v;
	}
	pthread_mutex_unlock(&k->lock);
}

void i8042_save(struct i8042 *k, struct i8042_state *out)
{
	pthread_mutex_lock(&k->lock);
	*out = (struct i8042_state){k->control, k->out, k->out_full, k->pending_cmd};
	pthread_mutex_unlock(&k->lock);
}

int i8042_restore(struct i8042 *k, const struct i8042_state *in)
{
	if (in->out_full > 1)
		return err_set(EINVAL, "i8042 state: output-full flag %u", in->out_full);
	/* Only the commands that take a data byte wait for one. */
	if (in->pending_cmd && in->pending_cmd != CMD_WRITE_CONTROL &&
	    in->pending_cmd != CMD_WRITE_OUTPUT_PORT)
		return err_set(EINVAL,
			       "i8042 state: command 0x%02x waits for a data byte, but takes none",
			       in->pending_cmd);
	pthread_mutex_lock(&k->lock);
	k->control = in->control;
	k->out = in->out;
	k->out_full = in->out_full;
	k->pending_cmd = in->pending_cmd;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

int i8042_register(struct i8042 *k, struct bus *pio)
{
	/* One range covering 0x60..0x64; ports 0x61-0x63 read as zero (0x61 is the PIT's speaker
	 * port, served by KVM's in-kernel PIT before it reaches us). */
	return bus_register(pio, I8042_DATA_PORT, 5, i8042_access, k, "i8042");
}
