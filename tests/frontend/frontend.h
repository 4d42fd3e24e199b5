// A vhost-user front end's control connection, doing what QEMU does: negotiation, memory table,
// ring setup, config space, status, reset, the back-end channel. One method per request, plus
// Handshake() for QEMU's usual opening sequence and raw access for bad-input tests.
//
// With REPLY_ACK negotiated, requests without a reply of their own carry NEED_REPLY and the
// back end's u64 acknowledgement is checked (a non-zero one is an error).
#ifndef TESTS_FRONTEND_FRONTEND_H_
#define TESTS_FRONTEND_FRONTEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/base/unique_fd.h"
#include "common/vhost_user/channel.h"
#include "common/vhost_user/message.h"
#include "tests/frontend/backend_channel.h"
#include "tests/frontend/guest_ram.h"

namespace vhost {
namespace frontend {

// The protocol features Handshake() asks for by default (intersected with the offer).
constexpr uint64_t kDefaultProtocolFeatures =
    Bit(kProtocolMq) | Bit(kProtocolReplyAck) | Bit(kProtocolBackendReq) | Bit(kProtocolConfig) |
    Bit(kProtocolResetDevice) | Bit(kProtocolConfigureMemSlots) | Bit(kProtocolStatus);

struct FrontendOptions {
  // Connecting retries (ENOENT, ECONNREFUSED) until this much time has passed.
  absl::Duration connect_timeout = absl::Seconds(10);
  // How long to wait for any reply before failing (SO_RCVTIMEO).
  absl::Duration reply_timeout = absl::Seconds(10);
};

class Frontend {
 public:
  static absl::StatusOr<std::unique_ptr<Frontend>> Connect(const std::string& socket_path,
                                                           const FrontendOptions& options = {});
  // Over an already connected socket.
  explicit Frontend(UniqueFd socket);

  // ---- QEMU's opening sequence.

  // GET_FEATURES; if PROTOCOL_FEATURES is offered: GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES
  // (offer & wanted), GET_QUEUE_NUM (MQ), GET_MAX_MEM_SLOTS (CONFIGURE_MEM_SLOTS),
  // SET_BACKEND_REQ_FD (BACKEND_REQ); then SET_OWNER.
  absl::Status Handshake(uint64_t wanted_protocol_features = kDefaultProtocolFeatures);
  // SET_FEATURES with offer & wanted, keeping PROTOCOL_FEATURES if offered (as QEMU does).
  // Returns the features acknowledged.
  absl::StatusOr<uint64_t> NegotiateFeatures(uint64_t wanted);

  uint64_t offered_features() const { return offered_features_; }
  uint64_t acked_features() const { return acked_features_; }
  uint64_t offered_protocol_features() const { return offered_protocol_features_; }
  uint64_t protocol_features() const { return protocol_features_; }
  bool has_protocol_feature(uint32_t bit) const { return protocol_features_ & Bit(bit); }
  bool has_feature(uint32_t bit) const { return acked_features_ & Bit(bit); }
  uint32_t queue_num() const { return queue_num_; }          // 0 unless MQ was negotiated
  uint64_t max_mem_slots() const { return max_mem_slots_; }  // 0 unless asked

  // ---- One request each.

  absl::StatusOr<uint64_t> GetFeatures();
  absl::Status SetFeatures(uint64_t features);
  absl::StatusOr<uint64_t> GetProtocolFeatures();
  absl::Status SetProtocolFeatures(uint64_t features);
  absl::Status SetOwner();
  absl::Status ResetOwner();
  absl::StatusOr<uint32_t> GetQueueNum();
  absl::StatusOr<uint64_t> GetMaxMemSlots();
  // The back end signals failure with an empty reply, returned as an error.
  absl::StatusOr<std::vector<uint8_t>> GetConfig(uint32_t offset, uint32_t size,
                                                 uint32_t flags = 0);
  absl::Status SetConfig(uint32_t offset, absl::Span<const uint8_t> data, uint32_t flags = 0);
  absl::Status SetStatus(uint8_t status);
  absl::StatusOr<uint8_t> GetStatus();
  absl::Status ResetDevice();
  // Creates a socketpair, sends one end; the other is backend_channel() from then on.
  absl::Status SetBackendReqFd();

