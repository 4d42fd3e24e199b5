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
  // `serve` runs on pool threads (or in Drain) and returns the bytes written into the chain.
  using Serve = std::function<uint32_t(int queue, const DescriptorChain& chain)>;
  RequestPool(int threads, int queues, Serve serve);
  ~RequestPool();

  // Queue `index`: hands a chain to the pool. The caller bounds what a queue has in flight (at
  // most its ring size: a head is in flight once), and so the pool's backlog.
  void Submit(int index, const DescriptorChain& chain);
  // The eventfd that becomes readable when queue `index` has completions.
  int event_fd(int index) const { return queues_[index].event.get(); }
  bool HasCompletions(int index);
  // Completed chains of queue `index` (clears its eventfd).
  std::vector<std::pair<DescriptorChain, uint32_t>> TakeCompletions(int index);
  // Serves the chains of queue `index` no thread has taken yet on the calling thread (all pool
  // threads may be held by other queues' waiting requests), then waits for those running.
  void Drain(int index);

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

  // Records a served chain; called with mu_ held.
  void Complete(int queue, DescriptorChain chain, uint32_t written);

  const Serve serve_;
  std::mutex mu_;
  std::condition_variable work_, idle_;
  std::deque<Task> tasks_;
  std::vector<QueueState> queues_;
  bool stop_ = false;
  std::vector<std::thread> threads_;  // last: started once the rest exists
};

}  // namespace vhost

#endif  // VHOST_USER_FS_REQUEST_POOL_H_
