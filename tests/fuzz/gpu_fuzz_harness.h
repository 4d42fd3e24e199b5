// What the two vhost-user-gpu fuzz targets share (gpu_device_fuzz.cc, the 2D device, and
// gpu_device_3d_fuzz.cc, the device with a renderer): the checks that abort with where they
// failed, the pieces of a request the guest picks (fence flags, ids, rects, backing addresses,
// fuzzed bodies), the chain a request goes out in (cut anywhere, split over up to four
// descriptors, with a response buffer of the right size, none, too small or any, in one or two
// descriptors), the checks every answer obeys (a header where one fits, OK_* or ERR_*, the fence
// echoed), the checks on what a FakeDisplaySink was told, the guest drawing into its data area,
// and the entry point around a target's Harness.
//
// Each target keeps its own memory layout, command mix, shadow of the device's state and the
// checks of what each answer may claim.
#ifndef TESTS_FUZZ_GPU_FUZZ_HARNESS_H_
#define TESTS_FUZZ_GPU_FUZZ_HARNESS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/test_queue.h"
#include "tests/fuzz/fuzz_input.h"
#include "vhost-user-gpu/fake_display_sink.h"
#include "vhost-user-gpu/gpu_device.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu::fuzz {

using vhost::testing::Buffer;
using vhost::testing::FakeGuestMemory;
using vhost::testing::TestQueue;

// Prints where a check failed, then aborts (the fuzzer's crash).
[[noreturn]] void CheckFailed(const char* file, int line);
inline void CheckAt(bool ok, const char* file, int line) {
  if (!ok) CheckFailed(file, line);
}
#define GPU_FUZZ_CHECK(ok) ::vhost::gpu::fuzz::CheckAt((ok), __FILE__, __LINE__)

// GPU_FUZZ_TRACE=1: the targets print what they check.
bool Trace();

constexpr uint32_t kQueueSize = 64;
constexpr int kMaxSteps = 512;
inline constexpr uint32_t kFormats[] = {kFormatB8G8R8A8, kFormatB8G8R8X8, kFormatA8R8G8B8,
                                        kFormatX8R8G8B8, kFormatR8G8B8A8, kFormatX8B8G8R8,
                                        kFormatA8B8G8R8, kFormatR8G8B8X8};

bool IsOk(uint32_t type);
bool IsErr(uint32_t type);

template <typename T>
void Append(std::vector<uint8_t>* out, const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out->insert(out->end(), p, p + sizeof(T));
}

// ---- what the guest puts in a request

// A header of `type`, mostly without flags, else fenced (with a ring index, or any flags), with
// any fence id and ring index. The context is `ctx_id`, or with `fuzz_ctx` a fenced header's
// is taken from the input (when the flags byte is odd; 0 otherwise).
CtrlHdr Header(uint32_t type, uint32_t ctx_id, bool fuzz_ctx, FuzzInput& in);
// Up to 63 fuzzed bytes after the header (a context's commands, a blob's entries, ...).
void AppendBody(std::vector<uint8_t>* request, FuzzInput& in);
// Mostly the ids 1..8 (so commands meet the resources earlier ones made), rarely 0 or any.
uint32_t ResourceId(FuzzInput& in);
// Mostly one of the `outputs` scanouts, sometimes the first past them, rarely any.
uint32_t ScanoutId(uint32_t outputs, FuzzInput& in);
// A rect inside w x h (both above 0): any origin in it, any size that fits.
GpuRect PartOf(uint32_t w, uint32_t h, FuzzInput& in);
GpuRect AnyRect(FuzzInput& in);
// An address in the data area at `data` where `length` bytes fit (if they fit the area).
uint64_t DataAddress(uint64_t data, uint64_t data_size, uint32_t length, FuzzInput& in);

// The resource's size as far as a shadow (id -> something with width and height) knows; a
// cursor's for an unknown id.
template <typename Shadow>
void Dimensions(const std::map<uint32_t, Shadow>& shadow, uint32_t id, uint32_t* w, uint32_t* h) {
  auto it = shadow.find(id);
  *w = it == shadow.end() ? kCursorSize : it->second.width;
  *h = it == shadow.end() ? kCursorSize : it->second.height;
}

// ---- chains

// What both targets remember of a chain the driver queued, to check its answer against. The
// targets add their own fields.
struct Request {
  bool posted = false;
  CtrlHdr hdr{};          // the request's header as written (the device got it if readable >= 24)
  uint64_t readable = 0;  // request bytes the chain holds
  uint64_t full = 0;      // bytes the command needs to run (fixed part, entries included)
  uint32_t room = 0;      // writable bytes
  std::vector<Buffer> writable;
  uint32_t resource_id = 0;
  uint32_t scanout_id = 0;
  uint32_t nr_entries = 0;         // ATTACH_BACKING
  uint32_t width = 0, height = 0;  // CREATE_2D, CREATE_3D
  GpuRect rect{};
};

// Appends a command's fixed part to `request` and records in `p` what its answer is checked
// against (for ATTACH_BACKING and cursor commands also the bytes the command needs).
void Put(std::vector<uint8_t>* request, Request* p, const CtrlHdr& c);
void Put(std::vector<uint8_t>* request, Request* p, const ResourceCreate2d& c);
void Put(std::vector<uint8_t>* request, Request* p, const ResourceAttachBacking& c);
void Put(std::vector<uint8_t>* request, Request* p, const ResourceUnref& c);
void Put(std::vector<uint8_t>* request, Request* p, const SetScanout& c);
void Put(std::vector<uint8_t>* request, Request* p, const ResourceFlush& c);
void Put(std::vector<uint8_t>* request, Request* p, const TransferToHost2d& c);
void Put(std::vector<uint8_t>* request, Request* p, const UpdateCursor& c);

