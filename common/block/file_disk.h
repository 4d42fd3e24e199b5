// A regular file or a host block device as a disk, with io_uring queues that read and write
// straight between the file and the guest's buffers.
#ifndef COMMON_BLOCK_FILE_DISK_H_
#define COMMON_BLOCK_FILE_DISK_H_

#include <string>

#include "common/block/disk.h"

namespace vhost {

enum class DirectIo { kAuto, kOn, kOff };

struct FileDiskOptions {
  bool read_only = false;
  // O_DIRECT: bypass the host page cache. kAuto: on for block devices, off for files. Requests
  // whose buffers are not aligned for O_DIRECT go through a buffered descriptor instead.
  DirectIo direct = DirectIo::kAuto;
  uint32_t alignment = 512;  // O_DIRECT alignment of offsets, lengths and buffers
  // io_uring queues, falling back to synchronous I/O on the worker threads where the kernel (or
  // a container's seccomp profile) refuses io_uring; or always synchronous.
  bool io_uring = true;
};

// Opens the backing store. InvalidArgumentError (naming the path; the caller adds its flag) when
// it cannot be used; FailedPreconditionError when DirectIo::kOn and O_DIRECT is refused.
absl::StatusOr<std::unique_ptr<Disk>> OpenFileDisk(const std::string& path,
                                                   const FileDiskOptions& options);

}  // namespace vhost

#endif  // COMMON_BLOCK_FILE_DISK_H_
