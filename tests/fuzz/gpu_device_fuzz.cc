// Fuzzes vhost-user-gpu's device (virtio-gpu 2D) with what a hostile guest controls: the input
// becomes a stream of control-queue commands of every type (RESOURCE_CREATE_2D with any id,
// format and size, ATTACH_BACKING with entries inside, across and outside guest RAM and counts
// that do not match, DETACH, UNREF, SET_SCANOUT, TRANSFER_TO_HOST_2D, RESOURCE_FLUSH with any
// rect and offset, GET_DISPLAY_INFO, GET_EDID, 3D and unknown commands), cursor-queue commands,
// any fence flags, requests cut anywhere and split over up to four descriptors, response buffers
// of any size (none, too small, split), chains queued in batches, config space reads and writes,
// display changes, device resets, queue stops and starts (also onto a memory table without a
// region that backings point into), and the display sink swapped between two fakes and none
// (with fuzzed display information and EDIDs, and failing calls).
//
// Choices are biased towards valid sequences (resource ids 1..8, backings that cover the
// resource inside guest RAM, rects inside the resource, the natural transfer offset) so deep
// paths are reached. A shadow of the resource table (ids, sizes, backing attached) follows the
// device's answers. Aborts on: a used length above the writable room, a used id never queued or
// a chain left unanswered by a queue run, no response header where one fits, a response type
// that is neither OK_* nor ERR_*, a fence not echoed, a success the request could not have
// earned (an unknown or 3D command, a missing resource, a rect outside it, a cut request, GET_EDID
// without F_EDID, a cap exceeded), resource_count()/host_bytes() differing from the shadow or
// above the configured limits, anything left after Reset(), and a sink call beyond the
// scanouts or on a sink that is no longer the device's.
//
// GPU_FUZZ_TRACE=1 prints every answered command (for checking what a seed reaches);
// GPU_FUZZ_SAVE=FILE writes each input to FILE before running it. The harness both gpu fuzz
// targets share (chains, request pieces, answer and sink checks) is gpu_fuzz_harness.h.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
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
#include "vhost-user-gpu/gpu_device.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu::fuzz {
namespace {

using gpu::testing::FakeDisplaySink;
using vhost::testing::UsedElement;

#define Check(ok) GPU_FUZZ_CHECK(ok)

// Guest RAM: region A (rings, request and reply slots, the data area backings mostly point
// into), region B right after it (a range running from A into B is valid but spans two
// mappings) and region C after a hole (ranges into the hole or past C's end are not RAM). The
// front end may switch to a second memory table without region C (Harness::SwapMemory): a
// backing attached there is then no longer in guest memory when a transfer reads it.
constexpr uint64_t kRegionA = 4 << 20;
constexpr uint64_t kRegionB = 4 << 20;  // gpa
constexpr uint64_t kRegionBSize = 1 << 20;
constexpr uint64_t kRegionC = 9 << 20;  // gpa
constexpr uint64_t kRegionCSize = 1 << 20;
constexpr uint64_t kDataSize = 3 << 20;  // larger backings run on into region B

// Chains in flight per queue before the harness runs it: at most 6 descriptors each, so they
// always fit the ring. Chain k of a batch uses request slot k and reply slot k.
constexpr uint32_t kSlots = 8;
constexpr uint32_t kRequestSlot = 4096;  // the largest request: ATTACH_BACKING with 127 entries
constexpr uint32_t kReplySlot = 2048;    // RespEdid is 1056
// Each queue start allocates its rings in region A, which must not fill up.
constexpr int kMaxRestarts = 32;

// Commands the device has no 2D meaning for (plus cursor commands sent on the control queue
// and a response type sent as a command).
constexpr uint32_t kOtherCommands[] = {
    kCmdGetCapsetInfo,     kCmdGetCapset,        kCmdResourceAssignUuid, kCmdResourceCreateBlob,
    kCmdSetScanoutBlob,    kCmdCtxCreate,        kCmdCtxDestroy,         kCmdCtxAttachResource,
    kCmdCtxDetachResource, kCmdResourceCreate3d, kCmdTransferToHost3d,   kCmdTransferFromHost3d,
    kCmdSubmit3d,          kCmdResourceMapBlob,  kCmdResourceUnmapBlob,  kCmdUpdateCursor,
    kCmdMoveCursor,        kRespOkNodata};

std::vector<FakeGuestMemory::RegionSpec> Regions(bool with_c) {
  if (!with_c) return {{0, kRegionA}, {kRegionB, kRegionBSize}};
  return {{0, kRegionA}, {kRegionB, kRegionBSize}, {kRegionC, kRegionCSize}};
}

// Bytes the answer to a control command takes when it succeeds.
uint32_t ResponseRoom(uint32_t type) {
  if (type == kCmdGetDisplayInfo) return sizeof(RespDisplayInfo);
  if (type == kCmdGetEdid) return sizeof(RespEdid);
  return sizeof(CtrlHdr);
}

// What the shadow knows of a resource the device said it created.
struct Shadow {
  uint32_t width = 0, height = 0;
  uint64_t bytes = 0;
  bool attached = false;
};

// A chain the driver queued, with what its answer is checked against.
using Pending = Request;

struct Harness {
  // The memory tables the front end switches between; `ram` is the one the queues use. Both lay
  // out the request and reply slots and the data area at the same addresses.
  FakeGuestMemory full_ram{Regions(true)};
  std::unique_ptr<FakeGuestMemory> ram_without_c;  // made on the first switch
  FakeGuestMemory* ram = &full_ram;
  FakeDisplaySink sinks[2];
  int seen_display_info[2] = {0, 0};
  DisplaySink* sink = nullptr;        // the device's
  std::unique_ptr<GpuDevice> device;  // after the sinks: gone before them
  uint32_t outputs = 1;
  uint64_t features = 0;
  ResourceTable::Limits limits;
  int config_changes = 0;  // notices the device sent the front end
  bool notice_fails = false;
  Lane<Pending> lanes[2];
  uint64_t requests = 0, replies = 0, data = 0;  // gpas
  std::map<uint32_t, Shadow> shadow;
  uint64_t shadow_bytes = 0;
  int restarts = 0;

