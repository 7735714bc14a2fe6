/* virtio-net over a Linux tap: `--net tap=NAME` (or `fd=N`, a tap a parent opened). The guest's
 * virtio_net_hdr_v1 passes through the tap unchanged (IFF_VNET_HDR, 12-byte header), so the
 * checksum and TSO offloads the guest accepts are set on the tap and need no work here. TX
 * frames go from the guest's buffers to the tap in one writev; RX frames are read straight
 * into the guest's buffers, and with MRG_RXBUF a frame spans as many buffers as it needs. */
#pragma once

#include "devices/virtio_mmio/device.h"

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#define NET_ID_MAX 63

/* Descriptor ownership, as for block (block.h): the config owns its fd, and the class's
 * free_config closes it; create() works on a dup of it, so the config may be freed at any time,
 * before or after create(), whatever create() returned. No pointers besides. */
struct net_config {
	char id[NET_ID_MAX + 1]; /* defaults to the tap name, or "fd<N>" */
	char tap[IFNAMSIZ];	 /* "" with fd= */
	/* An open tap (fd=N, or passed through the API), or -1. It must have been opened with
	 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR; the device makes the open file nonblocking. */
	int fd;
	uint8_t mac[6];
	bool mac_set; /* without mac=, create() picks a random locally administered one */
};

struct net_stats {
	uint64_t rx_frames, rx_bytes; /* delivered to the guest; bytes without the header */
	uint64_t tx_frames, tx_bytes; /* handed to the tap */
	uint64_t rx_dropped_too_big;  /* larger than all the buffers the driver can post */
	uint64_t rx_dropped_offload;  /* carried an offload the driver did not accept */
	uint64_t rx_dropped_reset;    /* waiting for buffers when the driver reset the device */
	uint64_t rx_dropped_quiesce;  /* waiting for buffers when a snapshot quiesced the device */
	uint64_t rx_waits;	      /* times a frame waited for the driver to post buffers */
	uint64_t tx_dropped;	      /* refused by the tap (bad header, interface gone) */
	uint64_t tap_errors;	      /* failed reads and writes, the tap disappearing */
};

/* "tap=NAME|fd=N[,mac=XX:XX:XX:XX:XX:XX][,id=ID]"; fd=N must be open in this process and is the
 * config's from then on (on failure it was not taken). */
int net_config_parse(const char *spec, struct net_config *cfg);
/* A copy of the counters, taken under the device's lock. The class's metrics() sums them up:
 * requests = rx_frames + tx_frames + tx_dropped, bytes = rx_bytes / tx_bytes, errors = the four
 * rx drops + tap_errors (which include the tx drops). */
void net_get_stats(void *dev, struct net_stats *out);
/* The MAC the guest sees (from mac=, or the random one create picked): snapshots keep it. */
const uint8_t *net_mac(void *dev);
