#include "vhost-user-gpu/virgl/render_thread.h"

namespace vhost::gpu {

RenderThread::RenderThread() : thread_([this] { Loop(); }) {}

RenderThread::~RenderThread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void RenderThread::Run(const std::function<void()>& work) {
  std::lock_guard<std::mutex> turn(run_mu_);
  std::unique_lock<std::mutex> lock(mu_);
  work_ = &work;
  cv_.notify_all();
  cv_.wait(lock, [this] { return work_ == nullptr; });
}

void RenderThread::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return work_ != nullptr || stop_; });
    if (work_ == nullptr) return;  // stopping, nothing handed over
    const std::function<void()>* work = work_;
    lock.unlock();
    (*work)();
    lock.lock();
    work_ = nullptr;
    cv_.notify_all();
  }
}

}  // namespace vhost::gpu