  bool Init(FuzzInput& in) {
    const uint8_t config = in.Take<uint8_t>();
    GpuOptions options;
    outputs = config & 0x40 ? kMaxScanouts : 1 + (config & 3);
    options.outputs = outputs;
    if (config & 0x20) {
      limits.max_resources = 64;
      limits.max_host_bytes = 4 << 20;
      limits.max_backing_entries = 256;
      limits.max_backing_bytes = 8 << 20;
    } else {
      limits.max_resources = 6;
      limits.max_host_bytes = 2 << 20;
      limits.max_backing_entries = 16;
      limits.max_backing_bytes = 1 << 20;  // below the largest resource's bytes
    }
    options.limits = limits;
    const int which = (config >> 2) & 3;
    sink = which == 2 ? nullptr : &sinks[which & 1];
    absl::StatusOr<std::unique_ptr<GpuDevice>> created = GpuDevice::Create(options, sink);
    Check(created.ok());
    device = *std::move(created);
    device->set_config_change_notifier([this] {
      ++config_changes;
      return notice_fails ? absl::UnavailableError("front end gone") : absl::OkStatus();
    });
    features = Bit(kFeatureVersion1) | (config & 0x10 ? 0 : Bit(kFeatureEdid));
    Check(device->SetFeatures(features).ok());
    AllocateSlots(full_ram);
    Start(0);
    Start(1);
    return true;
  }

  void AllocateSlots(FakeGuestMemory& memory) {
    requests = memory.Allocate(2 * kSlots * kRequestSlot, 4096);
    replies = memory.Allocate(2 * kSlots * kReplySlot, 4096);
    data = memory.Allocate(kDataSize, 4096);
  }

  // The front end changes the memory table (the queues restart on the new one); what the guest
  // wrote in region A and B stays only in the table it wrote it to.
  void SwapMemory() {
    if (ram == &full_ram) {
      if (!ram_without_c) {
        ram_without_c = std::make_unique<FakeGuestMemory>(Regions(false));
        const uint64_t at[] = {requests, replies, data};
        AllocateSlots(*ram_without_c);
        Check(requests == at[0] && replies == at[1] && data == at[2]);
      }
      ram = ram_without_c.get();
    } else {
      ram = &full_ram;
    }
  }

