#include "tests/frontend/daemon_fixture.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace vhost {
namespace frontend {

absl::StatusOr<std::unique_ptr<DeviceConnection>> DeviceConnection::Open(
    const std::string& socket, const DeviceOptions& options) {
  std::unique_ptr<DeviceConnection> c(new DeviceConnection());
  ASSIGN_OR_RETURN(c->frontend_, Frontend::Connect(socket));
  RETURN_IF_ERROR(c->frontend_->Handshake(options.protocol_features));
  ASSIGN_OR_RETURN(const uint64_t acked, c->frontend_->NegotiateFeatures(options.features));
  if ((acked & options.required_features) != options.required_features) {
    return absl::FailedPreconditionError(
        absl::StrCat("features not acked: 0x", absl::Hex(options.required_features & ~acked)));
  }
  ASSIGN_OR_RETURN(c->ram_, GuestRam::Create(options.ram_size));
  RETURN_IF_ERROR(c->frontend_->SetMemTable(*c->ram_));
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

absl::StatusOr<uint32_t> DeviceConnection::RestartQueue(size_t i) {
  ASSIGN_OR_RETURN(const uint32_t base, queues_[i]->Stop(frontend_.get()));
  QueueConfig config = queues_[i]->config();
  config.start_index = static_cast<uint16_t>(base);
  ASSIGN_OR_RETURN(queues_[i], FrontendQueue::Start(frontend_.get(), ram_.get(), config));
  return base;
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
