// vhost-user-gpu --virgl driven by our front end playing the guest's virtio-gpu driver and
// QEMU's display end, with real virglrenderer on Mesa (llvmpipe when the machine has no GPU):
// the static daemon hands over to vhost-user-gpu-virgl; the capsets are offered; a 3D
// texture takes the guest's pixels (TRANSFER_TO_HOST_3D) and, set as scanout and flushed,
// is read back onto the display pixel for pixel; a command stream cleared by the host's GL
// comes back into guest memory (TRANSFER_FROM_HOST_3D) and onto the display; a fenced
// command is answered with its fence; hostile 3D commands (unknown ids, bad sizes, garbage
// streams, transfers beyond the backing) get their VIRTIO_GPU_RESP_ERR_* and the daemon goes
// on; the caps hold; a new front end finds nothing of the last one.
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
using frontend::GpuReply;
using gpu::display::FakeDisplayEnd;

constexpr absl::Duration kTimeout = absl::Seconds(20);
constexpr uint32_t kOk = VIRTIO_GPU_RESP_OK_NODATA;

// A command's outcome: answered with response type `type`; Refused: with an error type.
MATCHER_P(Answers, type, "is answered with " + ::testing::PrintToString(type)) {
  return arg.ok() && *arg == static_cast<uint32_t>(type);
}
MATCHER(Refused, "is answered with an error") {
  return arg.ok() && *arg >= VIRTIO_GPU_RESP_ERR_UNSPEC;
}

// Gallium and virgl protocol numbers (Mesa's virgl driver sends the same).
constexpr uint32_t kTargetTexture2d = 2;
constexpr uint32_t kBindRenderTarget = 1 << 1;
constexpr uint32_t kBindSamplerView = 1 << 3;
constexpr uint32_t kCmdCreateObject = 1;
constexpr uint32_t kCmdSetFramebufferState = 5;
constexpr uint32_t kCmdClear = 7;
constexpr uint32_t kObjectSurface = 8;
constexpr uint32_t kClearColor0 = 1 << 2;

uint32_t Cmd0(uint32_t cmd, uint32_t object, uint32_t length) {
  return cmd | (object << 8) | (length << 16);
}
uint32_t FloatBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

// A command stream that draws into resource `resource`: a surface on it as the only colour
// buffer, cleared to (r, g, b, 1).
std::vector<uint32_t> ClearStream(uint32_t resource, float r, float g, float b) {
  constexpr uint32_t kSurface = 1;
  return {Cmd0(kCmdCreateObject, kObjectSurface, 5),
          kSurface,
          resource,
          VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
          0,
          0,
          Cmd0(kCmdSetFramebufferState, 0, 3),
          1,
          0,
          kSurface,
          Cmd0(kCmdClear, 0, 8),
          kClearColor0,
          FloatBits(r),
          FloatBits(g),
          FloatBits(b),
          FloatBits(1.0f),
          0,
          0,
          0};
}

uint32_t PatternPixel(uint32_t x, uint32_t y) {
  return (((x * 7) & 0xff) << 16) | (((y * 5) & 0xff) << 8) | ((x ^ y) & 0xff);
}

std::vector<uint8_t> Bytes(const void* data, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  return std::vector<uint8_t>(p, p + size);
}