// One queue and the chains in flight on it (P: a target's Request).
template <typename P>
struct Lane {
  std::unique_ptr<TestQueue> queue;
  P pending[kQueueSize];
  uint32_t in_flight = 0;
};

// Queue `index` of `device` on rings allocated in `ram`.
std::unique_ptr<TestQueue> StartQueue(FakeGuestMemory* ram, int index, GpuDevice& device);

// Where a chain's request and response go: `request_size` bytes at `request` (the request is
// written there), `reply_size` at `reply` (filled with 0xee before the device answers).
struct Slot {
  uint64_t request = 0;
  uint32_t request_size = 0;
  uint64_t reply = 0;
  uint32_t reply_size = 0;
};

// The descriptors of a chain as the guest chose them.
struct Chain {
  std::vector<Buffer> readable, writable;
  uint32_t len = 0;   // request bytes in the chain
  uint32_t room = 0;  // writable bytes
};

// Writes `request` into its slot and chooses the chain that carries it (cut or whole, over one
// to four descriptors; `needed` bytes of response room, none, fewer or any, in one or two
// descriptors). False when the choice is a chain of no descriptors (nothing to queue).
bool MakeChain(FakeGuestMemory& ram, const Slot& slot, const std::vector<uint8_t>& request,
               uint32_t needed, FuzzInput& in, Chain* chain);

// Queues `request` on `lane` as MakeChain chooses, with `p` to check its answer against.
// Returns the chain's head id, or -1 when no chain was queued.
template <typename P>
int Queue(Lane<P>& lane, FakeGuestMemory& ram, const Slot& slot,
          const std::vector<uint8_t>& request, uint32_t needed, P p, FuzzInput& in) {
  Chain chain;
  if (!MakeChain(ram, slot, request, needed, in, &chain)) return -1;
  absl::StatusOr<uint16_t> id = lane.queue->Add(chain.readable, chain.writable);
  GPU_FUZZ_CHECK(id.ok() && *id < kQueueSize && !lane.pending[*id].posted);
  p.posted = true;
  p.readable = chain.len;
  p.room = chain.room;
  p.writable = std::move(chain.writable);
  lane.pending[*id] = std::move(p);
  ++lane.in_flight;
  return *id;
}

// ---- answers

// The first `n` bytes the device wrote into a chain's writable buffers.
void Gather(const FakeGuestMemory& ram, const std::vector<Buffer>& writable, void* out, size_t n);

// An answer of `len` bytes (UINT32_MAX: held by the device, its length not known yet): every
// chain gets a header when one fits, whatever its request. False when none was written; else
// the header is read into `resp`.
bool ReadResponse(const FakeGuestMemory& ram, const Request& p, uint32_t len, CtrlHdr* resp);

// A success on the cursor queue: for a scanout there is, with a cursor-sized resource the
// shadow (id -> something with width and height) knows, or none.
template <typename Shadow>
void CheckCursorSuccess(const Request& p, uint32_t outputs,
                        const std::map<uint32_t, Shadow>& shadow) {
  GPU_FUZZ_CHECK(p.scanout_id < outputs);
  if (p.hdr.type == kCmdUpdateCursor && p.resource_id != 0) {
    auto found = shadow.find(p.resource_id);
    GPU_FUZZ_CHECK(found != shadow.end() && found->second.width == kCursorSize &&
                   found->second.height == kCursorSize);
  }
}

// A success of ATTACH_BACKING (of at most `max_entries` entries) or DETACH_BACKING: the
// resource is known (`attached` is its shadow's flag, nullptr if unknown) and had no backing, or
// had one. Flips the flag.
void BackingChanged(uint32_t type, bool* attached, uint32_t nr_entries, uint32_t max_entries);

// What every response header obeys: OK_* or ERR_*, a request's fence echoed, an error for a
// request too short for a header. False when the request had no header (nothing more to check).
bool CheckResponse(const Request& p, const CtrlHdr& resp);

// The sink was called only for the `outputs` scanouts, with whole cursors (hot spot inside)
// and updates of pixels it could read; forgets the calls.
void CheckSinkCalls(gpu::testing::FakeDisplaySink& sink, uint32_t outputs);

// ---- the guest and the host

// The guest draws: up to 64 bytes into the data area, for transfers to pick up.
void Draw(FakeGuestMemory& ram, uint64_t data, uint64_t data_size, FuzzInput& in);

// Once per input: quiets the device's logging, and with GPU_FUZZ_SAVE=FILE writes the input to
// FILE before it runs (the one a crash leaves there is it).
void BeforeInput(const uint8_t* data, size_t size);

// LLVMFuzzerTestOneInput of a target: a Harness with Init(FuzzInput&), Step(FuzzInput&) and
// Finish() takes up to kMaxSteps steps while there is input.
template <typename Harness>
int RunInput(const uint8_t* data, size_t size) {
  BeforeInput(data, size);
  FuzzInput in(data, size);
  Harness h;
  h.Init(in);
  for (int step = 0; step < kMaxSteps && in.remaining() > 0; ++step) h.Step(in);
  h.Finish();
  return 0;
}

}  // namespace vhost::gpu::fuzz

#endif  // TESTS_FUZZ_GPU_FUZZ_HARNESS_H_
