// Disks sharing a virtqueue's IoRing: each disk's DiskQueue submits to the one ring, which
// reports every operation to its own token, whichever disk it was on.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/block/disk.h"
#include "common/block/disk_sandbox.h"
#include "common/block/file_disk.h"
#include "common/block/io_ring.h"
#include "common/block/null_disk.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kFileBytes = 16 * kBlock;

// Byte `offset` of disk `disk` (0 or 1) as the test files are made: every block of every disk
// tells which it is.
char Pattern(int disk, uint64_t offset) {
  return static_cast<char>((disk == 0 ? 'a' : 'A') + offset / kBlock);
}

class DiskQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = getenv("TEST_TMPDIR");
    for (int d = 0; d < 2; ++d) {
      std::string path =
          std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/disk-queue-test-XXXXXX";
      const int fd = mkstemp(path.data());
      ASSERT_GE(fd, 0);
      std::string bytes(kFileBytes, '\0');
      for (uint64_t i = 0; i < kFileBytes; ++i) bytes[i] = Pattern(d, i);
      ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
      close(fd);
      paths_.push_back(path);
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<Disk> disk, OpenFileDisk(path, FileDiskOptions()));
      disks_.push_back(std::move(disk));
    }
  }
  void TearDown() override {
    for (const std::string& path : paths_) unlink(path.c_str());
  }

  std::string FileBytes(int disk, uint64_t offset, size_t len) {
    std::string out(len, '\0');
    const int fd = open(paths_[disk].c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(pread(fd, out.data(), len, offset), static_cast<ssize_t>(len));
    close(fd);
    return out;
  }

  // Buffers of kBlock bytes each, at a kBlock alignment (so O_DIRECT could take them too).
  iovec Buffer(size_t n) {
    while (memory_.size() <= n) {
      void* p = nullptr;
      EXPECT_EQ(posix_memalign(&p, kBlock, kBlock), 0);
      std::memset(p, 0, kBlock);
      memory_.emplace_back(static_cast<char*>(p), &free);
    }
    return {memory_[n].get(), kBlock};
  }

  std::vector<std::string> paths_;
  std::vector<std::unique_ptr<Disk>> disks_;
  std::vector<std::unique_ptr<char, decltype(&free)>> memory_;
};

// Commits and runs the ring until `count` operations completed (each once); their results by
// token.
std::map<uint64_t, int64_t> Complete(IoRing& ring, size_t count) {
  std::map<uint64_t, int64_t> results;
  ring.Commit();
  for (;;) {
    ring.Reap([&](uint64_t token, int64_t result) {
      EXPECT_TRUE(results.emplace(token, result).second) << "token " << token << " twice";
    });
    if (results.size() >= count || ring.event_fd() < 0) break;
    pollfd p{ring.event_fd(), POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) {
      ADD_FAILURE() << "no completion signal with " << results.size() << " of " << count;
      break;
    }
    eventfd_t ignored;
    eventfd_read(ring.event_fd(), &ignored);
  }
  return results;
}

