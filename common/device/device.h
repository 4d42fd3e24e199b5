// The interface a device model implements. A device knows its own requests and nothing of
// sockets, messages or ring memory: the engine hands it a QueueContext per started queue, whose
// chains are already translated and bounds-checked.
//
// Threading: Info() and the config/feature calls come from the connection thread, as do
// QueueStarted and QueueStopped (the queue's worker is not running then). ProcessQueue for queue
// N runs on queue N's worker thread only, never concurrently with itself (with
// DeviceInfo::one_worker, one thread serves every queue).
//
// The interface in brief:
//   QueueStarted(ctx)   set up per-queue state; ctx.Watch(fd, ...) any fds to wait on
//   ProcessQueue(ctx)   take chains (ctx.Take), complete them (ctx.Complete, any thread),
//                       return Drained / Blocked / RetryAfter(d)
//   QueueStopped(ctx)   finish or cancel what is in flight; the engine then waits for the rest
//   ctx.Wake()          any thread: run ProcessQueue soon
//   ctx.Submit(t, fn)   run fn(chain) on the engine's pool; its result completes the chain
//
// Example (a device that echoes its readable bytes back):
//   QueueResult ProcessQueue(QueueContext& ctx) override {
//     while (auto token = ctx.Take()) {
//       const DescriptorChain& chain = ctx.chain(*token);
//       std::vector<uint8_t> data(chain.readable_bytes);
//       CopyFromSegments(chain.readable, 0, data.data(), data.size());
//       ctx.Complete(*token, CopyToSegments(chain.writable, 0, data.data(), data.size()));
//     }
//     return QueueResult::Drained();
//   }
#ifndef COMMON_DEVICE_DEVICE_H_
#define COMMON_DEVICE_DEVICE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/base/unique_fd.h"
#include "common/device/queue_context.h"
#include "common/virtio/virtqueue.h"

