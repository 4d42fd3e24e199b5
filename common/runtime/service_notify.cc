#include "common/runtime/service_notify.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace vhost {

ServiceNotifier ServiceNotifier::FromEnvironment() {
  const char* value = getenv("NOTIFY_SOCKET");
  if (value == nullptr) return ServiceNotifier();
  const std::string address = value;
  unsetenv("NOTIFY_SOCKET");
  return Connect(address);
}

ServiceNotifier ServiceNotifier::Connect(absl::string_view address) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // A path, or '@' for the abstract namespace (a leading NUL byte, the rest of the length).
  if (address.size() < 2 || address.size() > sizeof(addr.sun_path) ||
      (address[0] != '/' && address[0] != '@') ||
      (address[0] == '/' && address.size() == sizeof(addr.sun_path))) {
    LOG(WARNING) << "NOTIFY_SOCKET '" << address << "' is no Unix socket address; not notifying";
    return ServiceNotifier();
  }
  std::memcpy(addr.sun_path, address.data(), address.size());
  if (address[0] == '@') addr.sun_path[0] = '\0';
  const socklen_t len = offsetof(sockaddr_un, sun_path) + address.size() +
                        (address[0] == '/' ? 1 : 0);  // a path's terminating NUL
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd || connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    PLOG(WARNING) << "cannot connect to NOTIFY_SOCKET " << address << "; not notifying";
    return ServiceNotifier();
  }
  return ServiceNotifier(std::move(fd));
}

void ServiceNotifier::Send(absl::string_view state) const {
  if (!fd_) return;
  const ssize_t sent = send(fd_.get(), state.data(), state.size(), MSG_NOSIGNAL);
  if (sent == static_cast<ssize_t>(state.size())) return;
  const int error = sent < 0 ? errno : EMSGSIZE;
  LOG_EVERY_N(WARNING, 100) << "cannot notify the service manager (" << strerror(error)
                            << "); occurrence " << google::COUNTER;
}

ServiceStatus::ServiceStatus(const ServiceNotifier* notifier, std::vector<std::string> listeners)
    : notifier_(notifier), listeners_(std::move(listeners)) {}

std::string ServiceStatus::StatusLine() const {
  if (listeners_.size() == 1) return "STATUS=waiting for a front end";
  return absl::StrCat("STATUS=", connected_, " of ", listeners_.size(), " front ends connected");
}

void ServiceStatus::ListenerReady() {
  std::lock_guard<std::mutex> lock(mu_);
  if (++ready_ != listeners_.size()) return;
  notifier_->Send(listeners_.size() == 1
                      ? absl::StrCat("READY=1\nSTATUS=waiting for a front end on ", listeners_[0])
                      : absl::StrCat("READY=1\nSTATUS=waiting for front ends on ",
                                     listeners_.size(), " sockets"));
}

void ServiceStatus::FrontEndConnected() {
  std::lock_guard<std::mutex> lock(mu_);
  ++connected_;
  if (stopping_) return;
  notifier_->Send(listeners_.size() == 1 ? "STATUS=front end connected" : StatusLine());
}

void ServiceStatus::FrontEndDisconnected() {
  std::lock_guard<std::mutex> lock(mu_);
  if (connected_ > 0) --connected_;
  if (stopping_) return;
  notifier_->Send(StatusLine());
}

void ServiceStatus::Stopping() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  stopping_ = true;
  notifier_->Send("STOPPING=1");
}

}  // namespace vhost
