// Hermetic tests of the front-end library: a scripted fake back end on a socketpair, raw frames,
// guest memory, eventfds, daemon processes.
#include "tests/frontend/frontend.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "common/vhost_user/channel.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_process.h"
#include "tests/frontend/event_fd.h"
#include "tests/frontend/feature_names.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"
#include "tests/frontend/raw_socket.h"

namespace vhost {
namespace frontend {
namespace {

const absl::Duration kTimeout = absl::Seconds(5);

uint32_t Code(FrontendRequest r) { return static_cast<uint32_t>(r); }

// A back end that runs `script` on its end of a socketpair, in a thread.
class FakeBackend {
 public:
  using Script = std::function<void(Channel&)>;
  explicit FakeBackend(Script script) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    frontend_ = std::make_unique<Frontend>(UniqueFd(fds[0]));
    EXPECT_TRUE(SetReceiveTimeout(fds[0], 5000).ok());
    EXPECT_TRUE(SetReceiveTimeout(fds[1], 5000).ok());
    thread_ = std::thread([script, fd = fds[1]] {
      Channel channel{UniqueFd(fd)};
      script(channel);
    });
  }
  ~FakeBackend() { thread_.join(); }
  Frontend& frontend() { return *frontend_; }

 private:
  std::unique_ptr<Frontend> frontend_;
  std::thread thread_;
};

Message Expect(Channel& c, FrontendRequest request) {
  absl::StatusOr<Message> m = c.Receive();
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return Message{};
  EXPECT_EQ(m->header.request, Code(request)) << RequestName(request);
  return std::move(*m);
}

void ReplyU64(Channel& c, const Message& request, uint64_t value) {
  Message reply = MakeReply(request);
  reply.Append(value);
  EXPECT_TRUE(c.Send(reply).ok());
}

constexpr uint64_t kOfferedProtocol = Bit(kProtocolReplyAck) | Bit(kProtocolConfig) |
                                      Bit(kProtocolStatus) | Bit(kProtocolResetDevice) |
                                      Bit(kProtocolLogShmfd);

void ServeHandshake(Channel& c) {
  ReplyU64(c, Expect(c, FrontendRequest::kGetFeatures),
           Bit(kFeatureVersion1) | Bit(kFeatureProtocolFeatures) | Bit(kFeatureEventIdx));
  ReplyU64(c, Expect(c, FrontendRequest::kGetProtocolFeatures), kOfferedProtocol);
  Message set = Expect(c, FrontendRequest::kSetProtocolFeatures);
  EXPECT_FALSE(set.need_reply());
  EXPECT_EQ(*set.Read<uint64_t>(), kOfferedProtocol & ~Bit(kProtocolLogShmfd));
  Message owner = Expect(c, FrontendRequest::kSetOwner);
  EXPECT_TRUE(owner.need_reply());
  ReplyU64(c, owner, 0);
}

TEST(FrontendTest, HandshakeStatusResetAndAcks) {
  FakeBackend backend([](Channel& c) {
    ServeHandshake(c);
    Message features = Expect(c, FrontendRequest::kSetFeatures);
    EXPECT_EQ(*features.Read<uint64_t>(), Bit(kFeatureVersion1) | Bit(kFeatureProtocolFeatures));
    ReplyU64(c, features, 0);
    Message status = Expect(c, FrontendRequest::kSetStatus);
    EXPECT_EQ(*status.Read<uint64_t>(), 0x0fu);
    ReplyU64(c, status, 0);
    ReplyU64(c, Expect(c, FrontendRequest::kGetStatus), 0x0f);
    ReplyU64(c, Expect(c, FrontendRequest::kResetDevice), 1);  // a refusal
  });
  Frontend& f = backend.frontend();
  ASSERT_TRUE(f.Handshake().ok());
  EXPECT_EQ(f.protocol_features(), kOfferedProtocol & ~Bit(kProtocolLogShmfd));
  EXPECT_EQ(f.backend_channel(), nullptr);
  absl::StatusOr<uint64_t> acked = f.NegotiateFeatures(Bit(kFeatureVersion1) | Bit(34));
  ASSERT_TRUE(acked.ok());
  EXPECT_TRUE(f.has_feature(kFeatureVersion1));
  EXPECT_FALSE(f.has_feature(kFeatureEventIdx));
  EXPECT_TRUE(f.SetStatus(0x0f).ok());
  absl::StatusOr<uint8_t> status = f.GetStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, 0x0f);
  EXPECT_TRUE(absl::IsFailedPrecondition(f.ResetDevice()));
}

TEST(FrontendTest, ConfigAndVringMessages) {
  FakeBackend backend([](Channel& c) {
    Message get = Expect(c, FrontendRequest::kGetConfig);
    EXPECT_EQ(get.payload.size(), sizeof(ConfigHeader) + 8);
    Message reply = MakeReply(get);
    reply.Append(ConfigHeader{0, 8, 0});
    reply.Append(uint64_t{0x1122334455667788});
    EXPECT_TRUE(c.Send(reply).ok());
    EXPECT_TRUE(c.Send(MakeReply(Expect(c, FrontendRequest::kGetConfig))).ok());  // refusal

    Message kick = Expect(c, FrontendRequest::kSetVringKick);
    EXPECT_EQ(*kick.Read<uint64_t>(), 3 | kVringNoFdFlag);
    EXPECT_TRUE(kick.fds.empty());
    Message call = Expect(c, FrontendRequest::kSetVringCall);
    EXPECT_EQ(*call.Read<uint64_t>(), 3u);
    EXPECT_EQ(call.fds.size(), 1u);
    Message base = Expect(c, FrontendRequest::kGetVringBase);
    Message base_reply = MakeReply(base);
    base_reply.Append(VringState{3, 77});
    EXPECT_TRUE(c.Send(base_reply).ok());
    Message set_config = Expect(c, FrontendRequest::kSetConfig);
    EXPECT_EQ(set_config.payload.size(), sizeof(ConfigHeader) + 2);
  });
  Frontend& f = backend.frontend();
  absl::StatusOr<std::vector<uint8_t>> config = f.GetConfig(0, 8);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)[0], 0x88);
  EXPECT_TRUE(absl::IsFailedPrecondition(f.GetConfig(0, 16).status()));
  // No REPLY_ACK negotiated: plain sends.
  EXPECT_TRUE(f.SetVringKick(3, -1).ok());
  absl::StatusOr<EventFd> call = EventFd::Create();
  ASSERT_TRUE(call.ok());
  EXPECT_TRUE(f.SetVringCall(3, call->fd()).ok());
  absl::StatusOr<uint32_t> base = f.GetVringBase(3);
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(*base, 77u);
  const uint8_t bytes[] = {1, 2};
  EXPECT_TRUE(f.SetConfig(4, bytes).ok());
}