namespace vhost {

struct DeviceInfo {
  uint32_t virtio_id = 0;
  uint32_t num_queues = 1;
  uint32_t max_queue_size = 1024;
  // Device-specific feature bits (and VERSION_1-level bits the device supports). The engine
  // adds the ring features it implements (INDIRECT_DESC, EVENT_IDX, RING_PACKED, ...).
  uint64_t features = 0;
  // Size of the config space; 0 means the device has none (CONFIG is then not offered).
  uint32_t config_size = 0;
  // Threads of the engine's pool that QueueContext::Submit runs work on (0: Submit runs the
  // work at once on the calling thread).
  int pool_threads = 0;
  // Queues whose requests can all be run again after a crash (re-reading a block, new random
  // bytes), bit i for queue i (queues from 63 on follow bit 63; kAllQueues for every queue):
  // the engine offers VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, records those queues' chains in
  // flight in the front end's region, and after a restart takes the ones a killed daemon left
  // first. Not for requests with effects that must not happen twice (a FUSE CREATE, a vsock
  // packet) or buffers held for events (those queues restart from the used index, as without
  // tracking). The device's sandbox must allow memfd_create and fallocate (the region is made
  // on GET_INFLIGHT_FD).
  uint64_t resubmit_queues = 0;
  static constexpr uint64_t kAllQueues = ~uint64_t{0};
  bool Resubmits(uint32_t queue) const { return (resubmit_queues >> std::min(queue, 63u)) & 1; }
  // The device has internal state beyond its rings (fs: the inodes and open files the guest
  // holds) that a live migration carries to the destination daemon: the engine offers
  // VHOST_USER_PROTOCOL_F_DEVICE_STATE and calls SaveState / LoadState.
  bool migrates_state = false;
  // Live migration may copy guest memory while the device writes it: the engine offers
  // VHOST_F_LOG_ALL with VHOST_USER_PROTOCOL_F_LOG_SHMFD and marks every page it writes for
  // the device (the bytes each completion reports written, and the used rings) in the front
  // end's dirty log. Only for devices that write guest memory through completions alone and
  // whose state otherwise migrates (without it QEMU refuses to migrate).
  bool logs_dirty_pages = false;
  // One thread serves all the device's queues, in turn, instead of a thread per queue: for a
  // device whose queues hand work to each other on every request (vsock's replies), so that
  // the hand-off wakes no other thread. ProcessQueue calls then never overlap.
  bool one_worker = false;
};

// Copies bytes [offset, offset + out.size()) of a device's config structure into `out`: what
// every ReadConfig does. Checked here too, not only by the engine against config_size, so that
// a device whose structure is smaller than what it advertises (or a direct caller) gets an
// error rather than a read past the structure.
template <typename Config>
absl::Status ReadConfigBytes(const Config& config, uint32_t offset, absl::Span<uint8_t> out) {
  static_assert(std::is_trivially_copyable_v<Config>, "config space is raw bytes");
  if (offset > sizeof(Config) || out.size() > sizeof(Config) - offset) {
    return absl::OutOfRangeError(absl::StrCat("config bytes ", offset, "+", out.size(),
                                              " beyond the ", sizeof(Config), "-byte config"));
  }
  if (!out.empty())
    std::memcpy(out.data(), reinterpret_cast<const uint8_t*>(&config) + offset, out.size());
  return absl::OkStatus();
}

// Lets a device tell the front end that its config space changed (BACKEND_CONFIG_CHANGE_MSG).
using ConfigChangeNotifier = std::function<absl::Status()>;

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  virtual DeviceInfo Info() const = 0;
  // The features the driver accepted (device and generic bits).
  virtual absl::Status SetFeatures(uint64_t features) { return absl::OkStatus(); }
  // Reads `data.size()` bytes of config space at `offset` (already bounds-checked against
  // config_size by the engine).
  virtual absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
    return absl::UnimplementedError("device has no config space");
  }
  virtual absl::Status WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) {
    return absl::PermissionDeniedError("config space is read-only");
  }
  // Queue `context.index()` begins serving: the first start, and again after a memory table
  // change. Per-queue state is set up here and fds to wait on are watched (context.Watch).
  // An error breaks the queue.
  virtual absl::Status QueueStarted(QueueContext& context) { return absl::OkStatus(); }
  // Called on the queue's worker thread when the guest kicked, when the queue starts, when a
  // watched fd is readable or the context was woken, or when the delay this function last
  // asked for has passed. Takes chains and completes them (or hands them on).
  virtual QueueResult ProcessQueue(QueueContext& context) = 0;
  // Whether the device has finished work to hand back (e.g. I/O completions not yet reaped),
  // asked by a busy-polling worker on the queue's thread instead of sleeping.
  virtual bool HasCompletions(QueueContext& context) { return false; }
  // The queue stops serving (GET_VRING_BASE, reset, disconnect, or a memory table change, after
  // which it starts again); its worker is not running. The device makes every chain it holds
  // complete: it finishes or cancels its I/O, answers held buffers, and may wait itself
  // (context.FinishInFlight()). The engine then waits until nothing is in flight, so the ring
  // position reported to the front end is exact, and drops the watched fds.
  virtual void QueueStopped(QueueContext& context) {}
  // VHOST_USER_GPU_SET_SOCKET: the front end's end of a display channel (vhost-user-gpu.rst),
  // on the connection thread. Only a gpu device takes one; a new one replaces the last.
  virtual absl::Status SetDisplaySocket(UniqueFd socket) {
    return absl::UnimplementedError("device has no display");
  }
  // Back to the initial state (RESET_DEVICE, or the front end went away).
  virtual void Reset() {}
  // The daemon got SIGHUP: re-read host state (e.g. the size of a grown backing file) and tell
  // the front end what changed. Called on the connection thread.
  virtual void Reload() {}
  // Live migration (DeviceInfo::migrates_state), on the connection thread while no queue
  // serves. SaveState: the device's internal state as bytes for the destination. LoadState:
  // takes such bytes in place of the current state. They come from the front end: every field
  // is checked, and a bad state is refused with an error (the migration then fails).
  virtual absl::StatusOr<std::string> SaveState() {
    return absl::UnimplementedError("device has no state to migrate");
  }
  virtual absl::Status LoadState(absl::string_view state) {
    return absl::UnimplementedError("device has no state to migrate");
  }

  void set_config_change_notifier(ConfigChangeNotifier notifier) {
    notify_config_change_ = std::move(notifier);
  }

 protected:
  ConfigChangeNotifier notify_config_change_;
};

}  // namespace vhost

#endif  // COMMON_DEVICE_DEVICE_H_
