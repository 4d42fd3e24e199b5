// One thread that runs every call into a renderer. virglrenderer is not thread-safe and its
// GL contexts are current on the thread that made them, while the device is served from
// queue threads that come and go (a new one per queue start): they hand their calls here.
#ifndef VHOST_USER_GPU_VIRGL_RENDER_THREAD_H_
#define VHOST_USER_GPU_VIRGL_RENDER_THREAD_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace vhost::gpu {

class RenderThread {
 public:
  RenderThread();
  // Runs what was handed over, then ends the thread.
  ~RenderThread();
  RenderThread(const RenderThread&) = delete;
  RenderThread& operator=(const RenderThread&) = delete;

  // Runs `work` on the thread and returns when it is done; calls from several threads take
  // turns.
  void Run(const std::function<void()>& work);

 private:
  void Loop();

  std::mutex run_mu_;  // one Run at a time
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void()>* work_ = nullptr;  // handed over, not yet done
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_VIRGL_RENDER_THREAD_H_
