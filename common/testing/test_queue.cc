#include "common/testing/test_queue.h"

#include <sys/epoll.h>

#include "common/base/status_macros.h"
#include "common/device/queue_worker.h"

namespace vhost {
namespace testing {

absl::StatusOr<std::unique_ptr<TestQueue>> TestQueue::Create(FakeGuestMemory* memory,
                                                             Options options) {
  std::unique_ptr<TestQueue> test(new TestQueue());
  ASSIGN_OR_RETURN(RingSizes sizes, ComputeRingSizes(options.layout, options.size));
  DriverRing::Config config;
  config.layout = options.layout;
  config.size = options.size;
  config.event_idx = options.features & Bit(kFeatureEventIdx);
  config.addresses = LayoutRings(sizes, memory->Allocate(sizes.total_size + 16, 4096));
  ASSIGN_OR_RETURN(test->driver_, DriverRing::Create(memory, config));
  test->layout_ =
      VringLayout{options.size, FakeGuestMemory::Uva(config.addresses.desc),
                  FakeGuestMemory::Uva(config.addresses.driver),
                  FakeGuestMemory::Uva(config.addresses.device), test->driver_->VringBase()};
  ASSIGN_OR_RETURN(test->queue_, Virtqueue::Create(options.index, test->layout_, options.features,
                                                   memory->memory()));
  ASSIGN_OR_RETURN(test->context_, QueueContext::Create(test->queue_.get(), options.pool));
  return test;
}

absl::Status TestQueue::Start(VirtioDevice& device) { return device.QueueStarted(*context_); }

void TestQueue::Stop(VirtioDevice& device) {
  context_->BecomeServingThread();
  device.QueueStopped(*context_);
  context_->FinishInFlight();
  context_->UnwatchAll();
}

bool TestQueue::DispatchReady(int timeout_ms) {
  // A Wake from this thread (another queue's turn) is a flag, not an event.
  bool any = context_->TakeLocalWake();
  epoll_event events[16];
  const int n = epoll_wait(context_->epoll_fd(), events, 16, any ? 0 : timeout_ms);
  for (int i = 0; i < n; ++i) any |= context_->Dispatch(events[i].data.ptr, events[i].events);
  context_->FreeUnwatched();
  return any;
}

QueueResult TestQueue::Run(VirtioDevice& device) {
  context_->BecomeServingThread();
  DispatchReady(0);
  QueueResult result = QueueResult::Drained();
  // As the worker's Drain: a Wake from the call itself (a flag on this thread) calls again.
  for (int calls = 0; calls < kMaxCallsPerDrain; ++calls) {
    context_->PushPosted();
    context_->TakeLocalWake();
    result = device.ProcessQueue(*context_);
    queue_->NotifyGuestIfNeeded();
    if (!context_->HasLocalWake()) break;
  }
  return result;
}

absl::optional<QueueResult> TestQueue::RunWhenReady(VirtioDevice& device, absl::Duration timeout) {
  context_->BecomeServingThread();
  if (!context_->HasPosted() &&
      !DispatchReady(static_cast<int>(absl::ToInt64Milliseconds(timeout)))) {
    return absl::nullopt;
  }
  return Run(device);
}

absl::StatusOr<uint16_t> TestQueue::Add(absl::Span<const Buffer> readable,
                                        absl::Span<const Buffer> writable) {
  ASSIGN_OR_RETURN(uint16_t id, driver_->AddChain(readable, writable));
  driver_->Publish();
  return id;
}

std::vector<UsedElement> TestQueue::Used() {
  std::vector<UsedElement> out;
  for (;;) {
    absl::StatusOr<absl::optional<UsedElement>> used = driver_->PollUsed();
    if (!used.ok() || !used->has_value()) return out;
    out.push_back(**used);
  }
}

}  // namespace testing
}  // namespace vhost
