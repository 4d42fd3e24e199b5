// A regular file or a host block device as a disk, with io_uring queues that read and write
// straight between the file and the guest's buffers.
#ifndef VHOST_USER_BLK_FILE_DISK_H_
#define VHOST_USER_BLK_FILE_DISK_H_

#include <string>

#include "vhost-user-blk/disk.h"

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

// Opens the backing store. InvalidArgumentError (naming --blk-file) when it cannot be used.
absl::StatusOr<std::unique_ptr<Disk>> OpenFileDisk(const std::string& path,
                                                   const FileDiskOptions& options);

}  // namespace vhost

#endif  // VHOST_USER_BLK_FILE_DISK_H_
