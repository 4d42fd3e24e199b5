// vhost-user-rng driven over its socket by our front end: negotiation, split and packed rings,
// concurrent requests, reconnects, the rate limit, and every kind of bad input from the issue.
// After each bad input the daemon must still be alive and serve the next connection.
#include <dirent.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/device/inflight.h"
#include "common/testing/status_matchers.h"
#include "common/vhost_user/backend.h"
#include "common/virtio/descriptor_chain.h"
#include "common/virtio/virtio_ring_defs.h"
#include "gtest/gtest.h"
#include "tests/frontend/control_client.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonProcess;
using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::Frontend;
using frontend::FrontendQueue;
using frontend::GuestRam;
using testing::Buffer;
using testing::RawDescriptor;
using testing::RingLayout;
using testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr uint64_t kRamSize = 16 << 20;

class RngDaemonTest : public ::testing::Test {
 protected:
  void StartDaemon(std::vector<std::string> extra_args = {}) {
    if (!session_) {
      ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("rng"));
    }
    std::vector<std::string> args = {"--socket-path=" + session_->socket()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-rng/vhost-user-rng"), args));
  }
  void SetUp() override { StartDaemon({"--packed-ring"}); }
  DaemonProcess* daemon() { return session_->daemon(); }
  const std::string& socket() { return session_->socket(); }

  // QEMU's sequence up to a running queue 0.
  void Open(RingLayout layout = RingLayout::kSplit, bool event_idx = true, bool inflight = false,
            uint16_t queue_size = 128) {
    DeviceOptions options;
    options.inflight = inflight;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureIndirectDesc);
    if (event_idx) options.features |= Bit(kFeatureEventIdx);
    if (layout == RingLayout::kPacked) options.features |= Bit(kFeatureRingPacked);
    options.required_features = options.features;
    options.ram_size = kRamSize;
    options.queue_sizes = {queue_size};
    device_.reset();  // the daemon serves one front end at a time
    ASSERT_OK_AND_ASSIGN(device_, session_->Open(options));
    options_ = options;
    frontend_ = device_->frontend();
    ram_ = device_->ram();
    queue_ = device_->queue();
  }
  // A bare connection, for the tests that break the opening sequence.
  void ConnectRaw() {
    ASSERT_OK_AND_ASSIGN(raw_, Frontend::Connect(socket()));
    frontend_ = raw_.get();
  }

  // Queues one request for `len` bytes of entropy; returns where they will land.
  uint64_t Request(uint32_t len) {
    absl::StatusOr<uint64_t> gpa = ram_->Allocate(len ? len : 1);
    EXPECT_OK(gpa);
    EXPECT_OK(queue_->ring().AddChain({}, {{*gpa, len}}));
    return *gpa;
  }
  std::string Bytes(uint64_t gpa, size_t len) {
    return std::string(reinterpret_cast<char*>(ram_->HostAddress(gpa, len)), len);
  }

  // The daemon survived and a new front end gets entropy from it.
  void ExpectServesNextConnection() {
    ASSERT_TRUE(daemon()->IsAlive());
    device_.reset();
    raw_.reset();
    Open();
    const uint64_t gpa = Request(256);
    ASSERT_OK(queue_->Submit());
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout));
    EXPECT_EQ(used.len, 256u);
    EXPECT_NE(Bytes(gpa, 256), std::string(256, '\0'));
  }

  // Sends a raw message on a fresh connection and expects the daemon to hang up (a truncated
  // frame is dropped when the daemon's receive timeout expires).
  void ExpectRawMessageClosesConnection(uint32_t request, uint32_t size_field,
                                        std::vector<uint8_t> payload, std::vector<int> fds = {}) {
    ASSERT_OK_AND_ASSIGN(auto raw, Frontend::Connect(socket()));
    ASSERT_OK(raw->SendRawMessage(request, kFlagVersion, size_field, payload, fds));
    EXPECT_TRUE(raw->WaitForClose(kTimeout));
  }

  // Whether a request that asked for an acknowledgement was refused.
  void ExpectRefused(absl::Status status) {
    EXPECT_FALSE(status.ok());
    EXPECT_TRUE(daemon()->IsAlive());
  }

  std::unique_ptr<DaemonSession> session_;
  DeviceOptions options_;
  std::unique_ptr<DeviceConnection> device_;
  std::unique_ptr<Frontend> raw_;
  // Of device_ (or raw_).
  Frontend* frontend_ = nullptr;
  GuestRam* ram_ = nullptr;
  FrontendQueue* queue_ = nullptr;
};

