// GpuDevice's 3D half (gpu_device_3d.cc) on TestQueues with a FakeRenderer3d and a
// FakeDisplaySink: VIRTIO_GPU_F_VIRGL and the capsets only with a renderer; GET_CAPSET_INFO and
// GET_CAPSET; fenced commands held until the renderer signals their fence (on a timer or on the
// renderer's fd), others answered at once, held ones answered when the queue stops; resource
// ids routed to the half that owns them; every check the device makes before a call reaches
// the renderer (contexts, submits, backings, caps, sizes); 3D scanouts and cursors read back
// from the renderer; reset. The fake records the device's broken promises (a call naming what
// the device should have refused): every test ends with none.
#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "common/virtio/features.h"
#include "gtest/gtest.h"
#include "vhost-user-gpu/fake_display_sink.h"
#include "vhost-user-gpu/fake_renderer_3d.h"
#include "vhost-user-gpu/gpu_device.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu {
namespace {

using ::vhost::testing::Buffer;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UsedElement;
using FakeSink = ::vhost::gpu::testing::FakeDisplaySink;
using FakeRenderer = ::vhost::gpu::testing::FakeRenderer3d;

// Gallium targets.
constexpr uint32_t kTargetBuffer = 0;
constexpr uint32_t kTexture2d = 2;

// The pattern the fake reads back, as the display gets it (x8r8g8b8, X = 0xff) from a
// B8G8R8X8 resource (bytes B, G, R, X) and from an R8G8B8A8 one (R, G, B, A).
uint32_t ShownBgrx(uint32_t id, uint32_t x, uint32_t y) {
  return 0xff000000u | uint32_t{FakeRenderer::PatternByte(id, x, y, 2)} << 16 |
         uint32_t{FakeRenderer::PatternByte(id, x, y, 1)} << 8 |
         FakeRenderer::PatternByte(id, x, y, 0);
}
uint32_t ShownRgba(uint32_t id, uint32_t x, uint32_t y) {
  return 0xff000000u | uint32_t{FakeRenderer::PatternByte(id, x, y, 0)} << 16 |
         uint32_t{FakeRenderer::PatternByte(id, x, y, 1)} << 8 |
         FakeRenderer::PatternByte(id, x, y, 2);
}

class GpuDevice3dTest : public ::testing::Test {
 protected:
  GpuDevice3dTest() : ram_(16 << 20) {}

  void Make(GpuOptions options = GpuOptions(), bool with_renderer = true) {
    if (with_renderer) options.renderer = &renderer_;
    ASSERT_OK_AND_ASSIGN(device_, GpuDevice::Create(options, &sink_));
    ASSERT_OK(device_->SetFeatures(Bit(kFeatureVersion1) | Bit(kFeatureEdid) |
                                   (with_renderer ? Bit(kFeatureVirgl) : 0)));
    for (int index : {kControlQueue, kCursorQueue}) {
      TestQueue::Options queue_options;
      queue_options.index = index;
      ASSERT_OK_AND_ASSIGN(queues_[index], TestQueue::Create(&ram_, queue_options));
      ASSERT_OK(queues_[index]->Start(*device_));
    }
  }
  void TearDown() override {
    if (device_) {
      for (auto& q : queues_) {
        if (q) q->Stop(*device_);
      }
    }
    EXPECT_TRUE(renderer_.violations.empty())
        << "the renderer got a call the device should have refused: "
        << renderer_.violations.front();
  }
  TestQueue& q(int index) { return *queues_[index]; }

  struct Reply {
    uint32_t written = 0;
    uint64_t gpa = 0;
    CtrlHdr hdr{};
  };
  // Queues one request (over `pieces` readable descriptors) with a `reply_bytes` response
  // buffer and runs the queue; returns the response buffer's address.
  uint64_t Post(const void* request, size_t n, uint32_t reply_bytes = sizeof(CtrlHdr),
                int queue = kControlQueue, int pieces = 1) {
    const uint64_t in = ram_.Put(request, n);
    std::vector<Buffer> readable;
    uint32_t at = 0;
    for (int k = 1; k < pieces; ++k) {
      const uint32_t len = static_cast<uint32_t>(n / pieces);
      readable.push_back({in + at, len});
      at += len;
    }
    readable.push_back({in + at, static_cast<uint32_t>(n - at)});
    const uint64_t out = ram_.Allocate(reply_bytes);
    std::memset(ram_.Host(out, reply_bytes), 0xee, reply_bytes);
    EXPECT_OK(q(queue).Add(readable, {{out, reply_bytes}}));
    q(queue).Run(*device_);
    return out;
  }
  Reply Answer(uint64_t gpa, const UsedElement& used) {
    Reply reply;
    reply.gpa = gpa;
    reply.written = used.len;
    if (used.len >= sizeof(CtrlHdr)) reply.hdr = ram_.Get<CtrlHdr>(gpa);
    return reply;
  }
  // A request answered at once.
  Reply Send(const void* request, size_t n, uint32_t reply_bytes = sizeof(CtrlHdr),
             int queue = kControlQueue, int pieces = 1) {
    const uint64_t out = Post(request, n, reply_bytes, queue, pieces);
    std::vector<UsedElement> used = q(queue).Used();
    EXPECT_EQ(used.size(), 1u) << "not answered at once";
    if (used.size() != 1) return Reply();
    return Answer(out, used[0]);
  }
  template <typename T>
  uint32_t Command(const T& request, int queue = kControlQueue) {
    Reply reply = Send(&request, sizeof(request), sizeof(CtrlHdr), queue);
    EXPECT_EQ(reply.written, sizeof(CtrlHdr));
    return reply.hdr.type;
  }
  static CtrlHdr Hdr(uint32_t type, uint32_t ctx_id = 0) {
    CtrlHdr hdr{};
    hdr.type = type;
    hdr.ctx_id = ctx_id;
    return hdr;
  }
  static CtrlHdr Fenced(uint32_t type, uint64_t fence_id, uint32_t ctx_id = 0) {
    CtrlHdr hdr = Hdr(type, ctx_id);
    hdr.flags = kFlagFence;
    hdr.fence_id = fence_id;
    return hdr;
  }

