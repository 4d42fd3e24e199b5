// The front end against a peer back end, qemu-storage-daemon's vhost-user-blk export: proves the
// harness speaks vhost-user and drives virtqueues correctly before our own daemons exist.
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/blk_request.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"
#include "tests/frontend/raw_socket.h"

namespace vhost {
namespace frontend {
namespace {

constexpr char kQsd[] = "/usr/bin/qemu-storage-daemon";
constexpr uint64_t kDiskSize = 64 << 20;
constexpr uint32_t kSector = 512;
const absl::Duration kTimeout = absl::Seconds(10);

constexpr uint64_t kBlkFeatures = Bit(kFeatureVersion1) | Bit(kFeatureIndirectDesc) |
                                  Bit(kFeatureEventIdx) | Bit(VIRTIO_BLK_F_SEG_MAX) |
                                  Bit(VIRTIO_BLK_F_BLK_SIZE) | Bit(VIRTIO_BLK_F_FLUSH);

uint8_t Pattern(uint64_t offset) { return static_cast<uint8_t>(offset * 7 + offset / kSector); }

// A minimal QMP client: enough to run one command.
class Qmp {
 public:
  absl::Status Connect(const std::string& path) {
    fd_.Reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return absl::ErrnoToStatus(errno, "connect to QMP");
    }
    if (absl::StatusOr<std::string> greeting = ReadUntil("\"QMP\""); !greeting.ok()) {
      return greeting.status();
    }
    return Execute(R"({"execute": "qmp_capabilities"})").status();
  }
  // Sends a command, returns the text up to its "return" (or fails on "error").
  absl::StatusOr<std::string> Execute(const std::string& command) {
    const std::string line = command + "\n";
    if (write(fd_.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      return absl::ErrnoToStatus(errno, "write to QMP");
    }
    return ReadUntil("\"return\"");
  }

 private:
  absl::StatusOr<std::string> ReadUntil(const std::string& marker) {
    std::string text;
    const absl::Time deadline = absl::Now() + kTimeout;
    while (text.find(marker) == std::string::npos) {
      if (text.find("\"error\"") != std::string::npos) return absl::InternalError(text);
      absl::StatusOr<bool> readable = PollReadable(fd_.get(), deadline - absl::Now());
      if (!readable.ok()) return readable.status();
      if (!*readable) return absl::DeadlineExceededError(absl::StrCat("QMP: ", text));
      char buffer[4096];
      const ssize_t n = read(fd_.get(), buffer, sizeof(buffer));
      if (n <= 0) return absl::UnavailableError("QMP closed");
      text.append(buffer, n);
    }
    return text;
  }
  UniqueFd fd_;
};

class PeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kQsd, X_OK), 0) << kQsd << " is missing: run scripts/setup.sh";
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("vhu-peer"));
  }

  // Starts qemu-storage-daemon exporting `blockdev` (node name "n") and connects to it.
  void StartExport(const std::string& blockdev, bool with_qmp = false) {
    const std::string socket = session_->File("blk.sock");
    std::vector<std::string> args = {
        "--blockdev", blockdev, "--export",
        "type=vhost-user-blk,id=e,node-name=n,addr.type=unix,addr.path=" + socket + ",writable=on"};
    if (with_qmp) {
      args.insert(
          args.end(),
          {"--chardev", "socket,id=qmp,path=" + session_->File("qmp.sock") + ",server=on,wait=off",
           "--monitor", "chardev=qmp"});
    }
    ASSERT_OK(session_->Start(kQsd, args, socket));
    ASSERT_OK_AND_ASSIGN(frontend_, Frontend::Connect(socket));
  }
  void StartNullExport() {
    StartExport(absl::StrCat("driver=null-co,node-name=n,size=", kDiskSize, ",read-zeroes=on"));
  }

  // Handshake, SET_FEATURES, memory table (or ADD_MEM_REG), one queue.
  void StartDevice(RingLayout layout = RingLayout::kSplit, bool add_mem_reg = false,
                   std::vector<GuestRam::RegionSpec> regions = {{0, 4 << 20}}) {
    ASSERT_OK(frontend_->Handshake());
    uint64_t wanted = kBlkFeatures;
    if (layout == RingLayout::kPacked) wanted |= Bit(kFeatureRingPacked);
    ASSERT_OK_AND_ASSIGN(const uint64_t acked, frontend_->NegotiateFeatures(wanted));
    ASSERT_TRUE(acked & Bit(kFeatureEventIdx));
    ASSERT_OK_AND_ASSIGN(ram_, GuestRam::Create(regions));
    if (add_mem_reg) {
      for (size_t i = 0; i < ram_->num_regions(); ++i) ASSERT_OK(frontend_->AddMemReg(*ram_, i));
    } else {
      ASSERT_OK(frontend_->SetMemTable(*ram_));
    }
    QueueConfig config;
    config.size = 128;
    config.layout = layout;
    config.event_idx = true;
    ASSERT_OK_AND_ASSIGN(queue_, FrontendQueue::Start(frontend_.get(), ram_.get(), config));
  }

  // Submits `request`, waits for its completion, checks the id and the status byte.
  void Run(const BlkRequest& request, bool indirect, bool busy_poll = false) {
    *request.status = 0xff;
    ASSERT_OK_AND_ASSIGN(const uint16_t id, AddBlkRequest(&queue_->ring(), request, indirect));
    ASSERT_OK(queue_->Submit().status());
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout, busy_poll));
    EXPECT_EQ(used.id, id);
    EXPECT_EQ(*request.status, VIRTIO_BLK_S_OK);
    const bool device_writes =
        request.type == VIRTIO_BLK_T_IN || request.type == VIRTIO_BLK_T_GET_ID;
    EXPECT_EQ(used.len, (device_writes ? request.data_len : 0) + 1);
  }

  std::unique_ptr<DaemonSession> session_;
  std::unique_ptr<Frontend> frontend_;
  std::unique_ptr<GuestRam> ram_;
  std::unique_ptr<FrontendQueue> queue_;
};

