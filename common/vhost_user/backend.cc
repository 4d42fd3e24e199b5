#include "common/vhost_user/backend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"

namespace vhost {
namespace {

// Ring features the engine implements for every device.
constexpr uint64_t kEngineFeatures = Bit(kFeatureVersion1) | Bit(kFeatureIndirectDesc) |
                                     Bit(kFeatureEventIdx) | Bit(kFeatureRingPacked) |
                                     Bit(kFeatureNotifyOnEmpty) | Bit(kFeatureProtocolFeatures);

// A peer that stops in the middle of a message is dropped after this long.
constexpr int kMessageTimeoutMs = 5000;

// Requests whose reply is part of the protocol; any other request with NEED_REPLY gets a u64
// acknowledgement when REPLY_ACK was negotiated.
bool HasOwnReply(FrontendRequest request) {
  switch (request) {
    case FrontendRequest::kGetFeatures:
    case FrontendRequest::kGetProtocolFeatures:
    case FrontendRequest::kGetVringBase:
    case FrontendRequest::kGetQueueNum:
    case FrontendRequest::kGetConfig:
    case FrontendRequest::kGetMaxMemSlots:
    case FrontendRequest::kGetStatus:
    case FrontendRequest::kGetInflightFd:
    case FrontendRequest::kSetDeviceStateFd:
    case FrontendRequest::kCheckDeviceState:
    case FrontendRequest::kSetLogBase:
      return true;
    default:
      return false;
  }
}

// The payload of GET/SET_INFLIGHT_FD: 20 bytes of fields, usually sent padded to 24.
InflightDescription ReadInflightDescription(const Message& m) {
  InflightDescription description{};
  std::memcpy(&description, m.payload.data(), std::min(m.payload.size(), sizeof(description)));
  return description;
}

// The queues an inflight region of GET_ or SET_INFLIGHT_FD describes, against what the device
// has (a ring is never larger than max_queue_size).
absl::Status CheckInflightShape(const InflightDescription& d, const DeviceInfo& info,
                                absl::string_view request) {
  if (d.num_queues == 0 || d.num_queues > info.num_queues || d.queue_size == 0 ||
      d.queue_size > info.max_queue_size) {
    return absl::InvalidArgumentError(absl::StrCat(request, " for ", d.num_queues, " queues of ",
                                                   d.queue_size, " (at most ", info.num_queues,
                                                   " of ", info.max_queue_size, ")"));
  }
  return absl::OkStatus();
}

Message U64Reply(const Message& request, uint64_t value) {
  Message reply = MakeReply(request);
  reply.Append(value);
  return reply;
}

}  // namespace

Backend::Backend(VirtioDevice* device, BackendOptions options)
    : device_(device), info_(device->Info()), options_(options), memory_(GuestMemory::Empty()) {
  vrings_.resize(info_.num_queues);
  queue_stats_ = std::make_unique<QueueStats[]>(info_.num_queues);
  device_->set_config_change_notifier([this] { return NotifyConfigChange(); });
}

Backend::~Backend() { Reset(); }

uint64_t Backend::OfferedFeatures() const {
  uint64_t features = info_.features | kEngineFeatures;
  if (!options_.offer_packed_ring) features &= ~Bit(kFeatureRingPacked);
  if (info_.logs_dirty_pages) features |= Bit(kFeatureLogAll);
  return features;
}

uint64_t Backend::OfferedProtocolFeatures() const {
  uint64_t features = Bit(kProtocolMq) | Bit(kProtocolReplyAck) | Bit(kProtocolBackendReq) |
                      Bit(kProtocolResetDevice) | Bit(kProtocolConfigureMemSlots) |
                      Bit(kProtocolStatus);
  if (info_.config_size > 0) features |= Bit(kProtocolConfig);
  if (info_.resubmit_queues != 0) features |= Bit(kProtocolInflightShmfd);
  if (info_.migrates_state) features |= Bit(kProtocolDeviceState);
  if (info_.logs_dirty_pages) features |= Bit(kProtocolLogShmfd);
  return features;
}

absl::Status Backend::Serve(UniqueFd connection, int wake_fd,
                            const std::function<bool()>& on_wake) {
  RETURN_IF_ERROR(SetReceiveTimeout(connection.get(), kMessageTimeoutMs));
  connections_.Add(1);
  Channel channel(std::move(connection));
  absl::Status result;
  for (;;) {
    pollfd fds[2] = {{channel.fd(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (poll(fds, wake_fd >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      result = absl::ErrnoToStatus(errno, "poll");
      break;
    }
    if (wake_fd >= 0 && (fds[1].revents & POLLIN) && on_wake()) {
      result = absl::CancelledError("stopped");
      break;
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    absl::StatusOr<Message> message = channel.Receive();
    if (!message.ok()) {
      if (!absl::IsUnavailable(message.status())) result = message.status();
      break;
    }
    absl::Status valid = ValidateFrontendMessage(*message);
    absl::StatusOr<absl::optional<Message>> reply =
        valid.ok() ? Handle(*message) : absl::StatusOr<absl::optional<Message>>(valid);
    const bool ack = has_protocol(kProtocolReplyAck) && message->need_reply() &&
                     !HasOwnReply(message->request());
    if (!reply.ok()) {
      LOG(WARNING) << RequestName(message->request()) << " failed: " << reply.status().message();
      if (!ack) {
        // The front end has no way to learn of the failure: drop the connection rather than go
        // on in a state it does not expect.
        result = reply.status();
        break;
      }
      absl::Status sent = channel.Send(U64Reply(*message, 1));
      if (!sent.ok()) {
        result = sent;
        break;
      }
      continue;
    }
    absl::Status sent = absl::OkStatus();
    if (reply->has_value()) {
      sent = channel.Send(**reply);
    } else if (ack) {
      sent = channel.Send(U64Reply(*message, 0));
    }
    if (!sent.ok()) {
      result = sent;
      break;
    }
  }
  Reset();
  return result;
}

absl::StatusOr<Backend::Vring*> Backend::VringAt(uint32_t index) {
  if (index >= vrings_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue index ", index, " out of range (device has ", vrings_.size(), ")"));
  }
  return &vrings_[index];
}

absl::StatusOr<absl::optional<Message>> Backend::Handle(Message& m) {
  switch (m.request()) {
    case FrontendRequest::kGetFeatures:
      return U64Reply(m, OfferedFeatures());
    case FrontendRequest::kSetFeatures:
      RETURN_IF_ERROR(SetFeatures(*m.Read<uint64_t>()));
      return absl::nullopt;
    case FrontendRequest::kGetProtocolFeatures:
      return U64Reply(m, OfferedProtocolFeatures());
    case FrontendRequest::kSetProtocolFeatures: {
      const uint64_t features = *m.Read<uint64_t>();
      if (features & ~OfferedProtocolFeatures()) {
        return absl::InvalidArgumentError(absl::StrCat("protocol features 0x", absl::Hex(features),
                                                       " include some never offered"));
      }
      acked_protocol_ = features;
      return absl::nullopt;
    }
    case FrontendRequest::kSetOwner:  // one front end per connection: nothing to record
      return absl::nullopt;
    case FrontendRequest::kResetOwner:  // deprecated; treated as a device reset
    case FrontendRequest::kResetDevice:
      ResetDevice();
      return absl::nullopt;
    case FrontendRequest::kGetQueueNum:
      return U64Reply(m, info_.num_queues);
    case FrontendRequest::kGetMaxMemSlots:
      return U64Reply(m, kMaxMemSlots);
    case FrontendRequest::kSetMemTable:
      RETURN_IF_ERROR(SetMemTable(m));
      return absl::nullopt;
    case FrontendRequest::kAddMemReg:
      RETURN_IF_ERROR(AddMemReg(m));
      return absl::nullopt;
    case FrontendRequest::kRemMemReg:
      RETURN_IF_ERROR(RemMemReg(m));
      return absl::nullopt;
    case FrontendRequest::kSetVringNum:
      RETURN_IF_ERROR(SetVringNum(*m.Read<VringState>()));
      return absl::nullopt;
    case FrontendRequest::kSetVringAddr:
      RETURN_IF_ERROR(SetVringAddr(*m.Read<VringAddr>()));
      return absl::nullopt;
    case FrontendRequest::kSetVringBase:
      RETURN_IF_ERROR(SetVringBase(*m.Read<VringState>()));
      return absl::nullopt;
    case FrontendRequest::kGetVringBase: {
      const VringState state = *m.Read<VringState>();
      ASSIGN_OR_RETURN(const uint32_t base, GetVringBase(state.index));
      Message reply = MakeReply(m);
      reply.Append(VringState{state.index, base});
      return reply;
    }
    case FrontendRequest::kSetVringKick:
    case FrontendRequest::kSetVringCall:
    case FrontendRequest::kSetVringErr:
      RETURN_IF_ERROR(SetVringFd(m.request(), *m.Read<uint64_t>(), m));
      return absl::nullopt;
    case FrontendRequest::kSetVringEnable:
      RETURN_IF_ERROR(SetVringEnable(*m.Read<VringState>()));
      return absl::nullopt;
    case FrontendRequest::kGetInflightFd:
      return GetInflightFd(m);
    case FrontendRequest::kSetLogBase:
      return SetLogBase(m);
    case FrontendRequest::kSetLogFd:
      // An eventfd to signal after logging; the shared bitmap needs none (QEMU sends none).
      if (!has_protocol(kProtocolLogShmfd)) {
        return absl::FailedPreconditionError("SET_LOG_FD without LOG_SHMFD");
      }
      return absl::nullopt;
    case FrontendRequest::kSetInflightFd:
      RETURN_IF_ERROR(SetInflightFd(m));
      return absl::nullopt;
    case FrontendRequest::kSetDeviceStateFd:
      return SetDeviceStateFd(m);
    case FrontendRequest::kCheckDeviceState:
      return U64Reply(m, CheckDeviceState());
    case FrontendRequest::kGetConfig: {
      absl::StatusOr<Message> reply = GetConfig(m);
      if (reply.ok()) return *std::move(reply);
      // The spec's error reply for GET_CONFIG is an empty payload.
      LOG(WARNING) << "GetConfig failed: " << reply.status().message();
      return MakeReply(m);
    }
    case FrontendRequest::kSetConfig:
      RETURN_IF_ERROR(SetConfig(m));
      return absl::nullopt;
    case FrontendRequest::kSetBackendReqFd: {
      absl::MutexLock lock(&backend_channel_mutex_);
      backend_channel_ = std::make_unique<Channel>(std::move(m.fds[0]));
      (void)SetReceiveTimeout(backend_channel_->fd(), kMessageTimeoutMs);
      return absl::nullopt;
    }
    case FrontendRequest::kGpuSetSocket:
      RETURN_IF_ERROR(device_->SetDisplaySocket(std::move(m.fds[0])));
      return absl::nullopt;
    case FrontendRequest::kSetStatus: {
      const uint64_t status = *m.Read<uint64_t>();
      if (status > 0xff) return absl::InvalidArgumentError("device status above 0xff");
      status_ = status;
      return absl::nullopt;
    }
    case FrontendRequest::kGetStatus: {
      uint8_t status = status_;
      for (const Vring& vring : vrings_) {
        if (vring.queue && vring.queue->broken()) status |= kStatusNeedsReset;
      }
      return U64Reply(m, status);
    }
    default:
      return absl::UnimplementedError(
          absl::StrCat("unsupported request ", RequestName(m.request())));
  }
}

absl::Status Backend::SetFeatures(uint64_t features) {
  // QEMU's vhost-user-gpu-pci acks RING_RESET, which its own virtio transport offers to the
  // guest, whatever the back end offered (its list of bits to take from the back end lacks it).
  // The reset of one queue is the front end's to handle, and none reaches the back end: drop
  // the bit rather than refuse the front end.
  if ((features & Bit(kFeatureRingReset)) && !(OfferedFeatures() & Bit(kFeatureRingReset))) {
    LOG_FIRST_N(INFO, 1) << "front end acked RING_RESET, never offered: ignored";
    features &= ~Bit(kFeatureRingReset);
  }
  if (features & ~OfferedFeatures()) {
    return absl::InvalidArgumentError(absl::StrCat("features 0x", absl::Hex(features),
                                                   " include some never offered (0x",
                                                   absl::Hex(OfferedFeatures()), ")"));
  }
  // Migration turns logging on and off while the queues run: the log bit alone may change then,
  // and it is the engine's, not the device's.
  const bool log_toggled = (features ^ acked_features_) == Bit(kFeatureLogAll);
  if (!log_toggled) {
    for (const Vring& vring : vrings_) {
      if (vring.worker && features != acked_features_) {
        return absl::FailedPreconditionError("features changed while a queue runs");
      }
    }
    RETURN_IF_ERROR(device_->SetFeatures(features & ~Bit(kFeatureLogAll)));
  }
  const bool log_changed = (features ^ acked_features_) & Bit(kFeatureLogAll);
  acked_features_ = features;
  if (log_changed) {
    LOG(INFO) << "dirty-page logging " << (features & Bit(kFeatureLogAll) ? "on" : "off");
    for (uint32_t i = 0; i < vrings_.size(); ++i) ApplyDirtyLog(i);
  }
  LOG(INFO) << "features 0x" << std::hex << features
            << (features & Bit(kFeatureRingPacked) ? " (packed rings)" : "")
            << (features & Bit(kFeatureEventIdx) ? " (event idx)" : "");
  // Without VHOST_USER_F_PROTOCOL_FEATURES rings are enabled from the start (vhost-user.rst).
  if (!(features & Bit(kFeatureProtocolFeatures))) {
    for (uint32_t i = 0; i < vrings_.size(); ++i) {
      vrings_[i].enabled = true;
      RETURN_IF_ERROR(MaybeStartQueue(i));
    }
  }
  return absl::OkStatus();
}

absl::Status Backend::ReplaceMemory(std::shared_ptr<const GuestMemory> memory) {
  // Tables are swapped whole while no queue runs; running queues are re-pointed and resumed.
  // Devices hand back chains they hold first: those point into mappings about to go away.
  for (uint32_t i = 0; i < vrings_.size(); ++i) StopServing(i);
  memory_ = std::move(memory);
  // A line per table (a hot-added DIMM, a NUMA layout) says what the daemon now maps; the
  // first 64 only, so a front end sending tables in a loop cannot flood the log.
  uint64_t total = 0;
  std::string ranges;
  for (const GuestRegion& region : memory_->regions()) {
    total += region.size;
    if (ranges.size() < 200) {
      absl::StrAppend(&ranges, ranges.empty() ? "" : ", ", "0x", absl::Hex(region.guest_phys_addr),
                      "+", region.size >> 20, "M");
    }
  }
  LOG_FIRST_N(INFO, 64) << "guest memory: " << memory_->regions().size() << " regions, "
                        << (total >> 20) << " MiB (" << ranges << ")";
  for (Vring& vring : vrings_) {
    if (!vring.queue) continue;
    // A ring the new table no longer covers: the queue keeps its old rings and table whole (so
    // nothing dangles) and breaks; GET_STATUS then reports NEEDS_RESET.
    absl::Status status = vring.queue->UpdateMemory(memory_);
    if (!status.ok()) vring.queue->MarkBroken(status);
  }
  StartAllEligible();
  return absl::OkStatus();
}

absl::Status Backend::SetMemTable(Message& m) {
  const uint32_t count = m.Read<MemoryTableHeader>()->num_regions;
  std::vector<GuestRegion> regions;
  for (uint32_t i = 0; i < count; ++i) {
    const MemoryRegion region =
        *m.Read<MemoryRegion>(sizeof(MemoryTableHeader) + i * sizeof(MemoryRegion));
    ASSIGN_OR_RETURN(GuestRegion mapped, MapGuestRegion(region, m.fds[i].get()));
    regions.push_back(std::move(mapped));
  }
  ASSIGN_OR_RETURN(auto memory, GuestMemory::Create(std::move(regions)));
  return ReplaceMemory(std::move(memory));
}

absl::Status Backend::AddMemReg(Message& m) {
  if (!has_protocol(kProtocolConfigureMemSlots)) {
    return absl::FailedPreconditionError("ADD_MEM_REG without CONFIGURE_MEM_SLOTS");
  }
  if (memory_->regions().size() >= kMaxMemSlots) {
    return absl::ResourceExhaustedError("all memory slots are in use");
  }
  const MemoryRegion region = m.Read<SingleMemoryRegion>()->region;
  ASSIGN_OR_RETURN(GuestRegion mapped, MapGuestRegion(region, m.fds[0].get()));
  ASSIGN_OR_RETURN(auto memory, memory_->WithRegion(std::move(mapped)));
  return ReplaceMemory(std::move(memory));
}

absl::Status Backend::RemMemReg(const Message& m) {
  if (!has_protocol(kProtocolConfigureMemSlots)) {
    return absl::FailedPreconditionError("REM_MEM_REG without CONFIGURE_MEM_SLOTS");
  }
  ASSIGN_OR_RETURN(auto memory, memory_->WithoutRegion(m.Read<SingleMemoryRegion>()->region));
  return ReplaceMemory(std::move(memory));
}

absl::Status Backend::SetVringNum(const VringState& state) {
  ASSIGN_OR_RETURN(Vring * vring, VringAt(state.index));
  if (vring->started) return absl::FailedPreconditionError("SET_VRING_NUM on a started queue");
  const bool packed = acked_features_ & Bit(kFeatureRingPacked);
  if (state.num == 0 || state.num > info_.max_queue_size ||
      (!packed && (state.num & (state.num - 1)) != 0)) {
    return absl::InvalidArgumentError(absl::StrCat("queue ", state.index, ": size ", state.num,
                                                   " is not ", packed ? "" : "a power of two ",
                                                   "in 1..", info_.max_queue_size));
  }
  vring->layout.size = state.num;
  return absl::OkStatus();
}

absl::Status Backend::SetVringAddr(const VringAddr& addr) {
  ASSIGN_OR_RETURN(Vring * vring, VringAt(addr.index));
  const bool log_ring = addr.flags & kVringFlagLog;
  if (vring->started) {
    // Migration starts and stops logging a running ring's used writes: only the log flag and
    // address may change then.
    if (addr.desc_user_addr != vring->layout.desc_addr ||
        addr.avail_user_addr != vring->layout.avail_addr ||
        addr.used_user_addr != vring->layout.used_addr) {
      return absl::FailedPreconditionError("SET_VRING_ADDR moves a started queue");
    }
    vring->log_ring = log_ring;
    vring->log_guest_addr = addr.log_guest_addr;
    ApplyDirtyLog(addr.index);
    return absl::OkStatus();
  }
  VringLayout layout = vring->layout;
  layout.desc_addr = addr.desc_user_addr;
  layout.avail_addr = addr.avail_user_addr;
  layout.used_addr = addr.used_user_addr;
  // Catch rings outside guest memory now, while the front end can still be told.
  if (layout.size != 0 && !memory_->regions().empty()) {
    RETURN_IF_ERROR(Virtqueue::Create(addr.index, layout, acked_features_, memory_).status());
  }
  vring->layout = layout;
  vring->addr_set = true;
  vring->log_ring = log_ring;
  vring->log_guest_addr = addr.log_guest_addr;
  return absl::OkStatus();
}

void Backend::ApplyDirtyLog(uint32_t index) {
  Vring& vring = vrings_[index];
  if (!vring.queue) return;  // a queue made later gets it in MaybeStartQueue
  const DirtyLog* log = (acked_features_ & Bit(kFeatureLogAll)) ? log_.get() : nullptr;
  // Pushes happen on the serving thread only (completions from other threads are posted to
  // it): with the worker stopped, this thread serves the queue.
  const bool was_running = vring.worker != nullptr;
  StopWorker(index);
  vring.queue->SetDirtyLog(log, vring.log_ring, vring.log_guest_addr);
  if (!was_running) return;
  absl::Status status = MaybeStartQueue(index);
  if (!status.ok()) LOG(ERROR) << "queue " << index << " cannot restart: " << status.message();
}

absl::StatusOr<Message> Backend::SetLogBase(Message& m) {
  if (!has_protocol(kProtocolLogShmfd)) {
    return absl::FailedPreconditionError("SET_LOG_BASE without LOG_SHMFD");
  }
  const LogDescription description = *m.Read<LogDescription>();
  // The log must cover all of guest memory (the front end grows it before the memory table).
  uint64_t end = 0;
  for (const GuestRegion& r : memory_->regions()) {
    end = std::max(end, r.guest_phys_addr + r.size);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<DirtyLog> log,
                   DirtyLog::Map(m.fds[0].get(), description.mmap_size, description.mmap_offset,
                                 DirtyLog::BytesFor(end)));
  // The old log is unmapped only once every queue has moved to the new one.
  std::unique_ptr<DirtyLog> old = std::move(log_);
  log_ = std::move(log);
  for (uint32_t i = 0; i < vrings_.size(); ++i) ApplyDirtyLog(i);
  LOG(INFO) << "dirty log of " << log_->size() << " bytes";
  // QEMU waits for a reply to SET_LOG_BASE (with LOG_SHMFD) before it goes on.
  return U64Reply(m, 0);
}

absl::Status Backend::SetVringBase(const VringState& state) {
  ASSIGN_OR_RETURN(Vring * vring, VringAt(state.index));
  if (vring->started) return absl::FailedPreconditionError("SET_VRING_BASE on a started queue");
  const bool packed = acked_features_ & Bit(kFeatureRingPacked);
  // Split: a 16-bit avail index. Packed: avail and used slots with wrap counters (the ring
  // checks the slots against its size when it starts).
  if (!packed && state.num > 0xffff) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue ", state.index, ": base ", state.num, " out of range"));
  }
  vring->layout.base = state.num;
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> Backend::GetVringBase(uint32_t index) {
  ASSIGN_OR_RETURN(Vring * vring, VringAt(index));
  StopServing(index);
  uint32_t base = vring->layout.base;
  if (vring->queue) base = vring->queue->Base();
  vring->context.reset();
  vring->queue.reset();
  vring->layout.base = base;
  vring->started = false;
  vring->kick.Reset();
  return base;
}

absl::Status Backend::SetVringFd(FrontendRequest request, uint64_t value, Message& m) {
  const uint32_t index = value & kVringIndexMask;
  ASSIGN_OR_RETURN(Vring * vring, VringAt(index));
  UniqueFd fd = (value & kVringNoFdFlag) ? UniqueFd() : std::move(m.fds[0]);
  // These should be eventfds, but nothing proves it (the sandbox has no /proc to look): make
  // them non-blocking so a pipe or socket in their place can never hold the worker (a full call
  // pipe, a kick fd drained by someone else). The flag is shared with the front end's open file
  // description; QEMU creates its eventfds non-blocking anyway.
  if (fd.valid()) {
    const int flags = fcntl(fd.get(), F_GETFL);
    if (flags < 0 || fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat(RequestName(request), ": fcntl(O_NONBLOCK)"));
    }
  }
  // The worker holds the queue's fds: pause it while they change.
  const bool was_running = vring->worker != nullptr;
  StopWorker(index);
  switch (request) {
    case FrontendRequest::kSetVringKick:
      vring->kick = std::move(fd);
      vring->started = true;  // a ring starts when its kick arrives
      break;
    case FrontendRequest::kSetVringCall:
      vring->call = std::move(fd);
      // QEMU 10.0's vhost-user-scsi enables the rings before it sends the call fd the guest
      // listens on: completions of chains found waiting at the start (resubmitted after a crash,
      // or queued meanwhile) went to the notifier it set first, which it does not pass on, as
      // did those of a back end killed between a used index update and its call. One interrupt
      // now, spurious at worst, makes the guest look at its used ring.
      if (inflight_.base != nullptr && vring->call.valid()) eventfd_write(vring->call.get(), 1);
      break;
    default:
      vring->err = std::move(fd);
      break;
  }
  if (vring->queue) {
    vring->queue->set_call_fd(vring->call.get());
    vring->queue->set_err_fd(vring->err.get());
  }
  if (was_running || request == FrontendRequest::kSetVringKick) return MaybeStartQueue(index);
  return absl::OkStatus();
}

absl::Status Backend::SetVringEnable(const VringState& state) {
  ASSIGN_OR_RETURN(Vring * vring, VringAt(state.index));
  if (!(acked_features_ & Bit(kFeatureProtocolFeatures))) {
    return absl::FailedPreconditionError("SET_VRING_ENABLE without PROTOCOL_FEATURES");
  }
  if (state.num > 1) return absl::InvalidArgumentError("SET_VRING_ENABLE value is not 0 or 1");
  vring->enabled = state.num == 1;
  if (!vring->enabled) {
    StopWorker(state.index);
    return absl::OkStatus();
  }
  return MaybeStartQueue(state.index);
}

absl::Status Backend::MaybeStartQueue(uint32_t index) {
  Vring& vring = vrings_[index];
  if (vring.worker || !vring.started || !vring.enabled) return absl::OkStatus();
  if (vring.layout.size == 0 || !vring.addr_set || memory_->regions().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("queue ", index, " kicked before its size, addresses and memory were set"));
  }
  if (!vring.queue) {
    absl::StatusOr<std::unique_ptr<Virtqueue>> queue =
        Virtqueue::Create(index, vring.layout, acked_features_, memory_);
    if (!queue.ok()) return queue.status();
    vring.queue = *std::move(queue);
    vring.queue->set_stats(&queue_stats_[index]);
    queue_stats_[index].starts.Add(1);
    vring.queue->set_call_fd(vring.call.get());
    vring.queue->set_err_fd(vring.err.get());
    // Threads start with the first queue: after the sandbox, which a user namespace needs to
    // enter while the process is single-threaded.
    if (info_.pool_threads > 0 && !pool_) pool_ = std::make_unique<WorkPool>(info_.pool_threads);
    absl::StatusOr<std::unique_ptr<QueueContext>> context =
        QueueContext::Create(vring.queue.get(), pool_.get());
    if (!context.ok()) {
      vring.queue.reset();
      return context.status();
    }
    vring.context = *std::move(context);
    if (acked_features_ & Bit(kFeatureLogAll)) {
      vring.queue->SetDirtyLog(log_.get(), vring.log_ring, vring.log_guest_addr);
    }
    // Each queue's part has room for either layout; which one it holds follows the ring.
    if (inflight_.base != nullptr && index < inflight_.num_queues && info_.Resubmits(index)) {
      uint8_t* part = inflight_.base + index * InflightQueueBytes(inflight_.queue_size);
      absl::Status tracked =
          (acked_features_ & Bit(kFeatureRingPacked))
              ? vring.context->TrackInflight(
                    std::make_unique<InflightQueuePacked>(part, inflight_.queue_size))
              : vring.context->TrackInflight(
                    std::make_unique<InflightQueue>(part, inflight_.queue_size));
      if (!tracked.ok()) {
        LOG_EVERY_N(WARNING, 100) << "queue " << index << ": " << tracked.message();
        vring.queue->MarkBroken(tracked);
      }
    }
  }
  if (!vring.serving) {
    vring.serving = true;
    absl::Status started = device_->QueueStarted(*vring.context);
    if (!started.ok()) {
      LOG_EVERY_N(WARNING, 100) << "queue " << index << " cannot start: " << started.message();
      vring.queue->MarkBroken(started);
    }
  }
  if (info_.one_worker && !worker_group_) {
    worker_group_ = std::make_unique<WorkerGroup>(options_.busy_poll);
  }
  vring.worker = std::make_unique<QueueWorker>(device_, vring.context.get(), vring.kick.get(),
                                               options_.busy_poll, worker_group_.get());
  absl::Status status = vring.worker->Start();
  if (!status.ok()) vring.worker.reset();
  return status;
}

void Backend::StopWorker(uint32_t index) {
  if (vrings_[index].worker) {
    vrings_[index].worker->Stop();
    vrings_[index].worker.reset();
  }
}

void Backend::StopServing(uint32_t index) {
  Vring& vring = vrings_[index];
  StopWorker(index);
  if (!vring.serving) return;
  vring.serving = false;
  device_->QueueStopped(*vring.context);
  vring.context->FinishInFlight();
  vring.context->UnwatchAll();
}

void Backend::StartAllEligible() {
  for (uint32_t i = 0; i < vrings_.size(); ++i) {
    if (vrings_[i].started && vrings_[i].enabled) {
      absl::Status status = MaybeStartQueue(i);
      if (!status.ok()) LOG(ERROR) << "queue " << i << " cannot restart: " << status.message();
    }
  }
}

absl::StatusOr<Message> Backend::GetInflightFd(const Message& m) {
  if (!has_protocol(kProtocolInflightShmfd)) {
    return absl::FailedPreconditionError("GET_INFLIGHT_FD without INFLIGHT_SHMFD");
  }
  InflightDescription description = ReadInflightDescription(m);
  RETURN_IF_ERROR(CheckInflightShape(description, info_, "GET_INFLIGHT_FD"));
  const size_t size = description.num_queues * InflightQueueBytes(description.queue_size);
  // Sealed against shrinking: whoever maps it later cannot be made to fault past its end.
  UniqueFd fd(memfd_create("vhost-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return absl::ErrnoToStatus(errno, "memfd_create(inflight)");
  // fallocate rather than ftruncate: sandboxes of devices with files already allow it, and
  // ftruncate would let a compromised daemon cut its disk image short.
  if (fallocate(fd.get(), 0, 0, size) != 0)
    return absl::ErrnoToStatus(errno, "fallocate(inflight)");
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    return absl::ErrnoToStatus(errno, "seal(inflight)");
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap(inflight)");
  InitInflightRegion(static_cast<uint8_t*>(base), description.num_queues, description.queue_size);
  munmap(base, size);
  description.mmap_size = size;
  description.mmap_offset = 0;
  description.padding = 0;
  Message reply = MakeReply(m);
  reply.Append(description);
  reply.fds.push_back(std::move(fd));
  return reply;
}

absl::Status Backend::SetInflightFd(Message& m) {
  if (!has_protocol(kProtocolInflightShmfd)) {
    return absl::FailedPreconditionError("SET_INFLIGHT_FD without INFLIGHT_SHMFD");
  }
  for (const Vring& vring : vrings_) {
    if (vring.context) return absl::FailedPreconditionError("SET_INFLIGHT_FD while queues run");
  }
  const InflightDescription description = ReadInflightDescription(m);
  RETURN_IF_ERROR(CheckInflightShape(description, info_, "SET_INFLIGHT_FD"));
  if (description.mmap_size !=
          description.num_queues * InflightQueueBytes(description.queue_size) ||
      description.mmap_offset % sysconf(_SC_PAGESIZE) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SET_INFLIGHT_FD: ", description.mmap_size, " bytes at ", description.mmap_offset, " for ",
        description.num_queues, " queues of ", description.queue_size));
  }
  // The region must stay as large as mapped: a file that could shrink would fault us.
  const int seals = fcntl(m.fds[0].get(), F_GET_SEALS);
  struct stat st;
  if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(m.fds[0].get(), &st) != 0 ||
      static_cast<uint64_t>(st.st_size) < description.mmap_offset ||
      static_cast<uint64_t>(st.st_size) - description.mmap_offset < description.mmap_size) {
    return absl::InvalidArgumentError("SET_INFLIGHT_FD: not a sealed region of that size");
  }
  void* base = mmap(nullptr, description.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                    m.fds[0].get(), description.mmap_offset);
  if (base == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap(inflight)");
  UnmapInflight();
  inflight_.base = static_cast<uint8_t*>(base);
  inflight_.size = description.mmap_size;
  inflight_.num_queues = description.num_queues;
  inflight_.queue_size = description.queue_size;
  LOG(INFO) << "inflight region for " << description.num_queues << " queues of "
            << description.queue_size;
  return absl::OkStatus();
}

void Backend::UnmapInflight() {
  if (inflight_.base != nullptr) munmap(inflight_.base, inflight_.size);
  inflight_ = InflightRegion();
}

Message Backend::SetDeviceStateFd(Message& m) {
  transfer_.reset();  // an earlier one not checked is abandoned
  const DeviceStateTransfer params = *m.Read<DeviceStateTransfer>();
  absl::Status refused;
  if (!has_protocol(kProtocolDeviceState)) {
    refused = absl::FailedPreconditionError("without DEVICE_STATE");
  } else if (params.direction != kTransferSave && params.direction != kTransferLoad) {
    refused = absl::InvalidArgumentError(absl::StrCat("direction ", params.direction));
  } else if (params.phase != kTransferPhaseStopped) {
    refused = absl::InvalidArgumentError(absl::StrCat("phase ", params.phase));
  } else if (std::any_of(vrings_.begin(), vrings_.end(),
                         [](const Vring& vring) { return vring.serving; })) {
    // The only phase there is: the device and its rings stopped (nothing changes the state).
    refused = absl::FailedPreconditionError("while queues run");
  } else if (params.direction == kTransferSave) {
    // A state the device cannot give is no transfer refused: the front end reads an empty
    // stream and CHECK_DEVICE_STATE reports the failure, as the spec has it.
    absl::StatusOr<std::string> state = device_->SaveState();
    if (!state.ok()) {
      LOG_EVERY_N(WARNING, 100) << "device state not saved: " << state.status().message();
    }
    absl::StatusOr<std::unique_ptr<StateTransfer>> transfer =
        StateTransfer::Save(std::move(m.fds[0]), state.ok() ? *std::move(state) : std::string(),
                            options_.state_transfer_timeout);
    if (transfer.ok()) transfer_ = *std::move(transfer);
    refused = transfer.status();
    saved_ = state.status();
  } else {
    absl::StatusOr<std::unique_ptr<StateTransfer>> transfer = StateTransfer::Load(
        std::move(m.fds[0]), options_.max_device_state_bytes, options_.state_transfer_timeout);
    if (transfer.ok()) transfer_ = *std::move(transfer);
    refused = transfer.status();
  }
  transfer_loads_ = params.direction == kTransferLoad;
  if (!refused.ok()) {
    LOG_EVERY_N(WARNING, 100) << "SET_DEVICE_STATE_FD refused: " << refused.message();
    return U64Reply(m, kDeviceStateNoFd | 1);
  }
  return U64Reply(m, kDeviceStateNoFd);  // the front end's fd is the channel
}

uint64_t Backend::CheckDeviceState() {
  std::unique_ptr<StateTransfer> transfer = std::move(transfer_);
  absl::Status status;
  if (transfer == nullptr) {
    status = absl::FailedPreconditionError("no device state transfer to check");
  } else {
    absl::StatusOr<std::string> data = transfer->Finish();
    if (!data.ok()) {
      status = data.status();
    } else if (!transfer_loads_ && !saved_.ok()) {
      status = saved_;
    } else if (transfer_loads_ && std::any_of(vrings_.begin(), vrings_.end(),
                                              [](const Vring& vring) { return vring.serving; })) {
      status = absl::FailedPreconditionError("queues started before the state was checked");
    } else if (transfer_loads_) {
      status = device_->LoadState(*data);
      if (status.ok()) LOG(INFO) << "device state loaded (" << data->size() << " bytes)";
    }
  }
  if (!status.ok()) {
    LOG_EVERY_N(WARNING, 100) << "device state " << (transfer_loads_ ? "load" : "save")
                              << " failed: " << status.message();
    return 1;
  }
  return 0;
}

absl::StatusOr<Message> Backend::GetConfig(const Message& m) {
  const ConfigHeader header = *m.Read<ConfigHeader>();
  if (info_.config_size == 0) return absl::UnimplementedError("device has no config space");
  if (header.offset > info_.config_size || header.size > info_.config_size - header.offset) {
    return absl::OutOfRangeError(absl::StrCat("config read of ", header.size, " bytes at ",
                                              header.offset, " beyond ", info_.config_size));
  }
  Message reply = MakeReply(m);
  reply.Append(header);
  // Nothing to read: the device never sees an empty (null) buffer.
  if (header.size == 0) return reply;
  std::vector<uint8_t> data(header.size);
  RETURN_IF_ERROR(device_->ReadConfig(header.offset, absl::MakeSpan(data)));
  reply.AppendBytes(data);
  return reply;
}

absl::Status Backend::SetConfig(const Message& m) {
  const ConfigHeader header = *m.Read<ConfigHeader>();
  if (info_.config_size == 0) return absl::UnimplementedError("device has no config space");
  if (header.offset > info_.config_size || header.size > info_.config_size - header.offset) {
    return absl::OutOfRangeError(absl::StrCat("config write of ", header.size, " bytes at ",
                                              header.offset, " beyond ", info_.config_size));
  }
  if (header.size == 0) return absl::OkStatus();  // nothing to write; the device never sees it
  return device_->WriteConfig(
      header.offset, absl::MakeConstSpan(m.payload).subspan(sizeof(ConfigHeader), header.size));
}

absl::Status Backend::NotifyConfigChange() {
  absl::MutexLock lock(&backend_channel_mutex_);
  if (!backend_channel_ || !has_protocol(kProtocolBackendReq) || !has_protocol(kProtocolConfig)) {
    return absl::FailedPreconditionError("no back-end channel to report a config change");
  }
  const bool want_ack = has_protocol(kProtocolReplyAck);
  Message request = MakeRequest(static_cast<uint32_t>(BackendRequest::kConfigChangeMsg),
                                want_ack ? kFlagNeedReply : 0);
  if (!want_ack) return backend_channel_->Send(request);
  ASSIGN_OR_RETURN(Message reply, backend_channel_->Call(request));
  absl::StatusOr<uint64_t> result = reply.Read<uint64_t>();
  if (!result.ok() || *result != 0) return absl::InternalError("front end refused config change");
  return absl::OkStatus();
}

void Backend::ResetDevice() {
  resets_.Add(1);
  for (uint32_t i = 0; i < vrings_.size(); ++i) {
    StopServing(i);
    vrings_[i].context.reset();  // before the queue it refers to
    vrings_[i] = Vring();
  }
  worker_group_.reset();  // its thread ends with the queues it served
  acked_features_ = 0;
  status_ = 0;
  device_->Reset();
}

std::string Backend::StatsJson() const {
  std::string json = absl::StrCat("{\"connections\":", connections_.Get(),
                                  ",\"resets\":", resets_.Get(), ",\"queues\":[");
  for (uint32_t i = 0; i < info_.num_queues; ++i) {
    const QueueStats& q = queue_stats_[i];
    absl::StrAppend(&json, i == 0 ? "" : ",", "{\"queue\":", i, ",\"starts\":", q.starts.Get(),
                    ",\"requests\":", q.requests.Get(), ",\"bytes_in\":", q.bytes_in.Get(),
                    ",\"bytes_out\":", q.bytes_out.Get(), ",\"kicks\":", q.kicks.Get(),
                    ",\"notifications\":", q.notifications.Get(),
                    ",\"suppressed\":", q.suppressed.Get(),
                    ",\"busy_poll_hits\":", q.busy_poll_hits.Get(), ",\"errors\":", q.errors.Get(),
                    ",\"in_flight\":", q.in_flight.Get(), "}");
  }
  return json + "]}";
}

void Backend::Reset() {
  transfer_.reset();
  ResetDevice();
  UnmapInflight();
  log_.reset();  // after the queues that marked it
  acked_protocol_ = 0;
  memory_ = GuestMemory::Empty();
  absl::MutexLock lock(&backend_channel_mutex_);
  backend_channel_.reset();
}

}  // namespace vhost
