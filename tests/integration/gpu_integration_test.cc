// vhost-user-gpu driven over its socket by our front end, which plays both the guest's
// virtio-gpu driver (GpuDriver, on Linux's <linux/virtio_gpu.h>) and QEMU's display end
// (FakeDisplayEnd, handed over with VHOST_USER_GPU_SET_SOCKET): display info and EDID come from
// the display end; a guest framebuffer created, attached, set as scanout, transferred and
// flushed arrives there pixel for pixel (whole and in part, converted from RGBX); the cursor is
// updated, moved and hidden; hostile commands get their VIRTIO_GPU_RESP_ERR_* and the device
// goes on; the resource caps hold; and a new front end finds no resource of the last one.
#include <linux/virtio_gpu.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/gpu_driver.h"
#include "tests/integration/runfiles.h"
#include "vhost-user-gpu/display/fake_display_end.h"

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::GpuDriver;
using frontend::GpuFramebuffer;
using frontend::GpuHdr;
using frontend::GpuRect;
using gpu::display::FakeDisplayEnd;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr uint32_t kOk = VIRTIO_GPU_RESP_OK_NODATA;

// A command's outcome: answered with response type `type`; Refused: with an error type.
MATCHER_P(Answers, type, "is answered with " + ::testing::PrintToString(type)) {
  return arg.ok() && *arg == static_cast<uint32_t>(type);
}
MATCHER(Refused, "is answered with an error") {
  return arg.ok() && *arg >= VIRTIO_GPU_RESP_ERR_UNSPEC;
}

// A colour per pixel that differs everywhere, as x8r8g8b8 (B, G, R, X in memory).
uint32_t PatternPixel(uint32_t x, uint32_t y) {
  return (((x * 7) & 0xff) << 16) | (((y * 5) & 0xff) << 8) | ((x ^ y) & 0xff);
}

class GpuDaemonTest : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& flags = {}) {
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("gpu"));
    std::vector<std::string> args = {"--socket-path=" + session_->socket()};
    args.insert(args.end(), flags.begin(), flags.end());
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-gpu/vhost-user-gpu"), args));
    ASSERT_OK_AND_ASSIGN(driver_, GpuDriver::Start(session_->socket(), GpuDriver::Options()));
  }
  void ConnectDisplay(FakeDisplayEnd::Options options = {}) {
    ASSERT_OK_AND_ASSIGN(display_, FakeDisplayEnd::Create(options));
    UniqueFd daemon_end = display_->TakeDaemonEnd();
    ASSERT_OK(driver_->SetDisplaySocket(daemon_end.get()));
  }

  std::unique_ptr<DaemonSession> session_;
  std::unique_ptr<GpuDriver> driver_;
  std::unique_ptr<FakeDisplayEnd> display_;
};

TEST_F(GpuDaemonTest, DisplayInfoAndEdidComeFromTheDisplayEnd) {
  Start({"--outputs=2", "--resolution=1024x768"});
  ASSERT_OK_AND_ASSIGN(virtio_gpu_config config, driver_->Config());
  EXPECT_EQ(config.num_scanouts, 2u);
  EXPECT_TRUE(driver_->device()->acked_features() & Bit(VIRTIO_GPU_F_EDID));

  // No display end yet: the daemon's own defaults and EDID.
  ASSERT_OK_AND_ASSIGN(virtio_gpu_resp_display_info info, driver_->GetDisplayInfo());
  EXPECT_EQ(info.pmodes[0].r.width, 1024u);
  EXPECT_EQ(info.pmodes[0].r.height, 768u);
  EXPECT_EQ(info.pmodes[0].enabled, 1u);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> own_edid, driver_->GetEdid(0));
  ASSERT_GE(own_edid.size(), 128u);
  const uint8_t header[8] = {0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0};
  EXPECT_EQ(std::memcmp(own_edid.data(), header, 8), 0);
  uint8_t sum = 0;
  for (size_t i = 0; i < 128; ++i) sum += own_edid[i];
  EXPECT_EQ(sum, 0);

  FakeDisplayEnd::Options options;
  options.displays = {{true, 1920, 1080}, {true, 800, 600}};
  ConnectDisplay(options);
  ASSERT_OK_AND_ASSIGN(info, driver_->GetDisplayInfo());
  EXPECT_EQ(info.pmodes[0].r.width, 1920u);
  EXPECT_EQ(info.pmodes[0].r.height, 1080u);
  EXPECT_EQ(info.pmodes[1].r.width, 800u);
  EXPECT_EQ(info.pmodes[1].enabled, 1u);
  EXPECT_EQ(info.pmodes[2].enabled, 0u);  // beyond --outputs
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> edid, driver_->GetEdid(1));
  EXPECT_EQ(edid, FakeDisplayEnd::TestEdid());
  EXPECT_EQ(display_->stats().bad_messages, 0u);
}

