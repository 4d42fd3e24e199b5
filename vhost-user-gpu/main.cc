// vhost-user-gpu: a virtio-gpu for a guest, shown through QEMU's vhost-user-gpu display
// protocol. Built twice from this file:
//   vhost-user-gpu        static, 2D, needs no host GPU or library; with --virgl it hands
//                         over (exec, same arguments) to the 3D build installed beside it;
//   vhost-user-gpu-virgl  VHOST_USER_GPU_VIRGL: linked dynamically, because virglrenderer
//                         loads Mesa's drivers with dlopen, which a static program cannot.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-gpu/display/display_channel.h"
#include "vhost-user-gpu/gpu_device.h"
#ifdef VHOST_USER_GPU_VIRGL
#include "vhost-user-gpu/virgl/virgl_renderer.h"
#include "vhost-user-gpu/virgl/virgl_sandbox.h"
#endif

DEFINE_uint32(outputs, 1,
              "Scanouts (displays) the guest gets, 1 to 16; QEMU's max_outputs must match");
DEFINE_string(resolution, "1280x800",
              "Size each output offers the guest when the display end does not say (WIDTHxHEIGHT)");
DEFINE_uint32(max_resources, 1024, "At most this many resources per guest");
DEFINE_uint32(max_memory_mb, 256,
              "At most this many MiB of host memory for the guest's resources, all together");
DEFINE_bool(virgl, false,
            "3D (VIRTIO_GPU_F_VIRGL) through virglrenderer, run by vhost-user-gpu-virgl");
DEFINE_string(render_node, "",
              "DRM render node 3D renders on (with --virgl; default: EGL surfaceless, which "
              "takes a GPU Mesa finds or llvmpipe on the CPU)");
DEFINE_uint32(max_contexts, 256, "At most this many 3D rendering contexts per guest");

namespace {

// The display channel QEMU hands over, replaced when it hands over another (a new front end).
class DisplayHolder {
 public:
  absl::Status Take(vhost::gpu::GpuDevice* device, vhost::UniqueFd socket) {
    std::lock_guard<std::mutex> lock(mu_);
    auto channel = std::make_unique<vhost::gpu::display::DisplayChannel>(std::move(socket));
    device->SetSink(channel.get());  // the old channel is unused once this returns
    channel_ = std::move(channel);
    return absl::OkStatus();
  }

