// The guest's 2D resources: each a host copy of an image (format, width x height, 4 bytes a
// pixel) and, once attached, its backing: guest-physical (addr, length) entries that together
// form one linear buffer. TRANSFER_TO_HOST_2D copies a rectangle from the backing into the host
// copy, translating the guest addresses at that moment through the memory table it is given
// (never keeping host pointers: the front end may change the table between commands).
//
// Everything here comes from the guest and is checked: ids, formats, sizes (host bytes counted
// in 64 bits), each rectangle against the resource, each offset and row against the backing,
// backing entries against guest memory. Totals are capped (Limits), so a guest cannot make the
// daemon allocate without bound. Errors say which check failed through their code, which the
// device turns into a virtio-gpu response:
//   NotFound            no resource with that id                -> ERR_INVALID_RESOURCE_ID
//   AlreadyExists       id 0 or an id in use, at creation       -> ERR_INVALID_RESOURCE_ID
//   InvalidArgument     format, size, rect, offset, entries     -> ERR_INVALID_PARAMETER
//   ResourceExhausted   a cap of Limits                         -> ERR_OUT_OF_MEMORY
//   FailedPrecondition  backing missing / already attached, or  -> ERR_UNSPEC
//                       no longer in guest memory at a transfer
//
// Not thread-safe: the device guards it.
#ifndef VHOST_USER_GPU_RESOURCE_TABLE_H_
#define VHOST_USER_GPU_RESOURCE_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "common/virtio/guest_memory.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu {

// One backing entry as the guest gave it.
struct BackingEntry {
  uint64_t addr = 0;  // guest-physical
  uint32_t length = 0;
};

struct Resource2d {
  uint32_t format = 0;
  uint32_t width = 0;
  uint32_t height = 0;
  bool attached = false;
  std::vector<BackingEntry> backing;  // non-empty entries, in order
  std::vector<uint64_t> starts;       // offset of each entry in the linear backing
  uint64_t backing_bytes = 0;
  std::vector<uint8_t> pixels;  // height rows of stride() bytes, in `format`

  uint32_t stride() const { return width * 4; }
};

// Whether `rect` lies within a width x height image (in 64 bits: no wrap-around).
bool RectInside(const GpuRect& rect, uint32_t width, uint32_t height);
// InvalidArgumentError unless `rect` lies within resource `id` (width x height); `what` names
// the rect in the message ("flush rect").
absl::Status CheckRectInside(const char* what, const GpuRect& rect, uint32_t width, uint32_t height,
                             uint32_t id);
// The part of `a` that `b` also covers, both within one resource; nullopt if none.
absl::optional<GpuRect> Intersect(const GpuRect& a, const GpuRect& b);

class ResourceTable {
 public:
  struct Limits {
    uint32_t max_resources = 1024;
    uint64_t max_host_bytes = uint64_t{256} << 20;   // host copies, all resources together
    uint32_t max_backing_entries = 16384;            // per resource
    uint64_t max_backing_bytes = uint64_t{1} << 30;  // per resource, the entries' total length
  };

  explicit ResourceTable(const Limits& limits) : limits_(limits) {}

  // RESOURCE_CREATE_2D: a zeroed host copy of width * height * 4 bytes.
  absl::Status Create(uint32_t id, uint32_t format, uint32_t width, uint32_t height);
  // RESOURCE_UNREF: the resource and its host bytes are gone.
  absl::Status Unref(uint32_t id);
  // RESOURCE_ATTACH_BACKING: each entry must lie in `memory` now (it is translated again at
  // every transfer); at least one and at most max_backing_entries entries, at most
  // max_backing_bytes together.
  absl::Status AttachBacking(uint32_t id, absl::Span<const BackingEntry> entries,
                             const GuestMemory& memory);
  // RESOURCE_DETACH_BACKING: the host copy stays.
  absl::Status DetachBacking(uint32_t id);
  // TRANSFER_TO_HOST_2D: copies `rect` (which must lie within the resource) from the backing,
  // whose row y of the rect starts at offset + y * stride(), into the host copy. An empty rect
  // copies nothing. On an error nothing is copied, except when the backing has left guest
  // memory midway (FailedPrecondition): the rows copied until then stay.
  absl::Status TransferToHost(uint32_t id, const GpuRect& rect, uint64_t offset,
                              const GuestMemory& memory);

  // The resource, or null; valid until the next call that changes the table.
  const Resource2d* Find(uint32_t id) const;
  // Frees every resource.
  void Clear();

  size_t size() const { return resources_.size(); }
  uint64_t host_bytes() const { return host_bytes_; }
  const Limits& limits() const { return limits_; }

 private:
  Resource2d* FindMutable(uint32_t id);
  // Copies backing bytes [offset, offset + dst.size()) of `resource` into `dst`.
  absl::Status ReadBacking(const Resource2d& resource, uint64_t offset, absl::Span<uint8_t> dst,
                           const GuestMemory& memory) const;

  const Limits limits_;
  std::map<uint32_t, Resource2d> resources_;
  uint64_t host_bytes_ = 0;
};

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_RESOURCE_TABLE_H_
