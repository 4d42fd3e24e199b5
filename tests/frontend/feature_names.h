// Names of the device-independent virtio feature bits and of the vhost-user protocol features.
#ifndef TESTS_FRONTEND_FEATURE_NAMES_H_
#define TESTS_FRONTEND_FEATURE_NAMES_H_

#include <cstdint>
#include <string>

namespace vhost {
namespace frontend {

// E.g. "VERSION_1" for bit 32; "device bit 3" for device-specific bits; "bit N" otherwise.
std::string FeatureName(uint32_t bit);
// E.g. "REPLY_ACK" for bit 3; "bit N" if unknown.
std::string ProtocolFeatureName(uint32_t bit);
// The names of every set bit, separated by spaces.
std::string DescribeFeatures(uint64_t features);
std::string DescribeProtocolFeatures(uint64_t features);

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_FEATURE_NAMES_H_
