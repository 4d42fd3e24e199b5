// The virtio-blk model on a real ring in fake guest memory (common/testing:test_queue), over a
// null disk, over a temporary file through io_uring or synchronous I/O, and over a disk whose
// I/O completes only when the test says so.
#include "vhost-user-blk/blk_device.h"

#include <fcntl.h>
#include <linux/io_uring.h>
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
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/block/file_disk.h"
#include "common/block/null_disk.h"
#include "common/sandbox/sandbox.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/page_cache.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"
#include "vhost-user-blk/blk_sandbox.h"

namespace vhost {
namespace {

// A mkdtemp/mkstemp template in the test's own directory ($TEST_TMPDIR; /tmp outside Bazel).
std::string TempTemplate(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/" + name + "XXXXXX";
}

using ::vhost::testing::Buffer;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::StatusIs;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UnsyncedPages;
using ::vhost::testing::UsedElement;

constexpr uint64_t kDiskBytes = 4 << 20;
constexpr uint64_t kDataBytes = 1 << 20;  // the guest's data buffers

// The fds an epoll set watches (the "tfd:" lines of its /proc fdinfo).
std::set<int> EpollFds(int epoll_fd) {
  std::ifstream info("/proc/self/fdinfo/" + std::to_string(epoll_fd));
  std::set<int> fds;
  std::string line;
  while (std::getline(info, line)) {
    std::istringstream words(line);
    std::string tag;
    int fd;
    if (words >> tag >> fd && tag == "tfd:") fds.insert(fd);
  }
  return fds;
}

// A ring whose operations complete only when the test releases them or the ring drains: I/O
// that is certainly in flight when the test looks (or stops the queue). Results are the bytes
// asked for.
class HeldRing : public IoRing {
 public:
  HeldRing()
      : IoRing(0, /*on_io_uring=*/false), event_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

  int event_fd() const override { return event_fd_.get(); }
  bool HasCompletions() const override { return !released_.empty(); }
  void Reap(absl::FunctionRef<void(uint64_t, int64_t)> done) override {
    for (const auto& [token, result] : released_) done(token, result);
    released_.clear();
  }
  void Drain(absl::FunctionRef<void(uint64_t, int64_t)> done) override {
    Reap(done);
    for (const auto& [token, result] : held_) done(token, result);
    held_.clear();
  }

  bool Hold(uint64_t token, int64_t result) {
    held_.emplace_back(token, result);
    return true;
  }
  size_t held() const { return held_.size(); }
  // Completes the `n` oldest operations held and signals, as the kernel would.
  void Release(size_t n) {
    for (; n > 0 && !held_.empty(); --n) {
      released_.push_back(held_.front());
      held_.pop_front();
    }
    Signal();
  }
  void Signal() { eventfd_write(event_fd_.get(), 1); }

 private:
  UniqueFd event_fd_;
  std::deque<std::pair<uint64_t, int64_t>> held_;
  std::vector<std::pair<uint64_t, int64_t>> released_;
};

// The disk's view of a HeldRing.
class HeldQueue : public DiskQueue {
 public:
  explicit HeldQueue(HeldRing& ring) : ring_(ring) {}
  bool SubmitRead(const IovecList& buffers, uint64_t, uint64_t token) override {
    return ring_.Hold(token, Bytes(buffers));
  }
  bool SubmitWrite(const IovecList& buffers, uint64_t, bool, uint64_t token) override {
    return ring_.Hold(token, Bytes(buffers));
  }
  bool SubmitFlush(uint64_t token) override { return ring_.Hold(token, 0); }

 private:
  static int64_t Bytes(const IovecList& buffers) {
    int64_t bytes = 0;
    for (const iovec& v : buffers) bytes += v.iov_len;
    return bytes;
  }

  HeldRing& ring_;
};

class HeldDisk : public Disk {
 public:
  uint64_t size_bytes() const override { return kDiskBytes; }
  std::unique_ptr<IoRing> NewRing(uint32_t) override {
    auto ring = std::make_unique<HeldRing>();
    rings_.push_back(ring.get());
    return ring;
  }
  std::unique_ptr<DiskQueue> NewQueue(IoRing& ring) override {
    return std::make_unique<HeldQueue>(static_cast<HeldRing&>(ring));
  }
  absl::Status Discard(uint64_t, uint64_t) override { return absl::OkStatus(); }
  absl::Status WriteZeroes(uint64_t, uint64_t, bool) override { return absl::OkStatus(); }
  absl::StatusOr<uint64_t> Refresh() override { return kDiskBytes; }

