#include "vhost-user-fs/request_pool.h"

#include <sys/eventfd.h>

namespace vhost {

RequestPool::RequestPool(int threads, int queues, Serve serve)
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
    const uint32_t written = serve_(task.queue, task.chain);
    lock.lock();
    Complete(task.queue, std::move(task.chain), written);
  }
}

void RequestPool::Complete(int queue, DescriptorChain chain, uint32_t written) {
  QueueState& q = queues_[queue];
  q.done.emplace_back(std::move(chain), written);
  --q.in_flight;
  eventfd_write(q.event.get(), 1);
  if (q.in_flight == 0) idle_.notify_all();
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

void RequestPool::Drain(int index) {
  std::unique_lock<std::mutex> lock(mu_);
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    if (it->queue != index) {
      ++it;
      continue;
    }
    DescriptorChain chain = std::move(it->chain);
    it = tasks_.erase(it);
    lock.unlock();
    const uint32_t written = serve_(index, chain);
    lock.lock();
    Complete(index, std::move(chain), written);
    it = tasks_.begin();  // the deque may have changed meanwhile
  }
  idle_.wait(lock, [&] { return queues_[index].in_flight == 0; });
}

}  // namespace vhost
