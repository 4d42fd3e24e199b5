#include "vhost-user-fs/request_pool.h"

#include <sys/eventfd.h>

namespace vhost {

RequestPool::RequestPool(int threads, int queues,
                         std::function<uint32_t(const DescriptorChain&)> serve)
    : serve_(std::move(serve)), queues_(queues) {
  for (QueueState& q : queues_) q.event = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

RequestPool::~RequestPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void RequestPool::Submit(int index, const DescriptorChain& chain) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back({index, chain});
    ++queues_[index].in_flight;
  }
  work_.notify_one();
}

void RequestPool::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping, nothing left
    Task task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    const uint32_t written = serve_(task.chain);
    lock.lock();
    QueueState& q = queues_[task.queue];
    q.done.emplace_back(std::move(task.chain), written);
    --q.in_flight;
    eventfd_write(q.event.get(), 1);
    if (q.in_flight == 0) idle_.notify_all();
  }
}

bool RequestPool::HasCompletions(int index) {
  std::lock_guard<std::mutex> lock(mu_);
  return !queues_[index].done.empty();
}

std::vector<std::pair<DescriptorChain, uint32_t>> RequestPool::TakeCompletions(int index) {
  std::lock_guard<std::mutex> lock(mu_);
  eventfd_t ignored;
  (void)eventfd_read(queues_[index].event.get(), &ignored);
  return std::move(queues_[index].done);
}

void RequestPool::WaitIdle(int index) {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return queues_[index].in_flight == 0; });
}

}  // namespace vhost
