// A disk with nothing behind it: reads return zeroes, writes are dropped. For benchmarking the
// engine itself.
#ifndef COMMON_BLOCK_NULL_DISK_H_
#define COMMON_BLOCK_NULL_DISK_H_

#include "common/block/disk.h"

namespace vhost {

std::unique_ptr<Disk> MakeNullDisk(uint64_t size_bytes);

}  // namespace vhost

#endif  // COMMON_BLOCK_NULL_DISK_H_
