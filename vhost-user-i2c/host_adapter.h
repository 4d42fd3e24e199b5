// A host I2C adapter through /dev/i2c-N (the i2c-dev driver).
//
// I2C_FUNCS says what the adapter can do. A plain-I2C adapter gets each transaction as one
// I2C_RDWR (repeated starts kept). An SMBus-only adapter (many PC controllers) gets the
// transactions that have an SMBus equivalent, issued with I2C_SMBUS:
//   [write 0 bytes] / [read 0 bytes]        quick write / quick read
//   [write 1] / [read 1]                    send byte / receive byte
//   [write 2] / [write 3]                   write byte data / write word data
//   [write 1+N], N <= 32                    I2C block write
//   [write 1][read 1] / [write 1][read 2]   read byte data / read word data
//   [write 1][read N], N <= 32              I2C block read
// Anything else is Unimplemented there (the guest gets ERR; nothing goes on the bus).
#ifndef VHOST_USER_I2C_HOST_ADAPTER_H_
#define VHOST_USER_I2C_HOST_ADAPTER_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "vhost-user-i2c/i2c_adapter.h"

namespace vhost {

class HostAdapter : public I2cAdapter {
 public:
  static absl::StatusOr<std::unique_ptr<HostAdapter>> Open(const std::string& path);

  absl::Status Transfer(absl::Span<I2cMessage> messages) override;
  std::string name() const override { return path_; }
  unsigned long functionality() const { return funcs_; }

 private:
  HostAdapter(UniqueFd fd, std::string path, unsigned long funcs)
      : fd_(std::move(fd)), path_(std::move(path)), funcs_(funcs) {}
  absl::Status TransferI2c(absl::Span<I2cMessage> messages);
  absl::Status TransferSmbus(absl::Span<I2cMessage> messages);

  std::mutex mu_;
  UniqueFd fd_;
  const std::string path_;
  const unsigned long funcs_;
};

// The ioctl requests HostAdapter issues (for the seccomp filter).
std::vector<unsigned long> HostAdapterIoctls();

}  // namespace vhost

#endif  // VHOST_USER_I2C_HOST_ADAPTER_H_
