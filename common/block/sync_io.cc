#include "common/block/sync_io.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

namespace vhost {
namespace {

// Repeats a vectored transfer until done: files may return short counts.
template <typename Op>
int64_t Transfer(Op op, const IovecList& buffers, uint64_t offset) {
  IovecList rest = buffers;
  size_t first = 0;
  int64_t total = 0;
  while (first < rest.size()) {
    const ssize_t n = op(rest.data() + first, static_cast<int>(rest.size() - first), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;  // end of file
    total += n;
    offset += n;
    size_t left = n;
    while (first < rest.size() && left >= rest[first].iov_len) left -= rest[first++].iov_len;
    if (first < rest.size()) {
      rest[first].iov_base = static_cast<uint8_t*>(rest[first].iov_base) + left;
      rest[first].iov_len -= left;
    }
  }
  return total;
}

}  // namespace

int64_t ReadAll(int fd, const IovecList& buffers, uint64_t offset) {
  return Transfer([fd](const iovec* v, int n, uint64_t off) { return preadv(fd, v, n, off); },
                  buffers, offset);
}

int64_t WriteAll(int fd, const IovecList& buffers, uint64_t offset) {
  return Transfer([fd](const iovec* v, int n, uint64_t off) { return pwritev(fd, v, n, off); },
                  buffers, offset);
}

bool AlignedForDirectIo(const IovecList& buffers, uint64_t offset, uint32_t alignment) {
  if (offset % alignment != 0) return false;
  for (const iovec& b : buffers) {
    if (reinterpret_cast<uintptr_t>(b.iov_base) % alignment != 0 || b.iov_len % alignment != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace vhost
