#include "common/block/sync_queue.h"

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

SyncQueue::SyncQueue(uint32_t depth, int fd, int direct_fd, uint32_t alignment)
    : fd_(fd), direct_fd_(direct_fd), alignment_(alignment) {
  done_.reserve(depth);
}

int SyncQueue::FdFor(const IovecList& buffers, uint64_t offset) const {
  return direct_fd_ >= 0 && AlignedForDirectIo(buffers, offset, alignment_) ? direct_fd_ : fd_;
}

bool SyncQueue::SubmitRead(const IovecList& buffers, uint64_t offset, uint64_t token) {
  done_.push_back({token, ReadAll(FdFor(buffers, offset), buffers, offset)});
  return true;
}

bool SyncQueue::SubmitWrite(const IovecList& buffers, uint64_t offset, bool sync, uint64_t token) {
  const int fd = FdFor(buffers, offset);
  int64_t result = WriteAll(fd, buffers, offset);
  if (result >= 0 && sync && fdatasync(fd) != 0) result = -errno;
  done_.push_back({token, result});
  return true;
}

bool SyncQueue::SubmitFlush(uint64_t token) {
  done_.push_back({token, fdatasync(fd_) == 0 ? 0 : -errno});
  return true;
}

void SyncQueue::Reap(absl::FunctionRef<void(uint64_t, int64_t)> done) {
  for (const auto& [token, result] : done_) done(token, result);
  done_.clear();
}

}  // namespace vhost