  // GET_INFLIGHT_FD for `num_queues` queues of `queue_size`: the region's description and fd.
  struct InflightRegion {
    InflightDescription description{};
    UniqueFd fd;
  };
  absl::StatusOr<InflightRegion> GetInflightFd(uint16_t num_queues, uint16_t queue_size);
  absl::Status SetInflightFd(const InflightDescription& description, int fd);
  // SET_DEVICE_STATE_FD (kTransferSave or kTransferLoad, stopped phase) over our end of a
  // pipe: `fd` is the back end's end. Returns the reply (0 on success; kDeviceStateNoFd set
  // when the back end uses our pipe) and its fd, if the back end sent its own channel.
  struct DeviceStateReply {
    uint64_t value = 0;
    UniqueFd fd;
  };
  absl::StatusOr<DeviceStateReply> SetDeviceStateFd(uint32_t direction, int fd);
  // CHECK_DEVICE_STATE: 0 when the back end saved or loaded its state.
  absl::StatusOr<uint64_t> CheckDeviceState();
  BackendChannel* backend_channel() { return backend_channel_.get(); }
  // SET_LOG_BASE (LOG_SHMFD): the dirty log is `size` bytes at `offset` of `fd` (see
  // dirty_bitmap.h); waits for the back end's reply, as QEMU does.
  absl::Status SetLogBase(int fd, uint64_t size, uint64_t offset = 0);

  // SET_MEM_TABLE with every region of `ram` (or the chosen ones).
  absl::Status SetMemTable(const GuestRam& ram);
  absl::Status SetMemTable(const GuestRam& ram, absl::Span<const size_t> regions);
  // ADD_MEM_REG / REM_MEM_REG of region `region` of `ram`.
  absl::Status AddMemReg(const GuestRam& ram, size_t region);
  absl::Status RemMemReg(const GuestRam& ram, size_t region);

  absl::Status SetVringNum(uint32_t index, uint32_t num);
  absl::Status SetVringBase(uint32_t index, uint32_t base);
  // Stops the ring; returns its base (split: next avail index; packed: see DriverRing).
  absl::StatusOr<uint32_t> GetVringBase(uint32_t index);
  absl::Status SetVringAddr(const VringAddr& addr);
  // A negative fd sends the "no fd" flag (polling mode / no call / no err).
  absl::Status SetVringKick(uint32_t index, int fd);
  absl::Status SetVringCall(uint32_t index, int fd);
  absl::Status SetVringErr(uint32_t index, int fd);
  absl::Status SetVringEnable(uint32_t index, bool enable);

  // ---- Generic and raw access.

  // Sends a request that has no reply of its own; with REPLY_ACK negotiated (and use_reply_ack)
  // sets NEED_REPLY and checks the acknowledgement.
  absl::Status Send(Message request);
  // Sends a request and returns its reply.
  absl::StatusOr<Message> Call(const Message& request);
  // Whether Send asks for acknowledgements (default: when REPLY_ACK is negotiated).
  void set_use_reply_ack(bool use) { use_reply_ack_override_ = use ? 1 : 0; }

  // Bytes and frames verbatim (see raw_socket.h), and receiving with a timeout.
  absl::Status SendRawBytes(absl::Span<const uint8_t> bytes, absl::Span<const int> fds = {});
  absl::Status SendRawMessage(uint32_t request, uint32_t flags, uint32_t size_field,
                              absl::Span<const uint8_t> payload, absl::Span<const int> fds = {});
  absl::StatusOr<Message> Receive(absl::Duration timeout);
  // True once the back end has closed the connection (waits up to `timeout`).
  bool WaitForClose(absl::Duration timeout);
  // Closes our end (the back end sees a disconnect).
  void Close();

  Channel& channel() { return channel_; }
  int socket_fd() const { return channel_.fd(); }

 private:
  absl::StatusOr<uint64_t> CallU64(FrontendRequest request);
  absl::Status SendU64(FrontendRequest request, uint64_t value);
  absl::Status SendState(FrontendRequest request, uint32_t index, uint32_t num);
  absl::Status SendVringFd(FrontendRequest request, uint32_t index, int fd);
  absl::Status SendMemReg(FrontendRequest request, const GuestRam& ram, size_t region,
                          bool with_fd);
  bool reply_ack() const;

  Channel channel_;
  std::unique_ptr<BackendChannel> backend_channel_;
  uint64_t offered_features_ = 0;
  uint64_t acked_features_ = 0;
  uint64_t offered_protocol_features_ = 0;
  uint64_t protocol_features_ = 0;
  uint32_t queue_num_ = 0;
  uint64_t max_mem_slots_ = 0;
  int use_reply_ack_override_ = -1;
};

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_FRONTEND_H_