class GpuVirglTest : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& flags = {}) {
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("gpu-virgl"));
    std::vector<std::string> args = {"--socket-path=" + session_->socket(), "--virgl"};
    args.insert(args.end(), flags.begin(), flags.end());
    // The static daemon: it hands --virgl over to vhost-user-gpu-virgl beside it.
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-gpu/vhost-user-gpu"), args));
    Connect();
  }
  void Connect() {
    GpuDriver::Options options;
    options.features |= Bit(VIRTIO_GPU_F_VIRGL);
    options.timeout = kTimeout;
    ASSERT_OK_AND_ASSIGN(driver_, GpuDriver::Start(session_->socket(), options));
    ASSERT_OK_AND_ASSIGN(display_, FakeDisplayEnd::Create());
    UniqueFd daemon_end = display_->TakeDaemonEnd();
    ASSERT_OK(driver_->SetDisplaySocket(daemon_end.get()));
  }

  absl::StatusOr<uint32_t> Simple(const void* request, size_t size) {
    absl::StatusOr<GpuReply> reply = driver_->Command(request, size, sizeof(virtio_gpu_ctrl_hdr));
    if (!reply.ok()) return reply.status();
    return reply->hdr.type;
  }
  template <typename T>
  absl::StatusOr<uint32_t> Simple(const T& request) {
    return Simple(&request, sizeof(request));
  }

  absl::StatusOr<uint32_t> CreateContext(uint32_t ctx) {
    virtio_gpu_ctx_create request{};
    request.hdr = GpuHdr(VIRTIO_GPU_CMD_CTX_CREATE);
    request.hdr.ctx_id = ctx;
    request.nlen = 4;
    std::memcpy(request.debug_name, "test", 4);
    return Simple(request);
  }
  absl::StatusOr<uint32_t> CreateTexture(uint32_t id, uint32_t width, uint32_t height) {
    virtio_gpu_resource_create_3d request{};
    request.hdr = GpuHdr(VIRTIO_GPU_CMD_RESOURCE_CREATE_3D);
    request.resource_id = id;
    request.target = kTargetTexture2d;
    request.format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;
    request.bind = kBindRenderTarget | kBindSamplerView;
    request.width = width;
    request.height = height;
    request.depth = 1;
    request.array_size = 1;
    return Simple(request);
  }
  absl::StatusOr<uint32_t> AttachToContext(uint32_t ctx, uint32_t id) {
    virtio_gpu_ctx_resource request{};
    request.hdr = GpuHdr(VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE);
    request.hdr.ctx_id = ctx;
    request.resource_id = id;
    return Simple(request);
  }
  absl::StatusOr<uint32_t> Transfer(uint32_t type, uint32_t ctx, uint32_t id, uint32_t width,
                                    uint32_t height, uint32_t stride) {
    virtio_gpu_transfer_host_3d request{};
    request.hdr = GpuHdr(type);
    request.hdr.ctx_id = ctx;
    request.box = {0, 0, 0, width, height, 1};
    request.resource_id = id;
    request.stride = stride;
    return Simple(request);
  }
  absl::StatusOr<GpuReply> Submit(uint32_t ctx, const std::vector<uint32_t>& words,
                                  uint32_t flags = 0, uint64_t fence = 0) {
    virtio_gpu_cmd_submit request{};
    request.hdr = GpuHdr(VIRTIO_GPU_CMD_SUBMIT_3D);
    request.hdr.ctx_id = ctx;
    request.hdr.flags = flags;
    request.hdr.fence_id = fence;
    request.size = static_cast<uint32_t>(words.size() * 4);
    const std::vector<uint8_t> parts[] = {Bytes(&request, sizeof(request)),
                                          Bytes(words.data(), words.size() * 4)};
    return driver_->CommandParts(parts, sizeof(virtio_gpu_ctrl_hdr));
  }
  // A 3D texture in context 1 backed by a new guest framebuffer, shown on scanout 0.
  void MakeShownTexture(uint32_t id, uint32_t width, uint32_t height, GpuFramebuffer* fb) {
    ASSERT_THAT(CreateContext(1), Answers(kOk));
    ASSERT_THAT(CreateTexture(id, width, height), Answers(kOk));
    ASSERT_THAT(AttachToContext(1, id), Answers(kOk));
    ASSERT_OK_AND_ASSIGN(*fb, driver_->AllocateFramebuffer(width, height));
    ASSERT_THAT(driver_->AttachFramebuffer(id, *fb), Answers(kOk));
    ASSERT_THAT(driver_->SetScanout(0, id, GpuRect(0, 0, width, height)), Answers(kOk));
  }

  std::unique_ptr<DaemonSession> session_;
  std::unique_ptr<GpuDriver> driver_;
  std::unique_ptr<FakeDisplayEnd> display_;
};

