// Fuzzes vhost-user-gpu's device with a renderer (VIRTIO_GPU_F_VIRGL, gpu_device_3d.cc) on a
// FakeRenderer3d, as a hostile guest drives it: CTX_CREATE/DESTROY with any id and name
// length, CTX_ATTACH/DETACH_RESOURCE, RESOURCE_CREATE_3D with any target, format, size, depth,
// layers, levels and samples, RESOURCE_CREATE_2D on the same ids, ATTACH/DETACH_BACKING and
// UNREF of either half's resources (entries inside, outside and across guest RAM, counts that
// do not match), SUBMIT_3D with any size against the bytes sent, TRANSFER_TO/FROM_HOST_3D in
// any context with any box, SET_SCANOUT, RESOURCE_FLUSH and TRANSFER_TO_HOST_2D of either half,
// GET_CAPSET_INFO/GET_CAPSET with any index, id, version and room, cursors of 3D resources;
// fence flags on everything, requests cut and split, response buffers of any size, batches.
// The host side: the renderer signals its fences (in order, sometimes only some), fails its
// next call, the display end comes and goes, the queues restart, the memory table is replaced
// (the old one unmapped unless the device still holds it for a 3D backing), the device resets.
//
// A shadow follows the answers in the order the device served the chains (contexts, each
// half's resources, backings). Aborts on: a used length above the room, a used id never
// queued, no header where one fits, a response neither OK_* nor ERR_*, a fence not echoed, a
// success the request could not have earned (a context 0, in use or over the cap; a resource
// id 0, in use in either half, or over the count cap; a submit of a context that does not
// exist, not whole words, over 4 MiB or beyond the request; a transfer of an unknown context
// or a 2D resource; a backing already there; a cut request; an unknown command), a chain held
// without a successful fenced answer written, more chains held than fences unsignalled, a
// chain still held once the last fence is signalled or its queue stopped, counts off the shadow
// (device and renderer), anything left after Reset(), and any call the renderer got that names
// what the device should have refused (FakeRenderer3d::violations).
//
// GPU_FUZZ_TRACE=1 prints each command as the shadow applies it; GPU_FUZZ_SAVE=FILE writes
// each input to FILE before running it (with the CI harness, the crashing one stays there).
// The harness both gpu fuzz targets share (chains, request pieces, answer and sink checks) is
// gpu_fuzz_harness.h.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/test_queue.h"
#include "common/virtio/features.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/gpu_fuzz_harness.h"
#include "vhost-user-gpu/fake_display_sink.h"
#include "vhost-user-gpu/fake_renderer_3d.h"
#include "vhost-user-gpu/gpu_device.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu::fuzz {
namespace {

using gpu::testing::FakeDisplaySink;
using gpu::testing::FakeRenderer3d;
using vhost::testing::UsedElement;

#define Check(ok) GPU_FUZZ_CHECK(ok)

constexpr uint64_t kRamSize = 6 << 20;
constexpr uint64_t kDataSize = 2 << 20;  // where backings point (the rest: rings and slots)
constexpr uint32_t kSlots = 8;           // chains in flight per queue (held ones included)
constexpr uint32_t kRequestSlot = 2048;  // SUBMIT_3D with 1 KiB, ATTACH with 64 entries
constexpr uint32_t kReplySlot = 2048;    // GET_CAPSET's 24 + 1024
constexpr uint32_t kMaxSubmitBytes = 4u << 20;
constexpr int kMaxRestarts = 24;

constexpr uint32_t kOtherCommands[] = {
    kCmdGetDisplayInfo,  kCmdResourceAssignUuid, kCmdResourceCreateBlob, kCmdSetScanoutBlob,
    kCmdResourceMapBlob, kCmdResourceUnmapBlob,  kCmdUpdateCursor,       kRespOkNodata};

uint32_t ResponseRoom(uint32_t type) {
  if (type == kCmdGetDisplayInfo) return sizeof(RespDisplayInfo);
  if (type == kCmdGetCapsetInfo) return sizeof(RespCapsetInfo);
  if (type == kCmdGetCapset) return sizeof(CtrlHdr) + 1024;
  return sizeof(CtrlHdr);
}

struct Shadow {
  bool three_d = false;
  uint32_t width = 0, height = 0;
  bool attached = false;
};

// A chain the driver queued and what its answer is checked against.
struct Pending : Request {
  bool applied = false;  // served and checked; held for its fence
  uint32_t slot = 0;
  uint32_t size = 0;    // SUBMIT_3D's, CTX_CREATE's nlen
  bool buffer = false;  // CREATE_3D of a buffer
  uint32_t index = 0;   // GET_CAPSET_INFO's index, GET_CAPSET's id
  uint32_t version = 0;
};

struct HeldLane : Lane<Pending> {
  std::deque<uint16_t> unserved;  // ids queued since the last run, in order
  bool busy[kSlots] = {};
};

struct Harness {
  std::unique_ptr<FakeGuestMemory> ram;
  FakeRenderer3d renderer;
  struct TracingSink : FakeDisplaySink {
    absl::Status Scanout(uint32_t id, uint32_t w, uint32_t h) override {
      if (Trace()) std::fprintf(stderr, "  sink: scanout %u is %ux%u\n", id, w, h);
      return FakeDisplaySink::Scanout(id, w, h);
    }
    absl::Status Update(uint32_t id, const Rect& r, absl::Span<const uint8_t> pixels,
                        uint32_t stride) override {
      if (Trace()) {
        std::fprintf(stderr, "  sink: update %u %ux%u+%u+%u\n", id, r.width, r.height, r.x, r.y);
      }
      return FakeDisplaySink::Update(id, r, pixels, stride);
    }
  } sink;
  std::unique_ptr<GpuDevice> device;  // after the fakes: gone before them
  uint32_t outputs = 1;
  uint32_t max_contexts = 0;
  ResourceTable::Limits limits;
  HeldLane lanes[2];
  uint64_t requests = 0, replies = 0, data = 0;
  std::set<uint32_t> contexts;
  std::map<uint32_t, Shadow> shadow;
  int restarts = 0;

