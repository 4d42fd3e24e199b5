// vhost-user-vsock driven over its socket by our front end playing the guest (VsockDriver), with
// host programs on the Unix socket side: both directions, many connections, large transfers with
// checksums, half-close, refused and vanished peers, seqpacket boundaries, sibling VMs, and
// hostile packets.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/unique_fd.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/vsock_driver.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonProcess;
using frontend::DaemonSession;
using frontend::VsockDriver;
using frontend::VsockStream;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(gen());
  return s;
}

UniqueFd Listen(const std::string& path, int type = SOCK_STREAM) {
  UniqueFd fd(socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  unlink(path.c_str());
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(fd.get(), 64), 0);
  return fd;
}

UniqueFd ConnectUnix(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

bool WriteAll(int fd, const std::string& data) {
  for (size_t off = 0; off < data.size();) {
    const ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += n;
  }
  return true;
}

// Reads until `n` bytes or EOF (or 10 s without data).
std::string ReadUpTo(int fd, size_t n) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) break;
    const ssize_t got = read(fd, buf, std::min(sizeof(buf), n - out.size()));
    if (got <= 0) break;
    out.append(buf, got);
  }
  return out;
}

// Reads one line ("OK 1073741824\n").
std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (line.size() < 64) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1 || read(fd, &c, 1) != 1) break;
    line.push_back(c);
    if (c == '\n') break;
  }
  return line;
}

// A host program: accepts on a listener and echoes each connection back, a thread each.
class EchoServer {
 public:
  explicit EchoServer(const std::string& path) : listener_(Listen(path)) {
    thread_ = std::thread([this] {
      for (;;) {
        UniqueFd c(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c || stop_) return;
        ++accepted_;
        open_fds_.push_back(c.get());
        workers_.emplace_back([fd = std::move(c)]() mutable {
          char buf[65536];
          for (ssize_t n; (n = read(fd.get(), buf, sizeof(buf))) > 0;) {
            if (!WriteAll(fd.get(), std::string(buf, n))) return;
          }
        });
      }
    });
  }
  ~EchoServer() {
    stop_ = true;
    shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);  // workers blocked in read return
    for (auto& w : workers_) w.join();
  }
  int accepted() const { return accepted_; }

 private:
  UniqueFd listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::vector<std::thread> workers_;
  std::vector<int> open_fds_;  // owned by the workers, which outlive the listener thread
};

class VsockDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("vsock"));
    socket_ = session_->File("vhost.sock");
    uds_ = session_->File("v.sock");
  }
  // Without `args`, one VM on socket_ with uds_; with them, they name b.sock (waited for).
  void StartDaemon(std::vector<std::string> args = {}) {
    const bool default_vm = args.empty();
    if (default_vm) args = {"--socket-path=" + socket_, "--uds-path=" + uds_, "--guest-cid=3"};
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-vsock/vhost-user-vsock"), args,
                              default_vm ? socket_ : session_->File("b.sock")));
  }
  DaemonProcess* daemon() { return session_->daemon(); }
  // The daemon as a host should run it, under a memory limit: a hostile guest's claim of
  // gigabytes must be refused before it is allocated, else the daemon dies (with every VM it
  // serves). `args` name `socket`, the one to wait for.
  void StartDaemonUnderMemoryLimit(std::vector<std::string> args, const std::string& socket) {
    // ASan reserves terabytes of address space: there, its allocator is capped instead.
    std::vector<std::string> sh_args = {
        "-c",
        kAsan ? "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}max_allocation_size_mb=1024 "
                "exec \"$0\" \"$@\""
              : "ulimit -v 2097152 && exec \"$0\" \"$@\"",
        RunfilePath("vhost-user-vsock/vhost-user-vsock")};
    sh_args.insert(sh_args.end(), args.begin(), args.end());
    ASSERT_OK(session_->Start("/bin/sh", sh_args, socket));
  }
  void StartGuest(VsockDriver::Options options = {}) {
    ASSERT_OK_AND_ASSIGN(guest_, VsockDriver::Start(socket_, options));
  }

  std::unique_ptr<DaemonSession> session_;
  std::string socket_, uds_;
  std::unique_ptr<VsockDriver> guest_;
};

