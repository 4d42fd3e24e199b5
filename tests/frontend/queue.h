// One virtqueue as a front end and its guest driver run it: rings laid out in guest memory, kick,
// call and error eventfds, the ring setup messages, and waiting for used buffers.
//
// The hot path (ring().AddChain, Submit, PollUsed / WaitForUsed in busy-poll mode) allocates
// nothing and makes no syscall except the kick's eventfd write.
#ifndef TESTS_FRONTEND_QUEUE_H_
#define TESTS_FRONTEND_QUEUE_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/testing/driver_ring.h"
#include "common/vhost_user/message.h"
#include "tests/frontend/event_fd.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"

namespace vhost {
namespace frontend {

using testing::Buffer;
using testing::DriverRing;
using testing::RingLayout;
using testing::UsedElement;

struct QueueConfig {
  uint32_t index = 0;
  uint32_t size = 256;
  RingLayout layout = RingLayout::kSplit;  // kPacked only if RING_PACKED was acked
  bool event_idx = false;                  // must match whether EVENT_IDX was acked
  uint16_t start_index = 0;                // split: initial avail/used index (and the base sent)
  bool call_fd = true;                     // false: SET_VRING_CALL with the no-fd flag
  bool err_fd = true;                      // false: no SET_VRING_ERR at all
  bool enable = true;                      // SET_VRING_ENABLE(1) if PROTOCOL_FEATURES was acked
};

class FrontendQueue {
 public:
  // Allocates the rings in `ram`, initialises them and creates the eventfds; sends nothing.
  static absl::StatusOr<std::unique_ptr<FrontendQueue>> Create(GuestRam* ram,
                                                               const QueueConfig& config);
  // Create() then SendSetup().
  static absl::StatusOr<std::unique_ptr<FrontendQueue>> Start(Frontend* frontend, GuestRam* ram,
                                                              const QueueConfig& config);

  // SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL,
  // SET_VRING_ERR, SET_VRING_ENABLE, in QEMU's order.
  absl::Status SendSetup(Frontend* frontend);
  // The same with `base` for SET_VRING_BASE (QEMU after a back end died: the used index).
  absl::Status SendSetup(Frontend* frontend, uint32_t base);
  // GET_VRING_BASE: stops the ring in the back end and returns its base.
  absl::StatusOr<uint32_t> Stop(Frontend* frontend);

  DriverRing& ring() { return *ring_; }
  const QueueConfig& config() const { return config_; }
  // The SET_VRING_ADDR payload (user addresses of the three areas).
  VringAddr vring_addr() const;
  // SET_VRING_ADDR again with VHOST_VRING_F_LOG set (or cleared) and the used ring's
  // guest-physical address as log_guest_addr: what QEMU sends as migration starts (ends).
  absl::Status SetLogging(Frontend* frontend, bool on);
  // Guest-physical addresses of the ring's three areas.
  const testing::RingAddresses& ring_gpas() const { return gpas_; }

  // Publishes what was added and kicks if the device asked for it. Returns whether it kicked.
  absl::StatusOr<bool> Submit();
  // Kicks unconditionally.
  absl::Status Kick() { return kick_.Signal(); }

  // The next used element, if any (no waiting).
  absl::StatusOr<absl::optional<UsedElement>> PollUsed() { return ring_->PollUsed(); }
  // Waits for the next used element: spinning on the used ring (`busy_poll`), or enabling
  // interrupts and sleeping on the call eventfd. DeadlineExceeded after `timeout`.
  absl::StatusOr<UsedElement> WaitForUsed(absl::Duration timeout, bool busy_poll = false);

  // Waits for a call; returns the eventfd counter (0 on timeout).
  absl::StatusOr<uint64_t> WaitForCall(absl::Duration timeout) { return call_.Wait(timeout); }
  // Calls signalled since the last drain (no waiting).
  absl::StatusOr<uint64_t> DrainCalls() { return call_.Drain(); }
  // Whether the back end signalled the error eventfd since the last check (no waiting).
  absl::StatusOr<bool> ErrorSignalled();

  int kick_fd() const { return kick_.fd(); }
  int call_fd() const { return call_.fd(); }
  int err_fd() const { return err_.fd(); }

 private:
  FrontendQueue(GuestRam* ram, const QueueConfig& config, testing::RingAddresses gpas,
                std::unique_ptr<DriverRing> ring, EventFd kick, EventFd call, EventFd err);

  GuestRam* const ram_;
  const QueueConfig config_;
  const testing::RingAddresses gpas_;
  std::unique_ptr<DriverRing> ring_;
  EventFd kick_;
  EventFd call_;
  EventFd err_;
};

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_QUEUE_H_
