// Threads that run work handed over by queue workers (e.g. vhost-user-fs's --thread-pool-size),
// so one slow request does not hold up the others on its queue. Work is tagged with its owner
// (a queue) so that a queue that stops can finish its own work without waiting for others'.
#ifndef COMMON_DEVICE_WORK_POOL_H_
#define COMMON_DEVICE_WORK_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace vhost {

class WorkPool {
 public:
  explicit WorkPool(int threads);
  ~WorkPool();  // runs what is queued, then joins

  // Queues `task` for a pool thread. The caller bounds how much it queues (a queue: at most its
  // ring size, as a chain is in flight once).
  void Submit(const void* owner, std::function<void()> task);
  // Runs `owner`'s tasks no thread has started on the calling thread (every pool thread may be
  // held by other owners' long waits), then waits until its running ones end.
  void Finish(const void* owner);

 private:
  struct Task {
    const void* owner;
    std::function<void()> run;
  };
  void Run();
  void Done(const void* owner);  // with mu_ held

  std::mutex mu_;
  std::condition_variable work_, idle_;
  std::deque<Task> tasks_;
  std::map<const void*, int> pending_;  // queued or running, by owner
  bool stop_ = false;
  std::vector<std::thread> threads_;  // last: started once the rest exists
};

}  // namespace vhost

#endif  // COMMON_DEVICE_WORK_POOL_H_
