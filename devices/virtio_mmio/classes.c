#include "devices/virtio_mmio/device.h"

#include <stddef.h>

const struct virtio_device_class *const virtio_device_classes[] = {
    &virtio_block_class, &virtio_net_class, &virtio_vsock_class, &virtio_rng_class, NULL,
};
