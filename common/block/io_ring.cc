#include "common/block/io_ring.h"

#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/base/unique_fd.h"
#include "glog/logging.h"

namespace vhost {

absl::Status InitDiskRing(uint32_t depth, int event_fd, io_uring* ring) {
  // io_uring operations are not seen by the seccomp filter: a ring that could open files or
  // make sockets would undo it. The ring starts disabled, is restricted to what the disk queues
  // submit (no SQE flags either: no fixed files, links or forced async), then enabled; after
  // that the kernel refuses every other operation and every registration with EACCES.
  const int err = io_uring_queue_init(depth, ring, IORING_SETUP_R_DISABLED);
  if (err < 0) {
    return absl::ErrnoToStatus(-err, "io_uring_queue_init (restricted rings need Linux 5.10)");
  }
  auto fail = [ring](int err, const char* what) {
    io_uring_queue_exit(ring);
    return absl::ErrnoToStatus(-err, what);
  };
  if (const int e = io_uring_register_eventfd(ring, event_fd); e < 0) {
    return fail(e, "io_uring_register_eventfd");
  }
  io_uring_restriction allowed[3] = {};
  const uint8_t ops[3] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC};
  for (int i = 0; i < 3; ++i) {
    allowed[i].opcode = IORING_RESTRICTION_SQE_OP;
    allowed[i].sqe_op = ops[i];
  }
  // Debian's shared liburing 2.3 does not export io_uring_register_restrictions and
  // io_uring_enable_rings: the syscall itself.
  auto reg = [ring](unsigned op, void* arg, unsigned n) {
    return syscall(__NR_io_uring_register, ring->ring_fd, op, arg, n) < 0 ? -errno : 0;
  };
  if (const int e = reg(IORING_REGISTER_RESTRICTIONS, allowed, 3); e < 0) {
    return fail(e, "IORING_REGISTER_RESTRICTIONS");
  }
  if (const int e = reg(IORING_REGISTER_ENABLE_RINGS, nullptr, 0); e < 0) {
    return fail(e, "IORING_REGISTER_ENABLE_RINGS");
  }
  return absl::OkStatus();
}

namespace {

// Completions signalled on an eventfd that the queue's worker waits on together with the
// guest's kicks.
class UringRing : public IoRing {
 public:
  explicit UringRing(uint32_t depth) : IoRing(depth, /*on_io_uring=*/true) {}
  ~UringRing() override {
    if (ready_) io_uring_queue_exit(&ring_);
  }

  absl::Status Init(uint32_t depth) {
    event_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!event_fd_) return absl::ErrnoToStatus(errno, "eventfd");
    absl::Status s = InitDiskRing(depth, event_fd_.get(), &ring_);
    ready_ = s.ok();
    return s;
  }

  int event_fd() const override { return event_fd_.get(); }

  void Commit() override {
    const int n = io_uring_submit(&ring_);
    if (n < 0) {
      LOG_EVERY_N(ERROR, 1000) << "io_uring_submit: " << strerror(-n);
    }
  }

  bool HasCompletions() const override {
    return IoRing::HasCompletions() || io_uring_cq_ready(const_cast<io_uring*>(&ring_)) > 0;
  }

  void Reap(absl::FunctionRef<void(uint64_t, int64_t)> done) override {
    ReapInline(done);
    if (io_uring_cq_ready(&ring_) == 0) return;
    // No syscall here: the eventfd is watched edge-triggered (see event_fd()), so it is not
    // reset per batch; each completion's signal wakes the worker once.
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

  void Drain(absl::FunctionRef<void(uint64_t, int64_t)> done) override {
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
    // Clear the signals of what was reported, so a restarted queue (whose watch of the eventfd
    // starts with its level) does not wake for them.
    eventfd_t ignored;
    eventfd_read(event_fd_.get(), &ignored);
  }

  io_uring_sqe* NextSqe() override {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe != nullptr) ++in_flight_;
    return sqe;
  }

 private:
  io_uring ring_{};
  bool ready_ = false;  // InitDiskRing succeeded (it cleans up after itself when not)
  UniqueFd event_fd_;
  uint32_t in_flight_ = 0;  // submitted (or queued) and not yet reaped
};

}  // namespace

std::unique_ptr<IoRing> IoRing::Create(uint32_t depth, bool use_io_uring) {
  if (use_io_uring) {
    auto ring = std::make_unique<UringRing>(depth);
    const absl::Status s = ring->Init(depth);
    if (s.ok()) return ring;
    LOG(WARNING) << "io_uring unavailable (" << s.message() << "); using synchronous I/O";
  }
  return std::unique_ptr<IoRing>(new IoRing(depth, /*on_io_uring=*/false));
}

}  // namespace vhost