  void Init(FuzzInput& in) {
    const uint8_t config = in.Take<uint8_t>();
    GpuOptions options;
    outputs = 1 + (config & 3);
    options.outputs = outputs;
    if (config & 4) {
      limits.max_resources = 64;
      limits.max_host_bytes = 16 << 20;
      limits.max_backing_entries = 64;
      limits.max_backing_bytes = 2 << 20;
    } else {
      limits.max_resources = 5;
      limits.max_host_bytes = 1 << 20;
      limits.max_backing_entries = 8;
      limits.max_backing_bytes = 256 << 10;
    }
    options.limits = limits;
    if (config & 8) renderer.UseEventFd();
    max_contexts = config & 0x10 ? 3 : 64;
    options.max_contexts = max_contexts;
    options.renderer = &renderer;
    absl::StatusOr<std::unique_ptr<GpuDevice>> created =
        GpuDevice::Create(options, config & 0x20 ? nullptr : &sink);
    Check(created.ok());
    device = *std::move(created);
    Check(device->SetFeatures(Bit(kFeatureVersion1) | Bit(kFeatureVirgl)).ok());
    NewMemory();
    Start(0);
    Start(1);
  }

  // A fresh memory table (the old one, if any, goes: its mappings stay only while the device
  // holds them for a 3D backing).
  void NewMemory() {
    ram = std::make_unique<FakeGuestMemory>(kRamSize);
    requests = ram->Allocate(2 * kSlots * kRequestSlot, 4096);
    replies = ram->Allocate(2 * kSlots * kReplySlot, 4096);
    data = ram->Allocate(kDataSize, 4096);
  }

  void Start(int i) { lanes[i].queue = StartQueue(ram.get(), i, *device); }

  // The renderer finishes everything: every held answer may go.
  void SignalAll() {
    if (!renderer.fences.empty()) Signal(renderer.fences.back());
  }
  void Signal(uint32_t fence) {
    if (static_cast<int32_t>(fence - renderer.signalled()) > 0) renderer.Signal(fence);
  }