TEST_F(GpuDaemonTest, AFlushedFrameReachesTheDisplayPixelForPixel) {
  Start();
  ConnectDisplay();
  constexpr uint32_t kWidth = 160, kHeight = 120;
  ASSERT_OK_AND_ASSIGN(GpuFramebuffer fb, driver_->AllocateFramebuffer(kWidth, kHeight));
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) *fb.pixel(x, y) = PatternPixel(x, y);
  }
  ASSERT_OK(driver_->ShowFramebuffer(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, fb));
  const virtio_gpu_rect all = GpuRect(0, 0, kWidth, kHeight);
  ASSERT_THAT(driver_->TransferToHost(1, all, 0), Answers(kOk));
  ASSERT_THAT(driver_->Flush(1, all), Answers(kOk));
  ASSERT_TRUE(display_->WaitForUpdates(1, kTimeout));
  std::optional<FakeDisplayEnd::Framebuffer> shown = display_->framebuffer(0);
  ASSERT_TRUE(shown.has_value());
  ASSERT_EQ(shown->width, kWidth);
  ASSERT_EQ(shown->height, kHeight);
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) {
      ASSERT_EQ(shown->at(x, y) & 0xffffff, PatternPixel(x, y)) << x << "," << y;
    }
  }

  // A part: a 20 x 10 block at (30, 40) changes; only it is transferred (at its offset in the
  // backing) and flushed, and only it changes on the display.
  const uint64_t updates = display_->stats().updates;
  for (uint32_t y = 40; y < 50; ++y) {
    for (uint32_t x = 30; x < 50; ++x) *fb.pixel(x, y) = 0x00ff00;
  }
  const virtio_gpu_rect part = GpuRect(30, 40, 20, 10);
  ASSERT_THAT(driver_->TransferToHost(1, part, 40 * fb.stride + 30 * 4), Answers(kOk));
  ASSERT_THAT(driver_->Flush(1, part), Answers(kOk));
  ASSERT_TRUE(display_->WaitForUpdates(updates + 1, kTimeout));
  shown = display_->framebuffer(0);
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ(shown->at(30, 40) & 0xffffff, 0x00ff00u);
  EXPECT_EQ(shown->at(49, 49) & 0xffffff, 0x00ff00u);
  EXPECT_EQ(shown->at(50, 49) & 0xffffff, PatternPixel(50, 49));
  EXPECT_EQ(shown->at(29, 40) & 0xffffff, PatternPixel(29, 40));
  EXPECT_EQ(display_->stats().update_bytes, (kWidth * kHeight + 20 * 10) * 4u);
  EXPECT_EQ(display_->stats().bad_messages, 0u);
}

