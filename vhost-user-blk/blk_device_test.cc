// The virtio-blk model on a real ring in fake guest memory, over a null disk and over a temporary
// file through io_uring.
#include "vhost-user-blk/blk_device.h"

#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "common/sandbox.h"
#include "common/testing/driver_ring.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/page_cache.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "vhost-user-blk/blk_sandbox.h"
#include "vhost-user-blk/file_disk.h"
#include "vhost-user-blk/null_disk.h"
#include "vhost-user-blk/uring_queue.h"

namespace vhost {
namespace {

// A mkdtemp/mkstemp template in the test's own directory ($TEST_TMPDIR; /tmp outside Bazel).
std::string TempTemplate(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/" + name + "XXXXXX";
}

using ::vhost::testing::DriverRing;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::RingLayout;
using ::vhost::testing::StatusIs;
using ::vhost::testing::UnsyncedPages;

constexpr uint64_t kDiskBytes = 4 << 20;
constexpr uint64_t kHeaderGpa = 0x80000;  // request headers, 16 bytes apart
constexpr uint64_t kStatusGpa = 0x90000;  // status bytes
constexpr uint64_t kDataGpa = 0x100000;   // data buffers

class BlkDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path = TempTemplate("blk-test-");
    const int fd = mkstemp(path.data());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kDiskBytes), 0);
    close(fd);
    path_ = path;
    auto sizes = testing::ComputeRingSizes(RingLayout::kSplit, 64);
    DriverRing::Config config;
    config.size = 64;
    config.addresses = testing::LayoutRings(*sizes, 0x1000);
    driver_ = *DriverRing::Create(&ram_, config);
    layout_ = {64, FakeGuestMemory::Uva(config.addresses.desc),
               FakeGuestMemory::Uva(config.addresses.driver),
               FakeGuestMemory::Uva(config.addresses.device), 0};
    queue_ = *Virtqueue::Create(0, layout_, kQueueFeatures, ram_.memory());
  }
  void TearDown() override { unlink(path_.c_str()); }

  void MakeDevice(BlkOptions options = {}, bool null_disk = false, bool read_only = false,
                  bool io_uring = true) {
    std::unique_ptr<Disk> disk;
    if (null_disk) {
      disk = MakeNullDisk(kDiskBytes);
    } else {
      FileDiskOptions file;
      file.read_only = read_only;
      file.io_uring = io_uring;
      auto opened = OpenFileDisk(path_, file);
      ASSERT_OK(opened);
      disk = *std::move(opened);
    }
    options.read_only = read_only;
    device_ = std::make_unique<BlkDevice>(std::move(disk), options);
    ASSERT_OK(device_->SetFeatures(device_->Info().features));
    event_fd_ = device_->QueueEventFd(0);
  }

  // Queues a request; returns its index (which picks its header and status slots).
  int Add(uint32_t type, uint64_t sector, std::vector<testing::Buffer> data, bool data_writable,
          bool with_status = true) {
    const int n = next_++;
    virtio_blk_outhdr header{type, 0, sector};
    std::memcpy(ram_.Host(kHeaderGpa + 16 * n, 16), &header, 16);
    *ram_.Host(kStatusGpa + n) = 0xff;
    std::vector<testing::Buffer> readable = {{kHeaderGpa + 16 * n, 16}};
    std::vector<testing::Buffer> writable;
    (data_writable ? writable : readable)
        .insert((data_writable ? writable : readable).end(), data.begin(), data.end());
    if (with_status) writable.push_back({kStatusGpa + n, 1});
    EXPECT_OK(driver_->AddChain(readable, writable));
    driver_->Publish();
    return n;
  }
  uint8_t Status(int n) { return *ram_.Host(kStatusGpa + n); }

  // What a front end does between GET_VRING_BASE and the next start: the device stops the
  // queue, the queue is rebuilt at the position it reported, and its worker asks for the fd.
  void RestartQueue() {
    device_->QueueStopped(0, queue_.get());
    VringLayout layout = layout_;
    layout.base = queue_->Base();
    queue_ = *Virtqueue::Create(0, layout, kQueueFeatures, ram_.memory());
    event_fd_ = device_->QueueEventFd(0);
  }

  // Runs the queue until `count` requests came back; returns their used lengths in order.
  std::vector<uint32_t> Run(size_t count) {
    std::vector<uint32_t> lens;
    for (int round = 0; round < 1000 && lens.size() < count; ++round) {
      device_->ProcessQueue(*queue_);
      for (;;) {
        auto used = driver_->PollUsed();
        if (!used.ok() || !used->has_value()) break;
        lens.push_back((*used)->len);
      }
      if (lens.size() < count && event_fd_ >= 0) {
        pollfd p{event_fd_, POLLIN, 0};
        poll(&p, 1, 100);
        uint64_t v;
        (void)!read(event_fd_, &v, sizeof(v));  // EAGAIN after a timeout is fine
      }
    }
    return lens;
  }

  std::string FileBytes(uint64_t offset, size_t len) {
    std::string out(len, '\0');
    const int fd = open(path_.c_str(), O_RDONLY);
    EXPECT_EQ(pread(fd, out.data(), len, offset), static_cast<ssize_t>(len));
    close(fd);
    return out;
  }

  FakeGuestMemory ram_{16 << 20};
  std::unique_ptr<DriverRing> driver_;
  static constexpr uint64_t kQueueFeatures = Bit(kFeatureVersion1) | Bit(kFeatureIndirectDesc);
  VringLayout layout_;
  std::unique_ptr<Virtqueue> queue_;
  std::unique_ptr<BlkDevice> device_;
  int event_fd_ = -1;
  std::string path_;
  int next_ = 0;
};

