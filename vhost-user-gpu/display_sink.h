// Where a gpu device's scanouts and cursors are shown: QEMU's display end of the vhost-user-gpu
// display protocol (display_channel.h), or a fake in tests. The device calls it from its
// control and cursor queues' threads, never concurrently (it serializes the calls itself).
//
// Pixels handed over are always 32-bit x8r8g8b8 in memory order B, G, R, X (the format QEMU's
// display surfaces use, and virtio-gpu's B8G8R8X8_UNORM): the device converts the others.
#ifndef VHOST_USER_GPU_DISPLAY_SINK_H_
#define VHOST_USER_GPU_DISPLAY_SINK_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vhost {

constexpr uint32_t kCursorSize = 64;  // virtio-gpu cursors are 64 x 64 ARGB

struct Rect {
  uint32_t x = 0, y = 0, width = 0, height = 0;
};

// What the display end says about one scanout (its window's size), for GET_DISPLAY_INFO.
struct ScanoutInfo {
  bool enabled = false;
  uint32_t width = 0;
  uint32_t height = 0;
};

class DisplaySink {
 public:
  virtual ~DisplaySink() = default;

  // Scanout `scanout_id` shows a `width` x `height` frame from now on (0 x 0: disabled).
  virtual absl::Status Scanout(uint32_t scanout_id, uint32_t width, uint32_t height) = 0;
  // The pixels of `rect` of scanout `scanout_id`, rect.height rows of rect.width x8r8g8b8
  // pixels, `stride` bytes from one row to the next. The rect lies within the scanout.
  virtual absl::Status Update(uint32_t scanout_id, const Rect& rect,
                              absl::Span<const uint8_t> pixels, uint32_t stride) = 0;
  // A new cursor image (kCursorSize x kCursorSize ARGB pixels) at (x, y) with its hot spot.
  virtual absl::Status CursorUpdate(uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t hot_x,
                                    uint32_t hot_y, absl::Span<const uint32_t> argb) = 0;
  // The cursor moves to (x, y); CursorHide: it is not shown.
  virtual absl::Status CursorMove(uint32_t scanout_id, uint32_t x, uint32_t y) = 0;
  virtual absl::Status CursorHide(uint32_t scanout_id) = 0;
  // What the display end shows, per scanout; fewer entries than scanouts, or an error, leave
  // the device's defaults for the rest.
  virtual absl::StatusOr<std::vector<ScanoutInfo>> DisplayInfo() = 0;
  // The display end's EDID blob for a scanout; an error leaves the device's own EDID.
  virtual absl::StatusOr<std::vector<uint8_t>> Edid(uint32_t scanout_id) = 0;
};

}  // namespace vhost

#endif  // VHOST_USER_GPU_DISPLAY_SINK_H_
