// Linux's ring structures without its C-only legacy helpers (vring_init does not compile as C++).
#ifndef COMMON_VIRTIO_VIRTIO_RING_DEFS_H_
#define COMMON_VIRTIO_VIRTIO_RING_DEFS_H_

#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>

#endif  // COMMON_VIRTIO_VIRTIO_RING_DEFS_H_