TEST_F(RngDaemonTest, NegotiatesLikeQemuExpects) {
  ConnectRaw();
  ASSERT_OK(frontend_->Handshake());
  EXPECT_TRUE(frontend_->offered_features() & Bit(kFeatureVersion1));
  EXPECT_TRUE(frontend_->offered_features() & Bit(kFeatureProtocolFeatures));
  EXPECT_TRUE(frontend_->has_protocol_feature(kProtocolMq));
  EXPECT_TRUE(frontend_->has_protocol_feature(kProtocolReplyAck));
  EXPECT_FALSE(frontend_->offered_protocol_features() & Bit(kProtocolConfig));  // no config space
  EXPECT_EQ(frontend_->queue_num(), 1u);
  ASSERT_OK_AND_ASSIGN(const uint64_t slots, frontend_->GetMaxMemSlots());
  EXPECT_GE(slots, 8u);
}

TEST_F(RngDaemonTest, ServesConcurrentRequestsOnEveryRingLayout) {
  for (RingLayout layout : {RingLayout::kSplit, RingLayout::kPacked}) {
    for (bool event_idx : {false, true}) {
      SCOPED_TRACE(::testing::Message()
                   << "packed=" << (layout == RingLayout::kPacked) << " event_idx=" << event_idx);
      Open(layout, event_idx);
      std::vector<std::pair<uint64_t, uint32_t>> requests;
      for (uint32_t len : {64u, 4096u, 1u, 65536u, 64u}) requests.push_back({Request(len), len});
      ASSERT_OK(queue_->Submit());
      std::set<std::string> seen;
      for (size_t i = 0; i < requests.size(); ++i) {
        ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout));
        EXPECT_EQ(used.len, requests[i].second);  // rng completes in order
        seen.insert(Bytes(requests[i].first, requests[i].second));
      }
      EXPECT_EQ(seen.size(), requests.size());  // no two requests got the same bytes
      const std::string big = Bytes(requests[3].first, 65536);
      EXPECT_GT(std::set<char>(big.begin(), big.end()).size(), 250u);
    }
  }
}

// --stats-socket, as every daemon has it: per-queue counts of what the front end did, read
// while the daemon serves (inside its sandbox), and the front ends and resets it went through.
TEST_F(RngDaemonTest, StatsSocketCountsWhatTheQueueServed) {
  const std::string stats = socket() + ".stats";
  StartDaemon({"--stats-socket=" + stats});
  Open();
  uint64_t bytes = 0;
  for (uint32_t len : {64u, 4096u, 1u, 65536u, 64u}) {
    Request(len);
    bytes += len;
  }
  ASSERT_OK(queue_->Submit());
  for (int i = 0; i < 5; ++i) ASSERT_OK(queue_->WaitForUsed(kTimeout).status());
  ASSERT_OK_AND_ASSIGN(std::string reply, frontend::SendControlCommands(stats, "stats\n"));
  EXPECT_EQ(reply.rfind("ok {\"daemon\":\"vhost-user-rng\",", 0), 0u) << reply;
  EXPECT_NE(reply.find(absl::StrCat("\"connections\":1,\"resets\":0,\"queues\":[{\"queue\":0,"
                                    "\"starts\":1,\"requests\":5,\"bytes_in\":0,\"bytes_out\":",
                                    bytes, ",")),
            std::string::npos)
      << reply;
  EXPECT_NE(reply.find("\"errors\":0,\"in_flight\":0}"), std::string::npos) << reply;

  // The counts outlive the front end: a second one adds to them.
  device_.reset();
  Open();
  Request(32);
  ASSERT_OK(queue_->Submit());
  ASSERT_OK(queue_->WaitForUsed(kTimeout).status());
  ASSERT_OK_AND_ASSIGN(reply, frontend::SendControlCommands(stats, "stats\nwhat\n"));
  EXPECT_NE(reply.find(absl::StrCat("\"connections\":2,")), std::string::npos) << reply;
  EXPECT_NE(reply.find(absl::StrCat(
                "\"starts\":2,\"requests\":6,\"bytes_in\":0,\"bytes_out\":", bytes + 32, ",")),
            std::string::npos)
      << reply;
  EXPECT_NE(reply.find("\nerror: unknown command"), std::string::npos) << reply;
  EXPECT_TRUE(daemon()->IsAlive());
}

