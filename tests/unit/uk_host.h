/* The test unikernel's drivers (guest/unikernel/, built with UK_HOST_HARNESS) run as a thread of
 * a host test program against Ember's device models, without KVM: what the guest side of a
 * device does (a transport reset, say) can be tested without booting anything. The guest's
 * memory is a guest_mem whose guest-physical addresses are its host addresses, as the
 * unikernel's identity map makes them; its MMIO reaches the transports attached here; its
 * console collects in a log. Polling mode only (virtio_irq=0): there is no interrupt
 * controller. One harness per process (criterion forks each test). */
#pragma once

#include "devices/virtio_mmio/transport.h"
#include "memory/guest_mem.h"

#include <stdbool.h>
#include <stddef.h>

/* Guest memory of `bytes`, and the unikernel's options at their command-line defaults. */
void uk_host_init(uint64_t bytes);
struct guest_mem *uk_host_mem(void);
/* Announce a transport to the drivers, as a virtio_mmio.device= token would. */
void uk_host_attach(struct virtio_mmio_dev *t);
/* Run a check (check_vsock_server, ...) on a thread of its own; `name` heads its CHECK line. */
void uk_host_start(const char *name, void (*check)(void));
/* Whether the guest's console shows `needle` yet. */
bool uk_host_seen(const char *needle);
/* Whether the check has ended (its CHECK line printed, or failed). */
bool uk_host_done(void);
/* Everything the guest printed so far (stable until the next call into the harness). */
const char *uk_host_console(void);
