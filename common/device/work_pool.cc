#include "common/device/work_pool.h"

namespace vhost {

WorkPool::WorkPool(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

WorkPool::~WorkPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void WorkPool::Submit(const void* owner, std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back({owner, std::move(task)});
    ++pending_[owner];
  }
  work_.notify_one();
}

void WorkPool::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping, nothing left
    Task task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task.run();
    lock.lock();
    Done(task.owner);
  }
}

void WorkPool::Done(const void* owner) {
  auto it = pending_.find(owner);
  if (--it->second == 0) {
    pending_.erase(it);
    idle_.notify_all();
  }
}

void WorkPool::Finish(const void* owner) {
  std::unique_lock<std::mutex> lock(mu_);
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    if (it->owner != owner) {
      ++it;
      continue;
    }
    Task task = std::move(*it);
    tasks_.erase(it);
    lock.unlock();
    task.run();
    lock.lock();
    Done(owner);
    it = tasks_.begin();  // the deque may have changed meanwhile
  }
  idle_.wait(lock, [&] { return pending_.count(owner) == 0; });
}

}  // namespace vhost
