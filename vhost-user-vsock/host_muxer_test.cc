// The host side on its own: real Unix sockets in a temporary directory, watched on a queue
// context whose events the test dispatches as the rx worker would.
#include "vhost-user-vsock/host_muxer.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;

constexpr uint64_t kGuestCid = 3;

class Recorder : public HostMuxer::Delegate {
 public:
  void HostConnected(Connection& c) override { connected.push_back(&c); }
  void HostEvent(Connection& c, uint32_t events) override {
    event_ports.push_back(c.guest_port());
    last_events = events;
  }
  std::vector<Connection*> connected;
  std::vector<uint32_t> event_ports;
  uint32_t last_events = 0;
};

// Whether the other end of `fd` closed (a close with unread data may show as a reset).
bool PeerClosed(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP));
}

UniqueFd ConnectTo(const std::string& path, int type = SOCK_STREAM) {
  UniqueFd fd(socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << path;
  return fd;
}

class HostMuxerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Not $TEST_TMPDIR: the Unix sockets made here must fit sun_path (108 bytes).
    char dir[] = "/tmp/vsock_muxXXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    auto host = HostMuxer::Create(dir_ + "/v", kGuestCid);
    ASSERT_OK(host);
    host_ = *std::move(host);
    auto rx = TestQueue::Create(&ram_);
    ASSERT_OK(rx);
    rx_ = *std::move(rx);
    ASSERT_OK(host_->Serve(&rx_->context()));
  }
  void TearDown() override {
    (void)host_->Serve(nullptr);
    rx_->context().UnwatchAll();
    std::filesystem::remove_all(dir_);
  }
  // What the rx worker does: dispatches the watched sockets' events, then handles them.
  void Handle() {
    QueueContext& context = rx_->context();
    epoll_event events[16];
    const int n = epoll_wait(context.epoll_fd(), events, 16, 0);
    for (int i = 0; i < n; ++i) context.Dispatch(events[i].data.ptr, events[i].events);
    context.FreeUnwatched();
    host_->HandleEvents(recorder_);
  }
  // A host program listening on UDS_PATH_<port>.
  UniqueFd Listen(uint32_t port) {
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = absl::StrCat(dir_, "/v_", port);
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd.get(), 8), 0);
    return fd;
  }
  virtio_vsock_hdr Request(uint32_t guest_port, uint32_t port) {
    virtio_vsock_hdr h = MakeHeader(kGuestCid, guest_port, kHostCid, port, VIRTIO_VSOCK_TYPE_STREAM,
                                    VIRTIO_VSOCK_OP_REQUEST);
    return h;
  }

  FakeGuestMemory ram_;
  std::string dir_;
  std::unique_ptr<HostMuxer> host_;
  std::unique_ptr<TestQueue> rx_;
  Recorder recorder_;
};

TEST_F(HostMuxerTest, AHostProgramsConnectLineMakesAConnection) {
  UniqueFd program = ConnectTo(dir_ + "/v");
  // The line in two pieces, with the program's first bytes right after it.
  ASSERT_EQ(write(program.get(), "CONN", 4), 4);
  Handle();
  EXPECT_TRUE(recorder_.connected.empty()) << "half a line";
  ASSERT_EQ(write(program.get(), "ECT 77\r\nhi", 10), 10);
  Handle();
  ASSERT_EQ(recorder_.connected.size(), 1u);
  Connection& c = *recorder_.connected[0];
  EXPECT_EQ(c.guest_port(), 77u);
  EXPECT_GE(c.host_port(), HostMuxer::kFirstHostPort);
  EXPECT_FALSE(c.connected()) << "the guest has not accepted";
  EXPECT_EQ(host_->size(), 1u);
  EXPECT_EQ(host_->Find(c.key()), &c);
  // Its socket is still watched, now as the connection's.
  ASSERT_EQ(c.Accepted().close, false);
  std::string got(16, '\0');
  IovecList iov;
  iov.push_back({got.data(), got.size()});
  const Connection::HostData early = c.ReadHost(iov);
  EXPECT_EQ(got.substr(0, early.bytes), "hi");
  ASSERT_EQ(write(program.get(), "more", 4), 4);
  Handle();
  EXPECT_EQ(recorder_.event_ports, std::vector<uint32_t>{77});
  EXPECT_TRUE(recorder_.last_events & EPOLLIN);
}

TEST_F(HostMuxerTest, HostProgramsGetDistinctPorts) {
  UniqueFd a = ConnectTo(dir_ + "/v");
  UniqueFd b = ConnectTo(dir_ + "/v");
  ASSERT_EQ(write(a.get(), "CONNECT 5\n", 10), 10);
  ASSERT_EQ(write(b.get(), "CONNECT 5\n", 10), 10);
  Handle();
  ASSERT_EQ(recorder_.connected.size(), 2u);
  EXPECT_NE(recorder_.connected[0]->host_port(), recorder_.connected[1]->host_port());
  EXPECT_EQ(host_->size(), 2u);
}

