#include "common/device/queue_context.h"

#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"

namespace vhost {
namespace {

pid_t ThisThread() {
  thread_local const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  return tid;
}

// Chain heads (split) and buffer ids (packed) are 16 bits.
constexpr size_t kHeadIds = size_t{1} << 16;

}  // namespace

absl::StatusOr<std::unique_ptr<QueueContext>> QueueContext::Create(Virtqueue* queue,
                                                                   WorkPool* pool) {
  std::unique_ptr<QueueContext> context(new QueueContext(queue, pool));
  context->epoll_.Reset(epoll_create1(EPOLL_CLOEXEC));
  context->wake_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!context->epoll_ || !context->wake_) return absl::ErrnoToStatus(errno, "epoll/eventfd");
  context->wake_watcher_.fd = context->wake_.get();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &context->wake_watcher_;
  if (epoll_ctl(context->epoll_.get(), EPOLL_CTL_ADD, context->wake_.get(), &ev) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl(wake)");
  }
  context->slots_.resize(queue->size());
  context->free_.reserve(queue->size());
  for (uint32_t i = queue->size(); i > 0; --i) context->free_.push_back(i - 1);
  context->head_in_flight_.assign(kHeadIds, false);
  context->BecomeServingThread();
  return context;
}

QueueContext::~QueueContext() { UnwatchAll(); }

absl::Status QueueContext::Watch(int fd, uint32_t events, FdHandler handler) {
  auto watcher = std::make_unique<Watcher>();
  watcher->fd = fd;
  watcher->handler = std::move(handler);
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = watcher.get();
  std::lock_guard<std::mutex> lock(mu_);
  if (watchers_.count(fd)) return absl::AlreadyExistsError(absl::StrCat("fd ", fd, " watched"));
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("epoll_ctl(queue ", index(), ", fd ", fd, ")"));
  }
  watchers_[fd] = std::move(watcher);
  return absl::OkStatus();
}

void QueueContext::Unwatch(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watchers_.find(fd);
  if (it == watchers_.end()) return;
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  it->second->live = false;
  // An event for it may already be in the worker's hands: freed by the worker, later.
  dead_watchers_.push_back(std::move(it->second));
  has_dead_watchers_.store(true, std::memory_order_release);
  watchers_.erase(it);
}

void QueueContext::UnwatchAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [fd, watcher] : watchers_) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  watchers_.clear();
  dead_watchers_.clear();
}

void QueueContext::FreeUnwatched() {
  if (!has_dead_watchers_.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(mu_);
  dead_watchers_.clear();
  has_dead_watchers_.store(false, std::memory_order_release);
}

void QueueContext::Wake() {
  if (OnServingThread()) {
    local_wake_.store(true, std::memory_order_relaxed);
    return;
  }
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) eventfd_write(wake_.get(), 1);
}

bool QueueContext::Dispatch(void* data, uint32_t events) {
  auto* watcher = static_cast<Watcher*>(data);
  if (watcher == &wake_watcher_) {
    eventfd_t ignored;
    (void)eventfd_read(wake_.get(), &ignored);
    // Cleared after the read: a Wake from now on writes again.
    wake_pending_.store(false, std::memory_order_release);
    return true;
  }
  if (!watcher->live.load(std::memory_order_acquire)) return false;
  if (watcher->handler) watcher->handler(events);
  return true;
}

void QueueContext::BecomeServingThread() {
  serving_tid_.store(ThisThread(), std::memory_order_release);
  FreeUnwatched();
}

bool QueueContext::OnServingThread() const {
  return serving_tid_.load(std::memory_order_acquire) == ThisThread();
}

absl::Status QueueContext::TrackInflight(std::unique_ptr<InflightQueue> inflight) {
  ASSIGN_OR_RETURN(std::vector<uint16_t> heads,
                   inflight->Recover(queue_->size(), queue_->UsedIndex()));
  if (!heads.empty()) {
    // The front end's base counts these chains as taken or not depending on how the previous
    // back end went away; they are exactly the ones between the used index and the next avail
    // entry, whatever order they complete in.
    queue_->SetNextAvail(static_cast<uint16_t>(queue_->UsedIndex() + heads.size()));
    LOG(INFO) << "queue " << index() << ": resubmitting " << heads.size()
              << " requests left in flight";
  }
  resubmit_.assign(heads.rbegin(), heads.rend());
  inflight_ = std::move(inflight);
  return absl::OkStatus();
}

absl::Status QueueContext::TrackInflight(std::unique_ptr<InflightQueuePacked> inflight) {
  ASSIGN_OR_RETURN(
      InflightQueuePacked::Recovered recovered,
      inflight->Recover(queue_->size(), queue_->Base(), [this](uint16_t slot, bool wrap) {
        return queue_->SlotAvailable(slot, wrap);
      }));
  if (!queue_->SetBase(recovered.base)) {
    return absl::InvalidArgumentError("inflight region: ring position beyond the ring");
  }
  if (!recovered.chains.empty()) {
    LOG(INFO) << "queue " << index() << ": resubmitting " << recovered.chains.size()
              << " requests left in flight";
  }
  queue_->RecordPopped(true);
  resubmit_packed_.assign(std::make_move_iterator(recovered.chains.rbegin()),
                          std::make_move_iterator(recovered.chains.rend()));
  inflight_packed_ = std::move(inflight);
  return absl::OkStatus();
}

