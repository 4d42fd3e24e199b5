// vhost-user-blk driven over its socket by our front end: every request type and error status,
// read-only disks, write-through, several queues at once, durability across a daemon crash,
// resizing with a config-change notification, reconnects, requests in flight across a SIGKILL.
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/device/inflight.h"
#include "common/testing/page_cache.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/blk_request.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/dirty_bitmap.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::AddBlkRequest;
using frontend::AllocateBlkRequest;
using frontend::BlkRequest;
using frontend::DaemonProcess;
using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::Frontend;
using frontend::FrontendQueue;
using frontend::GuestRam;
using testing::RingLayout;
using testing::UsedElement;
using ::vhost::testing::UnsyncedPages;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr uint64_t kDiskBytes = 8 << 20;
constexpr uint64_t kSectors = kDiskBytes / 512;
constexpr uint64_t kWanted =
    Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(kFeatureIndirectDesc) |
    Bit(VIRTIO_BLK_F_FLUSH) | Bit(VIRTIO_BLK_F_CONFIG_WCE) | Bit(VIRTIO_BLK_F_DISCARD) |
    Bit(VIRTIO_BLK_F_WRITE_ZEROES) | Bit(VIRTIO_BLK_F_BLK_SIZE) | Bit(VIRTIO_BLK_F_SEG_MAX) |
    Bit(VIRTIO_BLK_F_MQ) | Bit(VIRTIO_BLK_F_RO) | Bit(VIRTIO_BLK_F_TOPOLOGY);

class BlkDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("blk"));
    socket_ = session_->socket();
    image_ = session_->File("disk.img");
    const int fd = open(image_.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kDiskBytes), 0);
    close(fd);
  }

  void StartDaemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--socket-path=" + socket_, "--blk-file=" + image_};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-blk/vhost-user-blk"), args, socket_));
  }
  DaemonProcess* daemon() { return session_->daemon(); }

  // `inflight`: ask for the inflight region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD).
  void Open(uint32_t queues = 1, RingLayout layout = RingLayout::kSplit, bool inflight = false) {
    DeviceOptions options;
    options.features = kWanted | (layout == RingLayout::kPacked ? Bit(kFeatureRingPacked) : 0);
    options.required_features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) |
                                (layout == RingLayout::kPacked ? Bit(kFeatureRingPacked) : 0);
    options.ram_size = 32 << 20;
    options.queue_sizes.assign(queues, 128);
    options.inflight = inflight;
    options_ = options;
    device_.reset();  // the daemon serves one front end at a time
    ASSERT_OK_AND_ASSIGN(device_, session_->Open(options, socket_));
    frontend_ = device_->frontend();
    ram_ = device_->ram();
    acked_ = device_->acked_features();
  }
  FrontendQueue* queue(int i) { return device_->queue(i); }
  // Sector i of the image holds 512 bytes of `byte(i)`, for sectors 0..count-1.
  void FillSectors(int count, char (*byte)(int)) {
    std::string pattern;
    for (int i = 0; i < count; ++i) pattern.append(512, byte(i));
    const int fd = open(image_.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_EQ(pwrite(fd, pattern.data(), pattern.size(), 0), static_cast<ssize_t>(pattern.size()));
    close(fd);
  }

  // Sends one request on `queue` and waits for it; returns the status byte.
  uint8_t Do(const BlkRequest& r, int q = 0, bool indirect = false) {
    EXPECT_OK(AddBlkRequest(&queue(q)->ring(), r, indirect));
    EXPECT_OK(queue(q)->Submit());
    absl::StatusOr<UsedElement> used = queue(q)->WaitForUsed(kTimeout);
    EXPECT_OK(used);
    return *r.status;
  }
  BlkRequest Make(uint32_t type, uint64_t sector, uint32_t len) {
    absl::StatusOr<BlkRequest> r = AllocateBlkRequest(ram_, type, sector, len);
    EXPECT_OK(r);
    return *r;
  }
  std::string FileBytes(uint64_t offset, size_t len) {
    std::string out(len, '\0');
    const int fd = open(image_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(pread(fd, out.data(), len, offset), static_cast<ssize_t>(len));
    close(fd);
    return out;
  }
  // Syncs the image so the next round starts with no dirty page.
  int SyncImage() {
    const int fd = open(image_.c_str(), O_RDWR | O_CLOEXEC);
    const int rc = fd >= 0 ? fdatasync(fd) : -1;
    if (fd >= 0) close(fd);
    return rc;
  }
  virtio_blk_config Config() {
    virtio_blk_config config{};
    absl::StatusOr<std::vector<uint8_t>> bytes = frontend_->GetConfig(0, 60);
    EXPECT_OK(bytes);
    if (bytes.ok()) std::memcpy(&config, bytes->data(), std::min<size_t>(bytes->size(), 60));
    return config;
  }

  void EveryRequestCompletesOnceAcrossSigkills(RingLayout layout);

  std::unique_ptr<DaemonSession> session_;
  std::string image_, socket_;
  DeviceOptions options_;  // of the last Open (a reconnect repeats them)
  std::unique_ptr<DeviceConnection> device_;
  Frontend* frontend_ = nullptr;  // device_'s
  GuestRam* ram_ = nullptr;
  uint64_t acked_ = 0;
};

TEST_F(BlkDaemonTest, ConfigSpaceAndFeatures) {
  StartDaemon({"--num-queues=2", "--logical-block-size=4096"});
  Open();
  const virtio_blk_config config = Config();
  EXPECT_EQ(config.capacity, kSectors);
  EXPECT_EQ(config.blk_size, 4096u);
  EXPECT_EQ(config.num_queues, 2);
  EXPECT_EQ(config.wce, 1);
  EXPECT_EQ(frontend_->queue_num(), 2u);
  for (uint32_t bit : {VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES,
                       VIRTIO_BLK_F_CONFIG_WCE, VIRTIO_BLK_F_MQ, VIRTIO_BLK_F_BLK_SIZE}) {
    EXPECT_TRUE(acked_ & Bit(bit)) << bit;
  }
  EXPECT_FALSE(acked_ & Bit(VIRTIO_BLK_F_RO));
}

TEST_F(BlkDaemonTest, WritesReachTheImageAndReadBackOnEveryLayout) {
  StartDaemon({"--packed-ring"});
  for (RingLayout layout : {RingLayout::kSplit, RingLayout::kPacked}) {
    for (bool indirect : {false, true}) {
      Open(1, layout);
      const uint64_t sector = layout == RingLayout::kPacked ? 2048 : 1024 + (indirect ? 64 : 0);
      BlkRequest w = Make(VIRTIO_BLK_T_OUT, sector, 16384);
      for (uint32_t i = 0; i < 16384; ++i) w.data[i] = static_cast<uint8_t>(i * 31 + sector);
      ASSERT_EQ(Do(w, 0, indirect), VIRTIO_BLK_S_OK);
      EXPECT_EQ(FileBytes(sector * 512, 16384),
                std::string(reinterpret_cast<char*>(w.data), 16384));
      BlkRequest r = Make(VIRTIO_BLK_T_IN, sector, 16384);
      ASSERT_EQ(Do(r, 0, indirect), VIRTIO_BLK_S_OK);
      EXPECT_EQ(std::memcmp(r.data, w.data, 16384), 0);
    }
  }
}

TEST_F(BlkDaemonTest, SynchronousIoEngine) {
  StartDaemon({"--io-engine=sync"});
  Open();
  BlkRequest w = Make(VIRTIO_BLK_T_OUT, 300, 8192);
  std::memset(w.data, 0x21, 8192);
  ASSERT_EQ(Do(w), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(300 * 512, 8192), std::string(8192, '!'));
  BlkRequest r = Make(VIRTIO_BLK_T_IN, 300, 8192);
  ASSERT_EQ(Do(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.data[8191], 0x21);
}

TEST_F(BlkDaemonTest, FlushGetIdDiscardWriteZeroesAndUnknownTypes) {
  StartDaemon({"--serial=SERIAL-0042"});
  Open();
  BlkRequest fill = Make(VIRTIO_BLK_T_OUT, 0, 65536);
  std::memset(fill.data, 0x5a, 65536);
  ASSERT_EQ(Do(fill), VIRTIO_BLK_S_OK);
  EXPECT_EQ(Do(Make(VIRTIO_BLK_T_FLUSH, 0, 0)), VIRTIO_BLK_S_OK);

  BlkRequest id = Make(VIRTIO_BLK_T_GET_ID, 0, 20);
  ASSERT_EQ(Do(id), VIRTIO_BLK_S_OK);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(id.data), 11), "SERIAL-0042");

  BlkRequest zeroes = Make(VIRTIO_BLK_T_WRITE_ZEROES, 0, 16);
  virtio_blk_discard_write_zeroes segment{0, 16, 0};
  std::memcpy(zeroes.data, &segment, sizeof(segment));
  ASSERT_EQ(Do(zeroes), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(0, 8192), std::string(8192, '\0'));
  BlkRequest discard = Make(VIRTIO_BLK_T_DISCARD, 0, 16);
  segment = {64, 16, 0};
  std::memcpy(discard.data, &segment, sizeof(segment));
  ASSERT_EQ(Do(discard), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(64 * 512, 8192), std::string(8192, '\0'));
  EXPECT_EQ(FileBytes(16 * 512, 4), "ZZZZ");  // between the two ranges

  EXPECT_EQ(Do(Make(0x77, 0, 512)), VIRTIO_BLK_S_UNSUPP);
}

