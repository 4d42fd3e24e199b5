// The interface a device model implements. A device knows its own requests and nothing of
// sockets, messages or ring memory: the engine hands it queues whose chains are already
// translated and bounds-checked.
//
// Threading: Info() and the config/feature calls come from the connection thread; ProcessQueue
// for queue N is called on queue N's worker thread only, never concurrently with itself, and
// never while the connection thread changes that queue (workers are stopped around changes).
//
// Example (a device that echoes its readable bytes back):
//   absl::Duration ProcessQueue(Virtqueue& queue) override {
//     DescriptorChain chain;
//     while (queue.Pop(&chain)) {
//       std::vector<uint8_t> data(chain.readable_bytes);
//       CopyFromSegments(chain.readable, 0, data.data(), data.size());
//       queue.Push(chain, CopyToSegments(chain.writable, 0, data.data(), data.size()));
//     }
//     return absl::InfiniteDuration();
//   }
#ifndef COMMON_DEVICE_H_
#define COMMON_DEVICE_H_

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/virtqueue.h"

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
};

// What ProcessQueue returns when it stopped taking requests until its own event fd (see
// QueueEventFd) fires or the guest kicks: all its I/O slots are busy, or (an event queue) the
// guest's buffers wait for events that have not happened yet.
constexpr absl::Duration kUntilDeviceEvent = absl::Hours(24);
// The same, from a device that pops every chain the guest makes available and holds it until its
// event (gpio's interrupt buffers, requests handed to a thread pool): a chain that arrives while
// notifications were off is popped at once instead of waiting for a kick the guest may have
// suppressed. (kUntilDeviceEvent leaves such chains for the kick: devices that keep buffers in
// the ring, like input's event queue, would otherwise be spun on.)
constexpr absl::Duration kHoldingUntilDeviceEvent = absl::Seconds(24 * 3600 + 1);

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
  // Called on the queue's worker thread when the guest kicked, when the queue starts, or when
  // the delay this function last returned has passed. Pops and completes chains. Returns how
  // long until it wants to be called again without a kick (absl::InfiniteDuration() when it
  // drained the queue; a finite delay when it left work for later, e.g. when rate limited).
  virtual absl::Duration ProcessQueue(Virtqueue& queue) = 0;
  // An fd the worker of queue `index` also waits on (e.g. an io_uring completion eventfd): when
  // it is readable the worker calls ProcessQueue, which must consume what made it readable (the
  // worker does not read it). -1 for none. Asked each time the
  // queue's worker starts (a device may set up per-queue state on the first call); the fd must
  // stay open until QueueStopped.
  virtual int QueueEventFd(int index) { return -1; }
  // Whether the device has finished work to hand back on queue `index` (e.g. I/O completions),
  // asked by a busy-polling worker on that queue's thread instead of sleeping on QueueEventFd.
  virtual bool QueueHasCompletions(int index) { return false; }
  // Queue `index` stopped (GET_VRING_BASE, reset, disconnect, or a memory table change, after
  // which it restarts); its worker is gone. `queue` (null
  // if it never ran) is still readable: a device holding popped but unfinished chains puts them
  // back with Unpop so the ring position reported to the front end includes them.
  virtual void QueueStopped(int index, Virtqueue* queue) {}
  // Back to the initial state (RESET_DEVICE, or the front end went away).
  virtual void Reset() {}
  // The daemon got SIGHUP: re-read host state (e.g. the size of a grown backing file) and tell
  // the front end what changed. Called on the connection thread.
  virtual void Reload() {}

  void set_config_change_notifier(ConfigChangeNotifier notifier) {
    notify_config_change_ = std::move(notifier);
  }

 protected:
  ConfigChangeNotifier notify_config_change_;
};

}  // namespace vhost

#endif  // COMMON_DEVICE_H_
