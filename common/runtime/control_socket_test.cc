#include "common/runtime/control_socket.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// In /tmp: Bazel's TEST_TMPDIR is too long for a socket path.
std::string SocketPath() { return "/tmp/control_test_" + std::to_string(getpid()); }

UniqueFd Connect(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

// Sends `line` with `fds` attached; returns the answer line.
std::string Send(int socket, const std::string& line, std::vector<int> fds = {}) {
  iovec iov = {const_cast<char*>(line.data()), line.size()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(8 * sizeof(int))] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  EXPECT_EQ(sendmsg(socket, &msg, 0), static_cast<ssize_t>(line.size()));
  std::string answer;
  char c;
  while (read(socket, &c, 1) == 1 && c != '\n') answer += c;
  return answer;
}

TEST(ControlSocketTest, LinesCarryDescriptors) {
  const std::string path = SocketPath();
  std::vector<std::string> seen;
  absl::StatusOr<std::unique_ptr<ControlSocket>> control = ControlSocket::Start(
      path, "--control-socket",
      [&](absl::string_view line, std::vector<UniqueFd>& fds) -> absl::StatusOr<std::string> {
        if (line == "fail") return absl::InvalidArgumentError("as asked");
        // Reads what the client wrote into the pipe it sent.
        std::string got(line);
        for (UniqueFd& fd : fds) {
          char buf[16] = {};
          const ssize_t n = read(fd.get(), buf, sizeof(buf));
          got += ":" + std::string(buf, n > 0 ? n : 0);
        }
        return got;
      });
  ASSERT_OK(control);
  UniqueFd client = Connect(path);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  ASSERT_EQ(write(pipe_fds[1], "hello", 5), 5);
  EXPECT_EQ(Send(client.get(), "add\n", {pipe_fds[0]}), "ok add:hello");
  close(pipe_fds[0]);
  // The descriptor went with its line: the next line has none.
  EXPECT_EQ(Send(client.get(), "again\n"), "ok again");
  EXPECT_EQ(Send(client.get(), "fail\n"), "error: as asked");
  // More than kMaxFds: the extra ones are closed, never handed on.
  std::vector<int> many;
  for (int i = 0; i < 6; ++i) many.push_back(pipe_fds[1]);
  EXPECT_EQ(Send(client.get(), "many\n", many), "ok many::::");  // kMaxFds of them
  close(pipe_fds[1]);
  // The client function, with a descriptor (one client at a time: this one first goes away).
  client.Reset();
  ASSERT_EQ(pipe(pipe_fds), 0);
  ASSERT_EQ(write(pipe_fds[1], "again", 5), 5);
  close(pipe_fds[1]);
  std::vector<UniqueFd> sent;
  sent.emplace_back(pipe_fds[0]);
  absl::StatusOr<std::string> answer = SendControlLine(path, "client", sent);
  ASSERT_OK(answer);
  EXPECT_EQ(*answer, "ok client:again");
  answer = SendControlLine(path, "fail");
  ASSERT_OK(answer);
  EXPECT_EQ(*answer, "error: as asked");
  unlink(path.c_str());
}

TEST(ControlSocketTest, LineHandlerIgnoresDescriptors) {
  const std::string path = SocketPath() + "b";
  absl::StatusOr<std::unique_ptr<ControlSocket>> control = ControlSocket::Start(
      path, "--control-socket",
      [](absl::string_view line) -> absl::StatusOr<std::string> { return std::string(line); });
  ASSERT_OK(control);
  UniqueFd client = Connect(path);
  EXPECT_EQ(Send(client.get(), "plain\n", {0}), "ok plain");
  unlink(path.c_str());
}

}  // namespace
}  // namespace vhost