TEST_F(VsockDaemonTest, GuestToHostEchoOnManyConnections) {
  StartDaemon();
  EchoServer echo(uds_ + "_1234");
  StartGuest();
  constexpr int kConnections = 8;
  constexpr size_t kBytes = 1 << 20;
  std::vector<VsockStream*> streams;
  std::vector<std::string> sent;
  for (int i = 0; i < kConnections; ++i) {
    ASSERT_OK_AND_ASSIGN(VsockStream * s, guest_->Connect(2, 1234));
    streams.push_back(s);
    sent.push_back(RandomBytes(kBytes, i));
  }
  // Interleaved: a slice to each in turn, reading the echoes as they come.
  constexpr size_t kSlice = 128 * 1024;
  for (size_t off = 0; off < kBytes; off += kSlice) {
    for (int i = 0; i < kConnections; ++i) {
      ASSERT_OK(guest_->Write(streams[i], sent[i].substr(off, kSlice)));
    }
  }
  for (int i = 0; i < kConnections; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string back, guest_->Read(streams[i], kBytes));
    EXPECT_EQ(back.size(), kBytes);
    EXPECT_TRUE(back == sent[i]) << "connection " << i << " corrupted";
  }
  EXPECT_EQ(echo.accepted(), kConnections);
  // Half-close: the host sees EOF and, as an echo server, closes too.
  ASSERT_OK(guest_->Shutdown(streams[0], VIRTIO_VSOCK_SHUTDOWN_SEND));
  EXPECT_TRUE(guest_->WaitForPeerClose(streams[0]));
}

// WriteSome (the benchmark's many-streams writer) sends what the credit allows at once and no
// more, without waiting; more goes once a credit update is pumped.
TEST_F(VsockDaemonTest, WriteSomeStopsAtTheCredit) {
  StartDaemon();
  UniqueFd listener = Listen(uds_ + "_1235");
  StartGuest();
  ASSERT_OK_AND_ASSIGN(VsockStream * s, guest_->Connect(2, 1235));
  const uint32_t window = s->peer_buf_alloc;
  ASSERT_GT(window, 0u);
  const std::string data = RandomBytes(4 * size_t{window}, 3);
  ASSERT_OK_AND_ASSIGN(size_t first, guest_->WriteSome(s, data.data(), data.size()));
  EXPECT_EQ(first, window);
  ASSERT_OK_AND_ASSIGN(size_t none, guest_->WriteSome(s, data.data() + first, data.size() - first));
  EXPECT_EQ(none, 0u);
  UniqueFd host(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(ReadUpTo(host.get(), first) == data.substr(0, first));
  size_t more = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (more == 0 && guest_->Pump(deadline - absl::Now())) {
    ASSERT_OK_AND_ASSIGN(more, guest_->WriteSome(s, data.data() + first, data.size() - first));
  }
  EXPECT_GT(more, 0u);
  EXPECT_TRUE(ReadUpTo(host.get(), more) == data.substr(first, more));
}

TEST_F(VsockDaemonTest, HostToGuestWithConnectLine) {
  StartDaemon();
  StartGuest();
  guest_->Listen(5000);
  UniqueFd host = ConnectUnix(uds_);
  ASSERT_TRUE(WriteAll(host.get(), "CONNECT 5000\n"));
  ASSERT_OK_AND_ASSIGN(VsockStream * s, guest_->Accept(5000));
  const std::string ok = ReadLine(host.get());
  ASSERT_EQ(ok.rfind("OK ", 0), 0u) << ok;
  uint32_t host_port;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ok.substr(3)), &host_port));
  EXPECT_EQ(host_port, s->peer_port);
  EXPECT_GE(host_port, 1u << 30);
  const std::string down = RandomBytes(3 << 20, 7), up = RandomBytes(2 << 20, 8);
  std::thread writer([&] { EXPECT_TRUE(WriteAll(host.get(), down)); });
  ASSERT_OK_AND_ASSIGN(std::string got, guest_->Read(s, down.size()));
  writer.join();
  EXPECT_TRUE(got == down);
  std::string host_got;
  std::thread reader([&] { host_got = ReadUpTo(host.get(), up.size()); });
  ASSERT_OK(guest_->Write(s, up));
  reader.join();
  EXPECT_TRUE(host_got == up);
  // The host closes: the guest sees the end of the stream.
  host.Reset();
  EXPECT_TRUE(guest_->WaitForPeerClose(s));
}

