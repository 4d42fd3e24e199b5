// GpuDevice on TestQueues with a FakeDisplaySink: the 2D frame path (create, attach, set
// scanout, transfer, flush) puts the guest's pixels on the display for two formats; flushes
// are cut to each scanout's rect; the cursor queue's update, move and hide; fences echoed;
// every error response where it applies; display info and EDIDs from the sink or the device;
// a sink arriving late or replaced; reset frees everything.
#include "vhost-user-gpu/gpu_device.h"

#include <sys/eventfd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "common/virtio/features.h"
#include "gtest/gtest.h"
#include "vhost-user-gpu/fake_display_sink.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu {
namespace {

using ::vhost::testing::Buffer;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::StatusIs;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UsedElement;
using FakeSink = ::vhost::gpu::testing::FakeDisplaySink;

// Where R, G, B and A (-1: padding) lie in a pixel's bytes, per format: written out here again
// (not taken from pixel_format) so that the test checks the device against the spec's names.
struct FormatBytes {
  uint32_t format;
  int r, g, b, a;
};
constexpr FormatBytes kBgrx{kFormatB8G8R8X8, 2, 1, 0, -1};
constexpr FormatBytes kRgba{kFormatR8G8B8A8, 0, 1, 2, 3};
constexpr FormatBytes kBgra{kFormatB8G8R8A8, 2, 1, 0, 3};
constexpr FormatBytes kXbgr{kFormatX8B8G8R8, 3, 2, 1, -1};

// The guest's picture: a colour per pixel (0xAARRGGBB) that differs in every channel.
uint32_t Color(uint32_t x, uint32_t y, uint32_t salt) {
  const uint32_t r = (x * 5 + salt) & 0xff, g = (y * 9 + salt) & 0xff,
                 b = ((x ^ y) + 3 * salt) & 0xff;
  const uint32_t a = (x + y + 0x40) & 0xff;
  return a << 24 | r << 16 | g << 8 | b;
}

void Encode(const FormatBytes& f, uint32_t argb, uint8_t* out) {
  out[f.r] = (argb >> 16) & 0xff;
  out[f.g] = (argb >> 8) & 0xff;
  out[f.b] = argb & 0xff;
  if (f.a >= 0) out[f.a] = argb >> 24;
  // The padding byte of X formats stays whatever it was: the display must not depend on it.
}

constexpr uint32_t kWidth = 32;
constexpr uint32_t kHeight = 16;

class GpuDeviceTest : public ::testing::Test {
 protected:
  GpuDeviceTest() : ram_(8 << 20) {}

  void Make(GpuOptions options = GpuOptions(), bool with_sink = true) {
    ASSERT_OK_AND_ASSIGN(device_, GpuDevice::Create(options, with_sink ? &sink_ : nullptr));
    ASSERT_OK(device_->SetFeatures(Bit(kFeatureVersion1) | Bit(kFeatureEdid)));
    for (int index : {kControlQueue, kCursorQueue}) {
      TestQueue::Options queue_options;
      queue_options.index = index;
      ASSERT_OK_AND_ASSIGN(queues_[index], TestQueue::Create(&ram_, queue_options));
      ASSERT_OK(queues_[index]->Start(*device_));
    }
  }
  void TearDown() override {
    if (!device_) return;
    for (auto& q : queues_) {
      if (q) q->Stop(*device_);
    }
  }
  TestQueue& q(int index) { return *queues_[index]; }

  uint64_t Put(const void* data, size_t n) { return ram_.Put(data, n); }
  template <typename T>
  T Get(uint64_t gpa) {
    return ram_.Get<T>(gpa);
  }

  struct Reply {
    uint32_t written = 0;
    uint64_t gpa = 0;  // of the response buffer
    CtrlHdr hdr{};     // the response's header, when written
  };
  // One request of `n` bytes on `queue` with a `reply_bytes` response buffer (none for 0).
  Reply Send(const void* request, size_t n, uint32_t reply_bytes = sizeof(CtrlHdr),
             int queue = kControlQueue) {
    Reply reply;
    const uint64_t in = Put(request, n);
    std::vector<Buffer> writable;
    if (reply_bytes > 0) {
      reply.gpa = ram_.Allocate(reply_bytes);
      std::memset(ram_.Host(reply.gpa, reply_bytes), 0xee, reply_bytes);
      writable.push_back({reply.gpa, reply_bytes});
    }
    EXPECT_OK(q(queue).Add({{in, static_cast<uint32_t>(n)}}, writable));
    q(queue).Run(*device_);
    std::vector<UsedElement> used = q(queue).Used();
    EXPECT_EQ(used.size(), 1u);  // every command completes at once (2D is synchronous)
    if (used.empty()) return reply;
    reply.written = used[0].len;
    if (reply.written >= sizeof(CtrlHdr)) reply.hdr = Get<CtrlHdr>(reply.gpa);
    return reply;
  }
  template <typename T>
  uint32_t Command(const T& request, int queue = kControlQueue) {
    Reply reply = Send(&request, sizeof(request), sizeof(CtrlHdr), queue);
    EXPECT_EQ(reply.written, sizeof(CtrlHdr));
    return reply.written == sizeof(CtrlHdr) ? reply.hdr.type : 0;
  }
  static CtrlHdr Hdr(uint32_t type) {
    CtrlHdr hdr{};
    hdr.type = type;
    return hdr;
  }