  // Every chain is served, the renderer finishes, the stop answers what was held.
  void Stop(int i) {
    Run(i);
    SignalAll();
    HeldLane& lane = lanes[i];
    lane.queue->Stop(*device);
    for (const UsedElement& used : lane.queue->Used()) Completed(lane, used);
    Check(lane.in_flight == 0);
    lane.queue.reset();
  }

  void CheckCounts() {
    for (const std::string& v : renderer.violations) {
      std::fprintf(stderr, "the renderer got a call the device should have refused: %s\n",
                   v.c_str());
    }
    Check(renderer.violations.empty());
    size_t n3d = 0;
    for (const auto& [id, s] : shadow) {
      if (!s.three_d) continue;
      ++n3d;
      auto it = renderer.resources.find(id);
      Check(it != renderer.resources.end() && it->second.has_backing == s.attached &&
            it->second.create.width == s.width && it->second.create.height == s.height);
    }
    Check(renderer.resources.size() == n3d && n3d <= limits.max_resources);
    Check(shadow.size() - n3d <= limits.max_resources);
    Check(device->resource_count() == shadow.size());
    Check(device->host_bytes() <= 2 * limits.max_host_bytes);
    Check(device->context_count() == contexts.size() &&
          renderer.contexts.size() == contexts.size());
    Check(contexts.size() <= max_contexts);
    CheckSinkCalls(sink, outputs);
  }

  void Free(HeldLane& lane, Pending& p) {
    p.posted = false;
    lane.busy[p.slot] = false;
    --lane.in_flight;
  }

  // A chain the device answered (now, or after holding it).
  void Completed(HeldLane& lane, const UsedElement& used) {
    Check(used.id < kQueueSize && lane.pending[used.id].posted);
    Pending& p = lane.pending[used.id];
    Check(used.len <= p.room);
    if (p.applied) {  // held: its answer was checked when it was served
      Check(used.len >= sizeof(CtrlHdr));
      Free(lane, p);
      return;
    }
    Apply(&lane == &lanes[kCursorQueue], p, used.len);
    Free(lane, p);
  }

  // One worker turn; the chains it served are applied in the order the device took them.
  void Run(int i) {
    HeldLane& lane = lanes[i];
    lane.queue->Run(*device);
    std::map<uint16_t, uint32_t> done;
    for (const UsedElement& used : lane.queue->Used()) done[used.id] = used.len;
    for (uint16_t id : lane.unserved) {
      Pending& p = lane.pending[id];
      auto it = done.find(id);
      if (it != done.end()) {
        Completed(lane, UsedElement{id, it->second});
        done.erase(it);
        continue;
      }
      // Held: only the control queue, only a fenced success, answer already written.
      Check(i == kControlQueue && p.room >= sizeof(CtrlHdr) && p.readable >= sizeof(CtrlHdr) &&
            (p.hdr.flags & kFlagFence));
      CtrlHdr resp;
      Gather(*ram, p.writable, &resp, sizeof(resp));
      Check(IsOk(resp.type));
      Apply(false, p, UINT32_MAX);
      p.applied = true;
    }
    lane.unserved.clear();
    for (const auto& [id, len] : done) Completed(lane, UsedElement{id, len});  // held before
    // No more held than fences the renderer has not signalled.
    uint32_t unsignalled = 0;
    for (uint32_t f : renderer.fences) {
      unsignalled += static_cast<int32_t>(f - renderer.signalled()) > 0;
    }
    Check(lane.in_flight <= unsignalled);
    CheckCounts();
  }

