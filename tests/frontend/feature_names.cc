#include "tests/frontend/feature_names.h"

#include "absl/strings/str_cat.h"

namespace vhost {
namespace frontend {
namespace {

template <typename NameFn>
std::string Describe(uint64_t features, NameFn name) {
  std::string out;
  for (uint32_t bit = 0; bit < 64; ++bit) {
    if (!(features & (uint64_t{1} << bit))) continue;
    absl::StrAppend(&out, out.empty() ? "" : " ", name(bit));
  }
  return out;
}

}  // namespace

std::string FeatureName(uint32_t bit) {
  switch (bit) {
    case 24:
      return "NOTIFY_ON_EMPTY";
    case 26:
      return "LOG_ALL";
    case 27:
      return "ANY_LAYOUT";
    case 28:
      return "RING_INDIRECT_DESC";
    case 29:
      return "RING_EVENT_IDX";
    case 30:
      return "PROTOCOL_FEATURES";
    case 32:
      return "VERSION_1";
    case 33:
      return "ACCESS_PLATFORM";
    case 34:
      return "RING_PACKED";
    case 35:
      return "IN_ORDER";
    case 36:
      return "ORDER_PLATFORM";
    case 37:
      return "SR_IOV";
    case 38:
      return "NOTIFICATION_DATA";
    case 39:
      return "NOTIF_CONFIG_DATA";
    case 40:
      return "RING_RESET";
    case 41:
      return "ADMIN_VQ";
  }
  if (bit < 24 || bit >= 50) return absl::StrCat("device bit ", bit);
  return absl::StrCat("bit ", bit);
}

std::string ProtocolFeatureName(uint32_t bit) {
  static constexpr const char* kNames[] = {
      "MQ",
      "LOG_SHMFD",
      "RARP",
      "REPLY_ACK",
      "NET_MTU",
      "BACKEND_REQ",
      "CROSS_ENDIAN",
      "CRYPTO_SESSION",
      "PAGEFAULT",
      "CONFIG",
      "BACKEND_SEND_FD",
      "HOST_NOTIFIER",
      "INFLIGHT_SHMFD",
      "RESET_DEVICE",
      "INBAND_NOTIFICATIONS",
      "CONFIGURE_MEM_SLOTS",
      "STATUS",
      "XEN_MMAP",
      "SHARED_OBJECT",
      "DEVICE_STATE",
  };
  if (bit < sizeof(kNames) / sizeof(kNames[0])) return kNames[bit];
  return absl::StrCat("bit ", bit);
}

std::string DescribeFeatures(uint64_t features) { return Describe(features, FeatureName); }

std::string DescribeProtocolFeatures(uint64_t features) {
  return Describe(features, ProtocolFeatureName);
}

}  // namespace frontend
}  // namespace vhost