TEST(FrontendTest, BackendChannelAcks) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  BackendChannel ours{UniqueFd(fds[0])};
  Channel theirs{UniqueFd(fds[1])};
  EXPECT_TRUE(absl::IsDeadlineExceeded(ours.Receive(absl::Milliseconds(10)).status()));
  Message change =
      MakeRequest(static_cast<uint32_t>(BackendRequest::kConfigChangeMsg), kFlagNeedReply);
  ASSERT_TRUE(theirs.Send(change).ok());
  absl::StatusOr<Message> got = ours.ReceiveAndAck(BackendRequest::kConfigChangeMsg, kTimeout);
  ASSERT_TRUE(got.ok()) << got.status();
  absl::StatusOr<Message> ack = theirs.Receive();
  ASSERT_TRUE(ack.ok());
  EXPECT_TRUE(ack->header.flags & kFlagReply);
  EXPECT_EQ(*ack->Read<uint64_t>(), 0u);
}

TEST(RawSocketTest, LyingSizesFdsAndClose) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd ours(fds[0]), theirs(fds[1]);
  const uint8_t payload[] = {1, 2, 3};
  absl::StatusOr<EventFd> e = EventFd::Create();
  ASSERT_TRUE(e.ok());
  const int three[] = {e->fd(), e->fd(), e->fd()};
  ASSERT_TRUE(SendRawMessage(ours.get(), 12345, kFlagVersion, 1000, payload, three).ok());
  uint8_t frame[15];
  ASSERT_EQ(recv(theirs.get(), frame, sizeof(frame), MSG_WAITALL), 15);
  MessageHeader header;
  std::memcpy(&header, frame, sizeof(header));
  EXPECT_EQ(header.request, 12345u);
  EXPECT_EQ(header.size, 1000u);
  EXPECT_EQ(frame[14], 3);

  // A message with fds, received through ReceiveMessage.
  ASSERT_TRUE(SendRawMessage(theirs.get(), 1, kFlagVersion | kFlagReply, 0, {}, three).ok());
  absl::StatusOr<Message> m = ReceiveMessage(ours.get(), kTimeout);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->fds.size(), 3u);
  EXPECT_TRUE(
      absl::IsDeadlineExceeded(ReceiveMessage(ours.get(), absl::Milliseconds(10)).status()));

  EXPECT_FALSE(WaitForPeerClose(ours.get(), absl::Milliseconds(20)));
  ASSERT_TRUE(SendRawBytes(theirs.get(), payload).ok());  // discarded while waiting
  theirs.Reset();
  EXPECT_TRUE(WaitForPeerClose(ours.get(), kTimeout));
}

