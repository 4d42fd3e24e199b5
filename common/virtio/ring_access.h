// Loads and stores on ring memory shared with the guest. The guest runs concurrently, so ring
// indices and flags are accessed atomically with the orderings the virtio spec requires.
#ifndef COMMON_VIRTIO_RING_ACCESS_H_
#define COMMON_VIRTIO_RING_ACCESS_H_

#include <cstdint>

namespace vhost {

inline uint16_t LoadAcquire(const uint16_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
inline uint16_t LoadRelaxed(const uint16_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline void StoreRelease(uint16_t* p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
inline void StoreRelaxed(uint16_t* p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
inline void StoreRelaxed(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
// Orders our used-ring writes before our reads of the guest's event index (and vice versa).
inline void FullFence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// virtio 1.2 §2.7.10: whether moving the used index from `old_idx` to `new_idx` crossed the
// index at which the driver asked to be notified.
inline bool NeedEvent(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

}  // namespace vhost

#endif  // COMMON_VIRTIO_RING_ACCESS_H_
