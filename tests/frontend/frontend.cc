#include "tests/frontend/frontend.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "tests/frontend/raw_socket.h"

namespace vhost {
namespace frontend {
namespace {

uint32_t Code(FrontendRequest request) { return static_cast<uint32_t>(request); }

Message Request(FrontendRequest request) { return MakeRequest(Code(request)); }

absl::StatusOr<UniqueFd> ConnectOnce(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path of ", path.size(), " bytes is too long: ", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return absl::ErrnoToStatus(errno, "socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("connect to ", path));
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Frontend>> Frontend::Connect(const std::string& socket_path,
                                                            const FrontendOptions& options) {
  const absl::Time deadline = absl::Now() + options.connect_timeout;
  for (;;) {
    absl::StatusOr<UniqueFd> fd = ConnectOnce(socket_path);
    if (fd.ok()) {
      RETURN_IF_ERROR(
          SetReceiveTimeout(fd->get(), absl::ToInt64Milliseconds(options.reply_timeout)));
      return std::make_unique<Frontend>(std::move(*fd));
    }
    const bool retry = absl::IsNotFound(fd.status()) || absl::IsUnavailable(fd.status());
    if (!retry || absl::Now() >= deadline) return fd.status();
    // Fine-grained: a restarted daemon listens within milliseconds, and the crash-restart
    // benchmark times how soon it serves again.
    absl::SleepFor(absl::Microseconds(200));
  }
}

Frontend::Frontend(UniqueFd socket) : channel_(std::move(socket)) {}

absl::Status Frontend::Handshake(uint64_t wanted_protocol_features) {
  ASSIGN_OR_RETURN(offered_features_, GetFeatures());
  if (offered_features_ & Bit(kFeatureProtocolFeatures)) {
    ASSIGN_OR_RETURN(offered_protocol_features_, GetProtocolFeatures());
    RETURN_IF_ERROR(SetProtocolFeatures(offered_protocol_features_ & wanted_protocol_features));
    if (has_protocol_feature(kProtocolMq)) {
      ASSIGN_OR_RETURN(queue_num_, GetQueueNum());
    }
    if (has_protocol_feature(kProtocolConfigureMemSlots)) {
      ASSIGN_OR_RETURN(max_mem_slots_, GetMaxMemSlots());
    }
    if (has_protocol_feature(kProtocolBackendReq)) RETURN_IF_ERROR(SetBackendReqFd());
  }
  return SetOwner();
}

absl::StatusOr<uint64_t> Frontend::NegotiateFeatures(uint64_t wanted) {
  const uint64_t acked = offered_features_ & (wanted | Bit(kFeatureProtocolFeatures));
  RETURN_IF_ERROR(SetFeatures(acked));
  return acked;
}

bool Frontend::reply_ack() const {
  if (use_reply_ack_override_ >= 0) return use_reply_ack_override_ == 1;
  return has_protocol_feature(kProtocolReplyAck);
}

absl::Status Frontend::Send(Message request) {
  if (!reply_ack()) return channel_.Send(request);
  request.header.flags |= kFlagNeedReply;
  ASSIGN_OR_RETURN(Message reply, channel_.Call(request));
  ASSIGN_OR_RETURN(const uint64_t ack, reply.Read<uint64_t>());
  if (ack != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("back end refused ", RequestName(request.request()), " (ack ", ack, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Message> Frontend::Call(const Message& request) { return channel_.Call(request); }

absl::StatusOr<uint64_t> Frontend::CallU64(FrontendRequest request) {
  ASSIGN_OR_RETURN(Message reply, Call(Request(request)));
  if (reply.payload.size() != sizeof(uint64_t)) {
    return absl::InvalidArgumentError(absl::StrCat("reply to ", RequestName(request), " has ",
                                                   reply.payload.size(), " bytes, expected 8"));
  }
  return reply.Read<uint64_t>();
}

absl::Status Frontend::SendU64(FrontendRequest request, uint64_t value) {
  Message m = Request(request);
  m.Append(value);
  return Send(std::move(m));
}

absl::Status Frontend::SendState(FrontendRequest request, uint32_t index, uint32_t num) {
  Message m = Request(request);
  m.Append(VringState{index, num});
  return Send(std::move(m));
}

absl::StatusOr<uint64_t> Frontend::GetFeatures() { return CallU64(FrontendRequest::kGetFeatures); }

absl::Status Frontend::SetFeatures(uint64_t features) {
  RETURN_IF_ERROR(SendU64(FrontendRequest::kSetFeatures, features));
  acked_features_ = features;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Frontend::GetProtocolFeatures() {
  return CallU64(FrontendRequest::kGetProtocolFeatures);
}

absl::Status Frontend::SetProtocolFeatures(uint64_t features) {
  // No acknowledgement: REPLY_ACK only counts once this request has been processed.
  RETURN_IF_ERROR(channel_.Send([&] {
    Message m = Request(FrontendRequest::kSetProtocolFeatures);
    m.Append(features);
    return m;
  }()));
  protocol_features_ = features;
  return absl::OkStatus();
}

absl::Status Frontend::SetOwner() { return Send(Request(FrontendRequest::kSetOwner)); }

absl::Status Frontend::ResetOwner() { return Send(Request(FrontendRequest::kResetOwner)); }

absl::StatusOr<uint32_t> Frontend::GetQueueNum() {
  ASSIGN_OR_RETURN(const uint64_t n, CallU64(FrontendRequest::kGetQueueNum));
  return static_cast<uint32_t>(n);
}

absl::StatusOr<uint64_t> Frontend::GetMaxMemSlots() {
  return CallU64(FrontendRequest::kGetMaxMemSlots);
}

absl::StatusOr<std::vector<uint8_t>> Frontend::GetConfig(uint32_t offset, uint32_t size,
                                                         uint32_t flags) {
  Message m = Request(FrontendRequest::kGetConfig);
  m.Append(ConfigHeader{offset, size, flags});
  m.AppendBytes(std::vector<uint8_t>(size, 0));
  ASSIGN_OR_RETURN(Message reply, Call(m));
  if (reply.payload.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("back end refused GET_CONFIG of ", size, " bytes at offset ", offset));
  }
  ASSIGN_OR_RETURN(const ConfigHeader header, reply.Read<ConfigHeader>());
  if (header.size != size || reply.payload.size() != sizeof(ConfigHeader) + size) {
    return absl::InvalidArgumentError(absl::StrCat("GET_CONFIG reply of ", reply.payload.size(),
                                                   " bytes announcing ", header.size));
  }
  return std::vector<uint8_t>(reply.payload.begin() + sizeof(ConfigHeader), reply.payload.end());
}

absl::Status Frontend::SetConfig(uint32_t offset, absl::Span<const uint8_t> data, uint32_t flags) {
  Message m = Request(FrontendRequest::kSetConfig);
  m.Append(ConfigHeader{offset, static_cast<uint32_t>(data.size()), flags});
  m.AppendBytes(data);
  return Send(std::move(m));
}

absl::Status Frontend::SetStatus(uint8_t status) {
  return SendU64(FrontendRequest::kSetStatus, status);
}

absl::StatusOr<uint8_t> Frontend::GetStatus() {
  ASSIGN_OR_RETURN(const uint64_t status, CallU64(FrontendRequest::kGetStatus));
  return static_cast<uint8_t>(status);
}

absl::Status Frontend::ResetDevice() { return Send(Request(FrontendRequest::kResetDevice)); }

absl::Status Frontend::SetBackendReqFd() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return absl::ErrnoToStatus(errno, "socketpair");
  }
  UniqueFd ours(fds[0]);
  Message m = Request(FrontendRequest::kSetBackendReqFd);
  m.fds.emplace_back(fds[1]);
  RETURN_IF_ERROR(Send(std::move(m)));
  backend_channel_ = std::make_unique<BackendChannel>(std::move(ours));
  return absl::OkStatus();
}

absl::StatusOr<Frontend::InflightRegion> Frontend::GetInflightFd(uint16_t num_queues,
                                                                 uint16_t queue_size) {
  Message m = Request(FrontendRequest::kGetInflightFd);
  m.Append(InflightDescription{0, 0, num_queues, queue_size, 0});
  ASSIGN_OR_RETURN(Message reply, Call(m));
  InflightRegion region;
  ASSIGN_OR_RETURN(region.description, reply.Read<InflightDescription>());
  if (reply.fds.size() != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("GET_INFLIGHT_FD reply carries ", reply.fds.size(), " fds"));
  }
  region.fd = std::move(reply.fds[0]);
  return region;
}

absl::Status Frontend::SetInflightFd(const InflightDescription& description, int fd) {
  Message m = Request(FrontendRequest::kSetInflightFd);
  m.Append(description);
  m.fds.emplace_back(dup(fd));
  if (!m.fds.back()) return absl::ErrnoToStatus(errno, "dup(inflight fd)");
  return Send(std::move(m));
}

absl::StatusOr<Frontend::DeviceStateReply> Frontend::SetDeviceStateFd(uint32_t direction, int fd) {
  Message m = Request(FrontendRequest::kSetDeviceStateFd);
  m.Append(DeviceStateTransfer{direction, kTransferPhaseStopped});
  m.fds.emplace_back(dup(fd));
  if (!m.fds.back()) return absl::ErrnoToStatus(errno, "dup(device state fd)");
  ASSIGN_OR_RETURN(Message reply, Call(m));
  DeviceStateReply result;
  ASSIGN_OR_RETURN(result.value, reply.Read<uint64_t>());
  if (!reply.fds.empty()) result.fd = std::move(reply.fds[0]);
  return result;
}

absl::StatusOr<uint64_t> Frontend::CheckDeviceState() {
  return CallU64(FrontendRequest::kCheckDeviceState);
}

absl::Status Frontend::SetLogBase(int fd, uint64_t size, uint64_t offset) {
  Message m = Request(FrontendRequest::kSetLogBase);
  m.Append(LogDescription{size, offset});
  m.fds.emplace_back(dup(fd));
  if (!m.fds.back()) return absl::ErrnoToStatus(errno, "dup(log fd)");
  ASSIGN_OR_RETURN(Message reply, Call(m));
  if (reply.request() != FrontendRequest::kSetLogBase) {
    return absl::InvalidArgumentError(
        absl::StrCat("SET_LOG_BASE answered with ", RequestName(reply.request())));
  }
  return absl::OkStatus();
}

absl::Status Frontend::SetMemTable(const GuestRam& ram) {
  std::vector<size_t> all(ram.num_regions());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return SetMemTable(ram, all);
}

absl::Status Frontend::SetMemTable(const GuestRam& ram, absl::Span<const size_t> regions) {
  Message m = Request(FrontendRequest::kSetMemTable);
  m.Append(MemoryTableHeader{static_cast<uint32_t>(regions.size()), 0});
  for (size_t i : regions) {
    if (i >= ram.num_regions()) return absl::InvalidArgumentError("no such region");
    m.Append(ram.WireRegion(i));
    const int fd = fcntl(ram.region(i).fd.get(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return absl::ErrnoToStatus(errno, "dup");
    m.fds.emplace_back(fd);
  }
  return Send(std::move(m));
}

absl::Status Frontend::SendMemReg(FrontendRequest request, const GuestRam& ram, size_t region,
                                  bool with_fd) {
  if (region >= ram.num_regions()) return absl::InvalidArgumentError("no such region");
  Message m = Request(request);
  m.Append(SingleMemoryRegion{0, ram.WireRegion(region)});
  if (with_fd) {
    const int fd = fcntl(ram.region(region).fd.get(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return absl::ErrnoToStatus(errno, "dup");
    m.fds.emplace_back(fd);
  }
  return Send(std::move(m));
}

absl::Status Frontend::AddMemReg(const GuestRam& ram, size_t region) {
  return SendMemReg(FrontendRequest::kAddMemReg, ram, region, /*with_fd=*/true);
}

absl::Status Frontend::RemMemReg(const GuestRam& ram, size_t region) {
  return SendMemReg(FrontendRequest::kRemMemReg, ram, region, /*with_fd=*/false);
}

absl::Status Frontend::SetVringNum(uint32_t index, uint32_t num) {
  return SendState(FrontendRequest::kSetVringNum, index, num);
}

absl::Status Frontend::SetVringBase(uint32_t index, uint32_t base) {
  return SendState(FrontendRequest::kSetVringBase, index, base);
}

absl::StatusOr<uint32_t> Frontend::GetVringBase(uint32_t index) {
  Message m = Request(FrontendRequest::kGetVringBase);
  m.Append(VringState{index, 0});
  ASSIGN_OR_RETURN(Message reply, Call(m));
  ASSIGN_OR_RETURN(const VringState state, reply.Read<VringState>());
  if (state.index != index) {
    return absl::InvalidArgumentError(
        absl::StrCat("GET_VRING_BASE reply for ring ", state.index, ", asked ", index));
  }
  return state.num;
}

absl::Status Frontend::SetVringAddr(const VringAddr& addr) {
  Message m = Request(FrontendRequest::kSetVringAddr);
  m.Append(addr);
  return Send(std::move(m));
}

absl::Status Frontend::SendVringFd(FrontendRequest request, uint32_t index, int fd) {
  Message m = Request(request);
  m.Append(uint64_t{index} | (fd < 0 ? kVringNoFdFlag : 0));
  if (fd >= 0) {
    const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return absl::ErrnoToStatus(errno, "dup");
    m.fds.emplace_back(copy);
  }
  return Send(std::move(m));
}

absl::Status Frontend::SetVringKick(uint32_t index, int fd) {
  return SendVringFd(FrontendRequest::kSetVringKick, index, fd);
}

absl::Status Frontend::SetVringCall(uint32_t index, int fd) {
  return SendVringFd(FrontendRequest::kSetVringCall, index, fd);
}

absl::Status Frontend::SetVringErr(uint32_t index, int fd) {
  return SendVringFd(FrontendRequest::kSetVringErr, index, fd);
}

absl::Status Frontend::SetVringEnable(uint32_t index, bool enable) {
  return SendState(FrontendRequest::kSetVringEnable, index, enable ? 1 : 0);
}

absl::Status Frontend::SendRawBytes(absl::Span<const uint8_t> bytes, absl::Span<const int> fds) {
  return frontend::SendRawBytes(socket_fd(), bytes, fds);
}

absl::Status Frontend::SendRawMessage(uint32_t request, uint32_t flags, uint32_t size_field,
                                      absl::Span<const uint8_t> payload,
                                      absl::Span<const int> fds) {
  return frontend::SendRawMessage(socket_fd(), request, flags, size_field, payload, fds);
}

absl::StatusOr<Message> Frontend::Receive(absl::Duration timeout) {
  return ReceiveMessage(socket_fd(), timeout);
}

bool Frontend::WaitForClose(absl::Duration timeout) {
  return WaitForPeerClose(socket_fd(), timeout);
}

void Frontend::Close() { channel_ = Channel(UniqueFd()); }

}  // namespace frontend
}  // namespace vhost