  HeldRing& ring(int index) { return *rings_[index]; }

 private:
  std::vector<HeldRing*> rings_;  // owned by the device
};

class BlkDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path = TempTemplate("blk-test-");
    const int fd = mkstemp(path.data());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kDiskBytes), 0);
    close(fd);
    path_ = path;
    data_ = ram_.Allocate(kDataBytes, 4096);
    queue_ = NewQueue(0);
  }
  void TearDown() override { unlink(path_.c_str()); }

  // A ring (its context's own fds noted, see DeviceFds) for queue `index` of the device.
  std::unique_ptr<TestQueue> NewQueue(int index, uint32_t size = 64) {
    TestQueue::Options options;
    options.index = index;
    options.size = size;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureIndirectDesc);
    std::unique_ptr<TestQueue> queue = *TestQueue::Create(&ram_, options);
    own_fds_[queue.get()] = EpollFds(queue->context().epoll_fd());
    return queue;
  }
  // The fds the device watches on `queue` (its I/O completion eventfd, if it has one).
  std::set<int> DeviceFds(TestQueue& queue) {
    std::set<int> fds = EpollFds(queue.context().epoll_fd());
    for (int fd : own_fds_[&queue]) fds.erase(fd);
    return fds;
  }

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
    MakeDevice(std::move(disk), options);
  }
  // The device on `disk`, with queue_ started on it (stopped on the device it replaces).
  void MakeDevice(std::unique_ptr<Disk> disk, const BlkOptions& options) {
    if (device_) queue_->Stop(*device_);
    device_ = std::make_unique<BlkDevice>(std::move(disk), options);
    ASSERT_OK(device_->SetFeatures(device_->Info().features));
    ASSERT_OK(queue_->Start(*device_));
  }
  HeldRing& MakeHeldDevice() {
    auto disk = std::make_unique<HeldDisk>();
    HeldDisk* held = disk.get();
    MakeDevice(std::move(disk), BlkOptions());
    return held->ring(0);
  }

  // Queues a request on `queue` (default queue_); returns its number (which names its status
  // byte). `indirect`: the chain's buffers go into an indirect table.
  int Add(uint32_t type, uint64_t sector, std::vector<Buffer> data, bool data_writable,
          bool with_status = true, TestQueue* queue = nullptr, bool indirect = false) {
    if (queue == nullptr) queue = queue_.get();
    const int n = static_cast<int>(status_gpas_.size());
    const uint64_t header_gpa = ram_.Allocate(16);
    const uint64_t status_gpa = ram_.Allocate(1);
    status_gpas_.push_back(status_gpa);
    virtio_blk_outhdr header{type, 0, sector};
    std::memcpy(ram_.Host(header_gpa, 16), &header, 16);
    *ram_.Host(status_gpa) = 0xff;
    std::vector<Buffer> readable = {{header_gpa, 16}};
    std::vector<Buffer> writable;
    (data_writable ? writable : readable)
        .insert((data_writable ? writable : readable).end(), data.begin(), data.end());
    if (with_status) writable.push_back({status_gpa, 1});
    absl::StatusOr<uint16_t> id;
    if (indirect) {
      const uint64_t table = ram_.Allocate(16 * (readable.size() + writable.size()));
      id = queue->driver().AddChain(readable, writable, table);
      queue->driver().Publish();
    } else {
      id = queue->Add(readable, writable);
    }
    EXPECT_OK(id);
    ids_.push_back(id.ok() ? *id : 0xffff);
    return n;
  }
  uint8_t Status(int n) { return *ram_.Host(status_gpas_[n]); }
  // The id the device reports request `n` with.
  uint16_t Id(int n) { return ids_[n]; }

  // What a front end does between GET_VRING_BASE and the next start (and what a memory table
  // change does): the queue stops, the engine waits for what is in flight, and it starts
  // again where it stopped.
  void RestartQueue(TestQueue* queue = nullptr) {
    if (queue == nullptr) queue = queue_.get();
    queue->Stop(*device_);
    ASSERT_OK(queue->Start(*device_));
  }

  // Runs the queue until `count` requests came back; returns their used lengths in order.
  std::vector<uint32_t> Run(size_t count, TestQueue* queue = nullptr) {
    if (queue == nullptr) queue = queue_.get();
    std::vector<uint32_t> lens;
    queue->Run(*device_);
    for (int round = 0; round < 1000; ++round) {
      for (const UsedElement& used : queue->Used()) lens.push_back(used.len);
      if (lens.size() >= count) break;
      // Woken by the device's completion eventfd (synchronous I/O has none: all done above).
      queue->RunWhenReady(*device_, absl::Milliseconds(100));
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
  uint64_t data_ = 0;  // kDataBytes of buffers
  std::map<TestQueue*, std::set<int>> own_fds_;
  std::unique_ptr<BlkDevice> device_;  // outlives the queues started on it
  std::unique_ptr<TestQueue> queue_;
  std::vector<uint64_t> status_gpas_;  // by request number
  std::vector<uint16_t> ids_;
  std::string path_;
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
  EXPECT_EQ(DeviceFds(*queue_).size(), 1u);  // io_uring's completion eventfd
  std::string data(8192, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  std::memcpy(ram_.Host(data_, data.size()), data.data(), data.size());
  // Scattered over two buffers.
  const int w = Add(VIRTIO_BLK_T_OUT, 16, {{data_, 4096}, {data_ + 4096, 4096}}, false);
  EXPECT_EQ(Run(1), std::vector<uint32_t>{1});
  EXPECT_EQ(Status(w), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(16 * 512, data.size()), data);
  const int r = Add(VIRTIO_BLK_T_IN, 16, {{data_ + 0x10000, 8192}}, true);
  EXPECT_EQ(Run(1), std::vector<uint32_t>{8192 + 1});
  EXPECT_EQ(Status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(std::memcmp(ram_.Host(data_ + 0x10000, 8192), data.data(), 8192), 0);
  // All reaped: the eventfd, still readable, wakes the worker at most once more (for a signal
  // that came after the last turn), then no more.
  queue_->RunWhenReady(*device_, absl::ZeroDuration());
  EXPECT_FALSE(queue_->RunWhenReady(*device_, absl::ZeroDuration()).has_value());
}

TEST_F(BlkDeviceTest, SynchronousEngineWhereIoUringIsUnavailable) {
  MakeDevice({}, false, false, /*io_uring=*/false);
  EXPECT_TRUE(DeviceFds(*queue_).empty());  // everything completes on the worker thread
  std::memset(ram_.Host(data_, 4096), 0x42, 4096);
  const int w = Add(VIRTIO_BLK_T_OUT, 40, {{data_, 1024}, {data_ + 1024, 3072}}, false);
  const int f = Add(VIRTIO_BLK_T_FLUSH, 0, {}, false);
  const int r = Add(VIRTIO_BLK_T_IN, 40, {{data_ + 0x8000, 4096}}, true);
  EXPECT_EQ(Run(3), (std::vector<uint32_t>{1, 1, 4097}));
  for (int n : {w, f, r}) EXPECT_EQ(Status(n), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(40 * 512, 4), "BBBB");
  EXPECT_EQ(*ram_.Host(data_ + 0x8000 + 4095), 0x42);
}

TEST_F(BlkDeviceTest, ManyRequestsInFlight) {
  MakeDevice();
  // 20 chains of 3 descriptors nearly fill the 64-entry ring.
  for (int i = 0; i < 20; ++i) Add(VIRTIO_BLK_T_IN, i * 8, {{data_ + i * 4096, 4096}}, true);
  const std::vector<uint32_t> lens = Run(20);
  ASSERT_EQ(lens.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Status(i), VIRTIO_BLK_S_OK);
}

TEST_F(BlkDeviceTest, RequestsOutsideTheDiskOrMisalignedFail) {
  BlkOptions options;
  options.logical_block_size = 4096;
  MakeDevice(options);
  const int beyond = Add(VIRTIO_BLK_T_IN, kDiskBytes / 512, {{data_, 4096}}, true);
  const int straddle = Add(VIRTIO_BLK_T_OUT, kDiskBytes / 512 - 8, {{data_, 8192}}, false);
  const int huge_sector = Add(VIRTIO_BLK_T_IN, ~uint64_t{0} - 3, {{data_, 4096}}, true);
  const int misaligned = Add(VIRTIO_BLK_T_IN, 1, {{data_, 4096}}, true);
  const int odd_length = Add(VIRTIO_BLK_T_IN, 0, {{data_, 1000}}, true);
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
  const int n = Add(VIRTIO_BLK_T_GET_ID, 0, {{data_, 20}}, true);
  EXPECT_EQ(Run(1), std::vector<uint32_t>{21});
  EXPECT_EQ(Status(n), VIRTIO_BLK_S_OK);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(ram_.Host(data_, 8))), "disk-42");
}

TEST_F(BlkDeviceTest, ReadOnlyDiskRefusesWrites) {
  MakeDevice({}, false, /*read_only=*/true);
  EXPECT_TRUE(device_->Info().features & Bit(VIRTIO_BLK_F_RO));
  std::memset(ram_.Host(data_, 512), 0xab, 512);
  const int w = Add(VIRTIO_BLK_T_OUT, 0, {{data_, 512}}, false);
  virtio_blk_discard_write_zeroes seg{0, 8, 0};
  std::memcpy(ram_.Host(data_ + 4096, 16), &seg, 16);
  const int d = Add(VIRTIO_BLK_T_DISCARD, 0, {{data_ + 4096, 16}}, false);
  const int r = Add(VIRTIO_BLK_T_IN, 0, {{data_ + 8192, 512}}, true);
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
    std::memset(ram_.Host(data_, 4096), 0x5f, 4096);
    const int w = Add(VIRTIO_BLK_T_OUT, sector, {{data_, 4096}}, false);
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

// One discard or write-zeroes request carries at most max_discard_seg (32) ranges, as the config
// space says; more is answered UNSUPP and nothing is discarded.
TEST_F(BlkDeviceTest, DiscardsOfMoreRangesThanAnnouncedAreRefused) {
  MakeDevice();
  std::memset(ram_.Host(data_, 65536), 0x5a, 65536);
  Add(VIRTIO_BLK_T_OUT, 0, {{data_, 65536}}, false);
  Run(1);
  const uint32_t most = BlkOptions().max_discard_segments;
  std::vector<virtio_blk_discard_write_zeroes> ranges(most + 1);
  for (uint32_t i = 0; i <= most; ++i) ranges[i] = {i, 1, 0};
  const uint32_t bytes = static_cast<uint32_t>(ranges.size() * sizeof(ranges[0]));
  std::memcpy(ram_.Host(data_ + 0x20000, bytes), ranges.data(), bytes);
  const int over = Add(VIRTIO_BLK_T_WRITE_ZEROES, 0, {{data_ + 0x20000, bytes}}, false);
  const int fits = Add(VIRTIO_BLK_T_WRITE_ZEROES, 0,
                       {{data_ + 0x20000, bytes - uint32_t{sizeof(ranges[0])}}}, false);
  Run(2);
  EXPECT_EQ(Status(over), VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(Status(fits), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(most * kSectorSize, 4), "ZZZZ");  // only the refused request had it
  EXPECT_EQ(FileBytes(0, 4), std::string(4, '\0'));
}

TEST_F(BlkDeviceTest, WriteZeroesAndDiscardClearData) {
  MakeDevice();
  std::memset(ram_.Host(data_, 65536), 0x5a, 65536);
  Add(VIRTIO_BLK_T_OUT, 0, {{data_, 65536}}, false);
  Run(1);
  ASSERT_EQ(FileBytes(0, 4), "ZZZZ");
  virtio_blk_discard_write_zeroes segs[2] = {{0, 8, 0},
                                             {64, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}};
  std::memcpy(ram_.Host(data_ + 0x20000, sizeof(segs)), segs, sizeof(segs));
  const int z = Add(VIRTIO_BLK_T_WRITE_ZEROES, 0, {{data_ + 0x20000, sizeof(segs)}}, false);
  virtio_blk_discard_write_zeroes discard{16, 8, 0};
  std::memcpy(ram_.Host(data_ + 0x21000, 16), &discard, 16);
  const int d = Add(VIRTIO_BLK_T_DISCARD, 0, {{data_ + 0x21000, 16}}, false);
  virtio_blk_discard_write_zeroes bad{16, 8, 0x80};  // unknown flag
  std::memcpy(ram_.Host(data_ + 0x22000, 16), &bad, 16);
  const int b = Add(VIRTIO_BLK_T_DISCARD, 0, {{data_ + 0x22000, 16}}, false);
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
  EXPECT_TRUE(DeviceFds(*queue_).empty());
  std::memset(ram_.Host(data_, 4096), 0x77, 4096);
  const int r = Add(VIRTIO_BLK_T_IN, 8, {{data_, 4096}}, true);
  const int w = Add(VIRTIO_BLK_T_OUT, 8, {{data_, 4096}}, false);
  EXPECT_EQ(Run(2), (std::vector<uint32_t>{4097, 1}));
  EXPECT_EQ(Status(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(Status(w), VIRTIO_BLK_S_OK);
  EXPECT_EQ(*ram_.Host(data_ + 100), 0);
}

TEST_F(BlkDeviceTest, StoppingTheQueueFinishesRequestsInFlight) {
  MakeDevice();
  for (int i = 0; i < 8; ++i) Add(VIRTIO_BLK_T_IN, i * 8, {{data_ + i * 4096, 4096}}, true);
  queue_->Run(*device_);  // submitted, not reaped
  // The device itself completes them (the engine only waits): nothing left in flight.
  device_->QueueStopped(queue_->context());
  ASSERT_EQ(queue_->context().in_flight(), 0u);
  EXPECT_EQ(queue_->Used().size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(Status(i), VIRTIO_BLK_S_OK);
  queue_->Stop(*device_);
}

// With I/O certainly in flight (a disk that completes only when told), a stop completes every
// request, with its own id, length and status, and the position reported is after the last
// chain taken: the next start neither skips nor repeats one, and nothing comes back later.
TEST_F(BlkDeviceTest, StopWithIoInFlightCompletesEveryRequestAtTheExactRingPosition) {
  HeldRing& io = MakeHeldDevice();
  for (int i = 0; i < 3; ++i) Add(VIRTIO_BLK_T_IN, i * 8, {{data_ + i * 4096, 4096}}, true);
  Add(VIRTIO_BLK_T_OUT, 64, {{data_, 512}}, false);
  Add(VIRTIO_BLK_T_FLUSH, 0, {}, false);
  const int get_id = Add(VIRTIO_BLK_T_GET_ID, 0, {{data_ + 0x10000, 20}}, true);
  QueueResult result = queue_->Run(*device_);
  EXPECT_EQ(result.kind(), QueueResult::Kind::kDrained);
  std::vector<UsedElement> used = queue_->Used();
  ASSERT_EQ(used.size(), 1u);  // GET_ID needs no I/O
  EXPECT_EQ(used[0].id, Id(get_id));
  EXPECT_EQ(used[0].len, 21u);
  EXPECT_EQ(io.held(), 5u);
  EXPECT_EQ(queue_->context().in_flight(), 5u);

  // Two complete through the eventfd the device watches.
  io.Release(2);
  ASSERT_TRUE(queue_->RunWhenReady(*device_, absl::Seconds(10)).has_value());
  used = queue_->Used();
  ASSERT_EQ(used.size(), 2u);
  EXPECT_EQ(used[0].id, Id(0));
  EXPECT_EQ(used[0].len, 4097u);
  EXPECT_EQ(used[1].id, Id(1));

  // The stop: the device completes the other three itself, before the engine waits.
  device_->QueueStopped(queue_->context());
  ASSERT_EQ(queue_->context().in_flight(), 0u);
  EXPECT_EQ(io.held(), 0u);
  used = queue_->Used();
  ASSERT_EQ(used.size(), 3u);
  EXPECT_EQ(used[0].id, Id(2));
  EXPECT_EQ(used[0].len, 4097u);
  EXPECT_EQ(used[1].id, Id(3));
  EXPECT_EQ(used[1].len, 1u);
  EXPECT_EQ(used[2].id, Id(4));
  EXPECT_EQ(used[2].len, 1u);
  for (int n = 0; n < 6; ++n) EXPECT_EQ(Status(n), VIRTIO_BLK_S_OK) << n;
  queue_->Stop(*device_);
  EXPECT_EQ(queue_->queue().Base(), 6u);  // split ring: the next avail index
  EXPECT_EQ(queue_->queue().Base(), queue_->driver().avail_idx());

  ASSERT_OK(queue_->Start(*device_));
  const int again = Add(VIRTIO_BLK_T_IN, 0, {{data_, 4096}}, true);
  queue_->Run(*device_);
  EXPECT_TRUE(queue_->Used().empty());  // nothing stale; the new read is held
  io.Release(1);
  ASSERT_TRUE(queue_->RunWhenReady(*device_, absl::Seconds(10)).has_value());
  used = queue_->Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4097u);
  EXPECT_EQ(Status(again), VIRTIO_BLK_S_OK);
}

// A completion signal whose completion was reaped already (Reap does not reset the eventfd)
// wakes the worker once, not in a loop until the next I/O completes.
TEST_F(BlkDeviceTest, ACompletionSignalWithNothingToReapWakesTheWorkerOnce) {
  HeldRing& io = MakeHeldDevice();
  ASSERT_EQ(DeviceFds(*queue_), std::set<int>{io.event_fd()});
  io.Signal();
  EXPECT_TRUE(queue_->RunWhenReady(*device_, absl::ZeroDuration()).has_value());
  EXPECT_FALSE(queue_->RunWhenReady(*device_, absl::ZeroDuration()).has_value());
  // A real completion still wakes it.
  const int r = Add(VIRTIO_BLK_T_IN, 0, {{data_, 4096}}, true);
  queue_->Run(*device_);
  io.Release(1);
  ASSERT_TRUE(queue_->RunWhenReady(*device_, absl::Seconds(10)).has_value());
  EXPECT_EQ(queue_->Used().size(), 1u);
  EXPECT_EQ(Status(r), VIRTIO_BLK_S_OK);
}

// Every ring entry in flight (indirect chains take one each): the device takes no more and
// returns Blocked, not Drained (which the worker would spin on), until I/O completes.
TEST_F(BlkDeviceTest, EveryRingEntryInFlightBlocksUntilACompletion) {
  queue_ = NewQueue(0, /*size=*/4);
  HeldRing& io = MakeHeldDevice();
  for (int i = 0; i < 4; ++i) {
    Add(VIRTIO_BLK_T_IN, i * 8, {{data_ + i * 4096, 4096}}, true, true, nullptr, true);
  }
  EXPECT_EQ(queue_->Run(*device_).kind(), QueueResult::Kind::kDrained);
  EXPECT_EQ(queue_->context().in_flight(), 4u);
  // A guest offering a fifth chain now breaks the ring's rules; the device leaves it there.
  queue_->driver().SetAvailIdx(queue_->driver().avail_idx() + 1);
  EXPECT_EQ(queue_->Run(*device_).kind(), QueueResult::Kind::kBlocked);
  EXPECT_EQ(queue_->context().in_flight(), 4u);
  EXPECT_FALSE(queue_->queue().broken());
  io.Release(4);
  ASSERT_TRUE(queue_->RunWhenReady(*device_, absl::Seconds(10)).has_value());
  EXPECT_EQ(queue_->Used().size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Status(i), VIRTIO_BLK_S_OK);
  EXPECT_EQ(queue_->context().in_flight(), 1u);  // the fifth, taken once there was room
}

TEST_F(BlkDeviceTest, RestartedQueuesKeepServingWithNothingStale) {
  BlkOptions options;
  options.num_queues = 2;
  MakeDevice(options);
  const std::set<int> fds = DeviceFds(*queue_);
  ASSERT_EQ(fds.size(), 1u);
  const int event_fd = *fds.begin();
  for (int round = 0; round < 4; ++round) {
    // Stopped with reads in flight: they finish before the stop, none comes back later.
    for (int i = 0; i < 8; ++i) Add(VIRTIO_BLK_T_IN, i * 8, {{data_ + i * 4096, 4096}}, true);
    queue_->Run(*device_);
    RestartQueue();
    EXPECT_EQ(queue_->queue().Base(), queue_->driver().avail_idx());
    EXPECT_EQ(queue_->Used().size(), 8u);
    EXPECT_FALSE(device_->HasCompletions(queue_->context()));
    EXPECT_EQ(DeviceFds(*queue_), fds);  // the same ring, watched again
    pollfd p{event_fd, POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 0), 0) << "a completion signal left over from the last session";
    std::memset(ram_.Host(data_, 4096), 'a' + round, 4096);
    const int w = Add(VIRTIO_BLK_T_OUT, 8 * round, {{data_, 4096}}, false);
    const int r = Add(VIRTIO_BLK_T_IN, 8 * round, {{data_ + 0x10000, 4096}}, true);
    EXPECT_EQ(Run(2), (std::vector<uint32_t>{1, 4097}));
    EXPECT_EQ(Status(w), VIRTIO_BLK_S_OK);
    EXPECT_EQ(Status(r), VIRTIO_BLK_S_OK);
    EXPECT_EQ(*ram_.Host(data_ + 0x10000 + 4095), 'a' + round);
  }
  // A front end that went away: the next one finds the queue as new, on a ring of its own.
  queue_->Stop(*device_);
  device_->Reset();
  queue_ = NewQueue(0);
  ASSERT_OK(queue_->Start(*device_));
  const int r = Add(VIRTIO_BLK_T_IN, 0, {{data_, 4096}}, true);
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
  ASSERT_EQ(DeviceFds(*queue_).size(), 1u);  // io_uring's completion eventfd
  std::vector<std::unique_ptr<TestQueue>> others;
  for (int i = 1; i < 4; ++i) others.push_back(NewQueue(i));
  std::vector<TestQueue*> queues = {queue_.get()};
  for (auto& queue : others) queues.push_back(queue.get());
  const int status = RunUnderBlkPolicy([&] {
    for (TestQueue* queue : queues) {
      if (queue != queue_.get() && !queue->Start(*device_).ok()) return 1;
    }
    for (int round = 0; round < 3; ++round) {
      for (TestQueue* queue : queues) {
        const int i = queue->context().index();
        std::memset(ram_.Host(data_ + i * 0x10000, 4096), 'a' + round + i, 4096);
        const int w =
            Add(VIRTIO_BLK_T_OUT, 8 * i, {{data_ + i * 0x10000, 4096}}, false, true, queue);
        const int r =
            Add(VIRTIO_BLK_T_IN, 8 * i, {{data_ + i * 0x10000 + 0x8000, 4096}}, true, true, queue);
        if (Run(2, queue).size() != 2) return 2;
        if (Status(w) != VIRTIO_BLK_S_OK || Status(r) != VIRTIO_BLK_S_OK) return 3;
        if (*ram_.Host(data_ + i * 0x10000 + 0x8000 + 100) != 'a' + round + i) return 4;
        queue->Stop(*device_);
        if (!queue->Start(*device_).ok()) return 5;
      }
    }
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  // The child's queues ran on io_uring: each watched its ring's completion eventfd. (Its
  // epoll sets are the parent's too, and its fds the parent's files: what it watched shows here.)
  for (TestQueue* queue : queues) EXPECT_EQ(DeviceFds(*queue).size(), 1u);
}

// Where no ring can be made at start-up (a kernel without io_uring, or io_uring disabled by
// sysctl: here io_uring_setup fails with ENOSYS), the queues use synchronous I/O, which the
// filter allows.
TEST_F(BlkDeviceTest, SynchronousIoUnderTheFilterWhereNoRingCanBeMade) {
  std::unique_ptr<TestQueue> second = NewQueue(1);
  const int status = RunUnderBlkPolicy(
      [&] {
        if (device_ == nullptr || !second->Start(*device_).ok()) return 2;
        std::memset(ram_.Host(data_, 4096), 0x3c, 4096);
        const int w = Add(VIRTIO_BLK_T_OUT, 24, {{data_, 4096}}, false);
        const int f = Add(VIRTIO_BLK_T_FLUSH, 0, {}, false);
        const int r = Add(VIRTIO_BLK_T_IN, 24, {{data_ + 0x8000, 4096}}, true);
        if (Run(3) != std::vector<uint32_t>{1, 1, 4097}) return 3;
        for (int n : {w, f, r}) {
          if (Status(n) != VIRTIO_BLK_S_OK) return 4;
        }
        RestartQueue();
        const int again = Add(VIRTIO_BLK_T_IN, 24, {{data_ + 0x8000, 4096}}, true);
        if (Run(1) != std::vector<uint32_t>{4097} || Status(again) != VIRTIO_BLK_S_OK) return 5;
        const int other =
            Add(VIRTIO_BLK_T_IN, 24, {{data_ + 0x9000, 4096}}, true, true, second.get());
        if (Run(1, second.get()) != std::vector<uint32_t>{4097} ||
            Status(other) != VIRTIO_BLK_S_OK) {
          return 6;
        }
        return *ram_.Host(data_ + 0x8000 + 4095) == 0x3c ? 0 : 7;
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
        // Synchronous queues: no completion eventfd to watch.
        return DeviceFds(*queue_).empty() ? 0 : 102;
      });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  // What the child watched on the shared epoll sets: nothing of its own.
  EXPECT_TRUE(DeviceFds(*second).empty());
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
