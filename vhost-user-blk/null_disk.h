// A disk with nothing behind it: reads return zeroes, writes are dropped. For benchmarking the
// engine itself.
#ifndef VHOST_USER_BLK_NULL_DISK_H_
#define VHOST_USER_BLK_NULL_DISK_H_

#include "vhost-user-blk/disk.h"

namespace vhost {

std::unique_ptr<Disk> MakeNullDisk(uint64_t size_bytes);

}  // namespace vhost

#endif  // VHOST_USER_BLK_NULL_DISK_H_
