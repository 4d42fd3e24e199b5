#include "tests/frontend/daemon_fixture.h"

#include <sys/mman.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace vhost {
namespace frontend {

namespace {

// Handshake and feature negotiation as DeviceConnection::Open does them.
absl::StatusOr<std::unique_ptr<Frontend>> Negotiate(const std::string& socket,
                                                    const DeviceOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Frontend> frontend, Frontend::Connect(socket));
  RETURN_IF_ERROR(frontend->Handshake(options.protocol_features |
                                      (options.inflight ? Bit(kProtocolInflightShmfd) : 0)));
  if (options.inflight && !frontend->has_protocol_feature(kProtocolInflightShmfd)) {
    return absl::FailedPreconditionError("INFLIGHT_SHMFD not offered");
  }
  ASSIGN_OR_RETURN(const uint64_t acked, frontend->NegotiateFeatures(options.features));
  if ((acked & options.required_features) != options.required_features) {
    return absl::FailedPreconditionError(
        absl::StrCat("features not acked: 0x", absl::Hex(options.required_features & ~acked)));
  }
  return frontend;
}

}  // namespace

DeviceConnection::~DeviceConnection() {
  queues_.clear();
  if (inflight_map_ != nullptr) munmap(inflight_map_, inflight_.description.mmap_size);
}

absl::StatusOr<std::unique_ptr<DeviceConnection>> DeviceConnection::Open(
    const std::string& socket, const DeviceOptions& options) {
  std::unique_ptr<DeviceConnection> c(new DeviceConnection());
  ASSIGN_OR_RETURN(c->frontend_, Negotiate(socket, options));
  const uint64_t acked = c->frontend_->acked_features();
  ASSIGN_OR_RETURN(c->ram_, GuestRam::Create(options.ram_size));
  RETURN_IF_ERROR(c->frontend_->SetMemTable(*c->ram_));
  if (options.inflight) {
    if (options.queue_sizes.empty()) return absl::InvalidArgumentError("inflight without queues");
    ASSIGN_OR_RETURN(c->inflight_,
                     c->frontend_->GetInflightFd(static_cast<uint16_t>(options.queue_sizes.size()),
                                                 static_cast<uint16_t>(options.queue_sizes[0])));
    void* map = mmap(nullptr, c->inflight_.description.mmap_size, PROT_READ | PROT_WRITE,
                     MAP_SHARED, c->inflight_.fd.get(), c->inflight_.description.mmap_offset);
    if (map == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap(inflight)");
    c->inflight_map_ = static_cast<uint8_t*>(map);
    RETURN_IF_ERROR(c->frontend_->SetInflightFd(c->inflight_.description, c->inflight_.fd.get()));
  }
  for (size_t i = 0; i < options.queue_sizes.size(); ++i) {
    QueueConfig config;
    config.index = static_cast<uint32_t>(i);
    config.size = options.queue_sizes[i];
    config.layout = (acked & Bit(kFeatureRingPacked)) ? RingLayout::kPacked : RingLayout::kSplit;
    config.event_idx = acked & Bit(kFeatureEventIdx);
    ASSIGN_OR_RETURN(auto queue, FrontendQueue::Start(c->frontend_.get(), c->ram_.get(), config));
    c->queues_.push_back(std::move(queue));
  }
  return c;
}

absl::Status DeviceConnection::Reconnect(const std::string& socket, const DeviceOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Frontend> frontend, Negotiate(socket, options));
  RETURN_IF_ERROR(frontend->SetMemTable(*ram_));
  if (inflight_.fd)
    RETURN_IF_ERROR(frontend->SetInflightFd(inflight_.description, inflight_.fd.get()));
  for (auto& queue : queues_) {
    const uint32_t base = queue->config().layout == RingLayout::kSplit ? queue->ring().UsedIdx()
                                                                       : queue->ring().VringBase();
    RETURN_IF_ERROR(queue->SendSetup(frontend.get(), base));
  }
  frontend_ = std::move(frontend);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> DeviceConnection::RestartQueue(size_t i) {
  ASSIGN_OR_RETURN(const uint32_t base, queues_[i]->Stop(frontend_.get()));
  QueueConfig config = queues_[i]->config();
  config.start_index = static_cast<uint16_t>(base);
  ASSIGN_OR_RETURN(queues_[i], FrontendQueue::Start(frontend_.get(), ram_.get(), config));
  return base;
}

absl::Status DeviceConnection::RestartQueues(const std::function<absl::Status()>& while_stopped) {
  std::vector<uint32_t> bases;
  for (auto& queue : queues_) {
    ASSIGN_OR_RETURN(const uint32_t base, queue->Stop(frontend_.get()));
    bases.push_back(base);
  }
  RETURN_IF_ERROR(while_stopped());
  for (size_t i = 0; i < queues_.size(); ++i) {
    QueueConfig config = queues_[i]->config();
    config.start_index = static_cast<uint16_t>(bases[i]);
    ASSIGN_OR_RETURN(queues_[i], FrontendQueue::Start(frontend_.get(), ram_.get(), config));
  }
  return absl::OkStatus();
}

DaemonSession::DaemonSession(std::unique_ptr<TempDir> dir)
    : dir_(std::move(dir)), socket_(dir_->File("sock")) {}

absl::StatusOr<std::unique_ptr<DaemonSession>> DaemonSession::Create(const std::string& prefix) {
  ASSIGN_OR_RETURN(std::unique_ptr<TempDir> dir, TempDir::Create(prefix));
  return std::unique_ptr<DaemonSession>(new DaemonSession(std::move(dir)));
}

absl::Status DaemonSession::Start(const std::string& binary, const std::vector<std::string>& args,
                                  const std::string& wait_for) {
  daemon_.reset();
  // A socket left by the daemon stopped would be taken for the new one's.
  unlink(wait_for.empty() ? socket_.c_str() : wait_for.c_str());
  DaemonProcess::Options options;
  options.binary = binary;
  options.args = args;
  options.socket_path = wait_for.empty() ? socket_ : wait_for;
  ASSIGN_OR_RETURN(daemon_, DaemonProcess::Start(options));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DeviceConnection>> DaemonSession::Open(
    const DeviceOptions& options, const std::string& socket) const {
  return DeviceConnection::Open(socket.empty() ? socket_ : socket, options);
}

}  // namespace frontend
}  // namespace vhost