  // Checks an answer against the shadow and applies it (len UINT32_MAX: held, len unknown).
  void Apply(bool cursor, const Pending& p, uint32_t len) {
    CtrlHdr resp;
    if (!ReadResponse(*ram, p, len, &resp)) return;
    const uint32_t type = p.hdr.type;
    if (Trace()) {
      std::fprintf(
          stderr, "%s %s ctx %u res %u scanout %u %llu/%llu bytes -> %s\n",
          cursor ? "cursor" : "control", std::string(CtrlTypeName(type)).c_str(), p.hdr.ctx_id,
          p.resource_id, p.scanout_id, static_cast<unsigned long long>(p.readable),
          static_cast<unsigned long long>(p.full), std::string(CtrlTypeName(resp.type)).c_str());
    }
    if (!CheckResponse(p, resp)) return;
    if (!IsOk(resp.type)) return;
    Check(p.readable >= p.full);
    auto found = shadow.find(p.resource_id);
    const bool is3d = found != shadow.end() && found->second.three_d;
    if (cursor) {
      CheckCursorSuccess(p, outputs, shadow);
      return;
    }
    switch (type) {
      case kCmdGetDisplayInfo:
        Check(resp.type == kRespOkDisplayInfo);
        break;
      case kCmdGetCapsetInfo: {
        Check(resp.type == kRespOkCapsetInfo && p.index < renderer.capsets.size());
        if (len != UINT32_MAX) Check(len == sizeof(RespCapsetInfo));
        RespCapsetInfo info;
        Gather(*ram, p.writable, &info, sizeof(info));
        Check(info.capset_id == renderer.capsets[p.index].id &&
              info.capset_max_size == renderer.capsets[p.index].max_size);
        break;
      }
      case kCmdGetCapset: {
        Check(resp.type == kRespOkCapset);
        const FakeRenderer3d::Capset* capset = nullptr;
        for (const auto& c : renderer.capsets) {
          if (c.id == p.index) capset = &c;
        }
        Check(capset != nullptr && p.version <= capset->max_version &&
              p.room >= sizeof(CtrlHdr) + capset->max_size);
        if (len != UINT32_MAX) Check(len == sizeof(CtrlHdr) + capset->max_size);
        break;
      }
      case kCmdCtxCreate:
        Check(resp.type == kRespOkNodata && p.hdr.ctx_id != 0 &&
              contexts.count(p.hdr.ctx_id) == 0 && contexts.size() < max_contexts && p.size <= 64);
        contexts.insert(p.hdr.ctx_id);
        break;
      case kCmdCtxDestroy:
        Check(contexts.erase(p.hdr.ctx_id) == 1);
        break;
      case kCmdCtxAttachResource:
      case kCmdCtxDetachResource:
        Check(contexts.count(p.hdr.ctx_id) == 1 && is3d);
        break;
      case kCmdResourceCreate3d:
      case kCmdResourceCreate2d: {
        Check(p.resource_id != 0 && found == shadow.end() && p.width != 0 && p.height != 0);
        const bool three_d = type == kCmdResourceCreate3d;
        size_t same = 0;
        for (const auto& [id, s] : shadow) same += s.three_d == three_d;
        Check(same < limits.max_resources);
        if (three_d && !p.buffer) Check(p.width <= 16384 && p.height <= 16384);
        shadow[p.resource_id] = Shadow{three_d, p.width, p.height, false};
        break;
      }
      case kCmdResourceAttachBacking:
      case kCmdResourceDetachBacking:
        BackingChanged(type, found == shadow.end() ? nullptr : &found->second.attached,
                       p.nr_entries, limits.max_backing_entries);
        break;
      case kCmdResourceUnref:
        Check(found != shadow.end());
        shadow.erase(found);
        break;
      case kCmdSubmit3d:
        Check(contexts.count(p.hdr.ctx_id) == 1 && p.size % 4 == 0 && p.size <= kMaxSubmitBytes &&
              p.readable >= sizeof(CmdSubmit) + uint64_t{p.size});
        break;
      case kCmdTransferToHost3d:
      case kCmdTransferFromHost3d:
        Check(is3d && (p.hdr.ctx_id == 0 || contexts.count(p.hdr.ctx_id) == 1));
        if (type == kCmdTransferFromHost3d) Check(found->second.attached);
        break;
      case kCmdTransferToHost2d:
        Check(found != shadow.end() && !is3d && found->second.attached);
        break;
      case kCmdSetScanout:
        Check(p.scanout_id < outputs && (p.resource_id == 0 || found != shadow.end()));
        break;
      case kCmdResourceFlush:
        Check(found != shadow.end());
        break;
      default:
        Check(false);  // unknown, blob and cursor commands never succeed on the control queue
    }
  }

  // ---- what the guest puts in a request

