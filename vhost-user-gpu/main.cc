// vhost-user-gpu: a virtio-gpu (2D) for a guest, shown through QEMU's vhost-user-gpu display
// protocol, with no host GPU needed.
#include <cstdio>
#include <memory>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-gpu/display/display_channel.h"
#include "vhost-user-gpu/gpu_device.h"

DEFINE_uint32(outputs, 1,
              "Scanouts (displays) the guest gets, 1 to 16; QEMU's max_outputs must match");
DEFINE_string(resolution, "1280x800",
              "Size each output offers the guest when the display end does not say (WIDTHxHEIGHT)");
DEFINE_uint32(max_resources, 1024, "At most this many resources per guest");
DEFINE_uint32(max_memory_mb, 256,
              "At most this many MiB of host memory for the guest's resources, all together");
DEFINE_bool(virgl, false, "3D through virglrenderer (not available in this build)");
DEFINE_string(render_node, "", "DRM render node for 3D (not available in this build)");

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

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice() {
  using absl::InvalidArgumentError;
  if (FLAGS_virgl || !FLAGS_render_node.empty()) {
    return InvalidArgumentError(
        "--virgl/--render-node: 3D is not available in this build; the device is 2D only");
  }
  vhost::gpu::GpuOptions options;
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
      "Serves a virtio-gpu device (2D) to a guest over vhost-user, shown through the front "
      "end's vhost-user-gpu display socket.";
  spec.backend_type = "gpu";
  spec.create_device = CreateDevice;
  return vhost::RunDaemon(argc, argv, spec);
}