// Two files on one ring, both kinds of ring: reads come back to their tokens with their own
// disk's data, writes (write-through and buffered) and flushes land on their own disk.
TEST_F(DiskQueueTest, TwoDisksOnOneRingCompleteToTheirTokensWithTheirData) {
  for (const bool io_uring : {true, false}) {
    SCOPED_TRACE(io_uring ? "io_uring" : "sync");
    std::unique_ptr<IoRing> ring = IoRing::Create(64, io_uring);
    ASSERT_EQ(ring->on_io_uring(), io_uring);
    EXPECT_EQ(ring->event_fd() >= 0, io_uring);  // the sync kind has no fd
    std::unique_ptr<DiskQueue> queues[2] = {disks_[0]->NewQueue(*ring), disks_[1]->NewQueue(*ring)};
    // Reads of blocks 0..7, alternately from each disk, tokens 100..107.
    std::vector<IovecList> reads(8);
    for (int i = 0; i < 8; ++i) {
      reads[i] = {Buffer(i)};
      ASSERT_TRUE(queues[i % 2]->SubmitRead(reads[i], i * kBlock, 100 + i));
    }
    // A write-through write to disk 0 and a buffered one to disk 1 (block 12 of each, a
    // different byte per kind), then a flush of each.
    const char mark = io_uring ? 'u' : 's';
    IovecList writes[2] = {{Buffer(8)}, {Buffer(9)}};
    std::memset(writes[0][0].iov_base, mark, kBlock);
    std::memset(writes[1][0].iov_base, mark + 1, kBlock);
    ASSERT_TRUE(queues[0]->SubmitWrite(writes[0], 12 * kBlock, /*sync=*/true, 200));
    ASSERT_TRUE(queues[1]->SubmitWrite(writes[1], 12 * kBlock, /*sync=*/false, 201));
    ASSERT_TRUE(queues[0]->SubmitFlush(300));
    ASSERT_TRUE(queues[1]->SubmitFlush(301));

    const std::map<uint64_t, int64_t> results = Complete(*ring, 12);
    ASSERT_EQ(results.size(), 12u);
    for (int i = 0; i < 8; ++i) {
      ASSERT_EQ(results.at(100 + i), static_cast<int64_t>(kBlock)) << i;
      const char* data = static_cast<const char*>(reads[i][0].iov_base);
      EXPECT_EQ(std::string(data, kBlock), std::string(kBlock, Pattern(i % 2, i * kBlock))) << i;
    }
    EXPECT_EQ(results.at(200), static_cast<int64_t>(kBlock));
    EXPECT_EQ(results.at(201), static_cast<int64_t>(kBlock));
    EXPECT_EQ(results.at(300), 0);
    EXPECT_EQ(results.at(301), 0);
    EXPECT_EQ(FileBytes(0, 12 * kBlock, kBlock), std::string(kBlock, mark));
    EXPECT_EQ(FileBytes(1, 12 * kBlock, kBlock), std::string(kBlock, mark + 1));
    EXPECT_EQ(FileBytes(0, 11 * kBlock, 1), std::string(1, Pattern(0, 11 * kBlock)));
    EXPECT_FALSE(ring->HasCompletions());
  }
}

// Drain (a queue stopping) waits for and reports every operation of every disk on the ring,
// committed or not, and leaves the completion signal clear.
TEST_F(DiskQueueTest, DrainReportsEveryOperationOfBothDisks) {
  for (const bool io_uring : {true, false}) {
    SCOPED_TRACE(io_uring ? "io_uring" : "sync");
    std::unique_ptr<IoRing> ring = IoRing::Create(64, io_uring);
    std::unique_ptr<DiskQueue> queues[2] = {disks_[0]->NewQueue(*ring), disks_[1]->NewQueue(*ring)};
    std::vector<IovecList> reads(12);
    for (int i = 0; i < 12; ++i) {
      reads[i] = {Buffer(i)};
      ASSERT_TRUE(queues[i % 2]->SubmitRead(reads[i], i * kBlock, i));
      if (i == 5) ring->Commit();  // half started, half only queued
    }
    std::map<uint64_t, int64_t> results;
    ring->Drain([&](uint64_t token, int64_t result) {
      EXPECT_TRUE(results.emplace(token, result).second) << "token " << token << " twice";
    });
    ASSERT_EQ(results.size(), 12u);
    for (int i = 0; i < 12; ++i) {
      EXPECT_EQ(results.at(i), static_cast<int64_t>(kBlock)) << i;
      EXPECT_EQ(*static_cast<const char*>(reads[i][0].iov_base), Pattern(i % 2, i * kBlock)) << i;
    }
    EXPECT_FALSE(ring->HasCompletions());
    if (ring->event_fd() >= 0) {
      pollfd p{ring->event_fd(), POLLIN, 0};
      EXPECT_EQ(poll(&p, 1, 0), 0) << "a completion signal left over after Drain";
    }
  }
}

// The ring's entries are shared: what one disk queued leaves that much less room for the other
// (Submit* says so, the device answers busy), and committing makes room again.
TEST_F(DiskQueueTest, DisksShareTheRingsEntries) {
  std::unique_ptr<IoRing> ring = IoRing::Create(4, /*use_io_uring=*/true);
  ASSERT_TRUE(ring->on_io_uring());
  std::unique_ptr<DiskQueue> queues[2] = {disks_[0]->NewQueue(*ring), disks_[1]->NewQueue(*ring)};
  std::vector<IovecList> reads(5);
  for (int i = 0; i < 5; ++i) reads[i] = {Buffer(i)};
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(queues[i / 2]->SubmitRead(reads[i], 0, i)) << i;
  EXPECT_FALSE(queues[0]->SubmitRead(reads[4], 0, 4));
  EXPECT_FALSE(queues[1]->SubmitRead(reads[4], 0, 4));
  EXPECT_FALSE(queues[1]->SubmitFlush(4));
  ring->Commit();
  ASSERT_TRUE(queues[1]->SubmitRead(reads[4], kBlock, 4));
  const std::map<uint64_t, int64_t> results = Complete(*ring, 5);
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(*static_cast<const char*>(reads[4][0].iov_base), Pattern(1, kBlock));
}