  void Start(int i) { lanes[i].queue = StartQueue(ram, i, *device); }
  // Chains still in flight are dropped with the ring (the guest's loss, not a device error).
  void Stop(int i) {
    Lane<Pending>& lane = lanes[i];
    lane.queue->Stop(*device);
    lane.queue.reset();
    for (Pending& p : lane.pending) p.posted = false;
    lane.in_flight = 0;
  }

  void CheckCounts() {
    const size_t count = device->resource_count();
    const uint64_t bytes = device->host_bytes();
    Check(count <= limits.max_resources && bytes <= limits.max_host_bytes);
    Check(count == shadow.size() && bytes == shadow_bytes);
  }

  // Only the device's sink is called, only for its scanouts, with whole cursors.
  void CheckSinks() {
    for (int i = 0; i < 2; ++i) {
      FakeDisplaySink& s = sinks[i];
      if (&s != sink) {
        Check(s.scanout_calls.empty() && s.update_calls.empty() && s.cursor_calls.empty() &&
              s.display_info_calls == seen_display_info[i]);
      }
      CheckSinkCalls(s, outputs);
      seen_display_info[i] = s.display_info_calls;
    }
  }

  // Runs a queue's worker turn: every chain in flight must come back, each within its room.
  void Run(int i) {
    Lane<Pending>& lane = lanes[i];
    lane.queue->Run(*device);
    for (const UsedElement& used : lane.queue->Used()) {
      Check(used.id < kQueueSize && lane.pending[used.id].posted);
      Pending& p = lane.pending[used.id];
      p.posted = false;
      --lane.in_flight;
      Answered(i == kCursorQueue, p, used.len);
    }
    Check(lane.in_flight == 0);
    CheckCounts();
  }

  void Answered(bool cursor, const Pending& p, uint32_t len) {
    Check(len <= p.room);
    CtrlHdr resp;
    if (!ReadResponse(*ram, p, len, &resp)) return;
    if (Trace()) {
      std::fprintf(stderr, "%s %s (0x%x) %llu/%llu bytes, res %u -> %s, %u bytes\n",
                   cursor ? "cursor" : "control", std::string(CtrlTypeName(p.hdr.type)).c_str(),
                   p.hdr.type, static_cast<unsigned long long>(p.readable),
                   static_cast<unsigned long long>(p.full), p.resource_id,
                   std::string(CtrlTypeName(resp.type)).c_str(), len);
    }
    if (!CheckResponse(p, resp)) return;
    const uint32_t type = p.hdr.type;
    const bool complete = p.readable >= p.full;
    auto found = shadow.find(p.resource_id);
    // Answers a well-formed request with room for its answer must get.
    if (!cursor && complete && p.room >= ResponseRoom(type)) {
      if (type == kCmdGetDisplayInfo) Check(resp.type == kRespOkDisplayInfo);
      if (type == kCmdResourceUnref && found != shadow.end()) Check(resp.type == kRespOkNodata);
      if (type == kCmdResourceCreate2d && (p.resource_id == 0 || found != shadow.end())) {
        Check(resp.type == kRespErrInvalidResourceId);
      }
    }
    if (!IsOk(resp.type)) return;  // an error changes nothing the shadow follows

    // A success: the request was whole and earned it.
    Check(complete);
    if (cursor) {
      Check(resp.type == kRespOkNodata && (type == kCmdUpdateCursor || type == kCmdMoveCursor));
      CheckCursorSuccess(p, outputs, shadow);
      return;
    }
    Check(resp.type == (type == kCmdGetDisplayInfo ? kRespOkDisplayInfo
                        : type == kCmdGetEdid      ? kRespOkEdid
                                                   : kRespOkNodata));
    switch (type) {
      case kCmdGetDisplayInfo: {
        Check(len == sizeof(RespDisplayInfo));
        RespDisplayInfo info;
        Gather(*ram, p.writable, &info, sizeof(info));
        for (uint32_t id = 0; id < kMaxScanouts; ++id) {
          const DisplayOne& mode = info.pmodes[id];
          if (id < outputs) {
            Check(mode.r.width != 0 && mode.r.height != 0 && mode.enabled <= 1);
          } else {
            Check(mode.r.width == 0 && mode.r.height == 0 && mode.enabled == 0);
          }
        }
        break;
      }
      case kCmdGetEdid: {
        Check((features & Bit(kFeatureEdid)) && p.scanout_id < outputs);
        Check(len == sizeof(RespEdid));
        RespEdid edid;
        Gather(*ram, p.writable, &edid, sizeof(edid));
        Check(edid.size >= 1 && edid.size <= kMaxEdidSize);
        break;
      }
      case kCmdResourceCreate2d: {
        Check(p.resource_id != 0 && found == shadow.end());
        const uint64_t bytes = uint64_t{p.width} * p.height * 4;
        Check(p.width != 0 && p.height != 0);
        Check(shadow.size() < limits.max_resources &&
              shadow_bytes + bytes <= limits.max_host_bytes);
        shadow[p.resource_id] = Shadow{p.width, p.height, bytes, false};
        shadow_bytes += bytes;
        break;
      }
      case kCmdResourceUnref:
        Check(found != shadow.end());
        shadow_bytes -= found->second.bytes;
        shadow.erase(found);
        break;
      case kCmdResourceAttachBacking:
      case kCmdResourceDetachBacking:
        BackingChanged(type, found == shadow.end() ? nullptr : &found->second.attached,
                       p.nr_entries, limits.max_backing_entries);
        break;
      case kCmdTransferToHost2d:
        Check(found != shadow.end() && found->second.attached &&
              RectInside(p.rect, found->second.width, found->second.height));
        break;
      case kCmdSetScanout:
        Check(p.scanout_id < outputs);
        if (p.resource_id != 0) {
          Check(found != shadow.end() && p.rect.width != 0 && p.rect.height != 0 &&
                RectInside(p.rect, found->second.width, found->second.height));
        }
        break;
      case kCmdResourceFlush:
        Check(found != shadow.end() &&
              RectInside(p.rect, found->second.width, found->second.height));
        break;
      default:
        Check(false);  // 3D, unknown and cursor commands never succeed on the control queue
    }
  }

