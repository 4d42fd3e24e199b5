// vhost-user-scsi: a virtio-scsi host adapter for a guest, served over vhost-user: many targets
// and logical units on image files, block devices or null disks.
#include "absl/strings/str_cat.h"
#include "common/block/file_disk.h"
#include "common/block/null_disk.h"
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-scsi/lun_spec.h"
#include "vhost-user-scsi/scsi_device.h"
#include "vhost-user-scsi/scsi_sandbox.h"

DEFINE_string(lun, "",
              "A logical unit, repeatable: file=PATH or null=BYTES, then optionally target=T "
              "(0-255), lun=L (0-16383), read-only=on, block-size=512|4096, serial=S, vendor=V, "
              "product=P, wwn=0xHEX; e.g. --lun file=disk.img,serial=D1 --lun file=b.img,target=1");
DEFINE_uint32(num_queues, 1,
              "Request queues, each served by its own thread (QEMU's num_queues may be fewer)");
DEFINE_string(direct, "auto",
              "O_DIRECT I/O: on, off, or auto (on for block devices, off for files)");
DEFINE_string(io_engine, "auto",
              "io_uring, sync (preadv/pwritev on the queue threads), or auto (io_uring where the "
              "kernel allows it)");

namespace {

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice() {
  using absl::InvalidArgumentError;
  if (FLAGS_lun.empty()) return InvalidArgumentError("--lun: at least one LUN is required");
  absl::StatusOr<std::vector<vhost::scsi::LunSpec>> specs = vhost::scsi::ParseLunSpecs(FLAGS_lun);
  if (!specs.ok()) return specs.status();
  if (FLAGS_num_queues < 1 || FLAGS_num_queues > 64) {
    return InvalidArgumentError("--num-queues must be in 1..64");
  }
  vhost::FileDiskOptions file;
  if (FLAGS_direct == "on") {
    file.direct = vhost::DirectIo::kOn;
  } else if (FLAGS_direct == "off") {
    file.direct = vhost::DirectIo::kOff;
  } else if (FLAGS_direct != "auto") {
    return InvalidArgumentError("--direct must be on, off or auto");
  }
  vhost::scsi::ScsiOptions options;
  options.num_queues = FLAGS_num_queues;
  if (FLAGS_io_engine == "sync") {
    options.io_uring = false;
  } else if (FLAGS_io_engine != "auto" && FLAGS_io_engine != "io_uring") {
    return InvalidArgumentError("--io-engine must be io_uring, sync or auto");
  }
  file.io_uring = options.io_uring;
  std::vector<vhost::scsi::UnitToServe> units;
  for (const vhost::scsi::LunSpec& spec : *specs) {
    vhost::scsi::UnitToServe unit;
    unit.spec = spec;
    if (spec.null_size > 0) {
      unit.disk = vhost::MakeNullDisk(spec.null_size);
    } else {
      vhost::FileDiskOptions opts = file;
      opts.read_only = spec.read_only;
      opts.alignment = spec.block_size;
      absl::StatusOr<std::unique_ptr<vhost::Disk>> disk = vhost::OpenFileDisk(spec.file, opts);
      if (!disk.ok()) {
        return absl::Status(disk.status().code(), absl::StrCat("--lun: ", disk.status().message()));
      }
      unit.disk = *std::move(disk);
    }
    units.push_back(std::move(unit));
  }
  absl::StatusOr<std::unique_ptr<vhost::scsi::ScsiDevice>> device =
      vhost::scsi::ScsiDevice::Create(std::move(units), options);
  if (!device.ok()) return device.status();
  return std::unique_ptr<vhost::VirtioDevice>(*std::move(device));
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-scsi";
  spec.description =
      "Serves a virtio-scsi adapter with many targets and logical units (image files, block "
      "devices or null disks) to a guest over vhost-user. SIGHUP re-reads every disk's size and "
      "tells the guest which grew.";
  spec.backend_type = "scsi";
  spec.repeatable_flags = {"lun"};
  spec.create_device = CreateDevice;
  spec.sandbox = vhost::scsi::ScsiSandboxPolicy();
  return vhost::RunDaemon(argc, argv, spec);
}
