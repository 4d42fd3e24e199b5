#include "tests/fuzz/gpu_fuzz_harness.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "glog/logging.h"

namespace vhost::gpu::fuzz {

using gpu::testing::FakeDisplaySink;

void CheckFailed(const char* file, int line) {
  std::fprintf(stderr, "%s:%d: check failed\n", file, line);
  std::abort();
}

bool Trace() {
  static const bool trace = std::getenv("GPU_FUZZ_TRACE") != nullptr;
  return trace;
}

bool IsOk(uint32_t type) { return type >= kRespOkNodata && type <= kRespOkMapInfo; }
bool IsErr(uint32_t type) { return type >= kRespErrUnspec && type <= kRespErrInvalidParameter; }

CtrlHdr Header(uint32_t type, uint32_t ctx_id, bool fuzz_ctx, FuzzInput& in) {
  CtrlHdr h{};
  h.type = type;
  h.ctx_id = ctx_id;
  const uint8_t f = in.Take<uint8_t>();
  if (f >= 0x80) {
    h.flags = f < 0xe0   ? kFlagFence
              : f < 0xf8 ? kFlagFence | kFlagInfoRingIdx
                         : in.Take<uint32_t>();
    h.fence_id = in.Take<uint32_t>();
    if (fuzz_ctx) h.ctx_id = f & 1 ? in.Take<uint8_t>() : 0;
    h.ring_idx = in.Take<uint8_t>();
  }
  return h;
}

void AppendBody(std::vector<uint8_t>* request, FuzzInput& in) {
  const size_t at = request->size();
  const size_t body = in.Take<uint8_t>() % 64;
  request->resize(at + body);
  in.TakeBytes(request->data() + at, body);
}

uint32_t ResourceId(FuzzInput& in) {
  const uint8_t b = in.Take<uint8_t>();
  if (b < 0xe8) return 1 + b % 8;
  if (b < 0xf4) return 0;
  return in.Take<uint32_t>();
}

uint32_t ScanoutId(uint32_t outputs, FuzzInput& in) {
  const uint8_t b = in.Take<uint8_t>();
  if (b < 0xf0) return b % outputs;
  if (b < 0xf8) return outputs;
  return in.Take<uint32_t>();
}

GpuRect PartOf(uint32_t w, uint32_t h, FuzzInput& in) {
  GpuRect r;
  r.x = in.Take<uint16_t>() % w;
  r.y = in.Take<uint16_t>() % h;
  r.width = 1 + in.Take<uint16_t>() % (w - r.x);
  r.height = 1 + in.Take<uint16_t>() % (h - r.y);
  return r;
}

GpuRect AnyRect(FuzzInput& in) {
  GpuRect r;
  r.x = in.Take<uint32_t>();
  r.y = in.Take<uint32_t>();
  r.width = in.Take<uint32_t>();
  r.height = in.Take<uint32_t>();
  return r;
}

uint64_t DataAddress(uint64_t data, uint64_t data_size, uint32_t length, FuzzInput& in) {
  const uint64_t span = data_size - (length < data_size ? length : data_size) + 1;
  return data + (uint64_t{in.Take<uint16_t>()} * 64) % span;
}

void Put(std::vector<uint8_t>* request, Request* p, const CtrlHdr& c) {
  Append(request, c);
  p->hdr = c;
}

namespace {

// A command naming a resource.
template <typename C>
void PutCommand(std::vector<uint8_t>* request, Request* p, const C& c) {
  Append(request, c);
  p->hdr = c.hdr;
  p->resource_id = c.resource_id;
}

}  // namespace

void Put(std::vector<uint8_t>* request, Request* p, const ResourceCreate2d& c) {
  PutCommand(request, p, c);
  p->width = c.width;
  p->height = c.height;
}

void Put(std::vector<uint8_t>* request, Request* p, const ResourceAttachBacking& c) {
  PutCommand(request, p, c);
  p->nr_entries = c.nr_entries;
  p->full = sizeof(c) + uint64_t{c.nr_entries} * sizeof(MemEntry);
}

void Put(std::vector<uint8_t>* request, Request* p, const ResourceUnref& c) {
  PutCommand(request, p, c);
}

void Put(std::vector<uint8_t>* request, Request* p, const SetScanout& c) {
  PutCommand(request, p, c);
  p->scanout_id = c.scanout_id;
  p->rect = c.r;
}

void Put(std::vector<uint8_t>* request, Request* p, const ResourceFlush& c) {
  PutCommand(request, p, c);
  p->rect = c.r;
}

void Put(std::vector<uint8_t>* request, Request* p, const TransferToHost2d& c) {
  PutCommand(request, p, c);
  p->rect = c.r;
}

void Put(std::vector<uint8_t>* request, Request* p, const UpdateCursor& c) {
  PutCommand(request, p, c);
  p->full = sizeof(c);
  p->scanout_id = c.pos.scanout_id;
}

std::unique_ptr<TestQueue> StartQueue(FakeGuestMemory* ram, int index, GpuDevice& device) {
  TestQueue::Options options;
  options.index = index;
  options.size = kQueueSize;
  std::unique_ptr<TestQueue> queue = *TestQueue::Create(ram, options);
  GPU_FUZZ_CHECK(queue->Start(device).ok());
  return queue;
}

bool MakeChain(FakeGuestMemory& ram, const Slot& slot, const std::vector<uint8_t>& request,
               uint32_t needed, FuzzInput& in, Chain* chain) {
  GPU_FUZZ_CHECK(request.size() <= slot.request_size);
  if (!request.empty()) {
    std::memcpy(ram.Host(slot.request, request.size()), request.data(), request.size());
  }

  uint32_t len = static_cast<uint32_t>(request.size());
  const uint8_t cut = in.Take<uint8_t>();
  if (cut >= 0xf0) len = in.Take<uint16_t>() % (len + 1);
  std::vector<Buffer> readable;
  const uint8_t split = in.Take<uint8_t>();
  const int pieces = split < 0xa0 ? 1 : 2 + split % 3;
  uint32_t at = 0;
  for (int k = 1; k < pieces && len - at > 1; ++k) {
    const uint32_t n = 1 + in.Take<uint16_t>() % (len - at - 1);
    readable.push_back({slot.request + at, n});
    at += n;
  }
  if (at < len) readable.push_back({slot.request + at, len - at});

  const uint8_t r = in.Take<uint8_t>();
  uint32_t room;
  if (r < 0xb0) {
    room = needed;
  } else if (r < 0xc8) {
    room = 0;
  } else if (r < 0xe0) {
    room = r % needed;
  } else {
    room = in.Take<uint16_t>() % (slot.reply_size + 1);
  }
  std::vector<Buffer> writable;
  const uint64_t rep = slot.reply;
  if (room > 1 && (r & 1)) {
    const uint32_t first = 1 + in.Take<uint8_t>() % (room - 1);
    writable = {{rep, first}, {rep + first, room - first}};
  } else if (room > 0) {
    writable = {{rep, room}};
  }
  if (readable.empty() && writable.empty()) return false;  // no chain of no descriptors
  std::memset(ram.Host(rep, slot.reply_size), 0xee, slot.reply_size);
  chain->readable = std::move(readable);
  chain->writable = std::move(writable);
  chain->len = len;
  chain->room = room;
  return true;
}

void Gather(const FakeGuestMemory& ram, const std::vector<Buffer>& writable, void* out, size_t n) {
  auto* dst = static_cast<uint8_t*>(out);
  for (const Buffer& b : writable) {
    const size_t take = n < b.len ? n : b.len;
    std::memcpy(dst, ram.Host(b.gpa, take), take);
    dst += take;
    n -= take;
    if (n == 0) return;
  }
  GPU_FUZZ_CHECK(n == 0);
}

bool ReadResponse(const FakeGuestMemory& ram, const Request& p, uint32_t len, CtrlHdr* resp) {
  if (p.room >= sizeof(CtrlHdr)) GPU_FUZZ_CHECK(len >= sizeof(CtrlHdr));
  if (len < sizeof(CtrlHdr)) return false;
  Gather(ram, p.writable, resp, sizeof(*resp));
  return true;
}

void BackingChanged(uint32_t type, bool* attached, uint32_t nr_entries, uint32_t max_entries) {
  GPU_FUZZ_CHECK(attached != nullptr);
  if (type == kCmdResourceAttachBacking) {
    GPU_FUZZ_CHECK(!*attached && nr_entries >= 1 && nr_entries <= max_entries);
    *attached = true;
  } else {
    GPU_FUZZ_CHECK(*attached);
    *attached = false;
  }
}

bool CheckResponse(const Request& p, const CtrlHdr& resp) {
  GPU_FUZZ_CHECK(IsOk(resp.type) || IsErr(resp.type));
  if (p.readable < sizeof(CtrlHdr)) {
    GPU_FUZZ_CHECK(IsErr(resp.type));
    return false;
  }
  if (p.hdr.flags & kFlagFence) {
    GPU_FUZZ_CHECK((resp.flags & kFlagFence) && resp.fence_id == p.hdr.fence_id &&
                   resp.ctx_id == p.hdr.ctx_id);
  }
  return true;
}

void CheckSinkCalls(FakeDisplaySink& sink, uint32_t outputs) {
  GPU_FUZZ_CHECK(sink.bad_updates == 0);
  for (const auto& c : sink.scanout_calls) GPU_FUZZ_CHECK(c.scanout_id < outputs);
  for (const auto& u : sink.update_calls) GPU_FUZZ_CHECK(u.scanout_id < outputs);
  for (const auto& c : sink.cursor_calls) {
    GPU_FUZZ_CHECK(c.scanout_id < outputs);
    if (c.kind == FakeDisplaySink::CursorCall::kUpdate) {
      GPU_FUZZ_CHECK(c.argb.size() == size_t{kCursorSize} * kCursorSize && c.hot_x < kCursorSize &&
                     c.hot_y < kCursorSize);
    }
  }
  sink.scanout_calls.clear();
  sink.update_calls.clear();
  sink.cursor_calls.clear();
}

void Draw(FakeGuestMemory& ram, uint64_t data, uint64_t data_size, FuzzInput& in) {
  const uint64_t offset = (uint64_t{in.Take<uint16_t>()} * 64) % (data_size - 64);
  const size_t n = in.Take<uint8_t>() % 65;
  in.TakeBytes(ram.Host(data + offset, n), n);
}

void BeforeInput(const uint8_t* data, size_t size) {
  static bool init = [] {
    FLAGS_minloglevel = 2;  // the device logs every bad command
    return true;
  }();
  (void)init;
  static const char* save = std::getenv("GPU_FUZZ_SAVE");
  if (save != nullptr) {
    if (FILE* f = std::fopen(save, "wb")) {
      std::fwrite(data, 1, size, f);
      std::fclose(f);
    }
  }
}

}  // namespace vhost::gpu::fuzz