  // ---- what the guest puts in a request

  // Any fence flags; a fenced header's context is fuzzed too.
  CtrlHdr Header(uint32_t type, FuzzInput& in) { return fuzz::Header(type, 0, true, in); }
  uint32_t ScanoutId(FuzzInput& in) { return fuzz::ScanoutId(outputs, in); }
  void Dimensions(uint32_t id, uint32_t* w, uint32_t* h) { fuzz::Dimensions(shadow, id, w, h); }

  // Mostly the whole resource or a part of it; sometimes empty, one pixel too far, or any.
  GpuRect Rect(uint32_t w, uint32_t h, FuzzInput& in) {
    const uint8_t b = in.Take<uint8_t>();
    if (b < 0x60) return GpuRect{0, 0, w, h};
    if (b < 0xe0) {
      GpuRect r = PartOf(w, h, in);
      if (b >= 0xd0) {  // the edge cases around it
        switch (b % 4) {
          case 0:
            r.width = 0;
            break;
          case 1:
            r.height = 0;
            break;
          case 2:
            r.width = w - r.x + 1;
            break;
          default:
            r.y = h - r.height + 1;
        }
      }
      return r;
    }
    return AnyRect(in);
  }

  // Where a backing entry of `length` bytes points: mostly into the data area, else across
  // regions A and B (valid), into the hole or past the end of RAM, or anywhere.
  uint64_t Address(uint8_t mode, uint32_t length, FuzzInput& in) {
    switch (mode % 8) {
      case 4:
        return kRegionB - in.Take<uint16_t>();
      case 5:
        return kRegionC + uint64_t{in.Take<uint16_t>()} * 16;
      case 6:
        return (mode & 8 ? kRegionB + kRegionBSize : kRegionC + kRegionCSize) -
               in.Take<uint16_t>() % 4096;
      case 7:
        return in.Take<uint64_t>();
      default:
        return DataAddress(data, kDataSize, length, in);
    }
  }

  // ---- chains

