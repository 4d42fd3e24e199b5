#include "vhost-user-gpu/resource_table.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "vhost-user-gpu/pixel_format.h"

namespace vhost::gpu {
namespace {

// Copies guest-physical [gpa, gpa + dst.size()) into `dst`; false if any byte is not in guest
// memory. Usually one region; a range that runs on into an adjacent region is gathered.
bool CopyFromGuest(const GuestMemory& memory, uint64_t gpa, absl::Span<uint8_t> dst) {
  if (dst.empty()) return true;
  if (const uint8_t* host = memory.TranslateGpa(gpa, dst.size())) {
    std::memcpy(dst.data(), host, dst.size());
    return true;
  }
  IovecList segments;
  if (!memory.AppendSegments(gpa, dst.size(), memory.regions().size(), &segments)) return false;
  size_t done = 0;
  for (const iovec& s : segments) {
    const size_t n = std::min(s.iov_len, dst.size() - done);
    std::memcpy(dst.data() + done, s.iov_base, n);
    done += n;
  }
  return done == dst.size();
}

bool InGuestMemory(const GuestMemory& memory, uint64_t gpa, uint64_t len) {
  if (len == 0 || memory.TranslateGpa(gpa, len) != nullptr) return true;
  IovecList segments;
  return memory.AppendSegments(gpa, len, memory.regions().size(), &segments);
}

std::string RectString(const GpuRect& r) {
  return absl::StrCat(r.width, "x", r.height, "+", r.x, "+", r.y);
}

}  // namespace

bool RectInside(const GpuRect& rect, uint32_t width, uint32_t height) {
  return uint64_t{rect.x} + rect.width <= width && uint64_t{rect.y} + rect.height <= height;
}

absl::Status CheckRectInside(const char* what, const GpuRect& r, uint32_t width, uint32_t height,
                             uint32_t id) {
  if (RectInside(r, width, height)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " ", r.width, "x", r.height, "+", r.x, "+",
                                                 r.y, " of the ", width, "x", height, " resource ",
                                                 id));
}

absl::optional<GpuRect> Intersect(const GpuRect& a, const GpuRect& b) {
  // Both lie within a resource: 64-bit ends cannot wrap.
  const uint64_t x0 = std::max(a.x, b.x);
  const uint64_t y0 = std::max(a.y, b.y);
  const uint64_t x1 = std::min(uint64_t{a.x} + a.width, uint64_t{b.x} + b.width);
  const uint64_t y1 = std::min(uint64_t{a.y} + a.height, uint64_t{b.y} + b.height);
  if (x1 <= x0 || y1 <= y0) return absl::nullopt;
  return GpuRect{static_cast<uint32_t>(x0), static_cast<uint32_t>(y0),
                 static_cast<uint32_t>(x1 - x0), static_cast<uint32_t>(y1 - y0)};
}

Resource2d* ResourceTable::FindMutable(uint32_t id) {
  auto it = resources_.find(id);
  return it == resources_.end() ? nullptr : &it->second;
}

const Resource2d* ResourceTable::Find(uint32_t id) const {
  auto it = resources_.find(id);
  return it == resources_.end() ? nullptr : &it->second;
}

absl::Status ResourceTable::Create(uint32_t id, uint32_t format, uint32_t width, uint32_t height) {
  if (id == 0) return absl::AlreadyExistsError("resource id 0 means no resource");
  if (resources_.count(id)) return absl::AlreadyExistsError(absl::StrCat("resource ", id));
  if (!IsSupportedFormat(format)) {
    return absl::InvalidArgumentError(absl::StrCat("format ", format, " is not a 2D format"));
  }
  if (width == 0 || height == 0) {
    return absl::InvalidArgumentError(absl::StrCat("a ", width, "x", height, " resource"));
  }
  // width * height * 4 in 64 bits, and a row's bytes in 32 (the display's stride).
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(uint64_t{width}, uint64_t{height}, &bytes) ||
      __builtin_mul_overflow(bytes, uint64_t{kBytesPerPixel}, &bytes) ||
      uint64_t{width} * kBytesPerPixel > UINT32_MAX) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a ", width, "x", height, " resource is beyond any size"));
  }
  if (resources_.size() >= limits_.max_resources) {
    return absl::ResourceExhaustedError(
        absl::StrCat("already ", resources_.size(), " resources (the most)"));
  }
  if (bytes > limits_.max_host_bytes - host_bytes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a ", width, "x", height, " resource (", bytes, " bytes) beyond the ",
                     limits_.max_host_bytes, " bytes of all resources (", host_bytes_, " used)"));
  }
  Resource2d& r = resources_[id];
  r.format = format;
  r.width = width;
  r.height = height;
  r.pixels.assign(bytes, 0);
  host_bytes_ += bytes;
  return absl::OkStatus();
}

absl::Status ResourceTable::Unref(uint32_t id) {
  auto it = resources_.find(id);
  if (it == resources_.end()) return absl::NotFoundError(absl::StrCat("resource ", id));
  host_bytes_ -= it->second.pixels.size();
  resources_.erase(it);
  return absl::OkStatus();
}