TEST_F(BlkDaemonTest, ErrorStatusesAndNoIoOutsideTheImage) {
  StartDaemon();
  Open();
  EXPECT_EQ(Do(Make(VIRTIO_BLK_T_IN, kSectors, 512)), VIRTIO_BLK_S_IOERR);
  BlkRequest straddle = Make(VIRTIO_BLK_T_OUT, kSectors - 1, 1024);
  std::memset(straddle.data, 0x11, 1024);
  EXPECT_EQ(Do(straddle), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(Do(Make(VIRTIO_BLK_T_IN, 0, 100)), VIRTIO_BLK_S_IOERR);  // not whole sectors
  BlkRequest bad_discard = Make(VIRTIO_BLK_T_DISCARD, 0, 16);
  virtio_blk_discard_write_zeroes segment{kSectors - 1, 16, 0};
  std::memcpy(bad_discard.data, &segment, sizeof(segment));
  EXPECT_EQ(Do(bad_discard), VIRTIO_BLK_S_IOERR);
  struct stat st;
  ASSERT_EQ(stat(image_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kDiskBytes);  // the image did not grow
  EXPECT_EQ(FileBytes(kDiskBytes - 512, 512), std::string(512, '\0'));
  EXPECT_TRUE(daemon()->IsAlive());
}

TEST_F(BlkDaemonTest, ReadOnlyDisk) {
  StartDaemon({"--read-only"});
  Open();
  EXPECT_TRUE(acked_ & Bit(VIRTIO_BLK_F_RO));
  BlkRequest w = Make(VIRTIO_BLK_T_OUT, 0, 512);
  std::memset(w.data, 0x33, 512);
  EXPECT_EQ(Do(w), VIRTIO_BLK_S_IOERR);
  EXPECT_EQ(Do(Make(VIRTIO_BLK_T_IN, 0, 512)), VIRTIO_BLK_S_OK);
  EXPECT_EQ(FileBytes(0, 512), std::string(512, '\0'));
}

// With the cache in write-back mode a completed write may sit dirty in the host page cache; once
// the guest clears wce, a write completes only when it is on stable storage.
TEST_F(BlkDaemonTest, GuestCanSwitchToWriteThrough) {
  for (const char* engine : {"io_uring", "sync"}) {
    SCOPED_TRACE(engine);
    StartDaemon({std::string("--io-engine=") + engine});
    Open();
    EXPECT_EQ(Config().wce, 1);  // write-back by default
    BlkRequest back = Make(VIRTIO_BLK_T_OUT, 0, 4096);
    std::memset(back.data, 0x43, 4096);
    EXPECT_EQ(Do(back), VIRTIO_BLK_S_OK);
    ASSERT_OK_AND_ASSIGN(const uint64_t dirty_write_back, UnsyncedPages(image_, 0, 4096));
    EXPECT_EQ(dirty_write_back, 1u) << "a write-back write was synced: nothing to tell apart";

    const uint8_t off = 0;
    ASSERT_OK(frontend_->SetConfig(offsetof(virtio_blk_config, wce), absl::MakeConstSpan(&off, 1)));
    EXPECT_EQ(Config().wce, 0);
    BlkRequest w = Make(VIRTIO_BLK_T_OUT, 8, 4096);
    std::memset(w.data, 0x44, 4096);
    EXPECT_EQ(Do(w), VIRTIO_BLK_S_OK);
    ASSERT_OK_AND_ASSIGN(const uint64_t dirty_write_through, UnsyncedPages(image_, 8 * 512, 4096));
    EXPECT_EQ(dirty_write_through, 0u) << "a write-through write completed before it was synced";
    EXPECT_EQ(FileBytes(8 * 512, 4), "DDDD");
    // Everything else in config space is read-only.
    const uint8_t byte = 1;
    EXPECT_FALSE(frontend_->SetConfig(0, absl::MakeConstSpan(&byte, 1)).ok());
    ASSERT_OK(daemon()->Signal(SIGKILL));
    ASSERT_OK(daemon()->Wait(kTimeout).status());
    ASSERT_EQ(SyncImage(), 0);
  }
}

TEST_F(BlkDaemonTest, QueuesWorkInParallel) {
  StartDaemon({"--num-queues=2"});
  Open(2);
  std::vector<std::thread> threads;
  for (int q = 0; q < 2; ++q) {
    threads.emplace_back([this, q] {
      for (int i = 0; i < 50; ++i) {
        const uint64_t sector = q * 8192 + i * 8;
        BlkRequest w = Make(VIRTIO_BLK_T_OUT, sector, 4096);
        std::memset(w.data, 'a' + q, 4096);
        EXPECT_EQ(Do(w, q), VIRTIO_BLK_S_OK);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(FileBytes(49 * 8 * 512, 4096), std::string(4096, 'a'));
  EXPECT_EQ(FileBytes((8192 + 49 * 8) * 512, 4096), std::string(4096, 'b'));
}

// A completed FLUSH means the data is on stable storage, not only in the host page cache (which
// would survive the daemon's crash anyway, but not the host's).
TEST_F(BlkDaemonTest, FlushedWritesAreOnStableStorageBeforeACrash) {
  for (const char* engine : {"io_uring", "sync"}) {
    SCOPED_TRACE(engine);
    StartDaemon({std::string("--io-engine=") + engine});
    Open();
    BlkRequest w = Make(VIRTIO_BLK_T_OUT, 4096, 8192);
    std::memset(w.data, 0x66, 8192);
    ASSERT_EQ(Do(w), VIRTIO_BLK_S_OK);
    ASSERT_OK_AND_ASSIGN(const uint64_t dirty_after_write, UnsyncedPages(image_, 4096 * 512, 8192));
    EXPECT_EQ(dirty_after_write, 2u) << "the write did not go through the page cache";
    ASSERT_EQ(Do(Make(VIRTIO_BLK_T_FLUSH, 0, 0)), VIRTIO_BLK_S_OK);
    ASSERT_OK_AND_ASSIGN(const uint64_t dirty_after_flush, UnsyncedPages(image_, 4096 * 512, 8192));
    EXPECT_EQ(dirty_after_flush, 0u) << "FLUSH completed with the data only in the page cache";
    ASSERT_OK(daemon()->Signal(SIGKILL));
    ASSERT_OK(daemon()->Wait(kTimeout).status());
    EXPECT_EQ(FileBytes(4096 * 512, 8192), std::string(8192, 'f'));
    ASSERT_EQ(SyncImage(), 0);
  }
}

TEST_F(BlkDaemonTest, GrowingTheImageNotifiesTheFrontEnd) {
  StartDaemon();
  Open();
  ASSERT_EQ(truncate(image_.c_str(), 2 * kDiskBytes), 0);
  ASSERT_OK(daemon()->Signal(SIGHUP));
  ASSERT_NE(frontend_->backend_channel(), nullptr);
  ASSERT_OK(frontend_->backend_channel()
                ->ReceiveAndAck(BackendRequest::kConfigChangeMsg, kTimeout)
                .status());
  EXPECT_EQ(Config().capacity, 2 * kSectors);
  EXPECT_EQ(Do(Make(VIRTIO_BLK_T_IN, 2 * kSectors - 8, 4096)), VIRTIO_BLK_S_OK);
}

TEST_F(BlkDaemonTest, NextFrontEndSeesWhatThePreviousWrote) {
  StartDaemon();
  Open();
  BlkRequest w = Make(VIRTIO_BLK_T_OUT, 200, 4096);
  std::memset(w.data, 0x77, 4096);
  ASSERT_EQ(Do(w), VIRTIO_BLK_S_OK);
  // Leave with reads still queued.
  for (int i = 0; i < 8; ++i)
    ASSERT_OK(AddBlkRequest(&queue(0)->ring(), Make(VIRTIO_BLK_T_IN, i * 8, 4096)));
  ASSERT_OK(queue(0)->Submit());
  frontend_->Close();
  device_.reset();
  Open();
  BlkRequest r = Make(VIRTIO_BLK_T_IN, 200, 4096);
  ASSERT_EQ(Do(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.data[100], 0x77);
}

// The daemon makes its io_uring rings before its seccomp filter (which forbids io_uring_setup)
// and reuses them: across front ends, and across queue stops with requests in flight.
TEST_F(BlkDaemonTest, RingsServeAcrossReconnectsAndQueueRestarts) {
  StartDaemon({"--num-queues=2"});
  for (int session = 0; session < 3; ++session) {
    Open(2);
    for (int restart = 0; restart < 3; ++restart) {
      for (int q = 0; q < 2; ++q) {
        const uint64_t sector = (session * 16 + restart * 2 + q) * 8;
        BlkRequest w = Make(VIRTIO_BLK_T_OUT, sector, 4096);
        std::memset(w.data, 'A' + session * 6 + restart * 2 + q, 4096);
        ASSERT_EQ(Do(w, q), VIRTIO_BLK_S_OK);
        BlkRequest r = Make(VIRTIO_BLK_T_IN, sector, 4096);
        ASSERT_EQ(Do(r, q), VIRTIO_BLK_S_OK);
        ASSERT_EQ(r.data[4095], w.data[0]);
        // Stopped (GET_VRING_BASE) with reads queued, then started again where it stopped.
        for (int i = 0; i < 4; ++i)
          ASSERT_OK(AddBlkRequest(&queue(q)->ring(), Make(VIRTIO_BLK_T_IN, i * 8, 4096)));
        ASSERT_OK(queue(q)->Submit());
        ASSERT_OK(device_->RestartQueue(q).status());
      }
    }
    // Leave with requests in flight: the next front end gets the same rings.
    for (int i = 0; i < 4; ++i)
      ASSERT_OK(AddBlkRequest(&queue(0)->ring(), Make(VIRTIO_BLK_T_IN, i * 8, 4096)));
    ASSERT_OK(queue(0)->Submit());
    frontend_->Close();
    device_.reset();
  }
  Open(2);
  for (int q = 0; q < 2; ++q) {
    BlkRequest r = Make(VIRTIO_BLK_T_IN, (2 * 16 + 2 * 2 + q) * 8, 4096);
    ASSERT_EQ(Do(r, q), VIRTIO_BLK_S_OK);
    EXPECT_EQ(r.data[0], 'A' + 2 * 6 + 2 * 2 + q);
  }
  EXPECT_TRUE(daemon()->IsAlive());
}

// A daemon killed with requests in flight: a new one on the same socket, handed the front end's
// inflight region, runs them, then serves the ring from where the old one stopped taking; every
// request completes exactly once with the right data (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD).
TEST_F(BlkDaemonTest, RequestsInFlightAtASigkillCompleteOnceAfterARestart) {
  FillSectors(16, [](int i) { return static_cast<char>('a' + i); });
  StartDaemon();
  Open(1, RingLayout::kSplit, /*inflight=*/true);
  uint8_t* region = device_->inflight_region();
  auto* header = reinterpret_cast<InflightQueueHeader*>(region);
  auto desc = [&](uint16_t head) {
    return reinterpret_cast<InflightDescSplit*>(region + sizeof(InflightQueueHeader)) + head;
  };
  EXPECT_EQ(header->version, kInflightVersion);
  EXPECT_EQ(header->desc_num, 128);
  auto read = [&](uint64_t sector) { return Make(VIRTIO_BLK_T_IN, sector, 512); };
  for (uint64_t sector = 0; sector < 4; ++sector) {
    BlkRequest r = read(sector);
    ASSERT_EQ(Do(r), VIRTIO_BLK_S_OK);
    EXPECT_EQ(r.data[0], 'a' + sector);
  }
  // Stopped (so the daemon's last record is written), then killed.
  ASSERT_OK(queue(0)->Stop(frontend_).status());
  ASSERT_OK(daemon()->Signal(SIGKILL));
  ASSERT_OK(daemon()->Wait(kTimeout).status());
  // The daemon recorded every completion and left nothing in flight.
  EXPECT_EQ(header->used_idx, 4);
  for (uint16_t head = 0; head < 128; ++head) ASSERT_EQ(desc(head)->inflight, 0) << head;

  // Three requests the killed daemon had taken (recorded as a daemon records them), one it
  // never saw.
  std::vector<BlkRequest> requests;
  std::vector<uint16_t> heads;
  for (uint64_t sector = 4; sector < 8; ++sector) {
    requests.push_back(read(sector));
    ASSERT_OK_AND_ASSIGN(const uint16_t head, AddBlkRequest(&queue(0)->ring(), requests.back()));
    heads.push_back(head);
  }
  ASSERT_OK(queue(0)->Submit());
  for (int i = 0; i < 3; ++i) {
    desc(heads[i])->counter = 10 + i;
    desc(heads[i])->inflight = 1;
  }

  StartDaemon();
  ASSERT_OK(device_->Reconnect(socket_, options_));
  frontend_ = device_->frontend();
  // One more, sent to the new daemon.
  requests.push_back(read(8));
  ASSERT_OK_AND_ASSIGN(const uint16_t last, AddBlkRequest(&queue(0)->ring(), requests.back()));
  heads.push_back(last);
  ASSERT_OK(queue(0)->Submit());
  std::vector<int> completions(heads.size(), 0);
  for (size_t i = 0; i < heads.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue(0)->WaitForUsed(kTimeout));
    for (size_t j = 0; j < heads.size(); ++j) completions[j] += used.id == heads[j];
  }
  EXPECT_EQ(completions, std::vector<int>(heads.size(), 1));
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(*requests[i].status, VIRTIO_BLK_S_OK) << i;
    EXPECT_EQ(requests[i].data[511], 'a' + 4 + i) << i;
  }
  // Nothing more arrives before the next request's own completion.
  BlkRequest next = read(9);
  ASSERT_OK_AND_ASSIGN(const uint16_t next_head, AddBlkRequest(&queue(0)->ring(), next));
  ASSERT_OK(queue(0)->Submit());
  ASSERT_OK_AND_ASSIGN(const UsedElement used, queue(0)->WaitForUsed(kTimeout));
  EXPECT_EQ(used.id, next_head);
  EXPECT_EQ(next.data[0], 'a' + 9);
  ASSERT_OK(queue(0)->Stop(frontend_).status());
  EXPECT_EQ(header->used_idx, 10);
  for (uint16_t head = 0; head < 128; ++head) EXPECT_EQ(desc(head)->inflight, 0) << head;
  EXPECT_TRUE(daemon()->IsAlive());
}

// The same with whatever real kills leave: requests submitted, the daemon SIGKILLed while it
// serves them and a new one started, four times over; every request completes exactly once
// with its data (without the tracking, those in flight at a kill never complete).
void BlkDaemonTest::EveryRequestCompletesOnceAcrossSigkills(RingLayout layout) {
  constexpr int kSectorsUsed = 64;
  const bool packed = layout == RingLayout::kPacked;
  FillSectors(kSectorsUsed, [](int i) { return static_cast<char>(i); });
  StartDaemon(packed ? std::vector<std::string>{"--packed-ring"} : std::vector<std::string>{});
  Open(1, layout, /*inflight=*/true);
  // Fewer requests than the ring holds (3 descriptors each): no head (split) or buffer id
  // (packed) is reused, so one names one request.
  std::vector<BlkRequest> requests;
  std::vector<uint64_t> sectors;
  std::vector<int> index_of_head(128, -1);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 10; ++i) {
      const uint64_t sector = (round * 10 + i) % kSectorsUsed;
      requests.push_back(Make(VIRTIO_BLK_T_IN, sector, 512));
      sectors.push_back(sector);
      ASSERT_OK_AND_ASSIGN(const uint16_t head, AddBlkRequest(&queue(0)->ring(), requests.back()));
      index_of_head[head] = static_cast<int>(requests.size()) - 1;
    }
    ASSERT_OK(queue(0)->Submit());
    ASSERT_OK(daemon()->Signal(SIGKILL));
    ASSERT_OK(daemon()->Wait(kTimeout).status());
    StartDaemon(packed ? std::vector<std::string>{"--packed-ring"} : std::vector<std::string>{});
    // Packed: the front end's base is its own view of the ring, not where the daemon was.
    ASSERT_OK(device_->Reconnect(socket_, options_));
  }
  std::vector<int> completions(requests.size(), 0);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue(0)->WaitForUsed(kTimeout));
    ASSERT_LT(used.id, 128u);
    ASSERT_GE(index_of_head[used.id], 0) << used.id;
    ++completions[index_of_head[used.id]];
  }
  EXPECT_EQ(completions, std::vector<int>(requests.size(), 1));
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(*requests[i].status, VIRTIO_BLK_S_OK) << i;
    EXPECT_EQ(requests[i].data[0], static_cast<uint8_t>(sectors[i])) << i;
  }
  // Nothing more arrives before the next request's own completion.
  BlkRequest next = Make(VIRTIO_BLK_T_IN, 3, 512);
  ASSERT_OK_AND_ASSIGN(const uint16_t next_head, AddBlkRequest(&queue(0)->ring(), next));
  ASSERT_OK(queue(0)->Submit());
  ASSERT_OK_AND_ASSIGN(const UsedElement used, queue(0)->WaitForUsed(kTimeout));
  EXPECT_EQ(used.id, next_head);
  EXPECT_EQ(next.data[0], 3);
  // Stopped, the daemon's record matches the ring: every completion counted, none in flight.
  ASSERT_OK(queue(0)->Stop(device_->frontend()).status());
  const uint8_t* region = device_->inflight_region();
  if (packed) {
    const auto* header = reinterpret_cast<const InflightQueueHeaderPacked*>(region);
    EXPECT_EQ(header->packed_state, kInflightPackedState);
    EXPECT_EQ(header->used_idx, queue(0)->ring().used_idx());
    EXPECT_EQ(header->used_wrap_counter, queue(0)->ring().used_wrap());
    EXPECT_EQ(header->used_idx, ((requests.size() + 1) * 3) % 128);
    const auto* desc = reinterpret_cast<const InflightDescPacked*>(region + sizeof(*header));
    for (uint16_t r = 0; r < 128; ++r) EXPECT_EQ(desc[r].inflight, 0) << r;
    return;
  }
  const auto* header = reinterpret_cast<const InflightQueueHeader*>(region);
  EXPECT_EQ(header->used_idx, queue(0)->ring().UsedIdx());
  EXPECT_EQ(header->used_idx, requests.size() + 1);
  const auto* desc = reinterpret_cast<const InflightDescSplit*>(region + sizeof(*header));
  for (uint16_t head = 0; head < 128; ++head) EXPECT_EQ(desc[head].inflight, 0) << head;
}

