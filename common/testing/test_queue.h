// One queue as a device's unit test needs it: the driver's side (DriverRing) and the device's
// (Virtqueue + QueueContext) of a ring in fake guest memory, with no worker thread: the test
// runs the device's turns itself, as the worker would.
//
//   FakeGuestMemory ram;
//   auto queue = *TestQueue::Create(&ram);
//   ASSERT_OK(queue->Start(device));
//   uint64_t out = ram.Allocate(64);
//   queue->Add({{request_gpa, len}}, {{out, 64}});
//   queue->Run(device);
//   std::vector<UsedElement> used = queue->Used();
#ifndef COMMON_TESTING_TEST_QUEUE_H_
#define COMMON_TESTING_TEST_QUEUE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "common/device/device.h"
#include "common/device/queue_context.h"
#include "common/testing/driver_ring.h"
#include "common/testing/fake_guest_memory.h"
#include "common/vhost_user/message.h"
#include "common/virtio/virtqueue.h"

namespace vhost {
namespace testing {

class TestQueue {
 public:
  struct Options {
    int index = 0;
    uint32_t size = 64;
    RingLayout layout = RingLayout::kSplit;
    // Ring features as negotiated (VERSION_1; add EVENT_IDX, RING_PACKED to match `layout`).
    uint64_t features = Bit(kFeatureVersion1);
    WorkPool* pool = nullptr;  // for QueueContext::Submit; null runs work inline
  };

  // Places the rings in `memory` with its allocator.
  static absl::StatusOr<std::unique_ptr<TestQueue>> Create(FakeGuestMemory* memory,
                                                           Options options);
  static absl::StatusOr<std::unique_ptr<TestQueue>> Create(FakeGuestMemory* memory) {
    return Create(memory, Options());
  }

  DriverRing& driver() { return *driver_; }
  Virtqueue& queue() { return *queue_; }
  QueueContext& context() { return *context_; }
  const VringLayout& layout() const { return layout_; }

  // The device's hooks, as the engine calls them (Stop also waits for what is in flight).
  absl::Status Start(VirtioDevice& device);
  void Stop(VirtioDevice& device);

  // One turn of the worker: handles the watched fds and wake-ups that are ready (no waiting),
  // pushes completions other threads posted, runs ProcessQueue and notifies.
  QueueResult Run(VirtioDevice& device);
  // Waits up to `timeout` for a watched fd or a wake-up, then runs a turn; nullopt if nothing
  // came.
  absl::optional<QueueResult> RunWhenReady(VirtioDevice& device, absl::Duration timeout);

  // Driver side: adds a chain and publishes it; returns the id the device will report.
  absl::StatusOr<uint16_t> Add(absl::Span<const Buffer> readable,
                               absl::Span<const Buffer> writable);
  // Every used element the device has reported so far and the driver has not read.
  std::vector<UsedElement> Used();

 private:
  TestQueue() = default;
  // Handles ready epoll events (waiting up to timeout_ms); returns whether any device fd or
  // wake-up fired.
  bool DispatchReady(int timeout_ms);

  VringLayout layout_;
  std::unique_ptr<DriverRing> driver_;
  std::unique_ptr<Virtqueue> queue_;
  std::unique_ptr<QueueContext> context_;
};

}  // namespace testing
}  // namespace vhost

#endif  // COMMON_TESTING_TEST_QUEUE_H_