TEST_F(GpuVirglTest, OffersVirglAndItsCapsets) {
  Start();
  EXPECT_TRUE(driver_->device()->acked_features() & Bit(VIRTIO_GPU_F_VIRGL));
  ASSERT_OK_AND_ASSIGN(virtio_gpu_config config, driver_->Config());
  ASSERT_EQ(config.num_capsets, 2u);
  for (uint32_t index = 0; index < 2; ++index) {
    virtio_gpu_get_capset_info request{};
    request.hdr = GpuHdr(VIRTIO_GPU_CMD_GET_CAPSET_INFO);
    request.capset_index = index;
    ASSERT_OK_AND_ASSIGN(GpuReply reply,
                         driver_->Command(request, sizeof(virtio_gpu_resp_capset_info)));
    ASSERT_EQ(reply.hdr.type, VIRTIO_GPU_RESP_OK_CAPSET_INFO);
    virtio_gpu_resp_capset_info info;
    std::memcpy(&info, &reply.hdr, sizeof(reply.hdr));
    std::memcpy(reinterpret_cast<uint8_t*>(&info) + sizeof(reply.hdr), reply.payload.data(),
                sizeof(info) - sizeof(reply.hdr));
    EXPECT_EQ(info.capset_id, index + 1);  // VIRGL, VIRGL2
    EXPECT_EQ(info.capset_max_version, index + 1);
    ASSERT_GT(info.capset_max_size, 64u);

    virtio_gpu_get_capset get{};
    get.hdr = GpuHdr(VIRTIO_GPU_CMD_GET_CAPSET);
    get.capset_id = info.capset_id;
    get.capset_version = info.capset_max_version;
    ASSERT_OK_AND_ASSIGN(GpuReply caps,
                         driver_->Command(get, sizeof(virtio_gpu_ctrl_hdr) + info.capset_max_size));
    ASSERT_EQ(caps.hdr.type, VIRTIO_GPU_RESP_OK_CAPSET);
    ASSERT_EQ(caps.used_len, sizeof(virtio_gpu_ctrl_hdr) + info.capset_max_size);
    uint32_t max_version;
    std::memcpy(&max_version, caps.payload.data(), 4);
    EXPECT_GE(max_version, 1u) << "virgl caps start with the protocol version the host speaks";

    // Too small a buffer for the capset, an unknown id or version, an index beyond them.
    ASSERT_OK_AND_ASSIGN(GpuReply small, driver_->Command(get, sizeof(virtio_gpu_ctrl_hdr) + 8));
    EXPECT_EQ(small.hdr.type, VIRTIO_GPU_RESP_ERR_UNSPEC);
  }
  virtio_gpu_get_capset bad{};
  bad.hdr = GpuHdr(VIRTIO_GPU_CMD_GET_CAPSET);
  bad.capset_id = 2;
  bad.capset_version = 99;
  ASSERT_OK_AND_ASSIGN(GpuReply reply, driver_->Command(bad, 4096));
  EXPECT_EQ(reply.hdr.type, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
  bad.capset_id = 77;
  bad.capset_version = 1;
  ASSERT_OK_AND_ASSIGN(reply, driver_->Command(bad, 4096));
  EXPECT_EQ(reply.hdr.type, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
  virtio_gpu_get_capset_info beyond{};
  beyond.hdr = GpuHdr(VIRTIO_GPU_CMD_GET_CAPSET_INFO);
  beyond.capset_index = 2;
  ASSERT_OK_AND_ASSIGN(reply, driver_->Command(beyond, sizeof(virtio_gpu_resp_capset_info)));
  EXPECT_EQ(reply.hdr.type, VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuVirglTest, ATextureTakesTheGuestsPixelsAndIsShownReadBack) {
  Start();
  constexpr uint32_t kWidth = 96, kHeight = 64;
  GpuFramebuffer fb;
  ASSERT_NO_FATAL_FAILURE(MakeShownTexture(5, kWidth, kHeight, &fb));
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) *fb.pixel(x, y) = PatternPixel(x, y);
  }
  ASSERT_THAT(Transfer(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D, 1, 5, kWidth, kHeight, fb.stride),
              Answers(kOk));
  ASSERT_THAT(driver_->Flush(5, GpuRect(0, 0, kWidth, kHeight)), Answers(kOk));
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
}

TEST_F(GpuVirglTest, TheHostsGlClearsATextureTheGuestReadsBack) {
  Start();
  constexpr uint32_t kWidth = 64, kHeight = 48;
  GpuFramebuffer fb;
  ASSERT_NO_FATAL_FAILURE(MakeShownTexture(9, kWidth, kHeight, &fb));
  // A fenced submit: answered (with its fence echoed) once the GL work is done.
  ASSERT_OK_AND_ASSIGN(GpuReply reply,
                       Submit(1, ClearStream(9, 1.0f, 0.0f, 1.0f), VIRTIO_GPU_FLAG_FENCE, 4242));
  ASSERT_EQ(reply.hdr.type, kOk);
  EXPECT_EQ(reply.hdr.flags & VIRTIO_GPU_FLAG_FENCE, VIRTIO_GPU_FLAG_FENCE);
  EXPECT_EQ(reply.hdr.fence_id, 4242u);
  EXPECT_EQ(reply.hdr.ctx_id, 1u);

  std::memset(fb.host, 0, fb.bytes());
  ASSERT_THAT(Transfer(VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1, 9, kWidth, kHeight, fb.stride),
              Answers(kOk));
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) {
      ASSERT_EQ(*fb.pixel(x, y) & 0xffffff, 0xff00ffu) << x << "," << y;  // magenta
    }
  }
  ASSERT_THAT(driver_->Flush(9, GpuRect(0, 0, kWidth, kHeight)), Answers(kOk));
  ASSERT_TRUE(display_->WaitForUpdates(1, kTimeout));
  std::optional<FakeDisplayEnd::Framebuffer> shown = display_->framebuffer(0);
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ(shown->at(0, 0) & 0xffffff, 0xff00ffu);
  EXPECT_EQ(shown->at(kWidth - 1, kHeight - 1) & 0xffffff, 0xff00ffu);
}