TEST_F(VsockDaemonTest, RefusedBothWays) {
  StartDaemon();
  StartGuest();
  EXPECT_FALSE(guest_->Connect(2, 4321).ok());  // no listener at uds_4321: RST
  UniqueFd host = ConnectUnix(uds_);
  ASSERT_TRUE(WriteAll(host.get(), "CONNECT 6000\n"));  // the guest does not listen
  EXPECT_TRUE(guest_->Pump(absl::Seconds(5)));          // its REQUEST, answered RST
  EXPECT_EQ(ReadUpTo(host.get(), 100), "");             // closed without OK
  UniqueFd bad = ConnectUnix(uds_);
  ASSERT_TRUE(WriteAll(bad.get(), "HELLO 6000\n"));
  EXPECT_EQ(ReadUpTo(bad.get(), 100), "");
  EXPECT_TRUE(daemon()->IsAlive());
}

TEST_F(VsockDaemonTest, HostVanishingMidTransferResetsTheGuest) {
  StartDaemon();
  UniqueFd listener = Listen(uds_ + "_77");
  StartGuest();
  ASSERT_OK_AND_ASSIGN(VsockStream * s, guest_->Connect(2, 77));
  {
    UniqueFd host(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(host);
    ASSERT_EQ(ReadUpTo(host.get(), 0), "");
  }  // closed
  absl::Status status;
  for (int i = 0; i < 200 && status.ok() && !s->reset; ++i) {
    status = guest_->Write(s, RandomBytes(64 * 1024, i), absl::Seconds(2));
    guest_->Pump(absl::Milliseconds(1));
  }
  EXPECT_TRUE(s->reset || s->peer_shut_send);
  EXPECT_TRUE(daemon()->IsAlive());
}

TEST_F(VsockDaemonTest, SeqpacketKeepsMessageBoundaries) {
  StartDaemon();
  UniqueFd listener = Listen(uds_ + "_88", SOCK_SEQPACKET);
  StartGuest();
  ASSERT_OK_AND_ASSIGN(VsockStream * s, guest_->Connect(2, 88, VIRTIO_VSOCK_TYPE_SEQPACKET));
  UniqueFd host(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(host);
  const std::vector<std::string> up = {"a", RandomBytes(10000, 1), RandomBytes(100000, 2), "z"};
  for (const std::string& m : up) ASSERT_OK(guest_->Write(s, m));
  std::vector<char> buf(1 << 20);
  for (const std::string& m : up) {
    const ssize_t n = recv(host.get(), buf.data(), buf.size(), 0);
    ASSERT_EQ(n, static_cast<ssize_t>(m.size()));
    EXPECT_TRUE(std::string(buf.data(), n) == m);
  }
  const std::vector<std::string> down = {RandomBytes(9000, 3), "hello", RandomBytes(70000, 4)};
  for (const std::string& m : down) {
    ASSERT_EQ(send(host.get(), m.data(), m.size(), 0), static_cast<ssize_t>(m.size()));
  }
  for (const std::string& m : down) {
    ASSERT_OK_AND_ASSIGN(std::string got, guest_->ReadMessage(s));
    EXPECT_EQ(got.size(), m.size());
    EXPECT_TRUE(got == m);
  }
}

TEST_F(VsockDaemonTest, TransportResetEventOnConnect) {
  StartDaemon();
  StartGuest();
  for (int i = 0; i < 100 && guest_->reset_events() == 0; ++i) {
    ASSERT_OK(guest_->PollEvents());
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(guest_->reset_events(), 1);
}

TEST_F(VsockDaemonTest, HostilePackets) {
  StartDaemon();
  EchoServer echo(uds_ + "_99");
  StartGuest();
  // Data for a connection that does not exist: RST back.
  virtio_vsock_hdr h{};
  h.src_cid = 3;
  h.src_port = 1;
  h.dst_cid = 2;
  h.dst_port = 99;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = VIRTIO_VSOCK_OP_RW;
  h.len = 5;
  ASSERT_OK(guest_->Send(h, "hello", 5));
  ASSERT_OK_AND_ASSIGN(auto reply, guest_->Receive(absl::Seconds(5)));
  EXPECT_EQ(reply.first.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(reply.first.dst_port, 1u);
  // A length beyond the payload, a header cut short, a spoofed source, an unknown type and op.
  h.len = 5000;
  ASSERT_OK(guest_->Send(h, "hi", 2));
  ASSERT_OK(guest_->Send(h, nullptr, 0, 20));
  virtio_vsock_hdr spoofed = h;
  spoofed.src_cid = 9;
  spoofed.len = 0;
  ASSERT_OK(guest_->Send(spoofed));
  virtio_vsock_hdr weird = h;
  weird.len = 0;
  weird.type = 7;
  ASSERT_OK(guest_->Send(weird));
  ASSERT_OK_AND_ASSIGN(reply, guest_->Receive(absl::Seconds(5)));
  EXPECT_EQ(reply.first.op, VIRTIO_VSOCK_OP_RST);
  // A header split across two descriptors is fine: a normal connection still works.
  virtio_vsock_hdr request{};
  request.src_cid = 3;
  request.src_port = 777;
  request.dst_cid = 2;
  request.dst_port = 99;
  request.type = VIRTIO_VSOCK_TYPE_STREAM;
  request.op = VIRTIO_VSOCK_OP_REQUEST;
  request.buf_alloc = VsockDriver::kBufAlloc;
  ASSERT_OK(guest_->Send(request, nullptr, 0, 20));
  ASSERT_OK_AND_ASSIGN(reply, guest_->Receive(absl::Seconds(5)));
  EXPECT_EQ(reply.first.op, VIRTIO_VSOCK_OP_RESPONSE);
  ASSERT_OK_AND_ASSIGN(VsockStream * s, guest_->Connect(2, 99));
  ASSERT_OK(guest_->Write(s, "still fine"));
  ASSERT_OK_AND_ASSIGN(std::string back, guest_->Read(s, 10));
  EXPECT_EQ(back, "still fine");
  EXPECT_TRUE(daemon()->IsAlive());
}

TEST_F(VsockDaemonTest, GuestOverrunningCreditIsReset) {
  StartDaemon();
  UniqueFd listener = Listen(uds_ + "_55");  // accepts, never reads
  StartGuest();
  ASSERT_OK_AND_ASSIGN(VsockStream * s, guest_->Connect(2, 55));
  UniqueFd host(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  s->peer_buf_alloc = 1u << 30;  // pretend the daemon offered far more than it did
  const std::string chunk = RandomBytes(64 * 1024, 5);
  for (int i = 0; i < 200 && !s->reset; ++i) {
    ASSERT_OK(guest_->Write(s, chunk));
    while (guest_->Pump(absl::Milliseconds(1))) {
    }
    s->peer_buf_alloc = 1u << 30;
  }
  EXPECT_TRUE(s->reset);
  EXPECT_TRUE(daemon()->IsAlive());
}

TEST_F(VsockDaemonTest, GuestWithoutRxBuffersKeepsTheDaemonBounded) {
  StartDaemon();
  StartGuest();
  guest_->Listen(5001);
  UniqueFd host = ConnectUnix(uds_);
  ASSERT_TRUE(WriteAll(host.get(), "CONNECT 5001\n"));
  ASSERT_OK_AND_ASSIGN(VsockStream * s, guest_->Accept(5001));
  ASSERT_EQ(ReadLine(host.get()).rfind("OK ", 0), 0u);
  guest_->set_refill(false);  // the guest stops returning rx buffers
  while (guest_->Pump(absl::Milliseconds(200))) {
  }
  // The host can write only what the socket buffers hold: the daemon does not read more.
  const int flags = fcntl(host.get(), F_GETFL);
  fcntl(host.get(), F_SETFL, flags | O_NONBLOCK);
  size_t written = 0;
  const std::string block(65536, 'x');
  for (int i = 0; i < 1000; ++i) {
    const ssize_t n = send(host.get(), block.data(), block.size(), MSG_NOSIGNAL);
    if (n <= 0) break;
    written += n;
  }
  EXPECT_LT(written, 64u << 20) << "the daemon kept reading with nowhere to put it";
  // Buffers come back: everything written arrives, in order.
  guest_->set_refill(true);
  ASSERT_OK(guest_->RefillRx());
  ASSERT_OK_AND_ASSIGN(std::string got, guest_->Read(s, s->data.size() + written));
  EXPECT_EQ(got.size(), written);
  EXPECT_EQ(got.find_first_not_of('x'), std::string::npos);
}

TEST_F(VsockDaemonTest, SiblingVmsInOneGroupReachEachOther) {
  const std::string a = session_->File("a.sock"), b = session_->File("b.sock"),
                    c = session_->File("c.sock");
  const std::string vms = absl::StrCat(
      "guest-cid=3,socket=", a, ",uds-path=", session_->File("a.vsock"), ",groups=g1;",
      "guest-cid=4,socket=", b, ",uds-path=", session_->File("b.vsock"), ",groups=g1+g2;",
      "guest-cid=5,socket=", c, ",uds-path=", session_->File("c.vsock"), ",groups=g2");
  ASSERT_OK(session_->Start(RunfilePath("vhost-user-vsock/vhost-user-vsock"), {"--vm=" + vms}, c));
  VsockDriver::Options oa, ob, oc;
  oa.guest_cid = 3;
  ob.guest_cid = 4;
  oc.guest_cid = 5;
  ASSERT_OK_AND_ASSIGN(auto vm_a, VsockDriver::Start(a, oa));
  ASSERT_OK_AND_ASSIGN(auto vm_b, VsockDriver::Start(b, ob));
  ASSERT_OK_AND_ASSIGN(auto vm_c, VsockDriver::Start(c, oc));
  vm_b->Listen(7);
  // A connects to B: B's guest answers from its own driver.
  std::thread accept_thread;
  VsockStream* at_b = nullptr;
  accept_thread = std::thread([&] {
    absl::StatusOr<VsockStream*> s = vm_b->Accept(7);
    if (s.ok()) at_b = *s;
  });
  absl::StatusOr<VsockStream*> at_a = vm_a->Connect(4, 7);
  accept_thread.join();
  ASSERT_OK(at_a);
  ASSERT_NE(at_b, nullptr);
  const std::string data = RandomBytes(200000, 9);
  std::thread writer([&] { EXPECT_OK(vm_a->Write(*at_a, data)); });
  absl::StatusOr<std::string> got = vm_b->Read(at_b, data.size());
  writer.join();
  ASSERT_OK(got);
  EXPECT_TRUE(*got == data);
  // A and C share no group: refused.
  EXPECT_FALSE(vm_a->Connect(5, 7, VIRTIO_VSOCK_TYPE_STREAM, absl::Seconds(3)).ok());
}

TEST_F(VsockDaemonTest, HugeClaimOnASeqpacketConnectionUnderAMemoryLimitIsReset) {
  StartDaemonUnderMemoryLimit({"--socket-path=" + socket_, "--uds-path=" + uds_, "--guest-cid=3"},
                              socket_);
  UniqueFd listener = Listen(uds_ + "_88", SOCK_SEQPACKET);
  StartGuest();
  ASSERT_OK_AND_ASSIGN(VsockStream * s, guest_->Connect(2, 88, VIRTIO_VSOCK_TYPE_SEQPACKET));
  UniqueFd host(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(host);
  virtio_vsock_hdr h{};
  h.src_cid = 3;
  h.src_port = s->local_port;
  h.dst_cid = 2;
  h.dst_port = 88;
  h.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
  h.op = VIRTIO_VSOCK_OP_RW;
  h.buf_alloc = VsockDriver::kBufAlloc;
  h.len = 100;  // a message begun: 100 bytes buffered in the daemon
  ASSERT_OK(guest_->Send(h, std::string(100, 'm').data(), 100));
  // 100 + (2^32 - 51) bytes is 49 modulo 2^32: within the credit of a 32-bit check.
  h.len = 0xffffffffu - 50;
  h.flags = VIRTIO_VSOCK_SEQ_EOM;
  ASSERT_OK(guest_->SendAliased(h, 0xffffffffu - sizeof(h)));
  EXPECT_TRUE(guest_->WaitForPeerClose(s));
  EXPECT_TRUE(s->reset);
  ASSERT_TRUE(daemon()->IsAlive()) << "exit status " << daemon()->exit_status();
  // It still serves.
  ASSERT_OK_AND_ASSIGN(s, guest_->Connect(2, 88, VIRTIO_VSOCK_TYPE_SEQPACKET));
  UniqueFd host2(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(host2);
  ASSERT_OK(guest_->Write(s, "after"));
  char buf[16];
  EXPECT_EQ(recv(host2.get(), buf, sizeof(buf), 0), 5);
}

TEST_F(VsockDaemonTest, HugeClaimForASiblingVmUnderAMemoryLimitIsReset) {
  const std::string a = session_->File("a.sock"), b = session_->File("b.sock");
  StartDaemonUnderMemoryLimit(
      {absl::StrCat("--vm=guest-cid=3,socket=", a, ",uds-path=", session_->File("a.vsock"),
                    ";guest-cid=4,socket=", b, ",uds-path=", session_->File("b.vsock"))},
      b);
  VsockDriver::Options oa, ob;
  oa.guest_cid = 3;
  ob.guest_cid = 4;
  ASSERT_OK_AND_ASSIGN(auto vm_a, VsockDriver::Start(a, oa));
  ASSERT_OK_AND_ASSIGN(auto vm_b, VsockDriver::Start(b, ob));
  virtio_vsock_hdr h{};
  h.src_cid = 3;
  h.src_port = 1000;
  h.dst_cid = 4;
  h.dst_port = 7;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = VIRTIO_VSOCK_OP_RW;
  h.buf_alloc = VsockDriver::kBufAlloc;
  h.len = 0xffffffffu - 50;
  ASSERT_OK(vm_a->SendAliased(h, 0xffffffffu - sizeof(h)));
  ASSERT_OK_AND_ASSIGN(auto reply, vm_a->Receive(absl::Seconds(10)));
  EXPECT_EQ(reply.first.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(uint64_t{reply.first.src_cid}, 4u);
  ASSERT_TRUE(daemon()->IsAlive()) << "exit status " << daemon()->exit_status();
  // Both VMs keep their vsock: A still reaches B.
  vm_b->Listen(7);
  VsockStream* at_b = nullptr;
  std::thread accept_thread([&] {
    absl::StatusOr<VsockStream*> s = vm_b->Accept(7);
    if (s.ok()) at_b = *s;
  });
  absl::StatusOr<VsockStream*> at_a = vm_a->Connect(4, 7);
  accept_thread.join();
  ASSERT_OK(at_a);
  ASSERT_NE(at_b, nullptr);
}

}  // namespace
}  // namespace vhost