TEST_F(RngDaemonTest, IndirectChainsAndScatteredBuffers) {
  Open();
  ASSERT_OK_AND_ASSIGN(const uint64_t a, ram_->Allocate(100));
  ASSERT_OK_AND_ASSIGN(const uint64_t b, ram_->Allocate(200));
  ASSERT_OK_AND_ASSIGN(const uint64_t table, ram_->Allocate(64, 16));
  ASSERT_OK(queue_->ring().AddChain({}, {{a, 100}, {b, 200}}, table));
  ASSERT_OK(queue_->Submit());
  ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout));
  EXPECT_EQ(used.len, 300u);
  EXPECT_NE(Bytes(b + 100, 100), std::string(100, '\0'));
}

TEST_F(RngDaemonTest, ChainWithoutWritableBufferGetsZeroBytes) {
  Open();
  ASSERT_OK_AND_ASSIGN(const uint64_t a, ram_->Allocate(16));
  ASSERT_OK(queue_->ring().AddChain({{a, 16}}, {}));
  ASSERT_OK(queue_->Submit());
  ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout));
  EXPECT_EQ(used.len, 0u);
  ExpectServesNextConnection();
}

TEST_F(RngDaemonTest, StopAndRestartKeepsTheRingPosition) {
  Open();
  Request(32);
  ASSERT_OK(queue_->Submit());
  ASSERT_OK(queue_->WaitForUsed(kTimeout).status());
  ASSERT_OK_AND_ASSIGN(const uint32_t base, queue_->Stop(frontend_));
  EXPECT_EQ(base, 1u);
}

TEST_F(RngDaemonTest, FrontEndDisconnectResetsAndTheNextOneIsServed) {
  Open();
  Request(32);
  ASSERT_OK(queue_->Submit());
  frontend_->Close();  // gone without GET_VRING_BASE
  ExpectServesNextConnection();
}

// Requests a killed daemon had taken (recorded in the front end's inflight region as a daemon
// records them) are served by its successor, once each, before the one it never saw.
TEST_F(RngDaemonTest, RequestsInFlightAtASigkillAreServedAfterARestart) {
  Open(RingLayout::kSplit, true, /*inflight=*/true);
  uint8_t* region = device_->inflight_region();
  auto* desc = reinterpret_cast<InflightDescSplit*>(region + sizeof(InflightQueueHeader));
  ASSERT_OK(queue_->Stop(frontend_).status());
  ASSERT_OK(daemon()->Signal(SIGKILL));
  ASSERT_OK(daemon()->Wait(kTimeout).status());

  std::vector<uint64_t> gpas;
  for (int i = 0; i < 3; ++i) gpas.push_back(Request(64));
  ASSERT_OK(queue_->Submit());
  desc[0].counter = 7;  // taken first
  desc[0].inflight = 1;
  desc[1].counter = 8;
  desc[1].inflight = 1;  // head 2: never taken

  StartDaemon();
  ASSERT_OK(device_->Reconnect(socket(), options_));
  frontend_ = device_->frontend();
  std::vector<int> completions(3, 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout));
    ASSERT_LT(used.id, 3u);
    EXPECT_EQ(used.id, static_cast<uint32_t>(i));  // in the order they were taken
    EXPECT_EQ(used.len, 64u);
    ++completions[used.id];
  }
  EXPECT_EQ(completions, std::vector<int>(3, 1));
  for (uint64_t gpa : gpas) EXPECT_NE(Bytes(gpa, 64), std::string(64, '\0'));
  ASSERT_OK(queue_->Stop(frontend_).status());
  for (uint16_t head = 0; head < 128; ++head) EXPECT_EQ(desc[head].inflight, 0) << head;
}