TEST_F(PeerTest, NegotiatesAndReadsConfig) {
  StartNullExport();
  ASSERT_OK(frontend_->Handshake());
  const uint64_t offered = frontend_->offered_features();
  EXPECT_TRUE(offered & Bit(kFeatureVersion1));
  EXPECT_TRUE(offered & Bit(kFeatureProtocolFeatures));
  EXPECT_TRUE(offered & Bit(kFeatureIndirectDesc));
  EXPECT_TRUE(offered & Bit(kFeatureEventIdx));
  EXPECT_TRUE(frontend_->has_protocol_feature(kProtocolReplyAck));
  EXPECT_TRUE(frontend_->has_protocol_feature(kProtocolConfig));
  EXPECT_EQ(frontend_->queue_num(), 1u);
  EXPECT_GT(frontend_->max_mem_slots(), 0u);
  EXPECT_NE(frontend_->backend_channel(), nullptr);

  ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> config,
                       frontend_->GetConfig(0, sizeof(virtio_blk_config)));
  virtio_blk_config blk;
  std::memcpy(&blk, config.data(), sizeof(blk));
  EXPECT_EQ(blk.capacity, kDiskSize / kSector);
  // Beyond the config space the back end refuses (with an empty reply).
  EXPECT_TRUE(absl::IsFailedPrecondition(frontend_->GetConfig(0, 200).status()));
  ASSERT_OK_AND_ASSIGN(const uint64_t acked, frontend_->NegotiateFeatures(kBlkFeatures));
  EXPECT_EQ(acked & ~Bit(kFeatureProtocolFeatures), kBlkFeatures & offered);
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

TEST_F(PeerTest, ReadsZeroesAndIdThroughSplitQueue) {
  StartNullExport();
  StartDevice();
  for (const bool indirect : {false, true}) {
    for (const bool busy_poll : {false, true}) {
      SCOPED_TRACE(absl::StrCat("indirect=", indirect, " busy_poll=", busy_poll));
      ASSERT_OK_AND_ASSIGN(BlkRequest read,
                           AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_IN, 8, 4096));
      std::memset(read.data, 0xaa, read.data_len);
      Run(read, indirect, busy_poll);
      EXPECT_EQ(std::vector<uint8_t>(read.data, read.data + read.data_len),
                std::vector<uint8_t>(read.data_len, 0));

      ASSERT_OK_AND_ASSIGN(BlkRequest id, AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_GET_ID, 0,
                                                             VIRTIO_BLK_ID_BYTES));
      Run(id, indirect, busy_poll);
      const std::string serial(reinterpret_cast<char*>(id.data),
                               strnlen(reinterpret_cast<char*>(id.data), VIRTIO_BLK_ID_BYTES));
      EXPECT_FALSE(serial.empty());
    }
  }
  // Beyond the end of the disk.
  ASSERT_OK_AND_ASSIGN(BlkRequest past,
                       AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_IN, kDiskSize / kSector, 512));
  ASSERT_OK(AddBlkRequest(&queue_->ring(), past).status());
  ASSERT_OK(queue_->Submit().status());
  ASSERT_OK(queue_->WaitForUsed(kTimeout).status());
  EXPECT_EQ(*past.status, VIRTIO_BLK_S_IOERR);

  // GET_VRING_BASE stops the ring and reports how far the device got.
  ASSERT_OK_AND_ASSIGN(const uint32_t base, queue_->Stop(frontend_.get()));
  EXPECT_EQ(base, queue_->ring().avail_idx());
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