  // Any fence flags; the context is the one given.
  CtrlHdr Header(uint32_t type, uint32_t ctx_id, FuzzInput& in) {
    return fuzz::Header(type, ctx_id, false, in);
  }
  uint32_t ContextId(FuzzInput& in) {
    const uint8_t b = in.Take<uint8_t>();
    if (b < 0xe0) return 1 + b % 4;
    if (b < 0xf0) return 0;
    return in.Take<uint32_t>();
  }
  uint32_t ScanoutId(FuzzInput& in) { return fuzz::ScanoutId(outputs, in); }
  void Dimensions(uint32_t id, uint32_t* w, uint32_t* h) { fuzz::Dimensions(shadow, id, w, h); }
  GpuRect Rect(uint32_t w, uint32_t h, FuzzInput& in) {
    const uint8_t b = in.Take<uint8_t>();
    if (b < 0x80) return GpuRect{0, 0, w, h};
    if (b < 0xe0 && w > 0 && h > 0) return PartOf(w, h, in);
    return AnyRect(in);
  }
  uint64_t Address(uint8_t mode, uint32_t length, FuzzInput& in) {
    switch (mode % 8) {
      case 5:
        return kRamSize - in.Take<uint16_t>() % 4096;  // running past the end of RAM
      case 6:
        return in.Take<uint64_t>();
      default:
        return DataAddress(data, kDataSize, length, in);
    }
  }

  // ---- chains

  void Submit(int i, const std::vector<uint8_t>& request, Pending p, FuzzInput& in) {
    HeldLane& lane = lanes[i];
    if (lane.in_flight == kSlots) {
      Run(i);
      if (lane.in_flight == kSlots) {  // all held: the renderer catches up
        SignalAll();
        Run(i);
        Check(lane.in_flight == 0);
      }
    }
    uint32_t slot = 0;
    while (lane.busy[slot]) ++slot;
    const uint32_t at = i * kSlots + slot;
    const Slot where{requests + uint64_t{at} * kRequestSlot, kRequestSlot,
                     replies + uint64_t{at} * kReplySlot, kReplySlot};
    p.applied = false;
    p.slot = slot;
    const int id = Queue(lane, *ram, where, request, ResponseRoom(p.hdr.type), std::move(p), in);
    if (id < 0) return;
    lane.busy[slot] = true;
    lane.unserved.push_back(static_cast<uint16_t>(id));
  }