TEST_F(RngDaemonTest, SigtermExitsPromptlyAndCleanly) {
  Open();
  ASSERT_OK(daemon()->Signal(SIGTERM));
  ASSERT_OK_AND_ASSIGN(const int status, daemon()->Wait(absl::Seconds(5)));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(RngDaemonTest, RateLimitDefersButDeliversEverything) {
  StartDaemon({"--max-bytes=1000", "--period-ms=400"});
  Open();
  for (int i = 0; i < 3; ++i) Request(1000);
  ASSERT_OK(queue_->Submit());
  const absl::Time start = absl::Now();
  uint64_t total = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout));
    total += used.len;
  }
  EXPECT_EQ(total, 3000u);
  // Three budgets of 1000 bytes need at least two period boundaries.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(700));
}

// ---- Bad input from the front end: each closes the connection or is refused, never a crash.

TEST_F(RngDaemonTest, TruncatedMessage) {
  // The front end stalls in the middle of a message...
  ExpectRawMessageClosesConnection(static_cast<uint32_t>(FrontendRequest::kSetFeatures), 8,
                                   {1, 2, 3, 4});
  // ...or goes away in the middle of one.
  ASSERT_OK_AND_ASSIGN(auto raw, Frontend::Connect(socket()));
  const uint8_t half_header[6] = {1, 0, 0, 0, 1, 0};
  ASSERT_OK(raw->SendRawBytes(half_header));
  raw->Close();
  ExpectServesNextConnection();
}

TEST_F(RngDaemonTest, WrongPayloadSize) {
  ExpectRawMessageClosesConnection(static_cast<uint32_t>(FrontendRequest::kSetFeatures), 4,
                                   {1, 0, 0, 0});
  ExpectRawMessageClosesConnection(static_cast<uint32_t>(FrontendRequest::kSetVringAddr), 8,
                                   std::vector<uint8_t>(8));
  ExpectServesNextConnection();
}

TEST_F(RngDaemonTest, UnknownRequestCode) {
  ExpectRawMessageClosesConnection(999, 0, {});
  ExpectRawMessageClosesConnection(static_cast<uint32_t>(FrontendRequest::kSetLogBase), 16,
                                   std::vector<uint8_t>(16));
  ExpectServesNextConnection();
}

TEST_F(RngDaemonTest, MoreFdsThanAllowed) {
  std::vector<int> fds;
  for (int i = 0; i < 12; ++i) fds.push_back(eventfd(0, EFD_CLOEXEC));
  ExpectRawMessageClosesConnection(static_cast<uint32_t>(FrontendRequest::kSetOwner), 0, {}, fds);
  // Fds on a request that takes none.
  ExpectRawMessageClosesConnection(static_cast<uint32_t>(FrontendRequest::kSetOwner), 0, {},
                                   {fds[0]});
  for (int fd : fds) close(fd);
  ExpectServesNextConnection();
}

TEST_F(RngDaemonTest, OverlappingMemoryRegions) {
  ConnectRaw();
  ASSERT_OK(frontend_->Handshake());
  Message m = MakeRequest(static_cast<uint32_t>(FrontendRequest::kSetMemTable));
  m.Append(MemoryTableHeader{2, 0});
  m.Append(MemoryRegion{0, 1 << 20, 0x7f0000000000, 0});
  m.Append(MemoryRegion{0x80000, 1 << 20, 0x7f1000000000, 0});  // overlaps the first in gpa
  for (int i = 0; i < 2; ++i) {
    UniqueFd fd(memfd_create("ram", MFD_CLOEXEC));
    ASSERT_EQ(ftruncate(fd.get(), 1 << 20), 0);
    m.fds.push_back(std::move(fd));
  }
  ExpectRefused(frontend_->Send(std::move(m)));
  ExpectServesNextConnection();
}