TEST_F(PeerTest, ReadsAndWritesAFileWithManyRequestsInFlight) {
  const std::string image = session_->File("disk.img");
  constexpr uint64_t kImageSize = 1 << 20;
  {
    std::vector<uint8_t> bytes(kImageSize);
    for (uint64_t i = 0; i < kImageSize; ++i) bytes[i] = Pattern(i);
    UniqueFd fd(open(image.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(pwrite(fd.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(kImageSize));
  }
  StartExport("driver=file,node-name=n,filename=" + image);
  StartDevice();
  ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> config, frontend_->GetConfig(0, 8));
  uint64_t capacity;
  std::memcpy(&capacity, config.data(), 8);
  EXPECT_EQ(capacity, kImageSize / kSector);

  // 32 reads of 8 sectors each in flight at once, every other one indirect.
  constexpr int kDepth = 32;
  std::vector<BlkRequest> reads;
  std::vector<uint16_t> ids;
  for (int i = 0; i < kDepth; ++i) {
    ASSERT_OK_AND_ASSIGN(BlkRequest r,
                         AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_IN, i * 8, 8 * kSector));
    ASSERT_OK_AND_ASSIGN(const uint16_t id, AddBlkRequest(&queue_->ring(), r, i % 2 == 1));
    reads.push_back(r);
    ids.push_back(id);
  }
  ASSERT_OK(queue_->Submit().status());
  std::vector<bool> done(kDepth, false);
  for (int n = 0; n < kDepth; ++n) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout));
    const auto it = std::find(ids.begin(), ids.end(), used.id);
    ASSERT_NE(it, ids.end());
    const size_t i = it - ids.begin();
    EXPECT_FALSE(done[i]);
    done[i] = true;
    EXPECT_EQ(used.len, 8 * kSector + 1);
  }
  EXPECT_EQ(queue_->ring().in_flight(), 0u);
  for (int i = 0; i < kDepth; ++i) {
    ASSERT_EQ(*reads[i].status, VIRTIO_BLK_S_OK);
    for (uint32_t b = 0; b < reads[i].data_len; ++b) {
      ASSERT_EQ(reads[i].data[b], Pattern(i * 8 * kSector + b)) << "request " << i << " byte " << b;
    }
  }

  // Write sector 100, flush, read it back, and find it in the file.
  ASSERT_OK_AND_ASSIGN(BlkRequest write,
                       AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_OUT, 100, kSector));
  for (uint32_t b = 0; b < kSector; ++b) write.data[b] = static_cast<uint8_t>(0x5a ^ b);
  Run(write, /*indirect=*/true);
  ASSERT_OK_AND_ASSIGN(BlkRequest flush, AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_FLUSH, 0, 0));
  Run(flush, /*indirect=*/false);
  ASSERT_OK_AND_ASSIGN(BlkRequest back,
                       AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_IN, 100, kSector));
  Run(back, /*indirect=*/false);
  EXPECT_EQ(std::memcmp(back.data, write.data, kSector), 0);
  UniqueFd fd(open(image.c_str(), O_RDONLY | O_CLOEXEC));
  std::vector<uint8_t> on_disk(kSector);
  ASSERT_EQ(pread(fd.get(), on_disk.data(), kSector, 100 * kSector), kSector);
  EXPECT_EQ(std::memcmp(on_disk.data(), write.data, kSector), 0);
}

TEST_F(PeerTest, EventIdxSuppressesCallsUntilAsked) {
  StartNullExport();
  StartDevice();
  ASSERT_OK_AND_ASSIGN(BlkRequest r, AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_IN, 0, 512));
  // The first kick is always wanted.
  ASSERT_OK(AddBlkRequest(&queue_->ring(), r).status());
  ASSERT_OK_AND_ASSIGN(const bool kicked, queue_->Submit());
  EXPECT_TRUE(kicked);
  ASSERT_OK(queue_->WaitForUsed(kTimeout).status());
  ASSERT_OK(queue_->DrainCalls().status());

  // used_event behind the used index: the device must not call.
  queue_->ring().DisableInterrupts();
  for (int i = 0; i < 4; ++i) {
    RewriteBlkRequest(&r, VIRTIO_BLK_T_IN, i);
    ASSERT_OK(AddBlkRequest(&queue_->ring(), r).status());
    ASSERT_OK(queue_->Submit().status());
    ASSERT_OK(queue_->WaitForUsed(kTimeout, /*busy_poll=*/true).status());
  }
  ASSERT_OK_AND_ASSIGN(const uint64_t calls, queue_->DrainCalls());
  EXPECT_EQ(calls, 0u);

  // Asking again brings the call back.
  queue_->ring().EnableInterrupts();
  ASSERT_OK(AddBlkRequest(&queue_->ring(), r).status());
  ASSERT_OK(queue_->Submit().status());
  ASSERT_OK_AND_ASSIGN(const uint64_t woken, queue_->WaitForCall(kTimeout));
  EXPECT_GE(woken, 1u);
  ASSERT_OK(queue_->WaitForUsed(kTimeout, /*busy_poll=*/true).status());
  // The device publishes avail_event (where it wants the next kick).
  EXPECT_EQ(queue_->ring().AvailEvent(), queue_->ring().avail_idx());
}