TEST(GuestRamTest, RegionsTranslationAndAllocation) {
  const uint64_t high = uint64_t{1} << 32;
  absl::StatusOr<std::unique_ptr<GuestRam>> ram = GuestRam::Create({{0, 8192}, {high, 4096}});
  ASSERT_TRUE(ram.ok()) << ram.status();
  GuestRam& r = **ram;
  EXPECT_NE(r.HostAddress(0, 8192), nullptr);
  EXPECT_EQ(r.HostAddress(1, 8192), nullptr);
  EXPECT_EQ(r.HostAddress(8192, 1), nullptr);
  EXPECT_EQ(r.HostAddress(high + 4000, 96), r.region(1).host + 4000);
  EXPECT_EQ(r.UserAddress(high + 5), reinterpret_cast<uint64_t>(r.region(1).host) + 5);
  EXPECT_EQ(r.UserAddress(8192), 0u);
  const MemoryRegion wire = r.WireRegion(1);
  EXPECT_EQ(wire.guest_phys_addr, high);
  EXPECT_EQ(wire.memory_size, 4096u);
  EXPECT_EQ(wire.mmap_offset, 0u);

  // Writes through the mapping are in the memfd a back end maps.
  std::memcpy(r.HostAddress(high + 10, 4), "abcd", 4);
  char back[4];
  ASSERT_EQ(pread(r.region(1).fd.get(), back, 4, 10), 4);
  EXPECT_EQ(std::memcmp(back, "abcd", 4), 0);

  absl::StatusOr<uint64_t> a = r.Allocate(100, 64);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 0u);
  absl::StatusOr<uint64_t> b = r.Allocate(8000, 4096);  // does not fit in region 0 any more
  EXPECT_FALSE(b.ok());
  absl::StatusOr<uint64_t> c = r.Allocate(4096, 4096);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, 4096u);
  EXPECT_EQ(r.FreeBytes(0), 0u);
  absl::StatusOr<uint64_t> d = r.Allocate(16);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, high);
  r.ResetAllocator();
  EXPECT_EQ(r.FreeBytes(0), 8192u);

  EXPECT_FALSE(GuestRam::Create({{0, 8192}, {4096, 4096}}).ok());  // overlap
  EXPECT_FALSE(GuestRam::Create({{0, 100}}).ok());                 // not whole pages
}

