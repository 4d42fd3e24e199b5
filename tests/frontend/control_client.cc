#include "tests/frontend/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/unique_fd.h"

namespace vhost::frontend {

absl::StatusOr<std::string> SendControlCommands(const std::string& socket_path,
                                                const std::string& lines) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("socket path too long");
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("connect ", socket_path));
  }
  if (write(fd.get(), lines.data(), lines.size()) != static_cast<ssize_t>(lines.size())) {
    return absl::ErrnoToStatus(errno, "write");
  }
  shutdown(fd.get(), SHUT_WR);
  std::string replies;
  char buf[256];
  for (ssize_t n; (n = read(fd.get(), buf, sizeof(buf))) > 0;) replies.append(buf, n);
  return replies;
}

}  // namespace vhost::frontend
