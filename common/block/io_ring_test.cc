// The io_uring ring every disk queue runs on (InitDiskRing).
#include "common/block/io_ring.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// A mkstemp template in the test's own directory ($TEST_TMPDIR; /tmp outside Bazel).
std::string TempTemplate(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/" + name + "XXXXXX";
}

// io_uring runs operations on the kernel's side of the seccomp filter: the ring a disk queue
// sets up must refuse every operation and flag the queues do not use (opening files, making and
// connecting sockets), or a compromised daemon could do through the ring what its filter forbids.
class DiskRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ASSERT_GE(event_fd_, 0);
    ASSERT_OK(InitDiskRing(8, event_fd_, &ring_));
  }
  void TearDown() override {
    io_uring_queue_exit(&ring_);
    close(event_fd_);
  }
  // Submits the one prepared request and returns its result.
  int Run() {
    EXPECT_EQ(io_uring_submit(&ring_), 1);
    io_uring_cqe* cqe = nullptr;
    EXPECT_EQ(io_uring_wait_cqe(&ring_, &cqe), 0);
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    return res;
  }

  io_uring ring_{};
  int event_fd_ = -1;
};

TEST_F(DiskRingTest, RunsTheOperationsTheQueuesUse) {
  std::string path = TempTemplate("disk-ring-test-");
  const int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0);
  unlink(path.c_str());
  char data[16] = "hello, ring";
  iovec iov = {data, sizeof(data)};
  io_uring_prep_writev(io_uring_get_sqe(&ring_), fd, &iov, 1, 0);
  EXPECT_EQ(Run(), static_cast<int>(sizeof(data)));
  io_uring_prep_fsync(io_uring_get_sqe(&ring_), fd, IORING_FSYNC_DATASYNC);
  EXPECT_EQ(Run(), 0);
  char back[16] = {};
  iovec back_iov = {back, sizeof(back)};
  io_uring_prep_readv(io_uring_get_sqe(&ring_), fd, &back_iov, 1, 0);
  EXPECT_EQ(Run(), static_cast<int>(sizeof(back)));
  EXPECT_STREQ(back, data);
  close(fd);
}

TEST_F(DiskRingTest, RefusesOperationsBeyondThem) {
  io_uring_prep_openat(io_uring_get_sqe(&ring_), AT_FDCWD, "/dev/null", O_RDONLY, 0);
  EXPECT_EQ(Run(), -EACCES);
  io_uring_prep_socket(io_uring_get_sqe(&ring_), AF_INET, SOCK_STREAM, 0, 0);
  EXPECT_EQ(Run(), -EACCES);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  io_uring_prep_connect(io_uring_get_sqe(&ring_), event_fd_, reinterpret_cast<sockaddr*>(&addr),
                        sizeof(addr));
  EXPECT_EQ(Run(), -EACCES);
  // An allowed operation with a flag the queues never set (here: forced to a kernel worker).
  char byte;
  iovec iov = {&byte, 1};
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  io_uring_prep_readv(sqe, event_fd_, &iov, 1, 0);
  io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
  EXPECT_EQ(Run(), -EACCES);
  // Nor can the ring be re-registered (e.g. with other files or a new eventfd) once running.
  EXPECT_EQ(io_uring_register_eventfd(&ring_, event_fd_), -EACCES);
}

}  // namespace
}  // namespace vhost
