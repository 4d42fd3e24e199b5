// Wire format of vhost-user messages in both directions (QEMU docs/interop/vhost-user.rst,
// "Message Specification"). All numbers are host-native byte order.
#ifndef COMMON_VHOST_USER_MESSAGE_H_
#define COMMON_VHOST_USER_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/base/unique_fd.h"
#include "common/virtio/features.h"
#include "common/virtio/guest_memory.h"

namespace vhost {

// Requests sent by the front end to the back end.
enum class FrontendRequest : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,
  kNetSetMtu = 20,
  kSetBackendReqFd = 21,
  kIotlbMsg = 22,
  kSetVringEndian = 23,
  kGetConfig = 24,
  kSetConfig = 25,
  kCreateCryptoSession = 26,
  kCloseCryptoSession = 27,
  kPostcopyAdvise = 28,
  kPostcopyListen = 29,
  kPostcopyEnd = 30,
  kGetInflightFd = 31,
  kSetInflightFd = 32,
  kGpuSetSocket = 33,
  kResetDevice = 34,
  kVringKick = 35,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
  kGetSharedObject = 41,
  kSetDeviceStateFd = 42,
  kCheckDeviceState = 43,
};

// Requests sent by the back end on the back-end channel (SET_BACKEND_REQ_FD).
enum class BackendRequest : uint32_t {
  kIotlbMsg = 1,
  kConfigChangeMsg = 2,
  kVringHostNotifierMsg = 3,
};

std::string RequestName(FrontendRequest request);

// Protocol feature bits (GET/SET_PROTOCOL_FEATURES).
enum ProtocolFeature : uint32_t {
  kProtocolMq = 0,
  kProtocolLogShmfd = 1,
  kProtocolRarp = 2,
  kProtocolReplyAck = 3,
  kProtocolMtu = 4,
  kProtocolBackendReq = 5,
  kProtocolCrossEndian = 6,
  kProtocolCryptoSession = 7,
  kProtocolPagefault = 8,
  kProtocolConfig = 9,
  kProtocolBackendSendFd = 10,
  kProtocolHostNotifier = 11,
  kProtocolInflightShmfd = 12,
  kProtocolResetDevice = 13,
  kProtocolInbandNotifications = 14,
  kProtocolConfigureMemSlots = 15,
  kProtocolStatus = 16,
  kProtocolDeviceState = 19,
};

// Header flags.
constexpr uint32_t kFlagVersionMask = 0x3;
constexpr uint32_t kFlagVersion = 0x1;
constexpr uint32_t kFlagReply = 1u << 2;
constexpr uint32_t kFlagNeedReply = 1u << 3;

// SET_VRING_KICK/CALL/ERR payload: low byte = queue index, bit 8 = no file descriptor.
constexpr uint64_t kVringIndexMask = 0xff;
constexpr uint64_t kVringNoFdFlag = 1u << 8;

// Limits we enforce on what arrives.
constexpr size_t kMaxFdsPerMessage = 8;
constexpr size_t kMaxMemTableRegions = 8;  // SET_MEM_TABLE carries at most 8.
constexpr size_t kMaxConfigSize = 256;
constexpr size_t kMaxPayloadSize = 4096;

struct MessageHeader {
  uint32_t request;
  uint32_t flags;
  uint32_t size;
};
static_assert(sizeof(MessageHeader) == 12);

struct VringState {
  uint32_t index;
  uint32_t num;
};

struct VringAddr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

struct MemoryTableHeader {
  uint32_t num_regions;
  uint32_t padding;
};

// ADD_MEM_REG / REM_MEM_REG.
struct SingleMemoryRegion {
  uint64_t padding;
  MemoryRegion region;
};
static_assert(sizeof(SingleMemoryRegion) == 40);

struct ConfigHeader {
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
};
static_assert(sizeof(ConfigHeader) == 12);

// GET_INFLIGHT_FD / SET_INFLIGHT_FD.
struct InflightDescription {
  uint64_t mmap_size;
  uint64_t mmap_offset;
  uint16_t num_queues;
  uint16_t queue_size;
  uint32_t padding;  // QEMU sends the padded C struct
};
static_assert(sizeof(InflightDescription) == 24);

// SET_LOG_BASE with LOG_SHMFD: where the dirty log lies in the fd that comes with it.
struct LogDescription {
  uint64_t mmap_size;
  uint64_t mmap_offset;
};
static_assert(sizeof(LogDescription) == 16);
// SET_VRING_ADDR flags: log the ring's used writes at log_guest_addr.
constexpr uint32_t kVringFlagLog = 1u << 0;

// SET_DEVICE_STATE_FD: which way the state goes, and when (vhost-user.rst).
struct DeviceStateTransfer {
  uint32_t direction;  // kTransferSave or kTransferLoad
  uint32_t phase;      // only kTransferPhaseStopped exists
};
static_assert(sizeof(DeviceStateTransfer) == 8);
constexpr uint32_t kTransferSave = 0;  // back end -> front end
constexpr uint32_t kTransferLoad = 1;  // front end -> back end
constexpr uint32_t kTransferPhaseStopped = 0;
// SET_DEVICE_STATE_FD's reply: bits 0-7 an error code, bit 8 "no fd returned" (the back end
// uses the front end's).
constexpr uint64_t kDeviceStateNoFd = 1u << 8;

// One message with its payload and any file descriptors that came with it.
struct Message {
  MessageHeader header{};
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;

  FrontendRequest request() const { return static_cast<FrontendRequest>(header.request); }
  bool need_reply() const { return header.flags & kFlagNeedReply; }

  // Reads a trivially copyable struct at `offset` of the payload (bounds-checked).
  template <typename T>
  absl::StatusOr<T> Read(size_t offset = 0) const {
    static_assert(std::is_trivially_copyable_v<T>);
    if (offset > payload.size() || payload.size() - offset < sizeof(T)) {
      return absl::InvalidArgumentError("payload too short");
    }
    T value;
    std::memcpy(&value, payload.data() + offset, sizeof(T));
    return value;
  }

  template <typename T>
  void Append(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
    payload.insert(payload.end(), bytes, bytes + sizeof(T));
    header.size = payload.size();
  }
  void AppendBytes(absl::Span<const uint8_t> bytes) {
    payload.insert(payload.end(), bytes.begin(), bytes.end());
    header.size = payload.size();
  }
};

// Builds a request (front end -> back end or back end -> front end) with the given payload.
Message MakeRequest(uint32_t request, uint32_t flags = 0);
// Builds the reply to `request` (same request code, REPLY flag set).
Message MakeReply(const Message& request);

// Checks that a front-end request's payload size and fd count fit its type. Unknown request codes
// and requests we never offered are rejected here.
absl::Status ValidateFrontendMessage(const Message& message);

}  // namespace vhost

#endif  // COMMON_VHOST_USER_MESSAGE_H_