TEST_F(BlkDaemonTest, EveryRequestCompletesOnceAcrossSigkills) {
  EveryRequestCompletesOnceAcrossSigkills(RingLayout::kSplit);
}

// Packed rings: used elements overwrite the ring descriptors of requests still in flight, and
// the front end cannot give a restarted daemon the ring position; the region holds both.
TEST_F(BlkDaemonTest, EveryRequestCompletesOnceAcrossSigkillsOnAPackedRing) {
  EveryRequestCompletesOnceAcrossSigkills(RingLayout::kPacked);
}

// A packed ring stopped cleanly, the daemon killed, more requests submitted while it is down: a
// new daemon starts where the region says the old one stopped, not at the front end's (stale)
// base, so it takes the new requests; each completes once with its data.
TEST_F(BlkDaemonTest, APackedRingResumesAtTheRegionsPositionAfterASigkill) {
  FillSectors(16, [](int i) { return static_cast<char>('a' + i); });
  StartDaemon({"--packed-ring"});
  Open(1, RingLayout::kPacked, /*inflight=*/true);
  const uint8_t* region = device_->inflight_region();
  const auto* header = reinterpret_cast<const InflightQueueHeaderPacked*>(region);
  const auto* desc = reinterpret_cast<const InflightDescPacked*>(region + sizeof(*header));
  EXPECT_EQ(header->version, kInflightVersion);
  EXPECT_EQ(header->desc_num, 128);
  EXPECT_EQ(device_->inflight_description().mmap_size, InflightQueueBytes(128));
  auto read = [&](uint64_t sector) { return Make(VIRTIO_BLK_T_IN, sector, 512); };
  for (uint64_t sector = 0; sector < 4; ++sector) {
    BlkRequest r = read(sector);
    ASSERT_EQ(Do(r), VIRTIO_BLK_S_OK);
    EXPECT_EQ(r.data[0], 'a' + sector);
  }
  ASSERT_OK(queue(0)->Stop(frontend_).status());
  ASSERT_OK(daemon()->Signal(SIGKILL));
  ASSERT_OK(daemon()->Wait(kTimeout).status());
  EXPECT_EQ(header->packed_state, kInflightPackedState);
  EXPECT_EQ(header->used_idx, 12);  // four chains of three descriptors
  EXPECT_EQ(header->used_wrap_counter, 1);
  for (uint16_t r = 0; r < 128; ++r) ASSERT_EQ(desc[r].inflight, 0) << r;

  std::vector<BlkRequest> requests;
  std::vector<uint16_t> ids;
  for (uint64_t sector = 4; sector < 7; ++sector) {
    requests.push_back(read(sector));
    ASSERT_OK_AND_ASSIGN(const uint16_t id, AddBlkRequest(&queue(0)->ring(), requests.back()));
    ids.push_back(id);
  }
  ASSERT_OK(queue(0)->Submit());
  StartDaemon({"--packed-ring"});
  ASSERT_OK(device_->Reconnect(socket_, options_));
  frontend_ = device_->frontend();
  std::vector<int> completions(ids.size(), 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue(0)->WaitForUsed(kTimeout));
    for (size_t j = 0; j < ids.size(); ++j) completions[j] += used.id == ids[j];
  }
  EXPECT_EQ(completions, std::vector<int>(ids.size(), 1));
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(*requests[i].status, VIRTIO_BLK_S_OK) << i;
    EXPECT_EQ(requests[i].data[511], 'a' + 4 + i) << i;
  }
  ASSERT_OK(queue(0)->Stop(frontend_).status());
  EXPECT_EQ(header->used_idx, 21);
  EXPECT_TRUE(daemon()->IsAlive());
}

