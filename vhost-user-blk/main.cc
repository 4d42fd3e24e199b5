// vhost-user-blk: a virtio block device for a guest, served over vhost-user.
#include "absl/strings/str_cat.h"
#include "common/block/file_disk.h"
#include "common/block/null_disk.h"
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-blk/blk_device.h"
#include "vhost-user-blk/blk_sandbox.h"

DEFINE_string(blk_file, "", "Backing store: a regular file or a host block device");
DEFINE_uint64(null_size, 0,
              "Serve a null disk of this many bytes instead of --blk-file (reads return zeroes, "
              "writes are dropped; for benchmarks)");
DEFINE_bool(read_only, false, "Offer the disk read-only (VIRTIO_BLK_F_RO)");
DEFINE_string(serial, "", "Serial number the guest reads with GET_ID (at most 20 bytes)");
DEFINE_uint32(num_queues, 1, "Request queues (VIRTIO_BLK_F_MQ), each served by its own thread");
DEFINE_string(direct, "auto",
              "O_DIRECT I/O: on, off, or auto (on for block devices, off for files)");
DEFINE_string(io_engine, "auto",
              "io_uring, sync (preadv/pwritev on the queue threads), or auto (io_uring where the "
              "kernel allows it)");
DEFINE_uint32(logical_block_size, 512, "Logical block size in bytes (512, 1024, 2048 or 4096)");
DEFINE_uint32(physical_block_size, 4096, "Physical block size in bytes (>= logical)");

namespace {

bool PowerOfTwoIn(uint32_t v, uint32_t lo, uint32_t hi) {
  return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice() {
  using absl::InvalidArgumentError;
  if (FLAGS_blk_file.empty() == (FLAGS_null_size == 0)) {
    return InvalidArgumentError("exactly one of --blk-file and --null-size is required");
  }
  if (FLAGS_num_queues < 1 || FLAGS_num_queues > 64) {
    return InvalidArgumentError("--num-queues must be in 1..64");
  }
  if (FLAGS_serial.size() > 20) return InvalidArgumentError("--serial is longer than 20 bytes");
  if (!PowerOfTwoIn(FLAGS_logical_block_size, 512, 4096)) {
    return InvalidArgumentError("--logical-block-size must be 512, 1024, 2048 or 4096");
  }
  if (!PowerOfTwoIn(FLAGS_physical_block_size, FLAGS_logical_block_size, 1 << 20)) {
    return InvalidArgumentError(
        "--physical-block-size must be a power of two, at least --logical-block-size");
  }
  vhost::FileDiskOptions file;
  file.read_only = FLAGS_read_only;
  file.alignment = FLAGS_logical_block_size;
  if (FLAGS_direct == "on") {
    file.direct = vhost::DirectIo::kOn;
  } else if (FLAGS_direct == "off") {
    file.direct = vhost::DirectIo::kOff;
  } else if (FLAGS_direct != "auto") {
    return InvalidArgumentError("--direct must be on, off or auto");
  }
  if (FLAGS_io_engine == "sync") {
    file.io_uring = false;
  } else if (FLAGS_io_engine != "auto" && FLAGS_io_engine != "io_uring") {
    return InvalidArgumentError("--io-engine must be io_uring, sync or auto");
  }
  std::unique_ptr<vhost::Disk> disk;
  if (FLAGS_null_size > 0) {
    if (FLAGS_null_size % FLAGS_logical_block_size != 0) {
      return InvalidArgumentError("--null-size must be a multiple of --logical-block-size");
    }
    disk = vhost::MakeNullDisk(FLAGS_null_size);
  } else {
    absl::StatusOr<std::unique_ptr<vhost::Disk>> opened = vhost::OpenFileDisk(FLAGS_blk_file, file);
    if (!opened.ok()) {
      // The disk's errors name the path; ours name the flag too.
      const absl::Status& s = opened.status();
      if (absl::IsInvalidArgument(s))
        return InvalidArgumentError(absl::StrCat("--blk-file: ", s.message()));
      if (absl::IsFailedPrecondition(s))
        return InvalidArgumentError(absl::StrCat("--direct=on: ", s.message()));
      return s;
    }
    disk = *std::move(opened);
  }
  vhost::BlkOptions options;
  options.num_queues = FLAGS_num_queues;
  options.read_only = FLAGS_read_only;
  options.serial = FLAGS_serial;
  options.logical_block_size = FLAGS_logical_block_size;
  options.physical_block_size = FLAGS_physical_block_size;
  return std::make_unique<vhost::BlkDevice>(std::move(disk), options);
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-blk";
  spec.description =
      "Serves a virtio-blk disk (a file, a block device or a null disk) to a guest over "
      "vhost-user. SIGHUP re-reads the backing file's size and tells the guest.";
  spec.backend_type = "block";
  spec.capability_features = {"read-only", "blk-file"};
  // QEMU's contrib vhost-user-blk option letters.
  spec.short_names = {{'b', "blk_file"}, {'s', "socket_path"}, {'f', "fd"}, {'r', "read_only"}};
  spec.create_device = CreateDevice;
  spec.sandbox = vhost::BlkSandboxPolicy();
  return vhost::RunDaemon(argc, argv, spec);
}
