// Renderer3d on virglrenderer: the guest's Gallium command streams (Mesa's virgl driver) run
// on the host's OpenGL through EGL. With no render node, EGL is surfaceless and Mesa picks a
// GPU if it finds one or llvmpipe on the CPU, so 3D works on a machine without a GPU.
//
// virglrenderer keeps one global state per process: one VirglRenderer at a time. Every call
// into it runs on the renderer's own thread (render_thread.h). Fences are on virglrenderer's
// global timeline, waited for by its sync thread, which makes PollFd readable.
#ifndef VHOST_USER_GPU_VIRGL_VIRGL_RENDERER_H_
#define VHOST_USER_GPU_VIRGL_VIRGL_RENDERER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "vhost-user-gpu/renderer_3d.h"
#include "vhost-user-gpu/virgl/render_thread.h"

namespace vhost::gpu {

class VirglRenderer : public Renderer3d {
 public:
  struct Options {
    // A DRM render node to render on ("": EGL surfaceless, whatever Mesa finds).
    std::string render_node;
  };
  // Starts virglrenderer (EGL, the GL context, its sync thread). InvalidArgumentError for a
  // render node that cannot be opened; FailedPreconditionError when EGL/GL cannot start or a
  // renderer already exists.
  static absl::StatusOr<std::unique_ptr<VirglRenderer>> Create(const Options& options);
  ~VirglRenderer() override;

  std::vector<Capset> Capsets() const override { return capsets_; }
  absl::StatusOr<std::vector<uint8_t>> CapsetData(uint32_t id, uint32_t version) override;
  absl::Status CreateContext(uint32_t ctx_id, absl::string_view debug_name) override;
  void DestroyContext(uint32_t ctx_id) override;
  void AttachResource(uint32_t ctx_id, uint32_t resource_id) override;
  void DetachResource(uint32_t ctx_id, uint32_t resource_id) override;
  absl::Status CreateResource(const ResourceCreate3d& request) override;
  void UnrefResource(uint32_t resource_id) override;
  absl::Status AttachBacking(uint32_t resource_id, std::vector<iovec> backing) override;
  void DetachBacking(uint32_t resource_id) override;
  absl::Status TransferToHost(const Transfer3d& request) override;
  absl::Status TransferFromHost(const Transfer3d& request) override;
  absl::Status Submit(uint32_t ctx_id, absl::Span<const uint8_t> commands) override;
  absl::StatusOr<ResourceInfo> Info(uint32_t resource_id) override;
  absl::Status ReadPixels(uint32_t resource_id, const GpuRect& rect,
                          absl::Span<uint8_t> out) override;
  absl::Status CreateFence(uint32_t fence) override;
  uint32_t Poll() override;
  int PollFd() const override { return poll_fd_; }
  void Reset() override;

 private:
  explicit VirglRenderer(UniqueFd render_node);
  absl::Status Start();
  // virglrenderer's callbacks (cookie: this).
  static void WriteFence(void* cookie, uint32_t fence);
  static int GetDrmFd(void* cookie);

  UniqueFd render_node_;
  std::vector<Capset> capsets_;
  int poll_fd_ = -1;  // virglrenderer's, valid while it runs
  bool started_ = false;
  std::atomic<uint32_t> signalled_{0};
  // The iovec arrays virglrenderer points at (it keeps the pointer, not a copy), by resource.
  std::map<uint32_t, std::vector<iovec>> backings_;
  std::vector<uint8_t> submit_;  // scratch: virglrenderer takes a mutable command buffer
  RenderThread thread_;          // last: its calls end before the members above go
};

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_VIRGL_VIRGL_RENDERER_H_
