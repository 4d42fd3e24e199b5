#include "common/vhost_user/message.h"

#include "absl/strings/str_cat.h"

namespace vhost {
namespace {

// What a request may carry: an exact payload size (or a minimum, for variable-length ones) and
// how many file descriptors.
struct Shape {
  bool supported;
  size_t payload_size;
  bool variable_length;  // payload_size is a minimum
};

Shape ShapeOf(FrontendRequest request) {
  switch (request) {
    case FrontendRequest::kGetFeatures:
    case FrontendRequest::kSetOwner:
    case FrontendRequest::kResetOwner:
    case FrontendRequest::kGetProtocolFeatures:
    case FrontendRequest::kGetQueueNum:
    case FrontendRequest::kSetBackendReqFd:
    case FrontendRequest::kResetDevice:
    case FrontendRequest::kGpuSetSocket:
    case FrontendRequest::kGetMaxMemSlots:
    case FrontendRequest::kGetStatus:
    case FrontendRequest::kCheckDeviceState:
      return {true, 0, false};
    case FrontendRequest::kSetFeatures:
    case FrontendRequest::kSetProtocolFeatures:
    case FrontendRequest::kSetVringKick:
    case FrontendRequest::kSetVringCall:
    case FrontendRequest::kSetVringErr:
    case FrontendRequest::kSetStatus:
      return {true, sizeof(uint64_t), false};
    case FrontendRequest::kSetVringNum:
    case FrontendRequest::kSetVringBase:
    case FrontendRequest::kGetVringBase:
    case FrontendRequest::kSetVringEnable:
      return {true, sizeof(VringState), false};
    case FrontendRequest::kSetVringAddr:
      return {true, sizeof(VringAddr), false};
    case FrontendRequest::kSetLogBase:
      return {true, sizeof(LogDescription), false};
    case FrontendRequest::kSetLogFd:
      return {true, 0, false};
    case FrontendRequest::kSetMemTable:
      return {true, sizeof(MemoryTableHeader), true};
    case FrontendRequest::kGetConfig:
    case FrontendRequest::kSetConfig:
      return {true, sizeof(ConfigHeader), true};
    case FrontendRequest::kAddMemReg:
    case FrontendRequest::kRemMemReg:
      return {true, sizeof(SingleMemoryRegion), false};
    case FrontendRequest::kSetDeviceStateFd:
      return {true, sizeof(DeviceStateTransfer), false};
    case FrontendRequest::kGetInflightFd:
    case FrontendRequest::kSetInflightFd:
      // The spec lists 20 bytes of fields; C front ends send the struct with its padding.
      return {true, 20, true};
    default:
      return {false, 0, false};
  }
}

absl::Status ExpectFds(const Message& m, size_t min, size_t max) {
  if (m.fds.size() < min || m.fds.size() > max) {
    return absl::InvalidArgumentError(absl::StrCat(RequestName(m.request()), " carries ",
                                                   m.fds.size(), " fds, expected ", min,
                                                   min == max ? "" : absl::StrCat("..", max)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string RequestName(FrontendRequest request) {
  switch (request) {
#define NAME(x)               \
  case FrontendRequest::k##x: \
    return #x;
    NAME(GetFeatures)
    NAME(SetFeatures)
    NAME(SetOwner)
    NAME(ResetOwner)
    NAME(SetMemTable)
    NAME(SetLogBase)
    NAME(SetLogFd)
    NAME(SetVringNum)
    NAME(SetVringAddr)
    NAME(SetVringBase)
    NAME(GetVringBase)
    NAME(SetVringKick)
    NAME(SetVringCall)
    NAME(SetVringErr)
    NAME(GetProtocolFeatures)
    NAME(SetProtocolFeatures)
    NAME(GetQueueNum)
    NAME(SetVringEnable)
    NAME(SendRarp)
    NAME(NetSetMtu)
    NAME(SetBackendReqFd)
    NAME(IotlbMsg)
    NAME(SetVringEndian)
    NAME(GetConfig)
    NAME(SetConfig)
    NAME(CreateCryptoSession)
    NAME(CloseCryptoSession)
    NAME(PostcopyAdvise)
    NAME(PostcopyListen)
    NAME(PostcopyEnd)
    NAME(GetInflightFd)
    NAME(SetInflightFd)
    NAME(GpuSetSocket)
    NAME(ResetDevice)
    NAME(VringKick)
    NAME(GetMaxMemSlots)
    NAME(AddMemReg)
    NAME(RemMemReg)
    NAME(SetStatus)
    NAME(GetStatus)
    NAME(GetSharedObject)
    NAME(SetDeviceStateFd)
    NAME(CheckDeviceState)
#undef NAME
  }
  return absl::StrCat("request#", static_cast<uint32_t>(request));
}

Message MakeRequest(uint32_t request, uint32_t flags) {
  Message m;
  m.header.request = request;
  m.header.flags = kFlagVersion | flags;
  m.header.size = 0;
  return m;
}

Message MakeReply(const Message& request) {
  return MakeRequest(request.header.request, kFlagReply);
}

absl::Status ValidateFrontendMessage(const Message& m) {
  const std::string name = RequestName(m.request());
  if ((m.header.flags & kFlagVersionMask) != kFlagVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": unsupported protocol version in flags 0x", absl::Hex(m.header.flags)));
  }
  if (m.payload.size() != m.header.size) {
    return absl::InternalError("payload size does not match header");
  }
  const Shape shape = ShapeOf(m.request());
  if (!shape.supported) {
    return absl::UnimplementedError(absl::StrCat("unsupported request ", name));
  }
  const bool size_ok = shape.variable_length ? m.payload.size() >= shape.payload_size
                                             : m.payload.size() == shape.payload_size;
  if (!size_ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": payload of ", m.payload.size(), " bytes, expected ",
                     shape.variable_length ? "at least " : "", shape.payload_size));
  }

  switch (m.request()) {
    case FrontendRequest::kSetMemTable: {
      const MemoryTableHeader table = *m.Read<MemoryTableHeader>();
      if (table.num_regions == 0 || table.num_regions > kMaxMemTableRegions) {
        return absl::InvalidArgumentError(
            absl::StrCat("SetMemTable: ", table.num_regions, " regions (1..8 allowed)"));
      }
      const size_t expected = sizeof(MemoryTableHeader) + table.num_regions * sizeof(MemoryRegion);
      if (m.payload.size() != expected) {
        return absl::InvalidArgumentError(absl::StrCat("SetMemTable: payload of ", m.payload.size(),
                                                       " bytes for ", table.num_regions,
                                                       " regions"));
      }
      return ExpectFds(m, table.num_regions, table.num_regions);
    }
    case FrontendRequest::kGetConfig:
    case FrontendRequest::kSetConfig: {
      const ConfigHeader config = *m.Read<ConfigHeader>();
      if (config.size > kMaxConfigSize || m.payload.size() != sizeof(ConfigHeader) + config.size) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": config size ", config.size,
                                                       " in a payload of ", m.payload.size()));
      }
      return ExpectFds(m, 0, 0);
    }
    case FrontendRequest::kSetVringKick:
    case FrontendRequest::kSetVringCall:
    case FrontendRequest::kSetVringErr: {
      const uint64_t value = *m.Read<uint64_t>();
      if (value & ~(kVringIndexMask | kVringNoFdFlag)) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": unknown bits in 0x", absl::Hex(value)));
      }
      const size_t fds = (value & kVringNoFdFlag) ? 0 : 1;
      return ExpectFds(m, fds, fds);
    }
    case FrontendRequest::kSetBackendReqFd:
    case FrontendRequest::kGpuSetSocket:
    case FrontendRequest::kAddMemReg:
    case FrontendRequest::kSetInflightFd:
    case FrontendRequest::kSetDeviceStateFd:
    case FrontendRequest::kSetLogBase:
    case FrontendRequest::kSetLogFd:
      return ExpectFds(m, 1, 1);
    case FrontendRequest::kRemMemReg:
      // The spec allows a (useless) fd here for compatibility; it is closed unused.
      return ExpectFds(m, 0, 1);
    default:
      return ExpectFds(m, 0, 0);
  }
}

}  // namespace vhost
