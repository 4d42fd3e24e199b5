#include "vhost-user-gpu/virgl/virgl_renderer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

// A C header without extern "C" of its own.
extern "C" {
#include <virgl/virglrenderer.h>
}

// virglrenderer.h only declares it; the layout is virtio-gpu's box (six 32-bit fields).
struct virgl_box {
  uint32_t x, y, z;
  uint32_t w, h, d;
};

namespace vhost::gpu {
namespace {

std::atomic<bool> renderer_exists{false};

// virglrenderer's answers are 0 or an errno value (EINVAL for what it refuses).
absl::Status FromVirgl(int result, absl::string_view what) {
  if (result == 0) return absl::OkStatus();
  const int code = result < 0 ? -result : result;
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", strerror(code)));
}

virgl_box ToBox(const GpuBox& box) { return virgl_box{box.x, box.y, box.z, box.w, box.h, box.d}; }

}  // namespace

absl::StatusOr<std::unique_ptr<VirglRenderer>> VirglRenderer::Create(const Options& options) {
  UniqueFd node;
  if (!options.render_node.empty()) {
    node = UniqueFd(open(options.render_node.c_str(), O_RDWR | O_CLOEXEC));
    if (!node.valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--render-node=", options.render_node, ": ", strerror(errno)));
    }
  }
  if (renderer_exists.exchange(true)) {
    return absl::FailedPreconditionError("virglrenderer already runs in this process");
  }
  std::unique_ptr<VirglRenderer> renderer(new VirglRenderer(std::move(node)));
  absl::Status status = renderer->Start();
  if (!status.ok()) return status;
  return renderer;
}

VirglRenderer::VirglRenderer(UniqueFd render_node) : render_node_(std::move(render_node)) {}

absl::Status VirglRenderer::Start() {
  int result = 0;
  thread_.Run([&] {
    // Version 2: write_fence and get_drm_fd; virglrenderer makes its own EGL display.
    static virgl_renderer_callbacks callbacks = {};
    callbacks.version = 2;
    callbacks.write_fence = &VirglRenderer::WriteFence;
    callbacks.get_drm_fd = &VirglRenderer::GetDrmFd;
    int flags = VIRGL_RENDERER_USE_EGL | VIRGL_RENDERER_THREAD_SYNC;
    if (!render_node_.valid()) flags |= VIRGL_RENDERER_USE_SURFACELESS;
    result = virgl_renderer_init(this, flags, &callbacks);
    if (result != 0) return;
    poll_fd_ = virgl_renderer_get_poll_fd();
    for (uint32_t id : {kCapsetVirgl, kCapsetVirgl2}) {
      uint32_t max_version = 0, max_size = 0;
      virgl_renderer_get_cap_set(id, &max_version, &max_size);
      if (max_version != 0 && max_size != 0) capsets_.push_back(Capset{id, max_version, max_size});
    }
  });
  if (result != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("virglrenderer could not start (EGL/OpenGL; see the lines above): ", result));
  }
  started_ = true;
  LOG(INFO) << "virglrenderer: " << capsets_.size() << " capsets, fences "
            << (poll_fd_ >= 0 ? "through its sync thread" : "polled");
  return absl::OkStatus();
}

VirglRenderer::~VirglRenderer() {
  if (started_) {
    thread_.Run([this] {
      virgl_renderer_reset();
      virgl_renderer_cleanup(this);
    });
  }
  renderer_exists = false;
}

void VirglRenderer::WriteFence(void* cookie, uint32_t fence) {
  static_cast<VirglRenderer*>(cookie)->signalled_.store(fence, std::memory_order_release);
}

int VirglRenderer::GetDrmFd(void* cookie) {
  // virglrenderer closes what it gets: a duplicate, or -1 for none.
  const UniqueFd& node = static_cast<VirglRenderer*>(cookie)->render_node_;
  return node.valid() ? fcntl(node.get(), F_DUPFD_CLOEXEC, 0) : -1;
}

absl::StatusOr<std::vector<uint8_t>> VirglRenderer::CapsetData(uint32_t id, uint32_t version) {
  uint32_t max_size = 0;
  for (const Capset& c : capsets_) {
    if (c.id == id) max_size = c.max_size;
  }
  if (max_size == 0) return absl::NotFoundError(absl::StrCat("capset ", id));
  std::vector<uint8_t> data(max_size);
  thread_.Run([&] { virgl_renderer_fill_caps(id, version, data.data()); });
  return data;
}

absl::Status VirglRenderer::CreateContext(uint32_t ctx_id, absl::string_view debug_name) {
  int result = 0;
  const std::string name(debug_name);
  thread_.Run([&] { result = virgl_renderer_context_create(ctx_id, name.size(), name.c_str()); });
  return FromVirgl(result, absl::StrCat("context ", ctx_id));
}

void VirglRenderer::DestroyContext(uint32_t ctx_id) {
  thread_.Run([&] { virgl_renderer_context_destroy(ctx_id); });
}

void VirglRenderer::AttachResource(uint32_t ctx_id, uint32_t resource_id) {
  thread_.Run([&] { virgl_renderer_ctx_attach_resource(ctx_id, resource_id); });
}

void VirglRenderer::DetachResource(uint32_t ctx_id, uint32_t resource_id) {
  thread_.Run([&] { virgl_renderer_ctx_detach_resource(ctx_id, resource_id); });
}