TEST(QueueTest, CreateLaysOutRingsInGuestMemory) {
  absl::StatusOr<std::unique_ptr<GuestRam>> ram = GuestRam::Create(1 << 20);
  ASSERT_TRUE(ram.ok());
  QueueConfig config;
  config.index = 2;
  config.size = 64;
  absl::StatusOr<std::unique_ptr<FrontendQueue>> q = FrontendQueue::Create(ram->get(), config);
  ASSERT_TRUE(q.ok()) << q.status();
  const VringAddr addr = (*q)->vring_addr();
  EXPECT_EQ(addr.index, 2u);
  const testing::RingAddresses& gpas = (*q)->ring().config().addresses;
  EXPECT_EQ(addr.desc_user_addr, (*ram)->UserAddress(gpas.desc));
  EXPECT_EQ(addr.avail_user_addr, (*ram)->UserAddress(gpas.driver));
  EXPECT_EQ(addr.used_user_addr, (*ram)->UserAddress(gpas.device));
  // Kick and call are ordinary eventfds.
  ASSERT_TRUE((*q)->Kick().ok());
  uint64_t count = 0;
  ASSERT_EQ(read((*q)->kick_fd(), &count, 8), 8);
  EXPECT_EQ(count, 1u);
  absl::StatusOr<uint64_t> calls = (*q)->DrainCalls();
  ASSERT_TRUE(calls.ok());
  EXPECT_EQ(*calls, 0u);
  // Nothing will ever be used.
  EXPECT_TRUE(absl::IsDeadlineExceeded((*q)->WaitForUsed(absl::Milliseconds(20)).status()));
  EXPECT_TRUE(absl::IsDeadlineExceeded((*q)->WaitForUsed(absl::Milliseconds(20), true).status()));
}

TEST(EventFdTest, SignalDrainWait) {
  absl::StatusOr<EventFd> e = EventFd::Create();
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e->Wait(absl::Milliseconds(5)), 0u);
  ASSERT_TRUE(e->Signal().ok());
  ASSERT_TRUE(e->Signal().ok());
  EXPECT_EQ(*e->Wait(kTimeout), 2u);
  EXPECT_EQ(*e->Drain(), 0u);
}

TEST(DaemonProcessTest, KillsItsGroupAndCleansUp) {
  absl::StatusOr<std::unique_ptr<TempDir>> dir = TempDir::Create("vhu-test");
  ASSERT_TRUE(dir.ok());
  const std::string path = (*dir)->path();
  EXPECT_LT(path.size(), 30u);
  pid_t pid;
  {
    DaemonProcess::Options options;
    options.binary = "/bin/sh";
    // A child of the daemon in the same group, and a file in the temp dir.
    options.args = {"-c", "touch " + (*dir)->File("x") + "; sleep 60 & sleep 60"};
    absl::StatusOr<std::unique_ptr<DaemonProcess>> daemon = DaemonProcess::Start(options);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    pid = (*daemon)->pid();
    EXPECT_TRUE((*daemon)->IsAlive());
    EXPECT_EQ(getpgid(pid), pid);
  }
  EXPECT_EQ(kill(pid, 0), -1);
  // The whole group goes (the orphaned sleep is reaped by init, maybe a moment later).
  const absl::Time deadline = absl::Now() + kTimeout;
  while (kill(-pid, 0) == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(kill(-pid, 0), -1);
  dir->reset();
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0);
}

TEST(DaemonProcessTest, ReportsEarlyExit) {
  DaemonProcess::Options options;
  options.binary = "/bin/false";
  options.socket_path = "/tmp/does-not-exist/sock";
  absl::StatusOr<std::unique_ptr<DaemonProcess>> daemon = DaemonProcess::Start(options);
  EXPECT_TRUE(absl::IsFailedPrecondition(daemon.status())) << daemon.status();
  options.binary = "/bin/sleep";
  options.args = {"10"};
  options.startup_timeout = absl::Milliseconds(50);
  daemon = DaemonProcess::Start(options);
  EXPECT_TRUE(absl::IsDeadlineExceeded(daemon.status())) << daemon.status();
}

TEST(FeatureNamesTest, Names) {
  EXPECT_EQ(DescribeFeatures(Bit(kFeatureVersion1) | Bit(kFeatureRingPacked) | Bit(3)),
            "device bit 3 VERSION_1 RING_PACKED");
  EXPECT_EQ(DescribeProtocolFeatures(Bit(kProtocolReplyAck) | Bit(kProtocolStatus) | Bit(40)),
            "REPLY_ACK STATUS bit 40");
}

}  // namespace
}  // namespace frontend
}  // namespace vhost