// The packed region is front-end memory: a daemon started on one that breaks the rules (a
// chain looping through its records) or records a chain outside guest memory breaks the queue,
// says so on its error eventfd, and stays up for the next front end.
TEST_F(BlkDaemonTest, AHostilePackedRegionBreaksTheQueueNotTheDaemon) {
  FillSectors(1, [](int) { return 'z'; });
  StartDaemon({"--packed-ring"});
  auto wait_for_error = [&] {
    pollfd pfd{queue(0)->err_fd(), POLLIN, 0};
    return poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(kTimeout))) == 1;
  };
  for (bool loop : {true, false}) {
    Open(1, RingLayout::kPacked, /*inflight=*/true);
    BlkRequest r = Make(VIRTIO_BLK_T_IN, 0, 512);
    ASSERT_EQ(Do(r), VIRTIO_BLK_S_OK);
    ASSERT_OK(queue(0)->Stop(frontend_).status());
    ASSERT_OK(daemon()->Signal(SIGKILL));
    ASSERT_OK(daemon()->Wait(kTimeout).status());
    uint8_t* region = device_->inflight_region();
    auto* header = reinterpret_cast<InflightQueueHeaderPacked*>(region);
    auto* desc = reinterpret_cast<InflightDescPacked*>(region + sizeof(*header));
    ASSERT_EQ(header->packed_state, kInflightPackedState);
    // The free list's first record made a chain in flight.
    const uint16_t record = header->free_head;
    ASSERT_LT(record, 128);
    desc[record].num = 1;
    desc[record].last = record;
    desc[record].counter = 1;
    desc[record].addr = uint64_t{1} << 50;  // beyond guest memory
    desc[record].len = 512;
    desc[record].flags = 0;
    if (loop) {
      desc[record].num = 3;  // its records lead back to itself
      desc[record].next = record;
    } else {
      header->free_head = header->old_free_head = desc[record].next;
    }
    desc[record].inflight = 1;

    StartDaemon({"--packed-ring"});
    ASSERT_OK(device_->Reconnect(socket_, options_));
    frontend_ = device_->frontend();
    // A well-formed region is only refused when its chain is taken again.
    ASSERT_OK(queue(0)->Kick());
    EXPECT_TRUE(wait_for_error()) << loop;
    EXPECT_TRUE(daemon()->IsAlive()) << loop;
  }
  // A new front end is served.
  Open(1, RingLayout::kPacked, /*inflight=*/true);
  BlkRequest r = Make(VIRTIO_BLK_T_IN, 0, 512);
  ASSERT_EQ(Do(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.data[0], 'z');
}