  // Queues `request` on queue `i` as the guest chooses: cut or whole, over one to four
  // descriptors, with a response buffer of the right size, none, too small or large, in one
  // or two descriptors.
  void Submit(int i, const std::vector<uint8_t>& request, Pending p, uint32_t needed,
              FuzzInput& in) {
    Lane<Pending>& lane = lanes[i];
    if (lane.in_flight == kSlots) Run(i);
    const uint32_t slot = i * kSlots + lane.in_flight;
    const Slot at{requests + uint64_t{slot} * kRequestSlot, kRequestSlot,
                  replies + uint64_t{slot} * kReplySlot, kReplySlot};
    Queue(lane, *ram, at, request, needed, std::move(p), in);
  }

  void ControlCommand(FuzzInput& in) {
    const uint8_t pick = in.Take<uint8_t>();
    std::vector<uint8_t> request;
    Pending p;
    uint32_t w, h;
    switch (pick % 16) {
      case 0:
      case 1:
      case 2: {
        ResourceCreate2d c{};
        c.hdr = Header(kCmdResourceCreate2d, in);
        c.resource_id = ResourceId(in);
        const uint8_t f = in.Take<uint8_t>();
        c.format = f < 0xf0 ? kFormats[f % 8] : in.Take<uint32_t>();
        const uint8_t s = in.Take<uint8_t>();
        switch (s % 8) {
          case 4:
          case 5:
            c.width = c.height = kCursorSize;
            break;
          case 6:  // large: up to 2048 x 2048, beyond the host bytes cap
            c.width = 256 * (1 + in.Take<uint8_t>() % 8);
            c.height = 256 * (1 + in.Take<uint8_t>() % 8);
            break;
          case 7:
            c.width = in.Take<uint32_t>();
            c.height = in.Take<uint32_t>();
            break;
          default:
            c.width = 1 + in.Take<uint8_t>() % 128;
            c.height = 1 + in.Take<uint8_t>() % 128;
        }
        Put(&request, &p, c);
        break;
      }
      case 3:
      case 4: {
        ResourceAttachBacking a{};
        a.hdr = Header(kCmdResourceAttachBacking, in);
        a.resource_id = ResourceId(in);
        auto it = shadow.find(a.resource_id);
        const uint64_t bytes =
            it == shadow.end() ? 4 * kCursorSize * kCursorSize : it->second.bytes;
        const uint8_t nb = in.Take<uint8_t>();
        const uint32_t n = nb < 0xe0 ? 1 + nb % 4 : (nb - 0xe0) * 4;  // up to 124
        const uint8_t nf = in.Take<uint8_t>();
        if (nf < 0xe0) {
          a.nr_entries = n;
        } else {
          const uint32_t wrong[] = {n + 1, 0xffffffff, limits.max_backing_entries + 1, n - 1};
          a.nr_entries = wrong[nf % 4];
        }
        Put(&request, &p, a);
        // The resource's bytes in n consecutive pieces, each where the guest puts it.
        const uint64_t per = n == 0 ? 0 : bytes / n;
        for (uint32_t k = 0; k < n; ++k) {
          MemEntry e{};
          const uint8_t mode = in.Take<uint8_t>();
          e.length = static_cast<uint32_t>(k + 1 == n ? bytes - per * (n - 1) : per);
          if (mode & 0x80) e.length = mode & 0x40 ? in.Take<uint32_t>() : in.Take<uint16_t>();
          e.addr = Address(mode, e.length, in);
          Append(&request, e);
        }
        break;
      }
      case 5:
      case 6: {
        TransferToHost2d t{};
        t.hdr = Header(kCmdTransferToHost2d, in);
        t.resource_id = ResourceId(in);
        Dimensions(t.resource_id, &w, &h);
        t.r = Rect(w, h, in);
        const uint64_t natural = uint64_t{t.r.y} * w * 4 + uint64_t{t.r.x} * 4;
        const uint8_t o = in.Take<uint8_t>();
        t.offset = o < 0xc0   ? natural
                   : o < 0xe0 ? natural + in.Take<uint16_t>()
                              : in.Take<uint64_t>();
        Put(&request, &p, t);
        break;
      }
      case 7:
      case 8: {
        SetScanout s{};
        s.hdr = Header(kCmdSetScanout, in);
        s.scanout_id = ScanoutId(in);
        s.resource_id = ResourceId(in);
        Dimensions(s.resource_id, &w, &h);
        s.r = Rect(w, h, in);
        Put(&request, &p, s);
        break;
      }
      case 9:
      case 10: {
        ResourceFlush f{};
        f.hdr = Header(kCmdResourceFlush, in);
        f.resource_id = ResourceId(in);
        Dimensions(f.resource_id, &w, &h);
        f.r = Rect(w, h, in);
        Put(&request, &p, f);
        break;
      }
      case 11:
      case 12: {
        ResourceUnref u{};
        u.hdr = Header(pick % 16 == 11 ? kCmdResourceDetachBacking : kCmdResourceUnref, in);
        u.resource_id = ResourceId(in);
        Put(&request, &p, u);
        break;
      }
      case 13:
        Put(&request, &p, Header(kCmdGetDisplayInfo, in));
        break;
      case 14: {
        GetEdid e{};
        e.hdr = Header(kCmdGetEdid, in);
        e.scanout = ScanoutId(in);
        Append(&request, e);
        p.hdr = e.hdr;
        p.scanout_id = e.scanout;
        break;
      }
      default: {
        const uint8_t o = in.Take<uint8_t>();
        constexpr size_t kOthers = sizeof(kOtherCommands) / sizeof(kOtherCommands[0]);
        const uint32_t type = o < 0xf0 ? kOtherCommands[o % kOthers] : in.Take<uint32_t>();
        Put(&request, &p, Header(type, in));
        AppendBody(&request, in);
        break;
      }
    }
    if (p.full == 0) p.full = request.size();
    const uint32_t needed = ResponseRoom(p.hdr.type);
    Submit(kControlQueue, request, std::move(p), needed, in);
  }

