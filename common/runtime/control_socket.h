// A line-oriented control socket: the way users and tests drive a simulated device from outside
// the daemon (type keys, raise a GPIO line, ...). One client at a time; each line gets one answer,
// "ok[ TEXT]" or "error: WHY".
#ifndef COMMON_RUNTIME_CONTROL_SOCKET_H_
#define COMMON_RUNTIME_CONTROL_SOCKET_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/unique_fd.h"

namespace vhost {

class ControlSocket {
 public:
  // Returns the text after "ok" (empty for a bare "ok"), or an error for "error: ...".
  using Handler = std::function<absl::StatusOr<std::string>(absl::string_view line)>;

  // Listens on `path` (errors name `flag`) and serves clients on a thread of its own.
  static absl::StatusOr<std::unique_ptr<ControlSocket>> Start(const std::string& path,
                                                              const std::string& flag,
                                                              Handler handler);
  ~ControlSocket();

 private:
  ControlSocket(UniqueFd listener, Handler handler);
  void Serve();
  void ServeClient(int client);

  UniqueFd listener_;
  UniqueFd stop_;
  Handler handler_;
  std::thread thread_;
};

}  // namespace vhost

#endif  // COMMON_RUNTIME_CONTROL_SOCKET_H_
