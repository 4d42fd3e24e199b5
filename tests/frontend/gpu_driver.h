// A guest-side virtio-gpu driver on our front end (virtio 1.2 §5.7), for tests and benchmarks
// of vhost-user-gpu: 2D control commands (display info, EDID, resources, backing, scanouts,
// transfers, flushes) and their responses, cursor commands, and a guest framebuffer to draw in.
//
// Queues: 0 control, 1 cursor. Wire structures come from <linux/virtio_gpu.h> (little-endian
// fields; this driver runs on little-endian hosts only), not from the daemon's own headers, so
// that the tests check the daemon against what Linux sends.
#ifndef TESTS_FRONTEND_GPU_DRIVER_H_
#define TESTS_FRONTEND_GPU_DRIVER_H_

#include <linux/virtio_gpu.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"

namespace vhost::frontend {

// A control command's outcome.
struct GpuReply {
  uint32_t used_len = 0;         // what the used element says the device wrote
  virtio_gpu_ctrl_hdr hdr{};     // the response header (type 0xffffffff if nothing was written)
  std::vector<uint8_t> payload;  // the response bytes after the header that were asked for
};

// A guest framebuffer: `height` rows of `stride` bytes in guest RAM, for a resource's backing.
struct GpuFramebuffer {
  uint64_t gpa = 0;
  uint8_t* host = nullptr;
  uint32_t width = 0, height = 0, stride = 0;
  uint64_t bytes() const { return uint64_t{stride} * height; }
  uint32_t* pixel(uint32_t x, uint32_t y) {
    return reinterpret_cast<uint32_t*>(host + uint64_t{y} * stride + uint64_t{x} * 4);
  }
};

class GpuDriver {
 public:
  static constexpr uint64_t kWantedFeatures = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) |
                                              Bit(kFeatureIndirectDesc) | Bit(VIRTIO_GPU_F_EDID);

  struct Options {
    uint32_t queue_size = 64;
    uint64_t features = kWantedFeatures;
    uint64_t ram_size = 64 << 20;
    absl::Duration timeout = absl::Seconds(10);
  };

  // Connects, negotiates and starts both queues.
  static absl::StatusOr<std::unique_ptr<GpuDriver>> Start(const std::string& socket,
                                                          const Options& options);

  // VHOST_USER_GPU_SET_SOCKET with `fd` (a socket whose other end plays QEMU's display).
  absl::Status SetDisplaySocket(int fd);
  absl::StatusOr<virtio_gpu_config> Config();

  // One control command: `req` (len bytes) readable, a response of `resp_len` bytes writable
  // (poisoned 0xff first). Waits for it.
  absl::StatusOr<GpuReply> Command(const void* req, uint32_t len, uint32_t resp_len);
  template <typename Request>
  absl::StatusOr<GpuReply> Command(const Request& req,
                                   uint32_t resp_len = sizeof(virtio_gpu_ctrl_hdr)) {
    return Command(&req, sizeof(req), resp_len);
  }
  // A command whose readable part is several buffers (attach-backing's request then entries).
  absl::StatusOr<GpuReply> CommandParts(absl::Span<const std::vector<uint8_t>> parts,
                                        uint32_t resp_len);

  // The commands, each returning the response type (VIRTIO_GPU_RESP_*).
  absl::StatusOr<virtio_gpu_resp_display_info> GetDisplayInfo();
  absl::StatusOr<std::vector<uint8_t>> GetEdid(uint32_t scanout);  // the EDID's bytes
  absl::StatusOr<uint32_t> CreateResource(uint32_t id, uint32_t format, uint32_t width,
                                          uint32_t height);
  absl::StatusOr<uint32_t> AttachBacking(uint32_t id,
                                         absl::Span<const virtio_gpu_mem_entry> entries);
  absl::StatusOr<uint32_t> DetachBacking(uint32_t id);
  absl::StatusOr<uint32_t> Unref(uint32_t id);
  absl::StatusOr<uint32_t> SetScanout(uint32_t scanout, uint32_t resource,
                                      const virtio_gpu_rect& rect);
  absl::StatusOr<uint32_t> TransferToHost(uint32_t resource, const virtio_gpu_rect& rect,
                                          uint64_t offset);
  absl::StatusOr<uint32_t> Flush(uint32_t resource, const virtio_gpu_rect& rect);

  // Cursor queue commands (no response: the chain only carries the request). Waits until the
  // device has taken and returned the chain.
  absl::Status UpdateCursor(uint32_t scanout, uint32_t resource, uint32_t x, uint32_t y,
                            uint32_t hot_x, uint32_t hot_y);
  absl::Status MoveCursor(uint32_t scanout, uint32_t x, uint32_t y);

  // A framebuffer in guest RAM (rows 4-byte pixels, 64-byte aligned start).
  absl::StatusOr<GpuFramebuffer> AllocateFramebuffer(uint32_t width, uint32_t height,
                                                     uint32_t stride = 0);
  // The framebuffer as one backing entry of resource `id`.
  absl::StatusOr<uint32_t> AttachFramebuffer(uint32_t id, const GpuFramebuffer& fb);
  // Resource `id` of `fb`'s size and `format`, backed by `fb`, shown on `scanout`.
  absl::Status ShowFramebuffer(uint32_t id, uint32_t format, uint32_t scanout,
                               const GpuFramebuffer& fb);

  DeviceConnection* device() { return device_.get(); }
  Frontend* frontend() { return device_->frontend(); }
  GuestRam* ram() { return device_->ram(); }
  FrontendQueue* control_queue() { return device_->queue(0); }
  FrontendQueue* cursor_queue() { return device_->queue(1); }

 private:
  explicit GpuDriver(const Options& options) : options_(options) {}
  absl::StatusOr<uint32_t> WaitFor(FrontendQueue* queue, uint16_t id);
  absl::StatusOr<uint32_t> Simple(const void* req, uint32_t len);
  absl::Status Cursor(const virtio_gpu_update_cursor& cmd);

  Options options_;
  std::unique_ptr<DeviceConnection> device_;
  // One request and one response area, reused by each command (commands run one at a time).
  uint64_t req_gpa_ = 0, resp_gpa_ = 0, cursor_gpa_ = 0;
  uint8_t *req_ = nullptr, *resp_ = nullptr, *cursor_ = nullptr;
  static constexpr uint32_t kScratch = 64 << 10;
};

// A virtio_gpu_ctrl_hdr of `type` (flags, fence and context zero).
virtio_gpu_ctrl_hdr GpuHdr(uint32_t type);
virtio_gpu_rect GpuRect(uint32_t x, uint32_t y, uint32_t width, uint32_t height);

}  // namespace vhost::frontend

#endif  // TESTS_FRONTEND_GPU_DRIVER_H_
