#include "vhost-user-vsock/host_muxer.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/runtime/unix_listener.h"
#include "glog/logging.h"

namespace vhost {
namespace {

constexpr uint64_t kListenerId = 1;
constexpr size_t kMaxGreeting = 64;  // "CONNECT 4294967295\n" and then some
// Host sockets are watched edge-triggered: one event per change, not one per wait while data
// waits for credit or rx buffers. EPOLLOUT only while guest data waits for the socket
// (WatchWritable): else every read of the host program would wake the rx worker.
constexpr uint32_t kHostSocketEvents = EPOLLIN | EPOLLRDHUP | EPOLLET;

uint32_t HostSocketEvents(bool writable) {
  return kHostSocketEvents | (writable ? uint32_t{EPOLLOUT} : 0u);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HostMuxer>> HostMuxer::Create(const std::string& uds_path,
                                                             uint64_t guest_cid) {
  absl::StatusOr<UniqueFd> listener = ListenOnUnixSocket(uds_path, "--uds-path", 64);
  if (!listener.ok()) return listener.status();
  const int flags = fcntl(listener->get(), F_GETFL);
  fcntl(listener->get(), F_SETFL, flags | O_NONBLOCK);
  return std::unique_ptr<HostMuxer>(new HostMuxer(uds_path, guest_cid, *std::move(listener)));
}

absl::Status HostMuxer::Serve(QueueContext* rx) {
  rx_ = rx;
  if (rx == nullptr) return absl::OkStatus();
  absl::Status status = rx->Watch(listener_.get(), EPOLLIN, [this](uint32_t events) {
    events_.emplace_back(kListenerId, events);
  });
  if (!status.ok()) return status;
  events_.reserve(64);
  // Sockets made or kept while the queue did not serve (the tx worker connects on its own, and
  // a stop drops every watch).
  for (const auto& [id, greeting] : greetings_) {
    if (!Watch(greeting.fd.get(), id, kHostSocketEvents)) {
      return absl::InternalError("cannot watch a host socket");
    }
  }
  for (const auto& [id, c] : by_id_) {
    if (!Watch(c->fd(), id, HostSocketEvents(c->writable_watched()))) {
      return absl::InternalError("cannot watch a host socket");
    }
  }
  return absl::OkStatus();
}

bool HostMuxer::Watch(int fd, uint64_t id, uint32_t events) {
  if (rx_ == nullptr) return true;  // watched when the rx queue serves
  return rx_->Watch(fd, events, [this, id](uint32_t got) { events_.emplace_back(id, got); }).ok();
}

bool HostMuxer::WatchWritable(Connection& c, bool on) {
  if (c.writable_watched() == on) return true;
  c.set_writable_watched(on);
  // Watched anew: epoll reports the socket's present state, so no edge is lost either way.
  Unwatch(c.fd());
  return Watch(c.fd(), c.id(), HostSocketEvents(on));
}

void HostMuxer::Unwatch(int fd) {
  // Before the socket closes: a later socket may get the same fd number.
  if (rx_ != nullptr) rx_->Unwatch(fd);
}

Connection* HostMuxer::ConnectToHost(const virtio_vsock_hdr& h) {
  if (connections_.size() >= kMaxConnections) {
    LOG_EVERY_N(WARNING, 100) << kMaxConnections << " connections open: refusing another";
    return nullptr;
  }
  const std::string path = absl::StrCat(uds_path_, "_", h.dst_port);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const int type = h.type == VIRTIO_VSOCK_TYPE_SEQPACKET ? SOCK_SEQPACKET : SOCK_STREAM;
  UniqueFd fd(socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd || path.size() >= sizeof(addr.sun_path)) return nullptr;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    VLOG(1) << "guest connection to host port " << h.dst_port << ": " << path << ": "
            << strerror(errno);
    return nullptr;  // nobody listens: refused
  }
  const uint64_t id = next_id_++;
  if (!Watch(fd.get(), id, kHostSocketEvents)) return nullptr;
  return Add(std::make_unique<Connection>(id, guest_cid_, h.src_port, h.dst_port, h.type,
                                          std::move(fd), /*connected=*/true));
}

Connection* HostMuxer::Add(std::unique_ptr<Connection> c) {
  Connection* ref = c.get();
  by_id_[c->id()] = ref;
  connections_[c->key()] = std::move(c);
  return ref;
}

Connection* HostMuxer::Find(const Connection::Key& key) {
  auto it = connections_.find(key);
  return it == connections_.end() ? nullptr : it->second.get();
}

void HostMuxer::Remove(Connection& c) {
  Unwatch(c.fd());
  by_id_.erase(c.id());
  connections_.erase(c.key());  // closes the host socket
}

void HostMuxer::Clear() {
  for (const auto& [id, greeting] : greetings_) Unwatch(greeting.fd.get());
  for (const auto& [id, c] : by_id_) Unwatch(c->fd());
  connections_.clear();  // closes every host socket: their programs see the guest go away
  by_id_.clear();
  greetings_.clear();
  events_.clear();
}

void HostMuxer::HandleEvents(Delegate& delegate) {
  // An id may be gone (closed since its event came): ids are never reused, so it is skipped.
  for (const auto& [id, events] : events_) {
    if (id == kListenerId) {
      Accept(delegate);
    } else if (greetings_.count(id)) {
      ReadGreeting(id, delegate);
    } else if (auto it = by_id_.find(id); it != by_id_.end()) {
      delegate.HostEvent(*it->second, events);
    }
  }
  events_.clear();
}

void HostMuxer::Accept(Delegate& delegate) {
  // Level-triggered: every pending connection is taken (or turned away) now.
  for (;;) {
    UniqueFd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;
    if (connections_.size() + greetings_.size() >= kMaxConnections) {
      LOG_EVERY_N(WARNING, 100) << "too many connections: a host program was turned away";
      continue;
    }
    const uint64_t id = next_id_++;
    if (!Watch(fd.get(), id, kHostSocketEvents)) continue;
    greetings_[id].fd = std::move(fd);
    ReadGreeting(id, delegate);  // the line may be there already
  }
}

void HostMuxer::ReadGreeting(uint64_t id, Delegate& delegate) {
  Greeting& g = greetings_[id];
  char buf[kMaxGreeting];
  for (;;) {
    const ssize_t n = read(g.fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      DropGreeting(id);  // gone before saying where to
      return;
    }
    g.line.append(buf, n);
    if (g.line.find('\n') != std::string::npos || g.line.size() > kMaxGreeting) break;
  }
  const size_t end = g.line.find('\n');
  if (end == std::string::npos) {
    if (g.line.size() > kMaxGreeting) DropGreeting(id);
    return;
  }
  absl::string_view line(g.line.data(), end);
  absl::ConsumeSuffix(&line, "\r");
  uint32_t port;
  if (!absl::ConsumePrefix(&line, "CONNECT ") || !absl::SimpleAtoi(line, &port) ||
      connections_.size() >= kMaxConnections) {
    LOG_EVERY_N(WARNING, 100) << "host program sent '" << absl::CHexEscape(line)
                              << "', not CONNECT <port>: closed";
    DropGreeting(id);
    return;
  }
  auto c = std::make_unique<Connection>(id, guest_cid_, port, AllocateHostPort(),
                                        VIRTIO_VSOCK_TYPE_STREAM, std::move(g.fd),
                                        /*connected=*/false);
  c->set_prefix(g.line.substr(end + 1));
  greetings_.erase(id);  // the socket stays watched, now as the connection's
  delegate.HostConnected(*Add(std::move(c)));
}

void HostMuxer::DropGreeting(uint64_t id) {
  auto it = greetings_.find(id);
  if (it == greetings_.end()) return;
  Unwatch(it->second.fd.get());
  greetings_.erase(it);
}

uint32_t HostMuxer::AllocateHostPort() {
  for (;;) {
    const uint32_t port = next_host_port_++;
    if (next_host_port_ == 0) next_host_port_ = kFirstHostPort;
    bool used = false;
    for (const auto& entry : connections_) used |= entry.second->host_port() == port;
    if (!used) return port;
  }
}

}  // namespace vhost
