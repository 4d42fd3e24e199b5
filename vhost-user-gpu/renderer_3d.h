// The 3D half of the device (VIRTIO_GPU_F_VIRGL) as GpuDevice sees it: rendering contexts, 3D
// resources and the command streams the guest's GL driver submits, run by a host renderer
// (virgl/virgl_renderer.h, on virglrenderer; tests use a fake).
//
// Who checks what: GpuDevice checks everything it can see (ids, caps, sizes, rects, backing
// inside guest memory) before a call reaches the renderer; the renderer checks the command
// streams and the transfer boxes against its resources, and answers an error for what it
// refuses. Calls come from one queue thread at a time (GpuDevice's mutex held).
#ifndef VHOST_USER_GPU_RENDERER_3D_H_
#define VHOST_USER_GPU_RENDERER_3D_H_

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu {

class Renderer3d {
 public:
  struct Capset {
    uint32_t id;  // kCapsetVirgl, kCapsetVirgl2
    uint32_t max_version;
    uint32_t max_size;  // bytes of its data
  };
  struct ResourceInfo {
    uint32_t width = 0;
    uint32_t height = 0;
    uint32_t format = 0;  // the virgl/virtio-gpu format number
  };

  virtual ~Renderer3d() = default;

  // What the guest may ask for (fixed once the renderer exists).
  virtual std::vector<Capset> Capsets() const = 0;
  // A capset's data, `version` at most its max_version (checked by the caller).
  virtual absl::StatusOr<std::vector<uint8_t>> CapsetData(uint32_t id, uint32_t version) = 0;

  virtual absl::Status CreateContext(uint32_t ctx_id, absl::string_view debug_name) = 0;
  virtual void DestroyContext(uint32_t ctx_id) = 0;
  virtual void AttachResource(uint32_t ctx_id, uint32_t resource_id) = 0;
  virtual void DetachResource(uint32_t ctx_id, uint32_t resource_id) = 0;

  virtual absl::Status CreateResource(const ResourceCreate3d& request) = 0;
  virtual void UnrefResource(uint32_t resource_id) = 0;
  // `backing`: host memory (guest pages, mapped for as long as the caller keeps them).
  virtual absl::Status AttachBacking(uint32_t resource_id, std::vector<iovec> backing) = 0;
  virtual void DetachBacking(uint32_t resource_id) = 0;
  virtual absl::Status TransferToHost(const Transfer3d& request) = 0;
  virtual absl::Status TransferFromHost(const Transfer3d& request) = 0;
  // Runs `commands` (whole 32-bit words) in context `ctx_id`.
  virtual absl::Status Submit(uint32_t ctx_id, absl::Span<const uint8_t> commands) = 0;

  virtual absl::StatusOr<ResourceInfo> Info(uint32_t resource_id) = 0;
  // The pixels of `rect` (inside the resource, 4 bytes each) as the guest sees them, top row
  // first, rows rect.width * 4 bytes apart, into `out` (that many bytes): what a scanout shows.
  virtual absl::Status ReadPixels(uint32_t resource_id, const GpuRect& rect,
                                  absl::Span<uint8_t> out) = 0;

  // Fences: `fence` (the caller's, increasing) signals once everything submitted before it is
  // done. Poll retires what finished and returns the last fence signalled (0: none yet).
  virtual absl::Status CreateFence(uint32_t fence) = 0;
  virtual uint32_t Poll() = 0;
  // Readable when Poll may have something new; -1 if the caller must poll on a timer.
  virtual int PollFd() const = 0;

  // Every context and resource gone (device reset, front end gone).
  virtual void Reset() = 0;
};

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_RENDERER_3D_H_
