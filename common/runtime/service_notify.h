// Service notifications (the NOTIFY_SOCKET protocol of sd_notify(3), without libsystemd: the
// daemons link statically): readiness, status lines and shutdown told to a supervisor such as
// systemd (Type=notify). The socket is opened and connected at start-up, before the sandbox; a
// notification afterwards is one send() (sendto, which every seccomp policy allows).
#ifndef COMMON_RUNTIME_SERVICE_NOTIFY_H_
#define COMMON_RUNTIME_SERVICE_NOTIFY_H_

#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/base/unique_fd.h"

namespace vhost {

class ServiceNotifier {
 public:
  // Sends nothing.
  ServiceNotifier() = default;
  // Connects to NOTIFY_SOCKET (a path, or an abstract name after '@') and unsets it, so no
  // process the daemon starts notifies in its name. Unset: a notifier that sends nothing. A
  // socket that cannot be reached is logged, never fatal: the daemon serves all the same.
  static ServiceNotifier FromEnvironment();
  // Connects to `address` as NOTIFY_SOCKET gives it.
  static ServiceNotifier Connect(absl::string_view address);

  bool enabled() const { return fd_.valid(); }
  // Sends `state` ("READY=1\nSTATUS=..."), one datagram. A failure is logged (the first, then
  // every 100th) and otherwise ignored. Thread-safe.
  void Send(absl::string_view state) const;

 private:
  explicit ServiceNotifier(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// What the daemon tells its supervisor as its front ends come and go, for one listening socket
// or several (--socket-count): READY=1 once every listener is ready, then STATUS= lines.
class ServiceStatus {
 public:
  // `listeners`: where each socket listens, as DescribeListener says.
  ServiceStatus(const ServiceNotifier* notifier, std::vector<std::string> listeners);

  void ListenerReady();
  void FrontEndConnected();
  void FrontEndDisconnected();
  void Stopping();

 private:
  // The STATUS= line for the front ends connected now.
  std::string StatusLine() const;

  const ServiceNotifier* const notifier_;
  const std::vector<std::string> listeners_;
  std::mutex mu_;
  size_t ready_ = 0;
  size_t connected_ = 0;
  bool stopping_ = false;
};

}  // namespace vhost

#endif  // COMMON_RUNTIME_SERVICE_NOTIFY_H_
