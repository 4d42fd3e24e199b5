#include "vhost-user-i2c/i2c_device.h"

#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <linux/virtio_i2c.h>

#include "absl/strings/str_cat.h"
#include "common/virtio/chain_cursor.h"
#include "common/virtio/features.h"
#include "glog/logging.h"

namespace vhost {

I2cDevice::I2cDevice(I2cBusMap bus, uint32_t max_message_bytes)
    : bus_(std::move(bus)), max_message_bytes_(max_message_bytes) {}

DeviceInfo I2cDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdI2c;
  info.num_queues = 1;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1) | Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST);
  // A transfer a killed daemon took is run again by the next one: the guest never had its
  // result, and an I2C driver's own answer to a lost transfer (a timeout) is to retry it.
  info.resubmit_queues = DeviceInfo::kAllQueues;
  return info;
}

absl::Status I2cDevice::SetFeatures(uint64_t features) {
  zero_length_ = features & Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST);
  return absl::OkStatus();
}

QueueResult I2cDevice::ProcessQueue(QueueContext& context) {
  while (const absl::optional<ChainToken> token = context.Take()) {
    pending_.push_back(Parse(*token, context.chain(*token)));
    if (!pending_.back().fail_next || pending_.size() > I2C_RDWR_IOCTL_MAX_MSGS) Execute(context);
  }
  // Linux queues a whole transaction before it kicks; one still open when the ring is empty was
  // cut short by the driver (its ring was full) and runs as far as it goes.
  if (!pending_.empty()) Execute(context);
  return QueueResult::Drained();
}

I2cDevice::Request I2cDevice::Parse(ChainToken token, const DescriptorChain& chain) const {
  Request r;
  r.token = token;
  virtio_i2c_out_hdr header{};
  ChainReader reader(chain);
  if (!reader.Read(&header) || chain.writable_bytes < 1) {
    LOG_EVERY_N(WARNING, 100) << "i2c request of " << chain.readable_bytes << "+"
                              << chain.writable_bytes << " bytes has no header or status";
    return r;
  }
  r.fail_next = header.flags & VIRTIO_I2C_FLAGS_FAIL_NEXT;
  r.message.addr = header.addr >> 1;
  r.message.read = header.flags & VIRTIO_I2C_FLAGS_M_RD;
  uint64_t length;
  if (r.message.read) {
    length = chain.writable_bytes - 1;
    if (chain.readable_bytes != sizeof(header)) {
      LOG_EVERY_N(WARNING, 100) << "i2c read request with " << chain.readable_bytes
                                << " readable bytes";
      return r;
    }
  } else {
    length = chain.readable_bytes - sizeof(header);
    if (chain.writable_bytes != 1) {
      LOG_EVERY_N(WARNING, 100) << "i2c write request with " << chain.writable_bytes
                                << " writable bytes";
      return r;
    }
  }
  if (length > max_message_bytes_) {
    LOG_EVERY_N(WARNING, 100) << "i2c message of " << length << " bytes; the limit is "
                              << max_message_bytes_;
    return r;
  }
  if (length == 0 && !zero_length_) {
    LOG_EVERY_N(WARNING, 100) << "zero-length i2c message without ZERO_LENGTH_REQUEST";
    return r;
  }
  r.message.data.resize(length);
  if (!r.message.read) reader.ReadBytes(absl::MakeSpan(r.message.data));  // length checked above
  r.valid = true;
  return r;
}

absl::Status I2cDevice::Check(const std::vector<Request>& group, I2cAdapter** adapter) const {
  if (group.size() > I2C_RDWR_IOCTL_MAX_MSGS) {
    return absl::InvalidArgumentError(absl::StrCat(group.size(), " messages in a transaction"));
  }
  *adapter = nullptr;
  for (const Request& r : group) {
    if (!r.valid) return absl::InvalidArgumentError("malformed request");
    auto it = bus_.find(r.message.addr);
    if (it == bus_.end()) {
      return absl::PermissionDeniedError(
          absl::StrCat("address 0x", absl::Hex(r.message.addr), " is not in --device-list"));
    }
    if (*adapter != nullptr && *adapter != it->second.get()) {
      return absl::InvalidArgumentError("a transaction across two host adapters");
    }
    *adapter = it->second.get();
  }
  return absl::OkStatus();
}

void I2cDevice::Execute(QueueContext& context) {
  std::vector<Request> group = std::move(pending_);
  pending_.clear();
  I2cAdapter* adapter = nullptr;
  absl::Status status = Check(group, &adapter);
  if (status.ok()) {
    std::vector<I2cMessage> messages;
    messages.reserve(group.size());
    for (Request& r : group) messages.push_back(std::move(r.message));
    status = adapter->Transfer(absl::MakeSpan(messages));
    for (size_t i = 0; i < group.size(); ++i) group[i].message = std::move(messages[i]);
  }
  if (!status.ok()) {
    LOG_EVERY_N(WARNING, 100) << "i2c transaction of " << group.size()
                              << " messages failed: " << status.message();
  }
  const uint8_t result = status.ok() ? VIRTIO_I2C_MSG_OK : VIRTIO_I2C_MSG_ERR;
  for (const Request& r : group) {
    ChainWriter writer(context.chain(r.token));
    if (status.ok() && r.message.read) writer.WriteBytes(r.message.data);
    // The status is the last writable byte, whatever else is wrong with the chain (a chain
    // with no writable byte gets none: WriteAt refuses the wrapped offset).
    writer.WriteAt(writer.size() - 1, result);
    context.Complete(r.token, writer.bytes_written());
  }
}

}  // namespace vhost