TEST_F(GpuVirglTest, HostileThreeDCommandsAreRefusedAndTheDaemonGoesOn) {
  Start({"--max-contexts=2", "--max-resources=4", "--max-memory-mb=1"});
  GpuFramebuffer fb;
  ASSERT_NO_FATAL_FAILURE(MakeShownTexture(3, 32, 32, &fb));

  // Contexts: 0, one in use, beyond the cap; unknown ones named by commands.
  EXPECT_THAT(CreateContext(0), Answers(VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID));
  EXPECT_THAT(CreateContext(1), Answers(VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID));
  EXPECT_THAT(CreateContext(2), Answers(kOk));
  EXPECT_THAT(CreateContext(3), Answers(VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY));
  ASSERT_OK_AND_ASSIGN(GpuReply reply, Submit(9, ClearStream(3, 0, 0, 0)));
  EXPECT_EQ(reply.hdr.type, VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
  virtio_gpu_ctrl_hdr destroy = GpuHdr(VIRTIO_GPU_CMD_CTX_DESTROY);
  destroy.ctx_id = 9;
  EXPECT_THAT(Simple(destroy), Answers(VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID));
  EXPECT_THAT(AttachToContext(1, 77), Answers(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID));

  // Resources: an id in use (3D or 2D), sizes beyond sense or the memory cap, a bad target.
  EXPECT_THAT(CreateTexture(3, 8, 8), Answers(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID));
  EXPECT_THAT(driver_->CreateResource(20, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4, 4), Answers(kOk));
  EXPECT_THAT(CreateTexture(20, 8, 8), Answers(VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID));
  EXPECT_THAT(CreateTexture(4, 0x7fffffff, 0x7fffffff), Answers(VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY));
  EXPECT_THAT(CreateTexture(4, 1024, 1024), Answers(VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY));
  EXPECT_THAT(CreateTexture(4, 0, 8), Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  virtio_gpu_resource_create_3d weird{};
  weird.hdr = GpuHdr(VIRTIO_GPU_CMD_RESOURCE_CREATE_3D);
  weird.resource_id = 4;
  weird.target = 99;
  weird.width = weird.height = weird.depth = weird.array_size = 1;
  EXPECT_THAT(Simple(weird), Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));

  // Backing outside guest memory, or attached twice.
  virtio_gpu_mem_entry outside{};
  outside.addr = uint64_t{1} << 40;
  outside.length = 4096;
  EXPECT_THAT(CreateTexture(4, 8, 8), Answers(kOk));
  EXPECT_THAT(driver_->AttachBacking(4, {&outside, 1}),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  EXPECT_THAT(driver_->AttachFramebuffer(3, fb), Answers(VIRTIO_GPU_RESP_ERR_UNSPEC));

  // Command streams: not whole words, longer than the request, and garbage.
  virtio_gpu_cmd_submit odd{};
  odd.hdr = GpuHdr(VIRTIO_GPU_CMD_SUBMIT_3D);
  odd.hdr.ctx_id = 1;
  odd.size = 6;
  EXPECT_THAT(Simple(odd), Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  odd.size = 1 << 20;
  EXPECT_THAT(Simple(odd), Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  std::vector<uint32_t> garbage(64);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = 0x9e3779b9u * (i + 1);
  ASSERT_OK_AND_ASSIGN(reply, Submit(1, garbage));
  EXPECT_GE(reply.hdr.type, VIRTIO_GPU_RESP_ERR_UNSPEC);
  // A stream that points its surface at a resource the context does not have.
  ASSERT_OK_AND_ASSIGN(reply, Submit(2, ClearStream(12345, 1, 1, 1)));
  EXPECT_GE(reply.hdr.type, VIRTIO_GPU_RESP_ERR_UNSPEC);

  // Transfers: a box beyond the texture, a stride that runs past the backing, no backing.
  EXPECT_THAT(Transfer(VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1, 3, 4096, 4096, fb.stride),
              Refused());
  EXPECT_THAT(Transfer(VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1, 3, 32, 32, 1 << 20), Refused());
  EXPECT_THAT(Transfer(VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1, 4, 8, 8, 32),
              Answers(VIRTIO_GPU_RESP_ERR_UNSPEC));
  EXPECT_THAT(Transfer(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D, 7, 3, 8, 8, 32),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID));
  EXPECT_THAT(driver_->TransferToHost(3, GpuRect(0, 0, 8, 8), 0),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));
  EXPECT_THAT(driver_->SetScanout(0, 3, GpuRect(0, 0, 64, 64)),
              Answers(VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER));

  // Still serving. virglrenderer stops serving a context once it refused its commands, so a
  // new one (destroying one frees the cap) draws; unref frees the cap (a 4th resource fits).
  destroy.ctx_id = 2;
  ASSERT_THAT(Simple(destroy), Answers(kOk));
  ASSERT_THAT(CreateContext(2), Answers(kOk));
  ASSERT_THAT(AttachToContext(2, 3), Answers(kOk));
  ASSERT_OK_AND_ASSIGN(reply, Submit(2, ClearStream(3, 0.0f, 1.0f, 0.0f)));
  ASSERT_EQ(reply.hdr.type, kOk);
  ASSERT_THAT(Transfer(VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 2, 3, 32, 32, fb.stride),
              Answers(kOk));
  EXPECT_EQ(*fb.pixel(31, 31) & 0xffffff, 0x00ff00u);
  EXPECT_THAT(CreateTexture(5, 8, 8), Answers(kOk));
  EXPECT_THAT(CreateTexture(6, 8, 8), Answers(kOk));
  EXPECT_THAT(CreateTexture(7, 8, 8), Answers(VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY));
  EXPECT_THAT(driver_->Unref(5), Answers(kOk));
  EXPECT_THAT(CreateTexture(7, 8, 8), Answers(kOk));
}

TEST_F(GpuVirglTest, ANewFrontEndFindsNothingOfTheLast) {
  Start();
  GpuFramebuffer fb;
  ASSERT_NO_FATAL_FAILURE(MakeShownTexture(3, 16, 16, &fb));
  driver_.reset();
  display_.reset();
  Connect();
  // The context and resource ids are free again, and the renderer still works.
  EXPECT_THAT(AttachToContext(1, 3), Answers(VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID));
  ASSERT_NO_FATAL_FAILURE(MakeShownTexture(3, 16, 16, &fb));
  ASSERT_OK_AND_ASSIGN(GpuReply reply, Submit(1, ClearStream(3, 0.0f, 0.0f, 1.0f)));
  ASSERT_EQ(reply.hdr.type, kOk);
  ASSERT_THAT(Transfer(VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1, 3, 16, 16, fb.stride),
              Answers(kOk));
  EXPECT_EQ(*fb.pixel(0, 0) & 0xffffff, 0x0000ffu);
}

}  // namespace
}  // namespace vhost
