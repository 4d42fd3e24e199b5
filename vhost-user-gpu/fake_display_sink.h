// A DisplaySink for tests: records every call, keeps what each scanout shows (the pixels its
// updates painted) and answers DisplayInfo/Edid as the test sets.
#ifndef VHOST_USER_GPU_FAKE_DISPLAY_SINK_H_
#define VHOST_USER_GPU_FAKE_DISPLAY_SINK_H_

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vhost-user-gpu/display_sink.h"

namespace vhost::gpu::testing {

class FakeDisplaySink : public DisplaySink {
 public:
  struct ScanoutCall {
    uint32_t scanout_id, width, height;
  };
  struct UpdateCall {
    uint32_t scanout_id;
    Rect rect;
    uint32_t stride;
  };
  struct CursorCall {
    enum Kind { kUpdate, kMove, kHide } kind;
    uint32_t scanout_id, x, y, hot_x, hot_y;
    std::vector<uint32_t> argb;  // kUpdate only
  };
  // What one scanout shows: its size and width * height x8r8g8b8 pixels (B, G, R, X bytes).
  struct Frame {
    uint32_t width = 0, height = 0;
    std::vector<uint8_t> pixels;
    // The pixel at (x, y) as 0xXXRRGGBB.
    uint32_t Pixel(uint32_t x, uint32_t y) const {
      uint32_t value;
      std::memcpy(&value, &pixels[(size_t{y} * width + x) * 4], 4);
      return value;
    }
  };

  absl::Status Scanout(uint32_t scanout_id, uint32_t width, uint32_t height) override {
    calls.push_back('S');
    scanout_calls.push_back({scanout_id, width, height});
    Frame& frame = frames[scanout_id];
    frame.width = width;
    frame.height = height;
    frame.pixels.assign(size_t{width} * height * 4, 0);
    return result;
  }
  absl::Status Update(uint32_t scanout_id, const Rect& rect, absl::Span<const uint8_t> pixels,
                      uint32_t stride) override {
    calls.push_back('U');
    update_calls.push_back({scanout_id, rect, stride});
    Frame& frame = frames[scanout_id];
    // Paints the rect; a rect beyond the scanout is a device bug the test sees as a failure.
    if (uint64_t{rect.x} + rect.width > frame.width ||
        uint64_t{rect.y} + rect.height > frame.height ||
        pixels.size() <
            (rect.height == 0 ? 0 : size_t{stride} * (rect.height - 1) + size_t{rect.width} * 4)) {
      bad_updates++;
      return result;
    }
    for (uint32_t row = 0; row < rect.height; ++row) {
      std::memcpy(&frame.pixels[((size_t{rect.y} + row) * frame.width + rect.x) * 4],
                  pixels.data() + size_t{row} * stride, size_t{rect.width} * 4);
    }
    return result;
  }
  absl::Status CursorUpdate(uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t hot_x,
                            uint32_t hot_y, absl::Span<const uint32_t> argb) override {
    calls.push_back('C');
    cursor_calls.push_back(
        {CursorCall::kUpdate, scanout_id, x, y, hot_x, hot_y, {argb.begin(), argb.end()}});
    return result;
  }
  absl::Status CursorMove(uint32_t scanout_id, uint32_t x, uint32_t y) override {
    calls.push_back('M');
    cursor_calls.push_back({CursorCall::kMove, scanout_id, x, y, 0, 0, {}});
    return result;
  }
  absl::Status CursorHide(uint32_t scanout_id) override {
    calls.push_back('H');
    cursor_calls.push_back({CursorCall::kHide, scanout_id, 0, 0, 0, 0, {}});
    return result;
  }
  absl::StatusOr<std::vector<ScanoutInfo>> DisplayInfo() override {
    calls.push_back('D');
    ++display_info_calls;
    return display_info;
  }
  absl::StatusOr<std::vector<uint8_t>> Edid(uint32_t scanout_id) override {
    calls.push_back('E');
    auto it = edids.find(scanout_id);
    if (it == edids.end()) return absl::NotFoundError("no EDID");
    return it->second;
  }

  // ---- set by the test
  absl::Status result;  // what every call returns
  absl::StatusOr<std::vector<ScanoutInfo>> display_info =
      absl::UnavailableError("no display information");
  std::map<uint32_t, std::vector<uint8_t>> edids;

  // ---- recorded
  std::string calls;  // one letter a call, in order: Scanout Update Cursor Move Hide Display Edid
  std::vector<ScanoutCall> scanout_calls;
  std::vector<UpdateCall> update_calls;
  std::vector<CursorCall> cursor_calls;
  std::map<uint32_t, Frame> frames;
  int bad_updates = 0;
  int display_info_calls = 0;
};

}  // namespace vhost::gpu::testing

#endif  // VHOST_USER_GPU_FAKE_DISPLAY_SINK_H_