  uint32_t Create(uint32_t id, uint32_t format, uint32_t width, uint32_t height) {
    return Command(ResourceCreate2d{Hdr(kCmdResourceCreate2d), id, format, width, height});
  }
  uint32_t Attach(uint32_t id, const std::vector<MemEntry>& entries) {
    std::vector<uint8_t> request(sizeof(ResourceAttachBacking) + entries.size() * sizeof(MemEntry));
    const ResourceAttachBacking head{Hdr(kCmdResourceAttachBacking), id,
                                     static_cast<uint32_t>(entries.size())};
    std::memcpy(request.data(), &head, sizeof(head));
    if (!entries.empty()) {
      std::memcpy(request.data() + sizeof(head), entries.data(), entries.size() * sizeof(MemEntry));
    }
    Reply reply = Send(request.data(), request.size());
    return reply.hdr.type;
  }
  uint32_t Scanout(uint32_t scanout, uint32_t id, GpuRect rect) {
    return Command(SetScanout{Hdr(kCmdSetScanout), rect, scanout, id});
  }
  uint32_t Transfer(uint32_t id, GpuRect rect, uint64_t offset) {
    return Command(TransferToHost2d{Hdr(kCmdTransferToHost2d), rect, offset, id, 0});
  }
  uint32_t Flush(uint32_t id, GpuRect rect) {
    return Command(ResourceFlush{Hdr(kCmdResourceFlush), rect, id, 0});
  }
  uint32_t Unref(uint32_t id) { return Command(ResourceUnref{Hdr(kCmdResourceUnref), id, 0}); }
  // A cursor command as Linux sends it: no response buffer (written bytes in *written).
  void CursorNoReply(uint32_t type, uint32_t scanout, uint32_t x, uint32_t y, uint32_t id = 0,
                     uint32_t hot_x = 0, uint32_t hot_y = 0) {
    const UpdateCursor request{Hdr(type), {scanout, x, y, 0}, id, hot_x, hot_y, 0};
    Reply reply = Send(&request, sizeof(request), 0, kCursorQueue);
    EXPECT_EQ(reply.written, 0u);
  }
  uint32_t CursorCommand(uint32_t type, uint32_t scanout, uint32_t x, uint32_t y, uint32_t id = 0) {
    return Command(UpdateCursor{Hdr(type), {scanout, x, y, 0}, id, 0, 0, 0}, kCursorQueue);
  }

  // A framebuffer for a width x height resource in guest memory, in two pieces apart from each
  // other (a scatter list, as the guest's pages are), painted with Color(x, y, salt).
  struct Framebuffer {
    std::vector<MemEntry> entries;
  };
  Framebuffer MakeFramebuffer(uint32_t width, uint32_t height) {
    const uint32_t bytes = width * height * 4;
    const uint32_t first = (bytes / 2 + 100) & ~3u;  // not a row boundary
    Framebuffer fb;
    fb.entries.push_back({ram_.Allocate(first), first, 0});
    ram_.Allocate(4096);  // a gap
    fb.entries.push_back({ram_.Allocate(bytes - first), bytes - first, 0});
    return fb;
  }
  uint8_t* FramebufferByte(const Framebuffer& fb, uint64_t offset) {
    for (const MemEntry& e : fb.entries) {
      if (offset < e.length) return ram_.Host(e.addr + offset, 1);
      offset -= e.length;
    }
    ADD_FAILURE() << "offset beyond the framebuffer";
    return nullptr;
  }
  void Paint(const Framebuffer& fb, const FormatBytes& f, uint32_t width, uint32_t height,
             uint32_t salt, GpuRect rect = {0, 0, 0, 0}) {
    if (rect.width == 0) rect = {0, 0, width, height};
    for (uint32_t y = rect.y; y < rect.y + rect.height; ++y) {
      for (uint32_t x = rect.x; x < rect.x + rect.width; ++x) {
        uint8_t pixel[4];
        for (int i = 0; i < 4; ++i) pixel[i] = *FramebufferByte(fb, (y * width + x) * 4 + i);
        Encode(f, Color(x, y, salt), pixel);
        for (int i = 0; i < 4; ++i) *FramebufferByte(fb, (y * width + x) * 4 + i) = pixel[i];
      }
    }
  }
  // Resource `id`, kWidth x kHeight in format f, painted and shown whole on scanout 0.
  Framebuffer ShowFrame(uint32_t id, const FormatBytes& f, uint32_t salt, uint32_t scanout = 0) {
    Framebuffer fb = MakeFramebuffer(kWidth, kHeight);
    Paint(fb, f, kWidth, kHeight, salt);
    EXPECT_EQ(Create(id, f.format, kWidth, kHeight), kRespOkNodata);
    EXPECT_EQ(Attach(id, fb.entries), kRespOkNodata);
    EXPECT_EQ(Scanout(scanout, id, {0, 0, kWidth, kHeight}), kRespOkNodata);
    EXPECT_EQ(Transfer(id, {0, 0, kWidth, kHeight}, 0), kRespOkNodata);
    EXPECT_EQ(Flush(id, {0, 0, kWidth, kHeight}), kRespOkNodata);
    return fb;
  }
  // Whether the sink's scanout shows Color(x + dx, y + dy, salt) (opaque) at each of its pixels.
  void ExpectShows(uint32_t scanout, uint32_t salt, uint32_t dx = 0, uint32_t dy = 0) {
    const FakeSink::Frame& frame = sink_.frames[scanout];
    for (uint32_t y = 0; y < frame.height; ++y) {
      for (uint32_t x = 0; x < frame.width; ++x) {
        ASSERT_EQ(frame.Pixel(x, y), 0xff000000u | (Color(x + dx, y + dy, salt) & 0xffffff))
            << "scanout " << scanout << " at " << x << "," << y;
      }
    }
  }

