// The NOTIFY_SOCKET protocol: datagrams to a path or an abstract name, the variable unset, the
// status lines in order as front ends come and go, and failures that are not fatal.
#include "common/runtime/service_notify.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// A service manager's end: a datagram socket bound to `address` (a path, or '@name').
class Manager {
 public:
  explicit Manager(const std::string& address) : address_(address) {
    fd_ = UniqueFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address.data(), address.size());
    socklen_t len = offsetof(sockaddr_un, sun_path) + address.size();
    if (address[0] == '@') {
      addr.sun_path[0] = '\0';
    } else {
      unlink(address.c_str());
      ++len;
    }
    EXPECT_EQ(bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len), 0) << strerror(errno);
  }
  ~Manager() {
    if (address_[0] == '/') unlink(address_.c_str());
  }

  // The next datagram, or "" after 5 s.
  std::string Next() {
    pollfd p = {fd_.get(), POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return "";
    char buf[512];
    const ssize_t n = recv(fd_.get(), buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, n) : "";
  }
  bool Empty() {
    pollfd p = {fd_.get(), POLLIN, 0};
    return poll(&p, 1, 0) == 0;
  }

 private:
  std::string address_;
  UniqueFd fd_;
};

std::string TempPath() { return absl::StrCat("/tmp/service_notify_test_", getpid()); }

TEST(ServiceNotifierTest, UnsetVariableSendsNothing) {
  unsetenv("NOTIFY_SOCKET");
  ServiceNotifier notifier = ServiceNotifier::FromEnvironment();
  EXPECT_FALSE(notifier.enabled());
  notifier.Send("READY=1");  // harmless
}

TEST(ServiceNotifierTest, SendsToAPathAndUnsetsTheVariable) {
  Manager manager(TempPath());
  setenv("NOTIFY_SOCKET", TempPath().c_str(), 1);
  ServiceNotifier notifier = ServiceNotifier::FromEnvironment();
  EXPECT_EQ(getenv("NOTIFY_SOCKET"), nullptr);
  ASSERT_TRUE(notifier.enabled());
  notifier.Send("READY=1\nSTATUS=hello");
  EXPECT_EQ(manager.Next(), "READY=1\nSTATUS=hello");
}

TEST(ServiceNotifierTest, SendsToAnAbstractName) {
  const std::string name = absl::StrCat("@service_notify_test_", getpid());
  Manager manager(name);
  ServiceNotifier notifier = ServiceNotifier::Connect(name);
  ASSERT_TRUE(notifier.enabled());
  notifier.Send("READY=1");
  EXPECT_EQ(manager.Next(), "READY=1");
}

TEST(ServiceNotifierTest, UnreachableOrMalformedAddressesAreNotFatal) {
  EXPECT_FALSE(ServiceNotifier::Connect("/nonexistent/notify").enabled());
  EXPECT_FALSE(ServiceNotifier::Connect("relative").enabled());
  EXPECT_FALSE(ServiceNotifier::Connect("").enabled());
  EXPECT_FALSE(ServiceNotifier::Connect(std::string(200, '/')).enabled());
}

TEST(ServiceNotifierTest, AManagerGoneAwayIsNotFatal) {
  ServiceNotifier notifier;
  {
    Manager manager(TempPath());
    notifier = ServiceNotifier::Connect(TempPath());
    ASSERT_TRUE(notifier.enabled());
  }
  notifier.Send("STATUS=nobody listens");  // ECONNREFUSED, logged
  notifier.Send("STATUS=nobody listens");
}

TEST(ServiceStatusTest, OneSocket) {
  Manager manager(TempPath());
  ServiceNotifier notifier = ServiceNotifier::Connect(TempPath());
  ServiceStatus status(&notifier, {"/run/vhost-user/rng.sock"});
  status.ListenerReady();
  status.FrontEndConnected();
  status.FrontEndDisconnected();
  status.Stopping();
  status.Stopping();  // once only
  EXPECT_EQ(manager.Next(), "READY=1\nSTATUS=waiting for a front end on /run/vhost-user/rng.sock");
  EXPECT_EQ(manager.Next(), "STATUS=front end connected");
  EXPECT_EQ(manager.Next(), "STATUS=waiting for a front end");
  EXPECT_EQ(manager.Next(), "STOPPING=1");
  EXPECT_TRUE(manager.Empty());
}

TEST(ServiceStatusTest, SeveralSocketsAreReadyWhenAllAre) {
  Manager manager(TempPath());
  ServiceNotifier notifier = ServiceNotifier::Connect(TempPath());
  ServiceStatus status(&notifier, {"/a0", "/a1"});
  status.ListenerReady();
  EXPECT_TRUE(manager.Empty());
  status.ListenerReady();
  EXPECT_EQ(manager.Next(), "READY=1\nSTATUS=waiting for front ends on 2 sockets");
  status.FrontEndConnected();
  EXPECT_EQ(manager.Next(), "STATUS=1 of 2 front ends connected");
  status.Stopping();
  EXPECT_EQ(manager.Next(), "STOPPING=1");
  status.FrontEndDisconnected();  // while stopping: no more status lines
  EXPECT_TRUE(manager.Empty());
}

}  // namespace
}  // namespace vhost
