// A stand-in for QEMU's display end of the vhost-user-gpu display protocol, for tests: it owns
// one end of a stream socket (the daemon gets the other, as from VHOST_USER_GPU_SET_SOCKET),
// reads every message on a thread of its own and keeps what a display would show: a framebuffer
// per scanout (made by SCANOUT, written by UPDATE) and the cursor. It answers
// GET_PROTOCOL_FEATURES, GET_DISPLAY_INFO and GET_EDID as configured, and like QEMU it answers
// nothing else, ignores messages for scanouts past its max_outputs and sends no EDID reply for
// them.
//
// Unlike QEMU it checks everything: a message of the wrong size, with flags set, an UPDATE
// outside its framebuffer or of a scanout that has none, a dmabuf request or an unknown one is
// counted in Stats::bad_messages (and skipped, its bytes read), so a test can assert the daemon
// sent none.
#ifndef VHOST_USER_GPU_DISPLAY_FAKE_DISPLAY_END_H_
#define VHOST_USER_GPU_DISPLAY_FAKE_DISPLAY_END_H_

#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/unique_fd.h"
#include "vhost-user-gpu/display/display_protocol.h"
#include "vhost-user-gpu/display_sink.h"

namespace vhost::gpu::display {

class FakeDisplayEnd {
 public:
  struct Options {
    // GET_PROTOCOL_FEATURES' answer; QEMU offers both.
    uint64_t protocol_features = kFeatureEdid | kFeatureDmabuf2;
    // GET_DISPLAY_INFO's answer, per scanout (the rest are disabled).
    std::vector<ScanoutInfo> displays = {{true, 1280, 800}};
    // GET_EDID's answer (at most kEdidBlobSize bytes are sent), for every scanout.
    std::vector<uint8_t> edid = TestEdid();
    // QEMU's max_outputs: messages for scanouts from here on are ignored, GET_EDID unanswered.
    uint32_t max_outputs = kMaxScanouts;
    // false: read and count requests but answer none (a front end that hangs).
    bool answer = true;
    // Larger messages (and framebuffers) are bad messages, skipped without allocating them.
    size_t max_message = size_t{64} << 20;
  };

  struct Stats {
    uint64_t messages = 0;  // every message read, good or bad
    uint64_t get_features = 0;
    uint64_t set_features = 0;
    std::optional<uint64_t> features_set;  // the last SET_PROTOCOL_FEATURES' value
    uint64_t display_info = 0;
    uint64_t edid = 0;
    uint64_t scanouts = 0;
    uint64_t updates = 0;       // UPDATEs applied to a framebuffer
    uint64_t update_bytes = 0;  // their pixel bytes
    uint64_t cursor_updates = 0;
    uint64_t cursor_moves = 0;
    uint64_t cursor_hides = 0;
    uint64_t ignored = 0;       // for scanouts past max_outputs, as QEMU ignores them
    uint64_t bad_messages = 0;  // see the top of this file
    bool closed = false;        // the daemon's end closed (or the socket failed)
  };

  // A scanout's pixels, x8r8g8b8 as 32-bit values (memory order B, G, R, X).
  struct Framebuffer {
    uint32_t width = 0;
    uint32_t height = 0;
    std::vector<uint32_t> pixels;  // rows of `width`
    uint32_t at(uint32_t x, uint32_t y) const { return pixels[size_t{y} * width + x]; }
  };

  struct Cursor {
    bool visible = false;
    uint32_t scanout_id = 0;
    uint32_t x = 0, y = 0;
    uint32_t hot_x = 0, hot_y = 0;
    std::vector<uint32_t> image;  // kCursorSize^2 a8r8g8b8 pixels; empty before CURSOR_UPDATE
  };

  // A connected socket pair: the fake serves one end; TakeDaemonEnd() hands out the other.
  static absl::StatusOr<std::unique_ptr<FakeDisplayEnd>> Create(Options options);
  static absl::StatusOr<std::unique_ptr<FakeDisplayEnd>> Create() { return Create(Options()); }
  // Serves `socket` (a connected stream socket; made blocking).
  FakeDisplayEnd(UniqueFd socket, Options options);
  // Shuts the socket down and joins the reader.
  ~FakeDisplayEnd();

  FakeDisplayEnd(const FakeDisplayEnd&) = delete;
  FakeDisplayEnd& operator=(const FakeDisplayEnd&) = delete;

  // The daemon's end of the pair Create() made (invalid after the first call).
  UniqueFd TakeDaemonEnd() { return std::move(daemon_end_); }

  // Changes the answers from the next request on.
  void SetOptions(Options options);

  Stats stats() const;
  // nullopt for a scanout not shown (no SCANOUT yet, or disabled).
  std::optional<Framebuffer> framebuffer(uint32_t scanout_id) const;
  Cursor cursor() const;

  // Waits until `done(stats)` holds, at most `timeout`: whether it does.
  bool WaitFor(const std::function<bool(const Stats&)>& done, absl::Duration timeout) const;
  bool WaitForUpdates(uint64_t count, absl::Duration timeout) const;
  bool WaitForMessages(uint64_t count, absl::Duration timeout) const;
  bool WaitForClose(absl::Duration timeout) const;

  // Writes scanout `scanout_id`'s framebuffer as a binary PPM (for looking at a test's frame).
  absl::Status WritePpm(uint32_t scanout_id, const std::string& path) const;

  // A 128-byte EDID base block (valid header and checksum) for tests.
  static std::vector<uint8_t> TestEdid();

 private:
  void Run();
  // Reads exactly `size` bytes: false on EOF or an error.
  bool ReadAll(void* data, size_t size);
  bool Discard(size_t size);
  void Send(const std::vector<uint8_t>& message);
  // Handles one message whose header was read; false when the socket is done.
  bool HandleMessage(const Header& header);
  bool HandleUpdate(const Header& header);

  UniqueFd socket_;
  UniqueFd daemon_end_;
  // Guards what follows (std::mutex so that ThreadSanitizer sees it); changed_ is notified
  // whenever stats_ changes.
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  Options options_;
  Stats stats_;
  std::array<std::optional<Framebuffer>, kMaxScanouts> framebuffers_;
  Cursor cursor_;
  std::thread reader_;
};

}  // namespace vhost::gpu::display

#endif  // VHOST_USER_GPU_DISPLAY_FAKE_DISPLAY_END_H_