TEST_F(RngDaemonTest, MemoryRegionThatCannotBeMapped) {
  ConnectRaw();
  ASSERT_OK(frontend_->Handshake());
  // A region larger than its file, and one whose fd is not mappable at all.
  UniqueFd small(memfd_create("small", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(small.get(), 4096), 0);
  UniqueFd not_memory(eventfd(0, EFD_CLOEXEC));
  for (int fd : {small.get(), not_memory.get()}) {
    Message m = MakeRequest(static_cast<uint32_t>(FrontendRequest::kSetMemTable));
    m.Append(MemoryTableHeader{1, 0});
    m.Append(MemoryRegion{0, 1 << 20, 0x7f0000000000, 0});
    m.fds.push_back(UniqueFd(dup(fd)));
    ExpectRefused(frontend_->Send(std::move(m)));
  }
  ExpectServesNextConnection();
}

TEST_F(RngDaemonTest, RingAddressesOutsideGuestMemory) {
  ConnectRaw();
  ASSERT_OK(frontend_->Handshake());
  ASSERT_OK(frontend_->NegotiateFeatures(Bit(kFeatureVersion1)).status());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<GuestRam> ram, GuestRam::Create(kRamSize));
  ASSERT_OK(frontend_->SetMemTable(*ram));
  ASSERT_OK(frontend_->SetVringNum(0, 64));
  const uint64_t base = ram->UserAddress(0);
  ExpectRefused(frontend_->SetVringAddr({0, 0, base + kRamSize, base, base + 0x1000, 0}));
  ExpectRefused(frontend_->SetVringAddr({0, 0, base, base + kRamSize - 8, base + 0x1000, 0}));
  ExpectRefused(frontend_->SetVringAddr({0, 0, base - 0x10000, base, base + 0x1000, 0}));
  ExpectServesNextConnection();
}

TEST_F(RngDaemonTest, BadQueueSizesAndIndices) {
  ConnectRaw();
  ASSERT_OK(frontend_->Handshake());
  ASSERT_OK(frontend_->NegotiateFeatures(Bit(kFeatureVersion1)).status());
  ExpectRefused(frontend_->SetVringNum(0, 0));
  ExpectRefused(frontend_->SetVringNum(0, 100));   // not a power of two
  ExpectRefused(frontend_->SetVringNum(0, 4096));  // above the maximum
  ExpectRefused(frontend_->SetVringNum(1, 64));    // rng has one queue
  ExpectRefused(frontend_->SetVringNum(255, 64));
  ExpectRefused(frontend_->SetVringEnable(7, true));
  ExpectRefused(frontend_->GetVringBase(3).status());
  ExpectServesNextConnection();
}

