// The host side of the device: the listener at UDS_PATH where host programs connect and write
// "CONNECT <port>\n", the greetings being read, the sockets to UDS_PATH_<port> made for the
// guest's connections, and the table of connections by address and by id.
//
// Sockets are watched on the rx queue's context while it serves (Serve), edge-triggered; the
// watches only record the events, which HandleEvents (the rx worker) turns into new host
// connections and connection events for the Delegate. Not thread-safe: the device calls it
// under its lock (the watches' handlers run on the rx worker and touch only events_).
#ifndef VHOST_USER_VSOCK_HOST_MUXER_H_
#define VHOST_USER_VSOCK_HOST_MUXER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "common/device/queue_context.h"
#include "vhost-user-vsock/connection.h"

namespace vhost {

class HostMuxer {
 public:
  class Delegate {
   public:
    virtual ~Delegate() = default;
    // A host program asked for guest port c.guest_port(): the guest gets a REQUEST.
    virtual void HostConnected(Connection& c) = 0;
    // Epoll events of a connection's host socket.
    virtual void HostEvent(Connection& c, uint32_t events) = 0;
  };
  static constexpr size_t kMaxConnections = 4096;       // greetings included
  static constexpr uint32_t kFirstHostPort = 1u << 30;  // ports given to host programs
  using Connections = std::map<Connection::Key, std::unique_ptr<Connection>>;

  // Binds the listener at `uds_path` (InvalidArgument naming --uds-path on failure).
  static absl::StatusOr<std::unique_ptr<HostMuxer>> Create(const std::string& uds_path,
                                                           uint64_t guest_cid);

  // Watches the listener and every socket on `rx` (the rx queue starts serving); null when it
  // stops (the engine drops its watches). Sockets made meanwhile are watched when it serves
  // again; watching reports a socket's present state, so no edge is lost.
  absl::Status Serve(QueueContext* rx);

  // Connects a guest's REQUEST `h` to UDS_PATH_<h.dst_port>; null (and nothing kept) if nobody
  // listens there, the socket cannot be watched, or too many connections are open.
  Connection* ConnectToHost(const virtio_vsock_hdr& h);
  Connection* Find(const Connection::Key& key);
  // Forgets the connection and closes its host socket.
  void Remove(Connection& c);
  // Watches the connection's socket for EPOLLOUT too, or no more (`on`: c.WantsWritable()).
  // False if the socket could not be watched again (the caller resets the connection).
  bool WatchWritable(Connection& c, bool on);
  // Turns the events the watches recorded into calls of `delegate` (rx worker).
  void HandleEvents(Delegate& delegate);
  // Closes everything but the listener.
  void Clear();

  Connections& connections() { return connections_; }
  size_t size() const { return connections_.size(); }

 private:
  // A host program that connected to uds_path and has not finished its CONNECT line.
  struct Greeting {
    UniqueFd fd;
    std::string line;
  };

  HostMuxer(std::string uds_path, uint64_t guest_cid, UniqueFd listener)
      : uds_path_(std::move(uds_path)), guest_cid_(guest_cid), listener_(std::move(listener)) {}
  bool Watch(int fd, uint64_t id, uint32_t events);
  void Unwatch(int fd);
  void Accept(Delegate& delegate);
  void ReadGreeting(uint64_t id, Delegate& delegate);
  void DropGreeting(uint64_t id);
  Connection* Add(std::unique_ptr<Connection> c);
  uint32_t AllocateHostPort();

  const std::string uds_path_;
  const uint64_t guest_cid_;
  UniqueFd listener_;
  QueueContext* rx_ = nullptr;
  Connections connections_;
  std::map<uint64_t, Connection*> by_id_;
  std::map<uint64_t, Greeting> greetings_;
  uint64_t next_id_ = 2;  // 1 is the listener's
  uint32_t next_host_port_ = kFirstHostPort;
  // What the watches reported, (id, epoll events): the rx worker only. Its capacity is kept
  // (no allocation per event).
  std::vector<std::pair<uint64_t, uint32_t>> events_;
};

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_HOST_MUXER_H_
