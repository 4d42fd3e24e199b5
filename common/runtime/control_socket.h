// A line-oriented control socket: the way users and tests drive a simulated device from outside
// the daemon (type keys, raise a GPIO line, ...). One client at a time; each line gets one answer,
// "ok[ TEXT]" or "error: WHY". A line may come with file descriptors (SCM_RIGHTS on the message
// that carries it): how a sandboxed daemon that may not open files gets one (scsi's hot-added
// LUNs).
#ifndef COMMON_RUNTIME_CONTROL_SOCKET_H_
#define COMMON_RUNTIME_CONTROL_SOCKET_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/unique_fd.h"

namespace vhost {

class ControlSocket {
 public:
  // Returns the text after "ok" (empty for a bare "ok"), or an error for "error: ...".
  using Handler = std::function<absl::StatusOr<std::string>(absl::string_view line)>;
  // The same, with the descriptors that came with the line (those it leaves are closed).
  using FdHandler = std::function<absl::StatusOr<std::string>(absl::string_view line,
                                                              std::vector<UniqueFd>& fds)>;
  // At most this many descriptors per message; more are closed by the kernel (MSG_CTRUNC).
  static constexpr size_t kMaxFds = 4;

  // Listens on `path` (errors name `flag`) and serves clients on a thread of its own.
  static absl::StatusOr<std::unique_ptr<ControlSocket>> Start(const std::string& path,
                                                              const std::string& flag,
                                                              Handler handler);
  static absl::StatusOr<std::unique_ptr<ControlSocket>> Start(const std::string& path,
                                                              const std::string& flag,
                                                              FdHandler handler);
  // The same in two steps, for a socket that must exist before the daemon confines itself but
  // whose thread may only start after (a user namespace is entered single-threaded).
  static absl::StatusOr<UniqueFd> Listen(const std::string& path, const std::string& flag);
  static std::unique_ptr<ControlSocket> StartOn(UniqueFd listener, Handler handler);
  ~ControlSocket();

 private:
  ControlSocket(UniqueFd listener, FdHandler handler);
  void Serve();
  void ServeClient(int client);

  UniqueFd listener_;
  UniqueFd stop_;
  FdHandler handler_;
  std::thread thread_;
};

// The client side: connects to `path`, sends `line` (without its newline) with `fds` attached,
// and returns the answer line ("ok ..." or "error: ..."). For tools such as scsi's --hotplug.
absl::StatusOr<std::string> SendControlLine(const std::string& path, absl::string_view line,
                                            const std::vector<UniqueFd>& fds = {});

}  // namespace vhost

#endif  // COMMON_RUNTIME_CONTROL_SOCKET_H_
