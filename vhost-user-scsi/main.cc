// vhost-user-scsi: a virtio-scsi host adapter for a guest, served over vhost-user: many targets
// and logical units on image files, block devices or null disks.
#include <fcntl.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/block/file_disk.h"
#include "common/block/null_disk.h"
#include "common/runtime/control_socket.h"
#include "common/runtime/daemon.h"
#include "common/runtime/flags.h"
#include "gflags/gflags.h"
#include "vhost-user-scsi/lun_spec.h"
#include "vhost-user-scsi/scsi_device.h"
#include "vhost-user-scsi/scsi_sandbox.h"
#include "vhost-user-scsi/state_file.h"

DEFINE_string(lun, "",
              "A logical unit, repeatable: file=PATH or null=BYTES, then optionally target=T "
              "(0-255), lun=L (0-16383), read-only=on, block-size=512|4096, serial=S, vendor=V, "
              "product=P, wwn=0xHEX; e.g. --lun file=disk.img,serial=D1 --lun file=b.img,target=1");
DEFINE_uint32(
    num_queues, 0,
    "Request queues, each served by its own thread when the guest uses it (QEMU's "
    "num_queues, one per vCPU by default, may be fewer); 0: one per host CPU, at most 64");
DEFINE_string(direct, "auto",
              "O_DIRECT I/O: on, off, or auto (on for block devices, off for files)");
DEFINE_string(control_socket, "",
              "Serve LUN hotplug here: add, remove, list (see --hotplug; the manual says how)");
DEFINE_string(hotplug, "",
              "Client mode: send one command to the daemon at --control-socket and exit: \"add "
              "SPEC\" (opening SPEC's file= here and passing it on), \"remove target=T,lun=L\" "
              "or \"list\"");
DEFINE_string(io_engine, "auto",
              "io_uring, sync (preadv/pwritev on the queue threads), or auto (io_uring where the "
              "kernel allows it)");

namespace {

// Calls into the device from a thread of its own: stopped (before_devices_destroyed) before
// the device goes.
std::unique_ptr<vhost::ControlSocket> control;

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice() {
  using absl::InvalidArgumentError;
  if (FLAGS_lun.empty()) return InvalidArgumentError("--lun: at least one LUN is required");
  absl::StatusOr<std::vector<vhost::scsi::LunSpec>> specs = vhost::scsi::ParseLunSpecs(FLAGS_lun);
  if (!specs.ok()) return specs.status();
  if (FLAGS_num_queues > 64) return InvalidArgumentError("--num-queues must be in 0..64");
  uint32_t num_queues = FLAGS_num_queues;
  if (num_queues == 0) {
    // As many as QEMU asks by default for a guest with as many vCPUs as this host has CPUs: a
    // queue the guest does not use costs a ring and no thread.
    cpu_set_t cpus;
    const int count = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    num_queues = std::clamp(count, 1, 64);
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
  options.num_queues = num_queues;
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
    if (!spec.pr_state.empty()) {
      absl::StatusOr<std::unique_ptr<vhost::scsi::StateFile>> state =
          vhost::scsi::StateFile::Open(spec.pr_state);
      if (!state.ok()) {
        return InvalidArgumentError(absl::StrCat("--lun: pr-state=", state.status().message()));
      }
      unit.reservations = *std::move(state);
    }
    units.push_back(std::move(unit));
  }
  absl::StatusOr<std::unique_ptr<vhost::scsi::ScsiDevice>> device =
      vhost::scsi::ScsiDevice::Create(std::move(units), options);
  if (!device.ok()) return device.status();
  if (!FLAGS_control_socket.empty()) {
    vhost::scsi::ScsiDevice* served = device->get();
    absl::StatusOr<std::unique_ptr<vhost::ControlSocket>> socket = vhost::ControlSocket::Start(
        FLAGS_control_socket, "--control-socket",
        [served](absl::string_view line, std::vector<vhost::UniqueFd>& fds) {
          return served->Control(line, fds);
        });
    if (!socket.ok()) return socket.status();
    control = *std::move(socket);
  }
  return std::unique_ptr<vhost::VirtioDevice>(*std::move(device));
}

// --hotplug: the client side of the control socket. A LUN's image is opened here, by the user
// running this, and its descriptor passed on: the sandboxed daemon opens no files.
int SendHotplugCommand() {
  if (FLAGS_control_socket.empty()) {
    vhost::ExitWithUsageError("vhost-user-scsi", "--hotplug needs --control-socket");
  }
  std::vector<vhost::UniqueFd> fds;
  absl::string_view command = FLAGS_hotplug;
  if (absl::ConsumePrefix(&command, "add ")) {
    absl::StatusOr<vhost::scsi::LunSpec> spec = vhost::scsi::ParseLunSpec(command, {});
    if (!spec.ok())
      vhost::ExitWithUsageError("vhost-user-scsi", std::string(spec.status().message()));
    if (!spec->file.empty()) {
      const int flags = (spec->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
      fds.emplace_back(open(spec->file.c_str(), flags));
      if (!fds.back()) {
        std::fprintf(stderr, "vhost-user-scsi: %s: %s\n", spec->file.c_str(), strerror(errno));
        return 1;
      }
      if (FLAGS_direct == "on") {
        fds.emplace_back(open(spec->file.c_str(), flags | O_DIRECT));
        if (!fds.back()) {
          std::fprintf(stderr, "vhost-user-scsi: %s: O_DIRECT: %s\n", spec->file.c_str(),
                       strerror(errno));
          return 1;
        }
      }
    }
  }
  absl::StatusOr<std::string> answer =
      vhost::SendControlLine(FLAGS_control_socket, FLAGS_hotplug, fds);
  if (!answer.ok()) {
    std::fprintf(stderr, "vhost-user-scsi: %s\n", std::string(answer.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n", answer->c_str());
  return absl::StartsWith(*answer, "ok") ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (absl::StartsWith(argv[i], "--hotplug")) {
      if (absl::Status s = vhost::ParseFlags(argc, argv); !s.ok()) {
        vhost::ExitWithUsageError("vhost-user-scsi", std::string(s.message()));
      }
      return SendHotplugCommand();
    }
  }
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
  spec.before_devices_destroyed = [] { control.reset(); };
  return vhost::RunDaemon(argc, argv, spec);
}