// A null disk (completing at submission) beside a file on an io_uring ring: both reported by
// the ring's Reap, the null disk's at once.
TEST_F(DiskQueueTest, ANullDiskAndAFileShareARing) {
  std::unique_ptr<IoRing> ring = IoRing::Create(8, /*use_io_uring=*/true);
  std::unique_ptr<Disk> null_disk = MakeNullDisk(kFileBytes);
  std::unique_ptr<DiskQueue> null_queue = null_disk->NewQueue(*ring);
  std::unique_ptr<DiskQueue> file_queue = disks_[0]->NewQueue(*ring);
  IovecList zeroed = {Buffer(0)};
  std::memset(zeroed[0].iov_base, 0x55, kBlock);
  IovecList read = {Buffer(1)};
  ASSERT_TRUE(file_queue->SubmitRead(read, 3 * kBlock, 1));
  ASSERT_TRUE(null_queue->SubmitRead(zeroed, 0, 2));
  EXPECT_TRUE(ring->HasCompletions());  // the null disk's, before any Commit
  const std::map<uint64_t, int64_t> results = Complete(*ring, 2);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results.at(1), static_cast<int64_t>(kBlock));
  EXPECT_EQ(results.at(2), static_cast<int64_t>(kBlock));
  EXPECT_EQ(*static_cast<const char*>(read[0].iov_base), Pattern(0, 3 * kBlock));
  EXPECT_EQ(*static_cast<const char*>(zeroed[0].iov_base), 0);
}

// Rings are made before the seccomp filter, which forbids io_uring_setup (kill mode: calling it
// kills the child with SIGSYS); a disk's queue made after it (scsi adds LUNs at run time) runs
// on them, with no syscall of its own.
TEST_F(DiskQueueTest, QueuesMadeAfterTheFilterRunOnTheRingMadeBefore) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::unique_ptr<IoRing> ring = IoRing::Create(8, /*use_io_uring=*/true);
    if (!ring->on_io_uring()) _exit(101);
    SandboxPolicy policy;
    if (!ApplySandbox(SeccompMode::kKill, AddDiskIo(policy)).ok()) _exit(100);
    std::unique_ptr<DiskQueue> queues[2] = {disks_[0]->NewQueue(*ring), disks_[1]->NewQueue(*ring)};
    IovecList reads[2] = {{Buffer(0)}, {Buffer(1)}};
    IovecList write = {Buffer(2)};
    std::memset(write[0].iov_base, 'w', kBlock);
    if (!queues[0]->SubmitRead(reads[0], 5 * kBlock, 0) ||
        !queues[1]->SubmitRead(reads[1], 6 * kBlock, 1) ||
        !queues[1]->SubmitWrite(write, 7 * kBlock, /*sync=*/true, 2)) {
      _exit(2);
    }
    std::map<uint64_t, int64_t> results;
    ring->Commit();
    while (results.size() < 3) {
      ring->Reap([&](uint64_t token, int64_t result) { results[token] = result; });
      pollfd p{ring->event_fd(), POLLIN, 0};
      if (results.size() < 3 && poll(&p, 1, 10000) != 1) _exit(3);
      eventfd_t ignored;
      eventfd_read(ring->event_fd(), &ignored);
    }
    for (uint64_t token = 0; token < 3; ++token) {
      if (results[token] != static_cast<int64_t>(kBlock)) _exit(4);
    }
    if (*static_cast<const char*>(reads[0][0].iov_base) != Pattern(0, 5 * kBlock) ||
        *static_cast<const char*>(reads[1][0].iov_base) != Pattern(1, 6 * kBlock)) {
      _exit(5);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_EQ(FileBytes(1, 7 * kBlock, kBlock), std::string(kBlock, 'w'));
}

}  // namespace
}  // namespace vhost