  FakeGuestMemory ram_;
  FakeSink sink_;
  std::unique_ptr<GpuDevice> device_;
  std::unique_ptr<TestQueue> queues_[2];
};

TEST_F(GpuDeviceTest, InfoAndConfig) {
  GpuOptions options;
  options.outputs = 3;
  Make(options);
  const DeviceInfo info = device_->Info();
  EXPECT_EQ(info.virtio_id, 16u);
  EXPECT_EQ(info.num_queues, 2u);
  EXPECT_NE(info.features & Bit(kFeatureEdid), 0u);
  EXPECT_EQ(info.features & Bit(kFeatureVirgl), 0u);
  EXPECT_EQ(info.config_size, sizeof(GpuConfig));
  GpuConfig config;
  ASSERT_OK(
      device_->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), sizeof(config))));
  EXPECT_EQ(config.num_scanouts, 3u);
  EXPECT_EQ(config.events_read, 0u);
  EXPECT_EQ(config.num_capsets, 0u);

  // A display change raises VIRTIO_GPU_EVENT_DISPLAY and tells the front end.
  int notices = 0;
  device_->set_config_change_notifier([&] {
    ++notices;
    return absl::OkStatus();
  });
  device_->DisplayChanged();
  EXPECT_EQ(notices, 1);
  ASSERT_OK(device_->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), 4)));
  EXPECT_EQ(config.events_read, kEventDisplay);
  // Writing a 0 bit clears nothing; writing the 1 bit clears it.
  const uint32_t zero = 0, one = kEventDisplay;
  ASSERT_OK(
      device_->WriteConfig(4, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&zero), 4)));
  ASSERT_OK(device_->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), 4)));
  EXPECT_EQ(config.events_read, kEventDisplay);
  ASSERT_OK(
      device_->WriteConfig(4, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&one), 4)));
  ASSERT_OK(device_->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), 4)));
  EXPECT_EQ(config.events_read, 0u);
  // Only events_clear is writable.
  EXPECT_THAT(
      device_->WriteConfig(0, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&one), 4)),
      StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(
      device_->WriteConfig(8, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&one), 4)),
      StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(GpuDeviceTest, CreateRefusesBadOptions) {
  GpuOptions options;
  options.outputs = 0;
  EXPECT_THAT(GpuDevice::Create(options, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  options.outputs = 17;
  EXPECT_THAT(GpuDevice::Create(options, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  options.outputs = 16;
  options.width = 0;
  EXPECT_THAT(GpuDevice::Create(options, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  options.width = 5000;
  EXPECT_THAT(GpuDevice::Create(options, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  options.width = 1024;
  EXPECT_OK(GpuDevice::Create(options, nullptr));
}

TEST_F(GpuDeviceTest, FullFramePathBgrx) {
  Make();
  ShowFrame(1, kBgrx, 7);
  ASSERT_EQ(sink_.scanout_calls.size(), 1u);
  EXPECT_EQ(sink_.scanout_calls[0].scanout_id, 0u);
  EXPECT_EQ(sink_.scanout_calls[0].width, kWidth);
  EXPECT_EQ(sink_.scanout_calls[0].height, kHeight);
  ASSERT_EQ(sink_.update_calls.size(), 1u);
  EXPECT_EQ(sink_.update_calls[0].rect.width, kWidth);
  EXPECT_EQ(sink_.update_calls[0].rect.height, kHeight);
  EXPECT_EQ(sink_.update_calls[0].stride, kWidth * 4);
  EXPECT_EQ(sink_.bad_updates, 0);
  ExpectShows(0, 7);
}

TEST_F(GpuDeviceTest, FullFramePathRgbaAndXbgr) {
  Make();
  ShowFrame(1, kRgba, 3);
  ExpectShows(0, 3);
  // A second resource in another format, flipped to on the same scanout (same size: no new
  // SCANOUT for the sink).
  ShowFrame(2, kXbgr, 11);
  EXPECT_EQ(sink_.scanout_calls.size(), 1u);
  EXPECT_EQ(sink_.bad_updates, 0);
  ExpectShows(0, 11);
}

TEST_F(GpuDeviceTest, PartialTransferAndFlushChangeOnlyTheirRect) {
  Make();
  Framebuffer fb = ShowFrame(1, kBgrx, 1);
  const GpuRect rect{5, 3, 10, 6};
  Paint(fb, kBgrx, kWidth, kHeight, 2, rect);
  // Transfer at the rect's offset in the backing, as Linux does.
  ASSERT_EQ(Transfer(1, rect, (rect.y * kWidth + rect.x) * 4), kRespOkNodata);
  ASSERT_EQ(Flush(1, rect), kRespOkNodata);
  ASSERT_EQ(sink_.update_calls.size(), 2u);
  EXPECT_EQ(sink_.update_calls[1].rect.x, rect.x);
  EXPECT_EQ(sink_.update_calls[1].rect.y, rect.y);
  EXPECT_EQ(sink_.update_calls[1].rect.width, rect.width);
  EXPECT_EQ(sink_.update_calls[1].rect.height, rect.height);
  const FakeSink::Frame& frame = sink_.frames[0];
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) {
      const bool inside = x >= 5 && x < 15 && y >= 3 && y < 9;
      ASSERT_EQ(frame.Pixel(x, y), 0xff000000u | (Color(x, y, inside ? 2 : 1) & 0xffffff))
          << x << "," << y;
    }
  }
}

TEST_F(GpuDeviceTest, FlushIsCutToEachScanoutsRect) {
  GpuOptions options;
  options.outputs = 2;
  Make(options);
  // One 32x16 resource: scanout 0 shows its 16x8 part at (8, 4), scanout 1 all of it.
  Framebuffer fb = MakeFramebuffer(kWidth, kHeight);
  Paint(fb, kBgra, kWidth, kHeight, 5);
  ASSERT_EQ(Create(1, kFormatB8G8R8A8, kWidth, kHeight), kRespOkNodata);
  ASSERT_EQ(Attach(1, fb.entries), kRespOkNodata);
  ASSERT_EQ(Transfer(1, {0, 0, kWidth, kHeight}, 0), kRespOkNodata);
  ASSERT_EQ(Scanout(0, 1, {8, 4, 16, 8}), kRespOkNodata);
  ASSERT_EQ(Scanout(1, 1, {0, 0, kWidth, kHeight}), kRespOkNodata);
  ASSERT_EQ(sink_.scanout_calls.size(), 2u);
  EXPECT_EQ(sink_.scanout_calls[0].width, 16u);
  EXPECT_EQ(sink_.scanout_calls[0].height, 8u);

  // A flush of the top-left 12x6: scanout 0 gets its overlap (8,4)-(12,6), in its own
  // coordinates; scanout 1 the whole rect.
  ASSERT_EQ(Flush(1, {0, 0, 12, 6}), kRespOkNodata);
  ASSERT_EQ(sink_.update_calls.size(), 2u);
  EXPECT_EQ(sink_.update_calls[0].scanout_id, 0u);
  EXPECT_EQ(sink_.update_calls[0].rect.x, 0u);
  EXPECT_EQ(sink_.update_calls[0].rect.y, 0u);
  EXPECT_EQ(sink_.update_calls[0].rect.width, 4u);
  EXPECT_EQ(sink_.update_calls[0].rect.height, 2u);
  EXPECT_EQ(sink_.update_calls[1].scanout_id, 1u);
  EXPECT_EQ(sink_.update_calls[1].rect.width, 12u);
  EXPECT_EQ(sink_.update_calls[1].rect.height, 6u);
  EXPECT_EQ(sink_.frames[0].Pixel(0, 0), 0xff000000u | (Color(8, 4, 5) & 0xffffff));
  EXPECT_EQ(sink_.frames[0].Pixel(3, 1), 0xff000000u | (Color(11, 5, 5) & 0xffffff));

  // A flush outside scanout 0's part reaches scanout 1 only.
  ASSERT_EQ(Flush(1, {0, 12, 4, 4}), kRespOkNodata);
  ASSERT_EQ(sink_.update_calls.size(), 3u);
  EXPECT_EQ(sink_.update_calls[2].scanout_id, 1u);

  // A full flush: each shows its part.
  ASSERT_EQ(Flush(1, {0, 0, kWidth, kHeight}), kRespOkNodata);
  EXPECT_EQ(sink_.bad_updates, 0);
  ExpectShows(0, 5, 8, 4);
  ExpectShows(1, 5);
}

TEST_F(GpuDeviceTest, ScanoutIsToldOfSizeChangesOnly) {
  Make();
  ASSERT_EQ(Create(1, kFormatB8G8R8X8, 64, 32), kRespOkNodata);
  ASSERT_EQ(Scanout(0, 1, {0, 0, 64, 32}), kRespOkNodata);
  ASSERT_EQ(Scanout(0, 1, {0, 0, 64, 32}), kRespOkNodata);
  ASSERT_EQ(sink_.scanout_calls.size(), 1u);
  ASSERT_EQ(Scanout(0, 1, {0, 0, 32, 32}), kRespOkNodata);
  ASSERT_EQ(sink_.scanout_calls.size(), 2u);
  EXPECT_EQ(sink_.scanout_calls[1].width, 32u);
  // Resource 0 disables the scanout: a flush no longer reaches it.
  ASSERT_EQ(Scanout(0, 0, {0, 0, 0, 0}), kRespOkNodata);
  ASSERT_EQ(sink_.scanout_calls.size(), 3u);
  EXPECT_EQ(sink_.scanout_calls[2].width, 0u);
  EXPECT_EQ(sink_.scanout_calls[2].height, 0u);
  ASSERT_EQ(Flush(1, {0, 0, 64, 32}), kRespOkNodata);
  EXPECT_TRUE(sink_.update_calls.empty());
  // Unref of a resource on a scanout disables it too.
  ASSERT_EQ(Scanout(0, 1, {0, 0, 64, 32}), kRespOkNodata);
  ASSERT_EQ(Unref(1), kRespOkNodata);
  ASSERT_EQ(sink_.scanout_calls.size(), 5u);
  EXPECT_EQ(sink_.scanout_calls[4].width, 0u);
}

TEST_F(GpuDeviceTest, CursorUpdateMoveHide) {
  Make();
  Framebuffer fb = MakeFramebuffer(kCursorSize, kCursorSize);
  Paint(fb, kBgra, kCursorSize, kCursorSize, 9);
  ASSERT_EQ(Create(5, kFormatB8G8R8A8, kCursorSize, kCursorSize), kRespOkNodata);
  ASSERT_EQ(Attach(5, fb.entries), kRespOkNodata);
  ASSERT_EQ(Transfer(5, {0, 0, kCursorSize, kCursorSize}, 0), kRespOkNodata);

  CursorNoReply(kCmdUpdateCursor, 0, 100, 200, 5, 3, 4);
  ASSERT_EQ(sink_.cursor_calls.size(), 1u);
  const FakeSink::CursorCall& update = sink_.cursor_calls[0];
  EXPECT_EQ(update.kind, FakeSink::CursorCall::kUpdate);
  EXPECT_EQ(update.x, 100u);
  EXPECT_EQ(update.y, 200u);
  EXPECT_EQ(update.hot_x, 3u);
  EXPECT_EQ(update.hot_y, 4u);
  ASSERT_EQ(update.argb.size(), size_t{kCursorSize} * kCursorSize);
  for (uint32_t y = 0; y < kCursorSize; ++y) {
    for (uint32_t x = 0; x < kCursorSize; ++x) {
      ASSERT_EQ(update.argb[y * kCursorSize + x], Color(x, y, 9)) << x << "," << y;  // alpha kept
    }
  }

  CursorNoReply(kCmdMoveCursor, 0, 110, 220);
  ASSERT_EQ(sink_.cursor_calls.size(), 2u);
  EXPECT_EQ(sink_.cursor_calls[1].kind, FakeSink::CursorCall::kMove);
  EXPECT_EQ(sink_.cursor_calls[1].x, 110u);
  EXPECT_EQ(sink_.cursor_calls[1].y, 220u);

  // With a response buffer the cursor queue answers.
  EXPECT_EQ(CursorCommand(kCmdUpdateCursor, 0, 0, 0, 0), kRespOkNodata);  // resource 0: hide
  ASSERT_EQ(sink_.cursor_calls.size(), 3u);
  EXPECT_EQ(sink_.cursor_calls[2].kind, FakeSink::CursorCall::kHide);

  // A hot spot beyond the image is not passed on.
  CursorNoReply(kCmdUpdateCursor, 0, 1, 1, 5, 1000, 64);
  ASSERT_EQ(sink_.cursor_calls.size(), 4u);
  EXPECT_EQ(sink_.cursor_calls[3].hot_x, kCursorSize - 1);
  EXPECT_EQ(sink_.cursor_calls[3].hot_y, kCursorSize - 1);
}

TEST_F(GpuDeviceTest, CursorErrors) {
  Make();
  ASSERT_EQ(Create(1, kFormatB8G8R8A8, 32, 32), kRespOkNodata);
  EXPECT_EQ(CursorCommand(kCmdUpdateCursor, 0, 0, 0, 1), kRespErrInvalidParameter);  // not 64x64
  EXPECT_EQ(CursorCommand(kCmdUpdateCursor, 0, 0, 0, 9), kRespErrInvalidResourceId);
  EXPECT_EQ(CursorCommand(kCmdUpdateCursor, 1, 0, 0, 0), kRespErrInvalidScanoutId);
  EXPECT_EQ(CursorCommand(kCmdMoveCursor, 16, 0, 0), kRespErrInvalidScanoutId);
  // Control commands belong to the control queue, cursor commands to the cursor queue.
  EXPECT_EQ(Command(ResourceUnref{Hdr(kCmdResourceUnref), 1, 0}, kCursorQueue), kRespErrUnspec);
  EXPECT_EQ(Command(UpdateCursor{Hdr(kCmdMoveCursor), {0, 1, 1, 0}, 0, 0, 0, 0}), kRespErrUnspec);
  // A short cursor command.
  const CtrlHdr hdr = Hdr(kCmdMoveCursor);
  EXPECT_EQ(Send(&hdr, sizeof(hdr), sizeof(CtrlHdr), kCursorQueue).hdr.type, kRespErrUnspec);
  EXPECT_TRUE(sink_.cursor_calls.empty());
}

TEST_F(GpuDeviceTest, FencesAreEchoed) {
  Make();
  ResourceCreate2d create{Hdr(kCmdResourceCreate2d), 1, kFormatB8G8R8X8, 8, 8};
  create.hdr.flags = kFlagFence;
  create.hdr.fence_id = 0x123456789abcull;
  create.hdr.ctx_id = 5;
  create.hdr.ring_idx = 3;  // without VIRTIO_GPU_FLAG_INFO_RING_IDX: not echoed
  Reply reply = Send(&create, sizeof(create));
  EXPECT_EQ(reply.hdr.type, kRespOkNodata);
  EXPECT_EQ(reply.hdr.flags, kFlagFence);
  EXPECT_EQ(reply.hdr.fence_id, 0x123456789abcull);
  EXPECT_EQ(reply.hdr.ctx_id, 5u);
  EXPECT_EQ(reply.hdr.ring_idx, 0u);
  EXPECT_EQ(device_->resource_count(), 1u);  // done by the time the response is there

  // With the ring index, and on an error answer too.
  create.hdr.flags = kFlagFence | kFlagInfoRingIdx;
  create.hdr.fence_id = 77;
  reply = Send(&create, sizeof(create));
  EXPECT_EQ(reply.hdr.type, kRespErrInvalidResourceId);  // id 1 is taken
  EXPECT_EQ(reply.hdr.flags, kFlagFence | kFlagInfoRingIdx);
  EXPECT_EQ(reply.hdr.fence_id, 77u);
  EXPECT_EQ(reply.hdr.ring_idx, 3u);

  // No fence asked: none in the answer.
  create.hdr.flags = 0;
  create.resource_id = 2;
  reply = Send(&create, sizeof(create));
  EXPECT_EQ(reply.hdr.type, kRespOkNodata);
  EXPECT_EQ(reply.hdr.flags, 0u);
  EXPECT_EQ(reply.hdr.fence_id, 0u);
  EXPECT_EQ(reply.hdr.ctx_id, 0u);

  // A fenced cursor command with a response buffer.
  UpdateCursor move{Hdr(kCmdMoveCursor), {0, 1, 2, 0}, 0, 0, 0, 0};
  move.hdr.flags = kFlagFence;
  move.hdr.fence_id = 99;
  reply = Send(&move, sizeof(move), sizeof(CtrlHdr), kCursorQueue);
  EXPECT_EQ(reply.hdr.type, kRespOkNodata);
  EXPECT_EQ(reply.hdr.flags, kFlagFence);
  EXPECT_EQ(reply.hdr.fence_id, 99u);
}

TEST_F(GpuDeviceTest, ErrUnspec) {
  Make();
  const CtrlHdr unknown = Hdr(0x0999);
  EXPECT_EQ(Command(unknown), kRespErrUnspec);
  EXPECT_EQ(Command(Hdr(kCmdCtxCreate)), kRespErrUnspec);  // no 3D
  EXPECT_EQ(Command(Hdr(kCmdGetCapsetInfo)), kRespErrUnspec);
  // Shorter than a header: an answer without an echo.
  Reply reply = Send(&unknown, 10);
  EXPECT_EQ(reply.written, sizeof(CtrlHdr));
  EXPECT_EQ(reply.hdr.type, kRespErrUnspec);
  // A header, but short of the command's fields.
  const ResourceCreate2d create{Hdr(kCmdResourceCreate2d), 1, kFormatB8G8R8X8, 8, 8};
  EXPECT_EQ(Send(&create, sizeof(create) - 1).hdr.type, kRespErrUnspec);
  EXPECT_EQ(device_->resource_count(), 0u);
  // A response buffer too small: the command does not run; no room for a header: no answer.
  reply = Send(&create, sizeof(create), 10);
  EXPECT_EQ(reply.written, 0u);
  EXPECT_EQ(device_->resource_count(), 0u);
  reply = Send(&unknown, sizeof(unknown), 0);
  EXPECT_EQ(reply.written, 0u);
  const CtrlHdr info = Hdr(kCmdGetDisplayInfo);
  reply = Send(&info, sizeof(info), sizeof(CtrlHdr));  // room for a header, not the info
  EXPECT_EQ(reply.written, sizeof(CtrlHdr));
  EXPECT_EQ(reply.hdr.type, kRespErrUnspec);
  // Backing missing, already attached, or short of its entries.
  ASSERT_EQ(Create(1, kFormatB8G8R8X8, 8, 8), kRespOkNodata);
  EXPECT_EQ(Transfer(1, {0, 0, 8, 8}, 0), kRespErrUnspec);
  EXPECT_EQ(Command(ResourceDetachBacking{Hdr(kCmdResourceDetachBacking), 1, 0}), kRespErrUnspec);
  const uint64_t backing = ram_.Allocate(256);
  ASSERT_EQ(Attach(1, {{backing, 256, 0}}), kRespOkNodata);
  EXPECT_EQ(Attach(1, {{backing, 256, 0}}), kRespErrUnspec);
  ASSERT_EQ(Create(2, kFormatB8G8R8X8, 8, 8), kRespOkNodata);
  const ResourceAttachBacking claims_two{Hdr(kCmdResourceAttachBacking), 2, 2};
  std::vector<uint8_t> one_entry(sizeof(claims_two) + sizeof(MemEntry));
  std::memcpy(one_entry.data(), &claims_two, sizeof(claims_two));
  const MemEntry entry{backing, 256, 0};
  std::memcpy(one_entry.data() + sizeof(claims_two), &entry, sizeof(entry));
  EXPECT_EQ(Send(one_entry.data(), one_entry.size()).hdr.type, kRespErrUnspec);
  // GET_EDID without VIRTIO_GPU_F_EDID.
  ASSERT_OK(device_->SetFeatures(Bit(kFeatureVersion1)));
  const GetEdid edid{Hdr(kCmdGetEdid), 0, 0};
  EXPECT_EQ(Send(&edid, sizeof(edid), sizeof(RespEdid)).hdr.type, kRespErrUnspec);
}

TEST_F(GpuDeviceTest, ErrOutOfMemory) {
  GpuOptions options;
  options.limits.max_resources = 2;
  options.limits.max_host_bytes = 64 * 64 * 4;
  options.limits.max_backing_entries = 4;
  Make(options);
  ASSERT_EQ(Create(1, kFormatB8G8R8X8, 64, 32), kRespOkNodata);
  EXPECT_EQ(Create(2, kFormatB8G8R8X8, 64, 33), kRespErrOutOfMemory);  // bytes
  EXPECT_EQ(Create(2, kFormatB8G8R8X8, UINT32_MAX, UINT32_MAX), kRespErrOutOfMemory);
  ASSERT_EQ(Create(2, kFormatB8G8R8X8, 64, 32), kRespOkNodata);
  EXPECT_EQ(Create(3, kFormatB8G8R8X8, 1, 1), kRespErrOutOfMemory);  // count
  EXPECT_EQ(device_->host_bytes(), 64u * 64 * 4);
  // More entries than allowed, refused before they are read (there are none in the request).
  const ResourceAttachBacking many{Hdr(kCmdResourceAttachBacking), 1, 0xffffffff};
  EXPECT_EQ(Send(&many, sizeof(many)).hdr.type, kRespErrOutOfMemory);
  const uint64_t page = ram_.Allocate(4096);
  EXPECT_EQ(Attach(1, std::vector<MemEntry>(5, MemEntry{page, 4096, 0})), kRespErrOutOfMemory);
  EXPECT_EQ(Attach(1, std::vector<MemEntry>(4, MemEntry{page, 4096, 0})), kRespOkNodata);
}

TEST_F(GpuDeviceTest, ErrInvalidScanoutId) {
  GpuOptions options;
  options.outputs = 2;
  Make(options);
  ASSERT_EQ(Create(1, kFormatB8G8R8X8, 8, 8), kRespOkNodata);
  EXPECT_EQ(Scanout(1, 1, {0, 0, 8, 8}), kRespOkNodata);
  EXPECT_EQ(Scanout(2, 1, {0, 0, 8, 8}), kRespErrInvalidScanoutId);
  EXPECT_EQ(Scanout(UINT32_MAX, 0, {0, 0, 0, 0}), kRespErrInvalidScanoutId);
  const GetEdid edid{Hdr(kCmdGetEdid), 2, 0};
  EXPECT_EQ(Send(&edid, sizeof(edid), sizeof(RespEdid)).hdr.type, kRespErrInvalidScanoutId);
}

TEST_F(GpuDeviceTest, ErrInvalidResourceId) {
  Make();
  EXPECT_EQ(Create(0, kFormatB8G8R8X8, 8, 8), kRespErrInvalidResourceId);
  ASSERT_EQ(Create(1, kFormatB8G8R8X8, 8, 8), kRespOkNodata);
  EXPECT_EQ(Create(1, kFormatB8G8R8X8, 8, 8), kRespErrInvalidResourceId);
  EXPECT_EQ(Unref(2), kRespErrInvalidResourceId);
  EXPECT_EQ(Attach(2, {{ram_.Allocate(256), 256, 0}}), kRespErrInvalidResourceId);
  EXPECT_EQ(Command(ResourceDetachBacking{Hdr(kCmdResourceDetachBacking), 2, 0}),
            kRespErrInvalidResourceId);
  EXPECT_EQ(Scanout(0, 2, {0, 0, 8, 8}), kRespErrInvalidResourceId);
  EXPECT_EQ(Transfer(2, {0, 0, 8, 8}, 0), kRespErrInvalidResourceId);
  EXPECT_EQ(Flush(2, {0, 0, 8, 8}), kRespErrInvalidResourceId);
  ASSERT_EQ(Unref(1), kRespOkNodata);
  EXPECT_EQ(Unref(1), kRespErrInvalidResourceId);
}

TEST_F(GpuDeviceTest, ErrInvalidContextId) {
  Make();
  for (uint32_t type : {kCmdCtxDestroy, kCmdCtxAttachResource, kCmdCtxDetachResource, kCmdSubmit3d,
                        kCmdTransferToHost3d, kCmdTransferFromHost3d}) {
    CtrlHdr hdr = Hdr(type);
    hdr.ctx_id = 1;
    EXPECT_EQ(Command(hdr), kRespErrInvalidContextId) << CtrlTypeName(type);
  }
}

TEST_F(GpuDeviceTest, ErrInvalidParameter) {
  Make();
  EXPECT_EQ(Create(1, 5, 8, 8), kRespErrInvalidParameter);  // not a format
  EXPECT_EQ(Create(1, kFormatB8G8R8X8, 0, 8), kRespErrInvalidParameter);
  ASSERT_EQ(Create(1, kFormatB8G8R8X8, 8, 8), kRespOkNodata);
  // Backing outside guest memory, or no entries at all.
  EXPECT_EQ(Attach(1, {{uint64_t{1} << 40, 256, 0}}), kRespErrInvalidParameter);
  EXPECT_EQ(Attach(1, {}), kRespErrInvalidParameter);
  const uint64_t backing = ram_.Allocate(256);
  ASSERT_EQ(Attach(1, {{backing, 200, 0}}), kRespOkNodata);  // too short for 8 rows
  // Rects beyond the resource; rows beyond the backing.
  EXPECT_EQ(Transfer(1, {4, 0, 5, 1}, 16), kRespErrInvalidParameter);
  EXPECT_EQ(Transfer(1, {0, 0, 8, 8}, 0), kRespErrInvalidParameter);
  EXPECT_EQ(Transfer(1, {0, 0, 8, 6}, 0), kRespOkNodata);
  EXPECT_EQ(Transfer(1, {0, 0, 1, 1}, UINT64_MAX), kRespErrInvalidParameter);
  EXPECT_EQ(Flush(1, {0, 0, 9, 8}), kRespErrInvalidParameter);
  EXPECT_EQ(Flush(1, {UINT32_MAX, 0, 2, 1}), kRespErrInvalidParameter);
  EXPECT_EQ(Scanout(0, 1, {0, 0, 8, 9}), kRespErrInvalidParameter);
  EXPECT_EQ(Scanout(0, 1, {0, 0, 0, 8}), kRespErrInvalidParameter);
  EXPECT_EQ(Scanout(0, 1, {1, 0, UINT32_MAX, 8}), kRespErrInvalidParameter);
  EXPECT_TRUE(sink_.scanout_calls.empty());
}

TEST_F(GpuDeviceTest, DisplayInfoFromTheSinkElseDefaults) {
  GpuOptions options;
  options.outputs = 3;
  options.width = 1024;
  options.height = 768;
  Make(options);
  const CtrlHdr request = Hdr(kCmdGetDisplayInfo);
  // The sink knows nothing: defaults for every output.
  Reply reply = Send(&request, sizeof(request), sizeof(RespDisplayInfo));
  ASSERT_EQ(reply.written, sizeof(RespDisplayInfo));
  RespDisplayInfo info = Get<RespDisplayInfo>(reply.gpa);
  EXPECT_EQ(info.hdr.type, kRespOkDisplayInfo);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(info.pmodes[i].enabled, 1u);
    EXPECT_EQ(info.pmodes[i].r.width, 1024u);
    EXPECT_EQ(info.pmodes[i].r.height, 768u);
  }
  for (uint32_t i = 3; i < kMaxScanouts; ++i) EXPECT_EQ(info.pmodes[i].enabled, 0u);

  // The sink's window sizes for the first two; the third keeps the default.
  sink_.display_info = std::vector<ScanoutInfo>{{true, 1920, 1080}, {false, 0, 0}};
  reply = Send(&request, sizeof(request), sizeof(RespDisplayInfo));
  info = Get<RespDisplayInfo>(reply.gpa);
  EXPECT_EQ(info.pmodes[0].enabled, 1u);
  EXPECT_EQ(info.pmodes[0].r.width, 1920u);
  EXPECT_EQ(info.pmodes[0].r.height, 1080u);
  EXPECT_EQ(info.pmodes[1].enabled, 0u);
  EXPECT_EQ(info.pmodes[2].enabled, 1u);
  EXPECT_EQ(info.pmodes[2].r.width, 1024u);
  EXPECT_EQ(sink_.display_info_calls, 2);
}

TEST_F(GpuDeviceTest, EdidFromTheSinkElseOwn) {
  GpuOptions options;
  options.outputs = 2;
  Make(options);
  sink_.edids[0] = std::vector<uint8_t>(256, 0x5a);
  sink_.display_info = std::vector<ScanoutInfo>{{true, 1920, 1080}, {true, 800, 600}};
  const CtrlHdr info = Hdr(kCmdGetDisplayInfo);
  Send(&info, sizeof(info), sizeof(RespDisplayInfo));

  GetEdid request{Hdr(kCmdGetEdid), 0, 0};
  Reply reply = Send(&request, sizeof(request), sizeof(RespEdid));
  ASSERT_EQ(reply.written, sizeof(RespEdid));
  RespEdid edid = Get<RespEdid>(reply.gpa);
  EXPECT_EQ(edid.hdr.type, kRespOkEdid);
  EXPECT_EQ(edid.size, 256u);
  EXPECT_EQ(edid.edid[255], 0x5a);

  // Scanout 1: the sink has none; the device's own, for the size the display info gave.
  request.scanout = 1;
  reply = Send(&request, sizeof(request), sizeof(RespEdid));
  edid = Get<RespEdid>(reply.gpa);
  EXPECT_EQ(edid.hdr.type, kRespOkEdid);
  ASSERT_EQ(edid.size, 128u);
  EXPECT_EQ(edid.edid[1], 0xff);
  uint8_t sum = 0;
  for (uint32_t i = 0; i < 128; ++i) sum += edid.edid[i];
  EXPECT_EQ(sum, 0);
  const uint8_t* dtd = &edid.edid[54];
  EXPECT_EQ(dtd[2] | (dtd[4] >> 4) << 8, 800);
  EXPECT_EQ(dtd[5] | (dtd[7] >> 4) << 8, 600);
}

TEST_F(GpuDeviceTest, NoSinkUntilSetSinkThenReplaced) {
  Make(GpuOptions(), /*with_sink=*/false);
  ShowFrame(1, kBgrx, 4);  // shown on nothing, without trouble
  Framebuffer cursor = MakeFramebuffer(kCursorSize, kCursorSize);
  Paint(cursor, kBgra, kCursorSize, kCursorSize, 1);
  ASSERT_EQ(Create(2, kFormatB8G8R8A8, kCursorSize, kCursorSize), kRespOkNodata);
  ASSERT_EQ(Attach(2, cursor.entries), kRespOkNodata);
  ASSERT_EQ(Transfer(2, {0, 0, kCursorSize, kCursorSize}, 0), kRespOkNodata);
  CursorNoReply(kCmdUpdateCursor, 0, 5, 6, 2);

  // The sink arrives: before the next command, on the queue's thread (never on the caller's,
  // which QEMU may be waiting on), it is told the scanout, its contents and the cursor.
  device_->SetSink(&sink_);
  EXPECT_TRUE(sink_.calls.empty());
  ASSERT_EQ(Create(3, kFormatB8G8R8X8, 8, 8), kRespOkNodata);
  ASSERT_EQ(sink_.scanout_calls.size(), 1u);
  EXPECT_EQ(sink_.scanout_calls[0].width, kWidth);
  ASSERT_EQ(sink_.update_calls.size(), 1u);
  ExpectShows(0, 4);
  ASSERT_EQ(sink_.cursor_calls.size(), 1u);
  EXPECT_EQ(sink_.cursor_calls[0].kind, FakeSink::CursorCall::kUpdate);
  EXPECT_EQ(sink_.cursor_calls[0].x, 5u);
  EXPECT_EQ(sink_.cursor_calls[0].argb[0], Color(0, 0, 1));

  // Replaced by another: the first hears nothing more.
  FakeSink second;
  device_->SetSink(&second);
  ASSERT_EQ(Flush(1, {0, 0, kWidth, kHeight}), kRespOkNodata);
  EXPECT_EQ(sink_.update_calls.size(), 1u);
  EXPECT_EQ(second.update_calls.size(), 2u);  // the replay and the flush
  device_->SetSink(nullptr);
  ASSERT_EQ(Flush(1, {0, 0, kWidth, kHeight}), kRespOkNodata);
  EXPECT_EQ(second.update_calls.size(), 2u);
}

TEST_F(GpuDeviceTest, SinkErrorsDoNotFailCommands) {
  Make();
  sink_.result = absl::UnavailableError("display gone");
  ShowFrame(1, kBgrx, 2);  // every command still answers OK (checked inside)
  EXPECT_EQ(sink_.update_calls.size(), 1u);
}

TEST_F(GpuDeviceTest, ResetFreesEverything) {
  Make();
  ShowFrame(1, kBgrx, 1);
  ASSERT_EQ(Create(2, kFormatB8G8R8A8, kCursorSize, kCursorSize), kRespOkNodata);
  CursorNoReply(kCmdUpdateCursor, 0, 5, 6, 2);
  device_->DisplayChanged();
  EXPECT_EQ(device_->resource_count(), 2u);
  EXPECT_GT(device_->host_bytes(), 0u);

  device_->Reset();
  EXPECT_EQ(device_->resource_count(), 0u);
  EXPECT_EQ(device_->host_bytes(), 0u);
  ASSERT_EQ(sink_.scanout_calls.size(), 2u);
  EXPECT_EQ(sink_.scanout_calls[1].width, 0u);  // the scanout is off
  ASSERT_EQ(sink_.cursor_calls.size(), 2u);
  EXPECT_EQ(sink_.cursor_calls[1].kind, FakeSink::CursorCall::kHide);
  uint32_t events = 1;
  ASSERT_OK(device_->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&events), 4)));
  EXPECT_EQ(events, 0u);
  // The ids are free again and the old ones unknown.
  EXPECT_EQ(Flush(1, {0, 0, 1, 1}), kRespErrInvalidResourceId);
  EXPECT_EQ(Create(1, kFormatB8G8R8X8, 8, 8), kRespOkNodata);
  // The features are renegotiated: no EDID until then.
  const GetEdid edid{Hdr(kCmdGetEdid), 0, 0};
  EXPECT_EQ(Send(&edid, sizeof(edid), sizeof(RespEdid)).hdr.type, kRespErrUnspec);
}

TEST_F(GpuDeviceTest, DisplaySocketGoesToTheHandler) {
  Make();
  EXPECT_THAT(device_->SetDisplaySocket(UniqueFd(eventfd(0, EFD_CLOEXEC))),
              StatusIs(absl::StatusCode::kUnimplemented));
  int handed = -1;
  device_->set_display_socket_handler([&](UniqueFd socket) {
    handed = socket.get();
    return absl::OkStatus();
  });
  UniqueFd fd(eventfd(0, EFD_CLOEXEC));
  const int raw = fd.get();
  EXPECT_OK(device_->SetDisplaySocket(std::move(fd)));
  EXPECT_EQ(handed, raw);
}

// The two queues on two threads at once, as the engine runs them: the control queue creates,
// flushes and frees resources while the cursor queue reads one for its image. Every command is
// answered and every sink call recorded whole (the fake is not thread-safe, nor is the resource
// table: the device's lock is what keeps them whole; TSan and ASan see it if it does not).
TEST_F(GpuDeviceTest, QueuesOnTwoThreads) {
  Make();
  ShowFrame(1, kBgrx, 1);
  ASSERT_EQ(Create(2, kFormatB8G8R8A8, kCursorSize, kCursorSize), kRespOkNodata);
  sink_.calls.clear();
  constexpr int kRounds = 200;
  // Requests placed up front: FakeGuestMemory's allocator is not for two threads.
  const ResourceCreate2d create{Hdr(kCmdResourceCreate2d), 10, kFormatB8G8R8X8, 16, 16};
  const ResourceFlush flush{Hdr(kCmdResourceFlush), {0, 0, kWidth, kHeight}, 1, 0};
  const ResourceUnref unref{Hdr(kCmdResourceUnref), 10, 0};
  const UpdateCursor cursor{Hdr(kCmdUpdateCursor), {0, 1, 2, 0}, 2, 0, 0, 0};
  const std::vector<Buffer> control_requests = {{Put(&create, sizeof(create)), sizeof(create)},
                                                {Put(&flush, sizeof(flush)), sizeof(flush)},
                                                {Put(&unref, sizeof(unref)), sizeof(unref)}};
  const std::vector<Buffer> cursor_requests = {{Put(&cursor, sizeof(cursor)), sizeof(cursor)}};
  std::vector<uint64_t> replies[2];
  for (int queue : {kControlQueue, kCursorQueue}) {
    const size_t n = kRounds * (queue == kControlQueue ? control_requests.size() : 1);
    for (size_t i = 0; i < n; ++i) replies[queue].push_back(ram_.Allocate(sizeof(CtrlHdr)));
  }
  auto run = [&](int queue, const std::vector<Buffer>& requests) {
    size_t answered = 0, next = 0;
    for (int round = 0; round < kRounds; ++round) {
      for (const Buffer& request : requests) {
        EXPECT_OK(q(queue).Add({request}, {{replies[queue][next++], sizeof(CtrlHdr)}}));
      }
      q(queue).Run(*device_);
      for (const UsedElement& used : q(queue).Used()) answered += used.len == sizeof(CtrlHdr);
    }
    EXPECT_EQ(answered, replies[queue].size());
  };
  std::thread control(run, kControlQueue, control_requests);
  std::thread cursor_thread(run, kCursorQueue, cursor_requests);
  control.join();
  cursor_thread.join();
  for (int queue : {kControlQueue, kCursorQueue}) {
    for (uint64_t gpa : replies[queue]) ASSERT_EQ(Get<CtrlHdr>(gpa).type, kRespOkNodata);
  }
  EXPECT_EQ(sink_.calls.size(), 2u * kRounds);
  EXPECT_EQ(std::count(sink_.calls.begin(), sink_.calls.end(), 'U'), kRounds);
  EXPECT_EQ(std::count(sink_.calls.begin(), sink_.calls.end(), 'C'), kRounds);
  EXPECT_EQ(device_->resource_count(), 2u);
}

}  // namespace
}  // namespace vhost::gpu
