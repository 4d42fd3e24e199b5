// Runs inside the test guest against an I2C adapter through vhost-user-i2c's own HostAdapter
// (i2c-dev: I2C_RDWR, or SMBus emulation on an SMBus-only adapter such as i2c-stub), so the
// guest test exercises the host-adapter code on real kernel adapters as well.
//
//   i2c_guest_tool ADAPTER roundtrip ADDR LABEL  writes "vhost-user" at register 0x10, reads it
//                                                back (pointer write + read, one transaction)
//   i2c_guest_tool ADAPTER probe ADDR LABEL      a zero-length write: ack or not
#include <cstdio>
#include <cstdlib>
#include <string>

#include "vhost-user-i2c/host_adapter.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s ADAPTER roundtrip|probe ADDR LABEL\n", argv[0]);
    return 2;
  }
  const char* label = argv[4];
  absl::StatusOr<std::unique_ptr<vhost::HostAdapter>> adapter = vhost::HostAdapter::Open(argv[1]);
  if (!adapter.ok()) {
    std::printf("E2E-RESULT %s=open failed: %s\n", label,
                std::string(adapter.status().message()).c_str());
    return 1;
  }
  const uint16_t addr = static_cast<uint16_t>(std::strtoul(argv[3], nullptr, 0));
  const std::string op = argv[2];
  if (op == "probe") {
    std::vector<vhost::I2cMessage> quick{{addr, false, {}}};
    absl::Status s = (*adapter)->Transfer(absl::MakeSpan(quick));
    std::printf("E2E-RESULT %s=%s\n", label, s.ok() ? "ack" : "error");
    return 0;
  }
  const std::string text = "vhost-user";
  std::vector<vhost::I2cMessage> write{{addr, false, {0x10}}};
  write[0].data.insert(write[0].data.end(), text.begin(), text.end());
  absl::Status s = (*adapter)->Transfer(absl::MakeSpan(write));
  std::vector<vhost::I2cMessage> read{{addr, false, {0x10}},
                                      {addr, true, std::vector<uint8_t>(text.size())}};
  if (s.ok()) s = (*adapter)->Transfer(absl::MakeSpan(read));
  if (!s.ok()) {
    std::printf("E2E-RESULT %s=error: %s\n", label, std::string(s.message()).c_str());
    return 1;
  }
  std::printf("E2E-RESULT %s=%s\n", label,
              std::string(read[1].data.begin(), read[1].data.end()).c_str());
  return 0;
}