  void ControlCommand(FuzzInput& in) {
    const uint8_t pick = in.Take<uint8_t>();
    std::vector<uint8_t> request;
    Pending p;
    uint32_t w, h;
    switch (pick % 20) {
      case 0:
      case 1: {
        CtxCreate c{};
        c.hdr = Header(kCmdCtxCreate, ContextId(in), in);
        const uint8_t n = in.Take<uint8_t>();
        c.nlen = n < 0xf0 ? n % 65 : in.Take<uint32_t>();
        in.TakeBytes(c.debug_name, in.Take<uint8_t>() % 16);
        Append(&request, c);
        p.hdr = c.hdr;
        p.size = c.nlen;
        break;
      }
      case 2:
        Put(&request, &p, Header(kCmdCtxDestroy, ContextId(in), in));
        break;
      case 3: {
        const uint32_t ctx = ContextId(in);
        CtxResource c{};
        c.hdr = Header(pick & 0x80 ? kCmdCtxDetachResource : kCmdCtxAttachResource, ctx, in);
        c.resource_id = ResourceId(in);
        Append(&request, c);
        p.hdr = c.hdr;
        p.resource_id = c.resource_id;
        break;
      }
      case 4:
      case 5: {
        ResourceCreate3d c{};
        c.hdr = Header(kCmdResourceCreate3d, 0, in);
        c.resource_id = ResourceId(in);
        const uint8_t t = in.Take<uint8_t>();
        c.target = t < 0xc0 ? 2 : t < 0xf0 ? t % 10 : in.Take<uint32_t>();
        const uint8_t f = in.Take<uint8_t>();
        c.format = f < 0xf0 ? kFormats[f % 8] : in.Take<uint32_t>();
        c.bind = in.Take<uint8_t>();
        const uint8_t s = in.Take<uint8_t>();
        switch (s % 8) {
          case 4:
          case 5:
            c.width = c.height = kCursorSize;
            break;
          case 6:
            c.width = in.Take<uint32_t>();
            c.height = in.Take<uint32_t>();
            break;
          case 7:
            c.width = 128 * (1 + in.Take<uint8_t>() % 16);
            c.height = 128 * (1 + in.Take<uint8_t>() % 16);
            break;
          default:
            c.width = 1 + in.Take<uint8_t>() % 128;
            c.height = 1 + in.Take<uint8_t>() % 128;
        }
        if (c.target == 0 && !(s & 0x80)) c.height = 1;  // a buffer, mostly one row
        const uint8_t e = in.Take<uint8_t>();
        c.depth = e < 0xe0 ? 1 : in.Take<uint8_t>();
        c.array_size = e < 0xe0 ? 1 : in.Take<uint8_t>();
        c.last_level = e & 0x10 ? in.Take<uint8_t>() % 40 : 0;
        c.nr_samples = e & 0x20 ? in.Take<uint8_t>() % 40 : 0;
        c.flags = e & 0x40 ? in.Take<uint32_t>() : 0;
        Append(&request, c);
        p.hdr = c.hdr;
        p.resource_id = c.resource_id;
        p.width = c.width;
        p.height = c.height;
        p.buffer = c.target == 0;
        break;
      }
      case 6: {
        ResourceCreate2d c{};
        c.hdr = Header(kCmdResourceCreate2d, 0, in);
        c.resource_id = ResourceId(in);
        c.format = kFormats[in.Take<uint8_t>() % 8];
        const uint8_t s = in.Take<uint8_t>();
        c.width = s & 1 ? kCursorSize : 1 + s % 64;
        c.height = s & 1 ? kCursorSize : 1 + in.Take<uint8_t>() % 64;
        Put(&request, &p, c);
        break;
      }
      case 7:
      case 8: {
        ResourceAttachBacking a{};
        a.hdr = Header(kCmdResourceAttachBacking, 0, in);
        a.resource_id = ResourceId(in);
        auto it = shadow.find(a.resource_id);
        const uint64_t bytes =
            it == shadow.end() ? 16384 : uint64_t{it->second.width} * it->second.height * 4;
        const uint8_t nb = in.Take<uint8_t>();
        const uint32_t n = nb < 0xe0 ? 1 + nb % 4 : 1 + (nb - 0xe0) * 2;  // up to 63
        const uint8_t nf = in.Take<uint8_t>();
        const uint32_t wrong[] = {n + 1, 0xffffffff, 0, n - 1};
        a.nr_entries = nf < 0xe0 ? n : wrong[nf % 4];
        Put(&request, &p, a);
        const uint64_t per = bytes / n;
        for (uint32_t k = 0; k < n; ++k) {
          MemEntry e{};
          const uint8_t mode = in.Take<uint8_t>();
          const uint64_t piece = k + 1 == n ? bytes - per * (n - 1) : per;
          e.length = static_cast<uint32_t>(piece < kDataSize ? piece : kDataSize);
          if (mode & 0x80) e.length = mode & 0x40 ? in.Take<uint32_t>() : in.Take<uint16_t>();
          e.addr = Address(mode, e.length, in);
          Append(&request, e);
        }
        break;
      }
      case 9:
      case 10: {
        ResourceUnref u{};
        u.hdr = Header(pick % 20 == 9 ? kCmdResourceDetachBacking : kCmdResourceUnref, 0, in);
        u.resource_id = ResourceId(in);
        Put(&request, &p, u);
        break;
      }
      case 11:
      case 12: {
        CmdSubmit s{};
        s.hdr = Header(kCmdSubmit3d, ContextId(in), in);
        const uint32_t words = in.Take<uint8_t>();  // up to 255 words
        const uint8_t z = in.Take<uint8_t>();
        s.size = z < 0xc0 ? words * 4 : z < 0xe0 ? words * 4 + 1 + z % 3 : in.Take<uint32_t>();
        s.num_in_fences = in.Take<uint8_t>() < 0xf0 ? 0 : in.Take<uint32_t>();
        Append(&request, s);
        const size_t at = request.size();
        request.resize(at + words * 4);
        const size_t given = in.Take<uint8_t>();
        in.TakeBytes(request.data() + at, given < words * 4 ? given : words * 4);  // rest zero
        p.hdr = s.hdr;
        p.size = s.size;
        p.full = sizeof(s);
        break;
      }
      case 13:
      case 14: {
        Transfer3d t{};
        t.hdr = Header(pick & 0x80 ? kCmdTransferFromHost3d : kCmdTransferToHost3d,
                       in.Take<uint8_t>() < 0x40 ? 0 : ContextId(in), in);
        t.resource_id = ResourceId(in);
        Dimensions(t.resource_id, &w, &h);
        const uint8_t b = in.Take<uint8_t>();
        if (b < 0xc0) {
          t.box = GpuBox{0, 0, 0, w, h, 1};
        } else {
          t.box = GpuBox{in.Take<uint32_t>(), in.Take<uint32_t>(), in.Take<uint32_t>(),
                         in.Take<uint32_t>(), in.Take<uint32_t>(), in.Take<uint32_t>()};
        }
        t.offset = b & 1 ? in.Take<uint64_t>() : 0;
        t.level = b & 2 ? in.Take<uint32_t>() : 0;
        t.stride = b & 4 ? in.Take<uint32_t>() : w * 4;
        Append(&request, t);
        p.hdr = t.hdr;
        p.resource_id = t.resource_id;
        break;
      }
      case 15: {
        SetScanout s{};
        s.hdr = Header(kCmdSetScanout, 0, in);
        s.scanout_id = ScanoutId(in);
        s.resource_id = ResourceId(in);
        Dimensions(s.resource_id, &w, &h);
        s.r = Rect(w, h, in);
        Put(&request, &p, s);
        break;
      }
      case 16: {
        ResourceFlush f{};
        f.hdr = Header(kCmdResourceFlush, 0, in);
        f.resource_id = ResourceId(in);
        Dimensions(f.resource_id, &w, &h);
        f.r = Rect(w, h, in);
        Put(&request, &p, f);
        break;
      }
      case 17: {
        TransferToHost2d t{};
        t.hdr = Header(kCmdTransferToHost2d, 0, in);
        t.resource_id = ResourceId(in);
        Dimensions(t.resource_id, &w, &h);
        t.r = Rect(w, h, in);
        t.offset = in.Take<uint8_t>() < 0xe0 ? 0 : in.Take<uint64_t>();
        Put(&request, &p, t);
        break;
      }
      case 18: {
        const uint8_t b = in.Take<uint8_t>();
        const uint32_t value = b < 0xf0 ? b % 4 : in.Take<uint32_t>();
        if (pick & 0x80) {
          GetCapsetInfo g{Header(kCmdGetCapsetInfo, 0, in), value, 0};
          Append(&request, g);
          p.hdr = g.hdr;
          p.index = value;
        } else {
          const uint8_t v = in.Take<uint8_t>();
          GetCapset g{Header(kCmdGetCapset, 0, in), value, v < 0xf0 ? v % 4u : in.Take<uint32_t>()};
          Append(&request, g);
          p.hdr = g.hdr;
          p.index = g.capset_id;
          p.version = g.capset_version;
        }
        break;
      }
      default: {
        const uint8_t o = in.Take<uint8_t>();
        constexpr size_t kOthers = sizeof(kOtherCommands) / sizeof(kOtherCommands[0]);
        // Any type but the ones above (whose fields the shadow would not know).
        const uint32_t type =
            o < 0xf0 ? kOtherCommands[o % kOthers] : 0x10000u | in.Take<uint16_t>();
        Put(&request, &p, Header(type, ContextId(in), in));
        p.full = sizeof(CtrlHdr);  // all GET_DISPLAY_INFO reads; the others never succeed
        AppendBody(&request, in);
        break;
      }
    }
    if (p.full == 0) p.full = request.size();
    Submit(kControlQueue, request, std::move(p), in);
  }

