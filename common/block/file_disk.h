// A regular file or a host block device as a disk, read and written straight between the file
// and the guest's buffers on io_uring (or synchronously where the ring is not on io_uring).
#ifndef COMMON_BLOCK_FILE_DISK_H_
#define COMMON_BLOCK_FILE_DISK_H_

#include <string>

#include "common/base/unique_fd.h"
#include "common/block/disk.h"

namespace vhost {

enum class DirectIo { kAuto, kOn, kOff };

struct FileDiskOptions {
  bool read_only = false;
  // O_DIRECT: bypass the host page cache. kAuto: on for block devices, off for files. Requests
  // whose buffers are not aligned for O_DIRECT go through a buffered descriptor instead.
  DirectIo direct = DirectIo::kAuto;
  uint32_t alignment = 512;  // O_DIRECT alignment of offsets, lengths and buffers
  // NewRing's rings on io_uring, falling back to synchronous I/O on the worker threads where the
  // kernel (or a container's seccomp profile) refuses io_uring; or always synchronous. Its
  // queues follow the ring they are made on, whichever made it.
  bool io_uring = true;
};

// Opens the backing store. InvalidArgumentError (naming the path; the caller adds its flag) when
// it cannot be used; FailedPreconditionError when DirectIo::kOn and O_DIRECT is refused.
absl::StatusOr<std::unique_ptr<Disk>> OpenFileDisk(const std::string& path,
                                                   const FileDiskOptions& options);

// The same on descriptors opened elsewhere (a LUN added at run time by a daemon that may no
// longer open files): `fd` open for reading (and writing unless read_only), `direct_fd` (or
// none) the same file with O_DIRECT. Each is checked; `name` only names it in errors.
// options.direct is not used: O_DIRECT is what `direct_fd` brings.
absl::StatusOr<std::unique_ptr<Disk>> FileDiskFromFds(UniqueFd fd, UniqueFd direct_fd,
                                                      const std::string& name,
                                                      const FileDiskOptions& options);

}  // namespace vhost

#endif  // COMMON_BLOCK_FILE_DISK_H_