absl::optional<ChainToken> QueueContext::Take() {
  if (free_.empty()) {
    // Every ring entry is ours already: a chain offered now repeats one in flight.
    if (queue_->HasAvailable()) {
      LOG_EVERY_N(WARNING, 100) << "queue " << index() << ": more chains than the ring holds";
      queue_->MarkBroken(absl::DataLossError("more chains in flight than the ring holds"));
    }
    return absl::nullopt;
  }
  const ChainToken token = free_.back();
  Slot& slot = slots_[token];
  slot.resubmitted = !resubmit_.empty() || !resubmit_packed_.empty();
  if (!resubmit_packed_.empty()) {
    InflightQueuePacked::Chain& saved = resubmit_packed_.back();
    if (!queue_->PopSaved(saved.descs, &slot.chain)) return absl::nullopt;
    slot.record = saved.record;
    slot.saved = std::move(saved.descs);
    resubmit_packed_.pop_back();
  } else if (slot.resubmitted) {
    if (!queue_->PopAt(resubmit_.back(), &slot.chain)) return absl::nullopt;
    resubmit_.pop_back();
  } else if (!queue_->Pop(&slot.chain)) {
    return absl::nullopt;
  }
  if (head_in_flight_[slot.chain.head]) {
    // The ring holds each head once: the guest made one available again while it is ours.
    LOG_EVERY_N(WARNING, 100) << "queue " << index() << ": head " << slot.chain.head
                              << " made available while in flight";
    queue_->MarkBroken(absl::DataLossError("a chain made available again while in flight"));
    return absl::nullopt;
  }
  // Recorded before the device acts on it. A resubmitted chain is recorded already.
  if (inflight_packed_ && !slot.resubmitted) {
    const absl::optional<uint16_t> record = inflight_packed_->Taken(queue_->Popped());
    if (!record.has_value()) {
      queue_->MarkBroken(absl::DataLossError("more chains in flight than the ring holds"));
      return absl::nullopt;
    }
    slot.record = *record;
  }
  free_.pop_back();
  head_in_flight_[slot.chain.head] = true;
  slot.in_flight = true;
  if (inflight_ && !slot.resubmitted) inflight_->Taken(slot.chain.head);
  AddInFlight(1);
  queue_->stats().bytes_in.Add(slot.chain.readable_bytes);
  return token;
}

void QueueContext::AddInFlight(int delta) {
  // Only the serving thread changes the count: a plain store, no locked read-modify-write.
  const size_t now = in_flight_.load(std::memory_order_relaxed) + delta;
  in_flight_.store(now, std::memory_order_release);
  queue_->stats().in_flight.Set(now);
}

void QueueContext::GiveBack(ChainToken token) {
  Slot& slot = slots_[token];
  if (!slot.in_flight) return;
  if (slot.resubmitted && inflight_packed_) {
    resubmit_packed_.push_back({slot.record, std::move(slot.saved)});  // still recorded
  } else if (slot.resubmitted) {
    resubmit_.push_back(slot.chain.head);  // still recorded in the region
  } else {
    queue_->Unpop(slot.chain);
    if (inflight_) inflight_->Untaken(slot.chain.head);
    if (inflight_packed_) inflight_packed_->Untaken(slot.record);
  }
  head_in_flight_[slot.chain.head] = false;
  slot.in_flight = false;
  free_.push_back(token);
  AddInFlight(-1);
}

void QueueContext::Push(ChainToken token, uint32_t written) {
  Slot& slot = slots_[token];
  if (!slot.in_flight) return;  // a device bug; the ring must not see a chain twice
  // A broken queue publishes nothing: its record stays, as for a chain never completed.
  const bool track = inflight_ && !queue_->broken();
  const bool track_packed = inflight_packed_ && !queue_->broken();
  if (track) inflight_->Completing(slot.chain.head);
  if (track_packed) inflight_packed_->Completing(slot.record, slot.chain.ring_slots);
  queue_->Push(slot.chain, written);
  QueueStats& stats = queue_->stats();
  stats.requests.Add(1);
  stats.bytes_out.Add(std::min<uint64_t>(written, slot.chain.writable_bytes));
  if (track) inflight_->Completed(slot.chain.head, queue_->UsedIndex());
  if (track_packed) inflight_packed_->Completed(slot.record);
  head_in_flight_[slot.chain.head] = false;
  slot.in_flight = false;
  free_.push_back(token);
  AddInFlight(-1);
}

void QueueContext::Complete(ChainToken token, uint32_t written) {
  if (token >= slots_.size()) return;
  if (OnServingThread()) {
    Push(token, written);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted_.emplace_back(token, written);
    has_posted_.store(true, std::memory_order_release);
  }
  posted_cv_.notify_all();
  Wake();
}

void QueueContext::PushPosted() {
  if (!HasPosted()) return;
  std::vector<std::pair<ChainToken, uint32_t>> posted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    posted.swap(posted_);
    has_posted_.store(false, std::memory_order_release);
  }
  for (const auto& [token, written] : posted) Push(token, written);
}

void QueueContext::Submit(ChainToken token, Work work) {
  if (pool_ == nullptr) {
    Complete(token, work(slots_[token].chain));
    return;
  }
  // The slot stays put while in flight: the pool thread reads the chain in place.
  pool_->Submit(
      this, [this, token, work = std::move(work)] { Complete(token, work(slots_[token].chain)); });
}

void QueueContext::FinishInFlight() {
  if (pool_ != nullptr) pool_->Finish(this);
  for (;;) {
    PushPosted();
    if (in_flight() == 0) break;
    std::unique_lock<std::mutex> lock(mu_);
    // Chains completed by other threads arrive through posted_; a device that never completes
    // one would hang the stop: say so now and then.
    if (!posted_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return !posted_.empty(); })) {
      LOG(WARNING) << "queue " << index() << ": stopping waits for " << in_flight()
                   << " requests in flight";
    }
  }
  queue_->NotifyGuestIfNeeded();
}

}  // namespace vhost