absl::Status ResourceTable::AttachBacking(uint32_t id, absl::Span<const BackingEntry> entries,
                                          const GuestMemory& memory) {
  Resource2d* r = FindMutable(id);
  if (r == nullptr) return absl::NotFoundError(absl::StrCat("resource ", id));
  if (r->attached) {
    return absl::FailedPreconditionError(absl::StrCat("resource ", id, " already has backing"));
  }
  if (entries.empty()) return absl::InvalidArgumentError("a backing of no entries");
  if (entries.size() > limits_.max_backing_entries) {
    return absl::ResourceExhaustedError(absl::StrCat(entries.size(), " backing entries (at most ",
                                                     limits_.max_backing_entries, ")"));
  }
  uint64_t total = 0;
  for (const BackingEntry& e : entries) {
    uint64_t end;
    if (__builtin_add_overflow(e.addr, uint64_t{e.length}, &end) ||
        !InGuestMemory(memory, e.addr, e.length)) {
      return absl::InvalidArgumentError(absl::StrCat("backing entry 0x", absl::Hex(e.addr), "+",
                                                     e.length, " is not in guest memory"));
    }
    total += e.length;  // at most 2^14 entries of < 2^32 bytes: no overflow
  }
  if (total > limits_.max_backing_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a backing of ", total, " bytes (at most ", limits_.max_backing_bytes, ")"));
  }
  r->backing.clear();
  r->starts.clear();
  uint64_t start = 0;
  for (const BackingEntry& e : entries) {
    if (e.length == 0) continue;  // adds nothing to the linear buffer
    r->backing.push_back(e);
    r->starts.push_back(start);
    start += e.length;
  }
  r->backing_bytes = total;
  r->attached = true;
  return absl::OkStatus();
}

absl::Status ResourceTable::DetachBacking(uint32_t id) {
  Resource2d* r = FindMutable(id);
  if (r == nullptr) return absl::NotFoundError(absl::StrCat("resource ", id));
  if (!r->attached) {
    return absl::FailedPreconditionError(absl::StrCat("resource ", id, " has no backing"));
  }
  r->backing.clear();
  r->backing.shrink_to_fit();
  r->starts.clear();
  r->starts.shrink_to_fit();
  r->backing_bytes = 0;
  r->attached = false;
  return absl::OkStatus();
}

absl::Status ResourceTable::ReadBacking(const Resource2d& r, uint64_t offset,
                                        absl::Span<uint8_t> dst, const GuestMemory& memory) const {
  // The entry holding `offset`: the last one starting at or before it.
  size_t i = std::upper_bound(r.starts.begin(), r.starts.end(), offset) - r.starts.begin();
  if (i == 0) return absl::InternalError("backing offset before the first entry");
  --i;
  size_t done = 0;
  while (done < dst.size()) {
    if (i >= r.backing.size()) return absl::InternalError("read past the backing");
    const BackingEntry& e = r.backing[i];
    const uint64_t within = offset + done - r.starts[i];
    const size_t n = std::min<uint64_t>(e.length - within, dst.size() - done);
    if (!CopyFromGuest(memory, e.addr + within, dst.subspan(done, n))) {
      return absl::FailedPreconditionError(
          absl::StrCat("backing entry 0x", absl::Hex(e.addr), "+", e.length, " left guest memory"));
    }
    done += n;
    ++i;
  }
  return absl::OkStatus();
}

absl::Status ResourceTable::TransferToHost(uint32_t id, const GpuRect& rect, uint64_t offset,
                                           const GuestMemory& memory) {
  Resource2d* r = FindMutable(id);
  if (r == nullptr) return absl::NotFoundError(absl::StrCat("resource ", id));
  if (!r->attached) {
    return absl::FailedPreconditionError(absl::StrCat("resource ", id, " has no backing"));
  }
  if (!RectInside(rect, r->width, r->height)) {
    return absl::InvalidArgumentError(absl::StrCat("rect ", RectString(rect), " beyond the ",
                                                   r->width, "x", r->height, " resource ", id));
  }
  if (rect.width == 0 || rect.height == 0) return absl::OkStatus();
  const uint64_t stride = r->stride();
  const uint64_t row_bytes = uint64_t{rect.width} * kBytesPerPixel;
  // The last byte read: offset + stride * (height - 1) + row_bytes, which must not pass the
  // backing's end (stride * (height - 1) < 2^64: both factors are below 2^32).
  uint64_t end;
  if (__builtin_add_overflow(offset, stride * (rect.height - 1) + row_bytes, &end) ||
      end > r->backing_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("rect ", RectString(rect), " at offset ", offset,
                                                   " with stride ", stride, " beyond the ",
                                                   r->backing_bytes, "-byte backing"));
  }
  uint8_t* dst = r->pixels.data() + uint64_t{rect.y} * stride + uint64_t{rect.x} * kBytesPerPixel;
  if (rect.x == 0 && rect.width == r->width) {
    // Whole rows: one run in the backing and in the host copy.
    return ReadBacking(*r, offset, absl::MakeSpan(dst, stride * rect.height), memory);
  }
  for (uint32_t row = 0; row < rect.height; ++row) {
    absl::Status status = ReadBacking(*r, offset + row * stride,
                                      absl::MakeSpan(dst + row * stride, row_bytes), memory);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

void ResourceTable::Clear() {
  resources_.clear();
  host_bytes_ = 0;
}

}  // namespace vhost::gpu