absl::Status VirglRenderer::CreateResource(const ResourceCreate3d& r) {
  virgl_renderer_resource_create_args args = {};
  args.handle = r.resource_id;
  args.target = r.target;
  args.format = r.format;
  args.bind = r.bind;
  args.width = r.width;
  args.height = r.height;
  args.depth = r.depth;
  args.array_size = r.array_size;
  args.last_level = r.last_level;
  args.nr_samples = r.nr_samples;
  args.flags = r.flags;
  int result = 0;
  thread_.Run([&] { result = virgl_renderer_resource_create(&args, nullptr, 0); });
  return FromVirgl(result, absl::StrCat("RESOURCE_CREATE_3D ", r.resource_id));
}

void VirglRenderer::UnrefResource(uint32_t resource_id) {
  thread_.Run([&] {
    iovec* iov = nullptr;
    int count = 0;
    virgl_renderer_resource_detach_iov(resource_id, &iov, &count);
    virgl_renderer_resource_unref(resource_id);
  });
  backings_.erase(resource_id);
}

absl::Status VirglRenderer::AttachBacking(uint32_t resource_id, std::vector<iovec> backing) {
  std::vector<iovec>& kept = backings_[resource_id];
  kept = std::move(backing);
  int result = 0;
  thread_.Run([&] {
    result =
        virgl_renderer_resource_attach_iov(resource_id, kept.data(), static_cast<int>(kept.size()));
  });
  if (result != 0) backings_.erase(resource_id);
  return FromVirgl(result, absl::StrCat("backing of resource ", resource_id));
}

void VirglRenderer::DetachBacking(uint32_t resource_id) {
  thread_.Run([&] {
    iovec* iov = nullptr;
    int count = 0;
    virgl_renderer_resource_detach_iov(resource_id, &iov, &count);
  });
  backings_.erase(resource_id);
}

absl::Status VirglRenderer::TransferToHost(const Transfer3d& t) {
  virgl_box box = ToBox(t.box);
  int result = 0;
  thread_.Run([&] {
    result =
        virgl_renderer_transfer_write_iov(t.resource_id, t.hdr.ctx_id, static_cast<int>(t.level),
                                          t.stride, t.layer_stride, &box, t.offset, nullptr, 0);
  });
  return FromVirgl(result, absl::StrCat("TRANSFER_TO_HOST_3D of resource ", t.resource_id));
}

absl::Status VirglRenderer::TransferFromHost(const Transfer3d& t) {
  virgl_box box = ToBox(t.box);
  int result = 0;
  thread_.Run([&] {
    result = virgl_renderer_transfer_read_iov(t.resource_id, t.hdr.ctx_id, t.level, t.stride,
                                              t.layer_stride, &box, t.offset, nullptr, 0);
  });
  return FromVirgl(result, absl::StrCat("TRANSFER_FROM_HOST_3D of resource ", t.resource_id));
}

absl::Status VirglRenderer::Submit(uint32_t ctx_id, absl::Span<const uint8_t> commands) {
  submit_.assign(commands.begin(), commands.end());
  int result = 0;
  thread_.Run([&] {
    result = virgl_renderer_submit_cmd(submit_.data(), static_cast<int>(ctx_id),
                                       static_cast<int>(submit_.size() / 4));
  });
  return FromVirgl(result, absl::StrCat("SUBMIT_3D in context ", ctx_id));
}

absl::StatusOr<Renderer3d::ResourceInfo> VirglRenderer::Info(uint32_t resource_id) {
  virgl_renderer_resource_info info = {};
  int result = 0;
  thread_.Run([&] { result = virgl_renderer_resource_get_info(resource_id, &info); });
  absl::Status status = FromVirgl(result, absl::StrCat("resource ", resource_id));
  if (!status.ok()) return status;
  return ResourceInfo{info.width, info.height, info.virgl_format};
}

absl::Status VirglRenderer::ReadPixels(uint32_t resource_id, const GpuRect& rect,
                                       absl::Span<uint8_t> out) {
  if (out.size() != size_t{rect.width} * rect.height * 4) {
    return absl::InvalidArgumentError("pixel buffer of the wrong size");
  }
  // Through the renderer's own context (0), into our buffer: the guest's backing is untouched.
  virgl_box box{rect.x, rect.y, 0, rect.width, rect.height, 1};
  iovec iov{out.data(), out.size()};
  int result = 0;
  thread_.Run([&] {
    result =
        virgl_renderer_transfer_read_iov(resource_id, 0, 0, rect.width * 4, 0, &box, 0, &iov, 1);
  });
  return FromVirgl(result, absl::StrCat("reading resource ", resource_id));
}

absl::Status VirglRenderer::CreateFence(uint32_t fence) {
  int result = 0;
  thread_.Run([&] { result = virgl_renderer_create_fence(static_cast<int>(fence), 0); });
  return FromVirgl(result, absl::StrCat("fence ", fence));
}

uint32_t VirglRenderer::Poll() {
  thread_.Run([] { virgl_renderer_poll(); });
  return signalled_.load(std::memory_order_acquire);
}

void VirglRenderer::Reset() {
  thread_.Run([] { virgl_renderer_reset(); });
  backings_.clear();
  signalled_ = 0;
}

}  // namespace vhost::gpu
