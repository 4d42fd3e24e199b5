// --thread-pool-size: FUSE requests of every queue served by a pool of threads, so one slow
// request (a large read, an fsync) does not hold up the others on its queue; replies are pushed
// by the queue's own worker, which the pool wakes through the queue's eventfd.
#ifndef VHOST_USER_FS_REQUEST_POOL_H_
#define VHOST_USER_FS_REQUEST_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "common/descriptor_chain.h"
#include "common/unique_fd.h"

namespace vhost {

class RequestPool {
 public:
  // `serve` runs on pool threads and returns the bytes written into the chain.
  RequestPool(int threads, int queues, std::function<uint32_t(const DescriptorChain&)> serve);
  ~RequestPool();

  // Queue `index`: hands a chain to the pool.
  void Submit(int index, const DescriptorChain& chain);
  // The eventfd that becomes readable when queue `index` has completions.
  int event_fd(int index) const { return queues_[index].event.get(); }
  bool HasCompletions(int index);
  // Completed chains of queue `index` (clears its eventfd).
  std::vector<std::pair<DescriptorChain, uint32_t>> TakeCompletions(int index);
  // Waits until queue `index` has nothing in the pool any more.
  void WaitIdle(int index);

 private:
  struct Task {
    int queue;
    DescriptorChain chain;
  };
  struct QueueState {
    UniqueFd event;
    int in_flight = 0;
    std::vector<std::pair<DescriptorChain, uint32_t>> done;
  };
  void Run();

  const std::function<uint32_t(const DescriptorChain&)> serve_;
  std::mutex mu_;
  std::condition_variable work_, idle_;
  std::deque<Task> tasks_;
  std::vector<QueueState> queues_;
  bool stop_ = false;
  std::vector<std::thread> threads_;  // last: started once the rest exists
};

}  // namespace vhost

#endif  // VHOST_USER_FS_REQUEST_POOL_H_