TEST_F(BlkDaemonTest, NullDiskServesZeroes) {
  socket_ = session_->File("null.sock");
  ASSERT_OK(session_->Start(RunfilePath("vhost-user-blk/vhost-user-blk"),
                            {"--socket-path=" + socket_, "--null-size=1073741824"}, socket_));
  Open();
  EXPECT_EQ(Config().capacity, (1u << 30) / 512);
  BlkRequest r = Make(VIRTIO_BLK_T_IN, 12345, 4096);
  std::memset(r.data, 0xee, 4096);
  ASSERT_EQ(Do(r), VIRTIO_BLK_S_OK);
  EXPECT_EQ(r.data[4000], 0);
}

// Live migration (VHOST_F_LOG_ALL with LOG_SHMFD): once the front end turns logging on as QEMU
// does, every guest page a read fills is marked dirty, with its status byte's and the ring's
// (split: the used ring; packed: the descriptor ring), so pre-copy sends them again; nothing
// else is marked, and nothing before logging starts or after it stops.
TEST_F(BlkDaemonTest, ReadsMarkTheGuestPagesTheyFillDirtyWhileMigrating) {
  FillSectors(128, [](int i) { return static_cast<char>('a' + i % 26); });
  StartDaemon({"--packed-ring"});
  for (RingLayout layout : {RingLayout::kSplit, RingLayout::kPacked}) {
    const bool packed = layout == RingLayout::kPacked;
    DeviceOptions options;
    options.features = kWanted | (packed ? Bit(kFeatureRingPacked) : 0);
    options.required_features = Bit(kFeatureVersion1) | (packed ? Bit(kFeatureRingPacked) : 0);
    options.protocol_features = frontend::kDefaultProtocolFeatures | Bit(kProtocolLogShmfd);
    options.ram_size = 32 << 20;
    options.queue_sizes = {128};
    device_.reset();
    ASSERT_OK_AND_ASSIGN(device_, session_->Open(options, socket_));
    frontend_ = device_->frontend();
    ram_ = device_->ram();
    ASSERT_TRUE(frontend_->offered_features() & Bit(kFeatureLogAll));
    ASSERT_TRUE(frontend_->has_protocol_feature(kProtocolLogShmfd));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<frontend::DirtyBitmap> log,
                         frontend::DirtyBitmap::Create(options.ram_size));
    ASSERT_OK(frontend_->SetLogBase(log->fd(), log->size()));
    ASSERT_EQ(Do(Make(VIRTIO_BLK_T_IN, 0, 8192)), VIRTIO_BLK_S_OK);
    EXPECT_TRUE(log->Take().empty()) << "logged before LOG_ALL";

    // Migration starts: LOG_ALL, then the rings' log flag, the queue running throughout.
    ASSERT_OK(frontend_->SetFeatures(frontend_->acked_features() | Bit(kFeatureLogAll)));
    ASSERT_OK(queue(0)->SetLogging(frontend_, true));
    const testing::RingAddresses& rings = queue(0)->ring_gpas();
    const uint64_t ring_begin = packed ? rings.desc : rings.device;
    const uint64_t ring_end = packed ? rings.desc + 16 * 128 : rings.device + 4 + 8 * 128 + 2;
    std::set<uint64_t> expected;
    auto add_pages = [&](uint64_t gpa, uint64_t len) {
      for (uint64_t page = gpa / 4096; page <= (gpa + len - 1) / 4096; ++page) {
        expected.insert(page);
      }
    };
    for (int i = 0; i < 8; ++i) {
      // Sizes that straddle pages, directly and through indirect tables.
      const uint32_t len = 4096 * (i % 3 + 1) + 512 * i;
      BlkRequest r = Make(VIRTIO_BLK_T_IN, 16 * i, len);
      ASSERT_EQ(Do(r, 0, /*indirect=*/i % 2), VIRTIO_BLK_S_OK);
      EXPECT_EQ(std::string(reinterpret_cast<char*>(r.data), len), FileBytes(16 * i * 512, len));
      EXPECT_TRUE(log->AllDirty(r.data_gpa, len)) << "read " << i;
      EXPECT_TRUE(log->IsDirty(r.status_gpa)) << "read " << i;
      add_pages(r.data_gpa, len);
      add_pages(r.status_gpa, 1);
    }
    // A write puts nothing in guest memory but its status byte.
    BlkRequest w = Make(VIRTIO_BLK_T_OUT, 1000, 8192);
    ASSERT_EQ(Do(w), VIRTIO_BLK_S_OK);
    add_pages(w.status_gpa, 1);
    // Migration ends. The ring's own pages are marked just after each used entry is published
    // (the kernel's order: a bit set before its write could be collected too early); stopping
    // logging pauses the worker, so by now every mark is in.
    ASSERT_OK(frontend_->SetFeatures(frontend_->acked_features() & ~Bit(kFeatureLogAll)));
    ASSERT_OK(queue(0)->SetLogging(frontend_, false));
    EXPECT_TRUE(log->IsDirty(ring_begin)) << "the ring's first page";
    for (uint64_t page : log->Take()) {
      const bool ring_page = page >= ring_begin / 4096 && page <= (ring_end - 1) / 4096;
      EXPECT_TRUE(expected.erase(page) || ring_page) << "page 0x" << std::hex << page;
    }
    EXPECT_TRUE(expected.empty()) << expected.size() << " pages written but not logged";

    // Nothing is logged any more.
    ASSERT_EQ(Do(Make(VIRTIO_BLK_T_IN, 0, 8192)), VIRTIO_BLK_S_OK);
    EXPECT_TRUE(log->Take().empty()) << "logged after LOG_ALL was cleared";
  }
}

}  // namespace
}  // namespace vhost
