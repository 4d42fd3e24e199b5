// A Renderer3d for tests and fuzzers: records every call (contexts, resources as created,
// backings, submitted command streams, transfers, fences), fails the next call when told to,
// and has a fence timeline the test drives: CreateFence records, Signal(fence) marks it done,
// Poll returns the last fence signalled. PollFd is -1 (the device polls on a timer) or, after
// UseEventFd(), an eventfd that Signal makes readable and Poll drains. ReadPixels paints a
// pattern (PatternByte) so a test can check what reached the display.
//
// GpuDevice promises to check ids, sizes and rects before a call reaches the renderer; the fake
// checks those promises and records each one broken in `violations` (tests and fuzzers expect
// it empty). It reads every page of a backing when it is attached and at each transfer, so a
// backing outside guest memory, or one whose mapping the device let go, crashes under test.
//
// Not thread-safe (the device calls it under its mutex; Signal from the test's thread only
// between the device's turns).
#ifndef VHOST_USER_GPU_FAKE_RENDERER_3D_H_
#define VHOST_USER_GPU_FAKE_RENDERER_3D_H_

#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "vhost-user-gpu/gpu_spec.h"
#include "vhost-user-gpu/renderer_3d.h"

namespace vhost::gpu::testing {

class FakeRenderer3d : public Renderer3d {
 public:
  struct Resource {
    ResourceCreate3d create{};
    bool has_backing = false;
    std::vector<iovec> backing;
    std::set<uint32_t> contexts;  // attached to
  };
  struct Submitted {
    uint32_t ctx_id;
    std::vector<uint8_t> commands;
  };

  FakeRenderer3d() = default;
  FakeRenderer3d(const FakeRenderer3d&) = delete;
  FakeRenderer3d& operator=(const FakeRenderer3d&) = delete;
  ~FakeRenderer3d() override {
    if (event_fd_ >= 0) close(event_fd_);
  }

  // The byte `i` (0..3) of pixel (x, y) of `resource_id` as ReadPixels paints it: differs in
  // every byte from its neighbours and between resources.
  static uint8_t PatternByte(uint32_t resource_id, uint32_t x, uint32_t y, uint32_t i) {
    return static_cast<uint8_t>(x * 7 + y * 13 + i * 61 + resource_id * 29);
  }

  // ---- set by the test