TEST_F(HostMuxerTest, BadOrEndlessGreetingsAreClosed) {
  UniqueFd bad = ConnectTo(dir_ + "/v");
  UniqueFd endless = ConnectTo(dir_ + "/v");
  ASSERT_EQ(write(bad.get(), "HELLO 5\n", 8), 8);
  const std::string junk(100, 'x');
  ASSERT_EQ(write(endless.get(), junk.data(), junk.size()), 100);
  Handle();
  EXPECT_TRUE(recorder_.connected.empty());
  EXPECT_EQ(host_->size(), 0u);
  EXPECT_TRUE(PeerClosed(bad.get()));
  EXPECT_TRUE(PeerClosed(endless.get()));
}

TEST_F(HostMuxerTest, GuestConnectionsReachTheListenerOfTheirPort) {
  UniqueFd listener = Listen(1234);
  Connection* c = host_->ConnectToHost(Request(1000, 1234));
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->connected());
  EXPECT_EQ(c->key(), (Connection::Key{1000, kHostCid, 1234}));
  UniqueFd program(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(program);
  EXPECT_EQ(host_->ConnectToHost(Request(1001, 4321)), nullptr) << "nobody listens on 4321";
  EXPECT_EQ(host_->size(), 1u);
  ASSERT_EQ(write(program.get(), "x", 1), 1);
  Handle();
  EXPECT_EQ(recorder_.event_ports, std::vector<uint32_t>{1000});
  // Removed: the socket closes, and its events are no longer reported.
  host_->Remove(*c);
  EXPECT_EQ(host_->size(), 0u);
  EXPECT_TRUE(PeerClosed(program.get()));
  recorder_.event_ports.clear();
  Handle();
  EXPECT_TRUE(recorder_.event_ports.empty());
}

TEST_F(HostMuxerTest, SocketsMadeWhileNotServingAreWatchedWhenServing) {
  UniqueFd listener = Listen(1234);
  ASSERT_OK(host_->Serve(nullptr));
  rx_->context().UnwatchAll();  // as the engine does when the queue stops
  ASSERT_NE(host_->ConnectToHost(Request(1000, 1234)), nullptr);
  UniqueFd program(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(program);
  ASSERT_EQ(write(program.get(), "x", 1), 1);
  UniqueFd greeting = ConnectTo(dir_ + "/v");
  ASSERT_EQ(write(greeting.get(), "CONNECT 9\n", 10), 10);
  Handle();
  EXPECT_TRUE(recorder_.event_ports.empty());
  EXPECT_TRUE(recorder_.connected.empty());
  ASSERT_OK(host_->Serve(&rx_->context()));
  Handle();
  EXPECT_EQ(recorder_.event_ports, std::vector<uint32_t>{1000}) << "the edge came before";
  ASSERT_EQ(recorder_.connected.size(), 1u);
  EXPECT_EQ(recorder_.connected[0]->guest_port(), 9u);
}

TEST_F(HostMuxerTest, WritabilityIsWatchedOnlyWhenAsked) {
  // A writable socket reports nothing while no guest data waits for it: else every read of the
  // host program would wake the rx worker.
  UniqueFd listener = Listen(1234);
  Connection* c = host_->ConnectToHost(Request(1000, 1234));
  ASSERT_NE(c, nullptr);
  UniqueFd program(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(program);
  Handle();
  EXPECT_TRUE(recorder_.event_ports.empty()) << "EPOLLOUT of an idle socket";
  ASSERT_TRUE(host_->WatchWritable(*c, true));
  EXPECT_TRUE(c->writable_watched());
  Handle();
  EXPECT_EQ(recorder_.event_ports, std::vector<uint32_t>{1000});
  EXPECT_TRUE(recorder_.last_events & EPOLLOUT);
  // Off again: the socket's readable edge still comes, writability no more.
  ASSERT_TRUE(host_->WatchWritable(*c, false));
  recorder_.event_ports.clear();
  Handle();
  EXPECT_TRUE(recorder_.event_ports.empty());
  ASSERT_EQ(write(program.get(), "x", 1), 1);
  Handle();
  EXPECT_EQ(recorder_.event_ports, std::vector<uint32_t>{1000});
  EXPECT_EQ(recorder_.last_events & EPOLLOUT, 0u);
}

TEST_F(HostMuxerTest, ClearClosesEverySocketButTheListener) {
  UniqueFd listener = Listen(1234);
  ASSERT_NE(host_->ConnectToHost(Request(1000, 1234)), nullptr);
  UniqueFd program(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  UniqueFd waiting = ConnectTo(dir_ + "/v");
  Handle();  // a greeting without its line yet
  host_->Clear();
  EXPECT_EQ(host_->size(), 0u);
  EXPECT_TRUE(PeerClosed(program.get()));
  EXPECT_TRUE(PeerClosed(waiting.get()));
  UniqueFd again = ConnectTo(dir_ + "/v");  // the listener still takes programs
  ASSERT_EQ(write(again.get(), "CONNECT 3\n", 10), 10);
  Handle();
  EXPECT_EQ(recorder_.connected.size(), 1u);
}

}  // namespace
}  // namespace vhost
