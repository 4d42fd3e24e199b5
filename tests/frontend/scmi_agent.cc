#include "tests/frontend/scmi_agent.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace vhost::frontend {
namespace {

constexpr uint32_t kMaxRequest = 4096;
constexpr uint32_t kMaxReply = 4096;

}  // namespace

uint32_t ScmiHeader(uint8_t protocol, uint8_t message_id, uint16_t token, uint8_t type) {
  return uint32_t{message_id} | (uint32_t{type} & 3) << 8 | uint32_t{protocol} << 10 |
         (uint32_t{token} & 0x3ff) << 18;
}

uint32_t ScmiReply::Word(size_t i) const {
  if (values.size() < 4 * (i + 1)) return 0;
  uint32_t w;
  std::memcpy(&w, values.data() + 4 * i, 4);
  return w;
}

std::string ScmiReply::Name(size_t offset) const {
  std::string name;
  for (size_t i = offset; i < values.size() && values[i] != 0; ++i) name.push_back(values[i]);
  return name;
}

absl::StatusOr<std::unique_ptr<ScmiAgent>> ScmiAgent::Connect(const DaemonSession& session,
                                                              bool p2a, int event_buffers) {
  std::unique_ptr<ScmiAgent> agent(new ScmiAgent());
  DeviceOptions options;
  options.features = Bit(kFeatureVersion1) | (p2a ? Bit(0) : 0);
  options.required_features = options.features;
  options.ram_size = 4 << 20;
  options.queue_sizes = {64, 64};
  absl::StatusOr<std::unique_ptr<DeviceConnection>> device = session.Open(options);
  if (!device.ok()) return device.status();
  agent->device_ = *std::move(device);
  GuestRam* ram = agent->device_->ram();
  absl::StatusOr<uint64_t> gpa = ram->Allocate(kMaxRequest, 64, &agent->request_);
  if (!gpa.ok()) return gpa.status();
  agent->request_gpa_ = *gpa;
  gpa = ram->Allocate(kMaxReply, 64, &agent->reply_);
  if (!gpa.ok()) return gpa.status();
  agent->reply_gpa_ = *gpa;
  gpa = ram->Allocate(uint64_t{kRoom} * 64, 64, &agent->events_);
  if (!gpa.ok()) return gpa.status();
  agent->events_gpa_ = *gpa;
  agent->slot_of_id_.assign(64, 0);
  if (p2a) {
    for (int i = 0; i < event_buffers; ++i) {
      if (absl::Status s = agent->PostEventBuffer(i); !s.ok()) return s;
    }
  }
  return agent;
}

absl::Status ScmiAgent::PostEventBuffer(uint32_t slot) {
  std::memset(events_ + slot * kRoom, 0xee, kRoom);
  absl::StatusOr<uint16_t> id =
      device_->queue(1)->ring().AddChain({}, {{events_gpa_ + slot * kRoom, kRoom}});
  if (!id.ok()) return id.status();
  slot_of_id_[*id] = slot;
  return device_->queue(1)->Submit().status();
}

absl::StatusOr<ScmiReply> ScmiAgent::Call(uint8_t protocol, uint8_t message_id,
                                          const std::vector<uint32_t>& params, uint32_t room) {
  std::vector<uint8_t> request(4 + 4 * params.size());
  const uint32_t header = ScmiHeader(protocol, message_id, token_++ & 0x3ff);
  std::memcpy(request.data(), &header, 4);
  if (!params.empty()) std::memcpy(request.data() + 4, params.data(), 4 * params.size());
  absl::StatusOr<ScmiReply> reply = CallRaw(request, room);
  if (reply.ok() && reply->len >= 4 && reply->header != header) {
    return absl::DataLossError(absl::StrCat("reply header ", reply->header, " for ", header));
  }
  return reply;
}

absl::StatusOr<ScmiReply> ScmiAgent::CallRaw(const std::vector<uint8_t>& request, uint32_t room) {
  if (request.size() > kMaxRequest || room > kMaxReply) {
    return absl::InvalidArgumentError("request or reply too large for the agent's buffers");
  }
  if (!request.empty()) std::memcpy(request_, request.data(), request.size());
  std::memset(reply_, 0xee, room);
  std::vector<testing::Buffer> readable;
  if (!request.empty()) readable.push_back({request_gpa_, static_cast<uint32_t>(request.size())});
  std::vector<testing::Buffer> writable;
  if (room != 0) writable.push_back({reply_gpa_, room});
  absl::StatusOr<uint16_t> id = device_->queue(0)->ring().AddChain(readable, writable);
  if (!id.ok()) return id.status();
  if (absl::StatusOr<bool> kicked = device_->queue(0)->Submit(); !kicked.ok()) {
    return kicked.status();
  }
  absl::StatusOr<testing::UsedElement> used = device_->queue(0)->WaitForUsed(absl::Seconds(10));
  if (!used.ok()) return used.status();
  if (used->len > room) return absl::DataLossError("the device wrote past the reply buffer");
  ScmiReply reply;
  reply.len = used->len;
  if (used->len >= 4) std::memcpy(&reply.header, reply_, 4);
  if (used->len >= 8) {
    std::memcpy(&reply.status, reply_ + 4, 4);
    reply.values.assign(reply_ + 8, reply_ + used->len);
  }
  return reply;
}

absl::StatusOr<std::vector<uint32_t>> ScmiAgent::WaitForEvent(absl::Duration timeout) {
  absl::StatusOr<testing::UsedElement> used = device_->queue(1)->WaitForUsed(timeout);
  if (!used.ok()) return used.status();
  if (used->id >= slot_of_id_.size() || used->len > kRoom) {
    return absl::DataLossError("bad event queue used element");
  }
  const uint32_t slot = slot_of_id_[used->id];
  std::vector<uint32_t> words(used->len / 4);
  if (!words.empty()) std::memcpy(words.data(), events_ + slot * kRoom, words.size() * 4);
  if (absl::Status s = PostEventBuffer(slot); !s.ok()) return s;
  return words;
}

}  // namespace vhost::frontend