TEST_F(BlkDeviceTest, ConfigSpaceDescribesTheDisk) {
  BlkOptions options;
  options.num_queues = 3;
  options.logical_block_size = 4096;
  MakeDevice(options);
  virtio_blk_config config;
  ASSERT_OK(device_->ReadConfig(
      0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), device_->Info().config_size)));
  EXPECT_EQ(config.capacity, kDiskBytes / 512);
  EXPECT_EQ(config.blk_size, 4096u);
  EXPECT_EQ(config.num_queues, 3);
  EXPECT_EQ(config.wce, 1);
  EXPECT_EQ(config.discard_sector_alignment, 8u);
  EXPECT_GT(config.max_discard_sectors, 0u);
  EXPECT_EQ(device_->Info().num_queues, 3u);
  EXPECT_FALSE(device_->Info().features & Bit(VIRTIO_BLK_F_RO));
}

TEST_F(BlkDeviceTest, OnlyTheWriteCacheFlagIsWritable) {
  MakeDevice();
  const uint8_t zero = 0;
  ASSERT_OK(device_->WriteConfig(offsetof(virtio_blk_config, wce), absl::MakeConstSpan(&zero, 1)));
  EXPECT_FALSE(device_->writeback());
  EXPECT_THAT(device_->WriteConfig(0, absl::MakeConstSpan(&zero, 1)),
              StatusIs(absl::StatusCode::kPermissionDenied));
  ASSERT_OK(device_->SetFeatures(0));  // without CONFIG_WCE the flag is read-only too
  EXPECT_THAT(device_->WriteConfig(offsetof(virtio_blk_config, wce), absl::MakeConstSpan(&zero, 1)),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(BlkDeviceTest, WritesLandInTheFileAndReadBack) {
  MakeDevice();
  std::string data(8192, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  std::memcpy(ram_.Host(kDataGpa, data.size()), data.data(), data.size());
  // Scattered over two buffers.
  const int w = Add(VIRTIO_BLK_T_OUT, 16, {{kDataGpa, 4096}, {kDataGpa + 4096, 4096}}, false);
  EXPECT_EQ(Run(1), std::vector<uint32_t>{1});
  EXPECT_EQ(Status(w), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(16 * 512, data.size()), data);
  const int r = Add(VIRTIO_BLK_T_IN, 16, {{kDataGpa + 0x10000, 8192}}, true);
  EXPECT_EQ(Run(1), std::vector<uint32_t>{8192 + 1});
  EXPECT_EQ(Status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(std::memcmp(ram_.Host(kDataGpa + 0x10000, 8192), data.data(), 8192), 0);
}

TEST_F(BlkDeviceTest, SynchronousEngineWhereIoUringIsUnavailable) {
  MakeDevice({}, false, false, /*io_uring=*/false);
  EXPECT_EQ(event_fd_, -1);  // everything completes on the worker thread
  std::memset(ram_.Host(kDataGpa, 4096), 0x42, 4096);
  const int w = Add(VIRTIO_BLK_T_OUT, 40, {{kDataGpa, 1024}, {kDataGpa + 1024, 3072}}, false);
  const int f = Add(VIRTIO_BLK_T_FLUSH, 0, {}, false);
  const int r = Add(VIRTIO_BLK_T_IN, 40, {{kDataGpa + 0x8000, 4096}}, true);
  EXPECT_EQ(Run(3), (std::vector<uint32_t>{1, 1, 4097}));
  for (int n : {w, f, r}) EXPECT_EQ(Status(n), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(40 * 512, 4), "BBBB");
  EXPECT_EQ(*ram_.Host(kDataGpa + 0x8000 + 4095), 0x42);
}

TEST_F(BlkDeviceTest, ManyRequestsInFlight) {
  MakeDevice();
  // 20 chains of 3 descriptors nearly fill the 64-entry ring.
  for (int i = 0; i < 20; ++i) Add(VIRTIO_BLK_T_IN, i * 8, {{kDataGpa + i * 4096, 4096}}, true);
  const std::vector<uint32_t> lens = Run(20);
  ASSERT_EQ(lens.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Status(i), VIRTIO_BLK_S_OK);
}

TEST_F(BlkDeviceTest, RequestsOutsideTheDiskOrMisalignedFail) {
  BlkOptions options;
  options.logical_block_size = 4096;
  MakeDevice(options);
  const int beyond = Add(VIRTIO_BLK_T_IN, kDiskBytes / 512, {{kDataGpa, 4096}}, true);
  const int straddle = Add(VIRTIO_BLK_T_OUT, kDiskBytes / 512 - 8, {{kDataGpa, 8192}}, false);
  const int huge_sector = Add(VIRTIO_BLK_T_IN, ~uint64_t{0} - 3, {{kDataGpa, 4096}}, true);
  const int misaligned = Add(VIRTIO_BLK_T_IN, 1, {{kDataGpa, 4096}}, true);
  const int odd_length = Add(VIRTIO_BLK_T_IN, 0, {{kDataGpa, 1000}}, true);
  Run(5);
  for (int n : {beyond, straddle, huge_sector, misaligned, odd_length}) {
    EXPECT_EQ(Status(n), VIRTIO_BLK_S_IOERR) << n;
  }
  EXPECT_EQ(FileBytes(kDiskBytes - 8192, 8192), std::string(8192, '\0'));  // nothing written
}

TEST_F(BlkDeviceTest, UnknownTypeIsUnsupportedAndNoStatusByteIsSurvived) {
  MakeDevice();
  const int unknown = Add(99, 0, {}, false);
  Add(VIRTIO_BLK_T_IN, 0, {}, true, /*with_status=*/false);  // nowhere to put a status
  const std::vector<uint32_t> lens = Run(2);
  EXPECT_EQ(Status(unknown), VIRTIO_BLK_S_UNSUPP);
  ASSERT_EQ(lens.size(), 2u);
  EXPECT_EQ(lens[1], 0u);
}

TEST_F(BlkDeviceTest, GetIdReturnsTheSerial) {
  BlkOptions options;
  options.serial = "disk-42";
  MakeDevice(options);
  const int n = Add(VIRTIO_BLK_T_GET_ID, 0, {{kDataGpa, 20}}, true);
  EXPECT_EQ(Run(1), std::vector<uint32_t>{21});
  EXPECT_EQ(Status(n), VIRTIO_BLK_S_OK);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(ram_.Host(kDataGpa, 8))), "disk-42");
}

TEST_F(BlkDeviceTest, ReadOnlyDiskRefusesWrites) {
  MakeDevice({}, false, /*read_only=*/true);
  EXPECT_TRUE(device_->Info().features & Bit(VIRTIO_BLK_F_RO));
  std::memset(ram_.Host(kDataGpa, 512), 0xab, 512);
  const int w = Add(VIRTIO_BLK_T_OUT, 0, {{kDataGpa, 512}}, false);
  virtio_blk_discard_write_zeroes seg{0, 8, 0};
  std::memcpy(ram_.Host(kDataGpa + 4096, 16), &seg, 16);
  const int d = Add(VIRTIO_BLK_T_DISCARD, 0, {{kDataGpa + 4096, 16}}, false);
  const int r = Add(VIRTIO_BLK_T_IN, 0, {{kDataGpa + 8192, 512}}, true);
  Run(3);
  EXPECT_EQ(Status(w), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(Status(d), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(Status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(0, 512), std::string(512, '\0'));
}

// A write-back write leaves the host page dirty; FLUSH writes it to stable storage (with
// io_uring and with the synchronous fallback).
TEST_F(BlkDeviceTest, FlushPutsWrittenDataOnStableStorage) {
  for (const bool io_uring : {true, false}) {
    SCOPED_TRACE(io_uring ? "io_uring" : "sync");
    MakeDevice({}, /*null_disk=*/false, /*read_only=*/false, io_uring);
    const uint64_t sector = io_uring ? 64 : 128;
    std::memset(ram_.Host(kDataGpa, 4096), 0x5f, 4096);
    const int w = Add(VIRTIO_BLK_T_OUT, sector, {{kDataGpa, 4096}}, false);
    ASSERT_EQ(Run(1), std::vector<uint32_t>{1});
    ASSERT_EQ(Status(w), VIRTIO_BLK_S_OK);
    ASSERT_OK_AND_ASSIGN(const uint64_t dirty_after_write,
                         UnsyncedPages(path_, sector * 512, 4096));
    ASSERT_EQ(dirty_after_write, 1u)
        << "the write did not go through the page cache: nothing for FLUSH to do";
    const int n = Add(VIRTIO_BLK_T_FLUSH, 0, {}, false);
    EXPECT_EQ(Run(1), std::vector<uint32_t>{1});
    EXPECT_EQ(Status(n), VIRTIO_BLK_S_OK);
    ASSERT_OK_AND_ASSIGN(const uint64_t dirty_after_flush,
                         UnsyncedPages(path_, sector * 512, 4096));
    EXPECT_EQ(dirty_after_flush, 0u)
        << "FLUSH completed with the data still only in the page cache";
  }
}

TEST_F(BlkDeviceTest, WriteZeroesAndDiscardClearData) {
  MakeDevice();
  std::memset(ram_.Host(kDataGpa, 65536), 0x5a, 65536);
  Add(VIRTIO_BLK_T_OUT, 0, {{kDataGpa, 65536}}, false);
  Run(1);
  ASSERT_EQ(FileBytes(0, 4), "ZZZZ");
  virtio_blk_discard_write_zeroes segs[2] = {{0, 8, 0},
                                             {64, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}};
  std::memcpy(ram_.Host(kDataGpa + 0x20000, sizeof(segs)), segs, sizeof(segs));
  const int z = Add(VIRTIO_BLK_T_WRITE_ZEROES, 0, {{kDataGpa + 0x20000, sizeof(segs)}}, false);
  virtio_blk_discard_write_zeroes discard{16, 8, 0};
  std::memcpy(ram_.Host(kDataGpa + 0x21000, 16), &discard, 16);
  const int d = Add(VIRTIO_BLK_T_DISCARD, 0, {{kDataGpa + 0x21000, 16}}, false);
  virtio_blk_discard_write_zeroes bad{16, 8, 0x80};  // unknown flag
  std::memcpy(ram_.Host(kDataGpa + 0x22000, 16), &bad, 16);
  const int b = Add(VIRTIO_BLK_T_DISCARD, 0, {{kDataGpa + 0x22000, 16}}, false);
  Run(3);
  EXPECT_EQ(Status(z), VIRTIO_BLK_S_OK);
  EXPECT_EQ(Status(d), VIRTIO_BLK_S_OK);
  EXPECT_EQ(Status(b), VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(FileBytes(0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(FileBytes(64 * 512, 4096), std::string(4096, '\0'));
  EXPECT_EQ(FileBytes(16 * 512, 4096), std::string(4096, '\0'));
  EXPECT_EQ(FileBytes(8 * 512, 4), "ZZZZ");  // between the ranges: untouched
}

TEST_F(BlkDeviceTest, NullDiskReadsZeroesAndDropsWrites) {
  MakeDevice({}, /*null_disk=*/true);
  EXPECT_EQ(device_->QueueEventFd(0), -1);
  std::memset(ram_.Host(kDataGpa, 4096), 0x77, 4096);
  const int r = Add(VIRTIO_BLK_T_IN, 8, {{kDataGpa, 4096}}, true);
  const int w = Add(VIRTIO_BLK_T_OUT, 8, {{kDataGpa, 4096}}, false);
  EXPECT_EQ(Run(2), (std::vector<uint32_t>{4097, 1}));
  EXPECT_EQ(Status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(Status(w), VIRTIO_BLK_S_OK);
  EXPECT_EQ(*ram_.Host(kDataGpa + 100), 0);
}

TEST_F(BlkDeviceTest, StoppingTheQueueFinishesRequestsInFlight) {
  MakeDevice();
  for (int i = 0; i < 8; ++i) Add(VIRTIO_BLK_T_IN, i * 8, {{kDataGpa + i * 4096, 4096}}, true);
  device_->ProcessQueue(*queue_);  // submitted, not reaped
  device_->QueueStopped(0, queue_.get());
  int used = 0;
  for (;;) {
    auto u = driver_->PollUsed();
    if (!u.ok() || !u->has_value()) break;
    ++used;
  }
  EXPECT_EQ(used, 8);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(Status(i), VIRTIO_BLK_S_OK);
}

TEST_F(BlkDeviceTest, RestartedQueuesKeepServingWithNothingStale) {
  BlkOptions options;
  options.num_queues = 2;
  MakeDevice(options);
  for (int round = 0; round < 4; ++round) {
    // Stopped with reads in flight: they finish before the stop, none comes back later.
    for (int i = 0; i < 8; ++i) Add(VIRTIO_BLK_T_IN, i * 8, {{kDataGpa + i * 4096, 4096}}, true);
    device_->ProcessQueue(*queue_);
    RestartQueue();
    int used = 0;
    while (driver_->PollUsed().value_or(absl::nullopt).has_value()) ++used;
    EXPECT_EQ(used, 8);
    EXPECT_FALSE(device_->QueueHasCompletions(0));
    pollfd p{event_fd_, POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 0), 0) << "a completion signal left over from the last session";
    std::memset(ram_.Host(kDataGpa, 4096), 'a' + round, 4096);
    const int w = Add(VIRTIO_BLK_T_OUT, 8 * round, {{kDataGpa, 4096}}, false);
    const int r = Add(VIRTIO_BLK_T_IN, 8 * round, {{kDataGpa + 0x10000, 4096}}, true);
    EXPECT_EQ(Run(2), (std::vector<uint32_t>{1, 4097}));
    EXPECT_EQ(Status(w), VIRTIO_BLK_S_OK);
    EXPECT_EQ(Status(r), VIRTIO_BLK_S_OK);
    EXPECT_EQ(*ram_.Host(kDataGpa + 0x10000 + 4095), 'a' + round);
  }
  device_->Reset();  // a front end that went away: the next one finds the queue as new
  RestartQueue();
  const int r = Add(VIRTIO_BLK_T_IN, 0, {{kDataGpa, 4096}}, true);
  EXPECT_EQ(Run(1), std::vector<uint32_t>{4097});
  EXPECT_EQ(Status(r), VIRTIO_BLK_S_OK);
}

// Runs `body` in a forked child under the daemon's own policy (kill mode), after `setup` (run
// before the filter, as the daemon makes its device); returns the child's wait status. The child
// reports through its exit code.
int RunUnderBlkPolicy(
    std::function<int()> body, std::function<int()> setup = [] { return 0; }) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (const int failed = setup(); failed != 0) _exit(failed);
    if (!ApplySandbox(SeccompMode::kKill, BlkSandboxPolicy()).ok()) _exit(100);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

bool KilledBySigsys(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS; }

// seccomp cannot see io_uring_setup's flags (they are behind a pointer): were it allowed, a
// compromised daemon would make a ring without restrictions and open files or sockets with it.
TEST(BlkSandboxTest, NoNewRingAfterTheFilter) {
  const absl::StatusOr<std::vector<SyscallRule>> rules = BlkSandboxPolicy().Build();
  ASSERT_TRUE(rules.ok()) << rules.status();
  // Nor io_uring_register: the rings are set up before the filter too.
  for (const SyscallRule& rule : *rules) {
    EXPECT_NE(rule.name, "io_uring_setup");
    EXPECT_NE(rule.name, "io_uring_register");
  }
  const int status = RunUnderBlkPolicy([] {
    io_uring_params params{};
    return syscall(__NR_io_uring_setup, 8, &params) >= 0 ? 0 : 1;
  });
  EXPECT_TRUE(KilledBySigsys(status)) << "wait status " << status;
}

// The daemon makes its device before the filter: every queue, on its first start and on each
// restart, must run on rings made then.
TEST_F(BlkDeviceTest, EveryQueueRunsUnderTheFilterOnRingsMadeBefore) {
  BlkOptions options;
  options.num_queues = 4;
  MakeDevice(options);
  ASSERT_GE(event_fd_, 0);
  const int status = RunUnderBlkPolicy([&] {
    for (int i = 1; i < 4; ++i) {
      if (device_->QueueEventFd(i) < 0) return 1;
    }
    for (int round = 0; round < 3; ++round) {
      std::memset(ram_.Host(kDataGpa, 4096), 'a' + round, 4096);
      const int w = Add(VIRTIO_BLK_T_OUT, 8, {{kDataGpa, 4096}}, false);
      const int r = Add(VIRTIO_BLK_T_IN, 8, {{kDataGpa + 0x8000, 4096}}, true);
      if (Run(2).size() != 2) return 2;
      if (Status(w) != VIRTIO_BLK_S_OK || Status(r) != VIRTIO_BLK_S_OK) return 3;
      if (*ram_.Host(kDataGpa + 0x8000 + 100) != 'a' + round) return 4;
      RestartQueue();
      if (event_fd_ < 0) return 5;
    }
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

// Where no ring can be made at start-up (a kernel without io_uring, or io_uring disabled by
// sysctl: here io_uring_setup fails with ENOSYS), the queues use synchronous I/O, which the
// filter allows.
TEST_F(BlkDeviceTest, SynchronousIoUnderTheFilterWhereNoRingCanBeMade) {
  const int status = RunUnderBlkPolicy(
      [&] {
        if (device_ == nullptr || event_fd_ != -1 || device_->QueueEventFd(1) != -1) return 2;
        std::memset(ram_.Host(kDataGpa, 4096), 0x3c, 4096);
        const int w = Add(VIRTIO_BLK_T_OUT, 24, {{kDataGpa, 4096}}, false);
        const int f = Add(VIRTIO_BLK_T_FLUSH, 0, {}, false);
        const int r = Add(VIRTIO_BLK_T_IN, 24, {{kDataGpa + 0x8000, 4096}}, true);
        if (Run(3) != std::vector<uint32_t>{1, 1, 4097}) return 3;
        for (int n : {w, f, r}) {
          if (Status(n) != VIRTIO_BLK_S_OK) return 4;
        }
        RestartQueue();
        const int again = Add(VIRTIO_BLK_T_IN, 24, {{kDataGpa + 0x8000, 4096}}, true);
        if (Run(1) != std::vector<uint32_t>{4097} || Status(again) != VIRTIO_BLK_S_OK) return 5;
        return *ram_.Host(kDataGpa + 0x8000 + 4095) == 0x3c ? 0 : 6;
      },
      [&] {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (ctx == nullptr ||
            seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(io_uring_setup), 0) != 0 ||
            seccomp_load(ctx) != 0) {
          return 101;
        }
        seccomp_release(ctx);
        BlkOptions options;
        options.num_queues = 2;
        MakeDevice(options);
        return 0;
      });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

TEST_F(BlkDeviceTest, ReloadPicksUpAGrownFileAndTellsTheFrontEnd) {
  MakeDevice();
  int notified = 0;
  device_->set_config_change_notifier([&] {
    ++notified;
    return absl::OkStatus();
  });
  device_->Reload();
  EXPECT_EQ(notified, 0);  // same size: nothing to tell
  ASSERT_EQ(truncate(path_.c_str(), 2 * kDiskBytes), 0);
  device_->Reload();
  EXPECT_EQ(notified, 1);
  EXPECT_EQ(device_->capacity_sectors(), 2 * kDiskBytes / 512);
}

}  // namespace
}  // namespace vhost

namespace vhost {
namespace {

// io_uring runs operations on the kernel's side of the seccomp filter: the ring blk sets up must
// refuse every operation and flag blk does not use (opening files, making and connecting
// sockets), or a compromised daemon could do through the ring what its filter forbids.
class BlkRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ASSERT_GE(event_fd_, 0);
    ASSERT_OK(InitBlkRing(8, event_fd_, &ring_));
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

TEST_F(BlkRingTest, RunsTheOperationsBlkUses) {
  std::string path = TempTemplate("blk-ring-test-");
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

TEST_F(BlkRingTest, RefusesOperationsBeyondThem) {
  io_uring_prep_openat(io_uring_get_sqe(&ring_), AT_FDCWD, "/dev/null", O_RDONLY, 0);
  EXPECT_EQ(Run(), -EACCES);
  io_uring_prep_socket(io_uring_get_sqe(&ring_), AF_INET, SOCK_STREAM, 0, 0);
  EXPECT_EQ(Run(), -EACCES);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  io_uring_prep_connect(io_uring_get_sqe(&ring_), event_fd_, reinterpret_cast<sockaddr*>(&addr),
                        sizeof(addr));
  EXPECT_EQ(Run(), -EACCES);
  // An allowed operation with a flag blk never sets (here: forced to a kernel worker).
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
