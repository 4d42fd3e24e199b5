// virtio-i2c (virtio 1.2 §5.19): one request queue; each chain is one I2C message (an 8-byte
// header with the address and flags, the data, a status byte). Messages linked by
// VIRTIO_I2C_FLAGS_FAIL_NEXT form one transaction, executed as one (I2C_RDWR with repeated
// starts): it succeeds or fails as a whole.
//
// Only the client addresses of the bus map exist for the guest: a transaction touching any other
// address, longer than the limit, spanning two host adapters or malformed fails whole with
// VIRTIO_I2C_MSG_ERR and nothing goes on any bus.
#ifndef VHOST_USER_I2C_I2C_DEVICE_H_
#define VHOST_USER_I2C_I2C_DEVICE_H_

#include <map>
#include <memory>
#include <vector>

#include "common/device/device.h"
#include "vhost-user-i2c/i2c_adapter.h"

namespace vhost {

constexpr uint32_t kVirtioIdI2c = 34;
// The Linux i2c-dev limit on one message.
constexpr uint32_t kMaxI2cMessageBytes = 8192;

// Which adapter serves each 7-bit client address the guest may use.
using I2cBusMap = std::map<uint16_t, std::shared_ptr<I2cAdapter>>;

class I2cDevice : public VirtioDevice {
 public:
  explicit I2cDevice(I2cBusMap bus, uint32_t max_message_bytes = kMaxI2cMessageBytes);

  DeviceInfo Info() const override;
  absl::Status SetFeatures(uint64_t features) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  void Reset() override { pending_.clear(); }

 private:
  // One taken chain, parsed.
  struct Request {
    ChainToken token = 0;
    bool valid = false;  // well-formed (else the transaction fails)
    bool fail_next = false;
    I2cMessage message;
  };
  Request Parse(ChainToken token, const DescriptorChain& chain) const;
  // Runs the pending transaction and completes its chains.
  void Execute(QueueContext& context);
  absl::Status Check(const std::vector<Request>& group, I2cAdapter** adapter) const;

  const I2cBusMap bus_;
  const uint32_t max_message_bytes_;
  bool zero_length_ = false;
  // The transaction being collected (queue thread only; always empty between calls, as a
  // transaction runs once complete or once the ring is empty).
  std::vector<Request> pending_;
};

}  // namespace vhost

#endif  // VHOST_USER_I2C_I2C_DEVICE_H_
