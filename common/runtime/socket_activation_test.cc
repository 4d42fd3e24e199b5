// The LISTEN_FDS protocol: which fd is taken, when it is ignored, what is refused, and that the
// variables are gone afterwards.
#include "common/runtime/socket_activation.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/base/unique_fd.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// A high fd stands for fd 3, which the test runner may hold.
constexpr int kFirst = 200;

UniqueFd UnixSocket(int type, const std::string& path, bool listening) {
  UniqueFd fd(socket(AF_UNIX, type, 0));
  EXPECT_TRUE(fd.valid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  unlink(path.c_str());
  // No path: an abstract name the kernel picks (autobind), as a listener needs some name.
  const socklen_t len = path.empty() ? sizeof(sa_family_t) : sizeof(addr);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
  if (listening) {
    EXPECT_EQ(listen(fd.get(), 1), 0);
  }
  return fd;
}

// Puts `fd` at kFirst, without close-on-exec, as a service manager passes it.
void PassAt(const UniqueFd& fd) { ASSERT_EQ(dup2(fd.get(), kFirst), kFirst); }

void SetActivation(const std::string& pid, const std::string& fds) {
  setenv("LISTEN_PID", pid.c_str(), 1);
  setenv("LISTEN_FDS", fds.c_str(), 1);
  setenv("LISTEN_FDNAMES", "vhost-user", 1);
}

bool AnyActivationVariable() {
  return getenv("LISTEN_PID") || getenv("LISTEN_FDS") || getenv("LISTEN_FDNAMES");
}

class SocketActivationTest : public ::testing::Test {
 protected:
  void TearDown() override { close(kFirst); }
  const std::string ours_ = std::to_string(getpid());
};

TEST_F(SocketActivationTest, NoVariablesNoListener) {
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  EXPECT_EQ(TakeActivatedListener(kFirst).value(), -1);
}

TEST_F(SocketActivationTest, TakesTheFirstFdAndUnsetsTheVariables) {
  UniqueFd listener = UnixSocket(SOCK_STREAM, "", true);
  PassAt(listener);
  SetActivation(ours_, "1");
  absl::StatusOr<int> fd = TakeActivatedListener(kFirst);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(*fd, kFirst);
  EXPECT_FALSE(AnyActivationVariable());
  EXPECT_TRUE(fcntl(kFirst, F_GETFD) & FD_CLOEXEC);  // not passed on to programs we start
}

TEST_F(SocketActivationTest, AnotherProcessesVariablesAreIgnoredAndUnset) {
  UniqueFd listener = UnixSocket(SOCK_STREAM, "", true);
  PassAt(listener);
  SetActivation(std::to_string(getpid() + 1), "1");
  EXPECT_EQ(TakeActivatedListener(kFirst).value(), -1);
  EXPECT_FALSE(AnyActivationVariable());
  EXPECT_FALSE(fcntl(kFirst, F_GETFD) & FD_CLOEXEC);  // left alone
}

TEST_F(SocketActivationTest, RefusesMoreThanOneFd) {
  SetActivation(ours_, "2");
  absl::StatusOr<int> fd = TakeActivatedListener(kFirst);
  ASSERT_FALSE(fd.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(fd.status()));
  EXPECT_NE(fd.status().message().find("LISTEN_FDS=2"), absl::string_view::npos);
  EXPECT_FALSE(AnyActivationVariable());
}

TEST_F(SocketActivationTest, RefusesMalformedVariables) {
  SetActivation("12x", "1");
  EXPECT_TRUE(absl::IsInvalidArgument(TakeActivatedListener(kFirst).status()));
  SetActivation(ours_, "one");
  EXPECT_TRUE(absl::IsInvalidArgument(TakeActivatedListener(kFirst).status()));
}

TEST_F(SocketActivationTest, RefusesWhatIsNoListeningUnixStreamSocket) {
  const std::string path = absl::StrCat("/tmp/socket_activation_test_", getpid());
  struct Case {
    const char* what;
    UniqueFd fd;
  };
  Case cases[] = {
      {"a pipe", UniqueFd(open("/dev/null", O_RDONLY))},
      {"not listening", UnixSocket(SOCK_STREAM, "", false)},
      {"datagram", UnixSocket(SOCK_DGRAM, path, false)},
      {"TCP", UniqueFd(socket(AF_INET, SOCK_STREAM, 0))},
  };
  ASSERT_EQ(listen(cases[3].fd.get(), 1), 0);
  for (Case& c : cases) {
    PassAt(c.fd);
    SetActivation(ours_, "1");
    absl::StatusOr<int> fd = TakeActivatedListener(kFirst);
    ASSERT_FALSE(fd.ok()) << c.what;
    EXPECT_TRUE(absl::IsInvalidArgument(fd.status())) << c.what;
    EXPECT_EQ(fd.status().message().rfind("LISTEN_FDS: ", 0), 0u) << fd.status();
  }
  unlink(path.c_str());
}

TEST_F(SocketActivationTest, DescribesAListenerByItsPath) {
  const std::string path = absl::StrCat("/tmp/socket_activation_test_", getpid());
  UniqueFd named = UnixSocket(SOCK_STREAM, path, true);
  EXPECT_EQ(DescribeListener(named.get()), path);
  UniqueFd unnamed = UnixSocket(SOCK_STREAM, "", true);
  EXPECT_EQ(DescribeListener(unnamed.get()), absl::StrCat("fd ", unnamed.get()));
  unlink(path.c_str());
}

}  // namespace
}  // namespace vhost