// GET_MAX_MEM_SLOTS tells the front end how many regions ADD_MEM_REG may add; one more is
// refused (the daemon maps nothing for it) and the connection goes on.
TEST_F(RngDaemonTest, MemorySlotsBeyondTheLimitAreRefused) {
  ConnectRaw();
  ASSERT_OK(frontend_->Handshake());
  ASSERT_OK_AND_ASSIGN(const uint64_t slots, frontend_->GetMaxMemSlots());
  ASSERT_EQ(slots, kMaxMemSlots);
  const size_t page = sysconf(_SC_PAGESIZE);
  UniqueFd ram(memfd_create("ram", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(ram.get(), (slots + 1) * page), 0);
  auto add = [&](uint64_t i) {
    Message m = MakeRequest(static_cast<uint32_t>(FrontendRequest::kAddMemReg));
    m.Append(
        SingleMemoryRegion{0, MemoryRegion{i * page, page, 0x7f0000000000 + i * page, i * page}});
    m.fds.emplace_back(dup(ram.get()));
    return frontend_->Send(std::move(m));
  };
  for (uint64_t i = 0; i < slots; ++i) ASSERT_OK(add(i)) << "region " << i;
  ExpectRefused(add(slots));
  // The connection is still served: a region removed frees a slot for another.
  Message remove = MakeRequest(static_cast<uint32_t>(FrontendRequest::kRemMemReg));
  remove.Append(SingleMemoryRegion{0, MemoryRegion{0, page, 0x7f0000000000, 0}});
  ASSERT_OK(frontend_->Send(std::move(remove)));
  EXPECT_OK(add(slots));
  ExpectServesNextConnection();
}

// While one front end is served, others wait in the listen backlog (one) or are refused by the
// kernel: the daemon holds no descriptor, thread or memory for them. The next is served once
// the first leaves.
TEST_F(RngDaemonTest, FrontEndsWaitingForTheDaemonHoldNothingInIt) {
  Open();
  auto daemon_fds = [&] {
    size_t n = 0;
    DIR* dir = opendir(absl::StrCat("/proc/", daemon()->pid(), "/fd").c_str());
    EXPECT_NE(dir, nullptr);
    if (dir == nullptr) return n;
    while (readdir(dir) != nullptr) ++n;
    closedir(dir);
    return n;
  };
  const size_t serving = daemon_fds();
  std::vector<UniqueFd> waiting;
  int refused = 0;
  for (int i = 0; i < 16; ++i) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket().c_str(), sizeof(addr.sun_path) - 1);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      // A front end that sends nothing is never read while another is served.
      waiting.push_back(std::move(fd));
    } else {
      EXPECT_EQ(errno, EAGAIN);
      ++refused;
    }
  }
  EXPECT_LE(waiting.size(), 2u);  // the backlog of one (the kernel lets one more in)
  EXPECT_GE(refused, 14);
  EXPECT_EQ(daemon_fds(), serving);
  // The served front end still gets entropy.
  Request(16);
  ASSERT_OK(queue_->Submit());
  ASSERT_OK(queue_->WaitForUsed(kTimeout).status());
  waiting.clear();  // they hang up unserved; the daemon then takes the next front end
  ExpectServesNextConnection();
}

// A queue has one worker thread while it runs, however often the front end stops and starts it:
// the daemon's thread count does not grow with what the front end does.
TEST_F(RngDaemonTest, QueueRestartsDoNotAddThreads) {
  Open();
  auto threads = [&] {
    size_t n = 0;
    DIR* dir = opendir(absl::StrCat("/proc/", daemon()->pid(), "/task").c_str());
    EXPECT_NE(dir, nullptr);
    if (dir == nullptr) return n;
    while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
    closedir(dir);
    return n;
  };
  const size_t running = threads();
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK(frontend_->SetVringEnable(0, false));
    ASSERT_OK(frontend_->SetVringEnable(0, true));
  }
  EXPECT_EQ(threads(), running);
  Request(16);
  ASSERT_OK(queue_->Submit());
  ASSERT_OK(queue_->WaitForUsed(kTimeout).status());
  EXPECT_EQ(threads(), running);
}

// Hostile chains from the guest: the queue breaks (error eventfd, NEEDS_RESET status), the
// daemon lives on.
class RngHostileChainTest : public RngDaemonTest {
 protected:
  void ExpectQueueBroken() {
    ASSERT_OK(queue_->Kick());
    bool signalled = false;
    for (int i = 0; i < 100 && !signalled; ++i) {
      ASSERT_OK_AND_ASSIGN(signalled, queue_->ErrorSignalled());
      if (!signalled) absl::SleepFor(absl::Milliseconds(20));
    }
    EXPECT_TRUE(signalled);
    ASSERT_OK_AND_ASSIGN(const uint8_t status, frontend_->GetStatus());
    EXPECT_TRUE(status & 0x40) << "NEEDS_RESET not reported";
    ExpectServesNextConnection();
  }
};

TEST_F(RngHostileChainTest, DescriptorLoop) {
  Open(RingLayout::kSplit, false);
  ASSERT_OK_AND_ASSIGN(const uint64_t buf, ram_->Allocate(64));
  queue_->ring().WriteDescriptor(0, {buf, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1, 0});
  queue_->ring().WriteDescriptor(1, {buf, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0, 0});
  queue_->ring().PushAvailHead(0);
  queue_->ring().Publish();
  ExpectQueueBroken();
}

TEST_F(RngHostileChainTest, DescriptorOutsideGuestMemory) {
  Open(RingLayout::kSplit, false);
  queue_->ring().WriteDescriptor(0, {kRamSize - 16, 64, VRING_DESC_F_WRITE, 0, 0});
  queue_->ring().PushAvailHead(0);
  queue_->ring().Publish();
  ExpectQueueBroken();
}

