#include "tests/frontend/queue.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace vhost {
namespace frontend {

FrontendQueue::FrontendQueue(GuestRam* ram, const QueueConfig& config, testing::RingAddresses gpas,
                             std::unique_ptr<DriverRing> ring, EventFd kick, EventFd call,
                             EventFd err)
    : ram_(ram),
      config_(config),
      gpas_(gpas),
      ring_(std::move(ring)),
      kick_(std::move(kick)),
      call_(std::move(call)),
      err_(std::move(err)) {}

absl::StatusOr<std::unique_ptr<FrontendQueue>> FrontendQueue::Create(GuestRam* ram,
                                                                     const QueueConfig& config) {
  ASSIGN_OR_RETURN(const testing::RingSizes sizes,
                   testing::ComputeRingSizes(config.layout, config.size));
  // Each area in its own allocation, as a guest driver typically places them.
  testing::RingAddresses gpas;
  ASSIGN_OR_RETURN(gpas.desc, ram->Allocate(sizes.desc_size, 4096));
  ASSIGN_OR_RETURN(gpas.driver, ram->Allocate(sizes.driver_size, 64));
  ASSIGN_OR_RETURN(gpas.device, ram->Allocate(sizes.device_size, 64));
  DriverRing::Config ring_config;
  ring_config.layout = config.layout;
  ring_config.size = config.size;
  ring_config.addresses = gpas;
  ring_config.event_idx = config.event_idx;
  ring_config.start_index = config.start_index;
  ASSIGN_OR_RETURN(std::unique_ptr<DriverRing> ring, DriverRing::Create(ram, ring_config));
  ASSIGN_OR_RETURN(EventFd kick, EventFd::Create());
  ASSIGN_OR_RETURN(EventFd call, EventFd::Create());
  ASSIGN_OR_RETURN(EventFd err, EventFd::Create());
  return std::unique_ptr<FrontendQueue>(new FrontendQueue(
      ram, config, gpas, std::move(ring), std::move(kick), std::move(call), std::move(err)));
}

absl::StatusOr<std::unique_ptr<FrontendQueue>> FrontendQueue::Start(Frontend* frontend,
                                                                    GuestRam* ram,
                                                                    const QueueConfig& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<FrontendQueue> queue, Create(ram, config));
  RETURN_IF_ERROR(queue->SendSetup(frontend));
  return queue;
}

VringAddr FrontendQueue::vring_addr() const {
  VringAddr addr{};
  addr.index = config_.index;
  addr.desc_user_addr = ram_->UserAddress(gpas_.desc);
  addr.avail_user_addr = ram_->UserAddress(gpas_.driver);
  addr.used_user_addr = ram_->UserAddress(gpas_.device);
  return addr;
}

absl::Status FrontendQueue::SetLogging(Frontend* frontend, bool on) {
  VringAddr addr = vring_addr();
  addr.flags = on ? kVringFlagLog : 0;
  addr.log_guest_addr = gpas_.device;
  return frontend->SetVringAddr(addr);
}

absl::Status FrontendQueue::SendSetup(Frontend* frontend) {
  return SendSetup(frontend, ring_->VringBase());
}

absl::Status FrontendQueue::SendSetup(Frontend* frontend, uint32_t base) {
  const uint32_t i = config_.index;
  RETURN_IF_ERROR(frontend->SetVringNum(i, config_.size));
  RETURN_IF_ERROR(frontend->SetVringBase(i, base));
  RETURN_IF_ERROR(frontend->SetVringAddr(vring_addr()));
  RETURN_IF_ERROR(frontend->SetVringKick(i, kick_.fd()));
  RETURN_IF_ERROR(frontend->SetVringCall(i, config_.call_fd ? call_.fd() : -1));
  if (config_.err_fd) RETURN_IF_ERROR(frontend->SetVringErr(i, err_.fd()));
  if (config_.enable && frontend->has_feature(kFeatureProtocolFeatures)) {
    RETURN_IF_ERROR(frontend->SetVringEnable(i, true));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> FrontendQueue::Stop(Frontend* frontend) {
  return frontend->GetVringBase(config_.index);
}

absl::StatusOr<bool> FrontendQueue::Submit() {
  if (!ring_->Publish()) return false;
  RETURN_IF_ERROR(kick_.Signal());
  return true;
}

absl::StatusOr<UsedElement> FrontendQueue::WaitForUsed(absl::Duration timeout, bool busy_poll) {
  const absl::Time deadline = absl::Now() + timeout;
  for (uint32_t spins = 0;; ++spins) {
    ASSIGN_OR_RETURN(const absl::optional<UsedElement> used, ring_->PollUsed());
    if (used.has_value()) return *used;
    if (busy_poll) {
      if (spins % 1024 == 0 && absl::Now() >= deadline) break;
      continue;
    }
    // Ask for a call, then look again: the element may have landed before the device saw it.
    ring_->EnableInterrupts();
    ASSIGN_OR_RETURN(const absl::optional<UsedElement> raced, ring_->PollUsed());
    if (raced.has_value()) return *raced;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    ASSIGN_OR_RETURN(const uint64_t calls, call_.Wait(left));
    (void)calls;
  }
  return absl::DeadlineExceededError(absl::StrCat("no used buffer on queue ", config_.index,
                                                  " within ", absl::FormatDuration(timeout)));
}

absl::StatusOr<bool> FrontendQueue::ErrorSignalled() {
  ASSIGN_OR_RETURN(const uint64_t count, err_.Drain());
  return count > 0;
}

}  // namespace frontend
}  // namespace vhost