  void CursorCommand(FuzzInput& in) {
    const uint8_t pick = in.Take<uint8_t>();
    uint32_t type = pick % 8 < 4 ? kCmdUpdateCursor : kCmdMoveCursor;
    if (pick % 8 == 7) type = pick & 0x80 ? kCmdResourceCreate2d : in.Take<uint32_t>();
    UpdateCursor u{};
    u.hdr = Header(type, in);
    u.pos.scanout_id = ScanoutId(in);
    u.pos.x = in.Take<uint16_t>();
    u.pos.y = in.Take<uint16_t>();
    if (type == kCmdUpdateCursor) {
      u.resource_id = ResourceId(in);
      u.hot_x = in.Take<uint8_t>();
      u.hot_y = in.Take<uint8_t>();
    }
    std::vector<uint8_t> request;
    Pending p;
    Put(&request, &p, u);
    Submit(kCursorQueue, request, std::move(p), sizeof(CtrlHdr), in);
  }

  // ---- the host side

  void SinkOp(FuzzInput& in) {
    const uint8_t pick = in.Take<uint8_t>();
    FakeDisplaySink& s = sinks[(pick >> 3) & 1];
    switch (pick % 8) {
      case 0:
      case 1:
      case 2: {
        const int which = (pick >> 4) % 3;
        sink = which == 2 ? nullptr : &sinks[which];
        device->SetSink(sink);
        break;
      }
      case 3:  // the display end fails (or recovers)
        s.result = pick & 0x80   ? absl::OkStatus()
                   : pick & 0x40 ? absl::InvalidArgumentError("a call the display refused")
                                 : absl::UnavailableError("display gone");
        break;
      case 4: {
        if (pick & 0x80) {
          s.display_info = absl::UnavailableError("no display information");
          break;
        }
        std::vector<ScanoutInfo> info(in.Take<uint8_t>() % (kMaxScanouts + 2));
        for (ScanoutInfo& one : info) {
          const uint8_t e = in.Take<uint8_t>();
          one.enabled = e & 1;
          const uint32_t sizes[] = {0, 0xffffffff, 640, in.Take<uint16_t>()};
          one.width = sizes[(e >> 1) % 4];
          one.height = sizes[(e >> 3) % 4];
        }
        s.display_info = std::move(info);
        break;
      }
      case 5: {
        const uint32_t id = in.Take<uint8_t>() % (outputs + 1);
        const uint8_t z = in.Take<uint8_t>();
        const size_t sizes[] = {0, 128, 256, 1024, 1025, 3000, 128, in.Take<uint16_t>() % 1100u};
        std::vector<uint8_t> blob(sizes[z % 8]);
        in.TakeBytes(blob.data(), blob.size() < 16 ? blob.size() : 16);
        s.edids[id] = std::move(blob);
        break;
      }
      case 6:
        s.edids.clear();
        break;
      default:
        device->SetSink(sink);  // the same display end again: told everything once more
    }
  }