  void CursorCommand(FuzzInput& in) {
    const uint8_t pick = in.Take<uint8_t>();
    const uint32_t type = pick & 1 ? kCmdMoveCursor : kCmdUpdateCursor;
    UpdateCursor u{};
    u.hdr = Header(type, 0, in);
    u.pos.scanout_id = ScanoutId(in);
    u.pos.x = in.Take<uint16_t>();
    u.pos.y = in.Take<uint16_t>();
    if (type == kCmdUpdateCursor) {
      u.resource_id = pick & 2 ? 0 : ResourceId(in);
      u.hot_x = in.Take<uint8_t>();
      u.hot_y = in.Take<uint8_t>();
    }
    std::vector<uint8_t> request;
    Pending p;
    Put(&request, &p, u);
    Submit(kCursorQueue, request, std::move(p), in);
  }

  // ---- the host side

  // The renderer signals: up to some fence it created (in order: a fence never goes back).
  void SignalOp(FuzzInput& in) {
    const uint8_t b = in.Take<uint8_t>();
    if (renderer.fences.empty()) return;
    if (b < 0x80) {
      Run(kControlQueue);  // everything queued is served (and fenced) first
      SignalAll();
      Run(kControlQueue);
      Check(lanes[kControlQueue].in_flight == 0);  // nothing is held past its fence
      return;
    }
    Signal(renderer.fences[b % renderer.fences.size()]);
  }