  static CtxCreate Ctx(uint32_t id, absl::string_view name = "test") {
    CtxCreate c{};
    c.hdr = Hdr(kCmdCtxCreate, id);
    c.nlen = static_cast<uint32_t>(name.size());
    std::memcpy(c.debug_name, name.data(), name.size());
    return c;
  }
  uint32_t CreateCtx(uint32_t id) { return Command(Ctx(id)); }
  static ResourceCreate3d Res3d(uint32_t id, uint32_t width, uint32_t height,
                                uint32_t format = kFormatB8G8R8X8) {
    ResourceCreate3d r{};
    r.hdr = Hdr(kCmdResourceCreate3d);
    r.resource_id = id;
    r.target = kTexture2d;
    r.format = format;
    r.width = width;
    r.height = height;
    r.depth = 1;
    r.array_size = 1;
    r.nr_samples = 0;
    return r;
  }
  uint32_t Create3d(uint32_t id, uint32_t width, uint32_t height,
                    uint32_t format = kFormatB8G8R8X8) {
    return Command(Res3d(id, width, height, format));
  }
  uint32_t Create2d(uint32_t id, uint32_t width = 8, uint32_t height = 8) {
    return Command(ResourceCreate2d{Hdr(kCmdResourceCreate2d), id, kFormatB8G8R8X8, width, height});
  }
  // ATTACH_BACKING claiming `nr_entries` (default: as many as given) with `entries` after it.
  uint32_t Attach(uint32_t id, const std::vector<MemEntry>& entries, int64_t nr_entries = -1) {
    std::vector<uint8_t> request(sizeof(ResourceAttachBacking) + entries.size() * sizeof(MemEntry));
    const ResourceAttachBacking head{
        Hdr(kCmdResourceAttachBacking), id,
        static_cast<uint32_t>(nr_entries < 0 ? entries.size() : nr_entries)};
    std::memcpy(request.data(), &head, sizeof(head));
    if (!entries.empty()) {
      std::memcpy(request.data() + sizeof(head), entries.data(), entries.size() * sizeof(MemEntry));
    }
    return Send(request.data(), request.size()).hdr.type;
  }
  uint32_t Detach(uint32_t id) {
    return Command(ResourceDetachBacking{Hdr(kCmdResourceDetachBacking), id, 0});
  }
  uint32_t Unref(uint32_t id) { return Command(ResourceUnref{Hdr(kCmdResourceUnref), id, 0}); }
  uint32_t Scanout(uint32_t scanout, uint32_t id, GpuRect rect) {
    return Command(SetScanout{Hdr(kCmdSetScanout), rect, scanout, id});
  }
  uint32_t Flush(uint32_t id, GpuRect rect) {
    return Command(ResourceFlush{Hdr(kCmdResourceFlush), rect, id, 0});
  }
  uint32_t CtxResourceCommand(uint32_t type, uint32_t ctx, uint32_t id) {
    return Command(CtxResource{Hdr(type, ctx), id, 0});
  }
  // SUBMIT_3D whose header says `size` bytes, followed by `body`.
  uint32_t Submit(uint32_t ctx, uint32_t size, const std::vector<uint8_t>& body, int pieces = 1) {
    std::vector<uint8_t> request(sizeof(CmdSubmit) + body.size());
    const CmdSubmit head{Hdr(kCmdSubmit3d, ctx), size, 0};
    std::memcpy(request.data(), &head, sizeof(head));
    if (!body.empty()) std::memcpy(request.data() + sizeof(head), body.data(), body.size());
    return Send(request.data(), request.size(), sizeof(CtrlHdr), kControlQueue, pieces).hdr.type;
  }
  static Transfer3d Xfer(uint32_t type, uint32_t ctx, uint32_t id) {
    Transfer3d t{};
    t.hdr = Hdr(type, ctx);
    t.box = GpuBox{1, 2, 0, 3, 4, 1};
    t.offset = 4096;
    t.resource_id = id;
    t.level = 1;
    t.stride = 256;
    t.layer_stride = 0;
    return t;
  }
  MemEntry Backing(uint32_t bytes) { return MemEntry{ram_.Allocate(bytes, 4096), bytes, 0}; }
  int Count(const std::string& call) const {
    int n = 0;
    for (const std::string& c : renderer_.calls) n += c == call;
    return n;
  }

  FakeGuestMemory ram_;
  FakeSink sink_;
  FakeRenderer renderer_;  // outlives the device
  std::unique_ptr<GpuDevice> device_;
  std::unique_ptr<TestQueue> queues_[2];
};

// ---- features, config, capsets

TEST_F(GpuDevice3dTest, VirglAndCapsetsOnlyWithARenderer) {
  GpuConfig config;
  auto read_config = [&] {
    return device_->ReadConfig(0,
                               absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), sizeof(config)));
  };
  Make(GpuOptions(), /*with_renderer=*/false);
  EXPECT_EQ(device_->Info().features & Bit(kFeatureVirgl), 0u);
  ASSERT_OK(read_config());
  EXPECT_EQ(config.num_capsets, 0u);
  // The 3D commands are the 2D device's errors: the renderer is never asked.
  EXPECT_EQ(Command(Hdr(kCmdGetCapsetInfo)), kRespErrUnspec);
  EXPECT_EQ(Command(Ctx(1)), kRespErrUnspec);
  EXPECT_TRUE(renderer_.calls.empty());
  for (auto& q : queues_) q->Stop(*device_);

  Make();
  EXPECT_NE(device_->Info().features & Bit(kFeatureVirgl), 0u);
  EXPECT_NE(device_->Info().features & Bit(kFeatureEdid), 0u);
  ASSERT_OK(read_config());
  EXPECT_EQ(config.num_capsets, 2u);
  renderer_.capsets.pop_back();
  ASSERT_OK(read_config());
  EXPECT_EQ(config.num_capsets, 1u);
}

TEST_F(GpuDevice3dTest, GetCapsetInfo) {
  Make();
  for (uint32_t index : {0u, 1u}) {
    const GetCapsetInfo request{Hdr(kCmdGetCapsetInfo), index, 0};
    Reply reply = Send(&request, sizeof(request), sizeof(RespCapsetInfo));
    ASSERT_EQ(reply.written, sizeof(RespCapsetInfo));
    const RespCapsetInfo info = ram_.Get<RespCapsetInfo>(reply.gpa);
    EXPECT_EQ(info.hdr.type, kRespOkCapsetInfo);
    EXPECT_EQ(info.capset_id, renderer_.capsets[index].id);
    EXPECT_EQ(info.capset_max_version, renderer_.capsets[index].max_version);
    EXPECT_EQ(info.capset_max_size, renderer_.capsets[index].max_size);
  }
  // An index past the capsets.
  GetCapsetInfo request{Hdr(kCmdGetCapsetInfo), 2, 0};
  Reply reply = Send(&request, sizeof(request), sizeof(RespCapsetInfo));
  EXPECT_EQ(reply.written, sizeof(CtrlHdr));
  EXPECT_EQ(reply.hdr.type, kRespErrInvalidParameter);
  request.capset_index = UINT32_MAX;
  EXPECT_EQ(Send(&request, sizeof(request), sizeof(RespCapsetInfo)).hdr.type,
            kRespErrInvalidParameter);
  // Cut short, and a response buffer with room for a header only.
  request.capset_index = 0;
  EXPECT_EQ(Send(&request, sizeof(request) - 4, sizeof(RespCapsetInfo)).hdr.type, kRespErrUnspec);
  reply = Send(&request, sizeof(request), sizeof(CtrlHdr));
  EXPECT_EQ(reply.written, sizeof(CtrlHdr));
  EXPECT_EQ(reply.hdr.type, kRespErrUnspec);
}