 private:
  std::mutex mu_;
  std::unique_ptr<vhost::gpu::display::DisplayChannel> channel_;
};

#ifndef VHOST_USER_GPU_VIRGL
constexpr char kVirglProgram[] = "vhost-user-gpu-virgl";

// The 3D build beside this program (/proc/self/exe's folder).
std::string VirglProgramPath() {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  const std::string path = n > 0 ? std::string(exe, n) : std::string();
  const size_t slash = path.rfind('/');
  return (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/" +
         kVirglProgram;
}

// Whether the command line turns --virgl on (gflags' forms: --virgl, --virgl=true, -virgl,
// ...; the last one given counts). Read before the flags are parsed, to hand over early.
bool WantsVirgl(int argc, char** argv) {
  bool virgl = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    arg.erase(0, arg.find_first_not_of('-'));
    if (arg == "virgl") {
      virgl = true;
    } else if (arg == "novirgl") {
      virgl = false;
    } else if (arg.rfind("virgl=", 0) == 0) {
      const std::string value = arg.substr(6);
      virgl = value == "true" || value == "1" || value == "yes" || value == "t" || value == "y";
    }
  }
  return virgl;
}
#endif

#ifdef VHOST_USER_GPU_VIRGL
// Made once, before the device; outlives it (the process's virglrenderer).
std::unique_ptr<vhost::gpu::VirglRenderer>& Renderer() {
  static auto* renderer = new std::unique_ptr<vhost::gpu::VirglRenderer>();
  return *renderer;
}
#endif

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice() {
  using absl::InvalidArgumentError;
  if (!FLAGS_render_node.empty() && !FLAGS_virgl) {
    return InvalidArgumentError("--render-node is for 3D: give --virgl too");
  }
  vhost::gpu::GpuOptions options;
  if (FLAGS_max_contexts == 0) return InvalidArgumentError("--max-contexts must be above 0");
  options.max_contexts = FLAGS_max_contexts;
  options.outputs = FLAGS_outputs;
  const std::vector<std::string> size = absl::StrSplit(FLAGS_resolution, 'x');
  if (size.size() != 2 || !absl::SimpleAtoi(size[0], &options.width) ||
      !absl::SimpleAtoi(size[1], &options.height)) {
    return InvalidArgumentError("--resolution must be WIDTHxHEIGHT, e.g. 1920x1080");
  }
  if (FLAGS_max_resources == 0) return InvalidArgumentError("--max-resources must be above 0");
  if (FLAGS_max_memory_mb == 0) return InvalidArgumentError("--max-memory-mb must be above 0");
  options.limits.max_resources = FLAGS_max_resources;
  options.limits.max_host_bytes = uint64_t{FLAGS_max_memory_mb} << 20;
  if (FLAGS_virgl) {
#ifdef VHOST_USER_GPU_VIRGL
    // Mesa's on-disk shader cache: files the sandbox would refuse, for no gain in a daemon.
    setenv("MESA_SHADER_CACHE_DISABLE", "true", /*overwrite=*/0);
    absl::StatusOr<std::unique_ptr<vhost::gpu::VirglRenderer>> renderer =
        vhost::gpu::VirglRenderer::Create({FLAGS_render_node});
    if (!renderer.ok()) return renderer.status();
    Renderer() = *std::move(renderer);
    options.renderer = Renderer().get();
#else
    return absl::FailedPreconditionError("--virgl: this build is 2D only");  // handed over
#endif
  }
  absl::StatusOr<std::unique_ptr<vhost::gpu::GpuDevice>> device =
      vhost::gpu::GpuDevice::Create(options, nullptr);
  if (!device.ok()) {
    if (absl::IsInvalidArgument(device.status())) {
      return InvalidArgumentError(
          absl::StrCat("--outputs/--resolution: ", device.status().message()));
    }
    return device.status();
  }
  vhost::gpu::GpuDevice* raw = device->get();
  auto holder = std::make_shared<DisplayHolder>();
  raw->set_display_socket_handler(
      [raw, holder](vhost::UniqueFd socket) { return holder->Take(raw, std::move(socket)); });
  return std::unique_ptr<vhost::VirtioDevice>(*std::move(device));
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-gpu";
  spec.description =
      "Serves a virtio-gpu device (2D, and 3D with --virgl) to a guest over vhost-user, shown "
      "through the front end's vhost-user-gpu display socket.";
  spec.backend_type = "gpu";
  spec.create_device = CreateDevice;
#ifdef VHOST_USER_GPU_VIRGL
  spec.capability_features = {"render-node", "virgl"};
  bool render_node = false;
  for (int i = 1; i < argc; ++i) render_node |= std::strstr(argv[i], "render-node") != nullptr;
  spec.sandbox = vhost::gpu::VirglSandboxPolicy(render_node);
#else
  const std::string virgl_program = VirglProgramPath();
  const bool has_virgl = access(virgl_program.c_str(), X_OK) == 0;
  // libvirt passes --virgl and --render-node only to a daemon that lists them.
  if (has_virgl) spec.capability_features = {"render-node", "virgl"};
  if (WantsVirgl(argc, argv)) {
    if (!has_virgl) {
      std::fprintf(stderr, "vhost-user-gpu: --virgl: 3D needs %s, which is not installed\n",
                   virgl_program.c_str());
      return 1;
    }
    std::vector<char*> args(argv, argv + argc);
    args[0] = const_cast<char*>(virgl_program.c_str());
    args.push_back(nullptr);
    execv(virgl_program.c_str(), args.data());
    std::fprintf(stderr, "vhost-user-gpu: --virgl: cannot run %s: %s\n", virgl_program.c_str(),
                 std::strerror(errno));
    return 1;
  }
#endif
  return vhost::RunDaemon(argc, argv, spec);
}