  void FailOp(FuzzInput& in) {
    const uint8_t b = in.Take<uint8_t>();
    const absl::Status statuses[] = {absl::InvalidArgumentError("refused"),
                                     absl::InternalError("lost"), absl::NotFoundError("gone"),
                                     absl::ResourceExhaustedError("full")};
    const char* calls[] = {"",       "CreateContext",  "CreateResource", "AttachBacking",
                           "Submit", "TransferToHost", "ReadPixels",     "CreateFence"};
    renderer.FailNext(statuses[b % 4], calls[(b >> 2) % 8]);
  }

  void ConfigCheck() {
    GpuConfig config;
    Check(device->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), sizeof(config)))
              .ok());
    Check(config.num_capsets == renderer.capsets.size() && config.num_scanouts == outputs);
    Check(device->Info().features & Bit(kFeatureVirgl));
  }

  void Lifecycle(uint8_t op) {
    if (restarts >= kMaxRestarts) return;
    ++restarts;
    Stop(0);
    Stop(1);
    switch ((op >> 4) % 4) {
      case 1:  // a new memory table: the old one goes
        NewMemory();
        break;
      case 2:
        Reset();
        break;
      default:  // the queues restart
        break;
    }
    Start(0);
    Start(1);
  }

  void Reset() {
    const int resets = renderer.resets;
    device->Reset();
    Check(renderer.resets == resets + 1);
    Check(device->resource_count() == 0 && device->host_bytes() == 0 &&
          device->context_count() == 0);
    Check(renderer.resources.empty() && renderer.contexts.empty());
    shadow.clear();
    contexts.clear();
    Check(device->SetFeatures(Bit(kFeatureVersion1) | Bit(kFeatureVirgl)).ok());
  }

  void Step(FuzzInput& in) {
    const uint8_t op = in.Take<uint8_t>();
    switch (op % 16) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5:
      case 6:
      case 7:
        ControlCommand(in);
        if (!(op & 0x80)) Run(kControlQueue);
        break;
      case 8:
        CursorCommand(in);
        if (!(op & 0x80)) Run(kCursorQueue);
        break;
      case 9:
        Run(kControlQueue);
        break;
      case 10:
        SignalOp(in);
        break;
      case 11:
        FailOp(in);
        break;
      case 12:
        device->SetSink(op & 0x80 ? nullptr : &sink);
        break;
      case 13:
        Draw(*ram, data, kDataSize, in);
        break;
      case 14:
        ConfigCheck();
        break;
      default:
        Lifecycle(op);
    }
  }

  void Finish() {
    Stop(0);
    Stop(1);
    CheckCounts();
    Reset();
  }
};

}  // namespace
}  // namespace vhost::gpu::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return vhost::gpu::fuzz::RunInput<vhost::gpu::fuzz::Harness>(data, size);
}