TEST_F(PeerTest, StartsNearTheIndexWrap) {
  StartNullExport();
  ASSERT_OK(frontend_->Handshake());
  ASSERT_OK(frontend_->NegotiateFeatures(kBlkFeatures).status());
  ASSERT_OK_AND_ASSIGN(ram_, GuestRam::Create(4 << 20));
  ASSERT_OK(frontend_->SetMemTable(*ram_));
  QueueConfig config;
  config.size = 16;
  config.event_idx = true;
  config.start_index = 65530;
  ASSERT_OK_AND_ASSIGN(queue_, FrontendQueue::Start(frontend_.get(), ram_.get(), config));
  ASSERT_OK_AND_ASSIGN(BlkRequest r, AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_IN, 0, 512));
  for (int i = 0; i < 40; ++i) Run(r, i % 3 == 0);
  EXPECT_EQ(queue_->ring().used_idx(), static_cast<uint16_t>(65530 + 40));
}

TEST_F(PeerTest, SeveralMemoryRegions) {
  StartNullExport();
  // Rings in low memory, buffers above 4 GiB.
  StartDevice(RingLayout::kSplit, /*add_mem_reg=*/false,
              {{0, 1 << 20}, {uint64_t{1} << 32, 1 << 20}});
  ASSERT_OK(ram_->AllocateIn(0, ram_->FreeBytes(0), 1).status());  // fill the first region
  ASSERT_OK_AND_ASSIGN(BlkRequest r, AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_IN, 0, 4096));
  EXPECT_GE(r.data_gpa, uint64_t{1} << 32);
  Run(r, /*indirect=*/true);
  Run(r, /*indirect=*/false);
}

TEST_F(PeerTest, AddAndRemoveMemoryRegions) {
  StartNullExport();
  StartDevice(RingLayout::kSplit, /*add_mem_reg=*/true,
              {{0, 1 << 20}, {uint64_t{1} << 32, 1 << 20}});
  ASSERT_TRUE(frontend_->has_protocol_feature(kProtocolConfigureMemSlots));
  ASSERT_OK(ram_->AllocateIn(0, ram_->FreeBytes(0), 1).status());
  ASSERT_OK_AND_ASSIGN(BlkRequest r,
                       AllocateBlkRequest(ram_.get(), VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES));
  Run(r, /*indirect=*/true);
  ASSERT_OK(queue_->Stop(frontend_.get()).status());
  ASSERT_OK(frontend_->RemMemReg(*ram_, 1));
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

TEST_F(PeerTest, ConfigChangeOnTheBackendChannel) {
  const std::string image = session_->File("grow.img");
  {
    UniqueFd fd(open(image.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    ASSERT_EQ(ftruncate(fd.get(), 1 << 20), 0);
  }
  StartExport("driver=file,node-name=n,filename=" + image, /*with_qmp=*/true);
  StartDevice();
  ASSERT_NE(frontend_->backend_channel(), nullptr);
  Qmp qmp;
  ASSERT_OK(qmp.Connect(session_->File("qmp.sock")));
  ASSERT_OK(qmp.Execute(R"({"execute": "block_resize", "arguments": )"
                        R"({"node-name": "n", "size": 2097152}})")
                .status());
  ASSERT_OK_AND_ASSIGN(const Message change, frontend_->backend_channel()->ReceiveAndAck(
                                                 BackendRequest::kConfigChangeMsg, kTimeout));
  // libvhost-user does not ask for an acknowledgement here; ReceiveAndAck would have sent one.
  EXPECT_EQ(change.payload.size(), 0u);
  ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> config, frontend_->GetConfig(0, 8));
  uint64_t capacity;
  std::memcpy(&capacity, config.data(), 8);
  EXPECT_EQ(capacity, (2u << 20) / kSector);
}

TEST_F(PeerTest, UnknownRequestClosesTheConnection) {
  StartNullExport();
  ASSERT_OK(frontend_->Handshake());
  ASSERT_OK(frontend_->SendRawMessage(999, kFlagVersion, 0, {}));
  EXPECT_TRUE(frontend_->WaitForClose(kTimeout));
  EXPECT_TRUE(session_->daemon()->IsAlive());
  // The daemon takes the next front end.
  ASSERT_OK_AND_ASSIGN(frontend_, Frontend::Connect(session_->File("blk.sock")));
  ASSERT_OK(frontend_->Handshake());
}

}  // namespace
}  // namespace frontend
}  // namespace vhost
