// vhost-user-rng: a virtio entropy device for a guest, served over vhost-user.
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-rng/rng_device.h"

DEFINE_string(source, "",
              "File or character device to read entropy from (e.g. /dev/hwrng); default: the "
              "kernel's getrandom(2)");
DEFINE_uint64(max_bytes, 0, "Rate limit: at most this many bytes per --period-ms (0: no limit)");
DEFINE_uint32(period_ms, 1000, "Rate limit period in milliseconds");

namespace {

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice() {
  std::unique_ptr<vhost::EntropySource> source;
  if (FLAGS_source.empty()) {
    source = vhost::MakeGetrandomSource();
  } else {
    absl::StatusOr<std::unique_ptr<vhost::EntropySource>> file =
        vhost::MakeFileSource(FLAGS_source);
    if (!file.ok()) return file.status();
    source = *std::move(file);
  }
  absl::optional<vhost::RateLimiter> limiter;
  if (FLAGS_max_bytes > 0) {
    if (FLAGS_period_ms == 0) return absl::InvalidArgumentError("--period-ms must be above 0");
    limiter.emplace(FLAGS_max_bytes, absl::Milliseconds(FLAGS_period_ms));
  }
  return std::make_unique<vhost::RngDevice>(std::move(source), std::move(limiter));
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-rng";
  spec.description = "Serves a virtio-rng device (entropy) to a guest over vhost-user.";
  spec.backend_type = "rng";
  spec.create_device = CreateDevice;
  // getrandom and read are in the common allow-list already; the inflight region
  // (GET_INFLIGHT_FD) is a memfd sized with fallocate.
  spec.sandbox = vhost::SandboxPolicy().Allow("memfd_create").Allow("fallocate");
  return vhost::RunDaemon(argc, argv, spec);
}