TEST_F(GpuDevice3dTest, GetCapset) {
  Make();
  const uint32_t room = sizeof(CtrlHdr) + 1024;
  GetCapset request{Hdr(kCmdGetCapset), kCapsetVirgl2, 2};
  Reply reply = Send(&request, sizeof(request), room);
  ASSERT_EQ(reply.written, room);
  EXPECT_EQ(reply.hdr.type, kRespOkCapset);
  const uint8_t* data = ram_.Host(reply.gpa + sizeof(CtrlHdr), 1024);
  for (uint32_t i = 0; i < 1024; ++i) {
    ASSERT_EQ(data[i], static_cast<uint8_t>(kCapsetVirgl2 + 2 + i)) << i;
  }
  // An older version is served; the data the renderer gives, cut to the size announced.
  request.capset_version = 1;
  renderer_.capset_data_size = 10;
  reply = Send(&request, sizeof(request), room);
  EXPECT_EQ(reply.hdr.type, kRespOkCapset);
  EXPECT_EQ(reply.written, sizeof(CtrlHdr) + 10);
  renderer_.capset_data_size = 5000;
  reply = Send(&request, sizeof(request), room + 4000);
  EXPECT_EQ(reply.written, room);
  renderer_.capset_data_size = -1;

  const int asked = Count("CapsetData");
  // A version beyond the capset's, an unknown id: the renderer is not asked.
  request.capset_version = 3;
  EXPECT_EQ(Send(&request, sizeof(request), room).hdr.type, kRespErrInvalidParameter);
  request = GetCapset{Hdr(kCmdGetCapset), 7, 0};
  EXPECT_EQ(Send(&request, sizeof(request), room).hdr.type, kRespErrInvalidParameter);
  // A response buffer one byte short of the capset's max_size: a header only.
  request = GetCapset{Hdr(kCmdGetCapset), kCapsetVirgl, 1};
  reply = Send(&request, sizeof(request), sizeof(CtrlHdr) + 307);
  EXPECT_EQ(reply.written, sizeof(CtrlHdr));
  EXPECT_EQ(reply.hdr.type, kRespErrUnspec);
  EXPECT_EQ(Send(&request, sizeof(request) - 1, room).hdr.type, kRespErrUnspec);
  EXPECT_EQ(Count("CapsetData"), asked);
  // The renderer fails.
  renderer_.FailNext(absl::InternalError("no capset"));
  reply = Send(&request, sizeof(request), room);
  EXPECT_EQ(reply.hdr.type, kRespErrUnspec);
  EXPECT_EQ(reply.written, sizeof(CtrlHdr));
  EXPECT_EQ(Count("CapsetData"), asked + 1);
}

// ---- fences

