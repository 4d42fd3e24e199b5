// Synchronous transfers on the queue's worker thread: the fallback where io_uring is unavailable
// (old kernels, or containers whose seccomp profile forbids it), and buffered writes, which are
// a copy into the page cache either way.
#ifndef COMMON_BLOCK_SYNC_IO_H_
#define COMMON_BLOCK_SYNC_IO_H_

#include <cstdint>

#include "common/virtio/guest_memory.h"

namespace vhost {

// preadv/pwritev until the whole transfer is done (or fails: -errno; short at end of file).
int64_t ReadAll(int fd, const IovecList& buffers, uint64_t offset);
int64_t WriteAll(int fd, const IovecList& buffers, uint64_t offset);

// Whether buffers and offset suit O_DIRECT at `alignment`.
bool AlignedForDirectIo(const IovecList& buffers, uint64_t offset, uint32_t alignment);

}  // namespace vhost

#endif  // COMMON_BLOCK_SYNC_IO_H_