TEST_F(GpuDaemonTest, RgbxResourcesAreShownConverted) {
  Start();
  ConnectDisplay();
  ASSERT_OK_AND_ASSIGN(GpuFramebuffer fb, driver_->AllocateFramebuffer(8, 4));
  // R8G8B8X8: bytes R, G, B, X in memory.
  for (uint32_t y = 0; y < 4; ++y) {
    for (uint32_t x = 0; x < 8; ++x) {
      uint8_t* p = reinterpret_cast<uint8_t*>(fb.pixel(x, y));
      p[0] = 0x11 * x;  // R
      p[1] = 0x22;      // G
      p[2] = 0x30 + y;  // B
      p[3] = 0;
    }
  }
  ASSERT_OK(driver_->ShowFramebuffer(7, VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM, 0, fb));
  ASSERT_THAT(driver_->TransferToHost(7, GpuRect(0, 0, 8, 4), 0), Answers(kOk));
  ASSERT_THAT(driver_->Flush(7, GpuRect(0, 0, 8, 4)), Answers(kOk));
  ASSERT_TRUE(display_->WaitForUpdates(1, kTimeout));
  std::optional<FakeDisplayEnd::Framebuffer> shown = display_->framebuffer(0);
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ(shown->at(3, 2) & 0xffffff, (0x33u << 16) | (0x22u << 8) | 0x32u);
}

TEST_F(GpuDaemonTest, CursorUpdatedMovedAndHidden) {
  Start();
  ConnectDisplay();
  ASSERT_OK_AND_ASSIGN(GpuFramebuffer image, driver_->AllocateFramebuffer(64, 64));
  for (uint32_t y = 0; y < 64; ++y) {
    for (uint32_t x = 0; x < 64; ++x) *image.pixel(x, y) = 0xff000000 | (x << 8) | y;
  }
  ASSERT_THAT(driver_->CreateResource(5, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, 64, 64), Answers(kOk));
  ASSERT_THAT(driver_->AttachFramebuffer(5, image), Answers(kOk));
  ASSERT_THAT(driver_->TransferToHost(5, GpuRect(0, 0, 64, 64), 0), Answers(kOk));
  ASSERT_OK(driver_->UpdateCursor(0, 5, 100, 200, 3, 4));
  ASSERT_TRUE(display_->WaitFor([](const auto& s) { return s.cursor_updates >= 1; }, kTimeout));
  FakeDisplayEnd::Cursor cursor = display_->cursor();
  EXPECT_TRUE(cursor.visible);
  EXPECT_EQ(cursor.x, 100u);
  EXPECT_EQ(cursor.y, 200u);
  EXPECT_EQ(cursor.hot_x, 3u);
  EXPECT_EQ(cursor.hot_y, 4u);
  ASSERT_EQ(cursor.image.size(), 64u * 64u);
  EXPECT_EQ(cursor.image[10 * 64 + 20], 0xff000000u | (20u << 8) | 10u);

  ASSERT_OK(driver_->MoveCursor(0, 300, 50));
  ASSERT_TRUE(display_->WaitFor([](const auto& s) { return s.cursor_moves >= 1; }, kTimeout));
  cursor = display_->cursor();
  EXPECT_EQ(cursor.x, 300u);
  EXPECT_EQ(cursor.y, 50u);

  ASSERT_OK(driver_->UpdateCursor(0, 0, 0, 0, 0, 0));
  ASSERT_TRUE(display_->WaitFor([](const auto& s) { return s.cursor_hides >= 1; }, kTimeout));
  EXPECT_FALSE(display_->cursor().visible);
  EXPECT_EQ(display_->stats().bad_messages, 0u);
}