TEST_F(GpuDevice3dTest, FencedCommandWaitsForItsFence) {
  Make();
  CtxCreate create = Ctx(1);
  create.hdr.flags = kFlagFence | kFlagInfoRingIdx;
  create.hdr.fence_id = 0x1234567890ull;
  create.hdr.ring_idx = 2;
  const uint64_t out = Post(&create, sizeof(create));
  // Done (the context exists) and a fence created after it, but not answered.
  EXPECT_EQ(device_->context_count(), 1u);
  ASSERT_EQ(renderer_.fences.size(), 1u);
  EXPECT_TRUE(q(kControlQueue).Used().empty());
  // No fd to wait on: the worker is to come back shortly; and again nothing before the signal.
  EXPECT_EQ(q(kControlQueue).Run(*device_).kind(), QueueResult::Kind::kRetryAfter);
  EXPECT_TRUE(q(kControlQueue).Used().empty());
  renderer_.Signal(renderer_.fences[0] - 1);
  q(kControlQueue).Run(*device_);
  EXPECT_TRUE(q(kControlQueue).Used().empty());

  renderer_.Signal(renderer_.fences[0]);
  EXPECT_EQ(q(kControlQueue).Run(*device_).kind(), QueueResult::Kind::kDrained);
  std::vector<UsedElement> used = q(kControlQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  Reply reply = Answer(out, used[0]);
  EXPECT_EQ(reply.written, sizeof(CtrlHdr));
  EXPECT_EQ(reply.hdr.type, kRespOkNodata);
  EXPECT_EQ(reply.hdr.flags, kFlagFence | kFlagInfoRingIdx);
  EXPECT_EQ(reply.hdr.fence_id, 0x1234567890ull);
  EXPECT_EQ(reply.hdr.ctx_id, 1u);
  EXPECT_EQ(reply.hdr.ring_idx, 2u);
}

TEST_F(GpuDevice3dTest, FencedAnswersInTheirFencesOrder) {
  Make();
  ASSERT_EQ(CreateCtx(1), kRespOkNodata);
  const std::vector<uint8_t> words(8, 0);
  std::vector<uint64_t> outs;
  for (uint64_t guest_fence : {10, 11, 12}) {
    std::vector<uint8_t> request(sizeof(CmdSubmit) + words.size());
    const CmdSubmit head{Fenced(kCmdSubmit3d, guest_fence, 1), 8, 0};
    std::memcpy(request.data(), &head, sizeof(head));
    outs.push_back(Post(request.data(), request.size()));
  }
  ASSERT_EQ(renderer_.fences.size(), 3u);
  EXPECT_EQ(renderer_.submits.size(), 3u);
  EXPECT_TRUE(q(kControlQueue).Used().empty());
  // An unfenced command behind them is answered at once.
  EXPECT_EQ(Create3d(5, 4, 4), kRespOkNodata);

  renderer_.Signal(renderer_.fences[0]);
  q(kControlQueue).Run(*device_);
  std::vector<UsedElement> used = q(kControlQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(Answer(outs[0], used[0]).hdr.fence_id, 10u);
  // A later fence signalled covers everything before it.
  renderer_.Signal(renderer_.fences[2] + 5);
  q(kControlQueue).Run(*device_);
  used = q(kControlQueue).Used();
  ASSERT_EQ(used.size(), 2u);
  EXPECT_EQ(Answer(outs[1], used[0]).hdr.fence_id, 11u);
  EXPECT_EQ(Answer(outs[2], used[1]).hdr.fence_id, 12u);
  EXPECT_EQ(Answer(outs[2], used[1]).hdr.type, kRespOkNodata);
}

TEST_F(GpuDevice3dTest, UnfencedAndFailedCommandsAnswerAtOnce) {
  Make();
  // Unfenced: no fence created.
  EXPECT_EQ(CreateCtx(1), kRespOkNodata);
  EXPECT_TRUE(renderer_.fences.empty());
  // Fenced but failing (context 1 is in use): answered now, the fence echoed.
  CtxCreate create = Ctx(1);
  create.hdr = Fenced(kCmdCtxCreate, 42, 1);
  Reply reply = Send(&create, sizeof(create));
  EXPECT_EQ(reply.hdr.type, kRespErrInvalidContextId);
  EXPECT_EQ(reply.hdr.flags, kFlagFence);
  EXPECT_EQ(reply.hdr.fence_id, 42u);
  EXPECT_EQ(reply.hdr.ctx_id, 1u);
  EXPECT_TRUE(renderer_.fences.empty());
  // Fenced, succeeding, but the renderer cannot make the fence: answered now rather than never.
  renderer_.FailNext(absl::InternalError("no fence"), "CreateFence");
  create = Ctx(2);
  create.hdr = Fenced(kCmdCtxCreate, 43, 2);
  reply = Send(&create, sizeof(create));
  EXPECT_EQ(reply.hdr.type, kRespOkNodata);
  EXPECT_EQ(reply.hdr.fence_id, 43u);
  EXPECT_EQ(Count("CreateFence"), 1);
  EXPECT_EQ(device_->context_count(), 2u);
}

TEST_F(GpuDevice3dTest, FenceSignalOnTheRenderersFd) {
  renderer_.UseEventFd();
  Make();
  CtxCreate create = Ctx(1);
  create.hdr = Fenced(kCmdCtxCreate, 5, 1);
  const uint64_t out = Post(&create, sizeof(create));
  // With an fd the worker sleeps on it rather than on a timer.
  EXPECT_EQ(q(kControlQueue).Run(*device_).kind(), QueueResult::Kind::kDrained);
  EXPECT_TRUE(q(kControlQueue).Used().empty());
  ASSERT_EQ(renderer_.fences.size(), 1u);
  renderer_.Signal(renderer_.fences[0]);
  // The signal wakes the queue (the device watches the renderer's fd).
  ASSERT_TRUE(q(kControlQueue).RunWhenReady(*device_, absl::Seconds(10)).has_value());
  std::vector<UsedElement> used = q(kControlQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(Answer(out, used[0]).hdr.fence_id, 5u);
}

TEST_F(GpuDevice3dTest, QueueStoppedAnswersHeldCommands) {
  Make();
  CtxCreate create = Ctx(1);
  create.hdr = Fenced(kCmdCtxCreate, 7, 1);
  const uint64_t out = Post(&create, sizeof(create));
  create = Ctx(2);
  create.hdr = Fenced(kCmdCtxCreate, 8, 2);
  const uint64_t out2 = Post(&create, sizeof(create));
  EXPECT_TRUE(q(kControlQueue).Used().empty());
  // The first fence is signalled, the second never: the stop answers both (the second after
  // the renderer had its moment).
  renderer_.Signal(renderer_.fences[0]);
  q(kControlQueue).Stop(*device_);
  std::vector<UsedElement> used = q(kControlQueue).Used();
  ASSERT_EQ(used.size(), 2u);
  EXPECT_EQ(Answer(out, used[0]).hdr.fence_id, 7u);
  EXPECT_EQ(Answer(out2, used[1]).hdr.fence_id, 8u);
  EXPECT_EQ(Answer(out2, used[1]).hdr.type, kRespOkNodata);
  queues_[kControlQueue].reset();
}

// ---- routing between the halves

TEST_F(GpuDevice3dTest, AnIdIsTwoDOrThreeDNeverBoth) {
  Make();
  ASSERT_EQ(Create3d(1, 8, 8), kRespOkNodata);
  ASSERT_EQ(Create2d(2), kRespOkNodata);
  EXPECT_EQ(Create2d(1), kRespErrInvalidResourceId);
  EXPECT_EQ(Create3d(2, 8, 8), kRespErrInvalidResourceId);
  EXPECT_EQ(Create3d(1, 8, 8), kRespErrInvalidResourceId);
  EXPECT_EQ(Create3d(0, 8, 8), kRespErrInvalidResourceId);
  EXPECT_EQ(device_->resource_count(), 2u);
  EXPECT_EQ(renderer_.resources.size(), 1u);
  // Unref of the 3D id reaches the renderer, and the 2D one the table only. The 3D id
  // unreffed is free for a 2D resource.
  ASSERT_EQ(Unref(1), kRespOkNodata);
  EXPECT_EQ(Count("UnrefResource"), 1);
  EXPECT_TRUE(renderer_.resources.empty());
  ASSERT_EQ(Unref(2), kRespOkNodata);
  EXPECT_EQ(Count("UnrefResource"), 1);
  EXPECT_EQ(device_->resource_count(), 0u);
  EXPECT_EQ(Create2d(1), kRespOkNodata);
  EXPECT_EQ(Unref(1), kRespOkNodata);
  EXPECT_EQ(Unref(1), kRespErrInvalidResourceId);
}

TEST_F(GpuDevice3dTest, CommonCommandsGoWhereTheIdIs) {
  Make();
  ASSERT_EQ(Create3d(1, 16, 8), kRespOkNodata);
  ASSERT_EQ(Create2d(2, 16, 8), kRespOkNodata);
  const MemEntry a = Backing(8192), b = Backing(4096);
  // ATTACH_BACKING: the 3D id's entries reach the renderer as host memory, in order.
  ASSERT_EQ(Attach(1, {a, b}), kRespOkNodata);
  ASSERT_EQ(renderer_.resources[1].backing.size(), 2u);
  EXPECT_EQ(renderer_.resources[1].backing[0].iov_base, ram_.Host(a.addr, a.length));
  EXPECT_EQ(renderer_.resources[1].backing[0].iov_len, a.length);
  EXPECT_EQ(renderer_.resources[1].backing[1].iov_base, ram_.Host(b.addr, b.length));
  EXPECT_EQ(renderer_.resources[1].backing[1].iov_len, b.length);
  ASSERT_EQ(Attach(2, {Backing(16 * 8 * 4)}), kRespOkNodata);
  EXPECT_EQ(Count("AttachBacking"), 1);
  // SET_SCANOUT and RESOURCE_FLUSH: the renderer reads the 3D one back, never the 2D one.
  ASSERT_EQ(Scanout(0, 2, {0, 0, 16, 8}), kRespOkNodata);
  ASSERT_EQ(Flush(2, {0, 0, 16, 8}), kRespOkNodata);
  EXPECT_EQ(Count("Info"), 0);
  EXPECT_EQ(Count("ReadPixels"), 0);
  ASSERT_EQ(Scanout(0, 1, {0, 0, 16, 8}), kRespOkNodata);
  ASSERT_EQ(Flush(1, {0, 0, 16, 8}), kRespOkNodata);
  EXPECT_EQ(Count("ReadPixels"), 1);
  // DETACH_BACKING.
  ASSERT_EQ(Detach(2), kRespOkNodata);
  EXPECT_EQ(Count("DetachBacking"), 0);
  ASSERT_EQ(Detach(1), kRespOkNodata);
  EXPECT_EQ(Count("DetachBacking"), 1);
  EXPECT_FALSE(renderer_.resources[1].has_backing);
  EXPECT_EQ(Detach(1), kRespErrUnspec);  // none left
  EXPECT_EQ(Count("DetachBacking"), 1);
  // A new backing after the old one went.
  EXPECT_EQ(Attach(1, {a}), kRespOkNodata);
  EXPECT_EQ(Count("AttachBacking"), 2);
  // TRANSFER_TO_HOST_2D is for 2D resources only.
  EXPECT_EQ(Command(TransferToHost2d{Hdr(kCmdTransferToHost2d), {0, 0, 4, 4}, 0, 1, 0}),
            kRespErrInvalidParameter);
  EXPECT_EQ(Command(TransferToHost2d{Hdr(kCmdTransferToHost2d), {0, 0, 4, 4}, 0, 2, 0}),
            kRespErrUnspec);  // 2D, but its backing was detached: the table's answer
  EXPECT_EQ(renderer_.to_host.size(), 0u);
}

// ---- checks before the renderer

TEST_F(GpuDevice3dTest, ContextChecks) {
  GpuOptions options;
  options.max_contexts = 2;
  Make(options);
  EXPECT_EQ(CreateCtx(0), kRespErrInvalidContextId);
  CtxCreate named = Ctx(1, "glmark2");
  ASSERT_EQ(Command(named), kRespOkNodata);
  EXPECT_EQ(renderer_.contexts[1], "glmark2");
  EXPECT_EQ(CreateCtx(1), kRespErrInvalidContextId);
  CtxCreate long_name = Ctx(2);
  long_name.nlen = 65;
  EXPECT_EQ(Command(long_name), kRespErrInvalidParameter);
  renderer_.FailNext(absl::InternalError("out of GL contexts"));
  EXPECT_EQ(CreateCtx(2), kRespErrUnspec);
  EXPECT_EQ(device_->context_count(), 1u);
  ASSERT_EQ(CreateCtx(2), kRespOkNodata);
  EXPECT_EQ(CreateCtx(3), kRespErrOutOfMemory);  // over --max-contexts
  EXPECT_EQ(Count("CreateContext"), 3);
  // CTX_DESTROY: unknown, then known (a slot frees).
  EXPECT_EQ(Command(Hdr(kCmdCtxDestroy, 9)), kRespErrInvalidContextId);
  EXPECT_EQ(Count("DestroyContext"), 0);
  ASSERT_EQ(Command(Hdr(kCmdCtxDestroy, 2)), kRespOkNodata);
  EXPECT_EQ(renderer_.contexts.count(2), 0u);
  EXPECT_EQ(Command(Hdr(kCmdCtxDestroy, 2)), kRespErrInvalidContextId);
  EXPECT_EQ(CreateCtx(3), kRespOkNodata);
  EXPECT_EQ(device_->context_count(), 2u);

  // CTX_ATTACH/DETACH_RESOURCE: the context and a 3D resource must exist.
  ASSERT_EQ(Create3d(4, 8, 8), kRespOkNodata);
  ASSERT_EQ(Create2d(5), kRespOkNodata);
  for (uint32_t type : {kCmdCtxAttachResource, kCmdCtxDetachResource}) {
    EXPECT_EQ(CtxResourceCommand(type, 2, 4), kRespErrInvalidContextId);
    EXPECT_EQ(CtxResourceCommand(type, 0, 4), kRespErrInvalidContextId);
    EXPECT_EQ(CtxResourceCommand(type, 1, 6), kRespErrInvalidResourceId);
    EXPECT_EQ(CtxResourceCommand(type, 1, 5), kRespErrInvalidResourceId);  // 2D
  }
  EXPECT_EQ(Count("AttachResource") + Count("DetachResource"), 0);
  ASSERT_EQ(CtxResourceCommand(kCmdCtxAttachResource, 1, 4), kRespOkNodata);
  EXPECT_EQ(renderer_.resources[4].contexts.count(1), 1u);
  ASSERT_EQ(CtxResourceCommand(kCmdCtxDetachResource, 1, 4), kRespOkNodata);
  EXPECT_EQ(renderer_.resources[4].contexts.count(1), 0u);
}

TEST_F(GpuDevice3dTest, SubmitChecks) {
  Make();
  ASSERT_EQ(CreateCtx(1), kRespOkNodata);
  std::vector<uint8_t> words(64);
  for (size_t i = 0; i < words.size(); ++i) words[i] = static_cast<uint8_t>(i * 3 + 1);
  // Whole and over three descriptors: the renderer gets the bytes as sent.
  ASSERT_EQ(Submit(1, 64, words), kRespOkNodata);
  ASSERT_EQ(Submit(1, 64, words, /*pieces=*/3), kRespOkNodata);
  ASSERT_EQ(renderer_.submits.size(), 2u);
  for (const auto& s : renderer_.submits) {
    EXPECT_EQ(s.ctx_id, 1u);
    EXPECT_EQ(s.commands, words);
  }
  // Fewer bytes than the request holds: those only.
  ASSERT_EQ(Submit(1, 16, words), kRespOkNodata);
  EXPECT_EQ(renderer_.submits.back().commands,
            std::vector<uint8_t>(words.begin(), words.begin() + 16));
  // An empty stream is a no-op the renderer may see.
  EXPECT_EQ(Submit(1, 0, {}), kRespOkNodata);

  const size_t submitted = renderer_.submits.size();
  EXPECT_EQ(Submit(2, 64, words), kRespErrInvalidContextId);
  EXPECT_EQ(Submit(0, 64, words), kRespErrInvalidContextId);
  EXPECT_EQ(Submit(1, 6, words), kRespErrInvalidParameter);   // not whole words
  EXPECT_EQ(Submit(1, 68, words), kRespErrInvalidParameter);  // beyond the request
  EXPECT_EQ(Submit(1, UINT32_MAX & ~3u, words), kRespErrInvalidParameter);
  const CtrlHdr bare = Hdr(kCmdSubmit3d, 1);
  EXPECT_EQ(Command(bare), kRespErrUnspec);  // no size field
  // 4 MiB is the most, even when the request holds more.
  std::vector<uint8_t> big((4u << 20) + 4, 0x5a);
  EXPECT_EQ(Submit(1, (4u << 20) + 4, big), kRespErrInvalidParameter);
  EXPECT_EQ(renderer_.submits.size(), submitted);
  ASSERT_EQ(Submit(1, 4u << 20, big), kRespOkNodata);
  EXPECT_EQ(renderer_.submits.back().commands.size(), 4u << 20);
  // The renderer refuses the stream.
  renderer_.FailNext(absl::InvalidArgumentError("bad command"));
  EXPECT_EQ(Submit(1, 64, words), kRespErrInvalidParameter);
}

TEST_F(GpuDevice3dTest, TransferChecks) {
  Make();
  ASSERT_EQ(CreateCtx(3), kRespOkNodata);
  ASSERT_EQ(Create3d(1, 16, 16), kRespOkNodata);
  ASSERT_EQ(Create2d(2), kRespOkNodata);
  for (uint32_t type : {kCmdTransferToHost3d, kCmdTransferFromHost3d}) {
    EXPECT_EQ(Command(Xfer(type, 4, 1)), kRespErrInvalidContextId);
    EXPECT_EQ(Command(Xfer(type, 3, 9)), kRespErrInvalidResourceId);
    EXPECT_EQ(Command(Xfer(type, 3, 2)), kRespErrInvalidResourceId);  // 2D
    Transfer3d cut = Xfer(type, 3, 1);
    EXPECT_EQ(Send(&cut, sizeof(cut) - 1).hdr.type, kRespErrUnspec);
  }
  // Reading back needs somewhere to put it.
  EXPECT_EQ(Command(Xfer(kCmdTransferFromHost3d, 3, 1)), kRespErrUnspec);
  EXPECT_TRUE(renderer_.to_host.empty());
  EXPECT_TRUE(renderer_.from_host.empty());
  ASSERT_EQ(Attach(1, {Backing(16 * 16 * 4)}), kRespOkNodata);
  // In a context, and in context 0 (the renderer's own).
  EXPECT_EQ(Command(Xfer(kCmdTransferToHost3d, 3, 1)), kRespOkNodata);
  EXPECT_EQ(Command(Xfer(kCmdTransferFromHost3d, 0, 1)), kRespOkNodata);
  ASSERT_EQ(renderer_.to_host.size(), 1u);
  ASSERT_EQ(renderer_.from_host.size(), 1u);
  const Transfer3d& t = renderer_.to_host[0];
  EXPECT_EQ(t.hdr.ctx_id, 3u);
  EXPECT_EQ(t.resource_id, 1u);
  EXPECT_EQ(t.box.x, 1u);
  EXPECT_EQ(t.box.h, 4u);
  EXPECT_EQ(t.offset, 4096u);
  EXPECT_EQ(t.level, 1u);
  EXPECT_EQ(t.stride, 256u);
  EXPECT_EQ(renderer_.from_host[0].hdr.ctx_id, 0u);
  // The renderer refuses the box.
  renderer_.FailNext(absl::InvalidArgumentError("box beyond the resource"));
  EXPECT_EQ(Command(Xfer(kCmdTransferToHost3d, 3, 1)), kRespErrInvalidParameter);
}

TEST_F(GpuDevice3dTest, BackingChecks) {
  GpuOptions options;
  options.limits.max_backing_entries = 4;
  options.limits.max_backing_bytes = 64 * 1024;
  Make(options);
  ASSERT_EQ(Create3d(1, 64, 64), kRespOkNodata);
  const MemEntry page = Backing(4096);
  // Outside guest memory, or running past its end.
  EXPECT_EQ(Attach(1, {{uint64_t{1} << 40, 4096, 0}}), kRespErrInvalidParameter);
  EXPECT_EQ(Attach(1, {page, {(16u << 20) - 100, 4096, 0}}), kRespErrInvalidParameter);
  EXPECT_EQ(Attach(1, {{UINT64_MAX - 10, 4096, 0}}), kRespErrInvalidParameter);
  // Entry counts: none, more than the cap (refused before they are read), more than sent.
  EXPECT_EQ(Attach(1, {}), kRespErrInvalidParameter);
  EXPECT_EQ(Attach(1, std::vector<MemEntry>(5, page)), kRespErrOutOfMemory);
  EXPECT_EQ(Attach(1, {}, 0xffffffff), kRespErrOutOfMemory);
  EXPECT_EQ(Attach(1, {page}, 2), kRespErrUnspec);
  // More bytes than the cap.
  EXPECT_EQ(Attach(1, {Backing(40 * 1024), Backing(40 * 1024)}), kRespErrOutOfMemory);
  // The renderer fails.
  renderer_.FailNext(absl::InternalError("no"));
  EXPECT_EQ(Attach(1, {page}), kRespErrUnspec);
  EXPECT_EQ(Count("AttachBacking"), 1);
  // Four entries, zero-length ones dropped.
  ASSERT_EQ(Attach(1, {page, {page.addr, 0, 0}, page, page}), kRespOkNodata);
  EXPECT_EQ(renderer_.resources[1].backing.size(), 3u);
  EXPECT_EQ(Attach(1, {page}), kRespErrUnspec);  // already attached
  EXPECT_EQ(Count("AttachBacking"), 2);
  EXPECT_EQ(Attach(9, {page}), kRespErrInvalidResourceId);  // no such resource either half
}

TEST_F(GpuDevice3dTest, ResourceChecksAndCaps) {
  GpuOptions options;
  options.limits.max_resources = 3;
  options.limits.max_host_bytes = 64 * 64 * 4 + 4096;
  Make(options);
  ResourceCreate3d r = Res3d(1, 8, 8);
  r.target = 9;
  EXPECT_EQ(Command(r), kRespErrInvalidParameter);  // no such target
  for (int field = 0; field < 4; ++field) {
    r = Res3d(1, 8, 8);
    uint32_t* sizes[] = {&r.width, &r.height, &r.depth, &r.array_size};
    *sizes[field] = 0;
    EXPECT_EQ(Command(r), kRespErrInvalidParameter) << field;
  }
  r = Res3d(1, 100, 2);
  r.target = kTargetBuffer;
  EXPECT_EQ(Command(r), kRespErrInvalidParameter);  // a buffer is one row
  EXPECT_EQ(Create3d(1, 16385, 1), kRespErrOutOfMemory);
  r = Res3d(1, 8, 8);
  r.nr_samples = 33;
  EXPECT_EQ(Command(r), kRespErrOutOfMemory);
  EXPECT_EQ(Count("CreateResource"), 0);

  // Bytes: a 64x64 texture (16 KiB) and a 4 KiB buffer fill the cap exactly.
  ASSERT_EQ(Create3d(1, 64, 64), kRespOkNodata);
  EXPECT_EQ(device_->host_bytes(), 64u * 64 * 4);
  r = Res3d(2, 4097, 1);
  r.target = kTargetBuffer;
  EXPECT_EQ(Command(r), kRespErrOutOfMemory);
  r.width = 4096;
  ASSERT_EQ(Command(r), kRespOkNodata);
  EXPECT_EQ(device_->host_bytes(), 64u * 64 * 4 + 4096);
  EXPECT_EQ(Create3d(3, 1, 1), kRespErrOutOfMemory);
  // Mip levels count a third more: 32x32 (4 KiB) with levels is over what one unref frees.
  ASSERT_EQ(Unref(2), kRespOkNodata);
  r = Res3d(3, 32, 32);
  r.last_level = 5;
  EXPECT_EQ(Command(r), kRespErrOutOfMemory);
  r.last_level = 0;
  ASSERT_EQ(Command(r), kRespOkNodata);
  // 2D resources count apart: their own bytes and count.
  EXPECT_EQ(Create2d(4, 64, 64), kRespOkNodata);
  // Count: three 3D resources at most.
  ASSERT_EQ(Unref(1), kRespOkNodata);
  ASSERT_EQ(Create3d(5, 1, 1), kRespOkNodata);
  ASSERT_EQ(Create3d(6, 1, 1), kRespOkNodata);
  EXPECT_EQ(Create3d(7, 1, 1), kRespErrOutOfMemory);
  EXPECT_EQ(device_->resource_count(), 4u);
  // The renderer refuses one: nothing is counted.
  ASSERT_EQ(Unref(6), kRespOkNodata);
  const uint64_t bytes = device_->host_bytes();
  renderer_.FailNext(absl::InvalidArgumentError("format"));
  EXPECT_EQ(Create3d(7, 1, 1), kRespErrInvalidParameter);
  EXPECT_EQ(device_->host_bytes(), bytes);
  EXPECT_EQ(device_->resource_count(), 3u);
}

// ---- scanouts and cursors of 3D resources

TEST_F(GpuDevice3dTest, ScanoutOfA3dResourceIsReadBack) {
  GpuOptions options;
  options.outputs = 2;
  Make(options);
  ASSERT_EQ(Create3d(1, 32, 16), kRespOkNodata);
  ASSERT_EQ(Create3d(2, 32, 16, kFormatR8G8B8A8), kRespOkNodata);
  ASSERT_EQ(Scanout(0, 1, {0, 0, 32, 16}), kRespOkNodata);
  ASSERT_EQ(sink_.scanout_calls.size(), 1u);
  EXPECT_EQ(sink_.scanout_calls[0].width, 32u);
  EXPECT_EQ(sink_.scanout_calls[0].height, 16u);
  ASSERT_EQ(Flush(1, {0, 0, 32, 16}), kRespOkNodata);
  const FakeSink::Frame& frame = sink_.frames[0];
  for (uint32_t y = 0; y < 16; ++y) {
    for (uint32_t x = 0; x < 32; ++x)
      ASSERT_EQ(frame.Pixel(x, y), ShownBgrx(1, x, y)) << x << "," << y;
  }
  // Scanout 1 shows part of resource 2 (R8G8B8A8): a flush of all of it reads back that part.
  ASSERT_EQ(Scanout(1, 2, {8, 4, 16, 8}), kRespOkNodata);
  const size_t updates = sink_.update_calls.size();
  ASSERT_EQ(Flush(2, {0, 0, 32, 16}), kRespOkNodata);
  ASSERT_EQ(sink_.update_calls.size(), updates + 1);
  const FakeSink::Frame& part = sink_.frames[1];
  ASSERT_EQ(part.width, 16u);
  for (uint32_t y = 0; y < 8; ++y) {
    for (uint32_t x = 0; x < 16; ++x) {
      ASSERT_EQ(part.Pixel(x, y), ShownRgba(2, x + 8, y + 4)) << x << "," << y;
    }
  }
  // A flush outside the scanout's part reads nothing.
  const int reads = Count("ReadPixels");
  ASSERT_EQ(Flush(2, {0, 0, 8, 4}), kRespOkNodata);
  EXPECT_EQ(Count("ReadPixels"), reads);
  EXPECT_EQ(sink_.update_calls.size(), updates + 1);

  // A new display end is told what the 3D scanouts show.
  FakeSink second;
  device_->SetSink(&second);
  ASSERT_EQ(CreateCtx(1), kRespOkNodata);
  ASSERT_EQ(second.frames.count(1), 1u);
  EXPECT_EQ(second.frames[1].Pixel(3, 2), ShownRgba(2, 11, 6));
  EXPECT_EQ(second.frames[0].Pixel(31, 15), ShownBgrx(1, 31, 15));
  device_->SetSink(&sink_);
  ASSERT_EQ(CreateCtx(2), kRespOkNodata);

  // Unref of a shown 3D resource turns its scanout off.
  ASSERT_EQ(Unref(1), kRespOkNodata);
  ASSERT_FALSE(sink_.scanout_calls.empty());
  EXPECT_EQ(sink_.scanout_calls.back().scanout_id, 0u);
  EXPECT_EQ(sink_.scanout_calls.back().width, 0u);
  EXPECT_EQ(Flush(1, {0, 0, 32, 16}), kRespErrInvalidResourceId);
}

// Two scanouts on one 3D resource, and a display end that was away while they were set: the
// replay tells it each scanout's size before that scanout's pixels, once each.
TEST_F(GpuDevice3dTest, ReplayShowsEachScanoutAfterItsSize) {
  GpuOptions options;
  options.outputs = 2;
  Make(options);
  ASSERT_EQ(Create3d(1, 32, 16), kRespOkNodata);
  device_->SetSink(nullptr);
  ASSERT_EQ(Scanout(0, 1, {0, 0, 32, 16}), kRespOkNodata);
  ASSERT_EQ(Scanout(1, 1, {8, 4, 16, 8}), kRespOkNodata);
  FakeSink second;
  device_->SetSink(&second);
  ASSERT_EQ(CreateCtx(1), kRespOkNodata);
  EXPECT_EQ(second.calls, "SUSU");
  EXPECT_EQ(second.bad_updates, 0);
  EXPECT_EQ(second.frames[0].Pixel(5, 5), ShownBgrx(1, 5, 5));
  EXPECT_EQ(second.frames[1].Pixel(5, 5), ShownBgrx(1, 13, 9));
  // A flush still shows the resource on both.
  ASSERT_EQ(Flush(1, {0, 0, 32, 16}), kRespOkNodata);
  EXPECT_EQ(second.calls, "SUSUUU");
  EXPECT_EQ(second.bad_updates, 0);
}

TEST_F(GpuDevice3dTest, ScanoutAndFlushChecks) {
  GpuOptions options;
  options.outputs = 2;
  Make(options);
  ASSERT_EQ(Create3d(1, 32, 16), kRespOkNodata);
  ASSERT_EQ(Create3d(2, 32, 16, 0x1234), kRespOkNodata);  // a format not for display
  EXPECT_EQ(Scanout(2, 1, {0, 0, 32, 16}), kRespErrInvalidScanoutId);
  EXPECT_EQ(Scanout(0, 1, {0, 0, 33, 16}), kRespErrInvalidParameter);
  EXPECT_EQ(Scanout(0, 1, {0, 0, 0, 16}), kRespErrInvalidParameter);
  EXPECT_EQ(Scanout(0, 1, {1, 0, UINT32_MAX, 16}), kRespErrInvalidParameter);
  EXPECT_EQ(Scanout(0, 2, {0, 0, 32, 16}), kRespErrInvalidParameter);
  EXPECT_TRUE(sink_.scanout_calls.empty());
  ASSERT_EQ(Scanout(0, 1, {0, 0, 32, 16}), kRespOkNodata);
  EXPECT_EQ(Flush(1, {0, 0, 32, 17}), kRespErrInvalidParameter);
  EXPECT_EQ(Flush(1, {UINT32_MAX, 0, 2, 1}), kRespErrInvalidParameter);
  EXPECT_EQ(Count("ReadPixels"), 0);
  // The renderer cannot read it back.
  renderer_.FailNext(absl::InternalError("lost"), "ReadPixels");
  EXPECT_EQ(Flush(1, {0, 0, 32, 16}), kRespErrUnspec);
  EXPECT_TRUE(sink_.update_calls.empty());
  // Scanout id 0 on a 3D device still turns the scanout off.
  EXPECT_EQ(Scanout(0, 0, {0, 0, 0, 0}), kRespOkNodata);
  EXPECT_EQ(sink_.scanout_calls.back().width, 0u);
}

TEST_F(GpuDevice3dTest, AScanoutIsAtMostATexturesSideEachWay) {
  Make();
  // A buffer's width is bytes, capped only by the memory cap: as a scanout it would be read
  // back into four times that.
  ResourceCreate3d buffer = Res3d(1, 1 << 20, 1);
  buffer.target = 0;  // PIPE_BUFFER
  ASSERT_EQ(Command(buffer), kRespOkNodata);
  EXPECT_EQ(Scanout(0, 1, {0, 0, 1 << 20, 1}), kRespErrInvalidParameter);
  EXPECT_EQ(Scanout(0, 1, {0, 0, 16385, 1}), kRespErrInvalidParameter);
  EXPECT_TRUE(sink_.scanout_calls.empty());
  EXPECT_EQ(Scanout(0, 1, {0, 0, 16384, 1}), kRespOkNodata);
}

TEST_F(GpuDevice3dTest, CursorOfA3dResourceIsReadBack) {
  Make();
  ASSERT_EQ(Create3d(5, kCursorSize, kCursorSize, kFormatB8G8R8A8), kRespOkNodata);
  ASSERT_EQ(Create3d(6, 32, 32, kFormatB8G8R8A8), kRespOkNodata);
  const UpdateCursor update{Hdr(kCmdUpdateCursor), {0, 10, 20, 0}, 5, 3, 4, 0};
  ASSERT_EQ(Command(update, kCursorQueue), kRespOkNodata);
  ASSERT_EQ(sink_.cursor_calls.size(), 1u);
  const FakeSink::CursorCall& call = sink_.cursor_calls[0];
  EXPECT_EQ(call.kind, FakeSink::CursorCall::kUpdate);
  EXPECT_EQ(call.x, 10u);
  EXPECT_EQ(call.hot_y, 4u);
  ASSERT_EQ(call.argb.size(), size_t{kCursorSize} * kCursorSize);
  for (uint32_t y = 0; y < kCursorSize; ++y) {
    for (uint32_t x = 0; x < kCursorSize; ++x) {
      uint32_t argb = 0;
      for (int i = 3; i >= 0; --i) argb = argb << 8 | FakeRenderer::PatternByte(5, x, y, i);
      ASSERT_EQ(call.argb[y * kCursorSize + x], argb) << x << "," << y;
    }
  }
  // Not 64x64; the renderer cannot read it.
  UpdateCursor small = update;
  small.resource_id = 6;
  EXPECT_EQ(Command(small, kCursorQueue), kRespErrInvalidParameter);
  renderer_.FailNext(absl::InternalError("lost"), "ReadPixels");
  EXPECT_EQ(Command(update, kCursorQueue), kRespErrUnspec);
  EXPECT_EQ(sink_.cursor_calls.size(), 1u);
}

// ---- reset

TEST_F(GpuDevice3dTest, ResetClearsContextsAndResources) {
  Make();
  ASSERT_EQ(CreateCtx(1), kRespOkNodata);
  ASSERT_EQ(CreateCtx(2), kRespOkNodata);
  ASSERT_EQ(Create3d(1, 32, 16), kRespOkNodata);
  ASSERT_EQ(Attach(1, {Backing(4096)}), kRespOkNodata);
  ASSERT_EQ(Create2d(2), kRespOkNodata);
  ASSERT_EQ(Scanout(0, 1, {0, 0, 32, 16}), kRespOkNodata);
  EXPECT_EQ(device_->context_count(), 2u);
  EXPECT_EQ(device_->resource_count(), 2u);
  EXPECT_GT(device_->host_bytes(), 0u);

  for (auto& q : queues_) q->Stop(*device_);  // the engine stops the queues first
  device_->Reset();
  EXPECT_EQ(renderer_.resets, 1);
  EXPECT_EQ(device_->context_count(), 0u);
  EXPECT_EQ(device_->resource_count(), 0u);
  EXPECT_EQ(device_->host_bytes(), 0u);
  EXPECT_EQ(sink_.scanout_calls.back().width, 0u);

  // Everything is free again (the fake's Reset forgot them too: no promise broken).
  ASSERT_OK(device_->SetFeatures(Bit(kFeatureVersion1) | Bit(kFeatureVirgl)));
  for (auto& q : queues_) ASSERT_OK(q->Start(*device_));
  EXPECT_EQ(CreateCtx(1), kRespOkNodata);
  EXPECT_EQ(Create3d(1, 8, 8), kRespOkNodata);
  EXPECT_EQ(Create3d(2, 8, 8), kRespOkNodata);
  EXPECT_EQ(Flush(1, {0, 0, 8, 8}), kRespOkNodata);
  EXPECT_EQ(Count("ReadPixels"), 0);  // no scanout shows it any more
}

}  // namespace
}  // namespace vhost::gpu
