// Virtio feature bits the engine itself knows (device-independent), and Bit().
#ifndef COMMON_VIRTIO_FEATURES_H_
#define COMMON_VIRTIO_FEATURES_H_

#include <cstdint>

namespace vhost {

constexpr uint64_t Bit(uint32_t bit) { return uint64_t{1} << bit; }

// Virtio feature bits the engine itself cares about (device-independent).
constexpr uint32_t kFeatureNotifyOnEmpty = 24;
constexpr uint32_t kFeatureLogAll = 26;  // VHOST_F_LOG_ALL: dirty-page logging (migration)
constexpr uint32_t kFeatureIndirectDesc = 28;
constexpr uint32_t kFeatureEventIdx = 29;
constexpr uint32_t kFeatureProtocolFeatures = 30;  // vhost-user specific
constexpr uint32_t kFeatureVersion1 = 32;
constexpr uint32_t kFeatureAccessPlatform = 33;
constexpr uint32_t kFeatureRingPacked = 34;
constexpr uint32_t kFeatureRingReset = 40;  // VIRTIO_F_RING_RESET: resetting one queue

}  // namespace vhost

#endif  // COMMON_VIRTIO_FEATURES_H_