  void ConfigOp(FuzzInput& in) {
    const uint8_t pick = in.Take<uint8_t>();
    uint8_t buf[32] = {};
    switch (pick % 4) {
      case 0: {
        const uint32_t offset = in.Take<uint8_t>() % 24;
        (void)device->ReadConfig(offset, absl::MakeSpan(buf, in.Take<uint8_t>() % 24));
        break;
      }
      case 1: {
        const uint32_t offset = in.Take<uint8_t>() % 24;
        const size_t n = in.TakeBytes(buf, in.Take<uint8_t>() % 9);
        (void)device->WriteConfig(offset, absl::MakeConstSpan(buf, n));
        break;
      }
      case 2: {  // a window resized: the guest sees the event, the front end is told
        notice_fails = pick & 0x80;
        const int before = config_changes;
        device->DisplayChanged();
        Check(config_changes == before + 1);
        GpuConfig config;
        Check(
            device
                ->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), sizeof(config)))
                .ok());
        Check((config.events_read & kEventDisplay) && config.num_scanouts == outputs);
        break;
      }
      default: {  // the guest acknowledges every event
        const uint32_t all = 0xffffffff;
        Check(device
                  ->WriteConfig(offsetof(GpuConfig, events_clear),
                                absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&all), 4))
                  .ok());
        uint32_t events = 1;
        Check(device->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&events), 4)).ok());
        Check(events == 0);
      }
    }
  }

  // Device reset (the engine stops the queues first), queues stopped and started again, or
  // started again on the other memory table.
  void Lifecycle(uint8_t op) {
    if (restarts >= kMaxRestarts) return;
    ++restarts;
    const int what = (op >> 4) % 4;
    if (what == 1) {
      Stop(0);
      Stop(1);
      SwapMemory();
      Start(0);
      Start(1);
      return;
    }
    if (what == 2 || what == 3) {  // one queue, or both
      const int first = what == 2 ? (op >> 6) & 1 : 0;
      const int last = what == 2 ? first : 1;
      for (int i = first; i <= last; ++i) Stop(i);
      for (int i = first; i <= last; ++i) Start(i);
      return;
    }
    Stop(0);
    Stop(1);
    Reset();
    Start(0);
    Start(1);
  }

  void Reset() {
    device->Reset();
    Check(device->resource_count() == 0 && device->host_bytes() == 0);
    shadow.clear();
    shadow_bytes = 0;
    features = Bit(kFeatureVersion1) | (features & Bit(kFeatureEdid));
    Check(device->SetFeatures(features).ok());
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
        ControlCommand(in);
        if (!(op & 0x80)) Run(kControlQueue);  // mostly answered at once; else batched
        break;
      case 7:
      case 8:
        CursorCommand(in);
        if (!(op & 0x80)) Run(kCursorQueue);
        break;
      case 9:
        Run(kControlQueue);
        break;
      case 10:
        Run(kCursorQueue);
        break;
      case 11:
        SinkOp(in);
        break;
      case 12:
        ConfigOp(in);
        break;
      case 13:
        Draw(*ram, data, kDataSize, in);
        break;
      default:
        Lifecycle(op);
    }
    CheckSinks();
  }

  void Finish() {
    Run(kControlQueue);
    Run(kCursorQueue);
    CheckSinks();
    Stop(0);
    Stop(1);
    Reset();
    CheckSinks();
  }
};

}  // namespace
}  // namespace vhost::gpu::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return vhost::gpu::fuzz::RunInput<vhost::gpu::fuzz::Harness>(data, size);
}