  // The next call that returns a status (`call`: only a call of that name, e.g. "Submit";
  // empty: any) fails with `status` instead of doing anything.
  void FailNext(absl::Status status, std::string call = "") {
    fail_status_ = std::move(status);
    fail_call_ = std::move(call);
  }
  // Everything submitted up to fence `fence` is done.
  void Signal(uint32_t fence) {
    signalled_ = fence;
    if (event_fd_ >= 0) (void)eventfd_write(event_fd_, 1);
  }
  // PollFd returns an eventfd from now on (call before the device's queues start).
  void UseEventFd() {
    if (event_fd_ < 0) event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  std::vector<Capset> capsets = {{kCapsetVirgl, 1, 308}, {kCapsetVirgl2, 2, 1024}};
  // Capset data is this many bytes (-1: the capset's max_size), each (id + version + i).
  int capset_data_size = -1;

  // ---- recorded

  std::map<uint32_t, std::string> contexts;  // id -> debug name
  std::map<uint32_t, Resource> resources;
  std::vector<Submitted> submits;
  std::vector<Transfer3d> to_host, from_host;
  std::vector<uint32_t> fences;  // created, in order
  std::vector<std::string> calls;
  std::vector<std::string> violations;  // promises the device broke
  int resets = 0;
  int polls = 0;
  uint64_t backing_sum = 0;  // of every byte read from backings (keeps the reads)

  // ---- Renderer3d

  std::vector<Capset> Capsets() const override { return capsets; }

  absl::StatusOr<std::vector<uint8_t>> CapsetData(uint32_t id, uint32_t version) override {
    if (absl::Status s = Begin("CapsetData"); !s.ok()) return s;
    const Capset* capset = nullptr;
    for (const Capset& c : capsets) {
      if (c.id == id) capset = &c;
    }
    if (capset == nullptr || version > capset->max_version) {
      Violation(absl::StrCat("CapsetData(", id, ", ", version, ")"));
      return absl::NotFoundError("no such capset");
    }
    std::vector<uint8_t> data(capset_data_size < 0 ? capset->max_size : capset_data_size);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(id + version + i);
    return data;
  }

  absl::Status CreateContext(uint32_t ctx_id, absl::string_view debug_name) override {
    if (absl::Status s = Begin("CreateContext"); !s.ok()) return s;
    if (ctx_id == 0 || contexts.count(ctx_id) != 0 || debug_name.size() > 64) {
      Violation(absl::StrCat("CreateContext(", ctx_id, ")"));
    }
    contexts[ctx_id] = std::string(debug_name);
    return absl::OkStatus();
  }
  void DestroyContext(uint32_t ctx_id) override {
    calls.push_back("DestroyContext");
    if (contexts.erase(ctx_id) == 0) Violation(absl::StrCat("DestroyContext(", ctx_id, ")"));
    for (auto& [id, r] : resources) r.contexts.erase(ctx_id);
  }
  void AttachResource(uint32_t ctx_id, uint32_t resource_id) override {
    calls.push_back("AttachResource");
    Resource* r = Find(resource_id, "AttachResource");
    if (contexts.count(ctx_id) == 0) Violation(absl::StrCat("AttachResource ctx ", ctx_id));
    if (r != nullptr) r->contexts.insert(ctx_id);
  }
  void DetachResource(uint32_t ctx_id, uint32_t resource_id) override {
    calls.push_back("DetachResource");
    Resource* r = Find(resource_id, "DetachResource");
    if (contexts.count(ctx_id) == 0) Violation(absl::StrCat("DetachResource ctx ", ctx_id));
    if (r != nullptr) r->contexts.erase(ctx_id);
  }

  absl::Status CreateResource(const ResourceCreate3d& request) override {
    if (absl::Status s = Begin("CreateResource"); !s.ok()) return s;
    if (request.resource_id == 0 || resources.count(request.resource_id) != 0 ||
        request.width == 0 || request.height == 0) {
      Violation(absl::StrCat("CreateResource(", request.resource_id, ")"));
    }
    resources[request.resource_id].create = request;
    return absl::OkStatus();
  }
  void UnrefResource(uint32_t resource_id) override {
    calls.push_back("UnrefResource");
    if (resources.erase(resource_id) == 0)
      Violation(absl::StrCat("UnrefResource(", resource_id, ")"));
  }
  absl::Status AttachBacking(uint32_t resource_id, std::vector<iovec> backing) override {
    if (absl::Status s = Begin("AttachBacking"); !s.ok()) return s;
    Resource* r = Find(resource_id, "AttachBacking");
    if (r == nullptr) return absl::NotFoundError("no such resource");
    if (r->has_backing) Violation(absl::StrCat("AttachBacking(", resource_id, ") twice"));
    r->has_backing = true;
    r->backing = std::move(backing);
    Touch(*r);
    return absl::OkStatus();
  }
  void DetachBacking(uint32_t resource_id) override {
    calls.push_back("DetachBacking");
    Resource* r = Find(resource_id, "DetachBacking");
    if (r == nullptr) return;
    if (!r->has_backing) Violation(absl::StrCat("DetachBacking(", resource_id, ") without"));
    r->has_backing = false;
    r->backing.clear();
  }
  absl::Status TransferToHost(const Transfer3d& request) override {
    return Transfer("TransferToHost", request, &to_host);
  }
  absl::Status TransferFromHost(const Transfer3d& request) override {
    return Transfer("TransferFromHost", request, &from_host);
  }
  absl::Status Submit(uint32_t ctx_id, absl::Span<const uint8_t> commands) override {
    if (absl::Status s = Begin("Submit"); !s.ok()) return s;
    if (contexts.count(ctx_id) == 0 || commands.size() % 4 != 0 || commands.size() > (4u << 20)) {
      Violation(absl::StrCat("Submit(", ctx_id, ", ", commands.size(), " bytes)"));
    }
    submits.push_back({ctx_id, {commands.begin(), commands.end()}});
    return absl::OkStatus();
  }

  absl::StatusOr<ResourceInfo> Info(uint32_t resource_id) override {
    if (absl::Status s = Begin("Info"); !s.ok()) return s;
    Resource* r = Find(resource_id, "Info");
    if (r == nullptr) return absl::NotFoundError("no such resource");
    return ResourceInfo{r->create.width, r->create.height, r->create.format};
  }
  absl::Status ReadPixels(uint32_t resource_id, const GpuRect& rect,
                          absl::Span<uint8_t> out) override {
    if (absl::Status s = Begin("ReadPixels"); !s.ok()) return s;
    Resource* r = Find(resource_id, "ReadPixels");
    if (r == nullptr) return absl::NotFoundError("no such resource");
    if (uint64_t{rect.x} + rect.width > r->create.width ||
        uint64_t{rect.y} + rect.height > r->create.height ||
        out.size() != uint64_t{rect.width} * rect.height * 4) {
      Violation(absl::StrCat("ReadPixels(", resource_id, ") of ", rect.width, "x", rect.height, "+",
                             rect.x, "+", rect.y, " into ", out.size(), " bytes"));
      return absl::InvalidArgumentError("rect");
    }
    size_t at = 0;
    for (uint32_t y = rect.y; y < rect.y + rect.height; ++y) {
      for (uint32_t x = rect.x; x < rect.x + rect.width; ++x) {
        for (uint32_t i = 0; i < 4; ++i) out[at++] = PatternByte(resource_id, x, y, i);
      }
    }
    return absl::OkStatus();
  }

  absl::Status CreateFence(uint32_t fence) override {
    if (absl::Status s = Begin("CreateFence"); !s.ok()) return s;
    if (!fences.empty() && static_cast<int32_t>(fence - fences.back()) <= 0) {
      Violation(absl::StrCat("CreateFence(", fence, ") after ", fences.back()));
    }
    fences.push_back(fence);
    return absl::OkStatus();
  }
  uint32_t Poll() override {
    ++polls;
    if (event_fd_ >= 0) {
      eventfd_t ignored;
      (void)eventfd_read(event_fd_, &ignored);
    }
    return signalled_;
  }
  int PollFd() const override { return event_fd_; }

  void Reset() override {
    calls.push_back("Reset");
    ++resets;
    contexts.clear();
    resources.clear();
    signalled_ = 0;
  }

  uint32_t signalled() const { return signalled_; }

 private:
  // Records the call; the failure the test asked for, if it is this call's turn.
  absl::Status Begin(const char* call) {
    calls.push_back(call);
    if (fail_status_.ok() || (!fail_call_.empty() && fail_call_ != call)) return absl::OkStatus();
    absl::Status status = fail_status_;
    fail_status_ = absl::OkStatus();
    return status;
  }
  void Violation(std::string what) { violations.push_back(std::move(what)); }
  Resource* Find(uint32_t resource_id, const char* call) {
    auto it = resources.find(resource_id);
    if (it != resources.end()) return &it->second;
    Violation(absl::StrCat(call, "(", resource_id, "): no such resource"));
    return nullptr;
  }
  // Reads the whole backing (host memory the device vouched for).
  void Touch(const Resource& r) {
    for (const iovec& v : r.backing) {
      if (v.iov_len != 0 && v.iov_base == nullptr) Violation("a null backing segment");
      const auto* p = static_cast<const volatile uint8_t*>(v.iov_base);
      // A byte of every 512 and the last: every page, fast enough for a fuzzer.
      for (size_t i = 0; i < v.iov_len; i += 512) backing_sum += p[i];
      if (v.iov_len != 0) backing_sum += p[v.iov_len - 1];
    }
  }
  absl::Status Transfer(const char* call, const Transfer3d& request, std::vector<Transfer3d>* log) {
    if (absl::Status s = Begin(call); !s.ok()) return s;
    Resource* r = Find(request.resource_id, call);
    if (r == nullptr) return absl::NotFoundError("no such resource");
    if (request.hdr.ctx_id != 0 && contexts.count(request.hdr.ctx_id) == 0) {
      Violation(absl::StrCat(call, " in context ", request.hdr.ctx_id));
    }
    log->push_back(request);
    Touch(*r);
    return absl::OkStatus();
  }

  absl::Status fail_status_;
  std::string fail_call_;
  uint32_t signalled_ = 0;
  int event_fd_ = -1;
};

}  // namespace vhost::gpu::testing

#endif  // VHOST_USER_GPU_FAKE_RENDERER_3D_H_