TEST_F(GpuDaemonTest, HostileCommandsGetErrorsAndTheDeviceGoesOn) {
  Start({"--max-memory-mb=1"});
  ConnectDisplay();
  // Unknown ids, a reused id, huge or zero sizes, a bad format.
  EXPECT_THAT(driver_->Unref(99), Answers(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID));
  EXPECT_THAT(driver_->Flush(99, GpuRect(0, 0, 1, 1)),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID));
  ASSERT_THAT(driver_->CreateResource(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 64, 64), Answers(kOk));
  EXPECT_THAT(driver_->CreateResource(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 64, 64),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID));
  EXPECT_THAT(driver_->CreateResource(0, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 64, 64),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID));
  EXPECT_THAT(driver_->CreateResource(2, 0x7777, 64, 64),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  EXPECT_THAT(driver_->CreateResource(3, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0xffffffff, 0xffffffff),
              Refused());
  // Beyond --max-memory-mb=1: 1024 x 1024 x 4 bytes.
  EXPECT_THAT(driver_->CreateResource(4, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 1024, 1024),
              Answers(VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY));

  // Backing outside guest memory, or too short for the transfer.
  virtio_gpu_mem_entry outside{};
  outside.addr = uint64_t{1} << 40;
  outside.length = 64 * 64 * 4;
  EXPECT_THAT(driver_->AttachBacking(1, absl::MakeConstSpan(&outside, 1)), Refused());
  ASSERT_OK_AND_ASSIGN(GpuFramebuffer small, driver_->AllocateFramebuffer(64, 8));
  ASSERT_THAT(driver_->AttachFramebuffer(1, small), Answers(kOk));
  EXPECT_THAT(driver_->TransferToHost(1, GpuRect(0, 0, 64, 64), 0),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  // Rectangles beyond the resource, an offset beyond the backing.
  EXPECT_THAT(driver_->TransferToHost(1, GpuRect(60, 0, 8, 1), 0),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  EXPECT_THAT(driver_->TransferToHost(1, GpuRect(0, 0, 1, 1), uint64_t{1} << 62),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  EXPECT_THAT(driver_->SetScanout(0, 1, GpuRect(0, 0, 65, 64)),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  EXPECT_THAT(driver_->SetScanout(5, 1, GpuRect(0, 0, 64, 64)),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID));
  // A 3D command on a 2D device; a command shorter than its header; an unknown one.
  virtio_gpu_ctrl_hdr ctx = GpuHdr(VIRTIO_GPU_CMD_CTX_CREATE);
  ctx.ctx_id = 1;
  ASSERT_OK_AND_ASSIGN(frontend::GpuReply reply, driver_->Command(ctx));
  EXPECT_NE(reply.hdr.type, kOk);
  const uint8_t short_request[4] = {1, 1, 0, 0};
  ASSERT_OK_AND_ASSIGN(
      reply, driver_->Command(short_request, sizeof(short_request), sizeof(virtio_gpu_ctrl_hdr)));
  EXPECT_EQ(reply.hdr.type, VIRTIO_GPU_RESP_ERR_UNSPEC);
  ASSERT_OK_AND_ASSIGN(reply, driver_->Command(GpuHdr(0x0777)));
  EXPECT_EQ(reply.hdr.type, VIRTIO_GPU_RESP_ERR_UNSPEC);

  // Still serving: the frame path works, and unref frees what the cap counted.
  EXPECT_THAT(driver_->Unref(1), Answers(kOk));
  ASSERT_OK_AND_ASSIGN(GpuFramebuffer fb, driver_->AllocateFramebuffer(256, 256));
  ASSERT_OK(driver_->ShowFramebuffer(2, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, fb));
  ASSERT_THAT(driver_->TransferToHost(2, GpuRect(0, 0, 256, 256), 0), Answers(kOk));
  ASSERT_THAT(driver_->Flush(2, GpuRect(0, 0, 256, 256)), Answers(kOk));
  ASSERT_TRUE(display_->WaitForUpdates(1, kTimeout));
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

TEST_F(GpuDaemonTest, ANewFrontEndFindsNoResourceOfTheLast) {
  Start({"--max-resources=4"});
  for (uint32_t id = 1; id <= 4; ++id) {
    ASSERT_THAT(driver_->CreateResource(id, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16, 16),
                Answers(kOk));
  }
  EXPECT_THAT(driver_->CreateResource(5, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16, 16),
              Answers(VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY));
  driver_.reset();  // the front end goes away: the daemon resets the device
  ASSERT_OK_AND_ASSIGN(driver_, GpuDriver::Start(session_->socket(), GpuDriver::Options()));
  for (uint32_t id = 1; id <= 4; ++id) {
    EXPECT_THAT(driver_->CreateResource(id, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16, 16),
                Answers(kOk));
  }
}

}  // namespace
}  // namespace vhost