TEST_F(RngHostileChainTest, IndirectTableInsideIndirectTable) {
  Open(RingLayout::kSplit, false);
  ASSERT_OK_AND_ASSIGN(const uint64_t inner, ram_->Allocate(16, 16));
  ASSERT_OK_AND_ASSIGN(const uint64_t outer, ram_->Allocate(16, 16));
  ASSERT_OK_AND_ASSIGN(const uint64_t buf, ram_->Allocate(64));
  RawDescriptor inner_table[1] = {{buf, 64, VRING_DESC_F_WRITE, 0, 0}};
  RawDescriptor outer_table[1] = {{inner, 16, VRING_DESC_F_INDIRECT, 0, 0}};
  ASSERT_OK(queue_->ring().WriteTable(inner, inner_table));
  ASSERT_OK(queue_->ring().WriteTable(outer, outer_table));
  queue_->ring().WriteDescriptor(0, {outer, 16, VRING_DESC_F_INDIRECT, 0, 0});
  queue_->ring().PushAvailHead(0);
  queue_->ring().Publish();
  ExpectQueueBroken();
}

TEST_F(RngHostileChainTest, HeadIndexOutOfRange) {
  Open(RingLayout::kSplit, false);
  queue_->ring().PushAvailHead(5000);
  queue_->ring().Publish();
  ExpectQueueBroken();
}

// A chain may have at most kMaxChainSegments (1024, IOV_MAX) buffers: one more breaks the queue
// before anything is allocated for it.
TEST_F(RngDaemonTest, AChainOfTheMostSegmentsAllowedIsServed) {
  Open(RingLayout::kSplit, false, false, kMaxChainSegments);
  ASSERT_OK_AND_ASSIGN(const uint64_t buf, ram_->Allocate(2 * kMaxChainSegments));
  ASSERT_OK_AND_ASSIGN(const uint64_t table, ram_->Allocate(16 * kMaxChainSegments, 16));
  std::vector<Buffer> buffers;
  for (size_t i = 0; i < kMaxChainSegments; ++i) buffers.push_back({buf + 2 * i, 1});
  ASSERT_OK(queue_->ring().AddChain({}, buffers, table));
  ASSERT_OK(queue_->Submit());
  ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout));
  EXPECT_EQ(used.len, kMaxChainSegments);
}

TEST_F(RngHostileChainTest, ChainOfMoreSegmentsThanAllowed) {
  Open(RingLayout::kSplit, false, false, kMaxChainSegments);
  const size_t n = kMaxChainSegments + 1;  // longer than the ring too: written raw
  ASSERT_OK_AND_ASSIGN(const uint64_t buf, ram_->Allocate(2 * n));
  ASSERT_OK_AND_ASSIGN(const uint64_t table, ram_->Allocate(16 * n, 16));
  std::vector<RawDescriptor> entries;
  for (size_t i = 0; i < n; ++i) {
    const uint16_t flags = VRING_DESC_F_WRITE | (i + 1 < n ? VRING_DESC_F_NEXT : 0);
    entries.push_back({buf + 2 * i, 1, flags, static_cast<uint16_t>(i + 1), 0});
  }
  ASSERT_OK(queue_->ring().WriteTable(table, entries));
  queue_->ring().WriteDescriptor(
      0, {table, static_cast<uint32_t>(16 * n), VRING_DESC_F_INDIRECT, 0, 0});
  queue_->ring().PushAvailHead(0);
  queue_->ring().Publish();
  ExpectQueueBroken();
}

TEST_F(RngHostileChainTest, PackedChainRunningPastTheRing) {
  Open(RingLayout::kPacked, false);
  ASSERT_OK_AND_ASSIGN(const uint64_t buf, ram_->Allocate(64));
  std::vector<RawDescriptor> chain(128, {buf, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0, 1});
  queue_->ring().AddRawPackedChain(chain);
  queue_->ring().Publish();
  ExpectQueueBroken();
}

}  // namespace
}  // namespace vhost
