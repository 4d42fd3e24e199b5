// vhost-user-probe: connects to a vhost-user back end and prints what it offers.
//
//   vhost-user-probe --socket-path=/tmp/vhost.sock [--config-size=64]
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gflags/gflags.h"
#include "tests/frontend/feature_names.h"
#include "tests/frontend/frontend.h"

DEFINE_string(socket_path, "", "Unix socket of the back end");
DEFINE_int32(config_size, 64, "bytes of config space to read (if CONFIG is offered)");
DEFINE_int32(connect_timeout_ms, 5000, "how long to retry connecting");

namespace vhost {
namespace frontend {
namespace {

void HexDump(const std::vector<uint8_t>& bytes) {
  for (size_t i = 0; i < bytes.size(); i += 16) {
    std::string line = absl::StrFormat("  %04x:", i);
    for (size_t j = i; j < i + 16 && j < bytes.size(); ++j) {
      absl::StrAppendFormat(&line, " %02x", bytes[j]);
    }
    std::printf("%s\n", line.c_str());
  }
}

int Probe() {
  FrontendOptions options;
  options.connect_timeout = absl::Milliseconds(FLAGS_connect_timeout_ms);
  absl::StatusOr<std::unique_ptr<Frontend>> frontend =
      Frontend::Connect(FLAGS_socket_path, options);
  if (!frontend.ok()) {
    std::fprintf(stderr, "connect: %s\n", frontend.status().ToString().c_str());
    return 1;
  }
  Frontend& f = **frontend;
  // Everything we know how to ask about; a probe does not need the back-end channel.
  const uint64_t wanted = kDefaultProtocolFeatures & ~Bit(kProtocolBackendReq);
  if (absl::Status s = f.Handshake(wanted); !s.ok()) {
    std::fprintf(stderr, "handshake: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("features: 0x%016llx\n  %s\n", static_cast<unsigned long long>(f.offered_features()),
              DescribeFeatures(f.offered_features()).c_str());
  if (!(f.offered_features() & Bit(kFeatureProtocolFeatures))) {
    std::printf("protocol features: not offered\n");
    return 0;
  }
  std::printf("protocol features: 0x%016llx\n  %s\n",
              static_cast<unsigned long long>(f.offered_protocol_features()),
              DescribeProtocolFeatures(f.offered_protocol_features()).c_str());
  if (f.has_protocol_feature(kProtocolMq)) {
    std::printf("queues: %u\n", f.queue_num());
  } else {
    std::printf("queues: MQ not offered\n");
  }
  if (f.has_protocol_feature(kProtocolConfigureMemSlots)) {
    std::printf("max mem slots: %llu\n", static_cast<unsigned long long>(f.max_mem_slots()));
  }
  if (f.has_protocol_feature(kProtocolConfig) && FLAGS_config_size > 0) {
    // A back end refuses sizes beyond its config space: shrink until it accepts.
    for (int size = FLAGS_config_size; size > 0; size -= 4) {
      absl::StatusOr<std::vector<uint8_t>> config = f.GetConfig(0, size);
      if (config.ok()) {
        std::printf("config space (%d bytes%s):\n", size,
                    size == FLAGS_config_size ? "" : ", the most the back end accepts");
        HexDump(*config);
        break;
      }
      if (!absl::IsFailedPrecondition(config.status())) {
        std::fprintf(stderr, "GET_CONFIG: %s\n", config.status().ToString().c_str());
        return 1;
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace frontend
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::SetUsageMessage("vhost-user-probe --socket-path=PATH [--config-size=N]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_socket_path.empty()) {
    std::fprintf(stderr, "--socket-path is required\n");
    return 2;
  }
  return vhost::frontend::Probe();
}
