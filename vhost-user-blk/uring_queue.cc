#include "vhost-user-blk/uring_queue.h"

#include <sys/eventfd.h>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "vhost-user-blk/sync_queue.h"

namespace vhost {

absl::StatusOr<std::unique_ptr<DiskQueue>> UringQueue::Create(uint32_t depth, int fd, int direct_fd,
                                                              uint32_t alignment) {
  std::unique_ptr<UringQueue> queue(new UringQueue(fd, direct_fd, alignment));
  const int err = io_uring_queue_init(depth, &queue->ring_, 0);
  if (err < 0) return absl::ErrnoToStatus(-err, "io_uring_queue_init");
  queue->ring_ready_ = true;
  queue->event_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!queue->event_fd_) return absl::ErrnoToStatus(errno, "eventfd");
  const int reg = io_uring_register_eventfd(&queue->ring_, queue->event_fd_.get());
  if (reg < 0) return absl::ErrnoToStatus(-reg, "io_uring_register_eventfd");
  return std::unique_ptr<DiskQueue>(std::move(queue));
}

UringQueue::~UringQueue() {
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

int UringQueue::FdFor(const IovecList& buffers, uint64_t offset) const {
  return direct_fd_ >= 0 && AlignedForDirectIo(buffers, offset, alignment_) ? direct_fd_ : fd_;
}

io_uring_sqe* UringQueue::NextSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe != nullptr) ++in_flight_;
  return sqe;
}

bool UringQueue::SubmitRead(const IovecList& buffers, uint64_t offset, uint64_t token) {
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_readv(sqe, FdFor(buffers, offset), buffers.data(), buffers.size(), offset);
  io_uring_sqe_set_data64(sqe, token);
  return true;
}

bool UringQueue::SubmitWrite(const IovecList& buffers, uint64_t offset, bool sync, uint64_t token) {
  const int fd = FdFor(buffers, offset);
  if (fd == fd_ && !sync) {
    // A buffered write is a copy into the page cache, which io_uring hands to its worker
    // threads (measured 1.9x slower for 1 MiB writes): copy it here instead.
    inline_done_.push_back({token, WriteAll(fd, buffers, offset)});
    return true;
  }
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_writev(sqe, fd, buffers.data(), buffers.size(), offset);
  if (sync) sqe->rw_flags = RWF_DSYNC;
  io_uring_sqe_set_data64(sqe, token);
  return true;
}

bool UringQueue::SubmitFlush(uint64_t token) {
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data64(sqe, token);
  return true;
}

void UringQueue::Commit() {
  const int n = io_uring_submit(&ring_);
  if (n < 0) {
    LOG_EVERY_N(ERROR, 1000) << "io_uring_submit: " << strerror(-n);
  }
}

void UringQueue::Reap(absl::FunctionRef<void(uint64_t, int64_t)> done) {
  for (const auto& [token, result] : inline_done_) done(token, result);
  inline_done_.clear();
  if (io_uring_cq_ready(&ring_) == 0) return;  // no syscall on an idle ring
  // Clear the wake-up before taking completions: one posted after this signals again.
  eventfd_t ignored;
  eventfd_read(event_fd_.get(), &ignored);
  io_uring_cqe* cqe;
  unsigned head;
  unsigned count = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    done(io_uring_cqe_get_data64(cqe), cqe->res);
    ++count;
  }
  io_uring_cq_advance(&ring_, count);
  in_flight_ -= count;
}

void UringQueue::Drain(absl::FunctionRef<void(uint64_t, int64_t)> done) {
  Commit();
  Reap(done);  // including the writes done inline
  while (in_flight_ > 0) {
    io_uring_cqe* cqe;
    const int err = io_uring_wait_cqe(&ring_, &cqe);
    if (err < 0 && err != -EINTR) {
      LOG(ERROR) << "io_uring_wait_cqe: " << strerror(-err);
      return;
    }
    Reap(done);
  }
}

}  // namespace vhost
